use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::vocab::test_vocab;
use crate::*;

fn engine() -> GrammarCompiler {
    GrammarCompiler::new(test_vocab::small(), GrammarLimits::default()).expect("engine")
}

fn token_bytes(t: u32) -> Vec<u8> {
    match &test_vocab::small().tokens[t as usize] {
        VocabToken::Text(b) => b.clone(),
        VocabToken::Control(_) => Vec::new(),
    }
}

/// Drive a constraint by always taking the allowed token `pick` prefers,
/// up to `max` tokens or the end token. Returns the text.
fn walk(c: &mut Constraint, eos: u32, max: usize, pick: impl Fn(&SimpleVob) -> u32) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..max {
        let t = match c.mask().expect("mask") {
            Some(m) => pick(m),
            None => b'x' as u32,
        };
        c.commit(t as i32).expect("commit");
        if t == eos {
            assert!(c.is_finished());
            return out;
        }
        out.extend(token_bytes(t));
    }
    panic!("no end within {max} tokens: {}", String::from_utf8_lossy(&out));
}

/// Prefer the end token, then closing punctuation, then the longest
/// token: ends quickly.
fn shortest(eos: u32) -> impl Fn(&SimpleVob) -> u32 {
    move |m| {
        if m.is_allowed(eos) {
            return eos;
        }
        if let Some(&b) = b"\"}],1".iter().find(|&&b| m.is_allowed(b as u32)) {
            return b as u32;
        }
        let mut best = None;
        m.iter_set_entries(|i| {
            let len = token_bytes(i as u32).len();
            if best.is_none_or(|(_, l)| len > l) {
                best = Some((i as u32, len));
            }
        });
        best.expect("non-empty mask").0
    }
}

fn eos() -> u32 {
    test_vocab::small().eos
}

#[test]
fn json_schema_output_parses_and_validates() {
    let e = engine();
    let schema = json!({
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 3}, "n": {"type": "integer"}, "ok": {"type": "boolean"}},
        "required": ["name", "n", "ok"],
        "additionalProperties": false
    });
    let g = e.compile(&GrammarSource::JsonSchema { schema, strict: true }).expect("compile");
    let mut c = g.start().expect("start");
    let out = walk(&mut c, eos(), 200, shortest(eos()));
    let v: Value = serde_json::from_slice(&out).expect("valid JSON");
    let n = v["n"].as_f64().expect("n is a number");
    assert!(v["name"].is_string() && n.fract() == 0.0 && v["ok"].is_boolean(), "{v}");
    // The fixed layout: `{"name": ...`.
    assert!(out.starts_with(b"{\"name\": \""), "{}", String::from_utf8_lossy(&out));
}

#[test]
fn forced_tokens_cover_fixed_text() {
    let e = engine();
    let schema = json!({"type": "object", "properties": {"arguments": {"type": "integer"}}, "required": ["arguments"]});
    let g = e.compile(&GrammarSource::JsonSchema { schema, strict: false }).expect("compile");
    let mut c = g.start().expect("start");
    let forced: Vec<u8> = c.forced().iter().flat_map(|&t| token_bytes(t)).collect();
    assert!(forced.starts_with(b"{\"arguments"), "forced {:?}", String::from_utf8_lossy(&forced));
}

#[test]
fn regex_allows_only_matching_tokens() {
    let e = engine();
    let g = e.compile(&GrammarSource::Regex { pattern: "[0-9]{3}".into() }).expect("compile");
    let mut c = g.start().expect("start");
    assert!(c.allows(b'7' as i32).unwrap());
    assert!(!c.allows(b'a' as i32).unwrap());
    assert!(!c.allows(eos() as i32).unwrap(), "cannot end before three digits");
    for d in b"123" {
        c.commit(*d as i32).unwrap();
    }
    let m = c.mask().unwrap().unwrap();
    assert_eq!(m.num_set(), 1, "only the end token remains");
    assert!(m.is_allowed(eos()));
    assert_eq!(c.valid_prefix(&[b'1' as i32]), 0);
}

