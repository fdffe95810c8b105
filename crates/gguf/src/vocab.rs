//! Tokenizer validation: the vocabulary metadata llama.cpp's loader
//! (llama_vocab::impl::load in llama-vocab.cpp) and its tokenizers would
//! throw, assert or abort on. An exception thrown while loading only fails
//! the load, but one thrown from llama_tokenize or llama_token_to_piece
//! crosses into Rust and aborts augur, and a GGML_ASSERT aborts either way,
//! so all of them are refused here. Where llama.cpp falls back on its own
//! (a missing newline token, an unknown token type) the file is accepted.

use std::collections::{HashMap, HashSet};

use crate::error::ModelError;
use crate::types::{Array, Value};
use crate::validate::{invalid, missing, wrong_elem, wrong_type, Meta, Result, NO_VOCAB_ARCHS};
use crate::vocab_models::{self, str_of, ADD_BOS_PRE, GEMMA4_PRE, KNOWN_PRE};

/// Tokenizer models llama.cpp loads without a text vocabulary.
const NO_TEXT_TOKENIZERS: &[&str] = &["no_vocab", "none"];
const KNOWN_TOKENIZERS: &[&str] =
    &["llama", "bert", "gpt2", "hybriddna", "whitespace", "t5", "rwkv", "plamo2", "gemma4"];
const BPE_TOKENIZERS: &[&str] = &["gpt2", "hybriddna", "whitespace", "gemma4"];
/// Special token ids llama.cpp reads (as u32) in load's "special tokens".
const SPECIAL_ID_KEYS: &[&str] = &[
    "bos",
    "eos",
    "eot",
    "eom",
    "unknown",
    "seperator",
    "padding",
    "mask",
    "fim_pre",
    "fim_suf",
    "fim_mid",
    "fim_pad",
    "fim_rep",
    "fim_sep",
    "prefix",
    "suffix",
    "middle",
];
/// Written by converters, not read by llama.cpp; must still name a token.
const UNREAD_ID_KEYS: &[&str] = &["cls"];
/// Token type ids from llama.h (UNDEFINED..=BYTE).
const MAX_TOKEN_TYPE: i128 = 6;
const TOKEN_TYPE_BYTE: i128 = 6;

/// The GGUF type a key must have: llama_model_loader::get_key throws on any
/// other (an override must be of the matching kind).
#[derive(Clone, Copy)]
enum Kind {
    U32,
    Bool,
    Str,
}

impl Kind {
    fn file_ok(self, v: &Value) -> bool {
        matches!((self, v), (Kind::U32, Value::U32(_)) | (Kind::Bool, Value::Bool(_)) | (Kind::Str, Value::String(_)))
    }

    fn override_ok(self, v: &Value) -> bool {
        matches!((self, v), (Kind::U32, Value::I64(_)) | (Kind::Bool, Value::Bool(_)) | (Kind::Str, Value::String(_)))
    }

    fn name(self, is_override: bool) -> &'static str {
        match (self, is_override) {
            (Kind::U32, false) => "u32",
            (Kind::U32, true) => "int",
            (Kind::Bool, _) => "bool",
            (Kind::Str, false) => "string",
            (Kind::Str, true) => "str",
        }
    }
}

/// Scalar keys the vocabulary loader reads, besides the special token ids.
const TYPED_KEYS: &[(&str, Kind)] = &[
    ("general.name", Kind::Str),
    ("tokenizer.ggml.pre", Kind::Str),
    ("tokenizer.ggml.token_type_count", Kind::U32),
    ("tokenizer.ggml.add_bos_token", Kind::Bool),
    ("tokenizer.ggml.add_eos_token", Kind::Bool),
    ("tokenizer.ggml.add_sep_token", Kind::Bool),
    ("tokenizer.ggml.add_space_prefix", Kind::Bool),
    ("tokenizer.ggml.remove_extra_whitespaces", Kind::Bool),
    ("tokenizer.ggml.normalizer.lowercase", Kind::Bool),
    ("tokenizer.ggml.normalizer.strip_accents", Kind::Bool),
];

