//! Running one generation for the HTTP layer: tokenise and check up front,
//! queue on the backend, then answer in one body or as server-sent events.
//!
//! The `TokenStream` lives inside the response future or the SSE body, so a
//! client that goes away drops it, which cancels the generation (queued,
//! prefilling or decoding alike).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use augur_grammar::CompiledGrammar;
use augur_runtime::{Backend, Completion, Event, FinishReason, GenerateRequest, Prompt, RuntimeError, TokenStream};
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::timeout_at;

use crate::metrics::Metrics;
use crate::prompt::chat_tokens;
use crate::request::{Endpoint, ParsedRequest};
use crate::state::AppState;
use crate::structured::Constraint;
use crate::toolcall::{CallParser, Piece};
use crate::ServerError;

/// A comment line keeps idle streams alive and reveals a vanished client:
/// writing to a closed connection fails, which drops the stream.
const PING_EVERY: Duration = Duration::from_secs(1);

/// Where a request runs and how its response is labelled.
pub struct Served {
    pub backend: Arc<dyn Backend>,
    /// The `model` the response names.
    pub model_id: String,
    /// Extra `augur` object in the response (the role and chain).
    pub augur: Option<Value>,
    /// Kept until the response ends (a residency lease).
    pub hold: Option<Box<dyn Send + Sync>>,
}

/// Answer `parsed` on `served`, streamed or in one body. `permit` is the
/// request's admission, held until the response ends.
pub async fn respond_on(
    state: AppState,
    served: Served,
    parsed: ParsedRequest,
    arrived: Instant,
    permit: OwnedSemaphorePermit,
) -> Result<Response, ServerError> {
    let deadline = tokio::time::Instant::from_std(arrived + state.config.request_timeout);
    let stream = submit(served.backend.clone(), &parsed, state.config.max_tokens_limit).await?;
    let ctx = Ctx::new(&parsed, &served);
    let tracker = Tracker::new(state.metrics.clone(), arrived);
    if parsed.stream {
        let mut sse_state =
            SseState::new(ctx, stream, tracker, deadline, permit, state.config.request_timeout.as_secs());
        sse_state.hold = served.hold;
        Ok(sse(sse_state))
    } else {
        let secs = state.config.request_timeout.as_secs();
        let out = timeout_at(deadline, collect(stream, tracker)).await.map_err(|_| ServerError::Timeout(secs))??;
        Ok(axum::Json(ctx.full_body(&out)).into_response())
    }
}

/// One whole (non-streamed) generation on `served`, for callers that check
/// the answer before replying.
pub async fn generate_once(
    state: &AppState,
    served: &Served,
    parsed: &ParsedRequest,
    arrived: Instant,
) -> Result<Output, ServerError> {
    let deadline = tokio::time::Instant::from_std(arrived + state.config.request_timeout);
    let stream = submit(served.backend.clone(), parsed, state.config.max_tokens_limit).await?;
    let tracker = Tracker::new(state.metrics.clone(), arrived);
    let secs = state.config.request_timeout.as_secs();
    timeout_at(deadline, collect(stream, tracker)).await.map_err(|_| ServerError::Timeout(secs))?
}

/// The one-body response for `out`.
pub fn full_response(parsed: &ParsedRequest, served: &Served, out: &Output) -> Response {
    axum::Json(Ctx::new(parsed, served).full_body(out)).into_response()
}

/// Queue `parsed` on `backend`: a model with a local vocabulary gets token
/// ids (prepared here); a remote one gets the text and tokenises for itself.
async fn submit(backend: Arc<dyn Backend>, parsed: &ParsedRequest, cap: u32) -> Result<TokenStream, ServerError> {
    let req = GenerateRequest {
        prompt: parsed.prompt.clone(),
        max_tokens: parsed.max_tokens.unwrap_or(cap),
        sampling: parsed.sampling.clone(),
        stop: parsed.stop.clone(),
        spec: parsed.spec,
        constraint: None,
    };
    let req = match backend.tokenizer().zip(backend.n_ctx()) {
        Some(_) => prepare(backend.clone(), parsed, req, cap).await?,
        None => {
            // A compiled constraint is tied to a local vocabulary; refusing
            // beats silently returning unconstrained output.
            if let Some(c) = &parsed.structured.constraint {
                return Err(ServerError::unsupported(
                    c.param,
                    format!("`{}` is not supported on remote roles", c.param),
                ));
            }
            req
        }
    };
    Ok(backend.submit(req)?)
}