#[test]
fn valid_prefix_cuts_at_the_first_invalid_token() {
    let e = engine();
    let g = e.compile(&GrammarSource::Regex { pattern: "ab+c".into() }).expect("compile");
    let mut c = g.start().expect("start");
    let d: Vec<i32> = b"abbxc".iter().map(|&b| b as i32).collect();
    assert_eq!(c.valid_prefix(&d), 3);
    // Validation does not advance the state.
    assert!(c.allows(b'a' as i32).unwrap());
}

#[test]
fn lark_grammar_is_followed() {
    let e = engine();
    let g = e.compile(&GrammarSource::Lark { grammar: "start: \"yes\" | \"no\" | \"maybe\"".into() }).expect("compile");
    let mut c = g.start().expect("start");
    let out = walk(&mut c, eos(), 20, shortest(eos()));
    assert!(matches!(&out[..], b"yes" | b"no" | b"maybe"), "{}", String::from_utf8_lossy(&out));
}

fn weather_tools() -> Vec<ToolDef> {
    vec![
        ToolDef {
            name: "get_weather".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string", "maxLength": 4}}, "required": ["city"]}),
        },
        ToolDef { name: "now".into(), parameters: json!({"type": "object", "properties": {}}) },
    ]
}

#[test]
fn required_tool_call_has_the_call_format() {
    let e = engine();
    let spec =
        GrammarSource::ToolCalls { tools: weather_tools(), choice: ToolChoice::Required, format: ToolFormat::hermes() };
    let g = e.compile(&spec).expect("compile");
    let mut c = g.start().expect("start");
    let out = String::from_utf8(walk(&mut c, eos(), 300, shortest(eos()))).unwrap();
    let body = out.strip_prefix("<tool_call>\n").and_then(|s| s.strip_suffix("\n</tool_call>")).expect(&out);
    let v: Value = serde_json::from_str(body).expect("call is JSON");
    assert!(v["name"] == "get_weather" || v["name"] == "now", "{v}");
    assert!(v["arguments"].is_object());
}

#[test]
fn named_tool_choice_forces_the_name() {
    let e = engine();
    let spec = GrammarSource::ToolCalls {
        tools: weather_tools(),
        choice: ToolChoice::Named("get_weather".into()),
        format: ToolFormat::hermes(),
    };
    let mut c = e.compile(&spec).unwrap().start().unwrap();
    let forced: Vec<u8> = c.forced().iter().flat_map(|&t| token_bytes(t)).collect();
    assert!(
        String::from_utf8_lossy(&forced).starts_with("<tool_call>\n{\"name\": \"get_weather\""),
        "forced {:?}",
        String::from_utf8_lossy(&forced)
    );
    let missing = GrammarSource::ToolCalls {
        tools: weather_tools(),
        choice: ToolChoice::Named("x".into()),
        format: ToolFormat::hermes(),
    };
    assert!(matches!(e.compile(&missing), Err(GrammarError::Invalid(_))));
}

#[test]
fn auto_tool_choice_waits_for_the_opener() {
    let e = engine();
    let spec =
        GrammarSource::ToolCalls { tools: weather_tools(), choice: ToolChoice::Auto, format: ToolFormat::hermes() };
    let mut c = e.compile(&spec).unwrap().start().unwrap();
    for &b in b"Let me check. " {
        assert!(!c.is_active());
        assert!(c.allows(b as i32).unwrap());
        c.commit(b as i32).unwrap();
    }
    let opener = test_vocab::small()
        .tokens
        .iter()
        .position(|t| matches!(t, VocabToken::Text(b) if b == b"<tool_call>"))
        .unwrap();
    assert_eq!(c.valid_prefix(&[b'a' as i32, opener as i32, b'x' as i32]), 2, "drafts stop after the opener");
    c.commit(opener as i32).unwrap();
    assert!(c.is_active(), "the opener switches the grammar on");
    assert!(!c.allows(b'x' as i32).unwrap());
    let mut text = Vec::new();
    while c.is_active() {
        let t = shortest(eos())(c.mask().unwrap().unwrap());
        assert_ne!(t, eos(), "the call must close first");
        c.commit(t as i32).unwrap();
        text.extend(token_bytes(t));
        assert!(text.len() < 400);
    }
    let s = String::from_utf8(text).unwrap();
    assert!(s.starts_with("\n{\"name\": ") && s.ends_with("}\n</tool_call>"), "{s}");
    assert!(c.allows(b'z' as i32).unwrap(), "free text again after the call");
}