pub(crate) fn check_tokenizer(m: &Meta, arch: &str) -> Result<()> {
    let model_key = "tokenizer.ggml.model";
    if let Some(model) = str_of(m, model_key).filter(|s| NO_TEXT_TOKENIZERS.contains(s)) {
        let why = "augur needs a text vocabulary: llama.cpp asserts on the first token lookup in a model without one";
        return Err(invalid(model_key, format!("{model:?}"), why));
    }
    if NO_VOCAB_ARCHS.contains(&arch) {
        return Ok(());
    }
    let v = m.get(model_key).ok_or_else(|| missing(model_key))?;
    let model = v.as_str().ok_or_else(|| wrong_type(model_key, "string", v))?;
    if !KNOWN_TOKENIZERS.contains(&model) {
        return Err(invalid(model_key, format!("{model:?}"), "unknown tokenizer model"));
    }
    check_key_types(m)?;
    let tokens = token_list(m)?;
    let texts = vocab_models::stored_texts(tokens);
    check_tokens(tokens, &texts, BPE_TOKENIZERS.contains(&model))?;
    check_scores(m, tokens.len())?;
    let types = check_token_types(m, tokens)?;
    check_special_ids(m, tokens.len())?;
    check_merges(m, model)?;
    check_pre(m, model)?;
    vocab_models::check(m, model, &texts, types)?;
    check_added_specials(m, model, tokens.len())?;
    check_phi3_tokens(m, arch, &texts)
}

fn check_key_types(m: &Meta) -> Result<()> {
    let ids = SPECIAL_ID_KEYS.iter().map(|name| (format!("tokenizer.ggml.{name}_token_id"), Kind::U32));
    for (key, kind) in TYPED_KEYS.iter().map(|&(k, kind)| (k.to_string(), kind)).chain(ids) {
        check_key_type(m, &key, kind)?;
    }
    let key = "tokenizer.ggml.suppress_tokens";
    match m.array(key)? {
        Some(a) if !matches!(a, Array::I32(_)) => Err(wrong_elem(key, "array of i32", a)),
        _ => Ok(()),
    }
}

fn check_key_type(m: &Meta, key: &str, kind: Kind) -> Result<()> {
    if let Some(o) = m.over.get(key) {
        if kind.override_ok(o) {
            return Ok(());
        }
        let found = match o {
            Value::I64(_) => "int override",
            Value::F64(_) => "float override",
            Value::Bool(_) => "bool override",
            _ => "str override",
        };
        return Err(ModelError::WrongType { key: key.to_string(), expected: kind.name(true), found: found.into() });
    }
    match m.file.metadata.get(key) {
        Some(v) if !kind.file_ok(v) => Err(wrong_type(key, kind.name(false), v)),
        _ => Ok(()),
    }
}

fn token_list<'m>(m: &'m Meta) -> Result<&'m [String]> {
    let key = "tokenizer.ggml.tokens";
    let a = m.array(key)?.ok_or_else(|| missing(key))?;
    let tokens = a.as_strings().ok_or_else(|| wrong_elem(key, "array of string", a))?;
    if tokens.is_empty() || tokens.len() > i32::MAX as usize {
        return Err(invalid(key, format!("[{} tokens]", tokens.len()), "vocabulary size must be 1 to 2^31-1"));
    }
    Ok(tokens)
}

/// `texts` are the token texts as llama.cpp stores them, where an empty
/// token is renamed "[EMPTY_<id>]".
fn check_tokens(tokens: &[String], texts: &[String], is_bpe: bool) -> Result<()> {
    let key = "tokenizer.ggml.tokens";
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    for (i, (tok, text)) in tokens.iter().zip(texts).enumerate() {
        if tok.contains('\0') {
            return Err(invalid(key, format!("token {i} {tok:?}"), "contains a NUL byte"));
        }
        if is_bpe && tok.is_empty() {
            return Err(invalid(key, format!("token {i}"), "BPE tokens must not be empty"));
        }
        // llama.cpp asserts that token text maps one-to-one to ids.
        if let Some(first) = seen.insert(text.as_str(), i) {
            let renamed = tokens.get(first).is_some_and(String::is_empty) || tok.is_empty();
            let why = match renamed {
                true => format!("duplicates token {first} once llama.cpp names the empty token {text:?}"),
                false => format!("duplicates token {first}"),
            };
            return Err(invalid(key, format!("token {i} {tok:?}"), why));
        }
    }
    Ok(())
}

