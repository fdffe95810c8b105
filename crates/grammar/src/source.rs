//! What a request asks the output to follow, and how each form becomes an
//! llguidance grammar.

use llguidance::api::TopLevelGrammar;
use serde::Serialize;
use serde_json::{json, Value};

use crate::schema::rebase_refs;
use crate::GrammarError;

/// A constraint on the output, as the API receives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GrammarSource {
    /// Any JSON object (`response_format: json_object`).
    JsonObject,
    /// JSON valid against `schema`. `strict` refuses keywords the compiler
    /// does not enforce; otherwise they are ignored (best effort).
    JsonSchema { schema: Value, strict: bool },
    /// The whole output matches this regular expression.
    Regex { pattern: String },
    /// A Lark grammar (llguidance's dialect, `%json` included).
    Lark { grammar: String },
    /// One or more calls to the given tools, in the model's call format.
    ToolCalls { tools: Vec<ToolDef>, choice: ToolChoice, format: ToolFormat },
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolDef {
    pub name: String,
    /// JSON schema of the arguments object.
    pub parameters: Value,
}

/// Which calls the grammar admits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides; the grammar starts when it opens a call.
    Auto,
    /// At least one call, to any of the tools.
    Required,
    /// Exactly one call, to this tool.
    Named(String),
}

/// How a model writes a call: `open` + `{"name": .., "arguments": {..}}` +
/// `close`, calls separated by `separator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolFormat {
    pub open: String,
    pub close: String,
    pub separator: String,
    /// Admit several calls in one answer. Off by default: small models
    /// forced into a call format tend to repeat the call until the token
    /// limit when the grammar lets them.
    pub parallel: bool,
}

impl ToolFormat {
    /// Hermes style, used by Qwen2.5 and many others; one call per answer.
    pub fn hermes() -> Self {
        Self { open: "<tool_call>\n".into(), close: "\n</tool_call>".into(), separator: "\n".into(), parallel: false }
    }
}

/// JSON layout the grammars force: one fixed spelling leaves the model no
/// whitespace choices, so more tokens are forced (free to fast-forward).
fn json_options(strict: bool) -> Value {
    json!({
        "whitespace_flexible": false,
        "item_separator": ", ",
        "key_separator": ": ",
        "lenient": !strict,
    })
}

fn with_options(mut schema: Value, strict: bool) -> Result<Value, GrammarError> {
    if schema.is_boolean() {
        return Ok(json!({"allOf": [schema], "x-guidance": json_options(strict)}));
    }
    let Some(obj) = schema.as_object_mut() else {
        return Err(GrammarError::Invalid("a JSON schema must be an object or a boolean".into()));
    };
    obj.insert("x-guidance".into(), json_options(strict));
    Ok(schema)
}

/// One call object: `{"name": <const>, "arguments": <schema>}`, placed at
/// `at` (a JSON pointer) in the call grammar's schema.
fn call_schema(tool: &ToolDef, at: &str) -> Value {
    let mut params = if tool.parameters.is_null() { json!({"type": "object"}) } else { tool.parameters.clone() };
    rebase_refs(&mut params, &format!("{at}/properties/arguments"));
    json!({
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": params},
        "required": ["name", "arguments"],
        "additionalProperties": false,
    })
}

/// A Lark string literal for `s`.
fn lark_literal(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The grammars one spec compiles to.
pub(crate) struct GrammarPlan {
    pub main: TopLevelGrammar,
    /// `auto` tool calls: the grammar waits for the model to open a call.
    pub auto: Option<AutoPlan>,
}

pub(crate) struct AutoPlan {
    /// Text that opens a call; `main` covers what follows it.
    pub trigger: Vec<u8>,
    /// A call written without the opener, as the whole answer: many small
    /// models answer a tool prompt with the bare call object.
    pub bare: TopLevelGrammar,
}

impl GrammarSource {
    pub(crate) fn to_grammar(&self) -> Result<GrammarPlan, GrammarError> {
        let main = match self {
            GrammarSource::JsonObject => {
                TopLevelGrammar::from_json_schema(with_options(json!({"type": "object"}), false)?)
            }
            GrammarSource::JsonSchema { schema, strict } => {
                TopLevelGrammar::from_json_schema(with_options(schema.clone(), *strict)?)
            }
            GrammarSource::Regex { pattern } => TopLevelGrammar::from_regex(pattern),
            GrammarSource::Lark { grammar } => TopLevelGrammar::from_lark(grammar.clone()),
            GrammarSource::ToolCalls { tools, choice, format } => return tool_grammar(tools, choice, format),
        };
        Ok(GrammarPlan { main, auto: None })
    }
}

fn tool_grammar(tools: &[ToolDef], choice: &ToolChoice, format: &ToolFormat) -> Result<GrammarPlan, GrammarError> {
    let chosen: Vec<&ToolDef> = match choice {
        ToolChoice::Named(name) => tools.iter().filter(|t| &t.name == name).collect(),
        _ => tools.iter().collect(),
    };
    if chosen.is_empty() {
        return Err(match choice {
            ToolChoice::Named(name) => {
                GrammarError::Invalid(format!("tool_choice names `{name}`, which is not in tools"))
            }
            _ => GrammarError::Invalid("tools is empty".into()),
        });
    }
    let calls: Vec<Value> = match chosen.as_slice() {
        [one] => vec![call_schema(one, "")],
        _ => chosen.iter().enumerate().map(|(i, t)| call_schema(t, &format!("/anyOf/{i}"))).collect(),
    };
    let body = if calls.len() == 1 { calls[0].clone() } else { json!({"anyOf": calls}) };
    let body = serde_json::to_string(&with_options(body, false)?).map_err(|e| GrammarError::Invalid(e.to_string()))?;
    let open = lark_literal(&format.open);
    let close = lark_literal(&format.close);
    let sep = lark_literal(&format.separator);
    let lark = match choice {
        // The opener was already written by the model; the grammar covers
        // the rest of one call.
        ToolChoice::Auto => {
            let rest = &format.open[auto_trigger(format).len()..];
            let rest = if rest.is_empty() { String::new() } else { lark_literal(rest) };
            format!("start: {rest} body {close}\nbody: %json {body}\n")
        }
        // A trailing separator may end the answer: a model that wants a
        // newline after its call must not be pushed into another call.
        ToolChoice::Required if format.parallel => {
            format!("start: call ({sep} call)* {sep}?\ncall: {open} body {close}\nbody: %json {body}\n")
        }
        ToolChoice::Required => format!("start: {open} body {close} {sep}?\nbody: %json {body}\n"),
        ToolChoice::Named(_) => format!("start: {open} body {close} {sep}?\nbody: %json {body}\n"),
    };
    let auto = matches!(choice, ToolChoice::Auto).then(|| AutoPlan {
        trigger: auto_trigger(format).as_bytes().to_vec(),
        bare: TopLevelGrammar::from_lark(format!("start: body\nbody: %json {body}\n")),
    });
    Ok(GrammarPlan { main: TopLevelGrammar::from_lark(lark), auto })
}

/// The opener without trailing whitespace: whitespace may share a token
/// with what follows, the opener itself (often one added token) does not.
fn auto_trigger(format: &ToolFormat) -> &str {
    format.open.trim_end()
}
