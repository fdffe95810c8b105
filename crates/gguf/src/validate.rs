//! Model-level validation: the metadata llama.cpp's loader trusts, checked
//! before it gets the chance to assert, abort or allocate on bad values. The
//! tokenizer checks live in `crate::vocab`.

use std::collections::BTreeMap;
use std::fmt::Display;

use crate::error::ModelError;
use crate::overrides::MetaOverride;
use crate::types::{Array, Value};
use crate::GgufFile;

/// Architecture names the embedded llama.cpp registers (llama-arch.cpp),
/// minus its "clip" placeholder, which cannot run as a model.
pub const SUPPORTED_ARCHS: &[&str] = &[
    "llama",
    "llama4",
    "deci",
    "falcon",
    "grok",
    "gpt2",
    "gptj",
    "gptneox",
    "mpt",
    "baichuan",
    "starcoder",
    "refact",
    "bert",
    "modern-bert",
    "nomic-bert",
    "nomic-bert-moe",
    "neo-bert",
    "jina-bert-v2",
    "jina-bert-v3",
    "eurobert",
    "bloom",
    "stablelm",
    "qwen",
    "qwen2",
    "qwen2moe",
    "qwen2vl",
    "qwen3",
    "qwen3moe",
    "qwen3next",
    "qwen3vl",
    "qwen3vlmoe",
    "qwen35",
    "qwen35moe",
    "clef",
    "qwen4exp",
    "phi2",
    "phi3",
    "phimoe",
    "plamo",
    "plamo2",
    "plamo3",
    "codeshell",
    "orion",
    "internlm2",
    "minicpm",
    "minicpm3",
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3n",
    "gemma4",
    "gemma4-assistant",
    "gemma-embedding",
    "starcoder2",
    "mamba",
    "mamba2",
    "maple",
    "jamba",
    "falcon-h1",
    "xverse",
    "command-r",
    "cohere2",
    "cohere2moe",
    "dbrx",
    "olmo",
    "olmo2",
    "olmoe",
    "muse-glimmer",
    "openelm",
    "arctic",
    "deepseek",
    "deepseek2",
    "deepseek2-ocr",
    "deepseek32",
    "deepseek4",
    "chatglm",
    "glm4",
    "glm4moe",
    "glm-dsa",
    "bitnet",
    "t5",
    "t5encoder",
    "jais",
    "jais2",
    "nemotron",
    "nemotron_h",
    "nemotron_h_moe",
    "exaone",
    "exaone4",
    "exaone-moe",
    "rwkv6",
    "rwkv6qwen2",
    "rwkv7",
    "arwkv7",
    "granite",
    "granitemoe",
    "granitehybrid",
    "graniteswitch",
    "granite_swa",
    "chameleon",
    "wavtokenizer-dec",
    "plm",
    "bailingmoe",
    "bailingmoe2",
    "bailingmoe3",
    "dots1",
    "dots3note",
    "arcee",
    "afmoe",
    "laguna",
    "ernie4_5",
    "ernie4_5-moe",
    "hunyuan-moe",
    "hunyuan-dense",
    "hunyuan_vl",
    "hy_v3",
    "hy_v4",
    "smollm3",
    "gpt-oss",
    "lfm2",
    "lfm2moe",
    "dream",
    "smallthinker",
    "llada",
    "llada-moe",
    "seed_oss",
    "grovemoe",
    "apertus",
    "minimax-01",
    "hrm_text",
    "minimax-m2",
    "minimax-m3",
    "cogvlm",
    "rnd1",
    "pangu-embedded",
    "mistral3",
    "eagle3",
    "dflash",
    "mistral4",
    "paddleocr",
    "mimo2",
    "step35",
    "spark2_5",
    "llama-embed",
    "maincoder",
    "kimi-linear",
    "kimi-k3",
    "glm5-next",
    "talkie",
    "mellum",
    "nanbeige",
    "qwen3tts",
    "pockettts",
];

/// llama.cpp's LLAMA_MAX_LAYERS.
pub const MAX_BLOCKS: u64 = 512;
/// llama.cpp's LLAMA_MAX_EXPERTS.
pub const MAX_EXPERTS: u64 = 1024;
const MAX_EMBD: u64 = 1 << 20;
const MAX_HEADS: u64 = 1 << 14;
const MAX_FF: u64 = 1 << 22;
const MAX_CTX: u64 = 1 << 27;

