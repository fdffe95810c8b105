//! Checking the team tables and turning them into [`TeamConfig`].
//!
//! Two stages: [`TeamConfig::from_file`] checks everything the text alone
//! decides (references between tables, ranges, regexes); [`check_files`]
//! then opens the model files (GGUF headers only) for what needs them:
//! sources that exist, draft vocabularies equal to their targets', expert
//! counts the model has. Every problem is collected, not just the first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use augur_gguf::{GgufFile, MetaOverride};
use augur_runtime::{PrefixReuse, SpecMode, SuffixTuning};
use regex::Regex;

use crate::config::{
    size_bytes, AccelEntry, BackendEntry, DefaultsEntry, ModelEntry, Residency, RoleEntry, RoutingEntry, RuleEntry,
    TeamFile,
};
use crate::OrchError;

/// Role names with a meaning of their own; any other name is user-defined.
pub const FRONTDOOR: &str = "frontdoor";
pub const BUILTIN_ROLES: [&str; 6] = ["frontdoor", "coder", "architect", "worker", "ingest_long_context", "draft"];
/// The `model` a request sends to be routed by the front door.
pub const AUTO: &str = "auto";

#[derive(Debug, Clone)]
pub struct TeamConfig {
    pub models: BTreeMap<String, ModelDef>,
    pub roles: BTreeMap<String, RoleDef>,
    pub routing: RoutingDef,
    pub residency: ResidencyDef,
}

