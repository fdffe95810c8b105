//! A role served by another OpenAI-compatible server (another augur, one
//! per NUMA node or host; vLLM; llama-server), streamed.
//!
//! Each request runs on its own thread with a blocking HTTP client, the way
//! a local model runs on its worker thread; the number of requests at once
//! is bounded, and one more is refused with `QueueFull` (HTTP 429). The
//! events come back through the same [`TokenStream`] a local model gives,
//! and dropping it stops the thread at the next chunk.

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use augur_runtime::{
    Completion, Event, FinishReason, GenerateRequest, Prompt, RuntimeError, SpecStats, TokenStream, Usage,
};
use augur_sampling::SamplingParams;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::resolve::RemoteSpec;

const EVENTS_IN_FLIGHT: usize = 256;

pub struct RemoteBackend {
    spec: RemoteSpec,
    agent: ureq::Agent,
    running: Arc<AtomicUsize>,
    capacity: usize,
}

impl RemoteBackend {
    /// `capacity`: requests this server sends to the remote one at once.
    pub fn new(spec: RemoteSpec, capacity: usize) -> RemoteBackend {
        let agent =
            ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(10)).timeout_read(spec.timeout).build();
        RemoteBackend { spec, agent, running: Arc::new(AtomicUsize::new(0)), capacity: capacity.max(1) }
    }

    pub fn spec(&self) -> &RemoteSpec {
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
            url: self.url(&req.prompt),
            body: self.body(&req),
            api_key: self.spec.api_key.clone(),
            agent: self.agent.clone(),
            tx,
            cancel: cancel.clone(),
            running: self.running.clone(),
        };
        let spawned = std::thread::Builder::new().name("augur-remote".into()).spawn(move || call.run());
        if let Err(e) = spawned {
            // The closure (and with it the guard) was dropped unrun.
            return Err(RuntimeError::LoadFailed(format!("cannot start a remote request thread: {e}")));
        }
        Ok(TokenStream::from_channel(rx, cancel))
    }

    fn url(&self, prompt: &Prompt) -> String {
        let base = self.spec.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        match prompt {
            Prompt::Chat(_) => format!("{base}/v1/chat/completions"),
            Prompt::Text(_) | Prompt::Tokens(_) => format!("{base}/v1/completions"),
        }
    }

    fn body(&self, req: &GenerateRequest) -> Value {
        let mut body = json!({
            "model": self.spec.model, "max_tokens": req.max_tokens, "stream": true,
            "stream_options": {"include_usage": true},
        });
        match &req.prompt {
            Prompt::Chat(m) => body["messages"] = json!(m),
            Prompt::Text(t) => body["prompt"] = json!(t),
            Prompt::Tokens(t) => body["prompt"] = json!(t),
        }
        if !req.stop.is_empty() {
            body["stop"] = json!(req.stop);
        }
        match &req.sampling {
            SamplingParams::Greedy => body["temperature"] = json!(0.0),
            SamplingParams::Sample { temperature, top_k, top_p, min_p, seed } => {
                body["temperature"] = json!(temperature);
                body["seed"] = json!(seed);
                for (k, v) in [("top_p", top_p.map(f64::from)), ("min_p", min_p.map(f64::from))] {
                    if let Some(v) = v {
                        body[k] = json!(v);
                    }
                }
                if let Some(k) = top_k {
                    body["top_k"] = json!(k);
                }
            }
        }
        body
    }
}

/// One request's thread state.
struct Call {
    url: String,
    body: Value,
    api_key: Option<String>,
    agent: ureq::Agent,
    tx: mpsc::Sender<Event>,
    cancel: Arc<AtomicBool>,
    running: Arc<AtomicUsize>,
}

impl Drop for Call {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Totals gathered from the chunks.
#[derive(Default)]
struct Tally {
    prompt_tokens: usize,
    completion_tokens: usize,
    chunks: usize,
    finish: Option<FinishReason>,
    first: Option<Instant>,
}

impl Call {
    fn run(self) {
        let started = Instant::now();
        let result = self.exchange();
        let event = match result {
            Ok(t) => Event::Done(completion(t, started)),
            Err(e) => Event::Error(e),
        };
        let _ = self.tx.blocking_send(event);
    }

    fn exchange(&self) -> Result<Tally, RuntimeError> {
        let mut req = self.agent.post(&self.url).set("Content-Type", "application/json");
        if let Some(k) = &self.api_key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let resp = req.send_string(&self.body.to_string()).map_err(|e| self.http_error(e))?;
        let _ = self.tx.blocking_send(Event::Started { prompt_tokens: 0, cached_tokens: 0 });
        let mut tally = Tally::default();
        for line in std::io::BufReader::new(resp.into_reader()).lines() {
            if self.cancel.load(Ordering::Relaxed) || self.tx.is_closed() {
                return Err(RuntimeError::Cancelled);
            }
            let line = line.map_err(|e| self.unavailable(format!("reading the stream: {e}")))?;
            let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
            if data == "[DONE]" {
                break;
            }
            let v: Value =
                serde_json::from_str(data).map_err(|e| self.unavailable(format!("bad stream chunk: {e}")))?;
            self.apply(&v, &mut tally)?;
        }
        Ok(tally)
    }

    fn apply(&self, v: &Value, t: &mut Tally) -> Result<(), RuntimeError> {
        if let Some(err) = v.get("error") {
            return Err(self.unavailable(format!("error mid-stream: {err}")));
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            t.prompt_tokens = u["prompt_tokens"].as_u64().unwrap_or(0) as usize;
            t.completion_tokens = u["completion_tokens"].as_u64().unwrap_or(0) as usize;
        }
        let Some(choice) = v["choices"].get(0) else { return Ok(()) };
        match choice["finish_reason"].as_str() {
            Some("length") => t.finish = Some(FinishReason::Length),
            Some(_) => t.finish = Some(FinishReason::Stop),
            None => {}
        }
        let text = choice["delta"]["content"].as_str().or_else(|| choice["text"].as_str()).unwrap_or("");
        if !text.is_empty() {
            t.chunks += 1;
            t.first.get_or_insert_with(Instant::now);
            let ev = Event::Text { text: text.into(), tokens: 1 };
            if self.tx.blocking_send(ev).is_err() {
                return Err(RuntimeError::Cancelled);
            }
        }
        Ok(())
    }

    fn unavailable(&self, message: String) -> RuntimeError {
        RuntimeError::LoadFailed(format!("remote {}: {message}", self.url))
    }

    /// The remote's own refusal keeps its class: a 4xx stays a client error,
    /// a 429 stays a retry-later.
    fn http_error(&self, e: ureq::Error) -> RuntimeError {
        match e {
            ureq::Error::Status(429, _) => RuntimeError::QueueFull { capacity: 0 },
            ureq::Error::Status(code, resp) if (400..500).contains(&code) => {
                let body = resp.into_string().unwrap_or_default();
                let msg = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or(body);
                RuntimeError::InvalidRequest(format!("remote {} answered {code}: {msg}", self.url))
            }
            ureq::Error::Status(code, _) => self.unavailable(format!("HTTP {code}")),
            ureq::Error::Transport(t) => self.unavailable(t.to_string()),
        }
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
            cached_tokens: 0,
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
