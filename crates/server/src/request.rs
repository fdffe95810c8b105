//! OpenAI request bodies, checked and turned into runtime requests.
//!
//! Decisions (see also the crate docs):
//! - `temperature` defaults to 1.0, as in OpenAI's API, since clients are
//!   written against it; 0 means greedy.
//! - `top_k` 0 means disabled; `top_p` 1 and `min_p` 0 are no-ops.
//! - Without `seed`, sampling draws a fresh seed per request.
//! - Fields OpenAI clients commonly send are accepted at their neutral
//!   value and refused otherwise; unknown fields are refused.

use augur_runtime::{Prompt, SpecMode, SpecOptions};
use augur_sampling::SamplingParams;
use serde::Deserialize;
use serde_json::{Number, Value};

use crate::config::{ServerConfig, MAX_STOP_STRINGS};
use crate::messages::{chat_prompt, message_content, RawMessage};
use crate::structured::{GrammarExt, Inputs, RawTool, ResponseFormat, Structured};
use crate::ServerError;

/// Longest speculative draft a request may ask for.
const MAX_SPEC_DRAFT: i128 = 256;

/// The body of `/v1/chat/completions` or `/v1/completions`. Both share one
/// struct because serde cannot combine `flatten` with refusing unknown
/// fields; each endpoint then refuses the other's fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    model: Option<String>,
    messages: Option<Vec<RawMessage>>,
    prompt: Option<Value>,
    max_tokens: Option<Number>,
    max_completion_tokens: Option<Number>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<Number>,
    min_p: Option<f64>,
    seed: Option<Number>,
    stop: Option<Value>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    n: Option<Number>,
    augur: Option<AugurExt>,
    // Accepted with any value: they only label requests, and augur keeps
    // no per-user state.
    #[allow(dead_code)]
    user: Option<String>,
    #[allow(dead_code)]
    metadata: Option<serde_json::Map<String, Value>>,
    store: Option<bool>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    logit_bias: Option<serde_json::Map<String, Value>>,
    logprobs: Option<Value>,
    top_logprobs: Option<Number>,
    response_format: Option<ResponseFormat>,
    tools: Option<Vec<RawTool>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    service_tier: Option<String>,
    echo: Option<bool>,
    suffix: Option<String>,
    best_of: Option<Number>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// augur's own request options, namespaced so they never clash with
/// OpenAI's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AugurExt {
    spec: Option<SpecExt>,
    grammar: Option<GrammarExt>,
    /// `false`: render tools and read calls, but do not constrain decoding
    /// (to measure what the constraint changes).
    constrain: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecExt {
    mode: Option<SpecMode>,
    max: Option<Number>,
    /// Verify grammar-forced tokens in the next batch (default true).
    fast_forward: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
}

/// A checked generation request, before tokenisation.
#[derive(Debug)]
pub struct ParsedRequest {
    pub endpoint: Endpoint,
    pub prompt: Prompt,
    /// `None`: the rest of the context, capped by the configured limit.
    pub max_tokens: Option<u32>,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    pub spec: SpecOptions,
    pub stream: bool,
    pub include_usage: bool,
    /// Constraint, tools for the template, and how to read calls back.
    pub structured: Structured,
}

