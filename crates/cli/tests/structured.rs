//! Structured output and tool calls end to end on the real models:
//! - the official `openai` client for `response_format`, `tools` and
//!   streamed tool calls, and every row of `tests/data/schemas.jsonl`
//!   (prompts with JSON schemas or tools) validated with `jsonschema`;
//! - adversarial schemas and grammars over raw HTTP: each a fast 400 in
//!   OpenAI's shape, the server serving on;
//! - tools on a template that does not know them (Gemma);
//! - `augur run --json-schema`, `--grammar` and `--regex`.

mod common;
mod server_support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server_support::{run_bounded, Server, KEY, MODEL};

/// A refusal must not wait for the model: compile errors come back in
/// milliseconds; this bound leaves room for a loaded 2-core machine.
const QUICK: Duration = Duration::from_secs(5);

fn body(extra: Value) -> Value {
    let mut b = json!({"model": MODEL, "messages": [{"role": "user", "content": "Reply in JSON."}], "max_tokens": 4,
        "temperature": 0});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

fn schema_format(schema: Value) -> Value {
    json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
}

fn text_of(v: &Value) -> &str {
    v["choices"][0]["message"]["content"].as_str().unwrap_or("")
}

#[test]
fn openai_client_structured_output() {
    let python_ok = Command::new("python3").args(["-c", "import openai, jsonschema"]).status();
    assert!(python_ok.is_ok_and(|s| s.success()), "python3 with `openai` and `jsonschema` is required");
    let server = Server::start(&["--queue", "4"], true);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/structured_client.py");
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/schemas.jsonl");
    let rows = std::fs::read_to_string(data).unwrap().lines().count();
    assert!(rows >= 30, "the data set has {rows} rows");
    let (code, stdout, stderr) = run_bounded(
        Command::new("python3").args([script, &server.base_url(), KEY, MODEL, data]),
        Duration::from_secs(1800),
    );
    println!("{stdout}");
    assert_eq!(code, Some(0), "structured client failed:\n{stdout}\n{stderr}\nserver log:\n{}", server.log());
}

/// Each adversarial constraint: (what, request fields, the param named).
fn adversarial() -> Vec<(&'static str, Value, &'static str)> {
    let deep = "{\"type\":\"array\",\"items\":".repeat(5000) + "{}" + &"}".repeat(5000);
    let deep_schema: String = format!(
        r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"json"}}],"max_tokens":4,
        "response_format":{{"type":"json_schema","json_schema":{{"name":"x","schema":{deep}}}}}}}"#
    );
    let chain: serde_json::Map<String, Value> = (0..5000)
        .map(|i| {
            let def = if i < 4999 {
                json!({"type": "object", "properties": {"x": {"$ref": format!("#/$defs/d{}", i + 1)}}, "required": ["x"]})
            } else {
                json!({"type": "integer"})
            };
            (format!("d{i}"), def)
        })
        .collect();
    let huge_enum: Vec<String> = (0..100_000).map(|i| format!("value-number-{i}")).collect();
    vec![
        (
            "minItems 10 with maxItems 2",
            schema_format(json!({"type": "array", "minItems": 10, "maxItems": 2})),
            "response_format",
        ),
        ("5,000-deep nesting", Value::String(deep_schema), ""),
        (
            "recursive $ref",
            schema_format(json!({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}})),
            "response_format",
        ),
        ("huge enum", schema_format(json!({"enum": huge_enum})), "response_format"),
        ("invalid regex", json!({"augur": {"grammar": {"regex": "(unclosed"}}}), "augur.grammar"),
        ("invalid Lark", json!({"augur": {"grammar": {"lark": "start: foo ::= bar"}}}), "augur.grammar"),
        ("invalid pattern", schema_format(json!({"type": "string", "pattern": "[z-a]"})), "response_format"),
        ("unknown type", schema_format(json!({"type": "strnig"})), "response_format"),
        (
            "strict with an unknown format",
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true,
                "schema": {"type": "string", "format": "no-such-format"}}}}),
            "response_format",
        ),
        (
            "contradictory tool parameters",
            json!({"tools": [{"type": "function", "function": {"name": "f",
                "parameters": {"type": "object", "properties": {"a": {"type": "integer", "minimum": 5, "maximum": 1}},
                "required": ["a"]}}}], "tool_choice": "required"}),
            "tools",
        ),
        (
            "json_object without JSON in the messages",
            json!({"response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "Hi"}]}),
            "messages",
        ),
        (
            "regex and Lark at once",
            json!({"augur": {"grammar": {"regex": "a", "lark": "start: \"a\""}}}),
            "augur.grammar",
        ),
        // Last: it overflowed the grammar compiler thread's stack (and killed the server).
        ("5,000-deep $ref chain", schema_format(json!({"$ref": "#/$defs/d0", "$defs": chain})), "response_format"),
    ]
}

/// A request from its extra fields, or a raw body given as a string.
fn post_raw(server: &Server, req: &Value) -> std::io::Result<server_support::Resp> {
    let raw = match req {
        Value::String(raw) => raw.clone(),
        v => body(v.clone()).to_string(),
    };
    let headers = [("Content-Type", "application/json")];
    server_support::try_request(server.port, "POST", "/v1/chat/completions", &headers, raw.as_bytes())
}

