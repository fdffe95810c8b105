//! Structured output in a request: `response_format`, `tools`,
//! `tool_choice`, `parallel_tool_calls` and augur's grammar extension,
//! checked and turned into one constraint, the tool list the chat template
//! shows the model, and how the response is read.
//!
//! Decisions:
//! - One constraint per request. `response_format` (other than `text`) or
//!   `augur.grammar` together with callable tools is refused: the output
//!   would have to be either calls or the format, which one grammar over
//!   the model's call syntax cannot express yet.
//! - `tool_choice: "none"` hides the tools from the model and does not
//!   parse calls, so the model cannot call (OpenAI's semantics).
//! - `parallel_tool_calls: false` stops the generation at the first
//!   closed call.
//! - `json_object` needs the word "JSON" in the messages, as OpenAI
//!   requires (a model asked for JSON without being told tends to loop on
//!   whitespace-free filler).

use std::collections::HashSet;

use augur_grammar::{GrammarSource, ToolChoice, ToolDef, ToolFormat};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::ServerError;

/// OpenAI's limit on tools per request.
pub const MAX_TOOLS: usize = 128;
/// OpenAI's limit on function and schema names.
const MAX_NAME_BYTES: usize = 64;

/// `response_format`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    /// Optional here only so that its absence is refused naming the field.
    JsonSchema {
        json_schema: Option<JsonSchemaFormat>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSchemaFormat {
    name: Option<String>,
    /// Shown to OpenAI's model; augur's constraint does not need it.
    #[allow(dead_code)]
    description: Option<String>,
    schema: Option<Value>,
    strict: Option<bool>,
}

/// One entry of `tools`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTool {
    #[serde(rename = "type")]
    #[allow(dead_code)]
    kind: ToolKind,
    function: RawFunction,
}

/// Only function tools exist in the chat API; serde names the others.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToolKind {
    Function,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunction {
    name: String,
    description: Option<String>,
    parameters: Option<Value>,
    /// Accepted; the call grammar always enforces the parameter schema.
    #[allow(dead_code)]
    strict: Option<bool>,
}

/// `augur.grammar`: exactly one of a regular expression or a Lark grammar.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrammarExt {
    regex: Option<String>,
    lark: Option<String>,
}

/// The request's structured-output fields, as parsed.
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    pub response_format: Option<&'a ResponseFormat>,
    pub tools: Option<&'a [RawTool]>,
    pub tool_choice: Option<&'a Value>,
    pub parallel_tool_calls: Option<bool>,
    pub grammar: Option<&'a GrammarExt>,
    /// Whether some message mentions JSON (for `json_object`).
    pub mentions_json: bool,
}

/// A constraint and the request field it came from (named in errors).
#[derive(Debug, Clone)]
pub struct Constraint {
    pub source: GrammarSource,
    pub param: &'static str,
}

/// What the request asks of the output.
#[derive(Debug, Default)]
pub struct Structured {
    pub constraint: Option<Constraint>,
    /// Tool definitions in OpenAI's shape, for the chat template.
    pub tools: Option<Value>,
    /// Read `<tool_call>` blocks out of the output as calls.
    pub parse_calls: bool,
    /// Names of the callable tools.
    pub tool_names: Vec<String>,
    /// Stop generating at the end of this text (the first closed call).
    pub stop_after: Option<&'static str>,
}

/// The tool-call closing tag, where `parallel_tool_calls: false` stops.
pub const CALL_CLOSE: &str = "</tool_call>";

#[derive(Debug, PartialEq)]
enum Choice {
    None,
    Auto,
    Required,
    Named(String),
}

