//! Byte-for-byte comparison with Python jinja2, configured the way Hugging
//! Face transformers renders chat templates.
//!
//! Requires `python3` with `jinja2` (`python3 -m pip install jinja2`); the
//! test fails, rather than skips, when they are missing.

use augur_template::reference::{render_with_python_jinja2, UNAVAILABLE};
use augur_template::{ChatMessage, ChatTemplate, Limits, RenderOptions, TemplateError};
use serde_json::json;

const FIXTURES: &[(&str, &str)] = &[
    ("qwen2.5", include_str!("fixtures/qwen2.5.jinja")),
    ("llama3", include_str!("fixtures/llama3.jinja")),
    ("gemma3", include_str!("fixtures/gemma3.jinja")),
    ("mistral", include_str!("fixtures/mistral.jinja")),
    ("deepseek", include_str!("fixtures/deepseek.jinja")),
    ("features", include_str!("fixtures/features.jinja")),
];

fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage::new(role, content)
}

fn tool_call_message() -> ChatMessage {
    ChatMessage {
        tool_calls: Some(json!([{
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Zürich\"}"}
        }])),
        ..msg("assistant", "")
    }
}

fn tool_result_message() -> ChatMessage {
    ChatMessage { tool_call_id: Some("call_1".into()), ..msg("tool", "{\"temp\": 21}") }
}

fn conversations() -> Vec<(&'static str, Vec<ChatMessage>)> {
    vec![
        (
            "system+user+assistant+user",
            vec![
                msg("system", "You are a helpful assistant."),
                msg("user", "Hello!"),
                msg("assistant", "Hi there. How can I help?"),
                msg("user", "What is 2 + 2?"),
            ],
        ),
        (
            "no system",
            vec![
                msg("user", "  padded question \n"),
                msg("assistant", "<think>hmm</think>An answer with \"quotes\" and 'ticks'."),
                msg("user", "Ünïcödé ✓ and\nnewlines\t"),
            ],
        ),
        (
            "tools",
            vec![
                msg("system", "Use tools when needed."),
                ChatMessage { name: Some("alice".into()), ..msg("user", "Weather in Zürich?") },
                tool_call_message(),
                tool_result_message(),
                msg("assistant", "It is 21 degrees."),
                msg("user", "Thanks"),
            ],
        ),
    ]
}

fn tools() -> serde_json::Value {
    json!([{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"]
            }
        }
    }])
}

fn options(add_generation_prompt: bool, with_tools: bool) -> RenderOptions {
    RenderOptions {
        add_generation_prompt,
        bos_token: "<s>".into(),
        eos_token: "</s>".into(),
        tools: with_tools.then(tools),
        ..RenderOptions::default()
    }
}

/// Compares one render; returns a description of any mismatch.
fn compare(source: &str, messages: &[ChatMessage], opts: &RenderOptions) -> Option<String> {
    let ours = ChatTemplate::compile(source, Limits::default()).and_then(|t| t.render(messages, opts));
    let theirs = render_with_python_jinja2(source, messages, opts);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) if a == b => None,
        (Err(TemplateError::Raised(a)), Err(b)) if b.strip_prefix("TemplateError: ") == Some(a) => None,
        (_, Err(b)) if b.starts_with(UNAVAILABLE) => panic!("{b}"),
        _ => Some(format!("minijinja: {ours:?}\njinja2:    {theirs:?}")),
    }
}

#[test]
fn python_jinja2_is_available() {
    let out = render_with_python_jinja2("{{ 1 + 1 }}", &[], &RenderOptions::default());
    assert_eq!(out.as_deref(), Ok("2"), "python3 with jinja2 is required: python3 -m pip install jinja2");
}

#[test]
fn fixtures_render_identically_to_jinja2() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for (name, source) in FIXTURES {
        for (conversation, messages) in conversations() {
            for (gen, with_tools) in [(false, false), (true, false), (true, true)] {
                let opts = options(gen, with_tools);
                compared += 1;
                if let Some(diff) = compare(source, &messages, &opts) {
                    failures
                        .push(format!("{name} / {conversation} / generation_prompt={gen} tools={with_tools}\n{diff}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {compared} renders differ:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn fixtures_pass_dry_run() {
    for (name, source) in FIXTURES {
        let template = ChatTemplate::compile(source, Limits::default()).unwrap();
        template.dry_run().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