fn assert_refused_fast(e: &GrammarCompiler, spec: GrammarSource) -> GrammarError {
    let t = Instant::now();
    let r = e.compile(&spec);
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    match r {
        Err(err) => {
            assert!(err.is_client_error(), "{err}");
            err
        }
        Ok(_) => panic!("accepted {spec:?}"),
    }
}

#[test]
fn contradictions_are_refused() {
    let e = engine();
    let arr = json!({"type": "array", "items": {"type": "integer"}, "minItems": 10, "maxItems": 2});
    assert_refused_fast(&e, GrammarSource::JsonSchema { schema: arr, strict: false });
    let num = json!({"type": "integer", "minimum": 5, "maximum": 1});
    assert_refused_fast(&e, GrammarSource::JsonSchema { schema: num, strict: false });
    let types = json!({"allOf": [{"type": "string"}, {"type": "integer"}]});
    assert_refused_fast(&e, GrammarSource::JsonSchema { schema: types, strict: false });
}

#[test]
fn malformed_constraints_are_refused() {
    let e = engine();
    assert_refused_fast(&e, GrammarSource::Regex { pattern: "(".into() });
    assert_refused_fast(&e, GrammarSource::Lark { grammar: "start: foo".into() });
    assert_refused_fast(&e, GrammarSource::JsonSchema { schema: json!(3), strict: false });
    assert_refused_fast(&e, GrammarSource::JsonSchema { schema: json!({"type": "no-such-type"}), strict: false });
}

#[test]
fn strict_refuses_unsupported_keywords() {
    let e = engine();
    let schema = json!({"type": "string", "format": "no-such-format-xyz"});
    assert_refused_fast(&e, GrammarSource::JsonSchema { schema: schema.clone(), strict: true });
    assert!(e.compile(&GrammarSource::JsonSchema { schema, strict: false }).is_ok(), "best effort when not strict");
}

#[test]
fn oversized_constraints_are_refused() {
    let e = GrammarCompiler::new(test_vocab::small(), GrammarLimits { max_spec_bytes: 10_000, ..Default::default() })
        .unwrap();
    let big: Vec<String> = (0..5_000).map(|i| format!("value-{i}")).collect();
    let err = assert_refused_fast(&e, GrammarSource::JsonSchema { schema: json!({"enum": big}), strict: false });
    assert!(matches!(err, GrammarError::TooLarge { .. }));
}

