//! Small vocabularies for each of llama.cpp's tokenizer models (SPM, WPM,
//! UGM, RWKV, PLaMo-2), each complete enough for llama.cpp to load and
//! tokenize arbitrary text with, and a way to put one into the tiny llama.
//! The tokenizer tests and the hostile corpus corrupt them one way at a time.

use crate::tiny::{tensor, Rng};
use crate::types::{Array, Value};
use crate::writer::{tiny_llama, GgufWriter, TinyLlamaOpts};

const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const BYTE: i32 = 6;

/// Tokenizer metadata for [`tiny_llama_with_vocab`].
#[derive(Debug, Clone)]
pub struct ModelVocab {
    /// `tokenizer.ggml.model`.
    pub model: &'static str,
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    /// Further tokenizer keys (special token ids, flags, charsmap).
    pub keys: Vec<(String, Value)>,
}

impl ModelVocab {
    fn new(model: &'static str) -> Self {
        ModelVocab { model, tokens: Vec::new(), token_types: Vec::new(), keys: Vec::new() }
    }

    fn push(&mut self, text: impl Into<String>, ty: i32) -> u32 {
        self.tokens.push(text.into());
        self.token_types.push(ty);
        u32::try_from(self.tokens.len() - 1).unwrap_or(u32::MAX)
    }

    fn id(&mut self, name: &str, id: u32) {
        self.keys.push((format!("tokenizer.ggml.{name}_token_id"), Value::U32(id)));
    }

    /// Index of the token with this text.
    pub fn index_of(&self, text: &str) -> Option<usize> {
        self.tokens.iter().position(|t| t == text)
    }
}

fn pieces(v: &mut ModelVocab, prefix: &str) {
    for piece in ["the", "and", "in", "he", "er", "on"] {
        v.push(format!("{prefix}{piece}"), NORMAL);
    }
}

/// SentencePiece BPE (`llama`): `<unk>`, `<s>`, `</s>`, the 256 byte-fallback
/// tokens `<0x00>`..`<0xFF>`, then a few pieces, as in llama 2.
pub fn spm_vocab() -> ModelVocab {
    let mut v = ModelVocab::new("llama");
    v.push("<unk>", UNKNOWN);
    let bos = v.push("<s>", CONTROL);
    let eos = v.push("</s>", CONTROL);
    for b in 0..=255u8 {
        v.push(format!("<0x{b:02X}>"), BYTE);
    }
    v.push("\u{2581}", NORMAL);
    pieces(&mut v, "\u{2581}");
    v.id("bos", bos);
    v.id("eos", eos);
    v.id("unknown", 0);
    v
}

/// WordPiece (`bert`): `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`, the
/// letters and a few word pieces.
pub fn wpm_vocab() -> ModelVocab {
    let mut v = ModelVocab::new("bert");
    v.push("[PAD]", CONTROL);
    let unk = v.push("[UNK]", CONTROL);
    let cls = v.push("[CLS]", CONTROL);
    let sep = v.push("[SEP]", CONTROL);
    let mask = v.push("[MASK]", CONTROL);
    for c in 'a'..='z' {
        v.push(c.to_string(), NORMAL);
        v.push(format!("\u{2581}{c}"), NORMAL);
    }
    pieces(&mut v, "\u{2581}");
    for (name, id) in [("padding", 0), ("unknown", unk), ("bos", cls), ("seperator", sep), ("mask", mask)] {
        v.id(name, id);
    }
    v
}

/// Unigram (`t5`): `<pad>`, `</s>`, `<unk>`, then scored pieces, with the
/// charsmap of [`tiny_charsmap`].
pub fn ugm_vocab() -> ModelVocab {
    let mut v = ModelVocab::new("t5");
    v.push("<pad>", CONTROL);
    let eos = v.push("</s>", CONTROL);
    let unk = v.push("<unk>", UNKNOWN);
    v.push("\u{2581}", NORMAL);
    for c in 'a'..='z' {
        v.push(c.to_string(), NORMAL);
    }
    pieces(&mut v, "\u{2581}");
    let scores: Vec<f32> = (0..v.tokens.len()).map(|i| -(i as f32) / 10.0).collect();
    v.keys.push(("tokenizer.ggml.scores".into(), Value::Array(Array::F32(scores))));
    v.keys.push(("tokenizer.ggml.precompiled_charsmap".into(), Value::Array(Array::U8(tiny_charsmap()))));
    for (name, id) in [("padding", 0), ("eos", eos), ("unknown", unk)] {
        v.id(name, id);
    }
    v
}

