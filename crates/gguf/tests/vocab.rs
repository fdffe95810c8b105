//! Vocabularies llama.cpp's vocabulary loader or tokenizers cannot handle
//! (they throw, assert, abort or loop) are refused; vocabularies it handles,
//! with a fallback of its own if need be, still validate.

use std::io::Cursor;

use augur_gguf::writer::{
    plamo2_vocab, rwkv_escape, rwkv_vocab, set_tokens, spm_vocab, tiny_charsmap, tiny_llama, tiny_llama_with_vocab,
    ugm_vocab, wpm_vocab, GgufWriter, ModelVocab, TinyLlamaOpts,
};
use augur_gguf::{parse, validate_model, Array, GgufFile, MetaOverride, ModelError, Value};

fn parsed(w: &GgufWriter) -> GgufFile {
    let b = w.to_bytes();
    parse(Cursor::new(&b), b.len() as u64).unwrap()
}

fn refusal(w: &GgufWriter) -> String {
    validate_model(&parsed(w), &[]).expect_err("the vocabulary was accepted").to_string()
}

fn accept(w: &GgufWriter) {
    if let Err(e) = validate_model(&parsed(w), &[]) {
        panic!("refused: {e}");
    }
}

fn base() -> GgufWriter {
    tiny_llama(&TinyLlamaOpts::default())
}

fn with(mut v: ModelVocab, edit: impl FnOnce(&mut ModelVocab)) -> GgufWriter {
    edit(&mut v);
    tiny_llama_with_vocab(&v)
}

fn truncated(v: ModelVocab, n: usize) -> GgufWriter {
    with(v, |v| {
        v.tokens.truncate(n);
        v.token_types.truncate(n);
    })
}

fn retype(v: &mut ModelVocab, text: &str, new_text: &str, ty: i32) {
    let i = v.index_of(text).unwrap();
    v.tokens[i] = new_text.to_string();
    v.token_types[i] = ty;
}

#[test]
fn every_tokenizer_model_has_a_small_vocabulary_that_validates() {
    accept(&base());
    for v in [spm_vocab(), wpm_vocab(), ugm_vocab(), rwkv_vocab(), plamo2_vocab()] {
        let model = v.model;
        let f = parsed(&tiny_llama_with_vocab(&v));
        assert_eq!(f.get_str("tokenizer.ggml.model"), Some(model));
        assert_eq!(f.vocab_size(), Some(v.tokens.len() as u64));
        validate_model(&f, &[]).unwrap_or_else(|e| panic!("{model}: {e}"));
    }
}

/// The known case: llama.cpp tokenizes any text with a one-token SPM
/// vocabulary by falling back to byte tokens it does not have, and
/// `token_to_id.at()` throws std::out_of_range out of llama_tokenize.
#[test]
fn a_one_token_vocabulary_is_refused() {
    let msg = refusal(&truncated(spm_vocab(), 1));
    assert!(msg.contains("tokenizer.ggml.tokens = [1 tokens]") && msg.contains("byte-fallback"), "{msg}");
    // The other models that cannot work with one token, each for its own reason.
    assert!(refusal(&truncated(ugm_vocab(), 1)).contains("at least 3 tokens"));
    assert!(refusal(&truncated(plamo2_vocab(), 1)).contains("plamo2"));
    assert!(refusal(&truncated(wpm_vocab(), 1)).contains("add_bos_token"));
}

/// llama.cpp loads, tokenizes and decodes with these: BPE drops bytes it has
/// no token for, RWKV emits the (missing) unknown token.
#[test]
fn one_token_bpe_and_rwkv_vocabularies_are_accepted() {
    let mut w = base();
    set_tokens(&mut w, vec!["a".into()], Some(vec![1]));
    accept(&w);
    accept(&truncated(rwkv_vocab(), 1));
}