impl Inputs<'_> {
    pub fn resolve(&self) -> Result<Structured, ServerError> {
        let format = self.format_constraint()?;
        let grammar = self.grammar_constraint()?;
        if format.is_some() && grammar.is_some() {
            return Err(ServerError::param("augur.grammar", "give either response_format or augur.grammar, not both"));
        }
        let output = format.or(grammar);
        let tools = self.tool_defs()?;
        let choice = self.choice(!tools.is_empty())?;
        if choice == Choice::None {
            return Ok(Structured { constraint: output, ..Structured::default() });
        }
        if let Some(c) = &output {
            return Err(ServerError::unsupported(
                c.param,
                format!("`{}` cannot be combined with callable tools; send tool_choice \"none\" or drop it", c.param),
            ));
        }
        Ok(self.tool_structure(tools, choice))
    }

    fn tool_structure(&self, tools: Vec<(ToolDef, Value)>, choice: Choice) -> Structured {
        let (defs, shown): (Vec<ToolDef>, Vec<Value>) = tools.into_iter().unzip();
        // OpenAI defaults to parallel calls; augur admits several calls only
        // when asked explicitly (see `ToolFormat::parallel`).
        let parallel = self.parallel_tool_calls == Some(true);
        let choice = match choice {
            Choice::Named(n) => ToolChoice::Named(n),
            Choice::Required => ToolChoice::Required,
            Choice::Auto | Choice::None => ToolChoice::Auto,
        };
        // A named call is exactly one call by its grammar already.
        let stop_after = (!parallel && !matches!(choice, ToolChoice::Named(_))).then_some(CALL_CLOSE);
        let tool_names = defs.iter().map(|d| d.name.clone()).collect();
        let format = ToolFormat { parallel, ..ToolFormat::hermes() };
        let spec = GrammarSource::ToolCalls { tools: defs, choice, format };
        Structured {
            constraint: Some(Constraint { source: spec, param: "tools" }),
            tools: Some(Value::Array(shown)),
            parse_calls: true,
            tool_names,
            stop_after,
        }
    }

    fn format_constraint(&self) -> Result<Option<Constraint>, ServerError> {
        let param = "response_format";
        let spec = match self.response_format {
            None | Some(ResponseFormat::Text) => return Ok(None),
            Some(ResponseFormat::JsonObject) => {
                if !self.mentions_json {
                    return Err(ServerError::param(
                        "messages",
                        "'messages' must contain the word 'json' in some form, to use 'response_format' of type \
                         'json_object'",
                    ));
                }
                GrammarSource::JsonObject
            }
            Some(ResponseFormat::JsonSchema { json_schema }) => json_schema_source(json_schema.as_ref())?,
        };
        Ok(Some(Constraint { source: spec, param }))
    }

    fn grammar_constraint(&self) -> Result<Option<Constraint>, ServerError> {
        let param = "augur.grammar";
        let spec = match self.grammar {
            None => return Ok(None),
            Some(GrammarExt { regex: Some(pattern), lark: None }) => GrammarSource::Regex { pattern: pattern.clone() },
            Some(GrammarExt { regex: None, lark: Some(grammar) }) => GrammarSource::Lark { grammar: grammar.clone() },
            Some(_) => return Err(ServerError::param(param, "give exactly one of `regex` or `lark`")),
        };
        Ok(Some(Constraint { source: spec, param }))
    }

    /// Each tool as the grammar sees it and as the template shows it.
    fn tool_defs(&self) -> Result<Vec<(ToolDef, Value)>, ServerError> {
        let tools = self.tools.unwrap_or_default();
        if tools.len() > MAX_TOOLS {
            return Err(ServerError::param(
                "tools",
                format!("at most {MAX_TOOLS} tools are allowed, got {}", tools.len()),
            ));
        }
        let mut seen = HashSet::new();
        tools.iter().enumerate().map(|(i, t)| tool_def(i, t, &mut seen)).collect()
    }

    fn choice(&self, has_tools: bool) -> Result<Choice, ServerError> {
        let choice = match self.tool_choice {
            None | Some(Value::Null) => return Ok(if has_tools { Choice::Auto } else { Choice::None }),
            Some(v) => parse_choice(v)?,
        };
        let tools = self.tools.unwrap_or_default();
        match &choice {
            Choice::None | Choice::Auto if !has_tools => Ok(Choice::None),
            Choice::Named(n) if !tools.iter().any(|t| &t.function.name == n) => Err(ServerError::param(
                "tool_choice",
                format!("tool_choice names the function `{n}`, which is not in `tools`"),
            )),
            Choice::Required | Choice::Named(_) if !has_tools => {
                Err(ServerError::param("tool_choice", "tool_choice \"required\" or a named function needs `tools`"))
            }
            _ => Ok(choice),
        }
    }
}