/// Compile the constraint, render and tokenise off the async threads, and
/// check the context, so a bad schema or an oversize request is a 400
/// before it queues and never occupies the model's worker. The worker then
/// gets token ids and does not tokenise again.
async fn prepare(
    backend: Arc<dyn Backend>,
    parsed: &ParsedRequest,
    mut req: GenerateRequest,
    cap: u32,
) -> Result<GenerateRequest, ServerError> {
    let default_max = parsed.max_tokens.is_none();
    if default_max {
        req.max_tokens = 1;
    }
    let constraint = parsed.structured.constraint.clone();
    let tools = parsed.structured.tools.clone();
    tokio::task::spawn_blocking(move || {
        let (Some(tok), Some(n_ctx)) = (backend.tokenizer(), backend.n_ctx()) else {
            return Err(ServerError::Internal(format!("{} has no local vocabulary", backend.model_name())));
        };
        if let Some(c) = &constraint {
            req.constraint = Some(compile(backend.as_ref(), c)?);
        }
        if let Prompt::Chat(msgs) = &req.prompt {
            req.prompt = Prompt::Tokens(chat_tokens(tok, msgs, tools.as_ref())?);
        }
        let tokens = tok.prepare(n_ctx, &req)?;
        if default_max {
            let room = (n_ctx as usize).saturating_sub(tokens.len());
            req.max_tokens = u32::try_from(room).unwrap_or(u32::MAX).min(cap).max(1);
        }
        req.prompt = Prompt::Tokens(tokens);
        Ok(req)
    })
    .await
    .map_err(|e| ServerError::Internal(format!("tokenizer task failed: {e}")))?
}

/// Compile with the model's grammar engine (bounded in time and size,
/// cached), naming the request field on failure.
fn compile(backend: &dyn Backend, c: &Constraint) -> Result<Arc<CompiledGrammar>, ServerError> {
    let compiler = backend.grammar()?;
    compiler.compile(&c.source).map_err(|source| ServerError::Grammar { param: c.param.to_string(), source })
}

/// Per-request timing fed to the metrics.
struct Tracker {
    metrics: Arc<Metrics>,
    arrived: Instant,
    last_token: Option<Instant>,
}

impl Tracker {
    fn new(metrics: Arc<Metrics>, arrived: Instant) -> Self {
        Tracker { metrics, arrived, last_token: None }
    }

    fn on_tokens(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let now = Instant::now();
        match self.last_token {
            None => self.metrics.observe_ttft((now - self.arrived).as_secs_f64()),
            Some(prev) => self.metrics.observe_inter_token((now - prev).as_secs_f64(), n),
        }
        self.last_token = Some(now);
    }

    fn on_done(&self, c: &Completion) {
        self.metrics.add_tokens(c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.cached_tokens);
        let s = &c.spec;
        for (source, st) in [("lookup", &s.lookup), ("draft", &s.draft), ("suffix", &s.suffix)] {
            if st.drafted > 0 {
                self.metrics.record_draft_source(source, st.drafted, st.accepted);
            }
        }
        for (pos, &n) in s.accepted_at.iter().enumerate() {
            self.metrics.record_accepted_at(pos, n);
        }
    }
}

pub struct Output {
    pub text: String,
    pub done: Completion,
    cached: usize,
}

async fn collect(mut stream: TokenStream, mut tracker: Tracker) -> Result<Output, ServerError> {
    let mut text = String::new();
    let mut cached = 0;
    while let Some(event) = stream.next().await {
        match event {
            Event::Started { cached_tokens, .. } => cached = cached_tokens,
            Event::Text { text: t, tokens } => {
                tracker.on_tokens(tokens);
                text.push_str(&t);
            }
            Event::Done(done) => {
                tracker.on_done(&done);
                return Ok(Output { text, done: *done, cached });
            }
            Event::Error(e) => return Err(e.into()),
        }
    }
    Err(RuntimeError::WorkerGone.into())
}

/// What every chunk of one response repeats.
struct Ctx {
    endpoint: Endpoint,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    /// Read `<tool_call>` blocks in the output as tool calls.
    parse_calls: bool,
    /// The request's tool names.
    tool_names: Vec<String>,
    augur: Option<Value>,
}

/// OpenAI's finish reason; a generation that made calls ends with
/// `tool_calls` unless it was cut by `max_tokens`.
fn finish_str(f: FinishReason, calls: usize) -> &'static str {
    match f {
        FinishReason::Stop if calls > 0 => "tool_calls",
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        // Only produced once the client has gone; it never reads this.
        FinishReason::Cancelled => "stop",
    }
}