impl RawRequest {
    /// Validate for `endpoint`. The model name is checked by the caller.
    pub fn into_parsed(self, endpoint: Endpoint, cfg: &ServerConfig) -> Result<ParsedRequest, ServerError> {
        self.check_endpoint_fields(endpoint)?;
        self.check_neutral()?;
        self.check_n()?;
        let prompt = match endpoint {
            Endpoint::Chat => chat_prompt(self.messages.as_deref().unwrap_or_default(), cfg)?,
            Endpoint::Completions => text_prompt(self.prompt.as_ref(), cfg)?,
        };
        let structured = self.structured(&prompt)?;
        let mut stop = stop_strings(self.stop.as_ref(), cfg)?;
        stop.extend(structured.stop_after.map(String::from));
        Ok(ParsedRequest {
            endpoint,
            prompt,
            max_tokens: self.max_tokens(cfg)?,
            sampling: self.sampling()?,
            stop,
            spec: spec_options(self.augur.as_ref())?,
            stream: self.stream.unwrap_or(false),
            include_usage: self.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false),
            structured,
        })
    }

    fn structured(&self, prompt: &Prompt) -> Result<Structured, ServerError> {
        let mentions_json = match prompt {
            Prompt::Chat(msgs) => msgs.iter().any(|m| m.content.to_ascii_lowercase().contains("json")),
            _ => false,
        };
        Inputs {
            response_format: self.response_format.as_ref(),
            tools: self.tools.as_deref(),
            tool_choice: self.tool_choice.as_ref(),
            parallel_tool_calls: self.parallel_tool_calls,
            grammar: self.augur.as_ref().and_then(|a| a.grammar.as_ref()),
            mentions_json,
        }
        .resolve()
        .map(|mut s| {
            if self.augur.as_ref().and_then(|a| a.constrain) == Some(false) {
                s.constraint = None;
            }
            s
        })
    }

    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    fn check_endpoint_fields(&self, endpoint: Endpoint) -> Result<(), ServerError> {
        let chat_only = [
            ("messages", self.messages.is_some()),
            ("max_completion_tokens", self.max_completion_tokens.is_some()),
            ("response_format", self.response_format.is_some()),
            ("tools", self.tools.is_some()),
            ("tool_choice", self.tool_choice.is_some()),
            ("parallel_tool_calls", self.parallel_tool_calls.is_some()),
            ("top_logprobs", self.top_logprobs.is_some()),
        ];
        let completion_only =
            [("prompt", self.prompt.is_some()), ("echo", self.echo.is_some()), ("suffix", self.suffix.is_some())];
        let (foreign, required, name) = match endpoint {
            Endpoint::Chat => (&completion_only[..], self.messages.is_some(), "messages"),
            Endpoint::Completions => (&chat_only[..], self.prompt.is_some(), "prompt"),
        };
        if let Some((field, _)) = foreign.iter().find(|(_, present)| *present) {
            return Err(ServerError::InvalidBody {
                param: Some((*field).into()),
                message: format!("`{field}` is not a field of this endpoint"),
            });
        }
        if !required {
            return Err(ServerError::param(name, format!("`{name}` is required")));
        }
        Ok(())
    }

    /// Refuse what would change the output in ways augur does not support.
    fn check_neutral(&self) -> Result<(), ServerError> {
        let unsupported = |p: &str, why: &str| Err(ServerError::unsupported(p, format!("`{p}`: {why}")));
        if self.presence_penalty.is_some_and(|v| v != 0.0) {
            return unsupported("presence_penalty", "penalties are not supported; omit it or send 0");
        }
        if self.frequency_penalty.is_some_and(|v| v != 0.0) {
            return unsupported("frequency_penalty", "penalties are not supported; omit it or send 0");
        }
        if self.logit_bias.as_ref().is_some_and(|m| !m.is_empty()) {
            return unsupported("logit_bias", "logit bias is not supported; omit it or send {}");
        }
        let logprobs_off = |v: &Value| v.is_null() || v == false || v.as_u64() == Some(0);
        if self.logprobs.as_ref().is_some_and(|v| !logprobs_off(v)) {
            return unsupported("logprobs", "log probabilities are not supported yet");
        }
        if self.top_logprobs.as_ref().is_some_and(|v| v.as_u64() != Some(0)) {
            return unsupported("top_logprobs", "log probabilities are not supported yet");
        }
        if self.store == Some(true) {
            return unsupported("store", "augur does not store completions");
        }
        if self.echo == Some(true) {
            return unsupported("echo", "echoing the prompt is not supported");
        }
        if self.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
            return unsupported("suffix", "suffixes (insertion) are not supported");
        }
        if self.best_of.as_ref().is_some_and(|v| v.as_u64() != Some(1)) {
            return unsupported("best_of", "only best_of = 1 is supported");
        }
        if self.service_tier.as_deref().is_some_and(|t| t != "auto" && t != "default") {
            return unsupported("service_tier", "only \"auto\" and \"default\" are accepted");
        }
        Ok(())
    }

    fn check_n(&self) -> Result<(), ServerError> {
        match &self.n {
            Some(n) if int_in("n", n, 1, i128::MAX)? != 1 => {
                Err(ServerError::unsupported("n", "only n = 1 is supported"))
            }
            _ => Ok(()),
        }
    }

    fn max_tokens(&self, cfg: &ServerConfig) -> Result<Option<u32>, ServerError> {
        let (name, v) = match (&self.max_tokens, &self.max_completion_tokens) {
            (Some(_), Some(_)) => {
                return Err(ServerError::param(
                    "max_tokens",
                    "give either max_tokens or max_completion_tokens, not both",
                ))
            }
            (Some(v), None) => ("max_tokens", v),
            (None, Some(v)) => ("max_completion_tokens", v),
            (None, None) => return Ok(None),
        };
        let v = int_in(name, v, 1, i128::from(cfg.max_tokens_limit))?;
        Ok(Some(u32::try_from(v).unwrap_or(cfg.max_tokens_limit)))
    }

    fn sampling(&self) -> Result<SamplingParams, ServerError> {
        let temperature = float_in("temperature", self.temperature, 0.0, 2.0)?.unwrap_or(1.0);
        let top_p = float_in("top_p", self.top_p, 0.0, 1.0)?;
        if top_p == Some(0.0) {
            return Err(ServerError::param("top_p", "top_p must be in (0, 1], got 0"));
        }
        let min_p = float_in("min_p", self.min_p, 0.0, 1.0)?;
        let top_k = match &self.top_k {
            Some(k) => Some(int_in("top_k", k, 0, i128::from(u32::MAX))?),
            None => None,
        };
        let seed = match &self.seed {
            Some(s) => int_in("seed", s, 0, i128::from(u64::MAX))?,
            None => i128::from(fresh_seed()),
        };
        if temperature == 0.0 {
            return Ok(SamplingParams::Greedy);
        }
        let params = SamplingParams::Sample {
            temperature: temperature as f32,
            top_k: top_k.filter(|&k| k > 0).and_then(|k| u32::try_from(k).ok()),
            top_p: top_p.map(|p| p as f32),
            min_p: min_p.map(|p| p as f32),
            seed: u64::try_from(seed).unwrap_or(0),
        };
        params.validate().map_err(|e| ServerError::param("temperature", e.to_string()))?;
        Ok(params)
    }
}

