//! What comes back: the events of a streamed completion.

use std::collections::VecDeque;
use std::io::BufRead;

use serde::Deserialize;
use serde_json::Value;

use crate::error::OpenAiError;
use crate::sse::SseReader;

/// One thing a stream said, in order. Timing is the caller's: each event
/// is returned as soon as its chunk has arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Generated text (a chat delta's content or a completion's text).
    Text(String),
    /// The first choice's finish reason (`stop`, `length`, `tool_calls`, ...).
    Finish(String),
    /// Token counts, usually in a last chunk of their own.
    Usage(Usage),
}

/// OpenAI's `usage`, with augur's own fields when the server is augur.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default)]
    pub augur: Option<AugurUsage>,
}

impl Usage {
    /// Prompt tokens the server took from its cache.
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details.as_ref().map_or(0, |d| d.cached_tokens)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

/// `usage.augur`: the server's own timings and speculation counters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AugurUsage {
    pub prefill_seconds: Option<f64>,
    pub decode_seconds: Option<f64>,
    pub time_to_first_token_seconds: Option<f64>,
    pub spec: Option<AugurSpec>,
}

/// The counters of `usage.augur.spec` a client reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AugurSpec {
    #[serde(default)]
    pub steps: u64,
    #[serde(default)]
    pub drafted: u64,
    #[serde(default)]
    pub accepted: u64,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

/// The events of one streamed response; ends after `[DONE]` or the first
/// error. Dropping it closes the connection.
pub struct EventStream {
    url: String,
    sse: SseReader<Box<dyn BufRead + Send>>,
    pending: VecDeque<StreamEvent>,
    finished: bool,
    over: bool,
}

impl EventStream {
    pub(crate) fn new(url: String, body: Box<dyn BufRead + Send>) -> EventStream {
        EventStream { url, sse: SseReader::new(body), pending: VecDeque::new(), finished: false, over: false }
    }

    /// The URL the stream comes from.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn failed(&self, message: String) -> OpenAiError {
        OpenAiError::Failed { url: self.url.clone(), status: None, message }
    }

    /// Read events until one yields something, the stream ends or fails.
    fn fill(&mut self) -> Result<(), OpenAiError> {
        while self.pending.is_empty() {
            let Some(ev) = self.sse.next_event().map_err(|e| OpenAiError::from_read(&self.url, e))? else {
                // Without [DONE], a stream that gave its finish reason is
                // still whole; one that did not was cut short.
                if !self.finished {
                    return Err(self.failed("the stream ended before the completion did".into()));
                }
                self.over = true;
                return Ok(());
            };
            if ev.data.trim() == "[DONE]" {
                self.over = true;
                return Ok(());
            }
            if ev.event == "error" {
                return Err(self.failed(format!("error mid-stream: {}", crate::error::error_message(ev.data))));
            }
            let chunk: Chunk =
                serde_json::from_str(&ev.data).map_err(|e| self.failed(format!("bad stream chunk: {e}")))?;
            self.apply(chunk)?;
        }
        Ok(())
    }

    fn apply(&mut self, chunk: Chunk) -> Result<(), OpenAiError> {
        if let Some(err) = chunk.error {
            let message = err["message"].as_str().map_or_else(|| err.to_string(), str::to_string);
            return Err(self.failed(format!("error mid-stream: {message}")));
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            let text = choice.delta.and_then(|d| d.content).or(choice.text).unwrap_or_default();
            if !text.is_empty() {
                self.pending.push_back(StreamEvent::Text(text));
            }
            if let Some(f) = choice.finish_reason {
                self.finished = true;
                self.pending.push_back(StreamEvent::Finish(f));
            }
        }
        if let Some(u) = chunk.usage {
            self.pending.push_back(StreamEvent::Usage(u));
        }
        Ok(())
    }
}

impl Iterator for EventStream {
    type Item = Result<StreamEvent, OpenAiError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(ev) = self.pending.pop_front() {
            return Some(Ok(ev));
        }
        if self.over {
            return None;
        }
        match self.fill() {
            Ok(()) => self.pending.pop_front().map(Ok),
            Err(e) => {
                self.over = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(body: &'static str) -> EventStream {
        EventStream::new("u".into(), Box::new(body.as_bytes()))
    }

    #[test]
    fn chat_and_completion_chunks_give_text_finish_and_usage() {
        let body = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"text\":\" there\",\"finish_reason\":\"length\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,",
            "\"prompt_tokens_details\":{\"cached_tokens\":4},\"augur\":{\"spec\":{\"drafted\":3,\"accepted\":1}}}}\n\n",
            "data: [DONE]\n\n",
        );
        let got: Vec<StreamEvent> = stream(body).collect::<Result<_, _>>().expect("events");
        let StreamEvent::Usage(u) = &got[3] else { panic!("{got:?}") };
        assert_eq!(
            got[..3],
            [StreamEvent::Text("hi".into()), StreamEvent::Text(" there".into()), StreamEvent::Finish("length".into())]
        );
        assert_eq!((u.prompt_tokens, u.completion_tokens, u.cached_tokens()), (5, 2, 4));
        let spec = u.augur.as_ref().and_then(|a| a.spec.as_ref()).expect("spec");
        assert_eq!((spec.drafted, spec.accepted), (3, 1));
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn a_finished_stream_without_done_is_whole() {
        let body = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n";
        assert_eq!(stream(body).filter_map(Result::ok).count(), 2);
    }

    #[test]
    fn errors_mid_stream_and_bad_chunks_fail_once() {
        let mut s = stream("data: {\"error\":{\"message\":\"oom\"}}\n\ndata: [DONE]\n\n");
        let e = s.next().expect("one").expect_err("error");
        assert!(matches!(&e, OpenAiError::Failed { message, .. } if message.contains("oom")), "{e}");
        assert!(s.next().is_none());
        let mut s = stream("data: {not json\n\n");
        assert!(matches!(s.next(), Some(Err(OpenAiError::Failed { .. }))));
        assert!(s.next().is_none());
    }
}