fn check_scores(m: &Meta, n_tokens: usize) -> Result<()> {
    let key = "tokenizer.ggml.scores";
    let Some(a) = m.array(key)? else {
        return Ok(());
    };
    if !matches!(a, Array::F32(_) | Array::I32(_)) {
        return Err(wrong_elem(key, "array of f32", a));
    }
    if a.len() != n_tokens {
        return Err(invalid(key, format!("[{} scores]", a.len()), format!("the vocabulary has {n_tokens} tokens")));
    }
    Ok(())
}

/// The token types, when the file has them.
fn check_token_types<'m>(m: &'m Meta, tokens: &[String]) -> Result<Option<&'m [i32]>> {
    let key = "tokenizer.ggml.token_type";
    let Some(a) = m.array(key)? else {
        return Ok(None);
    };
    let Array::I32(types) = a else {
        return Err(wrong_elem(key, "array of i32", a));
    };
    if types.len() != tokens.len() {
        let why = format!("the vocabulary has {} tokens", tokens.len());
        return Err(invalid(key, format!("[{} types]", types.len()), why));
    }
    for (i, (&t, tok)) in types.iter().zip(tokens).enumerate() {
        let t = i128::from(t);
        if !(0..=MAX_TOKEN_TYPE).contains(&t) {
            return Err(invalid(key, format!("token {i} type {t}"), "token types are 0 to 6"));
        }
        // llama.cpp decodes byte tokens by slicing "<0xNN>" without checking.
        if t == TOKEN_TYPE_BYTE && !is_byte_token(tok) {
            return Err(invalid(key, format!("token {i} {tok:?}"), "byte tokens must be written <0xNN>"));
        }
    }
    Ok(Some(types))
}

fn is_byte_token(tok: &str) -> bool {
    let b = tok.as_bytes();
    let hex = b.get(3..5).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
    b.len() == 6 && b.starts_with(b"<0x") && b.ends_with(b">") && hex
}

fn check_special_ids(m: &Meta, n_tokens: usize) -> Result<()> {
    for name in SPECIAL_ID_KEYS.iter().chain(UNREAD_ID_KEYS) {
        let key = format!("tokenizer.ggml.{name}_token_id");
        let Some(v) = m.get(&key) else {
            continue;
        };
        let id = v.as_int().ok_or_else(|| wrong_type(&key, "integer", v))?;
        if id < 0 || id >= n_tokens as i128 {
            return Err(invalid(&key, id, format!("must be below the vocabulary size {n_tokens}")));
        }
    }
    Ok(())
}

fn check_merges(m: &Meta, model: &str) -> Result<()> {
    let key = "tokenizer.ggml.merges";
    // Kimi-K2 needs no merges, but the gemma4 model reads them regardless.
    let exempt = model != "gemma4" && str_of(m, "tokenizer.ggml.pre") == Some("kimi-k2");
    let merges = match m.array(key)? {
        Some(a) => a.as_strings().ok_or_else(|| wrong_elem(key, "array of string", a))?,
        None if BPE_TOKENIZERS.contains(&model) && !exempt => return Err(missing(key)),
        None => return Ok(()),
    };
    for (i, merge) in merges.iter().enumerate() {
        // llama.cpp splits at the first space after the first byte.
        let space = merge.bytes().enumerate().skip(1).find(|&(_, b)| b == b' ');
        let ok = space.is_some_and(|(p, _)| p + 1 < merge.len());
        if !ok {
            return Err(invalid(key, format!("merge {i} {merge:?}"), "expected \"left right\""));
        }
    }
    Ok(())
}

/// BPE models look their pre-tokenizer up by name (gemma4 sets its own).
fn check_pre(m: &Meta, model: &str) -> Result<()> {
    let key = "tokenizer.ggml.pre";
    match str_of(m, key) {
        Some(pre) if model != "gemma4" && BPE_TOKENIZERS.contains(&model) && !pre.is_empty() => {
            if KNOWN_PRE.contains(&pre) {
                return Ok(());
            }
            Err(invalid(
                key,
                format!("{pre:?}"),
                "not a pre-tokenizer this llama.cpp knows, so it cannot load the vocabulary",
            ))
        }
        _ => Ok(()),
    }
}

/// llama.cpp's per-model defaults (load, "determine vocab type"): the
/// special ids it uses when the file sets none and whether it adds BOS/EOS.
struct Defaults {
    bos: Option<u32>,
    eos: Option<u32>,
    sep: Option<u32>,
    add_bos: bool,
    add_eos: bool,
}

