//! What each of llama.cpp's tokenizer models needs from a vocabulary
//! (llama-vocab.cpp), beyond what every model needs. Each check names the
//! first token or byte that is missing and where llama.cpp would fail.

use std::collections::HashSet;

use crate::types::{Array, Value};
use crate::validate::{invalid, wrong_elem, Meta, Result};

const TOKENS: &str = "tokenizer.ggml.tokens";
const TOKEN_TYPE_BYTE: i32 = 6;

/// Token texts as llama.cpp stores them: an empty token becomes
/// "[EMPTY_<id>]" (llama_vocab::impl::load).
pub(crate) fn stored_texts(tokens: &[String]) -> Vec<String> {
    let stored = |(i, t): (usize, &String)| if t.is_empty() { format!("[EMPTY_{i}]") } else { t.clone() };
    tokens.iter().enumerate().map(stored).collect()
}

/// Checks for the tokenizer model `model`; `texts` are the stored texts.
pub(crate) fn check(m: &Meta, model: &str, texts: &[String], types: Option<&[i32]>) -> Result<()> {
    match model {
        "llama" => check_spm(texts),
        "bert" => check_wpm(texts, types),
        "t5" => check_ugm(m, texts.len()),
        "rwkv" => check_rwkv(texts),
        "plamo2" => check_plamo2(texts, types),
        _ => Ok(()),
    }
}

/// Bytes valid UTF-8 text can contain, which is all augur tokenizes, minus
/// the space: SPM turns it into U+2581 before looking anything up.
fn text_bytes() -> impl Iterator<Item = u8> {
    (0u8..=0xf4).filter(|&b| b != b' ' && b != 0xc0 && b != 0xc1)
}

/// SPM falls back to bytes for any character that is not a token:
/// llama_vocab::byte_to_token looks up "<0xNN>" (upper-case hex), then the
/// byte alone, and calls `token_to_id.at()`, which throws std::out_of_range
/// out of llama_tokenize (llm_tokenizer_spm_session::resegment).
fn check_spm(texts: &[String]) -> Result<()> {
    let have: HashSet<&str> = texts.iter().map(String::as_str).collect();
    let covered = |b: u8| {
        let single = (b < 0x80).then(|| char::from(b).to_string());
        have.contains(format!("<0x{b:02X}>").as_str()) || single.is_some_and(|s| have.contains(s.as_str()))
    };
    let Some(b) = text_bytes().find(|&b| !covered(b)) else {
        return Ok(());
    };
    let why = format!(
        "llama (SPM) vocabularies need a byte-fallback token for every byte, and there is no <0x{b:02X}>: \
         llama.cpp aborts on the first text it cannot otherwise tokenize"
    );
    Err(invalid(TOKENS, format!("[{} tokens]", texts.len()), why))
}

/// WPM cannot decode byte tokens: llama_vocab::impl::token_to_byte reaches
/// GGML_ABORT while load builds the token-to-piece cache.
fn check_wpm(texts: &[String], types: Option<&[i32]>) -> Result<()> {
    let Some(i) = types.and_then(|t| t.iter().position(|&t| t == TOKEN_TYPE_BYTE)) else {
        return Ok(());
    };
    let text = texts.get(i).map_or("", String::as_str);
    let why = "bert (WPM) vocabularies cannot have byte tokens: llama.cpp aborts decoding them";
    Err(invalid("tokenizer.ggml.token_type", format!("token {i} {text:?} type 6"), why))
}

/// UGM: load resolves the newline token before it reads the file's special
/// ids, so an unknown newline becomes the default unknown id 2, which
/// print_info then looks up with `.at()`. And the charsmap.
fn check_ugm(m: &Meta, n_tokens: usize) -> Result<()> {
    if n_tokens < 3 {
        let why = "t5 (UGM) vocabularies need at least 3 tokens: llama.cpp resolves the newline token \
                   with its default unknown id 2 before it reads the file's ids";
        return Err(invalid(TOKENS, format!("[{n_tokens} tokens]"), why));
    }
    let key = "tokenizer.ggml.precompiled_charsmap";
    let bytes: Vec<u8> = match m.array(key)? {
        None => return Ok(()),
        Some(Array::U8(b)) => b.clone(),
        Some(Array::I8(b)) => b.iter().map(|&x| x.to_le_bytes()[0]).collect(),
        Some(a) => return Err(wrong_elem(key, "array of u8", a)),
    };
    match crate::charsmap::problem(&bytes) {
        None => Ok(()),
        Some(why) => Err(invalid(key, format!("[{} bytes]", bytes.len()), format!("{why}; llama.cpp throws on it"))),
    }
}

