//! A small GGUF v3 writer, and a generator for a tiny llama model that
//! llama.cpp can load. Used by tests across the workspace and by
//! [`crate::hostile`] as the base for corrupted variants.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::reader::{align_up, DEFAULT_ALIGNMENT};
use crate::types::{Array, GgmlType, Value};

/// Builds a GGUF file in memory. Entries are written in insertion order and
/// duplicates are kept, so tests can build deliberately invalid files too.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    version: u32,
    kvs: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

#[derive(Debug, Clone)]
struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
    data: Vec<u8>,
}

/// Byte positions of every field written, so tests can corrupt one precisely.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub kvs: Vec<KvPos>,
    pub tensors: Vec<TensorPos>,
    pub data_offset: usize,
}

#[derive(Debug, Clone)]
pub struct KvPos {
    pub key: String,
    /// Position of the key's u64 length prefix.
    pub start: usize,
    /// Position of the u32 value type.
    pub type_pos: usize,
    /// Position of the value payload (for arrays: the element type).
    pub value_pos: usize,
}

#[derive(Debug, Clone)]
pub struct TensorPos {
    pub name: String,
    /// Position of the name's u64 length prefix.
    pub start: usize,
    pub n_dims_pos: usize,
    pub dims_pos: usize,
    pub type_pos: usize,
    pub offset_pos: usize,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    pub fn new() -> Self {
        GgufWriter { version: 3, kvs: Vec::new(), tensors: Vec::new() }
    }

    /// Overrides the version field (tests of version checks).
    pub fn version(&mut self, version: u32) -> &mut Self {
        self.version = version;
        self
    }

    /// Appends a key, even if it already exists.
    pub fn add(&mut self, key: &str, value: Value) -> &mut Self {
        self.kvs.push((key.to_string(), value));
        self
    }

