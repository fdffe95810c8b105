//! Constrained decoding composed with speculation, on the 1.5B target with
//! the 0.5B draft: every mode, with and without fast-forward, gives
//! byte-identical output to constrained plain decoding, and that output
//! follows the constraint.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use augur_engine::{ChatMessage, ContextParams};
use augur_grammar::{CompiledGrammar, GrammarSource, ToolChoice, ToolDef, ToolFormat};
use augur_runtime::{
    Backend, Completion, DraftConfig, DraftPolicy, Event, GenerateRequest, ModelWorker, Prompt, SpecMode, SpecOptions,
    SpecSettings, WorkerConfig,
};
use augur_sampling::SamplingParams;
use serde_json::{json, Value};

fn model_path(name: &str) -> PathBuf {
    augur_store::Store::open_default().unwrap().ensure(name, false).unwrap()
}

fn shared() -> &'static ModelWorker {
    static W: OnceLock<ModelWorker> = OnceLock::new();
    W.get_or_init(|| {
        let context = ContextParams { n_ctx: 2048, ..ContextParams::default() };
        let store = augur_store::Store::open_default().unwrap();
        ModelWorker::spawn(WorkerConfig {
            context: context.clone(),
            // Always draft, so verification under the mask is exercised.
            spec: SpecSettings { mode: SpecMode::Auto, spec_max: 8, policy: DraftPolicy::Always, ..Default::default() },
            draft: Some(DraftConfig { path: model_path("qwen2.5-coder-0.5b"), model: Default::default(), context }),
            calibration_dir: store.root().parent().map(|p| p.join("calibration")),
            queue: 4,
            ..WorkerConfig::new("qwen2.5-coder-1.5b", model_path("qwen2.5-coder-1.5b"))
        })
        .expect("worker")
    })
}

struct Case {
    id: &'static str,
    system: &'static str,
    user: &'static str,
    spec: GrammarSource,
    max_tokens: u32,
}

fn weather_tools() -> Vec<ToolDef> {
    vec![
        ToolDef {
            name: "get_weather".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}),
        },
        ToolDef {
            name: "search_code".into(),
            parameters: json!({"type": "object", "properties": {"query": {"type": "string"}, "max_results": {"type": "integer", "minimum": 1, "maximum": 20}}, "required": ["query"]}),
        },
    ]
}

/// Qwen2.5's own tool prompt (what its chat template renders for `tools`),
/// as a macro so the example below can extend it in a `concat!`.
macro_rules! tool_system {
    () => {
        concat!(
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n",
    "You may call one or more functions to assist with the user query.\n\n",
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n",
    r#"{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}}"#,
    "\n",
    r#"{"type": "function", "function": {"name": "search_code", "description": "Search the repository", "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "max_results": {"type": "integer"}}, "required": ["query"]}}}"#,
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within ",
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
        )
    };
}

const TOOL_SYSTEM: &str = tool_system!();

/// `tool_choice: auto` leaves the model free to answer in its own way, and
/// with the bare instructions a greedy answer was a fenced JSON call on
/// some machines (the constraint then never runs): a worked example makes
/// it open a call on every machine seen so far.
const TOOL_SYSTEM_WITH_EXAMPLE: &str = concat!(
    tool_system!(),
    "\n\nNever use code fences. For example, to get the weather in Oslo in celsius, answer exactly:\n",
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"unit\": \"celsius\"}}\n</tool_call>",
);

fn cases() -> Vec<Case> {
    let person = json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 150}, "languages": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
        "required": ["name", "age", "languages"],
        "additionalProperties": false
    });
    let func = json!({
        "type": "object",
        "properties": {"function_name": {"type": "string", "pattern": "^[a-z_][a-z0-9_]*$"}, "args": {"type": "array", "items": {"type": "string"}}, "returns": {"enum": ["int", "str", "bool", "None"]}},
        "required": ["function_name", "args", "returns"]
    });
    vec![
        Case {
            id: "person",
            system: "Reply with JSON only.",
            user: "Describe Ada Lovelace as JSON with name, age at death and up to three languages she might have used.",
            spec: GrammarSource::JsonSchema { schema: person, strict: true },
            max_tokens: 45,
        },
        Case {
            id: "signature",
            system: "Reply with JSON only.",
            user: "Give the signature of a Python function that checks whether a number is prime: def is_prime(n: int) -> bool",
            spec: GrammarSource::JsonSchema { schema: func, strict: false },
            max_tokens: 40,
        },
        Case {
            id: "json-object",
            system: "Reply with JSON only.",
            user: "List the HTTP methods GET, POST and DELETE with a one-word purpose each, as a JSON object.",
            spec: GrammarSource::JsonObject,
            max_tokens: 40,
        },
        Case {
            id: "regex-date",
            system: "Answer with the date only.",
            user: "When did the Apollo 11 moon landing happen? Use YYYY-MM-DD.",
            spec: GrammarSource::Regex { pattern: r"[0-9]{4}-[0-9]{2}-[0-9]{2}".into() },
            max_tokens: 20,
        },
        Case {
            id: "tool-required",
            system: TOOL_SYSTEM,
            user: "What is the weather in Paris, in celsius?",
            spec: GrammarSource::ToolCalls { tools: weather_tools(), choice: ToolChoice::Required, format: ToolFormat::hermes() },
            max_tokens: 45,
        },
        Case {
            id: "tool-named",
            system: TOOL_SYSTEM,
            user: "Find where the function parse_config is defined in the repository.",
            spec: GrammarSource::ToolCalls {
                tools: weather_tools(),
                choice: ToolChoice::Named("search_code".into()),
                format: ToolFormat::hermes(),
            },
            max_tokens: 45,
        },
        Case {
            id: "tool-auto",
            system: TOOL_SYSTEM_WITH_EXAMPLE,
            user: "Call get_weather for Tokyo in fahrenheit.",
            spec: GrammarSource::ToolCalls { tools: weather_tools(), choice: ToolChoice::Auto, format: ToolFormat::hermes() },
            max_tokens: 50,
        },
    ]
}

