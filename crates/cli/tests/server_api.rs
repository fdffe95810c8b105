//! `augur serve` over raw HTTP: response shapes, API keys, every kind of bad
//! request (each a 4xx with an OpenAI error body, the server serving on),
//! limits, timeouts.

mod server_support;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use server_support::{
    chat_body, connect, free_port, read_response, run_bounded, try_request, write_request, Server, KEY, MODEL,
    OTHER_KEY,
};

fn chat(extra: serde_json::Value) -> serde_json::Value {
    let mut body = json!({"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn check_auth(s: &Server) {
    let p = s.port;
    let open = try_request(p, "GET", "/health", &[], b"").unwrap();
    assert_eq!(open.status, 200, "/health must stay public");
    try_request(p, "GET", "/v1/models", &[], b"").unwrap().assert_error(401, "no key");
    let prefix = format!("Bearer {}", &KEY[..KEY.len() - 1]);
    let longer = format!("Bearer {KEY}x");
    let other = format!("Bearer {OTHER_KEY}");
    for bad in ["Bearer wrong", prefix.as_str(), longer.as_str(), "Basic abc", "Bearer ", KEY] {
        let r = try_request(p, "GET", "/v1/models", &[("Authorization", bad)], b"").unwrap();
        r.assert_error(401, bad);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    let r = try_request(p, "GET", "/v1/models", &[("Authorization", &other)], b"").unwrap();
    assert_eq!(r.status, 200, "second key: {}", r.text());
    try_request(p, "GET", "/metrics", &[], b"").unwrap().assert_error(401, "metrics without key");
}

fn check_shapes(s: &Server) {
    let models = s.get("/v1/models").json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], MODEL);
    assert_eq!(models["data"][0]["object"], "model");

    let r = s.post_json("/v1/chat/completions", &chat_body("Name a color.", 8, false));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(v["choices"][0]["finish_reason"].is_string());
    assert!(v["usage"]["prompt_tokens_details"]["cached_tokens"].is_u64(), "{v}");

    let r =
        s.post_json("/v1/chat/completions", &chat(json!({"stream": true, "stream_options": {"include_usage": true}})));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = r.sse_data();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    let chunks: Vec<serde_json::Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let finish = &chunks[chunks.len() - 2]["choices"][0];
    assert_eq!(finish["delta"], json!({}));
    assert!(finish["finish_reason"].is_string());

    let spec = json!({"stream": false, "augur": {"spec": {"mode": "lookup", "max": 8}}});
    let r = s.post_json("/v1/chat/completions", &chat(spec));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["usage"]["augur"]["spec"]["mode"], "lookup", "{}", r.text());

    let r = s.post_json("/v1/completions", &json!({"model": MODEL, "prompt": "fn main() {", "max_tokens": 6}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "text_completion");

    let toks = s.post_json("/tokenize", &json!({"content": "hello world"})).json();
    let ids = toks["tokens"].as_array().unwrap().clone();
    assert!(!ids.is_empty());
    let text = s.post_json("/detokenize", &json!({"tokens": ids})).json();
    assert_eq!(text["content"], "hello world");

    let metrics = s.get("/metrics").text();
    for name in [
        "augur_http_requests_total{route=\"/v1/chat/completions\",code=\"200\"}",
        "augur_queue_depth",
        "augur_time_to_first_token_seconds_bucket",
        "augur_inter_token_latency_seconds_count",
        "augur_prompt_tokens_total",
        "augur_completion_tokens_total",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
}

const JS: &str = "response_format.json_schema";
const JS_SCHEMA: &str = "response_format.json_schema.schema";
const JS_NAME: &str = "response_format.json_schema.name";
const ARGS: &str = "messages[1].tool_calls[0].function.arguments";

fn json_schema(format: serde_json::Value) -> serde_json::Value {
    json!({"type": "json_schema", "json_schema": format})
}

/// A conversation whose earlier assistant call has these `arguments`.
fn history_call(arguments: serde_json::Value) -> serde_json::Value {
    let call = json!({"id": "c1", "type": "function", "function": {"name": "weather", "arguments": arguments}});
    chat(json!({"messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "21"},
    ]}))
}

fn content(parts: serde_json::Value) -> serde_json::Value {
    chat(json!({"messages": [{"role": "user", "content": parts}]}))
}

/// A tool whose parameters must contain themselves: no finite call exists.
fn recursive_tool() -> serde_json::Value {
    json!({"type": "function", "function": {"name": "f", "parameters": {"$ref": "#"}}})
}

/// Bodies that must each be a 400 (or the given status) with an error body
/// naming the given `param` (`None`: not pinned).
type BadRequest = (&'static str, &'static str, serde_json::Value, u16, Option<&'static str>);

fn bad_json_requests() -> Vec<BadRequest> {
    let c = "/v1/chat/completions";
    let long_stop = "x".repeat(300);
    vec![
        ("wrong type for messages", c, json!({"messages": "hi"}), 400, None),
        ("wrong type for max_tokens", c, chat(json!({"max_tokens": "10"})), 400, Some("max_tokens")),
        ("unknown model", c, chat(json!({"model": "gpt-9"})), 404, Some("model")),
        ("empty messages", c, json!({"messages": []}), 400, Some("messages")),
        ("missing messages", c, json!({"model": MODEL}), 400, Some("messages")),
        ("bad role", c, json!({"messages": [{"role": "robot", "content": "x"}]}), 400, Some("messages[0].role")),
        ("max_tokens 2^31", c, chat(json!({"max_tokens": 2147483648u64})), 400, Some("max_tokens")),
        ("max_tokens 2^63", c, chat(json!({"max_tokens": 9223372036854775808u64})), 400, Some("max_tokens")),
        ("max_tokens 0", c, chat(json!({"max_tokens": 0})), 400, Some("max_tokens")),
        ("max_tokens negative", c, chat(json!({"max_tokens": -5})), 400, Some("max_tokens")),
        ("temperature negative", c, chat(json!({"temperature": -0.5})), 400, Some("temperature")),
        ("temperature 3", c, chat(json!({"temperature": 3})), 400, Some("temperature")),
        ("top_p 0", c, chat(json!({"top_p": 0})), 400, Some("top_p")),
        ("top_p 1.5", c, chat(json!({"top_p": 1.5})), 400, Some("top_p")),
        ("top_k negative", c, chat(json!({"top_k": -1})), 400, Some("top_k")),
        ("min_p 2", c, chat(json!({"min_p": 2})), 400, Some("min_p")),
        ("seed negative", c, chat(json!({"seed": -1})), 400, Some("seed")),
        ("n=2", c, chat(json!({"n": 2})), 400, Some("n")),
        ("5 stop strings", c, chat(json!({"stop": ["a", "b", "c", "d", "e"]})), 400, Some("stop")),
        ("long stop string", c, chat(json!({"stop": long_stop})), 400, Some("stop")),
        (
            "json_object without JSON in messages",
            c,
            chat(json!({"response_format": {"type": "json_object"}})),
            400,
            Some("messages"),
        ),
        ("tool without function", c, chat(json!({"tools": [{"type": "function"}]})), 400, None),
        ("tool_choice required without tools", c, chat(json!({"tool_choice": "required"})), 400, Some("tool_choice")),
        ("logprobs", c, chat(json!({"logprobs": true})), 400, Some("logprobs")),
        ("logit_bias", c, chat(json!({"logit_bias": {"42": 10}})), 400, Some("logit_bias")),
        ("presence_penalty", c, chat(json!({"presence_penalty": 1.0})), 400, Some("presence_penalty")),
        ("unknown field", c, chat(json!({"frobnicate": true})), 400, None),
        ("augur spec mode", c, chat(json!({"augur": {"spec": {"mode": "warp"}}})), 400, None),
        ("completions prompt array", "/v1/completions", json!({"prompt": ["a", "b"]}), 400, None),
        ("completions with messages", "/v1/completions", chat(json!({"prompt": "x"})), 400, None),
        ("prompt token out of vocab", "/v1/completions", json!({"prompt": [1, 999999999], "max_tokens": 2}), 400, None),
        ("detokenize -1", "/detokenize", json!({"tokens": [-1]}), 400, None),
        ("detokenize n_vocab", "/detokenize", json!({"tokens": [151936]}), 400, None),
        ("detokenize 2^31", "/detokenize", json!({"tokens": [2147483648u64]}), 400, None),
        ("detokenize string", "/detokenize", json!({"tokens": ["a"]}), 400, None),
        ("tokenize without content", "/tokenize", json!({"text": "a"}), 400, None),
    ]
}

/// Malformed formats, messages and tools (issue 24's held-out classes).
fn bad_structure_requests() -> Vec<BadRequest> {
    let c = "/v1/chat/completions";
    vec![
        (
            "json_schema without json_schema",
            c,
            chat(json!({"response_format": {"type": "json_schema"}})),
            400,
            Some(JS),
        ),
        (
            "json_schema without schema",
            c,
            chat(json!({"response_format": json_schema(json!({"name": "n"}))})),
            400,
            Some(JS_SCHEMA),
        ),
        (
            "json_schema without name",
            c,
            chat(json!({"response_format": json_schema(json!({"schema": {}}))})),
            400,
            Some(JS_NAME),
        ),
        (
            "json_schema bad name",
            c,
            chat(json!({"response_format": json_schema(json!({"name": "a.b", "schema": {}}))})),
            400,
            Some(JS_NAME),
        ),
        (
            "tool message without tool_call_id",
            c,
            json!({"messages": [{"role": "tool", "content": "21"}]}),
            400,
            Some("messages[0].tool_call_id"),
        ),
        ("tool-call arguments not a string", c, history_call(json!({"city": "Paris"})), 400, Some(ARGS)),
        ("tool-call arguments not an object", c, history_call(json!("[1, 2]")), 400, Some(ARGS)),
        ("tool-call arguments not JSON", c, history_call(json!("{city")), 400, Some(ARGS)),
        ("empty content parts", c, content(json!([])), 400, Some("messages[0].content")),
        (
            "unknown content part type",
            c,
            content(json!([{"type": "txt", "text": "a"}])),
            400,
            Some("messages[0].content[0].type"),
        ),
        ("text part without text", c, content(json!([{"type": "text"}])), 400, Some("messages[0].content[0].text")),
        (
            "recursive tool parameters",
            c,
            chat(json!({"tools": [recursive_tool()]})),
            400,
            Some("tools[0].function.parameters"),
        ),
    ]
}

fn check_bad_requests(s: &Server) {
    let mut wrong_param = Vec::new();
    for (what, path, body, status, param) in bad_json_requests().into_iter().chain(bad_structure_requests()) {
        let e = s.post_json(path, &body).assert_error(status, what);
        if param.is_some_and(|p| e["param"] != p) {
            wrong_param.push(format!("{what}: expected param {param:?}, got {e}"));
        }
        if what == "unknown model" {
            assert_eq!(e["code"], "model_not_found");
        }
        if what == "max_tokens 2^63" {
            assert!(e["message"].as_str().unwrap().contains("9223372036854775808"), "{e}");
        }
    }
    let json_ct = [("Content-Type", "application/json")];
    s.send("POST", "/v1/chat/completions", &json_ct, b"{\"messages\": [").assert_error(400, "malformed JSON");
    s.send("POST", "/v1/chat/completions", &json_ct, b"").assert_error(400, "empty body");
    s.send("POST", "/v1/chat/completions", &json_ct, b"{\"messages\": \"\xff\xfe\"}").assert_error(400, "bad UTF-8");
    let ok = chat(json!({})).to_string();
    s.send("POST", "/v1/chat/completions", &[("Content-Type", "text/plain")], ok.as_bytes())
        .assert_error(415, "wrong content type");
    s.send("POST", "/v1/chat/completions", &[], ok.as_bytes()).assert_error(415, "no content type");
    s.send("GET", "/v1/chat/completions", &[], b"").assert_error(405, "GET on a POST route");
    s.send("GET", "/v1/nothing", &[], b"").assert_error(404, "unknown route");
    s.send("DELETE", "/health", &[], b"").assert_error(405, "DELETE /health");
    let e = s.post_json("/v1/models/other", &json!({})).assert_error(405, "POST on a GET route");
    assert!(e["type"].is_string());
    s.get("/v1/models/other").assert_error(404, "unknown model id");
    assert!(wrong_param.is_empty(), "{wrong_param:#?}");
    check_recursive_schemas_are_refused_fast(s);
    let e = s.get(&format!("/v1/models?q={}", "x".repeat(16 << 10))).assert_error(414, "16 kB URI");
    assert_eq!(e["code"], "uri_too_long");
}

/// Schemas that must contain themselves are refused before any compiling
/// or decoding, not after seconds of generation.
fn check_recursive_schemas_are_refused_fast(s: &Server) {
    let cycle = json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
    let cyclic_tool = json!({"type": "function", "function": {"name": "g", "parameters": cycle}});
    for (what, body, param) in [
        ("tool `$ref: #`", chat(json!({"tools": [recursive_tool()]})), "tools[0].function.parameters"),
        (
            "tool `$defs` cycle",
            chat(json!({"tools": [cyclic_tool], "tool_choice": "required"})),
            "tools[0].function.parameters",
        ),
        (
            "json_schema `$defs` cycle",
            chat(json!({"response_format": json_schema(json!({"name": "n", "schema": cycle}))})),
            "response_format",
        ),
    ] {
        let start = Instant::now();
        let e = s.post_json("/v1/chat/completions", &body).assert_error(400, what);
        assert!(start.elapsed() < Duration::from_secs(2), "{what}: took {:?}", start.elapsed());
        assert_eq!((e["code"].as_str(), e["param"].as_str()), (Some("invalid_grammar"), Some(param)), "{what}: {e}");
    }
}

fn check_limits(s: &Server) {
    let long = "lorem ipsum dolor sit amet ".repeat(1200);
    let e = s.post_json("/v1/chat/completions", &chat_body(&long, 16, false)).assert_error(400, "context overflow");
    assert_eq!(e["code"], "context_length_exceeded");
    let r = s.post_json("/v1/chat/completions", &chat_body(&long, 16, true));
    r.assert_error(400, "context overflow, streamed");
    let many: Vec<_> = (0..1025).map(|_| json!({"role": "user", "content": "x"})).collect();
    s.post_json("/v1/chat/completions", &json!({"messages": many})).assert_error(400, "too many messages");
    let huge = "a".repeat((1 << 20) + 10);
    s.post_json("/v1/chat/completions", &chat_body(&huge, 4, false)).assert_error(400, "prompt bytes");
    s.post_json("/tokenize", &json!({"content": huge})).assert_error(400, "tokenize bytes");
    check_big_body(s);
    check_big_headers(s);
}

fn check_big_body(s: &Server) {
    // Declared 20 MB: refused before the body is sent.
    let start = Instant::now();
    let mut c = connect(s.port).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&[b' '; 65536]).unwrap();
    read_response(c).unwrap().assert_error(413, "20 MB declared");
    assert!(start.elapsed() < Duration::from_secs(5), "413 took {:?}", start.elapsed());
    // Chunked, no length: refused once past the limit, not buffered whole.
    let start = Instant::now();
    let mut c = connect(s.port).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    let mut writer = c.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = format!("{:x}\r\n{}\r\n", 1 << 20, " ".repeat(1 << 20));
        for _ in 0..20 {
            if writer.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n");
    });
    read_response(c).unwrap().assert_error(413, "20 MB chunked");
    assert!(start.elapsed() < Duration::from_secs(10), "413 took {:?}", start.elapsed());
    let _ = feeder.join();
}

