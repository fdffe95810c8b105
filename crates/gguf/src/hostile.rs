//! A corpus of hostile GGUF files, each derived from the tiny valid llama by
//! one corruption. Every variant must be refused by `read_file` or
//! `validate_model`; the engine also feeds them through the real binary.

use crate::types::{Array, Value};
use crate::writer::{
    plamo2_vocab, rwkv_vocab, set_tokens, spm_vocab, tiny_charsmap, tiny_llama, tiny_llama_with_vocab, ugm_vocab,
    wpm_vocab, GgufWriter, Layout, ModelVocab, TinyLlamaOpts,
};

type Variant = (String, Vec<u8>);

/// All hostile variants as (name, file bytes).
pub fn variants() -> Vec<Variant> {
    let mut out = Vec::new();
    header_variants(&mut out);
    tensor_variants(&mut out);
    truncations(&mut out);
    hparam_variants(&mut out);
    moe_variants(&mut out);
    float_variants(&mut out);
    tokenizer_variants(&mut out);
    model_vocab_variants(&mut out);
    charsmap_variants(&mut out);
    tokenizer_key_type_variants(&mut out);
    out
}

fn base() -> GgufWriter {
    tiny_llama(&TinyLlamaOpts::default())
}

/// Base bytes with one field overwritten.
fn patched(name: &str, bytes: &[u8], pos: usize, new: &[u8]) -> Variant {
    let mut b = bytes.to_vec();
    let end = pos.saturating_add(new.len());
    if let Some(slot) = b.get_mut(pos..end) {
        slot.copy_from_slice(new);
    }
    (name.to_string(), b)
}

/// A variant built by editing the base writer.
fn edited(name: &str, edit: impl FnOnce(&mut GgufWriter)) -> Variant {
    let mut w = base();
    edit(&mut w);
    (name.to_string(), w.to_bytes())
}

fn kv_pos(layout: &Layout, key: &str) -> (usize, usize, usize) {
    layout.kvs.iter().find(|k| k.key == key).map_or((0, 0, 0), |k| (k.start, k.type_pos, k.value_pos))
}

fn header_variants(out: &mut Vec<Variant>) {
    let (b, l) = base().to_bytes_with_layout();
    for magic in [b"GGUG", b"\0\0\0\0", b"GGML", b"FUGG", b"gguf"] {
        out.push(patched(&format!("magic-{}", String::from_utf8_lossy(magic).escape_debug()), &b, 0, magic));
    }
    for v in [0u32, 1, 4, 5, 0x0300_0000, u32::MAX] {
        out.push(patched(&format!("version-{v}"), &b, 4, &v.to_le_bytes()));
    }
    let n_tensors = l.tensors.len() as u64;
    for n in [1u64 << 63, u64::MAX, 1 << 32, n_tensors + 1, n_tensors + 1000] {
        out.push(patched(&format!("tensor-count-{n}"), &b, 8, &n.to_le_bytes()));
    }
    for n in [1u64 << 63, u64::MAX, 1 << 40, l.kvs.len() as u64 + 1000] {
        out.push(patched(&format!("kv-count-{n}"), &b, 16, &n.to_le_bytes()));
    }
    string_variants(out, &b, &l);
    value_type_variants(out, &b, &l);
    alignment_variants(out);
    out.push(edited("duplicate-key", |w| {
        w.add("general.name", Value::String("again".into()));
    }));
    out.push(edited("empty-key", |w| {
        w.add("", Value::U32(1));
    }));
}

fn string_variants(out: &mut Vec<Variant>, b: &[u8], l: &Layout) {
    let size = b.len() as u64;
    let (arch_start, _, _) = kv_pos(l, "general.architecture");
    for len in [size + 1, u64::MAX, 1 << 63, (64 << 20) + 1] {
        out.push(patched(&format!("key-length-{len}"), b, arch_start, &len.to_le_bytes()));
    }
    let (_, _, name_val) = kv_pos(l, "general.name");
    out.push(patched("value-string-length-max", b, name_val, &u64::MAX.to_le_bytes()));
    out.push(patched("value-string-length-past-eof", b, name_val, &size.to_le_bytes()));
    out.push(patched("key-invalid-utf8", b, arch_start + 8, &[0xff]));
    out.push(patched("value-invalid-utf8", b, name_val + 8, &[0xc3, 0x28]));
    if let Some(t) = l.tensors.get(1) {
        out.push(patched("tensor-name-length-max", b, t.start, &u64::MAX.to_le_bytes()));
        out.push(patched("tensor-name-past-eof", b, t.start, &size.to_le_bytes()));
    }
}

