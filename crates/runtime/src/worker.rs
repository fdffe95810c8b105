//! One dedicated thread per model: it owns the context, confirms the load,
//! then serves jobs from a bounded queue.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use augur_engine::{Batch, Context, ContextParams, Model, ModelInfo, ModelParams};
use augur_sampling::Token;
use tokio::sync::mpsc;

use augur_grammar::GrammarCompiler;

use crate::backend::{Backend, TokenStream};
use crate::draft::DraftModel;
use crate::generate::Sink;
use crate::grammar::LazyGrammar;
use crate::prefix::PrefixCache;
use crate::prefix_store::PrefixStore;
use crate::probe::Scorer;
use crate::request::{Event, GenerateRequest, SpecMode};
use crate::speculate::{self, SpecSettings, Speculator};
use crate::text::Tokenizer;
use crate::RuntimeError;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub name: String,
    pub path: PathBuf,
    pub model: ModelParams,
    pub context: ContextParams,
    /// Requests that may wait while one runs.
    pub queue: usize,
    pub spec: SpecSettings,
    /// A draft model sharing the target's vocabulary.
    pub draft: Option<DraftConfig>,
    /// Where measured cost curves are cached (none: measure every load).
    pub calibration_dir: Option<PathBuf>,
    /// Where the global suffix tree of this model is persisted.
    pub suffix_store: Option<PathBuf>,
    /// What KV is kept for the next request.
    pub prefix_cache: PrefixReuse,
    /// Positions of earlier prompt prefixes kept off the context (see
    /// `prefix_store`); 0 keeps only the live one. Default: a few contexts.
    pub prefix_store: Option<usize>,
}

/// What a worker keeps in its KV cache between requests. Reuse never
/// changes an output: only KV computed exactly as a cold prefill would
/// compute it is reused (see `prefix`). In a config file:
/// `prefix_cache = "off" | "prompt" | "conversation"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixReuse {
    /// Every request prefills its whole prompt.
    Off,
    /// Keep the last prompt's KV (its whole grains, see `grain`).
    Prompt,
    /// Also, while idle, prefill the last answer into the cache, so the
    /// next turn of the same conversation prefills only its new message.
    #[default]
    Conversation,
}

#[derive(Debug, Clone)]
pub struct DraftConfig {
    pub path: PathBuf,
    pub model: ModelParams,
    pub context: ContextParams,
}

impl WorkerConfig {
    pub fn new(name: &str, path: PathBuf) -> Self {
        Self {
            name: name.into(),
            path,
            model: ModelParams::default(),
            context: ContextParams::default(),
            queue: 1,
            spec: SpecSettings::default(),
            draft: None,
            calibration_dir: None,
            suffix_store: None,
            prefix_cache: PrefixReuse::default(),
            prefix_store: None,
        }
    }
}

struct Job {
    req: GenerateRequest,
    tx: mpsc::Sender<Event>,
    cancel: Arc<AtomicBool>,
}

pub struct ModelWorker {
    name: String,
    model: Arc<Model>,
    tokenizer: Tokenizer,
    n_ctx: u32,
    prefix_grain: usize,
    jobs: Option<SyncSender<Job>>,
    waiting: Arc<AtomicUsize>,
    /// Set when a job is submitted: stops idle work (prefilling the last
    /// answer) so the job does not wait for it.
    has_work: Arc<AtomicBool>,
    /// Set while the thread runs a job or idle work.
    busy: Arc<AtomicBool>,
    queue: usize,
    thread: Option<JoinHandle<()>>,
    grammar: LazyGrammar,
}

const EVENTS_IN_FLIGHT: usize = 256;