#[test]
fn an_spm_vocabulary_without_a_byte_fallback_token_is_refused() {
    let msg = refusal(&with(spm_vocab(), |v| retype(v, "<0x0A>", "newline", 1)));
    assert!(msg.contains("no <0x0A>"), "{msg}");
    // byte_to_token looks up upper-case hex only.
    let msg = refusal(&with(spm_vocab(), |v| retype(v, "<0xE2>", "<0xe2>", 6)));
    assert!(msg.contains("no <0xE2>"), "{msg}");
    // A one-character token stands in for an ASCII byte token...
    accept(&with(spm_vocab(), |v| retype(v, "<0x41>", "A", 1)));
    // ...and bytes valid UTF-8 never contains need no token.
    accept(&with(spm_vocab(), |v| retype(v, "<0xFF>", "\u{2581}x", 1)));
    // Other models do not fall back to bytes this way.
    let mut w = base();
    w.set("tokenizer.ggml.model", Value::String("llama".into()));
    assert!(refusal(&w).contains("byte-fallback"));
}

#[test]
fn an_empty_token_that_collides_with_its_stored_name_is_refused() {
    let w = with(spm_vocab(), |v| {
        retype(v, "\u{2581}the", "", 1);
        retype(v, "\u{2581}and", "[EMPTY_260]", 1);
    });
    let msg = refusal(&w);
    assert!(msg.contains("\"[EMPTY_260]\"") && msg.contains("duplicates token 260"), "{msg}");
    accept(&with(spm_vocab(), |v| retype(v, "\u{2581}the", "", 1)));
}

#[test]
fn a_byte_token_in_a_bert_vocabulary_is_refused() {
    let msg = refusal(&with(wpm_vocab(), |v| retype(v, "a", "<0x61>", 6)));
    assert!(msg.contains("tokenizer.ggml.token_type") && msg.contains("bert (WPM)"), "{msg}");
}

fn small_gpt2(edit: impl FnOnce(&mut GgufWriter)) -> GgufWriter {
    let mut w = base();
    set_tokens(&mut w, ["a", "b", "c", "d"].map(String::from).to_vec(), None);
    w.set("tokenizer.ggml.merges", Value::Array(Array::String(vec!["a b".into()])));
    edit(&mut w);
    w
}

#[test]
fn added_special_tokens_that_do_not_exist_are_refused() {
    let add_bos = |w: &mut GgufWriter| {
        w.set("tokenizer.ggml.add_bos_token", Value::Bool(true));
    };
    let msg = refusal(&small_gpt2(add_bos));
    assert!(msg.starts_with("tokenizer.ggml.add_bos_token = true:") && msg.contains("default id 11"), "{msg}");
    accept(&small_gpt2(|w| {
        add_bos(w);
        w.set("tokenizer.ggml.bos_token_id", Value::U32(0));
    }));
    // Pre-tokenizers that add BOS by default, and Gemma 4, which always does.
    let msg = refusal(&small_gpt2(|w| {
        w.remove("tokenizer.ggml.add_bos_token").set("tokenizer.ggml.pre", Value::String("llama-bpe".into()));
    }));
    assert!(msg.contains("the tokenizer's default"), "{msg}");
    let mut w = base();
    w.set("tokenizer.ggml.model", Value::String("gemma4".into())).remove("tokenizer.ggml.bos_token_id");
    assert!(refusal(&w).contains("forces it for Gemma 4"));
    let msg = refusal(&small_gpt2(|w| {
        w.set("tokenizer.ggml.add_eos_token", Value::Bool(true));
    }));
    assert!(msg.contains("tokenizer.ggml.eos_token_id is not set"), "{msg}");
    // WPM adds [SEP] whenever it adds [CLS].
    let no_sep = || with(wpm_vocab(), |v| v.keys.retain(|(k, _)| !k.contains("seperator")));
    assert!(refusal(&no_sep()).contains("tokenizer.ggml.seperator_token_id is not set"));
    let mut w = no_sep();
    w.set("tokenizer.ggml.add_bos_token", Value::Bool(false));
    accept(&w);
}