/// `cached` comes from the `Started` event, where the runtime reports the
/// prefix it reused.
fn usage_json(c: &Completion, cached: usize) -> Value {
    let u = &c.usage;
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
        "augur": {
            "prefill_seconds": u.prefill_time.as_secs_f64(),
            "decode_seconds": u.decode_time.as_secs_f64(),
            "time_to_first_token_seconds": u.time_to_first_token.as_secs_f64(),
            "spec": c.spec,
        },
    })
}

impl Ctx {
    fn new(parsed: &ParsedRequest, served: &Served) -> Ctx {
        Ctx {
            endpoint: parsed.endpoint,
            id: new_id(parsed.endpoint),
            created: unix_now(),
            model: served.model_id.clone(),
            include_usage: parsed.include_usage,
            augur: served.augur.clone(),
            parse_calls: parsed.structured.parse_calls,
            tool_names: parsed.structured.tool_names.clone(),
        }
    }

    fn full_body(&self, out: &Output) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let (message, calls) = self.message(&out.text);
                json!({
                    "index": 0,
                    "message": message,
                    "logprobs": null,
                    "finish_reason": finish_str(out.done.finish_reason, calls),
                })
            }
            Endpoint::Completions => json!({
                "index": 0, "text": out.text, "logprobs": null, "finish_reason": finish_str(out.done.finish_reason, 0),
            }),
        };
        let mut body = self.envelope(false);
        body["choices"] = json!([choice]);
        body["usage"] = usage_json(&out.done, out.cached);
        body
    }

    /// The assistant message for `text`, and how many calls it makes.
    fn message(&self, text: &str) -> (Value, usize) {
        if !self.parse_calls {
            return (json!({"role": "assistant", "content": text, "refusal": null}), 0);
        }
        let mut parser = CallParser::new(self.tool_names.clone());
        let mut pieces = Vec::new();
        parser.push(text, &mut pieces);
        parser.finish(&mut pieces);
        let mut content = String::new();
        let mut calls: Vec<(String, String, String)> = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Content(t) => content.push_str(&t),
                Piece::CallStart { id, name, .. } => calls.push((id, name, String::new())),
                Piece::Args { index, text } => calls.get_mut(index).iter_mut().for_each(|c| c.2.push_str(&text)),
            }
        }
        let content = if content.is_empty() { Value::Null } else { Value::String(content) };
        let mut message = json!({"role": "assistant", "content": content, "refusal": null});
        if !calls.is_empty() {
            let list: Vec<Value> = calls
                .iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
            message["tool_calls"] = Value::Array(list);
        }
        (message, calls.len())
    }

    /// The streamed delta for one recognised piece of output.
    fn piece_chunk(&self, piece: &Piece) -> Bytes {
        let delta = match piece {
            Piece::Content(t) => json!({"content": t}),
            Piece::CallStart { index, id, name } => json!({"tool_calls": [{
                "index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""},
            }]}),
            Piece::Args { index, text } => json!({"tool_calls": [{"index": index, "function": {"arguments": text}}]}),
        };
        self.chunk(delta, "", None)
    }

    fn envelope(&self, chunk: bool) -> Value {
        let object = match (self.endpoint, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completions, _) => "text_completion",
        };
        let mut v = json!({
            "id": self.id, "object": object, "created": self.created, "model": self.model,
            "system_fingerprint": null,
        });
        if chunk && self.include_usage {
            v["usage"] = Value::Null;
        }
        if let Some(a) = &self.augur {
            v["augur"] = a.clone();
        }
        v
    }

    /// One streamed choice: `delta` for chat, `text` for completions.
    fn chunk(&self, delta: Value, text: &str, finish: Option<&str>) -> Bytes {
        let choice = match self.endpoint {
            Endpoint::Chat => json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}),
            Endpoint::Completions => json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish}),
        };
        let mut v = self.envelope(true);
        v["choices"] = json!([choice]);
        data(&v)
    }

    fn usage_chunk(&self, c: &Completion, cached: usize) -> Bytes {
        let mut v = self.envelope(true);
        v["choices"] = json!([]);
        v["usage"] = usage_json(c, cached);
        data(&v)
    }
}

fn data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

const DONE: &[u8] = b"data: [DONE]\n\n";