impl ModelWorker {
    /// Start the worker and wait until its model and context are loaded.
    pub fn spawn(cfg: WorkerConfig) -> Result<ModelWorker, RuntimeError> {
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(cfg.queue.max(1));
        let (ready_tx, ready_rx) = sync_channel::<Result<Loaded, String>>(1);
        let waiting = Arc::new(AtomicUsize::new(0));
        let has_work = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicBool::new(true));
        let signals = Signals { waiting: waiting.clone(), has_work: has_work.clone(), busy: busy.clone() };
        let c = cfg.clone();
        let thread = std::thread::Builder::new()
            .name(format!("augur-model-{}", cfg.name))
            .spawn(move || worker_main(c, jobs_rx, ready_tx, signals))
            .map_err(|e| RuntimeError::LoadFailed(e.to_string()))?;
        let Loaded { model, n_ctx, prefix_grain } = match ready_rx.recv() {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(RuntimeError::LoadFailed(e)),
            Err(_) => return Err(RuntimeError::WorkerGone),
        };
        Ok(ModelWorker {
            name: cfg.name,
            tokenizer: Tokenizer::new(model.clone()),
            model,
            n_ctx,
            prefix_grain,
            jobs: Some(jobs_tx),
            waiting,
            has_work,
            busy,
            queue: cfg.queue.max(1),
            thread: Some(thread),
            grammar: LazyGrammar::default(),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        self.model.info()
    }

    /// The loaded weights, for the runtime's own tests and tools; callers
    /// above the runtime use the [`Backend`] methods instead.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The granularity of prefix reuse this worker probed (see `grain`).
    pub fn prefix_grain(&self) -> usize {
        self.prefix_grain
    }

    /// True when no job is queued or running and no idle work is going on.
    pub fn is_idle(&self) -> bool {
        !self.busy.load(Ordering::SeqCst) && self.waiting.load(Ordering::SeqCst) == 0
    }
}

impl Drop for ModelWorker {
    fn drop(&mut self) {
        self.has_work.store(true, Ordering::SeqCst);
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Backend for ModelWorker {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn n_ctx(&self) -> Option<u32> {
        Some(self.n_ctx)
    }

    fn tokenizer(&self) -> Option<&Tokenizer> {
        Some(&self.tokenizer)
    }

    fn scorer(&self, n_ctx: u32, threads: Option<i32>) -> Result<Scorer, RuntimeError> {
        Scorer::on(self.model.clone(), n_ctx, threads)
    }

    fn submit(&self, req: GenerateRequest) -> Result<TokenStream, RuntimeError> {
        let (tx, rx) = mpsc::channel(EVENTS_IN_FLIGHT);
        let cancel = Arc::new(AtomicBool::new(false));
        let jobs = self.jobs.as_ref().ok_or(RuntimeError::WorkerGone)?;
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.has_work.store(true, Ordering::SeqCst);
        match jobs.try_send(Job { req, tx, cancel: cancel.clone() }) {
            Ok(()) => Ok(TokenStream::from_channel(rx, cancel)),
            Err(e) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => RuntimeError::QueueFull { capacity: self.queue },
                    TrySendError::Disconnected(_) => RuntimeError::WorkerGone,
                })
            }
        }
    }

    fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn grammar(&self) -> Result<Arc<GrammarCompiler>, RuntimeError> {
        self.grammar.get(&self.model)
    }
}

/// What a loaded worker tells the thread that spawned it.
struct Loaded {
    model: Arc<Model>,
    n_ctx: u32,
    prefix_grain: usize,
}

type Ready = SyncSender<Result<Loaded, String>>;

/// How the submitting side tells the worker thread about new work.
struct Signals {
    waiting: Arc<AtomicUsize>,
    has_work: Arc<AtomicBool>,
    busy: Arc<AtomicBool>,
}

impl Signals {
    /// Clear the work flag unless a job is already waiting; true when idle.
    /// Submit raises `waiting` before the flag, so a job that arrives after
    /// this check still raises the flag and stops the idle work.
    fn begin_idle(&self) -> bool {
        self.has_work.store(false, Ordering::SeqCst);
        self.waiting.load(Ordering::SeqCst) == 0
    }
}

/// What the worker thread owns: the context and everything kept across
/// requests.
struct Slot {
    ctx: Context,
    batch: Batch,
    spec: Speculator,
    prefix: PrefixCache,
    /// Earlier prefixes, saved when a request drops the live one.
    store: PrefixStore,
    /// Prompt + output of the last successful request (buffer reused).
    history: Vec<Token>,
}