#[test]
fn huge_enum_and_catastrophic_regex_stay_bounded() {
    let e = engine();
    // Over the default grammar size: refused, not compiled for minutes.
    let big: Vec<String> = (0..60_000).map(|i| format!("v{i}-{}", "x".repeat(i % 7))).collect();
    let t = Instant::now();
    let _ = e.compile(&GrammarSource::JsonSchema { schema: json!({"enum": big}), strict: false });
    assert!(t.elapsed() < Duration::from_secs(5));
    let _ = e.compile(&GrammarSource::Regex { pattern: "a{99999999}".into() });
    assert!(t.elapsed() < Duration::from_secs(10));
    // Derivative-based matching: no backtracking blow-up.
    let g = e.compile(&GrammarSource::Regex { pattern: "(a+)+b".into() }).expect("compiles");
    let mut c = g.start().unwrap();
    for _ in 0..200 {
        c.commit(b'a' as i32).unwrap();
    }
    let t = Instant::now();
    assert!(c.allows(b'b' as i32).unwrap());
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn recursive_ref_is_bounded() {
    let e = engine();
    let t = Instant::now();
    let _ = e.compile(&GrammarSource::JsonSchema { schema: json!({"$ref": "#"}), strict: false });
    let tree = json!({
        "$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node"
    });
    let g = e.compile(&GrammarSource::JsonSchema { schema: tree, strict: false }).expect("recursive schemas are fine");
    let mut c = g.start().unwrap();
    let out = walk(&mut c, eos(), 200, shortest(eos()));
    serde_json::from_slice::<Value>(&out).expect("JSON");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn identical_specs_share_one_compilation() {
    let e = engine();
    let s = GrammarSource::Regex { pattern: "[a-z]+".into() };
    let a = e.compile(&s).unwrap();
    let b = e.compile(&s).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
}

#[test]
fn auto_tool_choice_takes_a_bare_call_at_the_start() {
    let e = engine();
    let spec =
        GrammarSource::ToolCalls { tools: weather_tools(), choice: ToolChoice::Auto, format: ToolFormat::hermes() };
    let g = e.compile(&spec).unwrap();
    let mut later = g.start().unwrap();
    later.commit(b'H' as i32).unwrap();
    assert!(!later.opens_call(b'{' as i32), "only an answer that starts with `{{` is a bare call");
    let mut c = g.start().unwrap();
    assert!(!c.opens_call(b'H' as i32));
    assert!(c.opens_call(b'{' as i32));
    assert!(c.is_active());
    let out = walk(&mut c, eos(), 300, shortest(eos()));
    let v: Value = serde_json::from_slice(&out).expect("a bare call is JSON");
    assert!(v["arguments"].is_object(), "{v}");
}

/// A `$ref` chain: within the limit it compiles on the compiler thread's
/// stack; past it, a clear refusal.
fn ref_chain(depth: usize) -> Value {
    let mut defs = serde_json::Map::new();
    for i in 0..depth {
        defs.insert(
            format!("d{i}"),
            json!({"type": "object", "properties": {"next": {"$ref": format!("#/$defs/d{}", i + 1)}}}),
        );
    }
    defs.insert(format!("d{depth}"), json!({"type": "integer"}));
    json!({"$defs": defs, "$ref": "#/$defs/d0"})
}

#[test]
fn deep_ref_chains_are_bounded() {
    let e = engine();
    let t = Instant::now();
    let _ = e.compile(&GrammarSource::JsonSchema { schema: ref_chain(900), strict: false });
    let err = assert_refused_fast(&e, GrammarSource::JsonSchema { schema: ref_chain(5_000), strict: false });
    assert!(matches!(err, GrammarError::TooManyRefs { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

fn tool_calls(parameters: Value) -> GrammarSource {
    let tools = vec![ToolDef { name: "f".into(), parameters }, weather_tools().remove(0)];
    GrammarSource::ToolCalls { tools, choice: ToolChoice::Required, format: ToolFormat::hermes() }
}

#[test]
fn self_containing_schemas_are_refused_before_compiling() {
    let e = engine();
    for schema in [
        json!({"$ref": "#"}),
        json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
    ] {
        let err = assert_refused_fast(&e, GrammarSource::JsonSchema { schema: schema.clone(), strict: false });
        assert!(matches!(err, GrammarError::Recursive { .. }), "{err}");
        // In a tool, `#` is the parameters schema, not the call object
        // (which would nest calls without end).
        let err = assert_refused_fast(&e, tool_calls(schema));
        assert!(matches!(err, GrammarError::Recursive { .. }), "{err}");
    }
}

#[test]
fn tool_parameter_refs_resolve_inside_the_parameters() {
    let e = engine();
    let defs = json!({"$defs": {"n": {"type": "integer"}}, "type": "object",
        "properties": {"a": {"$ref": "#/$defs/n"}}, "required": ["a"], "additionalProperties": false});
    let tools = vec![ToolDef { name: "f".into(), parameters: defs.clone() }];
    let spec = GrammarSource::ToolCalls { tools, choice: ToolChoice::Required, format: ToolFormat::hermes() };
    let g = e.compile(&spec).expect("`$defs` of tool parameters resolve");
    let out = String::from_utf8(walk(&mut g.start().unwrap(), eos(), 300, shortest(eos()))).unwrap();
    let body = out.strip_prefix("<tool_call>\n").and_then(|s| s.strip_suffix("\n</tool_call>")).expect(&out);
    let call: Value = serde_json::from_str(body).unwrap();
    assert!(call["arguments"]["a"].is_i64(), "{call}");
    // With several tools, each one's refs resolve inside its own parameters.
    assert!(e.compile(&tool_calls(defs)).is_ok());
}