struct SseState {
    ctx: Ctx,
    stream: TokenStream,
    tracker: Tracker,
    deadline: tokio::time::Instant,
    timeout_secs: u64,
    cached: usize,
    finished: bool,
    /// Reads tool calls out of the text when the request has tools.
    calls: Option<CallParser>,
    /// Reused between events.
    pieces: Vec<Piece>,
    /// Held so the in-flight limit counts streams until they end.
    _permit: OwnedSemaphorePermit,
    /// Held so the model stays resident until the stream ends.
    hold: Option<Box<dyn Send + Sync>>,
}

impl SseState {
    fn new(
        ctx: Ctx,
        stream: TokenStream,
        tracker: Tracker,
        deadline: tokio::time::Instant,
        permit: OwnedSemaphorePermit,
        timeout_secs: u64,
    ) -> Self {
        let calls = ctx.parse_calls.then(|| CallParser::new(ctx.tool_names.clone()));
        SseState {
            ctx,
            stream,
            tracker,
            deadline,
            timeout_secs,
            cached: 0,
            finished: false,
            calls,
            pieces: Vec::new(),
            _permit: permit,
            hold: None,
        }
    }

    /// The next bytes to send, or `None` once `[DONE]` went out.
    async fn step(&mut self) -> Option<Bytes> {
        while !self.finished {
            let wake = (tokio::time::Instant::now() + PING_EVERY).min(self.deadline);
            match timeout_at(wake, self.stream.next()).await {
                Err(_) if tokio::time::Instant::now() >= self.deadline => {
                    return Some(self.fail(&ServerError::Timeout(self.timeout_secs)))
                }
                Err(_) => return Some(Bytes::from_static(b": ping\n\n")),
                Ok(None) => return Some(self.fail(&ServerError::from(RuntimeError::WorkerGone))),
                Ok(Some(event)) => {
                    if let Some(bytes) = self.on_event(event) {
                        return Some(bytes);
                    }
                }
            }
        }
        None
    }

    fn on_event(&mut self, event: Event) -> Option<Bytes> {
        match event {
            Event::Started { cached_tokens, .. } => {
                self.cached = cached_tokens;
                match self.ctx.endpoint {
                    Endpoint::Chat => Some(self.ctx.chunk(json!({"role": "assistant", "content": ""}), "", None)),
                    Endpoint::Completions => None,
                }
            }
            Event::Text { text, tokens } => {
                self.tracker.on_tokens(tokens);
                match self.calls.as_mut() {
                    Some(parser) => {
                        parser.push(&text, &mut self.pieces);
                        self.drain_pieces()
                    }
                    None => (!text.is_empty()).then(|| self.ctx.chunk(json!({"content": text}), &text, None)),
                }
            }
            Event::Done(done) => {
                self.tracker.on_done(&done);
                self.finished = true;
                let mut out = Vec::new();
                let mut calls = 0;
                if let Some(parser) = self.calls.as_mut() {
                    parser.finish(&mut self.pieces);
                    calls = parser.calls();
                    out.extend_from_slice(&self.drain_pieces().unwrap_or_default());
                }
                out.extend_from_slice(&self.ctx.chunk(json!({}), "", Some(finish_str(done.finish_reason, calls))));
                if self.ctx.include_usage {
                    out.extend_from_slice(&self.ctx.usage_chunk(&done, self.cached));
                }
                out.extend_from_slice(DONE);
                Some(out.into())
            }
            Event::Error(e) => Some(self.fail(&ServerError::from(e))),
        }
    }

    /// Chunks for the pieces the call parser produced, if any.
    fn drain_pieces(&mut self) -> Option<Bytes> {
        if self.pieces.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for piece in self.pieces.drain(..) {
            out.extend_from_slice(&self.ctx.piece_chunk(&piece));
        }
        Some(out.into())
    }

    /// An error mid-stream: OpenAI's error object as an event, then `[DONE]`.
    fn fail(&mut self, e: &ServerError) -> Bytes {
        self.finished = true;
        let mut out = data(&e.body()).to_vec();
        out.extend_from_slice(DONE);
        out.into()
    }
}

fn sse(state: SseState) -> Response {
    let body = futures_util::stream::unfold(state, |mut s| async move {
        let bytes = s.step().await?;
        Some((Ok::<_, Infallible>(bytes), s))
    });
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn new_id(endpoint: Endpoint) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    let prefix = match endpoint {
        Endpoint::Chat => "chatcmpl",
        Endpoint::Completions => "cmpl",
    };
    format!("{prefix}-{:016x}", h.finish())
}