#[derive(Debug, Clone)]
pub struct ModelDef {
    pub name: String,
    pub source: String,
    pub threads: Option<i32>,
    pub ctx: u32,
    pub overrides: Vec<MetaOverride>,
    pub residency: Residency,
    /// Configured resident size; `None`: estimated from the file.
    pub memory: Option<u64>,
    pub repack: bool,
    pub prefix_cache: PrefixReuse,
    pub prefix_store: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct RoleDef {
    pub name: String,
    pub tier: u32,
    pub model: Option<String>,
    pub description: Option<String>,
    pub system_prompt: Option<String>,
    pub escalation: Vec<String>,
    pub gate: Option<Vec<String>>,
    pub accel: Accel,
    pub defaults: DefaultsEntry,
    pub backend: RoleBackend,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accel {
    pub spec: Option<SpecMode>,
    /// Role whose model drafts.
    pub draft: Option<String>,
    pub spec_max: Option<usize>,
    pub spec_tree: bool,
    /// Set when the file sets either suffix key; the rest from the defaults.
    pub suffix: Option<SuffixTuning>,
    pub lookup_ngram: Option<(usize, usize)>,
    pub experts: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleBackend {
    Local,
    OpenAi(RemoteDef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDef {
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct RoutingDef {
    pub default: String,
    /// The front door role, when there is one and classification is on.
    pub classifier: Option<String>,
    pub classify_roles: Vec<String>,
    pub max_escalations: usize,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub role: String,
    /// Lower-cased; matched as whole words, any one suffices.
    pub keywords: Vec<String>,
    pub regex: Option<Regex>,
    pub has_code: Option<bool>,
    pub min_chars: Option<usize>,
    pub max_chars: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ResidencyDef {
    pub budget: Option<u64>,
    pub budget_fraction: f64,
    pub load_timeout: Duration,
}

const MAX_SPEC: usize = 64;
const DEFAULT_CTX: u32 = 4096;

impl TeamConfig {
    /// Parse and check the team tables of a config file's text.
    pub fn from_toml(text: &str) -> Result<TeamConfig, OrchError> {
        Self::from_file(crate::config::parse_team(text)?)
    }

    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<TeamConfig, OrchError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| OrchError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text)
    }

    pub fn from_file(f: TeamFile) -> Result<TeamConfig, OrchError> {
        let mut errs = Vec::new();
        let models: BTreeMap<String, ModelDef> = f
            .models
            .iter()
            .filter_map(|(n, m)| keep(&mut errs, model_spec(n, m)))
            .map(|m| (m.name.clone(), m))
            .collect();
        for name in f.models.keys() {
            check_name(&mut errs, &format!("models.{name}"), name);
        }
        let mut roles = BTreeMap::new();
        for (n, r) in &f.roles {
            check_name(&mut errs, &format!("roles.{n}"), n);
            if let Some(spec) = keep(&mut errs, role_spec(n, r, &f)) {
                roles.insert(n.clone(), spec);
            }
        }
        let routing = keep(&mut errs, routing_spec(&f.routing, &f.roles));
        let residency = keep(&mut errs, residency_spec(&f));
        OrchError::collect(errs)?;
        match (routing, residency) {
            (Some(routing), Some(residency)) => Ok(TeamConfig { models, roles, routing, residency }),
            _ => Err(OrchError::key("", "invalid configuration")),
        }
    }

    /// Whether the file configures a team at all.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.models.is_empty()
    }

    /// A role, or the name of a model served through an implicit role.
    pub fn role(&self, name: &str) -> Option<&RoleDef> {
        self.roles.get(name)
    }

    /// The roles tried for a request that starts at `role`, in order.
    pub fn chain(&self, role: &str) -> Vec<String> {
        let mut chain = vec![role.to_string()];
        if let Some(r) = self.roles.get(role) {
            chain.extend(r.escalation.iter().take(self.routing.max_escalations).cloned());
        }
        chain
    }
}

fn keep<T>(errs: &mut Vec<OrchError>, r: Result<T, OrchError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(OrchError::Many(v)) => {
            errs.extend(v);
            None
        }
        Err(e) => {
            errs.push(e);
            None
        }
    }
}

/// Names appear in URLs, headers and `model` fields: keep them plain.
fn check_name(errs: &mut Vec<OrchError>, path: &str, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != AUTO;
    if !ok {
        errs.push(OrchError::key(path, format!("name {name:?} must be 1-64 of [A-Za-z0-9._-] and not \"auto\"")));
    }
}

fn model_spec(name: &str, m: &ModelEntry) -> Result<ModelDef, OrchError> {
    let p = format!("models.{name}");
    let mut errs = Vec::new();
    if m.source.trim().is_empty() {
        errs.push(OrchError::key(format!("{p}.source"), "must name a catalogue model, a path or hf:OWNER/REPO/FILE"));
    }
    let overrides: Vec<MetaOverride> = m
        .overrides
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            keep(
                &mut errs,
                MetaOverride::parse(o).map_err(|e| OrchError::key(format!("{p}.overrides[{i}]"), e.to_string())),
            )
        })
        .collect();
    let ctx = m.ctx.unwrap_or(DEFAULT_CTX);
    if !(64..=1 << 20).contains(&ctx) {
        errs.push(OrchError::key(format!("{p}.ctx"), format!("must be in 64..=1048576, got {ctx}")));
    }
    if m.threads.is_some_and(|t| !(1..=1024).contains(&t)) {
        errs.push(OrchError::key(format!("{p}.threads"), "must be in 1..=1024"));
    }
    let memory = m.memory.as_ref().and_then(|s| keep(&mut errs, size_bytes(&format!("{p}.memory"), s)));
    OrchError::collect(errs)?;
    Ok(ModelDef {
        name: name.to_string(),
        source: m.source.clone(),
        threads: m.threads,
        ctx,
        overrides,
        residency: m.residency,
        memory,
        repack: m.repack.unwrap_or(true),
        prefix_cache: m.prefix_cache.unwrap_or_default(),
        prefix_store: m.prefix_store,
    })
}

fn known(names: impl Iterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = names.map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn unknown_role(path: String, role: &str, f: &TeamFile) -> OrchError {
    OrchError::UnknownRole { path, role: role.to_string(), known: known(f.roles.keys()) }
}

fn role_spec(name: &str, r: &RoleEntry, f: &TeamFile) -> Result<RoleDef, OrchError> {
    let p = format!("roles.{name}");
    let mut errs = Vec::new();
    let backend = keep(&mut errs, backend_spec(&p, name, &r.backend));
    check_role_model(&mut errs, &p, r, backend.as_ref(), f);
    for (i, next) in r.escalation.iter().enumerate() {
        let path = format!("{p}.escalation[{i}]");
        if !f.roles.contains_key(next) {
            errs.push(unknown_role(path, next, f));
        } else if next == name {
            errs.push(OrchError::key(path, "a role cannot escalate to itself"));
        } else if r.escalation[..i].contains(next) {
            errs.push(OrchError::key(path, format!("`{next}` appears twice in the chain")));
        }
    }
    if r.gate.as_ref().is_some_and(|g| g.first().is_none_or(|c| c.is_empty())) {
        errs.push(OrchError::key(format!("{p}.gate"), "must be a non-empty argv list, e.g. [\"sh\", \"-c\", \"...\"]"));
    }
    let accel = keep(&mut errs, accel_spec(&p, name, &r.acceleration, f));
    keep(&mut errs, check_defaults(&p, &r.defaults));
    OrchError::collect(errs)?;
    Ok(RoleDef {
        name: name.to_string(),
        tier: r.tier.unwrap_or(1),
        model: r.model.clone(),
        description: r.description.clone(),
        system_prompt: r.system_prompt.clone(),
        escalation: r.escalation.clone(),
        gate: r.gate.clone(),
        accel: accel.unwrap_or_default(),
        defaults: r.defaults.clone(),
        backend: backend.unwrap_or(RoleBackend::Local),
    })
}

fn check_role_model(errs: &mut Vec<OrchError>, p: &str, r: &RoleEntry, backend: Option<&RoleBackend>, f: &TeamFile) {
    match (&r.model, backend) {
        (Some(m), _) if !f.models.contains_key(m) => errs.push(OrchError::MissingModel {
            path: format!("{p}.model"),
            model: m.clone(),
            known: known(f.models.keys()),
        }),
        (None, Some(RoleBackend::Local)) => {
            errs.push(OrchError::key(format!("{p}.model"), "a local role needs a model (a key of [models])"))
        }
        _ => {}
    }
}

fn backend_spec(p: &str, role: &str, b: &BackendEntry) -> Result<RoleBackend, OrchError> {
    let BackendEntry::Openai { base_url, model, api_key, api_key_env, timeout_secs } = b else {
        return Ok(RoleBackend::Local);
    };
    let p = format!("{p}.backend");
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(OrchError::key(
            format!("{p}.base_url"),
            format!("{base_url:?} must start with http:// or https://"),
        ));
    }
    let api_key = match (api_key, api_key_env) {
        (Some(_), Some(_)) => return Err(OrchError::key(p, "give api_key or api_key_env, not both")),
        (Some(k), None) => Some(k.clone()),
        (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
            OrchError::key(format!("{p}.api_key_env"), format!("environment variable {var} is not set"))
        })?),
        (None, None) => None,
    };
    let secs = timeout_secs.unwrap_or(600);
    if !(1..=86_400).contains(&secs) {
        return Err(OrchError::key(format!("{p}.timeout_secs"), "must be in 1..=86400"));
    }
    Ok(RoleBackend::OpenAi(RemoteDef {
        base_url: base_url.trim_end_matches('/').to_string(),
        model: model.clone().unwrap_or_else(|| role.to_string()),
        api_key,
        timeout: Duration::from_secs(secs),
    }))
}

