//! The two kinds of target, measured by the same client-side clock.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use augur_gguf::MetaOverride;
use augur_openai::{Client, Message, OpenAiError, Request as OpenAiRequest, Sampling, StreamEvent};
use augur_runtime::{
    Backend, ChatMessage, ContextParams, DraftConfig, Event, GenerateRequest, ModelParams, ModelWorker, Prompt,
    SpecMode, SpecSettings, WorkerConfig,
};
use augur_sampling::SamplingParams;
use augur_store::Store;
use serde_json::json;

use crate::config::TargetConfig;
use crate::error::{BenchError, Result};

/// One generation as the client saw it.
#[derive(Debug, Clone, Default)]
pub struct Generation {
    pub text: String,
    pub ttft: Duration,
    pub total: Duration,
    /// From the first text chunk to the last.
    pub decode: Duration,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub finish_reason: String,
    /// Speculation counters; endpoints do not report them.
    pub drafted: Option<u64>,
    pub accepted: Option<u64>,
}

impl Generation {
    /// Tokens per second after the first (which the prefill produces).
    pub fn decode_tps(&self) -> f64 {
        rate(self.completion_tokens.saturating_sub(1), self.decode)
    }

    /// Tokens per second from request to last token.
    pub fn e2e_tps(&self) -> f64 {
        rate(self.completion_tokens, self.total)
    }
}

use augur_runtime::tokens_per_sec as rate;

/// Arrival times of text chunks; the same for both kinds of target so
/// their numbers are comparable.
struct Clock {
    start: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Clock {
    fn start() -> Clock {
        Clock { start: Instant::now(), first: None, last: None }
    }

    fn chunk(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    fn finish(&self, g: &mut Generation) {
        let end = Instant::now();
        g.total = end - self.start;
        g.ttft = self.first.map_or(g.total, |f| f - self.start);
        g.decode = match (self.first, self.last) {
            (Some(f), Some(l)) => l - f,
            _ => Duration::ZERO,
        };
    }
}

pub struct Request<'a> {
    pub messages: &'a [ChatMessage],
    pub max_tokens: u32,
    pub temperature: f32,
    pub seed: u64,
    /// Speculation chosen per request (in-process targets serving several
    /// configurations); `None` leaves it to the target.
    pub spec: Option<RequestSpec>,
}

/// A request's own speculation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestSpec {
    pub mode: SpecMode,
    pub max: usize,
}

pub trait Target {
    fn generate(&self, req: &Request) -> Result<Generation>;

    /// Whether a prompt is run once unmeasured before its measured runs
    /// (so that none of them pays alone for a cold cache).
    fn warms_prompts(&self) -> bool {
        true
    }
}

/// Open the target a configuration names. `min_ctx` is the context the
/// selected prompts need when the configuration does not fix one.
pub fn open(cfg: &TargetConfig, min_ctx: u32) -> Result<Box<dyn Target>> {
    if cfg.cold.is_some() {
        let exe = std::env::current_exe().map_err(BenchError::io("finding the augur binary"))?;
        return Ok(Box::new(crate::cold::ColdProcess::new(cfg, min_ctx, exe)?));
    }
    match &cfg.endpoint {
        Some(url) => Ok(Box::new(Endpoint::new(url, &cfg.model))),
        None => Ok(Box::new(InProcess::spawn(cfg, min_ctx)?)),
    }
}

pub struct InProcess {
    worker: ModelWorker,
}

impl InProcess {
    pub fn spawn(cfg: &TargetConfig, min_ctx: u32) -> Result<InProcess> {
        let wc = worker_config(cfg, min_ctx)?;
        Ok(InProcess { worker: ModelWorker::spawn(wc)? })
    }
}

/// The same resolution `augur run` does, from a named configuration.
pub fn worker_config(cfg: &TargetConfig, min_ctx: u32) -> Result<WorkerConfig> {
    let store = Store::open_default()?;
    let path = store.ensure(&cfg.model, false)?;
    let n_ctx = cfg.ctx_size.unwrap_or(min_ctx.max(4096));
    let mut context = ContextParams { n_ctx, ..ContextParams::default() };
    if let Some(t) = cfg.threads {
        context.threads = t;
        context.threads_batch = t;
    }
    let draft = draft_path(&store, cfg)?.map(|p| DraftConfig {
        path: p,
        model: ModelParams { mmap: true, ..ModelParams::default() },
        context: context.clone(),
    });
    if cfg.spec == SpecMode::Draft && draft.is_none() {
        return Err(target_err(cfg, "spec=draft needs draft=MODEL"));
    }
    let overrides = expert_override(cfg, &path)?;
    Ok(WorkerConfig {
        model: ModelParams { mmap: true, overrides, ..ModelParams::default() },
        context,
        spec: SpecSettings { mode: cfg.spec, spec_max: cfg.spec_max, ..SpecSettings::default() },
        draft,
        calibration_dir: store.root().parent().map(|p| p.join("calibration")),
        ..WorkerConfig::new(&cfg.name, path)
    })
}

fn target_err(cfg: &TargetConfig, message: &str) -> BenchError {
    BenchError::Target { spec: cfg.name.clone(), message: message.into() }
}