fn check_big_headers(s: &Server) {
    let big = "v".repeat(100 << 10);
    let r = try_request(s.port, "GET", "/v1/models", &[("X-Big", &big)], b"").unwrap();
    r.assert_error(431, "100 KiB header");
    // Past hyper's own limit: refused (bare 431 or closed), never a crash.
    let huge = "v".repeat(1 << 20);
    let mut c = connect(s.port).unwrap();
    let _ = write_request(&mut c, "GET", "/v1/models", &[("X-Huge", &huge)], b"");
    if let Ok(r) = read_response(c) {
        assert!((400..500).contains(&r.status), "1 MiB header: {}", r.status);
    }
}

/// The next turn of a chat, and a repeated request, reuse the cached
/// prompt: `cached_tokens` says so, and the repeated answer is unchanged.
fn check_prefix_reuse(s: &Server) {
    let system = "You answer questions about colours, briefly and precisely. ".repeat(40);
    let mut messages =
        vec![json!({"role": "system", "content": system}), json!({"role": "user", "content": "Name a colour."})];
    let ask = |messages: &[serde_json::Value]| {
        let r = s.post_json(
            "/v1/chat/completions",
            &json!({"model": MODEL, "messages": messages, "max_tokens": 8, "temperature": 0}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let cached = v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
        (
            v["choices"][0]["message"]["content"].as_str().unwrap().to_string(),
            cached,
            v["usage"]["prompt_tokens"].as_u64().unwrap(),
        )
    };
    let (first, _, prompt) = ask(&messages);
    let (again, cached, _) = ask(&messages);
    assert_eq!(again, first, "a repeated request changed its answer");
    assert!(cached > 0 && cached < prompt, "repeated prompt of {prompt} tokens: {cached} cached");
    messages.push(json!({"role": "assistant", "content": first}));
    messages.push(json!({"role": "user", "content": "Another one?"}));
    let (_, cached, _) = ask(&messages);
    assert!(cached >= prompt / 2, "next turn reused {cached} of the {prompt}-token first turn");
    let metrics = s.get("/metrics").text();
    let total: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("augur_cached_prompt_tokens_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(total >= cached as f64, "metrics: {total} cached prompt tokens");
}

#[test]
fn api_shapes_auth_and_bad_requests() {
    let mut s = Server::start(&["--queue", "4"], true);
    check_auth(&s);
    check_shapes(&s);
    check_prefix_reuse(&s);
    check_bad_requests(&s);
    check_limits(&s);
    assert!(s.is_running(), "server died:\n{}", s.log());
    let r = s.post_json("/v1/chat/completions", &chat_body("Say OK.", 4, false));
    assert_eq!(r.status, 200, "a normal request after the bad ones: {}", r.text());
    let log = s.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(s.stop().success());
}

#[test]
fn request_timeout_ends_requests_with_an_error() {
    // Set through the config file, which a flag would override.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("serve.toml");
    std::fs::write(&cfg, "request_timeout = 4\nqueue = 2\n").unwrap();
    let s = Server::start(&["--config", cfg.to_str().unwrap(), "--queue", "3"], false);
    let body = chat_body("Count from 1 to 1000, separated by commas.", 2000, false);
    let start = Instant::now();
    let e = s.post_json("/v1/chat/completions", &body).assert_error(504, "non-streamed timeout");
    assert_eq!(e["code"], "timeout");
    assert!(start.elapsed() < Duration::from_secs(12));
    let body = chat_body("Count from 1 to 1000, separated by commas.", 2000, true);
    let r = s.post_json("/v1/chat/completions", &body);
    assert_eq!(r.status, 200);
    let events = r.sse_data();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let err: serde_json::Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "timeout", "{events:?}");
}

#[test]
fn startup_errors_exit_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "port = 1\nbogus = true\n").unwrap();
    let no_keys = dir.path().join("keys");
    std::fs::write(&no_keys, "# nothing\n").unwrap();
    let missing_model = dir.path().join("missing.gguf");
    let port = free_port().to_string();
    let cases: [(&str, Vec<&str>); 5] = [
        ("missing config", vec!["--config", "/nonexistent/serve.toml"]),
        ("unknown config key", vec!["--config", bad_toml.to_str().unwrap()]),
        ("empty key file", vec!["--api-key-file", no_keys.to_str().unwrap()]),
        ("bad host", vec!["--host", "not-an-ip"]),
        ("model that does not load", vec!["-m", missing_model.to_str().unwrap(), "--port", &port]),
    ];
    for (what, args) in cases {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_augur"));
        cmd.arg("serve").args(&args);
        let (code, _, err) = run_bounded(&mut cmd, Duration::from_secs(60));
        assert_eq!(code, Some(1), "{what}: {err}");
        assert!(err.contains("augur: error:") && !err.contains("panicked"), "{what}: {err}");
    }
}