/// `json_schema` needs a valid `name` and a `schema` object, as OpenAI
/// requires.
fn json_schema_source(f: Option<&JsonSchemaFormat>) -> Result<GrammarSource, ServerError> {
    let p = "response_format.json_schema";
    let f = f.ok_or_else(|| ServerError::param(p, "`json_schema` is required with type \"json_schema\""))?;
    let name = f.name.as_deref().ok_or_else(|| ServerError::param(format!("{p}.name"), "`name` is required"))?;
    check_name(&format!("{p}.name"), name)?;
    let schema = match &f.schema {
        Some(s @ (Value::Object(_) | Value::Bool(_))) => s.clone(),
        Some(_) => return Err(ServerError::param(format!("{p}.schema"), "`schema` must be a JSON schema object")),
        None => return Err(ServerError::param(format!("{p}.schema"), "`schema` is required")),
    };
    // Named like the compiler's refusals of the same schema.
    check_schema("response_format", &schema)?;
    Ok(GrammarSource::JsonSchema { schema, strict: f.strict.unwrap_or(false) })
}

/// Refuse now, naming the field, what the compiler would refuse later.
fn check_schema(param: &str, schema: &Value) -> Result<(), ServerError> {
    augur_grammar::check_recursion(schema).map_err(|source| ServerError::Grammar { param: param.into(), source })
}

fn tool_def(i: usize, t: &RawTool, seen: &mut HashSet<String>) -> Result<(ToolDef, Value), ServerError> {
    let f = &t.function;
    check_name(&format!("tools[{i}].function.name"), &f.name)?;
    if !seen.insert(f.name.clone()) {
        return Err(ServerError::param(
            format!("tools[{i}].function.name"),
            format!("the function name `{}` appears twice in `tools`", f.name),
        ));
    }
    if f.parameters.as_ref().is_some_and(|p| !p.is_object()) {
        return Err(ServerError::param(
            format!("tools[{i}].function.parameters"),
            "`parameters` must be a JSON schema object",
        ));
    }
    if let Some(p) = &f.parameters {
        check_schema(&format!("tools[{i}].function.parameters"), p)?;
    }
    // OpenAI: omitting `parameters` defines a function with no parameters,
    // so the call grammar must allow only `{}`.
    let no_params = || json!({"type": "object", "properties": {}, "additionalProperties": false});
    let def = ToolDef { name: f.name.clone(), parameters: f.parameters.clone().unwrap_or_else(no_params) };
    let mut function = json!({"name": f.name});
    if let Some(d) = &f.description {
        function["description"] = json!(d);
    }
    if let Some(p) = &f.parameters {
        function["parameters"] = p.clone();
    }
    Ok((def, json!({"type": "function", "function": function})))
}