fn compile(spec: &GrammarSource) -> Arc<CompiledGrammar> {
    shared().grammar().expect("grammar engine").compile(spec).expect("compiles")
}

fn run(case: &Case, mode: SpecMode, fast_forward: bool, sampling: SamplingParams) -> Completion {
    let msgs = vec![ChatMessage::new("system", case.system), ChatMessage::new("user", case.user)];
    let mut req = GenerateRequest::new(Prompt::Chat(msgs), case.max_tokens);
    req.spec = SpecOptions { mode: Some(mode), fast_forward: Some(fast_forward), ..Default::default() };
    req.sampling = sampling;
    req.constraint = Some(compile(&case.spec));
    let mut s = shared().submit(req).unwrap();
    while let Some(ev) = s.blocking_next() {
        match ev {
            Event::Done(c) => return *c,
            Event::Error(e) => panic!("{}: {e}", case.id),
            _ => {}
        }
    }
    panic!("{}: no completion", case.id)
}

fn text(c: &Completion) -> String {
    shared().model().detokenize(&c.tokens)
}

/// The output follows the case's constraint (when it ran to completion).
fn check_valid(case: &Case, c: &Completion) {
    let out = text(c);
    if c.finish_reason != augur_runtime::FinishReason::Stop {
        return;
    }
    match &case.spec {
        GrammarSource::JsonSchema { .. } | GrammarSource::JsonObject => {
            let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{}: {e}: {out}", case.id));
            assert!(v.is_object(), "{}: {out}", case.id);
        }
        GrammarSource::Regex { .. } => {
            assert!(out.len() == 10 && out.as_bytes()[4] == b'-' && out.as_bytes()[7] == b'-', "{}: {out}", case.id)
        }
        GrammarSource::ToolCalls { choice, .. } => {
            let Some(start) = out.find("<tool_call>\n") else {
                assert_eq!(*choice, ToolChoice::Auto, "{}: no call in {out}", case.id);
                if out.starts_with('{') {
                    let call: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{}: {e}: {out}", case.id));
                    assert!(call["arguments"].is_object(), "{}: {out}", case.id);
                }
                return;
            };
            if *choice != ToolChoice::Auto {
                assert_eq!(start, 0, "{}: {out}", case.id);
            }
            let body = &out[start + "<tool_call>\n".len()..];
            let end = body.find("\n</tool_call>").unwrap_or_else(|| panic!("{}: unclosed call {out}", case.id));
            let call: Value = serde_json::from_str(&body[..end]).unwrap_or_else(|e| panic!("{}: {e}: {out}", case.id));
            assert!(call["arguments"].is_object(), "{}: {out}", case.id);
            if let ToolChoice::Named(n) = choice {
                assert_eq!(call["name"], n.as_str());
            }
        }
        GrammarSource::Lark { .. } => {}
    }
}

#[test]
fn constrained_speculation_matches_constrained_plain_decoding() {
    let mut forced = 0;
    for case in cases() {
        let plain = run(&case, SpecMode::Off, false, SamplingParams::Greedy);
        assert_eq!(plain.spec.drafted, 0, "{}", case.id);
        check_valid(&case, &plain);
        let report = plain.spec.constraint.expect("constraint report");
        assert!(report.checks + report.masks > 0, "{}: the constraint never ran: {:?}", case.id, text(&plain));
        for (mode, ff) in
            [(SpecMode::Off, true), (SpecMode::Lookup, true), (SpecMode::Draft, false), (SpecMode::Auto, true)]
        {
            let got = run(&case, mode, ff, SamplingParams::Greedy);
            assert_eq!(text(&got), text(&plain), "{} {mode:?} ff={ff}", case.id);
            assert_eq!(got.tokens, plain.tokens, "{} {mode:?} ff={ff}: same text, different tokens", case.id);
            forced += got.spec.grammar.drafted;
        }
    }
    assert!(forced > 20, "fast-forward drafted only {forced} tokens");
}

#[test]
fn seeded_constrained_sampling_is_the_same_in_every_mode() {
    let sampling =
        |seed| SamplingParams::Sample { temperature: 0.9, top_k: None, top_p: Some(0.95), min_p: None, seed };
    for case in cases().into_iter().filter(|c| matches!(c.id, "person" | "tool-auto")) {
        for seed in [7] {
            let plain = run(&case, SpecMode::Off, false, sampling(seed));
            check_valid(&case, &plain);
            for mode in [SpecMode::Draft, SpecMode::Auto] {
                let got = run(&case, mode, true, sampling(seed));
                assert_eq!(got.tokens, plain.tokens, "{} seed {seed} {mode:?}", case.id);
            }
        }
    }
}
