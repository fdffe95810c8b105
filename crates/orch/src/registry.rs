//! The loaded backends, and which models stay in memory.
//!
//! Each local role maps to an *instance*: a model with the load-time
//! settings of that role (expert count, draft model, lookup n-gram sizes).
//! Roles with the same settings share one instance, and so one worker.
//! Hot instances load at start and stay. Warm ones load on first use; when
//! the memory budget has no room, idle warm instances are unloaded, least
//! recently used first. A request waits (up to the load timeout) while its
//! instance loads or while every instance that could make room is busy;
//! each waiter sleeps on a `Notify` that fires on every state change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use augur_runtime::{Backend, ContextParams, DraftConfig, ModelParams, SpecMode, WorkerConfig};
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::Residency;
use crate::remote::RemoteBackend;
use crate::resolve::{expert_override, ModelDef, ModelPaths, RoleBackend, RoleDef, TeamConfig};
use crate::OrchError;

/// A model as one role set loads it.
#[derive(Debug, Clone)]
pub struct InstancePlan {
    pub key: String,
    pub model: ModelDef,
    pub path: PathBuf,
    pub params: ModelParams,
    pub lookup_ngram: Option<(usize, usize)>,
    pub spec_mode: SpecMode,
    pub spec_max: usize,
    pub spec_tree: bool,
    pub suffix: Option<augur_runtime::SuffixTuning>,
    pub draft: Option<(ModelDef, PathBuf)>,
    /// Bytes reserved in the budget while loaded or loading.
    pub memory: u64,
    pub hot: bool,
    pub roles: Vec<String>,
}