fn parse_choice(v: &Value) -> Result<Choice, ServerError> {
    let bad = || {
        ServerError::param(
            "tool_choice",
            "`tool_choice` must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": \
             {\"name\": ...}}",
        )
    };
    match v {
        Value::String(s) => match s.as_str() {
            "none" => Ok(Choice::None),
            "auto" => Ok(Choice::Auto),
            "required" => Ok(Choice::Required),
            _ => Err(bad()),
        },
        Value::Object(o) if o.len() == 2 && o.get("type").is_some_and(|t| t == "function") => {
            let f = o.get("function").and_then(Value::as_object).filter(|f| f.len() == 1).ok_or_else(bad)?;
            let name = f.get("name").and_then(Value::as_str).ok_or_else(bad)?;
            Ok(Choice::Named(name.to_string()))
        }
        _ => Err(bad()),
    }
}

/// OpenAI's rule for function and schema names: `^[a-zA-Z0-9_-]{1,64}$`.
fn check_name(param: &str, name: &str) -> Result<(), ServerError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ServerError::param(
            param,
            format!("invalid name {name:?}: use 1 to {MAX_NAME_BYTES} letters, digits, underscores or dashes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(json: &str) -> Vec<RawTool> {
        serde_json::from_str(json).unwrap()
    }

    const WEATHER: &str = r#"[{"type":"function","function":{"name":"weather","description":"d",
        "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]"#;

    #[test]
    fn tools_default_to_auto_with_a_trigger_grammar() {
        let t = tools(WEATHER);
        let s = Inputs { tools: Some(&t), ..Inputs::default() }.resolve().unwrap();
        let c = s.constraint.unwrap();
        assert!(matches!(c.source, GrammarSource::ToolCalls { choice: ToolChoice::Auto, .. }));
        assert!(s.parse_calls && s.stop_after == Some(CALL_CLOSE), "one call unless parallel calls are asked for");
        assert_eq!(s.tools.unwrap()[0]["function"]["name"], "weather");
    }

    #[test]
    fn choices() {
        let t = tools(WEATHER);
        let with = |c: Value, parallel: Option<bool>| {
            Inputs { tools: Some(&t), tool_choice: Some(&c), parallel_tool_calls: parallel, ..Inputs::default() }
                .resolve()
        };
        let none = with(json!("none"), None).unwrap();
        assert!(none.constraint.is_none() && none.tools.is_none() && !none.parse_calls);
        let req = with(json!("required"), Some(false)).unwrap();
        assert!(matches!(
            req.constraint.unwrap().source,
            GrammarSource::ToolCalls { choice: ToolChoice::Required, .. }
        ));
        assert_eq!(req.stop_after, Some(CALL_CLOSE));
        let named = with(json!({"type":"function","function":{"name":"weather"}}), Some(false)).unwrap();
        assert!(named.stop_after.is_none());
        for bad in [json!("always"), json!({"type":"function","function":{"name":"nope"}}), json!(3), json!({})] {
            let e = with(bad.clone(), None).unwrap_err();
            assert_eq!(e.shape().param.as_deref(), Some("tool_choice"), "{bad}");
        }
    }

    #[test]
    fn bad_tools_are_refused_naming_the_field() {
        for (json, param) in [
            (r#"[{"type":"function","function":{"name":"has space"}}]"#, "tools[0].function.name"),
            (r#"[{"type":"function","function":{"name":""}}]"#, "tools[0].function.name"),
            (
                r#"[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"a"}}]"#,
                "tools[1].function.name",
            ),
            (r#"[{"type":"function","function":{"name":"a","parameters":[1]}}]"#, "tools[0].function.parameters"),
        ] {
            let t = tools(json);
            let e = Inputs { tools: Some(&t), ..Inputs::default() }.resolve().unwrap_err();
            assert_eq!(e.shape().param.as_deref(), Some(param), "{json}");
        }
    }

    #[test]
    fn formats_and_conflicts() {
        let obj = ResponseFormat::JsonObject;
        let e = Inputs { response_format: Some(&obj), ..Inputs::default() }.resolve().unwrap_err();
        assert_eq!(e.shape().param.as_deref(), Some("messages"));
        let s = Inputs { response_format: Some(&obj), mentions_json: true, ..Inputs::default() }.resolve().unwrap();
        assert_eq!(s.constraint.unwrap().source, GrammarSource::JsonObject);
        let g: GrammarExt = serde_json::from_str(r#"{"regex":"a+"}"#).unwrap();
        let e = Inputs { response_format: Some(&obj), mentions_json: true, grammar: Some(&g), ..Inputs::default() }
            .resolve()
            .unwrap_err();
        assert_eq!(e.shape().param.as_deref(), Some("augur.grammar"));
        let t = tools(WEATHER);
        let e = Inputs { tools: Some(&t), grammar: Some(&g), ..Inputs::default() }.resolve().unwrap_err();
        assert_eq!(e.shape().code, "unsupported_parameter");
        let both: GrammarExt = serde_json::from_str(r#"{"regex":"a","lark":"start: \"a\""}"#).unwrap();
        assert!(Inputs { grammar: Some(&both), ..Inputs::default() }.resolve().is_err());
    }

    #[test]
    fn json_schema_format_needs_a_valid_name_and_a_schema() {
        let p = "response_format.json_schema";
        for (json, param) in [
            (r#"{"type":"json_schema"}"#, p.to_string()),
            (r#"{"type":"json_schema","json_schema":{"name":"n"}}"#, format!("{p}.schema")),
            (r#"{"type":"json_schema","json_schema":{"name":"n","schema":3}}"#, format!("{p}.schema")),
            (r#"{"type":"json_schema","json_schema":{"schema":{}}}"#, format!("{p}.name")),
            (r#"{"type":"json_schema","json_schema":{"name":"a b","schema":{}}}"#, format!("{p}.name")),
        ] {
            let f: ResponseFormat = serde_json::from_str(json).unwrap();
            let e = Inputs { response_format: Some(&f), ..Inputs::default() }.resolve().unwrap_err();
            assert_eq!(e.shape().param.as_deref(), Some(param.as_str()), "{json}");
        }
        let f: ResponseFormat =
            serde_json::from_str(r#"{"type":"json_schema","json_schema":{"name":"n","schema":{}}}"#).unwrap();
        assert!(Inputs { response_format: Some(&f), ..Inputs::default() }.resolve().is_ok());
    }
}
