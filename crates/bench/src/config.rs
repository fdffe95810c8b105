//! Named target configurations and sweeps over them.

use augur_runtime::SpecMode;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// What is measured: the in-process engine under some settings, or an
/// OpenAI-compatible endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetConfig {
    pub name: String,
    /// Catalogue name, store name or .gguf path; for an endpoint, the model
    /// name sent in requests.
    pub model: String,
    pub spec: SpecMode,
    pub spec_max: usize,
    pub draft_model: Option<String>,
    /// Active experts per token (mixture-of-experts models only).
    pub experts: Option<u32>,
    pub threads: Option<i32>,
    /// Context size; `None` sizes it from the longest prompt.
    pub ctx_size: Option<u32>,
    /// Base URL of an OpenAI-compatible server.
    pub endpoint: Option<String>,
    /// Each request in a fresh `augur run` process, as a user of the CLI
    /// meets the engine: nothing learnt in memory, and a suffix store that
    /// starts empty or holds the earlier prompts' answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold: Option<ColdStore>,
    /// The exact command lines that measured this configuration, for
    /// measurements imported from other tools (`bench import`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
}

impl TargetConfig {
    pub fn new(model: &str) -> TargetConfig {
        TargetConfig {
            name: model.into(),
            model: model.into(),
            spec: SpecMode::Off,
            spec_max: 16,
            draft_model: None,
            experts: None,
            threads: None,
            ctx_size: None,
            endpoint: None,
            cold: None,
            commands: Vec::new(),
        }
    }

    pub fn endpoint(url: &str, model: &str) -> TargetConfig {
        TargetConfig { name: format!("endpoint:{model}"), endpoint: Some(url.into()), ..TargetConfig::new(model) }
    }

    /// `MODEL`, or `key=value` pairs joined by commas: name, model, spec
    /// (off|lookup|draft|suffix|auto), spec_max, draft, experts, threads,
    /// ctx, endpoint, cold (fresh|sequence). Without `name`, the name is the spec string itself.
    pub fn parse(spec: &str) -> Result<TargetConfig> {
        if !spec.contains('=') {
            return Ok(TargetConfig::new(spec));
        }
        let mut cfg = TargetConfig::new("");
        let mut named = false;
        for pair in spec.split(',') {
            let (k, v) = pair.split_once('=').ok_or_else(|| bad(spec, format!("{pair:?} is not key=value")))?;
            named |= k == "name";
            cfg.set(k.trim(), v.trim()).map_err(|m| bad(spec, m))?;
        }
        if cfg.model.is_empty() {
            return Err(bad(spec, "model=... is required".into()));
        }
        if !named {
            cfg.name = spec.into();
        }
        Ok(cfg)
    }

    /// Set one field from text; shared by `parse` and sweeps.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("{key}={v}: expected a number"));
        match key {
            "name" => self.name = value.into(),
            "model" => self.model = value.into(),
            "spec" | "mode" => self.spec = parse_mode(value)?,
            "spec_max" => self.spec_max = num(value)?.clamp(1, 64) as usize,
            "draft" | "draft_model" => self.draft_model = Some(value.into()),
            "experts" => self.experts = Some(num(value)? as u32),
            "threads" => self.threads = Some(num(value)? as i32),
            "ctx" | "ctx_size" => self.ctx_size = Some(num(value)? as u32),
            "endpoint" => self.endpoint = Some(value.into()),
            "cold" => self.cold = Some(ColdStore::parse(value)?),
            _ => return Err(format!("unknown key {key:?}")),
        }
        Ok(())
    }
}

impl TargetConfig {
    /// Whether `other` can be served by the same loaded in-process worker:
    /// the same model and load settings, differing only in what a request
    /// chooses (speculation mode and draft length).
    pub fn shares_load(&self, other: &TargetConfig) -> bool {
        self.endpoint.is_none()
            && other.endpoint.is_none()
            && self.commands.is_empty()
            && other.commands.is_empty()
            && (&self.model, &self.draft_model, self.experts, self.threads, self.ctx_size, self.cold)
                == (&other.model, &other.draft_model, other.experts, other.threads, other.ctx_size, other.cold)
    }

    /// The configuration to load for a group that `shares_load`: a draft
    /// model if any member drafts with one, calibration if any speculates.
    pub fn load_for(group: &[&TargetConfig]) -> Option<TargetConfig> {
        let first = *group.first()?;
        let needs = |modes: &[SpecMode]| group.iter().any(|c| modes.contains(&c.spec));
        let spec = if needs(&[SpecMode::Draft, SpecMode::Auto]) {
            SpecMode::Auto
        } else if needs(&[SpecMode::Lookup, SpecMode::Suffix]) {
            SpecMode::Lookup
        } else {
            SpecMode::Off
        };
        let spec_max = group.iter().map(|c| c.spec_max).max().unwrap_or(first.spec_max);
        Some(TargetConfig { spec, spec_max, ..first.clone() })
    }
}

/// What a cold target's suffix store holds when a process starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColdStore {
    /// Nothing: every process starts on an empty store.
    Fresh,
    /// The answers to the earlier prompts of the run, as a user's store
    /// holds earlier answers, and never one to the prompt itself.
    Sequence,
}

impl ColdStore {
    fn parse(v: &str) -> Result<ColdStore, String> {
        match v {
            "fresh" => Ok(ColdStore::Fresh),
            "sequence" => Ok(ColdStore::Sequence),
            _ => Err(format!("cold={v:?}: expected fresh or sequence")),
        }
    }
}

fn bad(spec: &str, message: String) -> BenchError {
    BenchError::Target { spec: spec.into(), message }
}

pub fn parse_mode(v: &str) -> Result<SpecMode, String> {
    Ok(match v {
        "off" => SpecMode::Off,
        "lookup" => SpecMode::Lookup,
        "draft" => SpecMode::Draft,
        "suffix" => SpecMode::Suffix,
        "auto" => SpecMode::Auto,
        _ => return Err(format!("unknown spec mode {v:?} (off, lookup, draft, suffix, auto)")),
    })
}

/// `key=v1,v2,...` with key one of spec_max, mode, experts, threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub key: String,
    pub values: Vec<String>,
}

impl Sweep {
    pub fn parse(spec: &str) -> Result<Sweep> {
        let err = |message: &str| BenchError::Sweep { spec: spec.into(), message: message.into() };
        let (key, values) = spec.split_once('=').ok_or_else(|| err("expected key=v1,v2,..."))?;
        if !matches!(key, "spec_max" | "mode" | "spec" | "experts" | "threads") {
            return Err(err("key must be spec_max, mode, experts or threads"));
        }
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            return Err(err("no values"));
        }
        Ok(Sweep { key: key.into(), values })
    }

    /// One configuration per target per value, named `target/key=value`.
    pub fn expand(&self, targets: &[TargetConfig]) -> Result<Vec<TargetConfig>> {
        let mut out = Vec::new();
        for t in targets {
            for v in &self.values {
                let mut c = t.clone();
                c.set(&self.key, v)
                    .map_err(|message| BenchError::Sweep { spec: format!("{}={v}", self.key), message })?;
                c.name = format!("{}/{}={v}", t.name, self.key);
                out.push(c);
            }
        }
        Ok(out)
    }
}