/// Builds a backend from an instance; runs on a blocking thread.
pub type LoadFn = Arc<dyn Fn(&InstancePlan) -> Result<Arc<dyn Backend>, String> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadState {
    Loaded,
    Loading,
    Unloaded,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceStatus {
    pub id: String,
    pub model: String,
    pub state: LoadState,
    pub residency: &'static str,
    pub memory_bytes: u64,
    pub roles: Vec<String>,
    pub in_use: usize,
    /// Why the last load failed, until the next attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

enum State {
    Unloaded,
    Loading,
    Loaded(Arc<dyn Backend>),
    Failed(String),
}

struct Slot {
    spec: Arc<InstancePlan>,
    state: State,
    in_use: usize,
    last_used: u64,
    /// Bumped at every load, so a waiter can tell its load failed from a
    /// later one it never waited for.
    attempt: u64,
}

struct Inner {
    slots: BTreeMap<String, Slot>,
    used: u64,
    clock: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    changed: Notify,
    load: LoadFn,
    budget: u64,
    timeout: Duration,
    role_instance: BTreeMap<String, String>,
    remotes: BTreeMap<String, Arc<dyn Backend>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain bookkeeping behind;
        // keep serving rather than poison every later request.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A backend in use. A local instance cannot be unloaded until its lease
/// is dropped; a remote role's lease holds nothing back.
pub struct Lease {
    backend: Arc<dyn Backend>,
    /// The local instance this lease keeps loaded.
    held: Option<(String, Arc<Shared>)>,
}

impl Lease {
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The local instance serving it, if the role is local.
    pub fn instance(&self) -> Option<&str> {
        self.held.as_ref().map(|(k, _)| k.as_str())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some((key, shared)) = &self.held else { return };
        let mut inner = shared.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some(slot) = inner.slots.get_mut(key) {
            slot.in_use = slot.in_use.saturating_sub(1);
            slot.last_used = now;
        }
        drop(inner);
        shared.changed.notify_waiters();
    }
}

enum Step {
    Ready(Lease),
    Wait,
    Load(Arc<InstancePlan>),
}

#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

pub struct RegistryOptions {
    pub budget: u64,
    pub load_timeout: Duration,
    /// Requests sent at once to each remote backend.
    pub remote_capacity: usize,
}

impl Registry {
    pub fn new(instances: Vec<InstancePlan>, cfg: &TeamConfig, opts: RegistryOptions, load: LoadFn) -> Registry {
        let mut role_instance = BTreeMap::new();
        let mut slots = BTreeMap::new();
        for inst in instances {
            for r in &inst.roles {
                role_instance.insert(r.clone(), inst.key.clone());
            }
            let slot = Slot { spec: Arc::new(inst), state: State::Unloaded, in_use: 0, last_used: 0, attempt: 0 };
            slots.insert(slot.spec.key.clone(), slot);
        }
        let remotes = cfg
            .roles
            .values()
            .filter_map(|r| match &r.backend {
                RoleBackend::OpenAi(spec) => {
                    let remote: Arc<dyn Backend> = Arc::new(RemoteBackend::new(spec.clone(), opts.remote_capacity));
                    Some((r.name.clone(), remote))
                }
                RoleBackend::Local => None,
            })
            .collect();
        let inner = Inner { slots, used: 0, clock: 0 };
        let shared = Shared {
            inner: Mutex::new(inner),
            changed: Notify::new(),
            load,
            budget: opts.budget,
            timeout: opts.load_timeout,
            role_instance,
            remotes,
        };
        Registry { shared: Arc::new(shared) }
    }

    pub fn budget(&self) -> u64 {
        self.shared.budget
    }

    /// The instance serving a local role.
    pub fn instance_of(&self, role: &str) -> Option<&str> {
        self.shared.role_instance.get(role).map(String::as_str)
    }

    /// The backend for `role`, loading its instance if needed.
    pub async fn acquire_role(&self, role: &str) -> Result<Lease, OrchError> {
        if let Some(r) = self.shared.remotes.get(role) {
            return Ok(Lease { backend: r.clone(), held: None });
        }
        let key = self.instance_of(role).ok_or_else(|| OrchError::NoSuchTarget(role.to_string()))?.to_string();
        self.acquire(&key).await
    }

    /// Load every hot instance, one after another.
    pub async fn load_hot(&self) -> Result<(), OrchError> {
        let hot: Vec<String> =
            self.shared.lock().slots.values().filter(|s| s.spec.hot).map(|s| s.spec.key.clone()).collect();
        for key in hot {
            drop(self.acquire(&key).await?);
        }
        Ok(())
    }

    /// A lease on instance `key`, waiting (bounded) while it loads or while
    /// the budget has no room.
    pub async fn acquire(&self, key: &str) -> Result<Lease, OrchError> {
        let deadline = tokio::time::Instant::now() + self.shared.timeout;
        let mut waited_on = None;
        loop {
            // Registered before the state is read, so no change is missed.
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.step(key, &mut waited_on)? {
                Step::Ready(lease) => return Ok(lease),
                Step::Load(spec) => self.spawn_load(spec),
                Step::Wait => {}
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(OrchError::LoadTimeout { model: key.to_string(), secs: self.shared.timeout.as_secs() });
            }
        }
    }

    fn step(&self, key: &str, waited_on: &mut Option<u64>) -> Result<Step, OrchError> {
        let mut inner = self.shared.lock();
        let budget = self.shared.budget;
        let slot = inner.slots.get_mut(key).ok_or_else(|| OrchError::NoSuchTarget(key.to_string()))?;
        match &slot.state {
            State::Loaded(b) => {
                slot.in_use += 1;
                let lease = Lease { backend: b.clone(), held: Some((key.to_string(), self.shared.clone())) };
                return Ok(Step::Ready(lease));
            }
            State::Loading => {
                *waited_on = Some(slot.attempt);
                return Ok(Step::Wait);
            }
            State::Failed(msg) if *waited_on == Some(slot.attempt) => {
                return Err(OrchError::LoadFailed { model: key.to_string(), message: msg.clone() })
            }
            State::Failed(_) | State::Unloaded => {}
        }
        let need = slot.spec.memory;
        if need > budget {
            return Err(OrchError::OverBudget { model: key.to_string(), need, budget });
        }
        if !make_room(&mut inner, need, budget) {
            return Ok(Step::Wait);
        }
        let slot = inner.slots.get_mut(key).ok_or_else(|| OrchError::NoSuchTarget(key.to_string()))?;
        slot.state = State::Loading;
        slot.attempt += 1;
        *waited_on = Some(slot.attempt);
        let spec = slot.spec.clone();
        inner.used += need;
        Ok(Step::Load(spec))
    }

    fn spawn_load(&self, spec: Arc<InstancePlan>) {
        let shared = self.shared.clone();
        tracing::info!("loading {} ({} bytes reserved)", spec.key, spec.memory);
        tokio::task::spawn_blocking(move || {
            let result = (shared.load)(&spec);
            let mut inner = shared.lock();
            let failed = result.is_err();
            if let Some(slot) = inner.slots.get_mut(&spec.key) {
                slot.state = match result {
                    Ok(b) => State::Loaded(b),
                    Err(e) => {
                        tracing::error!("loading {} failed: {e}", spec.key);
                        State::Failed(e)
                    }
                };
            }
            if failed {
                inner.used = inner.used.saturating_sub(spec.memory);
            }
            drop(inner);
            shared.changed.notify_waiters();
        });
    }

    pub fn status(&self) -> Vec<InstanceStatus> {
        let inner = self.shared.lock();
        inner.slots.values().map(status_of).collect()
    }

    /// Bytes reserved by loaded and loading instances.
    pub fn used(&self) -> u64 {
        self.shared.lock().used
    }
}

fn status_of(s: &Slot) -> InstanceStatus {
    let (state, error) = match &s.state {
        State::Loaded(_) => (LoadState::Loaded, None),
        State::Loading => (LoadState::Loading, None),
        State::Unloaded => (LoadState::Unloaded, None),
        State::Failed(e) => (LoadState::Unloaded, Some(e.clone())),
    };
    InstanceStatus {
        id: s.spec.key.clone(),
        model: s.spec.model.name.clone(),
        state,
        residency: if s.spec.hot { "hot" } else { "warm" },
        memory_bytes: s.spec.memory,
        roles: s.spec.roles.clone(),
        in_use: s.in_use,
        error,
    }
}

/// Unload idle warm instances, least recently used first, until `need`
/// fits. False (and nothing unloaded) if it cannot fit yet.
fn make_room(inner: &mut Inner, need: u64, budget: u64) -> bool {
    let mut idle: Vec<(u64, String, u64)> = inner
        .slots
        .values()
        .filter(|s| matches!(s.state, State::Loaded(_)) && s.in_use == 0 && !s.spec.hot)
        .map(|s| (s.last_used, s.spec.key.clone(), s.spec.memory))
        .collect();
    idle.sort();
    let free = budget.saturating_sub(inner.used);
    let reclaimable: u64 = idle.iter().map(|(_, _, m)| m).sum();
    if free.saturating_add(reclaimable) < need {
        return false;
    }
    for (_, key, mem) in idle {
        if budget.saturating_sub(inner.used) >= need {
            break;
        }
        if let Some(slot) = inner.slots.get_mut(&key) {
            if let State::Loaded(b) = std::mem::replace(&mut slot.state, State::Unloaded) {
                tracing::info!("unloading {key} to make room");
                // Dropping a worker joins its thread; keep that off the lock
                // holder's async thread.
                std::thread::spawn(move || drop(b));
            }
            inner.used = inner.used.saturating_sub(mem);
        }
    }
    true
}

/// One instance per distinct set of load-time settings among local roles.
pub fn plan_instances(cfg: &TeamConfig, paths: &ModelPaths) -> Result<Vec<InstancePlan>, OrchError> {
    let mut by_key: BTreeMap<String, InstancePlan> = BTreeMap::new();
    for role in cfg.roles.values().filter(|r| r.backend == RoleBackend::Local) {
        let inst = instance_for(cfg, role, paths)?;
        match by_key.get_mut(&inst.key) {
            Some(existing) => {
                existing.roles.push(role.name.clone());
                existing.hot |= inst.hot;
            }
            None => {
                by_key.insert(inst.key.clone(), inst);
            }
        }
    }
    Ok(by_key.into_values().collect())
}

fn model_of<'a>(cfg: &'a TeamConfig, role: &RoleDef) -> Result<&'a ModelDef, OrchError> {
    let name = role.model.as_deref().ok_or_else(|| OrchError::NoSuchTarget(role.name.clone()))?;
    cfg.models.get(name).ok_or_else(|| OrchError::NoSuchTarget(name.to_string()))
}

fn path_of(paths: &ModelPaths, m: &ModelDef) -> Result<PathBuf, OrchError> {
    paths.get(&m.name).cloned().ok_or_else(|| OrchError::Source {
        path: format!("models.{}.source", m.name),
        source_name: m.source.clone(),
        message: "not resolved".into(),
    })
}

fn instance_for(cfg: &TeamConfig, role: &RoleDef, paths: &ModelPaths) -> Result<InstancePlan, OrchError> {
    let model = model_of(cfg, role)?;
    let path = path_of(paths, model)?;
    let header = augur_gguf::read_file(&path).map_err(|e| OrchError::Source {
        path: format!("models.{}.source", model.name),
        source_name: model.source.clone(),
        message: e.to_string(),
    })?;
    let mut overrides = model.overrides.clone();
    let mut parts = Vec::new();
    if let Some(n) = role.accel.experts {
        let o = expert_override(&header, n)
            .map_err(|m| OrchError::Key { path: format!("roles.{}.acceleration.experts", role.name), message: m })?;
        overrides.retain(|x| x.key != o.key);
        overrides.push(o);
        parts.push(format!("experts={n}"));
    }
    let draft = match &role.accel.draft {
        Some(d) => {
            let dm = model_of(cfg, cfg.roles.get(d).ok_or_else(|| OrchError::NoSuchTarget(d.clone()))?)?;
            parts.push(format!("draft={}", dm.name));
            Some((dm.clone(), path_of(paths, dm)?))
        }
        None => None,
    };
    if let Some((a, b)) = role.accel.lookup_ngram {
        parts.push(format!("lookup={a}-{b}"));
    }
    if role.accel.spec_tree {
        // Trees load the model with another attention layout.
        parts.push("tree".into());
    }
    // Explicit defaults load the same worker as no setting.
    let suffix = role.accel.suffix.filter(|t| *t != augur_runtime::SuffixTuning::default());
    if let Some(t) = suffix {
        parts.push(format!("suffix={}x{}", t.min_token_prob, t.spec_factor));
    }
    let key = if parts.is_empty() { model.name.clone() } else { format!("{}+{}", model.name, parts.join(",")) };
    let draft_mem = draft.as_ref().map_or(0, |(m, p)| memory_of(m, p));
    Ok(InstancePlan {
        key,
        params: ModelParams { mmap: true, repack: model.repack, overrides },
        memory: memory_estimate(model, &header).saturating_add(draft_mem),
        hot: model.residency == Residency::Hot,
        model: model.clone(),
        path,
        lookup_ngram: role.accel.lookup_ngram,
        spec_mode: role.accel.spec.unwrap_or(if draft.is_some() { SpecMode::Auto } else { SpecMode::Lookup }),
        spec_max: role.accel.spec_max.unwrap_or(16),
        spec_tree: role.accel.spec_tree,
        suffix,
        draft,
        roles: vec![role.name.clone()],
    })
}

fn memory_of(m: &ModelDef, path: &std::path::Path) -> u64 {
    match augur_gguf::read_file(path) {
        Ok(h) => memory_estimate(m, &h),
        Err(_) => m.memory.unwrap_or(0),
    }
}

/// The configured size, else the weights plus 16-bit KV caches for the
/// model's context twice (the decode context and the one prompts are
/// prefilled in) and for the saved prompt prefixes (when full), plus an
/// eighth of the weights for compute buffers.
pub fn memory_estimate(m: &ModelDef, h: &augur_gguf::GgufFile) -> u64 {
    if let Some(bytes) = m.memory {
        return bytes;
    }
    let arch = h.arch().unwrap_or("");
    let get = |k: &str| h.get_u64(&format!("{arch}.{k}")).unwrap_or(0);
    let n_head = get("attention.head_count").max(1);
    let head_dim = match get("attention.key_length") {
        0 => get("embedding_length") / n_head,
        k => k,
    };
    let kv_heads = match get("attention.head_count_kv") {
        0 => n_head,
        k => k,
    };
    let saved = match m.prefix_cache {
        augur_runtime::PrefixReuse::Off => 0,
        _ => m.prefix_store.unwrap_or(augur_runtime::prefix_store::DEFAULT_CONTEXTS * m.ctx as usize) as u64,
    };
    let kv = 2 * get("block_count") * (2 * u64::from(m.ctx) + saved) * kv_heads * head_dim * 2;
    h.file_size + kv + h.file_size / 8
}

/// The worker settings of an instance. `queue`: requests that may wait.
pub fn worker_config(inst: &InstancePlan, queue: usize, state_dir: Option<&std::path::Path>) -> WorkerConfig {
    let mut context = ContextParams { n_ctx: inst.model.ctx, ..ContextParams::default() };
    if let Some(t) = inst.model.threads {
        context.threads = t;
        context.threads_batch = t;
    }
    let mut spec = augur_runtime::SpecSettings {
        mode: inst.spec_mode,
        spec_max: inst.spec_max,
        tree: inst.spec_tree,
        suffix: inst.suffix.unwrap_or_default(),
        ..Default::default()
    };
    if let Some((lo, hi)) = inst.lookup_ngram {
        spec.lookup.n_min = lo;
        spec.lookup.n_max = hi;
    }
    let draft = inst.draft.as_ref().map(|(m, p)| DraftConfig {
        path: p.clone(),
        model: ModelParams { mmap: true, repack: m.repack, overrides: m.overrides.clone() },
        context: context.clone(),
    });
    let stem: String = inst.key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    WorkerConfig {
        model: inst.params.clone(),
        context,
        queue,
        spec,
        draft,
        calibration_dir: state_dir.map(|d| d.join("calibration")),
        suffix_store: state_dir.map(|d| d.join("suffix").join(format!("{stem}.bin"))),
        prefix_cache: inst.model.prefix_cache,
        prefix_store: inst.model.prefix_store,
        ..WorkerConfig::new(&inst.key, inst.path.clone())
    }
}

/// MemAvailable from /proc/meminfo, in bytes.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The configured budget, else the configured fraction of MemAvailable
/// (unlimited if that cannot be read).
pub fn budget_for(cfg: &TeamConfig) -> u64 {
    cfg.residency.budget.unwrap_or_else(|| match mem_available() {
        Some(m) => (m as f64 * cfg.residency.budget_fraction) as u64,
        None => u64::MAX,
    })
}

impl InstancePlan {
    /// The overrides in `--override-kv` syntax (for the load check's key).
    pub fn override_args(&self) -> Vec<String> {
        use augur_gguf::OverrideValue as V;
        self.params
            .overrides
            .iter()
            .map(|o| match &o.value {
                V::Int(v) => format!("{}=int:{v}", o.key),
                V::Float(v) => format!("{}=float:{v}", o.key),
                V::Bool(v) => format!("{}=bool:{v}", o.key),
                V::Str(v) => format!("{}=str:{v}", o.key),
            })
            .collect()
    }
}
