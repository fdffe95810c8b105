//! Chat messages of a request: roles, content parts and earlier tool
//! calls, checked and turned into the runtime's messages.

use augur_runtime::{ChatMessage, Prompt};
use serde::Deserialize;
use serde_json::Value;

use crate::config::ServerConfig;
use crate::request::check_prompt_bytes;
use crate::ServerError;

/// One entry of `messages`, as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMessage {
    pub role: String,
    pub content: Option<Value>,
    pub name: Option<String>,
    pub tool_calls: Option<Value>,
    pub tool_call_id: Option<String>,
    pub refusal: Option<Value>,
}

pub fn chat_prompt(messages: &[RawMessage], cfg: &ServerConfig) -> Result<Prompt, ServerError> {
    if messages.is_empty() {
        return Err(ServerError::param("messages", "`messages` must not be empty"));
    }
    if messages.len() > cfg.max_messages {
        return Err(ServerError::param(
            "messages",
            format!("too many messages: {}, the limit is {}", messages.len(), cfg.max_messages),
        ));
    }
    let mut bytes = 0usize;
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let msg = chat_message(i, m)?;
        bytes = bytes.saturating_add(msg.content.len());
        out.push(msg);
    }
    check_prompt_bytes(bytes, cfg, "messages")?;
    Ok(Prompt::Chat(out))
}

fn chat_message(i: usize, m: &RawMessage) -> Result<ChatMessage, ServerError> {
    let role = match m.role.as_str() {
        // Chat templates know `system`; OpenAI's newer name means the same.
        "developer" | "system" => "system",
        r @ ("user" | "assistant" | "tool") => r,
        other => {
            return Err(ServerError::param(
                format!("messages[{i}].role"),
                format!("unknown role {other:?}; expected system, developer, user, assistant or tool"),
            ))
        }
    };
    if role == "tool" && m.tool_call_id.is_none() {
        return Err(ServerError::param(
            format!("messages[{i}].tool_call_id"),
            "a tool message needs the `tool_call_id` of the call it answers",
        ));
    }
    if m.refusal.as_ref().is_some_and(|r| !r.is_null()) && role != "assistant" {
        return Err(ServerError::param(format!("messages[{i}].refusal"), "only assistant messages carry a refusal"));
    }
    let tool_calls = match &m.tool_calls {
        None | Some(Value::Null) => None,
        Some(_) if role != "assistant" => {
            return Err(ServerError::param(
                format!("messages[{i}].tool_calls"),
                "only assistant messages make tool calls",
            ))
        }
        Some(v) => Some(history_calls(i, v)?),
    };
    let content = message_content(i, m.content.as_ref(), tool_calls.is_some())?;
    Ok(ChatMessage {
        role: role.to_string(),
        content,
        name: m.name.clone(),
        tool_calls,
        tool_call_id: m.tool_call_id.clone(),
    })
}

/// Earlier calls of an assistant message, for the template. OpenAI sends
/// `arguments` as a string holding a JSON object, and refuses anything
/// else; templates (written for Hugging Face) read it as an object, so the
/// string is replaced by its value.
fn history_calls(i: usize, v: &Value) -> Result<Value, ServerError> {
    let param = format!("messages[{i}].tool_calls");
    let bad = |j: usize| {
        ServerError::param(
            format!("{param}[{j}]"),
            "a tool call must be {\"id\": ..., \"type\": \"function\", \"function\": {\"name\": ..., \"arguments\": ...}}",
        )
    };
    let Some(calls) = v.as_array() else {
        return Err(ServerError::param(param, "`tool_calls` must be an array"));
    };
    let mut out = calls.clone();
    for (j, call) in out.iter_mut().enumerate() {
        let f = call.get_mut("function").and_then(Value::as_object_mut).ok_or_else(|| bad(j))?;
        if !f.get("name").is_some_and(Value::is_string) {
            return Err(bad(j));
        }
        let args = match f.get("arguments") {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok().filter(Value::is_object),
            _ => None,
        };
        let args = args.ok_or_else(|| {
            ServerError::param(
                format!("{param}[{j}].function.arguments"),
                "`arguments` must be a string holding a JSON object, such as \"{}\"",
            )
        })?;
        f.insert("arguments".into(), args);
    }
    Ok(Value::Array(out))
}

/// A string, or an array of `{"type": "text", "text": ...}` parts.
pub fn message_content(i: usize, content: Option<&Value>, may_omit: bool) -> Result<String, ServerError> {
    let param = format!("messages[{i}].content");
    match content {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) if may_omit => Ok(String::new()),
        None | Some(Value::Null) => Err(ServerError::param(param, "message content is required")),
        Some(Value::Array(parts)) if parts.is_empty() => {
            Err(ServerError::param(param, "an array of content parts must not be empty"))
        }
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                text.push_str(text_part(&format!("{param}[{j}]"), part)?);
            }
            Ok(text)
        }
        Some(_) => Err(ServerError::param(param, "message content must be a string or an array of text parts")),
    }
}

/// Content part types OpenAI defines that augur cannot read.
const NON_TEXT_PARTS: [&str; 5] = ["image_url", "input_audio", "file", "refusal", "audio"];

/// A `{"type": "text", "text": ...}` part; other known types are
/// unsupported, unknown ones and malformed text parts invalid.
fn text_part<'a>(param: &str, part: &'a Value) -> Result<&'a str, ServerError> {
    let kind = part.get("type").and_then(Value::as_str);
    match kind {
        Some("text") => {}
        Some(k) if NON_TEXT_PARTS.contains(&k) => {
            return Err(ServerError::unsupported(
                param,
                format!("content parts of type {k:?} are not supported; only \"text\" parts are"),
            ))
        }
        _ => {
            return Err(ServerError::param(
                format!("{param}.type"),
                "a content part must be {\"type\": \"text\", \"text\": ...}",
            ))
        }
    }
    let obj = part.as_object().filter(|o| o.len() == 2);
    obj.and_then(|o| o.get("text")?.as_str()).ok_or_else(|| {
        ServerError::param(format!("{param}.text"), "a text part is {\"type\": \"text\", \"text\": STRING}")
    })
}