fn accel_spec(p: &str, role: &str, a: &AccelEntry, f: &TeamFile) -> Result<Accel, OrchError> {
    let p = format!("{p}.acceleration");
    let mut errs = Vec::new();
    if let Some(d) = &a.draft {
        match f.roles.get(d) {
            None => errs.push(unknown_role(format!("{p}.draft"), d, f)),
            Some(_) if d == role => errs.push(OrchError::key(format!("{p}.draft"), "a role cannot draft for itself")),
            Some(dr) if !matches!(dr.backend, BackendEntry::Local) => {
                errs.push(OrchError::key(format!("{p}.draft"), format!("draft role `{d}` must use the local backend")))
            }
            Some(_) => {}
        }
    }
    if a.spec == Some(SpecMode::Draft) && a.draft.is_none() {
        errs.push(OrchError::key(format!("{p}.spec"), "spec = \"draft\" needs a draft role"));
    }
    if a.spec_max.is_some_and(|k| !(1..=MAX_SPEC).contains(&k)) {
        errs.push(OrchError::key(format!("{p}.spec_max"), format!("must be in 1..={MAX_SPEC}")));
    }
    if let Some([lo, hi]) = a.lookup_ngram {
        if !(1 <= lo && lo <= hi && hi <= augur_spec::lookup::MAX_NGRAM) {
            let max = augur_spec::lookup::MAX_NGRAM;
            errs.push(OrchError::key(format!("{p}.lookup_ngram"), format!("need 1 <= min <= max <= {max}")));
        }
    }
    if a.experts == Some(0) {
        errs.push(OrchError::key(format!("{p}.experts"), "must be at least 1"));
    }
    let suffix = (a.suffix_min_prob.is_some() || a.suffix_factor.is_some())
        .then(|| SuffixTuning::with_overrides(a.suffix_min_prob, a.suffix_factor));
    if let Some(t) = suffix {
        if !SuffixTuning::valid_min_token_prob(t.min_token_prob) {
            errs.push(OrchError::key(format!("{p}.suffix_min_prob"), "must be in [0, 1]"));
        }
        if !SuffixTuning::valid_spec_factor(t.spec_factor) {
            errs.push(OrchError::key(
                format!("{p}.suffix_factor"),
                format!("must be in [0, {}]", SuffixTuning::MAX_FACTOR),
            ));
        }
    }
    OrchError::collect(errs)?;
    Ok(Accel {
        spec: a.spec,
        draft: a.draft.clone(),
        spec_max: a.spec_max,
        spec_tree: a.spec_tree.unwrap_or(false),
        suffix,
        lookup_ngram: a.lookup_ngram.map(|[a, b]| (a, b)),
        experts: a.experts,
    })
}