fn worker_main(cfg: WorkerConfig, jobs: Receiver<Job>, ready: Ready, signals: Signals) {
    let mut slot = match load(&cfg) {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let loaded = Loaded { model: slot.ctx.model().clone(), n_ctx: slot.ctx.n_ctx(), prefix_grain: slot.prefix.grain() };
    if ready.send(Ok(loaded)).is_err() {
        return;
    }
    drop(ready);
    loop {
        signals.busy.store(false, Ordering::SeqCst);
        let Ok(job) = jobs.recv() else { break };
        signals.busy.store(true, Ordering::SeqCst);
        signals.waiting.fetch_sub(1, Ordering::SeqCst);
        let uses_suffix = matches!(job.req.spec.mode.unwrap_or(cfg.spec.mode), SpecMode::Suffix | SpecMode::Auto);
        let done = run_job(&mut slot, cfg.prefix_cache, job);
        if let (true, Some(path)) = (uses_suffix, cfg.suffix_store.as_deref()) {
            slot.spec.save_suffix(path);
        }
        if done && cfg.prefix_cache == PrefixReuse::Conversation && signals.begin_idle() {
            slot.extend_prefix(&signals.has_work);
        }
    }
}

impl Slot {
    /// While idle: prefill the last request's prompt and answer in aligned
    /// chunks, so the next turn of the conversation reuses them. Stops (the
    /// decode aborts) as soon as a job is submitted; every chunk completed
    /// before that stays usable.
    fn extend_prefix(&mut self, stop: &Arc<AtomicBool>) {
        let (chunk, grain) = (self.prefix.chunk(), self.prefix.grain());
        let start = self.prefix.len();
        let end = self.history.len() / grain * grain;
        if end <= start {
            return;
        }
        self.ctx.set_cancel_flag(stop.clone());
        if self.ctx.kv_remove(0, start as i32, -1).is_err() {
            return;
        }
        for (a, b) in PrefixCache::schedule(chunk, start, end) {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            match crate::generate::prefill(&mut self.ctx, &mut self.batch, &self.history[a..b], a) {
                Ok(_) => self.prefix.record(&self.history[..b]),
                Err(_) => break,
            }
        }
        // An aborted chunk may have left cells behind.
        let _ = self.ctx.kv_remove(0, self.prefix.len() as i32, -1);
    }
}

fn load(cfg: &WorkerConfig) -> Result<Slot, RuntimeError> {
    let model = Arc::new(Model::load(&cfg.path, &cfg.model)?);
    let draft = cfg.draft.as_ref().map(|d| load_draft(&model, d, cfg.spec.draft_min_confidence)).transpose()?;
    let mut params = cfg.context.clone();
    // Prompts are prefilled on llama.cpp's fast batched kernels in a second
    // context; this one decodes with flash attention and keys and values of
    // different types, which keeps a verify batch (or a tree branch among
    // masked sibling cells) on the path one token alone takes.
    params.split_prefill = true;
    if cfg.spec.tree {
        // Each branch of a verified draft tree is a KV sequence of its own,
        // and one more keeps rejected rows.
        params.n_seq_max = params.n_seq_max.max(1 + augur_spec::TREE_GRAVEYARD_SEQ as u32);
    }
    let mut ctx = Context::new(model, &params)?;
    if !ctx.splits_prefill() {
        tracing::info!(
            "{}: this model's cache cannot be carried between contexts; it prefills where it decodes",
            cfg.name
        );
    }
    let mut batch = Batch::new(params.n_batch as usize, params.n_seq_max as usize)?;
    let global = cfg.suffix_store.as_deref().map(load_global);
    warm_up(&mut ctx, &mut batch)?;
    let mut spec = Speculator::new(cfg.spec.clone(), draft, global)?;
    let id = model_id(&cfg.path, ctx.model(), cfg.model.repack, &params);
    let key =
        crate::calibrate::CacheKey { model_id: &id, threads: cfg.context.threads, dir: cfg.calibration_dir.as_deref() };
    if cfg.spec.mode != SpecMode::Off || spec.has_draft_model() {
        if let Some(d) = spec.draft_model_mut() {
            d.calibrate()?;
        }
        let curve = crate::calibrate::load_or_measure(&mut ctx, &mut batch, key)?;
        let cost = augur_spec::CostModel::from_curve(&curve).map_err(|e| RuntimeError::LoadFailed(e.to_string()))?;
        spec.set_cost(cost, curve.invariant_batch);
    }
    let grain = match cfg.prefix_cache {
        PrefixReuse::Off => batch.capacity(),
        _ => crate::grain::load_or_measure(&mut ctx, &mut batch, key)?,
    };
    let prefix = PrefixCache::new(batch.capacity(), grain);
    let budget = match cfg.prefix_cache {
        PrefixReuse::Off => 0,
        _ => cfg.prefix_store.unwrap_or(crate::prefix_store::DEFAULT_CONTEXTS * ctx.n_ctx() as usize),
    };
    Ok(Slot { ctx, batch, spec, prefix, store: PrefixStore::new(budget), history: Vec::new() })
}

/// One throwaway decode, so the first request does not pay for faulting the
/// mapped weights in (llama-bench warms up the same way).
fn warm_up(ctx: &mut Context, batch: &mut Batch) -> Result<(), RuntimeError> {
    let token = ctx.model().bos().unwrap_or(0);
    batch.clear();
    batch.add(token, 0, &[0], true)?;
    ctx.decode(batch)?;
    ctx.kv_remove(0, -1, -1)?;
    Ok(())
}

/// The global suffix tree: a corrupt or newer file gives a warning and a
/// fresh tree, never a failed load.
fn load_global(path: &std::path::Path) -> augur_spec::SharedGlobal {
    let (tree, warning) = augur_spec::GlobalSuffixTree::load_or_fresh(
        path,
        augur_spec::suffix::DEFAULT_GLOBAL_BUDGET,
        augur_spec::suffix::DEFAULT_MAX_DEPTH,
    );
    if let Some(w) = warning {
        tracing::warn!("suffix store {}: {w}; starting fresh", path.display());
    }
    Arc::new(std::sync::RwLock::new(tree))
}

fn load_draft(target: &Model, d: &DraftConfig, min_confidence: f32) -> Result<DraftModel, RuntimeError> {
    let model = Arc::new(Model::load(&d.path, &d.model)?);
    target.check_same_vocab(&model).map_err(|why| {
        RuntimeError::LoadFailed(format!(
            "draft model {} does not share the target's vocabulary: {why}",
            d.path.display()
        ))
    })?;
    DraftModel::new(model, &d.context, min_confidence)
}

/// Curves are per model file (name, size, quantisation) and weight layout:
/// repacking changes both the costs and the batch-invariant size.
fn model_id(path: &std::path::Path, model: &Model, repack: bool, params: &ContextParams) -> String {
    let name = path.file_name().map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
    let layout = if repack { "repacked" } else { "plain" };
    // Flash attention changes verify costs (and the cached invariant batch).
    let attention = match (params.split_prefill, params.flash_attn) {
        (true, _) => "-split",
        (false, true) => "-fa",
        (false, false) => "",
    };
    format!("{name}-{}-{}-{layout}{attention}", model.info().file_size, model.info().quant)
}

struct ChannelSink {
    tx: mpsc::Sender<Event>,
    cancel: Arc<AtomicBool>,
}

impl Sink for ChannelSink {
    fn send(&mut self, event: Event) -> bool {
        !self.is_closed() && self.tx.blocking_send(event).is_ok()
    }

    fn is_closed(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.tx.is_closed()
    }
}

/// Serve one job; true when it finished without error (its prompt and
/// answer are then in `slot.history`).
fn run_job(slot: &mut Slot, reuse: PrefixReuse, job: Job) -> bool {
    let mut sink = ChannelSink { tx: job.tx, cancel: job.cancel };
    // A client that left while queued costs nothing.
    if sink.is_closed() {
        return false;
    }
    slot.ctx.set_cancel_flag(sink.cancel.clone());
    let tokenizer = Tokenizer::new(slot.ctx.model().clone());
    let result = tokenizer.prepare(slot.ctx.n_ctx(), &job.req).and_then(|prompt| {
        if reuse != PrefixReuse::Off {
            crate::prefix_store::prepare(&mut slot.ctx, &mut slot.prefix, &mut slot.store, &prompt);
        }
        sink.send(Event::Started { prompt_tokens: prompt.len(), cached_tokens: slot.prefix.reusable(&prompt) });
        let done = speculate::generate(
            &mut slot.ctx,
            &mut slot.batch,
            &mut slot.spec,
            &mut slot.prefix,
            &prompt,
            &job.req,
            &mut sink,
        )?;
        slot.history.clear();
        slot.history.extend_from_slice(&prompt);
        slot.history.extend_from_slice(&done.tokens);
        Ok(done)
    });
    if reuse == PrefixReuse::Off {
        slot.prefix.clear();
    }
    // Keep only the reusable prefix, so an abandoned request holds no cells.
    if slot.ctx.kv_remove(0, slot.prefix.len() as i32, -1).is_err() {
        slot.prefix.clear();
        slot.ctx.kv_clear();
    }
    let ok = result.is_ok();
    let event = match result {
        Ok(done) => Event::Done(Box::new(done)),
        Err(RuntimeError::Engine(augur_engine::EngineError::Aborted)) => Event::Error(RuntimeError::Cancelled),
        Err(e) => Event::Error(e),
    };
    sink.send(event);
    ok
}