#[test]
fn a_t5_vocabulary_of_fewer_than_three_tokens_is_refused() {
    let msg = refusal(&truncated(ugm_vocab(), 2));
    assert!(msg.contains("[2 tokens]") && msg.contains("default unknown id 2"), "{msg}");
    accept(&truncated(ugm_vocab(), 3));
}

fn t5_with_charsmap(charsmap: Array) -> GgufWriter {
    with(ugm_vocab(), |v| {
        v.keys.retain(|(k, _)| k != "tokenizer.ggml.precompiled_charsmap");
        v.keys.push(("tokenizer.ggml.precompiled_charsmap".into(), Value::Array(charsmap)));
    })
}

#[test]
fn malformed_precompiled_charsmaps_are_refused() {
    let good = tiny_charsmap();
    let patched = |pos: usize, new: &[u8]| {
        let mut b = good.clone();
        b[pos..pos + new.len()].copy_from_slice(new);
        Array::U8(b)
    };
    let cases = [
        (Array::U8(vec![1, 0, 0]), "too few"),
        (patched(0, &(good.len() as u32).to_le_bytes()), "no room"),
        (patched(4, &(0x300u32 << 10).to_le_bytes()), "past its 512 entries"),
        (patched(8, &1000u32.to_le_bytes()), "offset 1000"),
        (patched(good.len() - 1, b"c"), "no NUL"),
    ];
    for (charsmap, why) in cases {
        let msg = refusal(&t5_with_charsmap(charsmap));
        assert!(msg.starts_with("tokenizer.ggml.precompiled_charsmap = [") && msg.contains(why), "{why}: {msg}");
    }
    let msg = refusal(&t5_with_charsmap(Array::I32(vec![0; 4])));
    assert!(msg.contains("array of i32"), "{msg}");
    accept(&t5_with_charsmap(Array::I8(good.iter().map(|&b| b as i8).collect())));
    // Only the t5 model reads a charsmap.
    let mut w = tiny_llama_with_vocab(&spm_vocab());
    w.set("tokenizer.ggml.precompiled_charsmap", Value::Array(Array::U8(vec![1])));
    accept(&w);
}

#[test]
fn a_plamo2_vocabulary_missing_a_byte_token_is_refused() {
    let msg = refusal(&with(plamo2_vocab(), |v| retype(v, "<0x41>", "A", 1)));
    assert!(msg.contains("<0x41>"), "{msg}");
    // A byte token at id 0 counts as unset.
    let msg = refusal(&with(plamo2_vocab(), |v| {
        v.tokens.swap(0, 4);
        v.token_types.swap(0, 4);
    }));
    assert!(msg.contains("<0x00>"), "{msg}");
    // Byte tokens are recognised by type.
    let msg = refusal(&with(plamo2_vocab(), |v| v.token_types.iter_mut().for_each(|t| *t = 1)));
    assert!(msg.contains("<0x00>"), "{msg}");
    accept(&with(plamo2_vocab(), |v| {
        v.tokens.iter_mut().filter(|t| t.starts_with("<0x")).for_each(|t| {
            *t = t.to_lowercase();
        })
    }));
}

#[test]
fn an_rwkv_token_starting_with_a_byte_that_is_not_a_token_is_refused() {
    // "\n\n" stays, the lone newline "\x0a" goes.
    let msg = refusal(&with(rwkv_vocab(), |v| retype(v, &rwkv_escape(b'\n'), "nl", 1)));
    assert!(msg.contains("\"\\\\n\\\\n\"") && msg.contains("byte 0x0A") && msg.contains("loops forever"), "{msg}");
    // Escapes count as the bytes they stand for: "\n" is byte 0x0A too.
    accept(&with(rwkv_vocab(), |v| retype(v, &rwkv_escape(b'\n'), "\\n", 1)));
}