/// Archs without attention heads in every layer, where a zero head count is
/// legitimate.
const RECURRENT_ARCHS: &[&str] = &["mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"];
/// Archs whose loader needs no text vocabulary.
pub(crate) const NO_VOCAB_ARCHS: &[&str] = &["wavtokenizer-dec"];

pub(crate) type Result<T> = std::result::Result<T, ModelError>;

/// Checks the metadata and tensor table a loader trusts, with `overrides`
/// applied over the file's metadata first.
pub fn validate_model(f: &GgufFile, overrides: &[MetaOverride]) -> Result<()> {
    let m = Meta::new(f, overrides);
    let arch = check_arch(&m)?;
    check_per_layer_overrides(f, overrides, &arch)?;
    let n_layer = check_blocks(&m, &arch)?;
    check_dims(&m, &arch, n_layer)?;
    check_floats(&m, &arch)?;
    check_moe(&m, &arch, n_layer)?;
    crate::vocab::check_tokenizer(&m, &arch)
}

/// Metadata with overrides layered on top.
pub(crate) struct Meta<'a> {
    pub(crate) file: &'a GgufFile,
    pub(crate) over: BTreeMap<String, Value>,
}

impl<'a> Meta<'a> {
    fn new(file: &'a GgufFile, overrides: &[MetaOverride]) -> Self {
        let over = overrides.iter().map(|o| (o.key.clone(), o.value.to_value())).collect();
        Meta { file, over }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.over.get(key).or_else(|| self.file.metadata.get(key))
    }

    /// An optional non-negative integer.
    pub(crate) fn uint(&self, key: &str) -> Result<Option<u64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let i = v.as_int().ok_or_else(|| wrong_type(key, "integer", v))?;
        u64::try_from(i).map(Some).map_err(|_| invalid(key, i, "must not be negative"))
    }

    pub(crate) fn required_uint(&self, key: &str) -> Result<u64> {
        self.uint(key)?.ok_or_else(|| missing(key))
    }

    pub(crate) fn array(&self, key: &str) -> Result<Option<&Array>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(wrong_type(key, "array", v)),
        }
    }

    /// A per-layer value given as a scalar or as an array of `n_layer` ints.
    fn per_layer(&self, key: &str, n_layer: u64) -> Result<Option<Vec<u64>>> {
        let Some(Value::Array(a)) = self.get(key) else {
            // n_layer is already bounded by MAX_BLOCKS.
            return Ok(self.uint(key)?.map(|v| vec![v; n_layer as usize]));
        };
        let ints = a.ints().ok_or_else(|| wrong_elem(key, "integer array", a))?;
        if ints.len() as u64 != n_layer {
            let why = format!("per-layer array has {} entries but block_count is {n_layer}", ints.len());
            return Err(invalid(key, format!("[{} values]", ints.len()), why));
        }
        ints.into_iter()
            .map(|i| u64::try_from(i).map_err(|_| invalid(key, i, "must not be negative")))
            .collect::<Result<Vec<u64>>>()
            .map(Some)
    }
}

pub(crate) fn invalid(key: &str, value: impl Display, reason: impl Into<String>) -> ModelError {
    ModelError::Invalid { key: key.to_string(), value: value.to_string(), reason: reason.into() }
}

pub(crate) fn missing(key: &str) -> ModelError {
    ModelError::MissingKey { key: key.to_string() }
}

pub(crate) fn wrong_type(key: &str, expected: &'static str, found: &Value) -> ModelError {
    let found = match found {
        Value::Array(a) => format!("array of {}", a.elem_type_name()),
        v => v.type_name().to_string(),
    };
    ModelError::WrongType { key: key.to_string(), expected, found }
}

/// Like `wrong_type` for arrays, without cloning the elements.
pub(crate) fn wrong_elem(key: &str, expected: &'static str, found: &Array) -> ModelError {
    ModelError::WrongType { key: key.to_string(), expected, found: format!("array of {}", found.elem_type_name()) }
}

fn in_range(key: &str, v: u64, min: u64, max: u64) -> Result<()> {
    if v < min || v > max {
        return Err(invalid(key, v, format!("must be between {min} and {max}")));
    }
    Ok(())
}

fn check_arch(m: &Meta) -> Result<String> {
    let key = "general.architecture";
    let v = m.get(key).ok_or_else(|| missing(key))?;
    let arch = v.as_str().ok_or_else(|| wrong_type(key, "string", v))?;
    if !SUPPORTED_ARCHS.contains(&arch) {
        return Err(ModelError::UnknownArch { arch: arch.to_string() });
    }
    Ok(arch.to_string())
}

