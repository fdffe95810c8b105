//! Pure-Rust GGUF reader and validator.
//!
//! Every model file passes through here before llama.cpp sees it: the header
//! reader checks the container (magic, version, counts, string lengths, tensor
//! shapes, sizes and offsets against the file size), and the model validator
//! checks the metadata a loader trusts (hyperparameters, MoE counts,
//! tokenizer). `augur models` also reads its metadata from here, without
//! loading weights.
//!
//! PUBLIC API CONTRACT (other crates code against these names; keep them):
//! - `read_file(path: &Path) -> Result<GgufFile, GgufError>`
//! - `parse(reader: impl Read + Seek, file_size: u64) -> Result<GgufFile, GgufError>`
//! - `GgufFile { version, metadata: BTreeMap<String, Value>, tensors: Vec<TensorInfo>, data_offset, file_size, alignment }`
//! - `GgufFile::{arch, name, get, get_str, get_u64, get_f64, chat_template, quant_label, param_count, context_length, vocab_size, block_count}`
//! - `validate_model(&GgufFile, &[MetaOverride]) -> Result<(), ModelError>`
//! - `MetaOverride::parse("key=int:4") -> Result<MetaOverride, OverrideError>`
//!
//! All errors are variants of `GgufError`; its sub-enums `HeaderError`,
//! `ModelError` and `OverrideError` are what the three stages return.
//!
//! With the `fixtures` feature (tests and examples only, never production):
//! `writer::GgufWriter` and `writer::tiny_llama(...)` to build small valid
//! models; `writer::tiny_qwen3moe(...)` for a mixture-of-experts one big enough
//! to time; `writer::{spm_vocab, wpm_vocab, ugm_vocab, rwkv_vocab,
//! plamo2_vocab}` with `writer::tiny_llama_with_vocab(...)` for each of
//! llama.cpp's other tokenizer models; `hostile::variants()`, a corpus of 100+ corrupted files derived
//! from the tiny llama that every stage above must refuse. Its
//! `examples/write_corpus.rs` writes the tiny models and that corpus to a
//! directory.

#![forbid(unsafe_code)]

mod charsmap;
mod error;
#[cfg(feature = "fixtures")]
pub mod hostile;
mod overrides;
mod reader;
#[cfg(feature = "fixtures")]
mod tiny;
#[cfg(feature = "fixtures")]
mod tiny_moe;
#[cfg(feature = "fixtures")]
mod tiny_vocabs;
mod types;
mod validate;
mod vocab;
mod vocab_models;
#[cfg(feature = "fixtures")]
pub mod writer;

use std::collections::BTreeMap;

pub use error::{GgufError, HeaderError, ModelError, OverrideError};
pub use overrides::{MetaOverride, OverrideValue};
pub use reader::{parse, read_file, DEFAULT_ALIGNMENT, MAX_STRING_LEN, MAX_TENSOR_NAME_LEN};
pub use types::{Array, GgmlType, Value};
pub use validate::{validate_model, SUPPORTED_ARCHS};

/// A parsed GGUF header: metadata and the tensor table, no tensor data.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    /// Absolute file offset where tensor data begins.
    pub data_offset: u64,
    pub file_size: u64,
    pub alignment: u64,
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset relative to [`GgufFile::data_offset`].
    pub offset: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Element count; the reader has already proven this fits in 63 bits.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).unwrap_or(u64::MAX)
    }
}

impl GgufFile {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// Any non-negative integer, widened.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    /// A float, or an integer converted to one.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    pub fn arch(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    pub fn name(&self) -> Option<&str> {
        self.get_str("general.name")
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
    }

    fn arch_u64(&self, suffix: &str) -> Option<u64> {
        let arch = self.arch()?;
        self.get_u64(&format!("{arch}.{suffix}"))
    }

    pub fn context_length(&self) -> Option<u64> {
        self.arch_u64("context_length")
    }

    pub fn block_count(&self) -> Option<u64> {
        self.arch_u64("block_count")
    }

    /// Number of entries in `tokenizer.ggml.tokens`.
    pub fn vocab_size(&self) -> Option<u64> {
        let tokens = self.get("tokenizer.ggml.tokens")?.as_array()?;
        u64::try_from(tokens.len()).ok()
    }

    /// Total elements over all tensors.
    pub fn param_count(&self) -> u64 {
        self.tensors.iter().fold(0u64, |acc, t| acc.saturating_add(t.n_elements()))
    }

    /// llama.cpp's name for `general.file_type` (e.g. "Q4_K_M"), falling back
    /// to the most common type among the weight matrices.
    pub fn quant_label(&self) -> String {
        let named = self.get_u64("general.file_type").and_then(types::ftype_name);
        match named {
            Some(n) => n.to_string(),
            None => self.dominant_type().unwrap_or("unknown").to_string(),
        }
    }

    fn dominant_type(&self) -> Option<&'static str> {
        // Norms and biases are 1-D and usually F32 regardless of the
        // quantisation, so count matrices when there are any.
        let matrices: Vec<&TensorInfo> = self.tensors.iter().filter(|t| t.dims.len() >= 2).collect();
        let pool: Vec<&TensorInfo> = if matrices.is_empty() { self.tensors.iter().collect() } else { matrices };
        let mut counts: BTreeMap<GgmlType, usize> = BTreeMap::new();
        for t in pool {
            *counts.entry(t.ggml_type).or_insert(0) += 1;
        }
        counts.into_iter().max_by_key(|&(t, n)| (n, std::cmp::Reverse(t))).map(|(t, _)| t.name())
    }
}