    /// Replaces the first entry for `key`, or appends it.
    pub fn set(&mut self, key: &str, value: Value) -> &mut Self {
        match self.kvs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.kvs.push((key.to_string(), value)),
        }
        self
    }

    pub fn remove(&mut self, key: &str) -> &mut Self {
        self.kvs.retain(|(k, _)| k != key);
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Adds an F32 tensor; `dims` in ggml order (row length first).
    pub fn add_f32(&mut self, name: &str, dims: &[u64], data: &[f32]) -> &mut Self {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_raw(name, dims, GgmlType::F32.id(), bytes)
    }

    /// Adds an F16 tensor, converting from f32.
    pub fn add_f16(&mut self, name: &str, dims: &[u64], data: &[f32]) -> &mut Self {
        let bytes = data.iter().flat_map(|&v| f32_to_f16(v).to_le_bytes()).collect();
        self.add_raw(name, dims, GgmlType::F16.id(), bytes)
    }

    /// Adds a tensor with arbitrary type id and bytes; nothing is checked.
    pub fn add_raw(&mut self, name: &str, dims: &[u64], type_id: u32, data: Vec<u8>) -> &mut Self {
        self.tensors.push(PendingTensor { name: name.to_string(), dims: dims.to_vec(), type_id, data });
        self
    }

    pub fn remove_tensor(&mut self, name: &str) -> &mut Self {
        self.tensors.retain(|t| t.name != name);
        self
    }

    /// Renames the first tensor called `from`.
    pub fn rename_tensor(&mut self, from: &str, to: &str) -> &mut Self {
        if let Some(t) = self.tensors.iter_mut().find(|t| t.name == from) {
            t.name = to.to_string();
        }
        self
    }

    pub fn tensor_names(&self) -> Vec<String> {
        self.tensors.iter().map(|t| t.name.clone()).collect()
    }

    /// Alignment used for the data section: `general.alignment` when it is a
    /// usable power of two, else the GGUF default.
    fn alignment(&self) -> usize {
        match self.get("general.alignment") {
            Some(Value::U32(a)) if a.is_power_of_two() => *a as usize,
            _ => DEFAULT_ALIGNMENT as usize,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with_layout().0
    }

    /// Serialises the file and reports where each field landed.
    pub fn to_bytes_with_layout(&self) -> (Vec<u8>, Layout) {
        let (mut out, layout) = self.header_with_layout();
        // Data offsets are relative to the data section, so appending to a
        // buffer that already holds the header keeps every offset right.
        let start = out.len();
        self.write_data(&mut out, start);
        (out, layout)
    }

    /// Everything before the tensor data: header, metadata, tensor table and
    /// the padding up to the data section.
    fn header_with_layout(&self) -> (Vec<u8>, Layout) {
        let mut out = Vec::new();
        let mut layout = Layout::default();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (key, value) in &self.kvs {
            layout.kvs.push(write_kv(&mut out, key, value));
        }
        let offsets = self.data_offsets();
        for (t, &off) in self.tensors.iter().zip(&offsets) {
            layout.tensors.push(write_tensor_info(&mut out, t, off));
        }
        if !self.tensors.is_empty() {
            pad_to(&mut out, self.alignment());
        }
        layout.data_offset = out.len();
        (out, layout)
    }

    fn data_offsets(&self) -> Vec<u64> {
        let align = self.alignment() as u64;
        let mut next = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            offsets.push(next);
            let end = next.saturating_add(t.data.len() as u64);
            next = align_up(end, align).unwrap_or(u64::MAX);
        }
        offsets
    }

    /// Appends the tensor data; `start` is where the data section begins in
    /// `out`, so padding is measured from there.
    fn write_data(&self, out: &mut Vec<u8>, start: usize) {
        let align = self.alignment();
        for (i, t) in self.tensors.iter().enumerate() {
            out.extend_from_slice(&t.data);
            // llama.cpp pads between tensors but the last one may end the file.
            if i + 1 < self.tensors.len() {
                pad_relative(out, start, align);
            }
        }
    }

    /// Streams the file to `out` without building it in memory first, so
    /// writing a model of a few hundred MB does not need twice that in RAM.
    pub fn write_stream(&self, out: &mut impl Write) -> io::Result<()> {
        let (header, _) = self.header_with_layout();
        out.write_all(&header)?;
        let align = self.alignment() as u64;
        let mut written = 0u64;
        for (i, t) in self.tensors.iter().enumerate() {
            out.write_all(&t.data)?;
            written = written.saturating_add(t.data.len() as u64);
            if i + 1 < self.tensors.len() {
                let padded = align_up(written, align).unwrap_or(written);
                out.write_all(&vec![0u8; (padded - written) as usize])?;
                written = padded;
            }
        }
        Ok(())
    }

    /// Writes atomically: a temporary file in the same directory, then rename.
    pub fn write_to(&self, path: &Path) -> io::Result<()> {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let file_name =
            path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
        let tmp_name = format!(".{}.tmp{}", file_name.to_string_lossy(), std::process::id());
        let tmp = match dir {
            Some(d) => d.join(tmp_name),
            None => Path::new(&tmp_name).to_path_buf(),
        };
        let result = self.write_and_sync(&tmp).and_then(|()| fs::rename(&tmp, path));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_and_sync(&self, path: &Path) -> io::Result<()> {
        let mut f = io::BufWriter::new(fs::File::create(path)?);
        self.write_stream(&mut f)?;
        f.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()
    }
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    while out.len() & (align - 1) != 0 {
        out.push(0);
    }
}

fn pad_relative(out: &mut Vec<u8>, start: usize, align: usize) {
    while (out.len() - start) & (align - 1) != 0 {
        out.push(0);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_kv(out: &mut Vec<u8>, key: &str, value: &Value) -> KvPos {
    let start = out.len();
    put_str(out, key);
    let type_pos = out.len();
    out.extend_from_slice(&value.tag().to_le_bytes());
    let value_pos = out.len();
    put_value(out, value);
    KvPos { key: key.to_string(), start, type_pos, value_pos }
}

fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => put_str(out, s),
        Value::Array(a) => put_array(out, a),
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
    }
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    out.extend_from_slice(&a.elem_tag().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    fn each<T: Copy>(out: &mut Vec<u8>, v: &[T], f: impl Fn(T) -> Value) {
        for &x in v {
            put_value(out, &f(x));
        }
    }
    match a {
        Array::U8(v) => out.extend_from_slice(v),
        Array::I8(v) => each(out, v, Value::I8),
        Array::U16(v) => each(out, v, Value::U16),
        Array::I16(v) => each(out, v, Value::I16),
        Array::U32(v) => each(out, v, Value::U32),
        Array::I32(v) => each(out, v, Value::I32),
        Array::F32(v) => each(out, v, Value::F32),
        Array::Bool(v) => each(out, v, Value::Bool),
        Array::String(v) => v.iter().for_each(|s| put_str(out, s)),
        Array::U64(v) => each(out, v, Value::U64),
        Array::I64(v) => each(out, v, Value::I64),
        Array::F64(v) => each(out, v, Value::F64),
    }
}

fn write_tensor_info(out: &mut Vec<u8>, t: &PendingTensor, offset: u64) -> TensorPos {
    let start = out.len();
    put_str(out, &t.name);
    let n_dims_pos = out.len();
    out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
    let dims_pos = out.len();
    for d in &t.dims {
        out.extend_from_slice(&d.to_le_bytes());
    }
    let type_pos = out.len();
    out.extend_from_slice(&t.type_id.to_le_bytes());
    let offset_pos = out.len();
    out.extend_from_slice(&offset.to_le_bytes());
    TensorPos { name: t.name.clone(), start, n_dims_pos, dims_pos, type_pos, offset_pos }
}

/// Round-to-nearest-even f32 -> IEEE half conversion (finite inputs; large
/// values saturate to infinity, tiny ones flush to zero).
pub(crate) fn f32_to_f16(v: f32) -> u16 {
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let mant = bits & 0x7f_ffff;
    if exp >= 31 {
        return sign | 0x7c00;
    }
    if exp <= 0 {
        return sign;
    }
    let half = ((exp as u32) << 10) | (mant >> 13);
    let round = (mant & 0x1fff) > 0x1000 || ((mant & 0x1fff) == 0x1000 && (half & 1) == 1);
    sign | (half + u32::from(round)) as u16
}

/// Shape of the tiny llama model.
#[derive(Debug, Clone)]
pub struct TinyLlamaOpts {
    pub n_embd: u64,
    pub n_layer: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub n_ff: u64,
    pub n_ctx: u64,
    /// Seed of the deterministic weight generator.
    pub seed: u64,
    /// Mixture-of-experts feed-forward (Mixtral-style llama layout).
    pub moe: Option<TinyMoe>,
}

/// Expert counts for [`TinyLlamaOpts::moe`].
#[derive(Debug, Clone, Copy)]
pub struct TinyMoe {
    pub n_expert: u64,
    pub n_expert_used: u64,
}

impl Default for TinyLlamaOpts {
    fn default() -> Self {
        TinyLlamaOpts {
            n_embd: 64,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 128,
            n_ctx: 256,
            seed: 0x5eed,
            moe: None,
        }
    }
}

pub use crate::tiny::{tiny_llama, tiny_vocab, TinyVocab, CHATML_TEMPLATE};
pub use crate::tiny_moe::{tiny_qwen3moe, TinyQwen3MoeOpts};
pub use crate::tiny_vocabs::{
    plamo2_vocab, rwkv_escape, rwkv_vocab, set_tokens, spm_vocab, tiny_charsmap, tiny_llama_with_vocab, ugm_vocab,
    wpm_vocab, ModelVocab,
};