fn value_type_variants(out: &mut Vec<Variant>, b: &[u8], l: &Layout) {
    let (_, name_type, _) = kv_pos(l, "general.name");
    for t in [13u32, 99, u32::MAX] {
        out.push(patched(&format!("value-type-{t}"), b, name_type, &t.to_le_bytes()));
    }
    let (_, _, tokens) = kv_pos(l, "tokenizer.ggml.tokens");
    out.push(patched("nested-array", b, tokens, &9u32.to_le_bytes()));
    out.push(patched("array-elem-type-13", b, tokens, &13u32.to_le_bytes()));
    for n in [u64::MAX, 1 << 62, 1_000_000] {
        out.push(patched(&format!("array-length-{n}"), b, tokens + 4, &n.to_le_bytes()));
    }
    let (_, _, add_bos) = kv_pos(l, "tokenizer.ggml.add_bos_token");
    out.push(patched("bool-byte-2", b, add_bos, &[2]));
}

fn alignment_variants(out: &mut Vec<Variant>) {
    let mut w = base();
    w.set("general.alignment", Value::U32(32));
    let (b, l) = w.to_bytes_with_layout();
    let (_, _, pos) = kv_pos(&l, "general.alignment");
    for a in [0u32, 3, 6, 48, 64, 1 << 31] {
        out.push(patched(&format!("alignment-{a}"), &b, pos, &a.to_le_bytes()));
    }
    out.push(edited("alignment-as-u64", |w| {
        w.set("general.alignment", Value::U64(32));
    }));
}

fn tensor_variants(out: &mut Vec<Variant>) {
    let (b, l) = base().to_bytes_with_layout();
    let Some(t) = l.tensors.get(1) else {
        return;
    };
    for n in [0u32, 5, u32::MAX] {
        out.push(patched(&format!("n-dims-{n}"), &b, t.n_dims_pos, &n.to_le_bytes()));
    }
    out.push(patched("dim-zero", &b, t.dims_pos, &0u64.to_le_bytes()));
    out.push(patched("dim-max", &b, t.dims_pos, &u64::MAX.to_le_bytes()));
    if let Some(t2) = l.tensors.iter().find(|t| t.name == "token_embd.weight") {
        let mut dims = (1u64 << 32).to_le_bytes().to_vec();
        dims.extend_from_slice(&(1u64 << 32).to_le_bytes());
        out.push(patched("element-count-overflow", &b, t2.dims_pos, &dims));
        let mut dims = (1u64 << 62).to_le_bytes().to_vec();
        dims.extend_from_slice(&4u64.to_le_bytes());
        out.push(patched("element-count-2^64", &b, t2.dims_pos, &dims));
        let mut dims = (1u64 << 61).to_le_bytes().to_vec();
        dims.extend_from_slice(&1u64.to_le_bytes());
        out.push(patched("byte-size-2^63", &b, t2.dims_pos, &dims));
    }
    for ty in [43u32, 100, u32::MAX, 4, 5, 31, 36] {
        out.push(patched(&format!("ggml-type-{ty}"), &b, t.type_pos, &ty.to_le_bytes()));
    }
    out.push(patched("row-not-block-multiple", &b, t.type_pos, &12u32.to_le_bytes()));
    out.push(patched("type-changes-size", &b, t.type_pos, &1u32.to_le_bytes()));
    offset_variants(out, &b, &l);
    out.push(edited("tensor-name-too-long", |w| {
        w.rename_tensor("output.weight", &"x".repeat(100));
    }));
    out.push(edited("duplicate-tensor-name", |w| {
        w.rename_tensor("output.weight", "token_embd.weight");
    }));
}