fn check_defaults(p: &str, d: &DefaultsEntry) -> Result<(), OrchError> {
    let p = format!("{p}.defaults");
    let bad = |k: &str, why: &str| Err(OrchError::key(format!("{p}.{k}"), why.to_string()));
    if d.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return bad("temperature", "must be in 0..=2");
    }
    if d.top_p.is_some_and(|t| !(t > 0.0 && t <= 1.0)) {
        return bad("top_p", "must be in (0, 1]");
    }
    if d.min_p.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return bad("min_p", "must be in 0..=1");
    }
    if d.max_tokens == Some(0) {
        return bad("max_tokens", "must be at least 1");
    }
    Ok(())
}

fn routing_spec(r: &RoutingEntry, roles: &BTreeMap<String, RoleEntry>) -> Result<RoutingDef, OrchError> {
    let mut errs = Vec::new();
    let f = TeamFile { roles: roles.clone(), ..TeamFile::default() };
    let role_ok = |errs: &mut Vec<OrchError>, path: String, role: &str| {
        if !roles.contains_key(role) {
            errs.push(unknown_role(path, role, &f));
        }
    };
    if let Some(d) = &r.default {
        role_ok(&mut errs, "routing.default".into(), d);
    }
    let classify_roles = r.classify_roles.clone().unwrap_or_else(|| {
        roles
            .iter()
            .filter(|(n, e)| e.description.is_some() && n.as_str() != FRONTDOOR)
            .map(|(n, _)| n.clone())
            .collect()
    });
    for (i, c) in classify_roles.iter().enumerate() {
        role_ok(&mut errs, format!("routing.classify_roles[{i}]"), c);
    }
    let rules: Vec<Rule> =
        r.rules.iter().enumerate().filter_map(|(i, rule)| keep(&mut errs, compile_rule(i, rule, roles, &f))).collect();
    let max_escalations = r.max_escalations.unwrap_or(2);
    if max_escalations > 8 {
        errs.push(OrchError::key("routing.max_escalations", "must be at most 8"));
    }
    OrchError::collect(errs)?;
    let classify = r.classify.unwrap_or(true) && roles.contains_key(FRONTDOOR) && !classify_roles.is_empty();
    Ok(RoutingDef {
        default: r.default.clone().unwrap_or_else(|| default_role(roles)),
        classifier: classify.then(|| FRONTDOOR.to_string()),
        classify_roles,
        max_escalations,
        rules,
    })
}

/// `worker` if there is one, else the cheapest role (lowest tier, then name).
fn default_role(roles: &BTreeMap<String, RoleEntry>) -> String {
    if roles.contains_key("worker") {
        return "worker".into();
    }
    roles
        .iter()
        .filter(|(n, _)| n.as_str() != "draft")
        .min_by_key(|(n, r)| (r.tier.unwrap_or(1), n.as_str() == FRONTDOOR, n.to_string()))
        .map(|(n, _)| n.clone())
        .unwrap_or_default()
}

fn compile_rule(i: usize, r: &RuleEntry, roles: &BTreeMap<String, RoleEntry>, f: &TeamFile) -> Result<Rule, OrchError> {
    let p = format!("routing.rules[{i}]");
    if !roles.contains_key(&r.role) {
        return Err(unknown_role(format!("{p}.role"), &r.role, f));
    }
    let regex = match &r.regex {
        Some(src) => Some(Regex::new(src).map_err(|e| OrchError::key(format!("{p}.regex"), e.to_string()))?),
        None => None,
    };
    let unconditional = r.keywords.is_empty()
        && regex.is_none()
        && r.has_code.is_none()
        && r.min_chars.is_none()
        && r.max_chars.is_none();
    if unconditional {
        return Err(OrchError::key(
            p,
            "a rule needs at least one condition (keywords, regex, has_code, min/max_chars)",
        ));
    }
    Ok(Rule {
        name: r.name.clone().unwrap_or_else(|| format!("rule {i}")),
        role: r.role.clone(),
        keywords: r.keywords.iter().map(|k| k.to_lowercase()).collect(),
        regex,
        has_code: r.has_code,
        min_chars: r.min_chars,
        max_chars: r.max_chars,
    })
}

