//! A tiny llama-architecture model with a GPT-2 style byte-level BPE
//! vocabulary, small enough to write in milliseconds and complete enough for
//! llama.cpp to load and generate from.

use crate::types::{Array, Value};
use crate::writer::{GgufWriter, TinyLlamaOpts};

/// ChatML, as used by Qwen-style models.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Merges over GPT-2 byte-level symbols ('Ġ' is the space byte). Later
/// entries may use the results of earlier ones.
const MERGES: &[&str] = &[
    "Ġ t", "Ġ a", "h e", "i n", "r e", "o n", "Ġt he", "e r", "Ġ s", "a t", "Ġ w", "Ġ o", "e n", "Ġ c", "i t", "i s",
    "a n", "o r", "e s", "Ġ b", "e d", "Ġ f", "in g", "Ġ p", "o u", "Ġ m", "a r", "a l", "Ġ d", "l e", "Ġ h", "i c",
    "Ġ i", "o m", "r o", "l l", "a s", "Ġ l", "Ġ n", "e l", "Ġ g",
];

const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

const TOKEN_TYPE_NORMAL: i32 = 1;
const TOKEN_TYPE_CONTROL: i32 = 3;

/// The tiny vocabulary: tokens, their types, and the merges.
#[derive(Debug, Clone)]
pub struct TinyVocab {
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    pub merges: Vec<String>,
    pub bos: u32,
    pub eos: u32,
}

/// GPT-2's reversible byte-to-character map: printable Latin-1 bytes map to
/// themselves, the rest to code points from 256 upward, so every byte has a
/// visible, whitespace-free symbol.
fn byte_to_char(b: u8) -> char {
    let printable = |x: u8| matches!(x, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + rank).unwrap_or('?')
}

/// Builds the byte tokens, merge results and special tokens.
pub fn tiny_vocab() -> TinyVocab {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_to_char(b).to_string()).collect();
    for m in MERGES {
        tokens.push(m.replace(' ', ""));
    }
    let n_normal = tokens.len();
    tokens.extend(SPECIALS.iter().map(|s| s.to_string()));
    let mut token_types = vec![TOKEN_TYPE_NORMAL; n_normal];
    token_types.extend([TOKEN_TYPE_CONTROL; SPECIALS.len()]);
    let bos = n_normal as u32;
    TinyVocab { tokens, token_types, merges: MERGES.iter().map(|s| s.to_string()).collect(), bos, eos: bos + 2 }
}

/// Deterministic xorshift64* weights, uniform in (-scale, scale).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next_f32(&mut self, scale: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let unit = (r >> 40) as f32 / (1u64 << 24) as f32;
        (unit * 2.0 - 1.0) * scale
    }

    pub(crate) fn fill(&mut self, n: u64, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32(scale)).collect()
    }

    /// Like `fill`, straight to little-endian F16 bytes: large tensors then
    /// never exist as f32 in memory.
    pub(crate) fn fill_f16(&mut self, n: u64, scale: f32) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(n.saturating_mul(2)).unwrap_or(0));
        for _ in 0..n {
            out.extend_from_slice(&crate::writer::f32_to_f16(self.next_f32(scale)).to_le_bytes());
        }
        out
    }
}

/// A complete llama model file (not yet serialised).
pub fn tiny_llama(opts: &TinyLlamaOpts) -> GgufWriter {
    let vocab = tiny_vocab();
    let mut w = GgufWriter::new();
    add_hparams(&mut w, opts, vocab.tokens.len() as u64);
    add_tokenizer(&mut w, &vocab);
    add_tensors(&mut w, opts, vocab.tokens.len() as u64);
    w
}

pub(crate) fn u32v(v: u64) -> Value {
    Value::U32(u32::try_from(v).unwrap_or(u32::MAX))
}