fn offset_variants(out: &mut Vec<Variant>, b: &[u8], l: &Layout) {
    let Some(t) = l.tensors.get(2) else {
        return;
    };
    let read = |pos: usize| b.get(pos..pos + 8).and_then(|s| <[u8; 8]>::try_from(s).ok()).map_or(0, u64::from_le_bytes);
    let off = read(t.offset_pos);
    let size = b.len() as u64;
    let cases = [
        ("offset-misaligned", off + 1),
        ("offset-past-eof", size),
        ("offset-max", u64::MAX),
        ("offset-overlap", 0),
        ("offset-gap", off + 32),
        ("offset-near-max-aligned", u64::MAX - 31),
    ];
    for (name, v) in cases {
        out.push(patched(name, b, t.offset_pos, &v.to_le_bytes()));
    }
}

fn truncations(out: &mut Vec<Variant>) {
    let (b, l) = base().to_bytes_with_layout();
    let mut cuts = vec![0, 3, 7, 15, 23, l.data_offset, l.data_offset + 10, b.len() - 1];
    cuts.extend(l.kvs.iter().map(|k| k.value_pos + 1).step_by(5));
    cuts.extend(l.tensors.iter().map(|t| t.type_pos).step_by(4));
    for cut in cuts {
        out.push((format!("truncated-at-{cut}"), b.get(..cut).unwrap_or(&[]).to_vec()));
    }
}

fn set(name: &str, key: &str, value: Value) -> Variant {
    edited(name, |w| {
        w.set(key, value);
    })
}

fn hparam_variants(out: &mut Vec<Variant>) {
    for n in [0u32, 1, 3, 513, 1_000_000_000] {
        out.push(set(&format!("block-count-{n}"), "llama.block_count", Value::U32(n)));
    }
    out.push(set("block-count-string", "llama.block_count", Value::String("2".into())));
    out.push(set("block-count-negative", "llama.block_count", Value::I32(-2)));
    out.push(edited("block-count-missing", |w| {
        w.remove("llama.block_count");
    }));
    for n in [0u32, 3, 8] {
        let name = format!("head-count-kv-{n}");
        out.push(set(&name, "llama.attention.head_count_kv", Value::U32(n)));
    }
    out.push(set("head-count-0", "llama.attention.head_count", Value::U32(0)));
    out.push(set("head-count-1e9", "llama.attention.head_count", Value::U32(1_000_000_000)));
    out.push(set("head-count-array-len", "llama.attention.head_count", Value::Array(Array::U32(vec![4; 3]))));
    for n in [0u64, 32, 1_000_000_000_000] {
        out.push(set(&format!("embedding-length-{n}"), "llama.embedding_length", Value::U64(n)));
    }
    for n in [0u64, 1 << 40] {
        out.push(set(&format!("context-length-{n}"), "llama.context_length", Value::U64(n)));
    }
    out.push(set("ffn-length-2^40", "llama.feed_forward_length", Value::U64(1 << 40)));
    out.push(set("vocab-size-mismatch", "llama.vocab_size", Value::U32(1000)));
    for arch in ["llama5", "", "clip", "LLAMA"] {
        out.push(set(&format!("arch-{arch:?}"), "general.architecture", Value::String(arch.into())));
    }
    out.push(set("arch-int", "general.architecture", Value::U32(1)));
    out.push(edited("arch-missing", |w| {
        w.remove("general.architecture");
    }));
}

fn moe(name: &str, count: Value, used: Value) -> Variant {
    edited(name, |w| {
        w.set("llama.expert_count", count).set("llama.expert_used_count", used);
    })
}