/// The layer index of a `blk.N.*` tensor name.
fn block_index(name: &str) -> Option<std::result::Result<u64, ()>> {
    let rest = name.strip_prefix("blk.")?;
    let num = rest.split('.').next().unwrap_or("");
    Some(num.parse::<u64>().map_err(|_| ()))
}

/// Keys llama.cpp reads with `get_key_or_arr` (a scalar or one value per
/// layer). That reader only consults an override when the file itself holds
/// the key as a scalar: for a missing key it returns "not found", for an
/// array it returns the file's array. Either way the override would be
/// silently ignored (and a missing `expert_used_count` with experts aborts
/// llama.cpp), so such an override is refused here.
const PER_LAYER_KEYS: &[&str] = &[
    "attention.head_count",
    "attention.head_count_kv",
    "feed_forward_length",
    "expert_used_count",
    "expert_feed_forward_length",
];

fn check_per_layer_overrides(f: &GgufFile, overrides: &[MetaOverride], arch: &str) -> Result<()> {
    for o in overrides {
        let Some(suffix) = o.key.strip_prefix(arch).and_then(|k| k.strip_prefix('.')) else { continue };
        if !PER_LAYER_KEYS.contains(&suffix) {
            continue;
        }
        let reason = match f.metadata.get(&o.key) {
            None => "llama.cpp ignores an override of this key when the file does not set it",
            Some(Value::Array(_)) => "llama.cpp ignores an override of this key when the file sets it per layer",
            Some(_) => continue,
        };
        return Err(invalid(&o.key, o.value.to_value(), reason));
    }
    Ok(())
}

fn check_blocks(m: &Meta, arch: &str) -> Result<u64> {
    let key = format!("{arch}.block_count");
    let n = m.required_uint(&key)?;
    in_range(&key, n, 1, MAX_BLOCKS)?;
    let mut highest: Option<u64> = None;
    for t in &m.file.tensors {
        match block_index(&t.name) {
            None => {}
            Some(Err(())) => return Err(invalid("tensor name", &t.name, "blk.N prefix without a layer number")),
            Some(Ok(i)) => highest = Some(highest.map_or(i, |h| h.max(i))),
        }
    }
    match highest {
        Some(h) if h.checked_add(1) != Some(n) => {
            Err(invalid(&key, n, format!("the file has layer tensors blk.0 to blk.{h}")))
        }
        _ => Ok(n),
    }
}

fn check_dims(m: &Meta, arch: &str, n_layer: u64) -> Result<()> {
    let embd_key = format!("{arch}.embedding_length");
    let n_embd = m.required_uint(&embd_key)?;
    in_range(&embd_key, n_embd, 1, MAX_EMBD)?;
    let ctx_key = format!("{arch}.context_length");
    in_range(&ctx_key, m.required_uint(&ctx_key)?, 1, MAX_CTX)?;
    let min = u64::from(!RECURRENT_ARCHS.contains(&arch));
    let heads = check_layer_values(m, &format!("{arch}.attention.head_count"), n_layer, min, MAX_HEADS)?;
    let kv_key = format!("{arch}.attention.head_count_kv");
    let kv = check_layer_values(m, &kv_key, n_layer, min, MAX_HEADS)?;
    if let (Some(h), Some(kv)) = (heads, kv) {
        check_gqa(&kv_key, &h, &kv)?;
    }
    check_layer_values(m, &format!("{arch}.feed_forward_length"), n_layer, 0, MAX_FF)?;
    check_embedding_tensor(m, arch, n_embd)
}

/// Checks a scalar-or-array hparam; scalars must be at least `min_scalar`,
/// array entries may be zero (layers without that component).
fn check_layer_values(m: &Meta, key: &str, n_layer: u64, min_scalar: u64, max: u64) -> Result<Option<Vec<u64>>> {
    let is_array = matches!(m.get(key), Some(Value::Array(_)));
    let Some(vals) = m.per_layer(key, n_layer)? else {
        return Ok(None);
    };
    let min = if is_array { 0 } else { min_scalar };
    for &v in &vals {
        in_range(key, v, min, max)?;
    }
    Ok(Some(vals))
}

fn check_gqa(kv_key: &str, heads: &[u64], kv: &[u64]) -> Result<()> {
    for (layer, (&h, &k)) in heads.iter().zip(kv).enumerate() {
        if k == 0 || h == 0 {
            continue;
        }
        if k > h || h % k != 0 {
            return Err(invalid(kv_key, k, format!("must divide the head count {h} (layer {layer})")));
        }
    }
    Ok(())
}

