//! What is sent: an OpenAI chat or text completion request.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One chat message, as OpenAI's API takes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message { role: role.into(), content: content.into(), ..Message::default() }
    }
}

/// The input, which also picks the endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Input {
    /// `/v1/chat/completions`.
    Chat { messages: Vec<Message> },
    /// `/v1/completions` with a text prompt.
    Text { prompt: String },
    /// `/v1/completions` with token ids (servers that share the vocabulary).
    Tokens { prompt: Vec<i32> },
}

/// Sampling fields; unset ones are left to the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sampling {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A completion request; streaming is chosen by the call that sends it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub model: String,
    #[serde(flatten)]
    pub input: Input,
    pub max_tokens: u32,
    #[serde(flatten)]
    pub sampling: Sampling,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// augur's extension object (`"augur": {"spec": ...}`), sent as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub augur: Option<Value>,
}

impl Request {
    pub fn chat(model: impl Into<String>, messages: Vec<Message>, max_tokens: u32) -> Request {
        Request::new(model.into(), Input::Chat { messages }, max_tokens)
    }

    pub fn completion(model: impl Into<String>, input: Input, max_tokens: u32) -> Request {
        Request::new(model.into(), input, max_tokens)
    }

    fn new(model: String, input: Input, max_tokens: u32) -> Request {
        Request { model, input, max_tokens, sampling: Sampling::default(), stop: Vec::new(), augur: None }
    }

    /// The path under `/v1` this request goes to.
    pub fn path(&self) -> &'static str {
        match self.input {
            Input::Chat { .. } => "chat/completions",
            Input::Text { .. } | Input::Tokens { .. } => "completions",
        }
    }
}

/// The body of a streamed request: usage is always asked for, since both
/// callers count tokens from it.
#[derive(Serialize)]
pub(crate) struct Streamed<'a> {
    #[serde(flatten)]
    pub request: &'a Request,
    pub stream: bool,
    pub stream_options: StreamOptions,
}

#[derive(Serialize)]
pub(crate) struct StreamOptions {
    pub include_usage: bool,
}

/// The server root a base URL names: a root, a `/v1` base or a full
/// completions path are all accepted.
pub fn server_root(base: &str) -> &str {
    let mut b = base.trim_end_matches('/');
    for suffix in ["/chat/completions", "/completions"] {
        if let Some(s) = b.strip_suffix(suffix) {
            b = s;
            break;
        }
    }
    b.strip_suffix("/v1").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base_urls_reduce_to_the_server_root() {
        for base in ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/", "http://h:1/v1/chat/completions"] {
            assert_eq!(server_root(base), "http://h:1", "{base}");
        }
        assert_eq!(server_root("http://h:1/v1/completions"), "http://h:1");
    }

    #[test]
    fn a_streamed_chat_body_has_the_openai_shape() {
        let mut r = Request::chat("m", vec![Message::new("user", "hi")], 16);
        r.sampling = Sampling { temperature: Some(0.5), seed: Some(3), top_k: Some(40), ..Sampling::default() };
        r.stop = vec!["\n".into()];
        r.augur = Some(json!({"spec": {"max": 0}}));
        let body = serde_json::to_value(Streamed {
            request: &r,
            stream: true,
            stream_options: StreamOptions { include_usage: true },
        })
        .expect("serialize");
        let want = json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16,
            "temperature": 0.5, "seed": 3, "top_k": 40, "stop": ["\n"], "augur": {"spec": {"max": 0}},
            "stream": true, "stream_options": {"include_usage": true},
        });
        assert_eq!(body, want);
        assert_eq!(r.path(), "chat/completions");
    }

    #[test]
    fn completion_prompts_are_text_or_tokens() {
        let t = Request::completion("m", Input::Text { prompt: "x".into() }, 1);
        assert_eq!(serde_json::to_value(&t).expect("json")["prompt"], "x");
        let k = Request::completion("m", Input::Tokens { prompt: vec![1, 2] }, 1);
        assert_eq!(serde_json::to_value(&k).expect("json")["prompt"], json!([1, 2]));
        assert_eq!(k.path(), "completions");
    }
}