#[test]
fn adversarial_constraints_are_fast_400s() {
    let mut server = Server::start(&[], false);
    // Warm the grammar engine (built on first use) with a valid constraint.
    let ok = server.post_json("/v1/chat/completions", &body(json!({"response_format": {"type": "json_object"}})));
    assert_eq!(ok.status, 200, "{}", ok.text());
    let mut failures = Vec::new();
    for (what, req, param) in adversarial() {
        let start = Instant::now();
        let r = post_raw(&server, &req);
        let took = start.elapsed();
        let r = match r {
            Ok(r) if server.is_running() => r,
            _ => {
                failures.push(format!("{what}: the server died:\n{}", server.log()));
                break;
            }
        };
        if r.status != 400 || took > QUICK {
            failures.push(format!("{what}: status {} in {took:?}: {}", r.status, r.text()));
            continue;
        }
        let e = r.assert_error(400, what);
        if !param.is_empty() && e["param"] != param {
            failures.push(format!("{what}: param {} instead of {param}", e["param"]));
        }
        let ok = server.post_json("/v1/chat/completions", &body(json!({"max_tokens": 2})));
        assert_eq!(ok.status, 200, "after {what}: {}", ok.text());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Regexes that make backtracking engines explode compile in linear time
/// here (llguidance builds a lazy DFA): served, quickly, and followed.
#[test]
fn catastrophic_regexes_are_served_and_followed() {
    let server = Server::start(&[], false);
    for (pattern, allowed) in [("(a+)+$", "a"), ("(a|aa)+", "a"), ("(x|y)*x(x|y){20}", "xy")] {
        let start = Instant::now();
        let req = body(json!({"augur": {"grammar": {"regex": pattern}}, "max_tokens": 8,
            "messages": [{"role": "user", "content": "Write some letters."}]}));
        let r = server.post_json("/v1/chat/completions", &req);
        assert_eq!(r.status, 200, "{pattern}: {}", r.text());
        assert!(start.elapsed() < Duration::from_secs(120), "{pattern}: {:?}", start.elapsed());
        let v = r.json();
        let text = text_of(&v);
        assert!(!text.is_empty() && text.chars().all(|c| allowed.contains(c)), "{pattern}: output {text:?}");
    }
}

/// Gemma's template never reads `tools`: they are described in the system
/// prompt instead, and tool messages are rewritten into turns it accepts.
#[test]
fn tools_on_a_template_without_tool_support() {
    let model = "gemma-3-270m";
    let server = Server::start_model(model, &[], false);
    let weather = json!({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string", "maxLength": 30}}, "required": ["city"], "additionalProperties": false}}});
    let ask = json!([{"role": "user", "content": "What is the weather in Paris?"}]);
    let req = |extra: Value| {
        let mut b = json!({"model": model, "messages": ask, "max_tokens": 40, "temperature": 0});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        server.post_json("/v1/chat/completions", &b)
    };
    let plain = req(json!({"max_tokens": 1})).json();
    let with_tools = req(json!({"tools": [weather], "tool_choice": "required", "parallel_tool_calls": false}));
    assert_eq!(with_tools.status, 200, "{}", with_tools.text());
    let v = with_tools.json();
    let described = v["usage"]["prompt_tokens"].as_u64().unwrap() - plain["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(described > 50, "the tools were not described in the prompt ({described} more tokens)");
    let history = json!([
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"celsius\": 21}"},
    ]);
    let r = req(json!({"messages": history, "tools": [weather], "tool_choice": "none", "max_tokens": 8}));
    assert_eq!(r.status, 200, "a conversation with tool results: {}", r.text());
    let calls = &v["choices"][0]["message"]["tool_calls"];
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    assert_eq!(calls[0]["function"]["name"], "get_weather", "{v}");
    let args: Value = serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].is_string() && args.as_object().unwrap().len() == 1, "{args}");
}

#[test]
fn run_with_schema_grammar_and_regex() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = common::cached_model(MODEL);
    let m = m.to_str().unwrap();
    let t = Duration::from_secs(300);
    let mem = 16 << 20;
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let schema = file(
        "person.json",
        r#"{"type":"object","properties":{"name":{"type":"string","maxLength":20},
        "age":{"type":"integer","minimum":0,"maximum":120}},"required":["name","age"],"additionalProperties":false}"#,
    );
    let run = |extra: &[&str], prompt: &str| {
        let mut args = vec!["run", "-m", m, "--chat", "-p", prompt, "-n", "60", "--json"];
        args.extend_from_slice(extra);
        common::augur(&args, home.path(), t, mem)
    };
    let text = |o: &common::Outcome| -> String {
        assert_eq!(o.code, Some(0), "{}", o.stderr);
        let v: Value = serde_json::from_str(o.stdout.trim()).expect("run --json");
        v["text"].as_str().unwrap().to_string()
    };
    let person: Value = serde_json::from_str(&text(&run(&["--json-schema", &schema], "Invent a person."))).unwrap();
    assert!(person["name"].is_string() && person["age"].as_u64().is_some_and(|a| a <= 120), "{person}");
    assert_eq!(person.as_object().unwrap().len(), 2, "{person}");
    let yes_no = file("answer.regex", "(yes|no)\n");
    let answer = text(&run(&["--grammar", &yes_no], "Is the sky blue? Answer yes or no."));
    assert!(answer == "yes" || answer == "no", "{answer:?}");
    let lark = file("colour.lark", "start: \"Colour: \" COLOUR\nCOLOUR: \"red\" | \"green\" | \"blue\"\n");
    let colour = text(&run(&["--grammar", &lark], "Name a primary colour."));
    assert!(["Colour: red", "Colour: green", "Colour: blue"].contains(&colour.as_str()), "{colour:?}");
    let digits = text(&run(&["--regex", "[0-9]{3}"], "Pick a number."));
    assert!(digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit()), "{digits:?}");
    let bad = file("bad.json", r#"{"type":"array","minItems":10,"maxItems":2}"#);
    let start = Instant::now();
    run(&["--json-schema", &bad], "x").assert_clean_error("contradictory schema");
    assert!(start.elapsed() < Duration::from_secs(60), "{:?}", start.elapsed());
}