#[test]
fn a_phi3_named_model_without_its_special_tokens_is_refused() {
    let mut w = base();
    w.set("general.name", Value::String("Phi-3 Mini".into()));
    let msg = refusal(&w);
    assert!(msg.starts_with("general.name = \"Phi-3 Mini\"") && msg.contains("\"</s>\""), "{msg}");
    let mut v = spm_vocab();
    for t in ["<unk>", "<s>", "</s>", "<|endoftext|>"] {
        if v.index_of(t).is_none() {
            retype(&mut v, "\u{2581}on", t, 3);
        }
    }
    let mut w = tiny_llama_with_vocab(&v);
    w.set("general.name", Value::String("my phi3 finetune".into()));
    accept(&w);
}

#[test]
fn an_unknown_pre_tokenizer_is_refused() {
    let mut w = base();
    w.set("tokenizer.ggml.pre", Value::String("nonesuch".into()));
    assert!(refusal(&w).starts_with("tokenizer.ggml.pre = \"nonesuch\":"));
    for known in ["", "qwen2", "llama-bpe", "kimi-k2"] {
        w.set("tokenizer.ggml.pre", Value::String(known.into()));
        accept(&w);
    }
    // Only BPE models read it.
    let mut w = tiny_llama_with_vocab(&spm_vocab());
    w.set("tokenizer.ggml.pre", Value::String("nonesuch".into()));
    accept(&w);
}

#[test]
fn a_gemma4_vocabulary_without_merges_is_refused_even_for_kimi_k2() {
    let mut w = base();
    w.set("tokenizer.ggml.pre", Value::String("kimi-k2".into())).remove("tokenizer.ggml.merges");
    accept(&w);
    w.set("tokenizer.ggml.model", Value::String("gemma4".into()));
    assert!(
        matches!(validate_model(&parsed(&w), &[]), Err(ModelError::MissingKey { key }) if key == "tokenizer.ggml.merges")
    );
}

#[test]
fn a_model_without_a_text_vocabulary_is_refused() {
    for model in ["none", "no_vocab"] {
        let mut w = base();
        w.set("tokenizer.ggml.model", Value::String(model.into()));
        let msg = refusal(&w);
        assert!(msg.contains(&format!("tokenizer.ggml.model = \"{model}\"")) && msg.contains("asserts"), "{msg}");
    }
}

#[test]
fn tokenizer_keys_of_the_wrong_gguf_type_are_refused() {
    let cases = [
        ("tokenizer.ggml.bos_token_id", Value::I32(5), "u32"),
        ("tokenizer.ggml.eot_token_id", Value::U64(5), "u32"),
        ("tokenizer.ggml.add_bos_token", Value::U8(1), "bool"),
        ("tokenizer.ggml.remove_extra_whitespaces", Value::U8(1), "bool"),
        ("tokenizer.ggml.pre", Value::U32(1), "string"),
        ("general.name", Value::U32(1), "string"),
        ("tokenizer.ggml.token_type_count", Value::U64(2), "u32"),
        ("tokenizer.ggml.suppress_tokens", Value::Array(Array::U32(vec![1])), "array of i32"),
    ];
    for (key, value, expected) in cases {
        let mut w = base();
        w.set(key, value);
        match validate_model(&parsed(&w), &[]) {
            Err(ModelError::WrongType { key: k, expected: e, .. }) if k == key && e == expected => {}
            other => panic!("{key}: {other:?}"),
        }
    }
    let mut w = base();
    w.set("tokenizer.ggml.suppress_tokens", Value::Array(Array::I32(vec![1, 100_000])));
    accept(&w);
    // Overrides reach llama.cpp as int, bool or str.
    let f = parsed(&base());
    let ov = |s: &str| [MetaOverride::parse(s).unwrap()];
    validate_model(&f, &ov("tokenizer.ggml.bos_token_id=int:5")).unwrap();
    let e = validate_model(&f, &ov("tokenizer.ggml.add_bos_token=str:yes")).unwrap_err().to_string();
    assert!(e.contains("str override") && e.contains("expected bool"), "{e}");
}
