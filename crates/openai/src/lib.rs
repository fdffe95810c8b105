//! A blocking client for OpenAI-compatible completion servers (augur,
//! vLLM, llama-server), streamed over server-sent events.
//!
//! The team's remote roles and the bench's endpoint targets both speak
//! to servers through it. It knows the wire format only: callers convert
//! their own messages and events, and keep their own clocks.

#![forbid(unsafe_code)]

mod error;
mod request;
pub mod sse;
mod stream;

use std::io::BufReader;
use std::time::Duration;

pub use error::OpenAiError;
pub use request::{server_root, Input, Message, Request, Sampling};
pub use stream::{AugurSpec, AugurUsage, EventStream, PromptTokensDetails, StreamEvent, Usage};

use request::{StreamOptions, Streamed};

/// How long to wait for a connection when the caller does not say.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One server; cheap to clone, and its connections are pooled.
#[derive(Clone)]
pub struct Client {
    root: String,
    agent: ureq::Agent,
    api_key: Option<String>,
}

impl Client {
    /// `base`: the server root, its `/v1` base or a completions URL.
    /// `read_timeout` bounds the wait for the answer and for each chunk,
    /// so a stalled server fails the request instead of hanging it.
    pub fn new(base: &str, read_timeout: Duration) -> Client {
        let agent =
            ureq::AgentBuilder::new().timeout_connect(DEFAULT_CONNECT_TIMEOUT).timeout_read(read_timeout).build();
        Client { root: server_root(base).to_string(), agent, api_key: None }
    }

    /// Send `Authorization: Bearer KEY` with every request.
    pub fn with_api_key(mut self, key: Option<String>) -> Client {
        self.api_key = key;
        self
    }

    /// The URL a request goes to.
    pub fn url(&self, req: &Request) -> String {
        format!("{}/v1/{}", self.root, req.path())
    }

    /// Send `req` streamed (with usage asked for) and return its events
    /// once the server has answered 200.
    pub fn stream(&self, req: &Request) -> Result<EventStream, OpenAiError> {
        let url = self.url(req);
        let body = Streamed { request: req, stream: true, stream_options: StreamOptions { include_usage: true } };
        let body = serde_json::to_string(&body)
            .map_err(|e| OpenAiError::Internal { url: url.clone(), message: e.to_string() })?;
        let mut call = self.agent.post(&url).set("Content-Type", "application/json").set("Accept", "text/event-stream");
        if let Some(k) = &self.api_key {
            call = call.set("Authorization", &format!("Bearer {k}"));
        }
        let resp = call.send_string(&body).map_err(|e| OpenAiError::from_ureq(&url, e))?;
        let reader = BufReader::new(resp.into_reader());
        Ok(EventStream::new(url, Box::new(reader)))
    }
}