/// An integer parameter in `lo..=hi`, never wrapped or truncated.
fn int_in(name: &str, v: &Number, lo: i128, hi: i128) -> Result<i128, ServerError> {
    let n = v.as_u64().map(i128::from).or_else(|| v.as_i64().map(i128::from));
    match n {
        Some(n) if (lo..=hi).contains(&n) => Ok(n),
        Some(n) => Err(ServerError::param(name, format!("`{name}` must be between {lo} and {hi}, got {n}"))),
        None => Err(ServerError::param(name, format!("`{name}` must be an integer between {lo} and {hi}, got {v}"))),
    }
}

fn float_in(name: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<Option<f64>, ServerError> {
    match v {
        Some(x) if !(x.is_finite() && (lo..=hi).contains(&x)) => {
            Err(ServerError::param(name, format!("`{name}` must be between {lo} and {hi}, got {x}")))
        }
        other => Ok(other),
    }
}

/// A seed for requests that give none, different every time.
fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

/// A string, a one-string array, or token ids (flat or one nested array).
fn text_prompt(prompt: Option<&Value>, cfg: &ServerConfig) -> Result<Prompt, ServerError> {
    let bad =
        || ServerError::param("prompt", "`prompt` must be a string, an array of one string, or an array of token ids");
    let prompt = match prompt {
        Some(Value::Array(items)) if items.len() == 1 && !items[0].is_number() => &items[0],
        Some(p) => p,
        None => return Err(bad()),
    };
    match prompt {
        Value::String(s) => {
            check_prompt_bytes(s.len(), cfg, "prompt")?;
            Ok(Prompt::Text(s.clone()))
        }
        Value::Array(ids) if ids.iter().all(Value::is_number) => {
            check_prompt_bytes(ids.len().saturating_mul(4), cfg, "prompt")?;
            let tokens: Result<Vec<i32>, _> =
                ids.iter().enumerate().map(|(i, v)| token_id(&format!("prompt[{i}]"), v)).collect();
            Ok(Prompt::Tokens(tokens?))
        }
        Value::Array(_) => Err(ServerError::unsupported("prompt", "only one prompt per request is supported")),
        _ => Err(bad()),
    }
}

/// A token id as i32; the vocabulary check happens at tokenisation.
pub fn token_id(param: &str, v: &Value) -> Result<i32, ServerError> {
    let n = v.as_i64().filter(|n| i32::try_from(*n).is_ok());
    n.map(|n| n as i32).ok_or_else(|| ServerError::param(param, format!("token id {v} is not a valid token id")))
}

pub(crate) fn check_prompt_bytes(bytes: usize, cfg: &ServerConfig, param: &str) -> Result<(), ServerError> {
    if bytes > cfg.max_prompt_bytes {
        return Err(ServerError::param(
            param,
            format!("the prompt is {bytes} bytes, more than the limit of {} bytes", cfg.max_prompt_bytes),
        ));
    }
    Ok(())
}

fn stop_strings(stop: Option<&Value>, cfg: &ServerConfig) -> Result<Vec<String>, ServerError> {
    let list: Vec<&Value> = match stop {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
    };
    if list.len() > MAX_STOP_STRINGS {
        return Err(ServerError::param(
            "stop",
            format!("at most {MAX_STOP_STRINGS} stop strings are allowed, got {}", list.len()),
        ));
    }
    list.into_iter()
        .map(|v| match v.as_str() {
            Some("") => Err(ServerError::param("stop", "stop strings must not be empty")),
            Some(s) if s.len() > cfg.max_stop_bytes => Err(ServerError::param(
                "stop",
                format!("a stop string is {} bytes, more than the limit of {}", s.len(), cfg.max_stop_bytes),
            )),
            Some(s) => Ok(s.to_string()),
            None => Err(ServerError::param("stop", "`stop` must be a string or an array of strings")),
        })
        .collect()
}

fn spec_options(ext: Option<&AugurExt>) -> Result<SpecOptions, ServerError> {
    let Some(spec) = ext.and_then(|e| e.spec.as_ref()) else {
        return Ok(SpecOptions::default());
    };
    let max = match &spec.max {
        Some(m) => Some(usize::try_from(int_in("augur.spec.max", m, 1, MAX_SPEC_DRAFT)?).unwrap_or(1)),
        None => None,
    };
    Ok(SpecOptions { mode: spec.mode, max, fast_forward: spec.fast_forward })
}

impl RawRequest {
    /// What routing reads: the last user message, or the completion prompt.
    pub fn routing_text(&self) -> String {
        let last_user = self.messages.as_deref().and_then(|m| m.iter().rev().find(|m| m.role == "user"));
        match (last_user, &self.prompt) {
            (Some(m), _) => m.content.as_ref().map(|c| message_content(0, Some(c), true).unwrap_or_default()),
            (None, Some(Value::String(p))) => Some(p.clone()),
            _ => None,
        }
        .unwrap_or_default()
    }

    pub fn set_model(&mut self, model: Option<String>) {
        self.model = model;
    }

    /// Whether `response_format` asks for JSON.
    pub fn wants_json(&self) -> bool {
        matches!(self.response_format, Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. }))
    }

    /// Drop a JSON `response_format`: without constrained decoding the
    /// server checks the answer instead and escalates when it is not JSON.
    pub fn take_json_format(&mut self) -> bool {
        let json = self.wants_json();
        if json {
            self.response_format = None;
        }
        json
    }

    /// Fill what the request leaves unset from a role's defaults, and put
    /// the role's system prompt first unless the request has its own.
    pub fn apply_role(&mut self, d: &RoleDefaults, system_prompt: Option<&str>) {
        self.temperature = self.temperature.or(d.temperature);
        self.top_p = self.top_p.or(d.top_p);
        self.min_p = self.min_p.or(d.min_p);
        if self.top_k.is_none() {
            self.top_k = d.top_k.map(Number::from);
        }
        if self.max_tokens.is_none() && self.max_completion_tokens.is_none() {
            self.max_tokens = d.max_tokens.map(Number::from);
        }
        if let (Some(sys), Some(msgs)) = (system_prompt, self.messages.as_mut()) {
            if !msgs.iter().any(|m| m.role == "system" || m.role == "developer") {
                let content = Some(Value::String(sys.to_string()));
                let m = RawMessage {
                    role: "system".into(),
                    content,
                    name: None,
                    tool_calls: None,
                    tool_call_id: None,
                    refusal: None,
                };
                msgs.insert(0, m);
            }
        }
    }

    /// A role's speculation settings, unless the request chose its own.
    pub fn apply_spec(&mut self, mode: Option<SpecMode>, max: Option<usize>) {
        let ext = self.augur.get_or_insert(AugurExt { spec: None, grammar: None, constrain: None });
        let spec = ext.spec.get_or_insert(SpecExt { mode: None, max: None, fast_forward: None });
        spec.mode = spec.mode.or(mode);
        if spec.max.is_none() {
            spec.max = max.map(|m| Number::from(m as u64));
        }
    }
}

