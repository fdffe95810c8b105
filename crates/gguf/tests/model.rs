//! Model validator, overrides and the hostile corpus.

use std::io::Cursor;

use augur_gguf::writer::{tiny_llama, tiny_qwen3moe, GgufWriter, TinyLlamaOpts, TinyMoe, TinyQwen3MoeOpts};
use augur_gguf::{
    hostile, parse, validate_model, Array, GgufFile, MetaOverride, ModelError, OverrideError, OverrideValue, Value,
    SUPPORTED_ARCHS,
};

fn parsed(w: &GgufWriter) -> GgufFile {
    let b = w.to_bytes();
    parse(Cursor::new(&b), b.len() as u64).unwrap()
}

fn base() -> GgufWriter {
    tiny_llama(&TinyLlamaOpts::default())
}

fn refusal(w: &GgufWriter) -> ModelError {
    validate_model(&parsed(w), &[]).unwrap_err()
}

fn ov(s: &str) -> MetaOverride {
    MetaOverride::parse(s).unwrap()
}

#[test]
fn tiny_llama_is_valid() {
    validate_model(&parsed(&base()), &[]).unwrap();
    let opts = TinyLlamaOpts { n_layer: 4, n_head: 8, n_head_kv: 8, seed: 9, ..TinyLlamaOpts::default() };
    validate_model(&parsed(&tiny_llama(&opts)), &[]).unwrap();
    let small = TinyLlamaOpts { n_embd: 8, n_layer: 1, n_head: 2, n_head_kv: 1, n_ff: 16, ..TinyLlamaOpts::default() };
    validate_model(&parsed(&tiny_llama(&small)), &[]).unwrap();
}

#[test]
fn tiny_vocab_shape() {
    let v = augur_gguf::writer::tiny_vocab();
    assert_eq!(v.tokens.len(), 300);
    assert_eq!(v.tokens[32], "Ġ");
    assert_eq!(v.tokens[10], "Ċ");
    assert_eq!(v.tokens[65], "A");
    assert_eq!(v.tokens[v.eos as usize], "<|im_end|>");
    assert_eq!(v.tokens[v.bos as usize], "<|endoftext|>");
}

#[test]
fn refusals_name_key_and_value() {
    let mut w = base();
    w.set("llama.block_count", Value::U32(1_000_000_000));
    let msg = refusal(&w).to_string();
    assert!(msg.contains("llama.block_count") && msg.contains("1000000000"), "{msg}");

    let mut w = base();
    w.set("llama.attention.head_count_kv", Value::U32(3));
    let msg = refusal(&w).to_string();
    assert!(msg.contains("head_count_kv") && msg.contains('3'), "{msg}");

    let mut w = base();
    w.set("llama.attention.layer_norm_rms_epsilon", Value::F32(f32::NAN));
    let msg = refusal(&w).to_string();
    assert!(msg.contains("layer_norm_rms_epsilon") && msg.contains("NaN"), "{msg}");

    let mut w = base();
    w.set("general.architecture", Value::String("llama9".into()));
    assert!(matches!(refusal(&w), ModelError::UnknownArch { arch } if arch == "llama9"));

    let mut w = base();
    w.remove("llama.context_length");
    assert!(matches!(refusal(&w), ModelError::MissingKey { key } if key == "llama.context_length"));
}

#[test]
fn overrides_are_applied_before_checks() {
    let f = parsed(&base());
    let e = validate_model(&f, &[ov("llama.expert_used_count=int:4")]).unwrap_err();
    assert!(e.to_string().contains("llama.expert_used_count"), "{e}");
    let e = validate_model(&f, &[ov("llama.block_count=int:0")]).unwrap_err();
    assert!(e.to_string().contains("llama.block_count"), "{e}");
    let e = validate_model(&f, &[ov("llama.rope.freq_base=float:-1")]).unwrap_err();
    assert!(e.to_string().contains("freq_base"), "{e}");
    validate_model(&f, &[ov("llama.context_length=int:128"), ov("tokenizer.ggml.add_bos_token=bool:true")]).unwrap();
    let mut w = base();
    w.set("llama.attention.head_count_kv", Value::U32(3));
    validate_model(&parsed(&w), &[ov("llama.attention.head_count_kv=int:2")]).unwrap();
}