fn moe_variants(out: &mut Vec<Variant>) {
    out.push(moe("expert-count-0-used-2", Value::U32(0), Value::U32(2)));
    out.push(moe("expert-count-1e6", Value::U32(1_000_000), Value::U32(2)));
    out.push(moe("expert-count-u32-max", Value::U32(u32::MAX), Value::U32(2)));
    out.push(moe("expert-used-0", Value::U32(4), Value::U32(0)));
    out.push(moe("expert-used-gt-count", Value::U32(4), Value::U32(8)));
    out.push(moe("expert-used-negative", Value::U32(4), Value::I32(-1)));
    out.push(edited("expert-used-without-count", |w| {
        w.set("llama.expert_used_count", Value::U32(2));
    }));
    out.push(edited("expert-tensor-shape", |w| {
        w.set("llama.expert_count", Value::U32(4)).set("llama.expert_used_count", Value::U32(2)).add_f32(
            "blk.0.ffn_gate_exps.weight",
            &[64, 128, 3],
            &vec![0.0; 64 * 128 * 3],
        );
    }));
    out.push(edited("expert-groups-ge-count", |w| {
        w.set("llama.expert_count", Value::U32(4))
            .set("llama.expert_used_count", Value::U32(2))
            .set("llama.expert_group_count", Value::U32(4));
    }));
}

fn float_variants(out: &mut Vec<Variant>) {
    let eps = "llama.attention.layer_norm_rms_epsilon";
    for (name, v) in
        [("nan", f32::NAN), ("inf", f32::INFINITY), ("neg-inf", f32::NEG_INFINITY), ("negative", -1e-5), ("zero", 0.0)]
    {
        out.push(set(&format!("rms-eps-{name}"), eps, Value::F32(v)));
    }
    for (name, v) in [("nan", f32::NAN), ("zero", 0.0), ("negative", -1.0)] {
        out.push(set(&format!("rope-freq-base-{name}"), "llama.rope.freq_base", Value::F32(v)));
    }
    out.push(set("rope-scale-inf", "llama.rope.scale_linear", Value::F64(f64::INFINITY)));
    out.push(set("rms-eps-string", eps, Value::String("1e-5".into())));
}

fn tokens_with(edit: impl FnOnce(&mut Vec<String>)) -> Value {
    let mut t = crate::writer::tiny_vocab().tokens;
    edit(&mut t);
    Value::Array(Array::String(t))
}

fn types_with(edit: impl FnOnce(&mut Vec<i32>)) -> Value {
    let mut t = crate::writer::tiny_vocab().token_types;
    edit(&mut t);
    Value::Array(Array::I32(t))
}

fn set_index<T: Clone>(v: &mut [T], i: usize, x: T) {
    if let Some(slot) = v.get_mut(i) {
        *slot = x;
    }
}

fn tokenizer_variants(out: &mut Vec<Variant>) {
    token_list_variants(out);
    token_type_variants(out);
    special_id_variants(out);
    merge_variants(out);
}

fn token_list_variants(out: &mut Vec<Variant>) {
    let key = "tokenizer.ggml.tokens";
    let dup = tokens_with(|t| set_index(t, 10, "a".to_string()));
    out.push(set("duplicate-token", key, dup));
    out.push(set("token-with-nul", key, tokens_with(|t| set_index(t, 20, "a\0b".to_string()))));
    out.push(set("empty-token", key, tokens_with(|t| set_index(t, 30, String::new()))));
    out.push(set("tokens-empty", key, Value::Array(Array::String(Vec::new()))));
    out.push(set("tokens-wrong-type", key, Value::Array(Array::U32(vec![1, 2, 3]))));
    out.push(set("tokens-scalar", key, Value::String("a".into())));
    out.push(edited("tokens-missing", |w| {
        w.remove(key);
    }));
    out.push(set("tokenizer-model-unknown", "tokenizer.ggml.model", Value::String("sentencepiece".into())));
    out.push(edited("tokenizer-model-missing", |w| {
        w.remove("tokenizer.ggml.model");
    }));
    out.push(set("scores-short", "tokenizer.ggml.scores", Value::Array(Array::F32(vec![0.0; 10]))));
    out.push(set("scores-wrong-type", "tokenizer.ggml.scores", Value::Array(Array::String(vec!["0".into()]))));
}

fn token_type_variants(out: &mut Vec<Variant>) {
    let key = "tokenizer.ggml.token_type";
    for ty in [7, -1, 1000] {
        out.push(set(&format!("token-type-{ty}"), key, types_with(|t| set_index(t, 5, ty))));
    }
    out.push(set("token-type-short", key, types_with(|t| t.truncate(100))));
    out.push(set("token-type-wrong-elem", key, Value::Array(Array::U8(vec![1; 300]))));
    out.push(set("byte-token-not-hex-form", key, types_with(|t| set_index(t, 0, 6))));
    for (name, text) in [("zz", "<0xZZ>"), ("short", "<0x4>"), ("long", "<0x41>>")] {
        out.push(edited(&format!("byte-token-{name}"), |w| {
            w.set("tokenizer.ggml.tokens", tokens_with(|t| set_index(t, 0, text.to_string())))
                .set(key, types_with(|t| set_index(t, 0, 6)));
        }));
    }
}

