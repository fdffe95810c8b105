//! A role served by another OpenAI-compatible server (another augur, one
//! per NUMA node or host; vLLM; llama-server), streamed.
//!
//! Each request runs on its own thread with a blocking HTTP client, the way
//! a local model runs on its worker thread; the number of requests at once
//! is bounded, and one more is refused with `QueueFull` (HTTP 429). The
//! events come back through the same [`TokenStream`] a local model gives,
//! and dropping it stops the thread at the next chunk.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use augur_openai::{Client, Input, Message, OpenAiError, Request, Sampling, StreamEvent};
use augur_runtime::{
    ChatMessage, Completion, Event, FinishReason, GenerateRequest, Prompt, RuntimeError, SpecStats, TokenStream, Usage,
};
use augur_sampling::SamplingParams;
use tokio::sync::mpsc;

use crate::resolve::RemoteDef;

const EVENTS_IN_FLIGHT: usize = 256;

pub struct RemoteBackend {
    spec: RemoteDef,
    client: Client,
    running: Arc<AtomicUsize>,
    capacity: usize,
}

impl RemoteBackend {
    /// `capacity`: requests this server sends to the remote one at once.
    pub fn new(spec: RemoteDef, capacity: usize) -> RemoteBackend {
        let client = Client::new(&spec.base_url, spec.timeout).with_api_key(spec.api_key.clone());
        RemoteBackend { spec, client, running: Arc::new(AtomicUsize::new(0)), capacity: capacity.max(1) }
    }

    pub fn spec(&self) -> &RemoteDef {
        &self.spec
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Start a generation on the remote server.
    pub fn submit(&self, req: GenerateRequest) -> Result<TokenStream, RuntimeError> {
        if self.running.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.running.fetch_sub(1, Ordering::AcqRel);
            return Err(RuntimeError::QueueFull { capacity: self.capacity });
        }
        let (tx, rx) = mpsc::channel(EVENTS_IN_FLIGHT);
        let cancel = Arc::new(AtomicBool::new(false));
        let call = Call {
            request: openai_request(&self.spec.model, &req),
            client: self.client.clone(),
            tx,
            cancel: cancel.clone(),
            running: self.running.clone(),
        };
        let spawned = std::thread::Builder::new().name("augur-remote".into()).spawn(move || call.run());
        if let Err(e) = spawned {
            // The closure (and with it the guard) was dropped unrun.
            return Err(RuntimeError::internal(format!("cannot start a remote request thread: {e}")));
        }
        Ok(TokenStream::from_channel(rx, cancel))
    }
}

/// The runtime's request in OpenAI's terms.
fn openai_request(model: &str, req: &GenerateRequest) -> Request {
    let input = match &req.prompt {
        Prompt::Chat(m) => Input::Chat { messages: m.iter().map(message).collect() },
        Prompt::Text(t) => Input::Text { prompt: t.clone() },
        Prompt::Tokens(t) => Input::Tokens { prompt: t.clone() },
    };
    let sampling = match req.sampling {
        SamplingParams::Greedy => Sampling { temperature: Some(0.0), ..Sampling::default() },
        SamplingParams::Sample { temperature, top_k, top_p, min_p, seed } => {
            Sampling { temperature: Some(temperature), top_p, top_k, min_p, seed: Some(seed) }
        }
    };
    Request { sampling, stop: req.stop.clone(), ..Request::completion(model, input, req.max_tokens) }
}

fn message(m: &ChatMessage) -> Message {
    Message {
        role: m.role.clone(),
        content: m.content.clone(),
        name: m.name.clone(),
        tool_calls: m.tool_calls.clone(),
        tool_call_id: m.tool_call_id.clone(),
    }
}