/// RWKV world: every byte as its own token (escaped as the RWKV converter
/// does), then a few longer ones.
pub fn rwkv_vocab() -> ModelVocab {
    let mut v = ModelVocab::new("rwkv");
    for b in 0..=255u8 {
        v.push(rwkv_escape(b), NORMAL);
    }
    for piece in ["the", "\\n\\n", "in", "he"] {
        v.push(piece, NORMAL);
    }
    v
}

/// A byte in the RWKV vocabulary's escaped form: printable ASCII as itself,
/// the rest as `\xNN` (lower-case hex, which llama.cpp's unescaper reads).
pub fn rwkv_escape(b: u8) -> String {
    match b {
        b'\\' => "\\\\".to_string(),
        0x21..=0x7e => char::from(b).to_string(),
        _ => format!("\\x{b:02x}"),
    }
}

/// PLaMo-2: special tokens, the 256 byte tokens (type BYTE), then pieces.
pub fn plamo2_vocab() -> ModelVocab {
    let mut v = ModelVocab::new("plamo2");
    v.push("<|plamo:unk|>", UNKNOWN);
    let bos = v.push("<|plamo:bos|>", CONTROL);
    let eos = v.push("<|plamo:eos|>", CONTROL);
    v.push("<|plamo:pad|>", CONTROL);
    for b in 0..=255u8 {
        v.push(format!("<0x{b:02X}>"), BYTE);
    }
    pieces(&mut v, "");
    v.id("bos", bos);
    v.id("eos", eos);
    v
}

/// A valid UGM `precompiled_charsmap`: a 4-byte XCDA size, an XCDA of 512
/// entries that maps "a" to "b", and the replacement strings.
pub fn tiny_charsmap() -> Vec<u8> {
    let mut units = vec![0u32; 512];
    // Root: children of the root live at 256 ^ c.
    units[0] = 256 << 10;
    // 'a' (0x61): a leaf whose replacement index sits at node 1.
    units[0x161] = (0x160 << 10) | (1 << 8) | 0x61;
    let mut out = 2048u32.to_le_bytes().to_vec();
    for u in units {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out.extend_from_slice(b"b\0");
    out
}

/// The tiny llama with its tokenizer replaced by `v`: the tokenizer keys,
/// `llama.vocab_size`, `token_embd.weight` and `output.weight` all follow,
/// and special token ids outside the vocabulary are dropped.
pub fn tiny_llama_with_vocab(v: &ModelVocab) -> GgufWriter {
    let mut w = tiny_llama(&TinyLlamaOpts::default());
    for key in ["merges", "pre", "bos_token_id", "eos_token_id", "padding_token_id", "add_bos_token"] {
        w.remove(&format!("tokenizer.ggml.{key}"));
    }
    w.set("tokenizer.ggml.model", Value::String(v.model.into()));
    for (key, value) in &v.keys {
        w.set(key, value.clone());
    }
    set_tokens(&mut w, v.tokens.clone(), Some(v.token_types.clone()));
    w
}

/// Replaces the token list (and token types, or removes them) and resizes
/// `tokenizer.ggml.scores` (cut, or padded with 0), `llama.vocab_size`,
/// `token_embd.weight` and `output.weight` to match. Special token ids
/// outside the new vocabulary are removed.
pub fn set_tokens(w: &mut GgufWriter, tokens: Vec<String>, types: Option<Vec<i32>>) {
    let n = tokens.len() as u64;
    w.set("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    match types {
        Some(t) => w.set("tokenizer.ggml.token_type", Value::Array(Array::I32(t))),
        None => w.remove("tokenizer.ggml.token_type"),
    };
    if let Some(Value::Array(Array::F32(scores))) = w.get("tokenizer.ggml.scores") {
        let mut scores = scores.clone();
        scores.resize(usize::try_from(n).unwrap_or(0), 0.0);
        w.set("tokenizer.ggml.scores", Value::Array(Array::F32(scores)));
    }
    w.set("llama.vocab_size", Value::U32(u32::try_from(n).unwrap_or(u32::MAX)));
    for name in ["bos", "eos", "eot", "padding", "unknown", "seperator", "mask"] {
        let key = format!("tokenizer.ggml.{name}_token_id");
        if w.get(&key).and_then(Value::as_u64).is_some_and(|id| id >= n) {
            w.remove(&key);
        }
    }
    let e = w.get("llama.embedding_length").and_then(Value::as_u64).unwrap_or(64);
    let mut rng = Rng(n | 1);
    for name in ["token_embd.weight", "output.weight"] {
        w.remove_tensor(name);
        tensor(w, &mut rng, name, &[e, n]);
    }
}