/// Generation defaults a role gives requests that do not set them.
#[derive(Debug, Clone, Default)]
pub struct RoleDefaults {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub min_p: Option<f64>,
    pub max_tokens: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerOptions;
    use crate::extract::parse;

    fn cfg() -> ServerConfig {
        ServerOptions::default().resolve("m").unwrap()
    }

    fn chat(body: &str) -> Result<ParsedRequest, ServerError> {
        parse::<RawRequest>(body.as_bytes())?.into_parsed(Endpoint::Chat, &cfg())
    }

    fn code(r: Result<ParsedRequest, ServerError>) -> (&'static str, Option<String>) {
        let e = r.expect_err("should be refused");
        let s = e.shape();
        (s.code, s.param)
    }

    const MSG: &str = r#""messages":[{"role":"user","content":"hi"}]"#;

    #[test]
    fn neutral_fields_are_accepted() {
        let body = format!(
            r#"{{{MSG},"user":"u","presence_penalty":0,"frequency_penalty":0,"logit_bias":{{}},"logprobs":false,
            "parallel_tool_calls":true,"metadata":{{}},"store":false,"n":1,"stream_options":{{"include_usage":true}},
            "response_format":{{"type":"text"}},"tools":[],"tool_choice":"none","temperature":0}}"#
        );
        let s = chat(&body).unwrap();
        assert_eq!(s.sampling, SamplingParams::Greedy);
        assert!(s.include_usage && !s.stream && s.max_tokens.is_none());
    }

    #[test]
    fn unsupported_values_are_refused() {
        for (extra, param) in [
            (r#""logprobs":true"#, "logprobs"),
            (r#""logit_bias":{"1":2}"#, "logit_bias"),
            (r#""presence_penalty":0.5"#, "presence_penalty"),
            (r#""frequency_penalty":-1"#, "frequency_penalty"),
            (r#""n":2"#, "n"),
            (r#""store":true"#, "store"),
        ] {
            let (code, p) = code(chat(&format!("{{{MSG},{extra}}}")));
            assert_eq!((code, p.as_deref()), ("unsupported_parameter", Some(param)), "{extra}");
        }
    }

    #[test]
    fn ranges_are_checked_without_wrapping() {
        for extra in [
            r#""max_tokens":2147483648"#,
            r#""max_tokens":9223372036854775808"#,
            r#""max_tokens":0"#,
            r#""max_tokens":-1"#,
            r#""max_tokens":1.5"#,
            r#""temperature":-0.1"#,
            r#""temperature":2.5"#,
            r#""top_p":0"#,
            r#""top_p":1.1"#,
            r#""min_p":-1"#,
            r#""top_k":-1"#,
            r#""seed":-5"#,
            r#""n":0"#,
            r#""augur":{"spec":{"max":0}}"#,
        ] {
            let (c, _) = code(chat(&format!("{{{MSG},{extra}}}")));
            assert_eq!(c, "invalid_value", "{extra}");
        }
        let e = chat(&format!("{{{MSG},\"max_tokens\":9223372036854775808}}")).unwrap_err();
        assert!(e.to_string().contains("9223372036854775808"), "{e}");
    }

    #[test]
    fn shapes_are_checked() {
        assert_eq!(code(chat(r#"{"messages":[]}"#)).0, "invalid_value");
        assert_eq!(code(chat(r#"{"prompt":"x"}"#)).0, "invalid_body");
        assert_eq!(code(chat(r#"{"messages":[{"role":"bot","content":"x"}]}"#)).0, "invalid_value");
        assert_eq!(code(chat(r#"{"messages":[{"role":"user"}]}"#)).0, "invalid_value");
        assert_eq!(code(chat(&format!(r#"{{{MSG},"stop":["a","b","c","d","e"]}}"#))).0, "invalid_value");
        assert_eq!(code(chat(&format!(r#"{{{MSG},"stop":[""]}}"#))).0, "invalid_value");
        assert_eq!(code(chat(&format!(r#"{{{MSG},"bogus":1}}"#))).0, "invalid_body");
        assert_eq!(code(chat(&format!(r#"{{{MSG},"temperature":"hot"}}"#))).1.as_deref(), Some("temperature"));
        let image = r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#;
        assert_eq!(code(chat(image)).0, "unsupported_parameter");
    }

    #[test]
    fn values_are_converted() {
        let s = chat(&format!(
            r#"{{{MSG},"temperature":0.7,"top_k":0,"top_p":0.9,"seed":42,"stop":"x","max_tokens":7,
            "augur":{{"spec":{{"mode":"auto","max":16}}}}}}"#
        ))
        .unwrap();
        assert_eq!(
            s.sampling,
            SamplingParams::Sample { temperature: 0.7, top_k: None, top_p: Some(0.9), min_p: None, seed: 42 }
        );
        assert_eq!(s.stop, vec!["x".to_string()]);
        assert_eq!(s.max_tokens, Some(7));
        assert_eq!(s.spec, SpecOptions { mode: Some(SpecMode::Auto), max: Some(16), fast_forward: None });
        let parts =
            r#"{"messages":[{"role":"developer","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#;
        match chat(parts).unwrap().prompt {
            Prompt::Chat(m) => assert_eq!((m[0].role.as_str(), m[0].content.as_str()), ("system", "ab")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn completion_prompts() {
        let comp =
            |b: &str| parse::<RawRequest>(b.as_bytes()).and_then(|r| r.into_parsed(Endpoint::Completions, &cfg()));
        assert!(matches!(comp(r#"{"prompt":"x"}"#).unwrap().prompt, Prompt::Text(_)));
        assert!(matches!(comp(r#"{"prompt":["x"]}"#).unwrap().prompt, Prompt::Text(_)));
        assert!(matches!(comp(r#"{"prompt":[1,2,3]}"#).unwrap().prompt, Prompt::Tokens(_)));
        assert!(matches!(comp(r#"{"prompt":[[1,2]]}"#).unwrap().prompt, Prompt::Tokens(_)));
        assert!(comp(r#"{"prompt":["a","b"]}"#).is_err());
        assert!(comp(r#"{"prompt":[4294967296]}"#).is_err());
        assert!(comp(r#"{"prompt":"x","messages":[]}"#).is_err());
        assert!(comp(r#"{"prompt":"x","echo":true}"#).is_err());
    }

    #[test]
    fn malformed_messages_are_refused_naming_the_field() {
        let call = |args: &str| {
            format!(
                r#"{{"messages":[{{"role":"user","content":"x"}},{{"role":"assistant","tool_calls":[{{"id":"c",
                "type":"function","function":{{"name":"f","arguments":{args}}}}}]}}]}}"#
            )
        };
        let args = "messages[1].tool_calls[0].function.arguments";
        for (body, c, param) in [
            (
                r#"{"messages":[{"role":"tool","content":"21"}]}"#.to_string(),
                "invalid_value",
                "messages[0].tool_call_id",
            ),
            (call("{\"a\":1}"), "invalid_value", args),
            (call(r#""[1]""#), "invalid_value", args),
            (call(r#""{""#), "invalid_value", args),
            (r#"{"messages":[{"role":"user","content":[]}]}"#.into(), "invalid_value", "messages[0].content"),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"txt","text":"a"}]}]}"#.into(),
                "invalid_value",
                "messages[0].content[0].type",
            ),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#.into(),
                "invalid_value",
                "messages[0].content[0].text",
            ),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#.into(),
                "unsupported_parameter",
                "messages[0].content[0]",
            ),
        ] {
            assert_eq!(code(chat(&body)), (c, Some(param.to_string())), "{body}");
        }
        let ok = chat(&call(r#""{\"a\": 1}""#)).unwrap();
        match ok.prompt {
            Prompt::Chat(m) => assert_eq!(m[1].tool_calls.as_ref().unwrap()[0]["function"]["arguments"]["a"], 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn self_containing_schemas_are_refused_naming_the_field() {
        for (extra, param) in [
            (
                r##""tools":[{"type":"function","function":{"name":"f","parameters":{"$ref":"#"}}}]"##,
                "tools[0].function.parameters",
            ),
            (
                r##""response_format":{"type":"json_schema","json_schema":{"name":"n","schema":
                {"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}}}"##,
                "response_format",
            ),
        ] {
            let e = chat(&format!("{{{MSG},{extra}}}")).unwrap_err();
            let s = e.shape();
            assert_eq!((s.status.as_u16(), s.code, s.param.as_deref()), (400, "invalid_grammar", Some(param)));
        }
    }
}