/// The client's errors as the runtime's: whose fault an error is survives.
fn runtime_error(e: OpenAiError) -> RuntimeError {
    match e {
        OpenAiError::Rejected { url, status, message } => RuntimeError::UpstreamRejected { url, status, message },
        OpenAiError::RateLimited { .. } => RuntimeError::QueueFull { capacity: 0 },
        OpenAiError::Failed { url, message, .. } => RuntimeError::UpstreamFailed { url, message },
        OpenAiError::Timeout { url } => RuntimeError::UpstreamTimeout { url },
        // The configured URL cannot be reached as written.
        OpenAiError::BadUrl { url, message } | OpenAiError::Unreachable { url, message } => {
            RuntimeError::UpstreamUnreachable { url, message }
        }
        OpenAiError::Internal { url, message } => RuntimeError::internal(format!("request to {url}: {message}")),
    }
}

/// One request's thread state.
struct Call {
    request: Request,
    client: Client,
    tx: mpsc::Sender<Event>,
    cancel: Arc<AtomicBool>,
    running: Arc<AtomicUsize>,
}

impl Drop for Call {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Totals gathered from the events.
#[derive(Default)]
struct Tally {
    prompt_tokens: usize,
    completion_tokens: usize,
    cached_tokens: usize,
    chunks: usize,
    finish: Option<FinishReason>,
    first: Option<Instant>,
}

impl Call {
    fn run(self) {
        let started = Instant::now();
        let event = match self.exchange() {
            Ok(t) => Event::Done(Box::new(completion(t, started))),
            Err(e) => Event::Error(e),
        };
        let _ = self.tx.blocking_send(event);
    }

    fn exchange(&self) -> Result<Tally, RuntimeError> {
        let events = self.client.stream(&self.request).map_err(runtime_error)?;
        let _ = self.tx.blocking_send(Event::Started { prompt_tokens: 0, cached_tokens: 0 });
        let mut tally = Tally::default();
        for ev in events {
            if self.cancel.load(Ordering::Relaxed) || self.tx.is_closed() {
                return Err(RuntimeError::Cancelled);
            }
            self.apply(ev.map_err(runtime_error)?, &mut tally)?;
        }
        Ok(tally)
    }

    fn apply(&self, ev: StreamEvent, t: &mut Tally) -> Result<(), RuntimeError> {
        match ev {
            StreamEvent::Text(text) => {
                t.chunks += 1;
                t.first.get_or_insert_with(Instant::now);
                if self.tx.blocking_send(Event::Text { text: text.into(), tokens: 1 }).is_err() {
                    return Err(RuntimeError::Cancelled);
                }
            }
            StreamEvent::Finish(f) => {
                t.finish = Some(if f == "length" { FinishReason::Length } else { FinishReason::Stop });
            }
            StreamEvent::Usage(u) => {
                t.prompt_tokens = u.prompt_tokens as usize;
                t.completion_tokens = u.completion_tokens as usize;
                t.cached_tokens = u.cached_tokens() as usize;
            }
        }
        Ok(())
    }
}

fn completion(t: Tally, started: Instant) -> Completion {
    let end = Instant::now();
    let first = t.first.unwrap_or(end);
    Completion {
        finish_reason: t.finish.unwrap_or(FinishReason::Stop),
        usage: Usage {
            prompt_tokens: t.prompt_tokens,
            // Without a usage chunk, one content chunk per token is the best guess.
            completion_tokens: if t.completion_tokens > 0 { t.completion_tokens } else { t.chunks },
            cached_tokens: t.cached_tokens,
            prefill_time: first - started,
            decode_time: end - first,
            time_to_first_token: first - started,
        },
        tokens: Vec::new(),
        spec: SpecStats::default(),
    }
}

/// A remote role behind the same interface as a local model: it takes
/// text (the remote server tokenises), so it offers no tokenizer, grammar
/// or scorer, and its context size is the remote's business.
impl augur_runtime::Backend for RemoteBackend {
    fn model_name(&self) -> &str {
        &self.spec.model
    }

    fn n_ctx(&self) -> Option<u32> {
        None
    }

    fn submit(&self, req: GenerateRequest) -> Result<TokenStream, RuntimeError> {
        RemoteBackend::submit(self, req)
    }

    fn queue_depth(&self) -> usize {
        self.running()
    }
}