fn defaults(model: &str, pre: &str) -> Defaults {
    let d = |bos, eos, sep, add_bos, add_eos| Defaults { bos, eos, sep, add_bos, add_eos };
    match model {
        "llama" => d(Some(1), Some(2), None, true, false),
        "bert" => d(Some(101), None, Some(102), true, false),
        "t5" => d(None, Some(1), None, false, true),
        "plamo2" => d(Some(1), Some(2), None, false, false),
        "gemma4" | "rwkv" => d(None, None, None, false, false),
        _ => d(Some(11), Some(11), None, ADD_BOS_PRE.contains(&pre), false),
    }
}

/// When llama.cpp adds BOS, EOS or (WPM) SEP to a prompt it asserts that the
/// token exists (llama_vocab::impl::tokenize, llm_tokenizer_bpe_session::
/// append_bos/append_eos), which aborts augur on the first request.
fn check_added_specials(m: &Meta, model: &str, n: usize) -> Result<()> {
    if model == "rwkv" {
        return Ok(());
    }
    let pre = str_of(m, "tokenizer.ggml.pre").unwrap_or("");
    let d = defaults(model, pre);
    let flag = |key: &str, default: bool| match m.get(key) {
        Some(Value::Bool(b)) => (*b, if *b { "true" } else { "false" }),
        _ => (default, if default { "true (the tokenizer's default)" } else { "false" }),
    };
    let mut add_bos = flag("tokenizer.ggml.add_bos_token", d.add_bos);
    let gemma4 = model == "gemma4" || (BPE_TOKENIZERS.contains(&model) && GEMMA4_PRE.contains(&pre));
    if gemma4 {
        add_bos = (true, "true (llama.cpp forces it for Gemma 4 tokenizers)");
    }
    let add_eos = flag("tokenizer.ggml.add_eos_token", d.add_eos);
    if add_bos.0 {
        need(m, ("bos", d.bos), n, ("add_bos_token", add_bos.1))?;
        if model == "bert" {
            need(m, ("seperator", d.sep), n, ("add_bos_token", add_bos.1))?;
        }
    }
    if add_eos.0 && model != "bert" {
        need(m, ("eos", d.eos), n, ("add_eos_token", add_eos.1))?;
    }
    Ok(())
}

/// Special ids in the file were checked to be in range already; otherwise
/// llama.cpp uses its default when that is a token.
fn need(m: &Meta, (name, default): (&str, Option<u32>), n: usize, (flag, shown): (&str, &str)) -> Result<()> {
    let key = format!("tokenizer.ggml.{name}_token_id");
    if m.get(&key).is_some() || default.is_some_and(|d| (d as usize) < n) {
        return Ok(());
    }
    let fallback = match default {
        Some(d) => format!("llama.cpp's default id {d} is not among its {n} tokens"),
        None => "this tokenizer has no default".to_string(),
    };
    let why = format!("{key} is not set and {fallback}, so llama.cpp asserts when it adds that token to a prompt");
    Err(invalid(&format!("tokenizer.ggml.{flag}"), shown, why))
}

/// For a model named Phi-3 the loader changes the attributes of four tokens
/// it fetches with `token_to_id.at()`, which throws for a missing one.
fn check_phi3_tokens(m: &Meta, arch: &str, texts: &[String]) -> Result<()> {
    let key = "general.name";
    let Some(name) = str_of(m, key) else {
        return Ok(());
    };
    let lower = name.to_ascii_lowercase();
    let pre = str_of(m, "tokenizer.ggml.pre").unwrap_or("");
    // An earlier branch of the same if/else handles these models instead.
    let jina = ["jina-v2-de", "jina-v2-es", "jina-v2-code", "mmbert"].iter().any(|s| pre.contains(s))
        || ["nomic-bert-moe", "jina-bert-v3"].iter().any(|s| arch.contains(s));
    if jina || !(lower.contains("phi-3") || lower.contains("phi3")) {
        return Ok(());
    }
    let have: HashSet<&str> = texts.iter().map(String::as_str).collect();
    match ["</s>", "<unk>", "<s>", "<|endoftext|>"].into_iter().find(|t| !have.contains(t)) {
        None => Ok(()),
        Some(t) => {
            let why = format!("llama.cpp sets attributes of the {t:?} token of any model named Phi-3 and fails to load one without it");
            Err(invalid(key, format!("{name:?}"), why))
        }
    }
}