#[test]
fn per_layer_arrays_are_understood() {
    let mut w = base();
    w.set("llama.attention.head_count_kv", Value::Array(Array::I32(vec![2, 4])));
    w.set("llama.feed_forward_length", Value::Array(Array::U32(vec![128, 128])));
    validate_model(&parsed(&w), &[]).unwrap();
    w.set("llama.attention.head_count_kv", Value::Array(Array::I32(vec![2, 3])));
    assert!(refusal(&w).to_string().contains("head_count_kv"));
}

#[test]
fn tiny_moe_is_valid_and_overrides_are_checked() {
    let moe = TinyMoe { n_expert: 4, n_expert_used: 2 };
    let f = parsed(&tiny_llama(&TinyLlamaOpts { moe: Some(moe), ..TinyLlamaOpts::default() }));
    assert_eq!(f.get_u64("llama.expert_count"), Some(4));
    assert!(f.tensors.iter().any(|t| t.name == "blk.1.ffn_down_exps.weight" && t.dims == [128, 64, 4]));
    validate_model(&f, &[]).unwrap();
    validate_model(&f, &[ov("llama.expert_used_count=int:4")]).unwrap();
    for bad in ["llama.expert_used_count=int:5", "llama.expert_used_count=int:0", "llama.expert_count=int:2"] {
        assert!(validate_model(&f, &[ov(bad)]).is_err(), "{bad}");
    }
}

/// A small qwen3moe (the default shape is ~100 MB, for timing tests).
fn small_qwen3moe() -> GgufWriter {
    let opts =
        TinyQwen3MoeOpts { n_embd: 32, n_layer: 2, n_ff_exp: 16, n_expert: 8, n_expert_used: 2, ..Default::default() };
    tiny_qwen3moe(&opts)
}

#[test]
fn tiny_qwen3moe_is_valid_and_has_the_qwen3moe_layout() {
    let f = parsed(&small_qwen3moe());
    validate_model(&f, &[]).unwrap();
    assert_eq!(f.arch(), Some("qwen3moe"));
    assert_eq!(f.get_u64("qwen3moe.expert_count"), Some(8));
    assert_eq!(f.get_u64("qwen3moe.expert_feed_forward_length"), Some(16));
    let dims = |name: &str| f.tensors.iter().find(|t| t.name == name).map(|t| t.dims.clone());
    assert_eq!(dims("blk.1.ffn_gate_inp.weight"), Some(vec![32, 8]));
    assert_eq!(dims("blk.1.ffn_down_exps.weight"), Some(vec![16, 32, 8]));
    assert_eq!(dims("blk.0.attn_k_norm.weight"), Some(vec![8]));
    for n in 1..=8 {
        validate_model(&f, &[ov(&format!("qwen3moe.expert_used_count=int:{n}"))]).unwrap();
    }
    for bad in ["qwen3moe.expert_used_count=int:9", "qwen3moe.expert_used_count=int:0"] {
        assert!(validate_model(&f, &[ov(bad)]).is_err(), "{bad}");
    }
}

#[test]
fn streamed_and_in_memory_files_are_identical() {
    let w = small_qwen3moe();
    let mut streamed = Vec::new();
    w.write_stream(&mut streamed).unwrap();
    assert_eq!(streamed, w.to_bytes());
}

/// llama.cpp reads expert_used_count with get_key_or_arr, which ignores an
/// override when the file lacks the key or stores it per layer; accepting
/// such an override would serve the file's count (or, for a missing key,
/// abort in llama.cpp's hparams asserts).
#[test]
fn per_layer_overrides_that_llama_cpp_would_ignore_are_refused() {
    let mut w = small_qwen3moe();
    w.remove("qwen3moe.expert_used_count");
    let e = validate_model(&parsed(&w), &[ov("qwen3moe.expert_used_count=int:2")]).unwrap_err();
    assert!(e.to_string().contains("does not set it"), "{e}");
    w.set("qwen3moe.expert_used_count", Value::Array(Array::U32(vec![2, 2])));
    validate_model(&parsed(&w), &[]).unwrap();
    let e = validate_model(&parsed(&w), &[ov("qwen3moe.expert_used_count=int:1")]).unwrap_err();
    assert!(e.to_string().contains("per layer"), "{e}");
}

#[test]
fn moe_counts() {
    let mut w = base();
    w.set("llama.expert_count", Value::U32(4)).set("llama.expert_used_count", Value::U32(2));
    w.add_f32("blk.0.ffn_gate_exps.weight", &[64, 128, 4], &vec![0.0; 64 * 128 * 4]);
    validate_model(&parsed(&w), &[]).unwrap();
    let e = validate_model(&parsed(&w), &[ov("llama.expert_used_count=int:5")]).unwrap_err();
    assert!(e.to_string().contains("exceeds"), "{e}");
    let e = validate_model(&parsed(&w), &[ov("llama.expert_count=int:8"), ov("llama.expert_used_count=int:2")])
        .unwrap_err();
    assert!(e.to_string().contains("ffn_gate_exps"), "{e}");
}