fn special_id_variants(out: &mut Vec<Variant>) {
    let n = crate::writer::tiny_vocab().tokens.len() as u32;
    let cases = [
        ("bos-eq-vocab", "bos", Value::U32(n)),
        ("eos-u32-max", "eos", Value::U32(u32::MAX)),
        ("padding-negative", "padding", Value::I32(-1)),
        ("eot-1e9", "eot", Value::U64(1_000_000_000)),
        ("unknown-string", "unknown", Value::String("0".into())),
    ];
    for (name, which, v) in cases {
        out.push(set(&format!("special-{name}"), &format!("tokenizer.ggml.{which}_token_id"), v));
    }
}

fn merge_variants(out: &mut Vec<Variant>) {
    let key = "tokenizer.ggml.merges";
    for (name, m) in [("no-space", "ab"), ("leading-space", " a"), ("trailing-space", "a "), ("empty", "")] {
        let mut merges = crate::writer::tiny_vocab().merges;
        set_index(&mut merges, 3, m.to_string());
        out.push(set(&format!("merge-{name}"), key, Value::Array(Array::String(merges))));
    }
    out.push(edited("merges-missing", |w| {
        w.remove(key);
    }));
    out.push(set("merges-wrong-type", key, Value::Array(Array::I32(vec![1]))));
}

/// The tiny llama with one of the other tokenizer models' vocabularies,
/// edited.
fn with_vocab(name: &str, mut v: ModelVocab, edit: impl FnOnce(&mut ModelVocab)) -> Variant {
    edit(&mut v);
    (name.to_string(), tiny_llama_with_vocab(&v).to_bytes())
}

fn retype(v: &mut ModelVocab, i: usize, text: &str, ty: i32) {
    set_index(&mut v.tokens, i, text.to_string());
    set_index(&mut v.token_types, i, ty);
}

/// Vocabularies llama.cpp's loader or tokenizers throw, assert or abort on.
fn model_vocab_variants(out: &mut Vec<Variant>) {
    let is_byte = |v: &ModelVocab, i: usize| v.token_types.get(i) == Some(&6);
    out.push(with_vocab("vocab-spm-one-token", spm_vocab(), |v| {
        v.tokens.truncate(1);
        v.token_types.truncate(1);
    }));
    out.push(with_vocab("vocab-spm-no-byte-tokens", spm_vocab(), |v| {
        let keep: Vec<bool> = (0..v.tokens.len()).map(|i| !is_byte(v, i)).collect();
        v.tokens = v.tokens.iter().zip(&keep).filter(|(_, &k)| k).map(|(t, _)| t.clone()).collect();
        v.token_types.retain(|&t| t != 6);
    }));
    out.push(with_vocab("vocab-spm-lower-case-byte-tokens", spm_vocab(), |v| {
        v.tokens.iter_mut().filter(|t| t.starts_with("<0x")).for_each(|t| *t = t.to_lowercase());
    }));
    out.push(with_vocab("vocab-empty-token-renamed-duplicate", spm_vocab(), |v| {
        retype(v, 260, "", 1);
        retype(v, 261, "[EMPTY_260]", 1);
    }));
    out.push(with_vocab("vocab-bert-byte-token", wpm_vocab(), |v| retype(v, 5, "<0x41>", 6)));
    out.push(with_vocab("vocab-bert-without-separator", wpm_vocab(), |v| {
        v.keys.retain(|(k, _)| !k.contains("seperator"));
    }));
    out.push(with_vocab("vocab-t5-two-tokens", ugm_vocab(), |v| {
        v.tokens.truncate(2);
        v.token_types.truncate(2);
    }));
    out.push(with_vocab("vocab-plamo2-missing-byte-token", plamo2_vocab(), |v| retype(v, 4 + 0x41, "A", 1)));
    out.push(with_vocab("vocab-plamo2-byte-token-at-id-0", plamo2_vocab(), |v| {
        v.tokens.swap(0, 4);
        v.token_types.swap(0, 4);
    }));
    out.push(with_vocab("vocab-rwkv-prefix-byte-not-a-token", rwkv_vocab(), |v| retype(v, 10, "nl", 1)));
    out.push(edited("vocab-gpt2-add-bos-without-bos", |w| {
        let tokens = ["a", "b", "c", "d"].map(String::from).to_vec();
        set_tokens(w, tokens, None);
        w.set("tokenizer.ggml.merges", Value::Array(Array::String(vec!["a b".into()])));
        w.set("tokenizer.ggml.add_bos_token", Value::Bool(true));
    }));
    out.push(edited("vocab-gemma4-without-bos", |w| {
        w.set("tokenizer.ggml.model", Value::String("gemma4".into())).remove("tokenizer.ggml.bos_token_id");
    }));
    out.push(edited("vocab-gemma4-kimi-k2-without-merges", |w| {
        w.set("tokenizer.ggml.model", Value::String("gemma4".into()))
            .set("tokenizer.ggml.pre", Value::String("kimi-k2".into()))
            .remove("tokenizer.ggml.merges");
    }));
    out.push(set("vocab-phi3-without-its-tokens", "general.name", Value::String("Phi-3 mini".into())));
    out.push(set("vocab-pre-unknown", "tokenizer.ggml.pre", Value::String("nonesuch".into())));
    for model in ["none", "no_vocab"] {
        out.push(set(&format!("vocab-tokenizer-{model}"), "tokenizer.ggml.model", Value::String(model.into())));
    }
}

