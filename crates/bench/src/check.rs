//! Per-prompt quality checks.
//!
//! The python check is NOT a security sandbox. It runs `python3 -I` (no
//! user site, no PYTHON* variables, script dir not on the path) in a fresh
//! temp dir, with an empty environment apart from PATH, no stdin, `ulimit`
//! caps on CPU time (10 s), address space (1 GiB), file size (10 MiB) and
//! processes, and a wall-clock timeout after which it is killed. It still
//! has the user's file system permissions and network access: only run
//! suites you trust, on models whose output you are willing to execute.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// The output's first fenced code block, followed by `code` (asserts).
    Python {
        code: String,
        #[serde(default)]
        timeout_s: Option<u64>,
    },
    /// JSON parsed out of the output must match `schema`.
    JsonSchema { schema: Value },
    /// The trimmed output equals `answer`.
    Exact { answer: String },
    /// Every `all` string appears and no `none` string does.
    Contains {
        #[serde(default)]
        all: Vec<String>,
        #[serde(default)]
        none: Vec<String>,
    },
}

/// Score in [0, 1] and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub score: f64,
    pub detail: String,
}

fn pass(ok: bool, detail: impl Into<String>) -> Score {
    Score { score: if ok { 1.0 } else { 0.0 }, detail: detail.into() }
}

impl Check {
    pub fn score(&self, output: &str) -> Score {
        match self {
            Check::Python { code, timeout_s } => python(output, code, Duration::from_secs(timeout_s.unwrap_or(20))),
            Check::JsonSchema { schema } => match extract_json(output) {
                Some(v) => match validate(&v, schema, "$") {
                    Ok(()) => pass(true, "valid"),
                    Err(e) => pass(false, e),
                },
                None => pass(false, "no JSON found in the output"),
            },
            Check::Exact { answer } => pass(output.trim() == answer.trim(), "exact match"),
            Check::Contains { all, none } => contains(output, all, none),
        }
    }
}

fn contains(output: &str, all: &[String], none: &[String]) -> Score {
    if let Some(m) = all.iter().find(|s| !output.contains(s.as_str())) {
        return pass(false, format!("missing {m:?}"));
    }
    if let Some(m) = none.iter().find(|s| output.contains(s.as_str())) {
        return pass(false, format!("contains forbidden {m:?}"));
    }
    pass(true, "all present")
}

/// The first ``` fenced block's body; the whole text when there is none.
pub fn first_code_block(text: &str) -> &str {
    let Some(start) = text.find("```") else { return text };
    let after = &text[start + 3..];
    // Skip the info string (```python).
    let body = after.find('\n').map_or(after, |n| &after[n + 1..]);
    body.find("```").map_or(body, |end| &body[..end])
}

/// A fenced block if it parses, else the outermost `{..}` or `[..]` span.
pub fn extract_json(text: &str) -> Option<Value> {
    if let Ok(v) = serde_json::from_str(first_code_block(text).trim()) {
        return Some(v);
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(s), Some(e)) = (text.find(open), text.rfind(close)) {
            if let Ok(v) = serde_json::from_str(&text[s..=e]) {
                return Some(v);
            }
        }
    }
    None
}

/// A minimal JSON Schema subset: type, properties, required, enum, items.
pub fn validate(v: &Value, schema: &Value, at: &str) -> Result<(), String> {
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => t.as_str().into_iter().collect(),
        };
        if !types.iter().any(|t| type_matches(v, t)) {
            return Err(format!("{at}: expected type {t}"));
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        if !options.contains(v) {
            return Err(format!("{at}: {v} is not one of the allowed values"));
        }
    }
    validate_object(v, schema, at)?;
    if let (Some(items), Value::Array(a)) = (schema.get("items"), v) {
        for (i, x) in a.iter().enumerate() {
            validate(x, items, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn validate_object(v: &Value, schema: &Value, at: &str) -> Result<(), String> {
    let Value::Object(o) = v else { return Ok(()) };
    if let Some(Value::Array(req)) = schema.get("required") {
        if let Some(k) = req.iter().filter_map(Value::as_str).find(|k| !o.contains_key(*k)) {
            return Err(format!("{at}: missing required {k:?}"));
        }
    }
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (k, s) in props {
            if let Some(x) = o.get(k) {
                validate(x, s, &format!("{at}.{k}"))?;
            }
        }
    }
    Ok(())
}

fn type_matches(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

fn python(output: &str, asserts: &str, timeout: Duration) -> Score {
    match run_python(output, asserts, timeout) {
        Ok(s) => s,
        Err(e) => pass(false, format!("could not run python3: {e}")),
    }
}

const LIMITS: &str =
    "ulimit -t 10; ulimit -v 1048576; ulimit -f 10240; ulimit -u 256 2>/dev/null; exec python3 -I main.py";

fn run_python(output: &str, asserts: &str, timeout: Duration) -> std::io::Result<Score> {
    let dir = tempfile::tempdir()?;
    let program = format!("{}\n\n{}\n", first_code_block(output), asserts);
    std::fs::write(dir.path().join("main.py"), program)?;
    let mut child = Command::new("sh")
        .args(["-c", LIMITS])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let last = err.lines().last().unwrap_or("").to_string();
            return Ok(pass(status.success(), if status.success() { "asserts passed".into() } else { last }));
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(pass(false, "timed out"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
