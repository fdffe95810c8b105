//! Chat prompts with tools.
//!
//! A template that reads `tools` (Qwen2.5's, and most recent ones) gets the
//! tool list and the conversation as they are, and writes its own tool
//! instructions. A template that does not (Gemma's, llama.cpp's built-in
//! formats) would drop the tools and may refuse `tool` messages, so as a
//! best effort the conversation is rewritten first: the tools are described
//! in the system message in the Hermes format the call grammar enforces,
//! earlier calls become `<tool_call>` text in the assistant turn, and tool
//! results become `<tool_response>` text in a user turn (consecutive turns
//! of one role merged, since such templates expect alternation).

use augur_runtime::{ChatMessage, Token, Tokenizer};
use serde_json::Value;

use crate::ServerError;

/// Render and tokenise `messages` with `tools` (OpenAI's shape).
pub fn chat_tokens(
    tok: &Tokenizer,
    messages: &[ChatMessage],
    tools: Option<&Value>,
) -> Result<Vec<Token>, ServerError> {
    let uses_tools = tools.is_some() || messages.iter().any(|m| m.role == "tool" || m.tool_calls.is_some());
    let tokens = if !uses_tools || tok.template_reads_tools() {
        tok.tokenize_chat(messages, tools)
    } else {
        tok.tokenize_chat(&describe_tools(messages, tools), None)
    };
    Ok(tokens?)
}

/// The conversation with tools, calls and results written as plain text.
fn describe_tools(messages: &[ChatMessage], tools: Option<&Value>) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(messages.len() + 1);
    let mut rest = messages;
    if let Some(tools) = tools {
        let mut system = tool_instructions(tools);
        if let Some((first, tail)) = messages.split_first().filter(|(m, _)| m.role == "system") {
            system = format!("{}\n\n{system}", first.content);
            rest = tail;
        }
        out.push(ChatMessage::new("system", system));
    }
    for m in rest {
        let m = as_text(m);
        match out.last_mut() {
            Some(last) if last.role == m.role && m.role != "system" => {
                last.content.push('\n');
                last.content.push_str(&m.content);
            }
            _ => out.push(m),
        }
    }
    out
}

fn as_text(m: &ChatMessage) -> ChatMessage {
    if m.role == "tool" {
        return ChatMessage::new("user", format!("<tool_response>\n{}\n</tool_response>", m.content));
    }
    let Some(Value::Array(calls)) = &m.tool_calls else {
        return ChatMessage { tool_calls: None, ..m.clone() };
    };
    let mut content = m.content.clone();
    for call in calls {
        let f = call.get("function").unwrap_or(call);
        let field = |k: &str| f.get(k).map_or_else(|| "null".to_string(), Value::to_string);
        if !content.is_empty() {
            content.push('\n');
        }
        // The layout the call grammar forces, so the model sees its own style.
        content.push_str(&format!(
            "<tool_call>\n{{\"name\": {}, \"arguments\": {}}}\n</tool_call>",
            field("name"),
            field("arguments")
        ));
    }
    ChatMessage { content, tool_calls: None, ..m.clone() }
}

/// Qwen2.5's own tool instructions (the Hermes format).
fn tool_instructions(tools: &Value) -> String {
    let list: Vec<String> = tools.as_array().into_iter().flatten().map(Value::to_string).collect();
    format!(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with \
         function signatures within <tools></tools> XML tags:\n<tools>\n{}\n</tools>\n\nFor each function call, \
         return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n\
         <tool_call>\n{{\"name\": <function-name>, \"arguments\": <args-json-object>}}\n</tool_call>",
        list.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tools_calls_and_results_become_text() {
        let tools = json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]);
        let call = json!([{"id": "call_1", "type": "function",
            "function": {"name": "weather", "arguments": {"city": "Paris"}}}]);
        let msgs = vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Weather in Paris?"),
            ChatMessage { tool_calls: Some(call), ..ChatMessage::new("assistant", "") },
            ChatMessage { tool_call_id: Some("call_1".into()), ..ChatMessage::new("tool", "sunny") },
            ChatMessage { tool_call_id: Some("call_2".into()), ..ChatMessage::new("tool", "warm") },
        ];
        let out = describe_tools(&msgs, Some(&tools));
        let roles: Vec<&str> = out.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert!(out[0].content.starts_with("Be brief.\n\n# Tools") && out[0].content.contains("\"weather\""));
        assert_eq!(
            out[2].content,
            "<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call>"
        );
        assert_eq!(out[3].content, "<tool_response>\nsunny\n</tool_response>\n<tool_response>\nwarm\n</tool_response>");
        assert!(out.iter().all(|m| m.tool_calls.is_none()));
    }
}