fn t5_charsmap(name: &str, charsmap: Array) -> Variant {
    with_vocab(name, ugm_vocab(), |v| {
        v.keys.retain(|(k, _)| k != "tokenizer.ggml.precompiled_charsmap");
        v.keys.push(("tokenizer.ggml.precompiled_charsmap".into(), Value::Array(charsmap)));
    })
}

/// UGM charsmaps llama.cpp throws on while loading or tokenizing.
fn charsmap_variants(out: &mut Vec<Variant>) {
    let good = tiny_charsmap();
    let patched = |pos: usize, new: &[u8]| {
        let mut b = good.clone();
        if let Some(slot) = b.get_mut(pos..pos + new.len()) {
            slot.copy_from_slice(new);
        }
        Array::U8(b)
    };
    let unit = |i: usize| 4 + 4 * i;
    out.push(t5_charsmap("charsmap-short", Array::U8(vec![1, 0, 0])));
    out.push(t5_charsmap("charsmap-xcda-too-big", patched(0, &(good.len() as u32).to_le_bytes())));
    out.push(t5_charsmap("charsmap-root-out-of-range", patched(unit(0), &(0x300u32 << 10).to_le_bytes())));
    out.push(t5_charsmap("charsmap-replacement-past-end", patched(unit(1), &1000u32.to_le_bytes())));
    out.push(t5_charsmap("charsmap-unterminated", patched(good.len() - 1, b"c")));
    out.push(t5_charsmap("charsmap-wrong-type", Array::I32(vec![0; 8])));
}

/// Tokenizer keys whose GGUF type llama.cpp's get_key refuses.
fn tokenizer_key_type_variants(out: &mut Vec<Variant>) {
    let cases = [
        ("bos-id-i32", "tokenizer.ggml.bos_token_id", Value::I32(5)),
        ("add-bos-u8", "tokenizer.ggml.add_bos_token", Value::U8(1)),
        ("pre-u32", "tokenizer.ggml.pre", Value::U32(1)),
        ("name-u32", "general.name", Value::U32(1)),
        ("token-type-count-u64", "tokenizer.ggml.token_type_count", Value::U64(2)),
        ("suppress-tokens-u32", "tokenizer.ggml.suppress_tokens", Value::Array(Array::U32(vec![1]))),
    ];
    for (name, key, value) in cases {
        out.push(set(&format!("vocab-key-type-{name}"), key, value));
    }
}