fn add_hparams(w: &mut GgufWriter, o: &TinyLlamaOpts, n_vocab: u64) {
    let head_dim = o.n_embd / o.n_head.max(1);
    w.add("general.architecture", Value::String("llama".into()))
        .add("general.name", Value::String("tiny-llama".into()))
        .add("general.file_type", Value::U32(0))
        .add("llama.block_count", u32v(o.n_layer))
        .add("llama.context_length", u32v(o.n_ctx))
        .add("llama.embedding_length", u32v(o.n_embd))
        .add("llama.feed_forward_length", u32v(o.n_ff))
        .add("llama.attention.head_count", u32v(o.n_head))
        .add("llama.attention.head_count_kv", u32v(o.n_head_kv))
        .add("llama.rope.dimension_count", u32v(head_dim))
        .add("llama.rope.freq_base", Value::F32(10000.0))
        .add("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .add("llama.vocab_size", u32v(n_vocab));
    if let Some(moe) = o.moe {
        w.add("llama.expert_count", u32v(moe.n_expert)).add("llama.expert_used_count", u32v(moe.n_expert_used));
    }
}

pub(crate) fn add_tokenizer(w: &mut GgufWriter, v: &TinyVocab) {
    w.add("tokenizer.ggml.model", Value::String("gpt2".into()))
        .add("tokenizer.ggml.pre", Value::String("default".into()))
        .add("tokenizer.ggml.tokens", Value::Array(Array::String(v.tokens.clone())))
        .add("tokenizer.ggml.token_type", Value::Array(Array::I32(v.token_types.clone())))
        .add("tokenizer.ggml.merges", Value::Array(Array::String(v.merges.clone())))
        .add("tokenizer.ggml.bos_token_id", Value::U32(v.bos))
        .add("tokenizer.ggml.eos_token_id", Value::U32(v.eos))
        .add("tokenizer.ggml.padding_token_id", Value::U32(v.bos))
        .add("tokenizer.ggml.add_bos_token", Value::Bool(false))
        .add("tokenizer.chat_template", Value::String(CHATML_TEMPLATE.into()));
}

fn add_tensors(w: &mut GgufWriter, o: &TinyLlamaOpts, n_vocab: u64) {
    let mut rng = Rng(o.seed | 1);
    let e = o.n_embd;
    tensor(w, &mut rng, "token_embd.weight", &[e, n_vocab]);
    for l in 0..o.n_layer {
        add_layer(w, &mut rng, o, &format!("blk.{l}"));
    }
    w.add_f32("output_norm.weight", &[e], &ones(e));
    w.add_f32("output.weight", &[e, n_vocab], &output_weights(&mut rng, e, n_vocab));
}

/// Random output projection with zero rows for the special tokens: their
/// logits are then exactly 0 while hundreds of random logits compete, so
/// greedy decoding keeps generating instead of stopping at once on an EOG.
pub(crate) fn output_weights(rng: &mut Rng, e: u64, n_vocab: u64) -> Vec<f32> {
    let mut data = rng.fill(e.saturating_mul(n_vocab), 0.08);
    let first_special = n_vocab.saturating_sub(SPECIALS.len() as u64);
    let start = usize::try_from(first_special.saturating_mul(e)).unwrap_or(usize::MAX);
    if let Some(rows) = data.get_mut(start..) {
        rows.fill(0.0);
    }
    data
}

pub(crate) fn ones(n: u64) -> Vec<f32> {
    vec![1.0; usize::try_from(n).unwrap_or(0)]
}

fn add_layer(w: &mut GgufWriter, rng: &mut Rng, o: &TinyLlamaOpts, p: &str) {
    let e = o.n_embd;
    let head_dim = e / o.n_head.max(1);
    let q = head_dim.saturating_mul(o.n_head);
    let kv = head_dim.saturating_mul(o.n_head_kv);
    w.add_f32(&format!("{p}.attn_norm.weight"), &[e], &ones(e));
    tensor(w, rng, &format!("{p}.attn_q.weight"), &[e, q]);
    tensor(w, rng, &format!("{p}.attn_k.weight"), &[e, kv]);
    tensor(w, rng, &format!("{p}.attn_v.weight"), &[e, kv]);
    tensor(w, rng, &format!("{p}.attn_output.weight"), &[q, e]);
    w.add_f32(&format!("{p}.ffn_norm.weight"), &[e], &ones(e));
    match o.moe {
        None => {
            tensor(w, rng, &format!("{p}.ffn_gate.weight"), &[e, o.n_ff]);
            tensor(w, rng, &format!("{p}.ffn_down.weight"), &[o.n_ff, e]);
            tensor(w, rng, &format!("{p}.ffn_up.weight"), &[e, o.n_ff]);
        }
        Some(moe) => add_experts(w, rng, p, [e, o.n_ff, moe.n_expert]),
    }
}

pub(crate) fn tensor(w: &mut GgufWriter, rng: &mut Rng, name: &str, dims: &[u64]) {
    let n = dims.iter().fold(1u64, |a, &d| a.saturating_mul(d));
    let data = rng.fill(n, 0.08);
    w.add_f32(name, dims, &data);
}

/// Router plus stacked expert matrices; the expert index is the last dim.
fn add_experts(w: &mut GgufWriter, rng: &mut Rng, p: &str, [e, ff, n]: [u64; 3]) {
    tensor(w, rng, &format!("{p}.ffn_gate_inp.weight"), &[e, n]);
    tensor(w, rng, &format!("{p}.ffn_gate_exps.weight"), &[e, ff, n]);
    tensor(w, rng, &format!("{p}.ffn_down_exps.weight"), &[ff, e, n]);
    tensor(w, rng, &format!("{p}.ffn_up_exps.weight"), &[e, ff, n]);
}