fn check_embedding_tensor(m: &Meta, arch: &str, n_embd: u64) -> Result<()> {
    if NO_VOCAB_ARCHS.contains(&arch) {
        return Ok(());
    }
    let Some(t) = m.file.tensors.iter().find(|t| t.name == "token_embd.weight") else {
        return Ok(());
    };
    let key = format!("{arch}.embedding_length");
    if t.dims.first() != Some(&n_embd) {
        let why = format!("token_embd.weight has shape {:?}", t.dims);
        return Err(invalid(&key, n_embd, why));
    }
    let vocab_key = format!("{arch}.vocab_size");
    // llama.cpp sizes the vocabulary from <arch>.vocab_size, else the token list.
    let n_vocab = match m.uint(&vocab_key)? {
        Some(v) => Some((vocab_key, v)),
        None => m.array("tokenizer.ggml.tokens")?.map(|a| ("tokenizer.ggml.tokens".to_string(), a.len() as u64)),
    };
    match (n_vocab, t.dims.get(1)) {
        (Some((key, v)), Some(&rows)) if v != rows => {
            Err(invalid(&key, v, format!("token_embd.weight has {rows} rows")))
        }
        _ => Ok(()),
    }
}

fn check_floats(m: &Meta, arch: &str) -> Result<()> {
    let positive =
        ["attention.layer_norm_rms_epsilon", "attention.layer_norm_epsilon", "rope.freq_base", "rope.scale_linear"];
    for suffix in positive {
        check_float(m, &format!("{arch}.{suffix}"), false)?;
    }
    // llama.cpp reads a scaling factor of 0 as "no scaling".
    check_float(m, &format!("{arch}.rope.scaling.factor"), true)
}

fn check_float(m: &Meta, key: &str, zero_ok: bool) -> Result<()> {
    let Some(v) = m.get(key) else {
        return Ok(());
    };
    let x = v.as_f64().ok_or_else(|| wrong_type(key, "float", v))?;
    let ok = x.is_finite() && (x > 0.0 || (zero_ok && x == 0.0));
    if !ok {
        return Err(invalid(key, x, "must be a finite number greater than 0"));
    }
    Ok(())
}

fn check_moe(m: &Meta, arch: &str, n_layer: u64) -> Result<()> {
    let count_key = format!("{arch}.expert_count");
    let used_key = format!("{arch}.expert_used_count");
    let n_expert = m.uint(&count_key)?.unwrap_or(0);
    in_range(&count_key, n_expert, 0, MAX_EXPERTS)?;
    let used = m.per_layer(&used_key, n_layer)?.unwrap_or_default();
    let used_max = used.iter().copied().max().unwrap_or(0);
    if used_max > n_expert {
        return Err(invalid(&used_key, used_max, format!("exceeds {count_key} = {n_expert}")));
    }
    if n_expert > 0 && used_max == 0 {
        return Err(invalid(&used_key, used_max, format!("must be positive when {count_key} = {n_expert}")));
    }
    check_expert_groups(m, arch, n_expert)?;
    check_expert_tensors(m, &count_key, n_expert)
}

fn check_expert_groups(m: &Meta, arch: &str, n_expert: u64) -> Result<()> {
    let groups_key = format!("{arch}.expert_group_count");
    let groups = m.uint(&groups_key)?.unwrap_or(0);
    if groups > 0 && groups >= n_expert {
        return Err(invalid(&groups_key, groups, format!("must be below the expert count {n_expert}")));
    }
    if groups <= 1 {
        return Ok(());
    }
    if n_expert.checked_rem(groups) != Some(0) {
        return Err(invalid(&groups_key, groups, format!("must divide the expert count {n_expert}")));
    }
    let used_key = format!("{arch}.expert_group_used_count");
    let used = m.uint(&used_key)?.unwrap_or(0);
    if used == 0 || used >= groups {
        return Err(invalid(&used_key, used, format!("must be between 1 and {}", groups - 1)));
    }
    Ok(())
}

fn check_expert_tensors(m: &Meta, count_key: &str, n_expert: u64) -> Result<()> {
    for t in &m.file.tensors {
        let routed = t.name.contains("_exps.") || t.name.ends_with(".ffn_gate_inp.weight");
        if !routed {
            continue;
        }
        let last = t.dims.last().copied().unwrap_or(0);
        if last != n_expert {
            let why = format!("expert tensor {} has shape {:?}", t.name, t.dims);
            return Err(invalid(count_key, n_expert, why));
        }
    }
    Ok(())
}
