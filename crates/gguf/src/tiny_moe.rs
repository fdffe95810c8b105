//! A synthetic qwen3moe model: random weights in the tensor layout llama.cpp
//! expects for that architecture (`src/models/qwen3moe.cpp`), large enough
//! that the routed experts dominate decode time. Tests use it to show that
//! `qwen3moe.expert_used_count` overrides reach the loaded model and change
//! its speed; it is written at test time, never committed.

use crate::tiny::{add_tokenizer, ones, output_weights, tensor, tiny_vocab, u32v, Rng};
use crate::types::{GgmlType, Value};
use crate::writer::GgufWriter;

const ARCH: &str = "qwen3moe";

/// Shape of the synthetic qwen3moe model. The default is about 100 MB: 4
/// layers of 64 experts (8 used) with 256x256 F16 expert matrices, so with 8
/// experts used about 90% of the weights read per token are expert weights.
#[derive(Debug, Clone)]
pub struct TinyQwen3MoeOpts {
    pub n_embd: u64,
    pub n_layer: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    /// Hidden size of one expert (`expert_feed_forward_length`).
    pub n_ff_exp: u64,
    pub n_expert: u64,
    pub n_expert_used: u64,
    pub n_ctx: u64,
    /// Seed of the deterministic weight generator.
    pub seed: u64,
}

impl Default for TinyQwen3MoeOpts {
    fn default() -> Self {
        TinyQwen3MoeOpts {
            n_embd: 256,
            n_layer: 4,
            n_head: 4,
            n_head_kv: 1,
            n_ff_exp: 256,
            n_expert: 64,
            n_expert_used: 8,
            n_ctx: 4096,
            seed: 0x3e3e,
        }
    }
}

impl TinyQwen3MoeOpts {
    fn head_dim(&self) -> u64 {
        self.n_embd / self.n_head.max(1)
    }
}

/// A complete qwen3moe model file (not yet serialised). Matrices are F16 to
/// halve the file; norms, the router and the output head stay F32.
pub fn tiny_qwen3moe(opts: &TinyQwen3MoeOpts) -> GgufWriter {
    let vocab = tiny_vocab();
    let n_vocab = vocab.tokens.len() as u64;
    let mut w = GgufWriter::new();
    add_hparams(&mut w, opts, n_vocab);
    add_tokenizer(&mut w, &vocab);
    let mut rng = Rng(opts.seed | 1);
    let e = opts.n_embd;
    tensor(&mut w, &mut rng, "token_embd.weight", &[e, n_vocab]);
    for l in 0..opts.n_layer {
        add_layer(&mut w, &mut rng, opts, &format!("blk.{l}"));
    }
    w.add_f32("output_norm.weight", &[e], &ones(e));
    w.add_f32("output.weight", &[e, n_vocab], &output_weights(&mut rng, e, n_vocab));
    w
}

fn add_hparams(w: &mut GgufWriter, o: &TinyQwen3MoeOpts, n_vocab: u64) {
    let key = |k: &str| format!("{ARCH}.{k}");
    w.add("general.architecture", Value::String(ARCH.into()))
        .add("general.name", Value::String("tiny-qwen3moe".into()))
        .add("general.file_type", Value::U32(1))
        .add(&key("block_count"), u32v(o.n_layer))
        .add(&key("context_length"), u32v(o.n_ctx))
        .add(&key("embedding_length"), u32v(o.n_embd))
        .add(&key("feed_forward_length"), u32v(o.n_ff_exp))
        // Explicit, because without it llama.cpp derives the expert size as
        // feed_forward_length / expert_used_count, and an override of the
        // used count would then change the tensor shapes it expects.
        .add(&key("expert_feed_forward_length"), u32v(o.n_ff_exp))
        .add(&key("expert_count"), u32v(o.n_expert))
        .add(&key("expert_used_count"), u32v(o.n_expert_used))
        .add(&key("attention.head_count"), u32v(o.n_head))
        .add(&key("attention.head_count_kv"), u32v(o.n_head_kv))
        .add(&key("attention.key_length"), u32v(o.head_dim()))
        .add(&key("attention.value_length"), u32v(o.head_dim()))
        .add(&key("rope.dimension_count"), u32v(o.head_dim()))
        .add(&key("rope.freq_base"), Value::F32(10000.0))
        .add(&key("attention.layer_norm_rms_epsilon"), Value::F32(1e-6))
        .add(&key("vocab_size"), u32v(n_vocab));
}

fn f16_tensor(w: &mut GgufWriter, rng: &mut Rng, name: &str, dims: &[u64]) {
    let n = dims.iter().fold(1u64, |a, &d| a.saturating_mul(d));
    w.add_raw(name, dims, GgmlType::F16.id(), rng.fill_f16(n, 0.08));
}

fn add_layer(w: &mut GgufWriter, rng: &mut Rng, o: &TinyQwen3MoeOpts, p: &str) {
    let (e, hd) = (o.n_embd, o.head_dim());
    let q = hd.saturating_mul(o.n_head);
    let kv = hd.saturating_mul(o.n_head_kv);
    w.add_f32(&format!("{p}.attn_norm.weight"), &[e], &ones(e));
    f16_tensor(w, rng, &format!("{p}.attn_q.weight"), &[e, q]);
    f16_tensor(w, rng, &format!("{p}.attn_k.weight"), &[e, kv]);
    f16_tensor(w, rng, &format!("{p}.attn_v.weight"), &[e, kv]);
    f16_tensor(w, rng, &format!("{p}.attn_output.weight"), &[q, e]);
    w.add_f32(&format!("{p}.attn_q_norm.weight"), &[hd], &ones(hd));
    w.add_f32(&format!("{p}.attn_k_norm.weight"), &[hd], &ones(hd));
    w.add_f32(&format!("{p}.ffn_norm.weight"), &[e], &ones(e));
    // The router: F32 so expert choice is not blurred by rounding.
    tensor(w, rng, &format!("{p}.ffn_gate_inp.weight"), &[e, o.n_expert]);
    // Stacked experts; the expert index is the last dim.
    let (ff, n) = (o.n_ff_exp, o.n_expert);
    f16_tensor(w, rng, &format!("{p}.ffn_gate_exps.weight"), &[e, ff, n]);
    f16_tensor(w, rng, &format!("{p}.ffn_down_exps.weight"), &[ff, e, n]);
    f16_tensor(w, rng, &format!("{p}.ffn_up_exps.weight"), &[e, ff, n]);
}
