//! The team tables of augur's TOML config file, as written.
//!
//! They live in the same file as the server settings (`augur serve --config
//! FILE`): the server reads the top-level keys, this module reads
//! `[models.*]`, `[roles.*]`, `[routing]` and `[residency]`. Every table
//! refuses unknown keys, and errors carry the key's path
//! (`roles.coder.acceleration.spec_maxx`).

use std::collections::BTreeMap;

use augur_runtime::{PrefixReuse, SpecMode};
use serde::Deserialize;

use crate::OrchError;

/// The top-level keys this crate owns; the server ignores exactly these.
pub const TEAM_KEYS: [&str; 4] = ["models", "roles", "routing", "residency"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamFile {
    #[serde(default)]
    pub models: BTreeMap<String, ModelEntry>,
    #[serde(default)]
    pub roles: BTreeMap<String, RoleEntry>,
    #[serde(default)]
    pub routing: RoutingEntry,
    #[serde(default)]
    pub residency: ResidencyEntry,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Residency {
    /// Loaded when the server starts and never unloaded.
    Hot,
    /// Loaded on first use, unloaded (least recently used first) when
    /// another model needs the memory.
    #[default]
    Warm,
}

/// A byte count: an integer, or a string such as `"1.5GiB"` or `"800MB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// Catalogue name, store name, `.gguf` path or `hf:OWNER/REPO/FILE.gguf`.
    pub source: String,
    pub threads: Option<i32>,
    pub ctx: Option<u32>,
    /// `KEY=TYPE:VALUE`, as `--override-kv`.
    #[serde(default)]
    pub overrides: Vec<String>,
    #[serde(default)]
    pub residency: Residency,
    /// Resident memory; default: file size plus the KV cache estimate.
    pub memory: Option<Size>,
    /// llama.cpp's repacked weight layout (faster decode); default true.
    pub repack: Option<bool>,
    /// KV kept between requests, as `--prefix-cache`; default conversation.
    pub prefix_cache: Option<PrefixReuse>,
    /// Positions of earlier prompt prefixes kept in memory, as
    /// `--prefix-store`; default 4 contexts' worth.
    pub prefix_store: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleEntry {
    /// Lower tiers are cheaper; escalation chains should climb.
    pub tier: Option<u32>,
    /// A key of `[models]`; required for the local backend.
    pub model: Option<String>,
    /// One line the front door's classifier sees for this role.
    pub description: Option<String>,
    pub system_prompt: Option<String>,
    /// Roles tried in order when this role's answer fails a check.
    #[serde(default)]
    pub escalation: Vec<String>,
    /// A command (argv) fed the answer on stdin; non-zero exit fails it.
    pub gate: Option<Vec<String>>,
    #[serde(default)]
    pub acceleration: AccelEntry,
    #[serde(default)]
    pub defaults: DefaultsEntry,
    #[serde(default)]
    pub backend: BackendEntry,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccelEntry {
    pub spec: Option<SpecMode>,
    /// A role whose model drafts for this one (same vocabulary).
    pub draft: Option<String>,
    pub spec_max: Option<usize>,
    /// Verify forking suffix drafts as trees (`--spec-tree`).
    pub spec_tree: Option<bool>,
    /// Suffix drafts stop below this estimated probability (`--suffix-min-prob`).
    pub suffix_min_prob: Option<f32>,
    /// Suffix drafts run to this many times their match (`--suffix-factor`).
    pub suffix_factor: Option<f32>,
    /// `[n_min, n_max]` n-gram sizes for prompt lookup.
    pub lookup_ngram: Option<[usize; 2]>,
    /// MoE: experts used per token, applied as `<arch>.expert_used_count`.
    pub experts: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsEntry {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub min_p: Option<f64>,
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BackendEntry {
    #[default]
    Local,
    Openai {
        base_url: String,
        /// The remote model name; default: this role's name.
        model: Option<String>,
        api_key: Option<String>,
        /// Environment variable holding the key (kept out of the file).
        api_key_env: Option<String>,
        timeout_secs: Option<u64>,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingEntry {
    /// Role for requests nothing else decides; default `worker`, else the
    /// lowest tier.
    pub default: Option<String>,
    /// Ask the front door model when no rule decides; default true.
    pub classify: Option<bool>,
    /// Roles the classifier may answer; default: every role with a
    /// description.
    pub classify_roles: Option<Vec<String>>,
    /// Most extra roles tried after a failed check; default 2.
    pub max_escalations: Option<usize>,
    #[serde(default)]
    pub rules: Vec<RuleEntry>,
}

/// All given conditions must hold; `keywords` match if any one does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    pub role: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    pub regex: Option<String>,
    pub has_code: Option<bool>,
    pub min_chars: Option<usize>,
    pub max_chars: Option<usize>,
    /// Shown by `augur route` as the reason.
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidencyEntry {
    /// Memory all resident models may use together.
    pub budget: Option<Size>,
    /// Default budget as a fraction of MemAvailable; default 0.8.
    pub budget_fraction: Option<f64>,
    /// Seconds a request waits for its model to load; default 300.
    pub load_timeout_secs: Option<u64>,
}

/// Parse the team tables of a config file; other top-level keys belong to
/// the server and are left to it.
pub fn parse_team(text: &str) -> Result<TeamFile, OrchError> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| OrchError::Syntax(e.to_string()))?;
    let mut mine = toml::Table::new();
    for key in TEAM_KEYS {
        if let Some(v) = table.remove(key) {
            mine.insert(key.to_string(), v);
        }
    }
    serde_path_to_error::deserialize(toml::Value::Table(mine)).map_err(|e| {
        let path = e.path().to_string();
        OrchError::key(path, e.into_inner().message().to_string())
    })
}

/// Bytes from a [`Size`]: plain, or with a KB/MB/GB (1000s) or KiB/MiB/GiB
/// (1024s) suffix.
pub fn size_bytes(path: &str, size: &Size) -> Result<u64, OrchError> {
    let text = match size {
        Size::Bytes(n) => return Ok(*n),
        Size::Text(t) => t.trim(),
    };
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(OrchError::key(
                path,
                format!("unknown size unit {other:?}; use B, KB, MB, GB, KiB, MiB or GiB"),
            ))
        }
    };
    let n: f64 = num.trim().parse().map_err(|_| OrchError::key(path, format!("{text:?} is not a size")))?;
    if !(n.is_finite() && n >= 0.0) {
        return Err(OrchError::key(path, format!("{text:?} is not a size")));
    }
    Ok((n * mult).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let b = |s: &str| size_bytes("x", &Size::Text(s.into()));
        assert_eq!(b("1.5GiB").unwrap(), 1_610_612_736);
        assert_eq!(b("800MB").unwrap(), 800_000_000);
        assert_eq!(b("12").unwrap(), 12);
        assert!(b("12 parsecs").is_err());
        assert!(b("lots").is_err());
        assert_eq!(size_bytes("x", &Size::Bytes(7)).unwrap(), 7);
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let e = parse_team("port = 1\n[roles.coder.acceleration]\nspec_maxx = 3\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("roles.coder.acceleration"), "{msg}");
        assert!(msg.contains("spec_maxx"), "{msg}");
        let e = parse_team("[models.a]\nsource = \"x\"\nresidency = \"lukewarm\"\n").unwrap_err();
        assert!(e.to_string().contains("models.a.residency"), "{e}");
        let e = parse_team("[roles.r.backend]\ntype = \"grpc\"\n").unwrap_err();
        assert!(e.to_string().contains("roles.r.backend"), "{e}");
        assert!(matches!(parse_team("[models"), Err(OrchError::Syntax(_))));
    }

    #[test]
    fn server_keys_are_left_alone() {
        let t =
            parse_team("port = 9000\nqueue = 2\n[models.m]\nsource = \"gemma-3-270m\"\nresidency = \"hot\"\n").unwrap();
        assert_eq!(t.models["m"].residency, Residency::Hot);
        assert!(t.roles.is_empty());
    }
}