fn draft_path(store: &Store, cfg: &TargetConfig) -> Result<Option<PathBuf>> {
    let name = match (&cfg.draft_model, cfg.spec) {
        (Some(d), _) => d.clone(),
        // The catalogue pairs Qwen2.5 coders with the smallest one.
        (None, SpecMode::Draft | SpecMode::Auto)
            if cfg.model.starts_with("qwen2.5-coder") && cfg.model != "qwen2.5-coder-0.5b" =>
        {
            "qwen2.5-coder-0.5b".into()
        }
        _ => return Ok(None),
    };
    Ok(Some(store.ensure(&name, false)?))
}

/// `<arch>.expert_used_count=int:N`, with the architecture read from the file.
fn expert_override(cfg: &TargetConfig, path: &std::path::Path) -> Result<Vec<MetaOverride>> {
    let Some(n) = cfg.experts else { return Ok(Vec::new()) };
    let file = augur_gguf::read_file(path).map_err(|e| target_err(cfg, &e.to_string()))?;
    let arch = file.arch().ok_or_else(|| target_err(cfg, "the model names no architecture"))?;
    let o = MetaOverride::parse(&format!("{arch}.expert_used_count=int:{n}"))
        .map_err(|e| target_err(cfg, &e.to_string()))?;
    Ok(vec![o])
}

impl Target for InProcess {
    fn generate(&self, req: &Request) -> Result<Generation> {
        let sampling = sampling(req);
        let spec = req
            .spec
            .map(|s| augur_runtime::SpecOptions { mode: Some(s.mode), max: Some(s.max), ..Default::default() })
            .unwrap_or_default();
        let r = GenerateRequest {
            sampling,
            spec,
            ..GenerateRequest::new(Prompt::Chat(req.messages.to_vec()), req.max_tokens)
        };
        let mut clock = Clock::start();
        let mut events = self.worker.submit(r)?;
        let mut g = Generation::default();
        while let Some(ev) = events.blocking_next() {
            match ev {
                Event::Started { .. } => {}
                Event::Text { text, .. } => {
                    clock.chunk(&text);
                    g.text.push_str(&text);
                }
                Event::Done(done) => {
                    clock.finish(&mut g);
                    g.prompt_tokens = done.usage.prompt_tokens;
                    g.completion_tokens = done.usage.completion_tokens;
                    g.finish_reason = done.finish_reason.as_str().into();
                    g.drafted = Some(done.spec.drafted);
                    g.accepted = Some(done.spec.accepted);
                    return Ok(g);
                }
                Event::Error(e) => return Err(e.into()),
            }
        }
        Err(augur_runtime::RuntimeError::WorkerGone.into())
    }
}

fn sampling(req: &Request) -> SamplingParams {
    if req.temperature <= 0.0 {
        return SamplingParams::Greedy;
    }
    SamplingParams::Sample { temperature: req.temperature, top_k: None, top_p: None, min_p: None, seed: req.seed }
}

/// An OpenAI-compatible server, driven with streaming chat completions.
pub struct Endpoint {
    model: String,
    client: Client,
}

impl Endpoint {
    pub fn new(base: &str, model: &str) -> Endpoint {
        // A stalled server fails the prompt instead of hanging the run.
        Endpoint { model: model.into(), client: Client::new(base, Duration::from_secs(300)) }
    }

    fn request(&self, req: &Request) -> OpenAiRequest {
        let messages = req.messages.iter().map(|m| Message::new(m.role.clone(), m.content.clone())).collect();
        let sampling = Sampling { temperature: Some(req.temperature), seed: Some(req.seed), ..Sampling::default() };
        // An augur server takes the per-request speculation settings too.
        let augur = req.spec.map(|s| json!({"spec": {"mode": s.mode, "max": s.max}}));
        OpenAiRequest { sampling, augur, ..OpenAiRequest::chat(self.model.clone(), messages, req.max_tokens) }
    }
}

/// A 429 becomes `Busy` with the server's Retry-After (one second when it
/// sent none), so a client can tell "come back later" from a failure.
fn endpoint_error(e: OpenAiError) -> BenchError {
    match e {
        OpenAiError::RateLimited { url, retry_after } => {
            BenchError::Busy { url, retry_after: retry_after.unwrap_or(Duration::from_secs(1)) }
        }
        other => BenchError::Endpoint(other),
    }
}

impl Target for Endpoint {
    fn generate(&self, req: &Request) -> Result<Generation> {
        let mut clock = Clock::start();
        let events = self.client.stream(&self.request(req)).map_err(endpoint_error)?;
        let mut g = Generation::default();
        let mut chunks = 0usize;
        for ev in events {
            match ev.map_err(endpoint_error)? {
                StreamEvent::Text(t) => {
                    clock.chunk(&t);
                    g.text.push_str(&t);
                    chunks += 1;
                }
                StreamEvent::Finish(f) => g.finish_reason = f,
                StreamEvent::Usage(u) => {
                    g.prompt_tokens = u.prompt_tokens as usize;
                    g.completion_tokens = u.completion_tokens as usize;
                    // Only an augur server reports what speculation did.
                    if let Some(spec) = u.augur.and_then(|a| a.spec) {
                        (g.drafted, g.accepted) = (Some(spec.drafted), Some(spec.accepted));
                    }
                }
            }
        }
        clock.finish(&mut g);
        // Without a usage chunk, one content chunk per token is the best guess.
        if g.completion_tokens == 0 {
            g.completion_tokens = chunks;
        }
        Ok(g)
    }
}