#[test]
fn spm_byte_tokens_are_checked() {
    let mut w = base();
    let mut tokens = augur_gguf::writer::tiny_vocab().tokens;
    let mut types = augur_gguf::writer::tiny_vocab().token_types;
    tokens[0] = "<0x0A>".into();
    types[0] = 6;
    w.set("tokenizer.ggml.tokens", Value::Array(Array::String(tokens.clone())));
    w.set("tokenizer.ggml.token_type", Value::Array(Array::I32(types.clone())));
    validate_model(&parsed(&w), &[]).unwrap();
    tokens[0] = "<0xG0>".into();
    w.set("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    assert!(refusal(&w).to_string().contains("<0xNN>"));
}

#[test]
fn every_supported_arch_name_is_unique() {
    let mut names = SUPPORTED_ARCHS.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), SUPPORTED_ARCHS.len());
    assert!(SUPPORTED_ARCHS.contains(&"qwen2moe") && !SUPPORTED_ARCHS.contains(&"clip"));
}

#[test]
fn override_parsing() {
    assert_eq!(
        ov("qwen2moe.expert_used_count=int:4"),
        MetaOverride { key: "qwen2moe.expert_used_count".into(), value: OverrideValue::Int(4) }
    );
    assert_eq!(ov("a.b=float:0.5").value, OverrideValue::Float(0.5));
    assert_eq!(ov("a.b=bool:false").value, OverrideValue::Bool(false));
    assert_eq!(ov("a.b=str:hello world").value, OverrideValue::Str("hello world".into()));
    assert_eq!(ov("a.b=str:x=y:z").value, OverrideValue::Str("x=y:z".into()));
    let bad = [
        "noequals",
        "=int:1",
        "a b=int:1",
        "a.b=int",
        "a.b=long:1",
        "a.b=int:1.5",
        "a.b=int:99999999999999999999",
        "a.b=float:nan",
        "a.b=float:inf",
        "a.b=bool:yes",
        "a.b=str:caf\u{e9}",
        "a.b=str:tab\there",
    ];
    for s in bad {
        assert!(MetaOverride::parse(s).is_err(), "{s} accepted");
    }
    let long_key = format!("{}=int:1", "k".repeat(128));
    assert!(matches!(MetaOverride::parse(&long_key), Err(OverrideError::BadKey { .. })));
    let long_str = format!("a=str:{}", "s".repeat(128));
    assert!(matches!(MetaOverride::parse(&long_str), Err(OverrideError::BadValue { .. })));
    let e = MetaOverride::parse("a.b=float:nan").unwrap_err().to_string();
    assert!(e.contains("a.b") && e.contains("nan"), "{e}");
}

#[test]
fn hostile_corpus_is_large_and_all_rejected() {
    let variants = hostile::variants();
    assert!(variants.len() >= 100, "only {} variants", variants.len());
    let mut names = std::collections::HashSet::new();
    let dir = tempfile::tempdir().unwrap();
    let base_path = dir.path().join("base.gguf");
    base().write_to(&base_path).unwrap();
    validate_model(&augur_gguf::read_file(&base_path).unwrap(), &[]).unwrap();
    for (name, bytes) in &variants {
        assert!(names.insert(name.clone()), "duplicate variant name {name}");
        let path = dir.path().join(format!("{}.gguf", names.len()));
        std::fs::write(&path, bytes).unwrap();
        let outcome = augur_gguf::read_file(&path).and_then(|f| validate_model(&f, &[]).map_err(Into::into));
        assert!(outcome.is_err(), "hostile variant {name} was accepted");
    }
}

/// `cargo test -p augur-gguf --test model -- --ignored --nocapture` lists
/// each hostile variant with the refusal it earns.
#[test]
#[ignore]
fn print_hostile_outcomes() {
    for (name, bytes) in hostile::variants() {
        let outcome =
            parse(Cursor::new(&bytes), bytes.len() as u64).and_then(|f| validate_model(&f, &[]).map_err(Into::into));
        println!("{name}: {}", outcome.err().map_or("ACCEPTED".to_string(), |e| e.to_string()));
    }
}