fn residency_spec(f: &TeamFile) -> Result<ResidencyDef, OrchError> {
    let r = &f.residency;
    let budget = r.budget.as_ref().map(|s| size_bytes("residency.budget", s)).transpose()?;
    let fraction = r.budget_fraction.unwrap_or(0.8);
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(OrchError::key("residency.budget_fraction", "must be in (0, 1]"));
    }
    let secs = r.load_timeout_secs.unwrap_or(300);
    if !(1..=3600).contains(&secs) {
        return Err(OrchError::key("residency.load_timeout_secs", "must be in 1..=3600"));
    }
    Ok(ResidencyDef { budget, budget_fraction: fraction, load_timeout: Duration::from_secs(secs) })
}

/// Where each model's file is, once [`check_files`] found them.
pub type ModelPaths = BTreeMap<String, PathBuf>;

/// Open every model's GGUF header: sources must resolve (without
/// downloading), draft vocabularies must equal their targets', and an
/// expert count must fit the model.
pub fn check_files(
    cfg: &TeamConfig,
    resolve: &dyn Fn(&str) -> Result<PathBuf, String>,
) -> Result<ModelPaths, OrchError> {
    let mut errs = Vec::new();
    let mut paths = BTreeMap::new();
    let mut headers = BTreeMap::new();
    for (name, m) in &cfg.models {
        let path = format!("models.{name}.source");
        let opened = resolve(&m.source)
            .and_then(|p| augur_gguf::read_file(&p).map(|h| (p, h)).map_err(|e| e.to_string()))
            .map_err(|message| OrchError::Source { path, source_name: m.source.clone(), message });
        if let Some((p, h)) = keep(&mut errs, opened) {
            paths.insert(name.clone(), p);
            headers.insert(name.clone(), h);
        }
    }
    for role in cfg.roles.values() {
        keep(&mut errs, check_draft_vocab(cfg, role, &headers));
        keep(&mut errs, check_experts(role, &headers));
    }
    OrchError::collect(errs)?;
    Ok(paths)
}

fn check_draft_vocab(cfg: &TeamConfig, role: &RoleDef, headers: &BTreeMap<String, GgufFile>) -> Result<(), OrchError> {
    let (Some(draft), Some(target_model)) = (&role.accel.draft, &role.model) else { return Ok(()) };
    let Some(draft_model) = cfg.roles.get(draft).and_then(|d| d.model.as_ref()) else { return Ok(()) };
    let (Some(t), Some(d)) = (headers.get(target_model), headers.get(draft_model)) else { return Ok(()) };
    match vocab_difference(t, d) {
        None => Ok(()),
        Some(why) => Err(OrchError::VocabMismatch {
            path: format!("roles.{}.acceleration.draft", role.name),
            draft: draft.clone(),
            draft_model: draft_model.clone(),
            target_model: target_model.clone(),
            why,
        }),
    }
}

/// How two files' `tokenizer.ggml.tokens` differ, if they do.
pub fn vocab_difference(a: &GgufFile, b: &GgufFile) -> Option<String> {
    let tokens = |f: &GgufFile| match f.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
        Some(augur_gguf::Array::String(v)) => Some(v.clone()),
        _ => None,
    };
    let (Some(ta), Some(tb)) = (tokens(a), tokens(b)) else {
        return Some("a file has no tokenizer.ggml.tokens".into());
    };
    if ta.len() != tb.len() {
        return Some(format!("{} tokens vs {}", ta.len(), tb.len()));
    }
    let i = ta.iter().zip(&tb).position(|(x, y)| x != y)?;
    Some(format!("token {i} is {:?} vs {:?}", ta[i], tb[i]))
}

fn check_experts(role: &RoleDef, headers: &BTreeMap<String, GgufFile>) -> Result<(), OrchError> {
    let (Some(n), Some(model)) = (role.accel.experts, &role.model) else { return Ok(()) };
    let Some(h) = headers.get(model) else { return Ok(()) };
    let path = format!("roles.{}.acceleration.experts", role.name);
    let o = expert_override(h, n).map_err(|m| OrchError::key(&path, m))?;
    augur_gguf::validate_model(h, &[o]).map_err(|e| OrchError::key(path, format!("model `{model}`: {e}")))
}

/// `<arch>.expert_used_count=int:N` for the file's architecture.
pub fn expert_override(h: &GgufFile, n: u32) -> Result<MetaOverride, String> {
    let arch = h.arch().ok_or("the model names no architecture")?;
    if h.get_u64(&format!("{arch}.expert_count")).unwrap_or(0) == 0 {
        return Err(format!("the model ({arch}) is not a mixture of experts"));
    }
    MetaOverride::parse(&format!("{arch}.expert_used_count=int:{n}")).map_err(|e| e.to_string())
}