/// llama.cpp's RWKV unescaper (llama_unescape_rwkv_token), byte for byte,
/// including how it reads a non-hex digit after `\x`.
pub(crate) fn rwkv_unescape(escaped: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(escaped.len());
    let (mut escaping, mut hex_remaining, mut hex_acc) = (false, 0u8, 0u8);
    for &c in escaped.as_bytes() {
        if hex_remaining != 0 {
            // C++ `char` is signed: bytes from 0x80 compare below 'a'.
            let sc = i32::from(c as i8);
            let value = if sc >= i32::from(b'a') { sc - i32::from(b'a') + 10 } else { sc - i32::from(b'0') };
            hex_acc = (hex_acc << 4).wrapping_add(value.to_le_bytes()[0]);
            hex_remaining -= 1;
            if hex_remaining == 0 {
                out.push(hex_acc);
                hex_acc = 0;
            }
        } else if escaping {
            match c {
                b't' => out.push(b'\t'),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b'x' => hex_remaining = 2,
                _ => out.push(c),
            }
            escaping = false;
        } else if c == b'\\' {
            escaping = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// llm_tokenizer_rwkv_session::tokenize walks a trie of the unescaped
/// tokens; when some token starts with a byte that is not itself a token it
/// emits token 0 without advancing, forever (load tokenizes "\n" this way).
fn check_rwkv(texts: &[String]) -> Result<()> {
    let raw: Vec<Vec<u8>> = texts.iter().map(|t| rwkv_unescape(t)).collect();
    let singles: HashSet<u8> = raw.iter().filter(|r| r.len() == 1).map(|r| r[0]).collect();
    let stuck = raw.iter().enumerate().find(|(_, r)| r.first().is_some_and(|b| !singles.contains(b)));
    let Some((i, r)) = stuck else {
        return Ok(());
    };
    let b = r.first().copied().unwrap_or(0);
    let why = format!(
        "starts with byte 0x{b:02X}, which is not a token by itself: llama.cpp's RWKV tokenizer loops forever on it"
    );
    Err(invalid(TOKENS, format!("token {i} {:?}", texts.get(i).map_or("", String::as_str)), why))
}

/// llm_tokenizer_plamo2::build maps every byte to a BYTE-type "<0xNN>"
/// token and throws "Byte token for <0xN> is not set" for any byte left at
/// id 0 (so a byte token at id 0 counts as missing).
fn check_plamo2(texts: &[String], types: Option<&[i32]>) -> Result<()> {
    let mut ids = [0usize; 256];
    for (i, (text, &ty)) in texts.iter().zip(types.unwrap_or(&[])).enumerate() {
        let b = text.as_bytes();
        let shaped = b.len() == 6 && b.starts_with(b"<0x") && b.ends_with(b">");
        let hex = b.get(3..5).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        let value = hex.and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        if let (Some(v), true) = (value, ty == TOKEN_TYPE_BYTE && shaped) {
            ids[usize::from(v)] = i;
        }
    }
    let Some(b) = ids.iter().position(|&id| id == 0) else {
        return Ok(());
    };
    let why = format!(
        "plamo2 vocabularies need a byte token <0x{b:02X}> of type 6, not at id 0, for every byte; llama.cpp throws without it"
    );
    Err(invalid(TOKENS, format!("[{} tokens]", texts.len()), why))
}

/// `tokenizer.ggml.pre` values llama.cpp knows (llama_vocab::impl::load
/// throws "unknown pre-tokenizer type" for any other, for BPE models).
pub(crate) const KNOWN_PRE: &[&str] = &[
    "default",
    "minicpm5",
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "deepseek-llm",
    "deepseek-coder",
    "deepseek-v3",
    "spark2_5",
    "youtu",
    "falcon",
    "mpt",
    "starcoder",
    "gpt-2",
    "phi-2",
    "jina-es",
    "jina-de",
    "gigachat",
    "jina-v2-es",
    "jina-v2-de",
    "a.x-4.0",
    "mellum",
    "modern-bert",
    "jais-2",
    "gemma4",
    "granite-embed-multi-311m",
    "mmbert",
    "sarvam-moe",
    "jina-v1-en",
    "jina-v2-code",
    "roberta-bpe",
    "whitespace",
    "refact",
    "command-r",
    "qwen2",
    "deepseek-r1-qwen",
    "kormo",
    "f2llmv2",
    "qwen35",
    "stablelm2",
    "olmo",
    "dbrx",
    "smaug-bpe",
    "poro-chat",
    "chatglm-bpe",
    "glm4",
    "glm5",
    "viking",
    "jais",
    "tekken",
    "smollm",
    "codeshell",
    "bloom",
    "gpt3-finnish",
    "exaone",
    "exaone4",
    "exaone-moe",
    "chameleon",
    "minerva-7b",
    "megrez",
    "gpt-4o",
    "llama4",
    "kanana2",
    "talkie",
    "granite-embed-multi-97m",
    "tiny_aya",
    "cohere2moe",
    "superbpe",
    "trillion",
    "granite-docling",
    "bailingmoe",
    "bailingmoe2",
    "llada-moe",
    "seed-coder",
    "hunyuan",
    "hunyuan-dense",
    "hy_v4",
    "joyai-llm",
    "kimi-k2",
    "ufakzeka",
    "grok-2",
    "afmoe",
    "laguna",
    "minimax-m2",
    "solar-open",
    "mellum2",
];

/// Pre-tokenizers after which a BPE vocabulary adds BOS by default.
pub(crate) const ADD_BOS_PRE: &[&str] = &[
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "tekken",
    "chameleon",
];

/// Pre-tokenizers of llama.cpp's Gemma-4 type, which always adds BOS
/// whatever the file says.
pub(crate) const GEMMA4_PRE: &[&str] = &["gemma4", "granite-embed-multi-311m"];

/// A string value, for keys whose type was already checked.
pub(crate) fn str_of<'m>(m: &'m Meta, key: &str) -> Option<&'m str> {
    m.get(key).and_then(Value::as_str)
}
