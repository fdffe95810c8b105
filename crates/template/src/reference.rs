//! Rendering with Python's jinja2, the engine Hugging Face transformers
//! uses, to check this crate's output byte for byte in tests.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::{ChatMessage, RenderOptions};

/// Mirrors `transformers`' `_compile_jinja_template` environment.
const SCRIPT: &str = r#"
import json, sys
from datetime import datetime
import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.exceptions import TemplateError

def raise_exception(message):
    raise TemplateError(message)

def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

def strftime_now(format):
    return datetime.now().strftime(format)

RENDER_FAILED = 3
req = json.loads(sys.stdin.buffer.read().decode("utf-8"))
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now
try:
    out = env.from_string(req["source"]).render(**req["context"])
except Exception as e:
    sys.stderr.write(type(e).__name__ + ": " + str(e))
    sys.exit(RENDER_FAILED)
sys.stdout.buffer.write(out.encode("utf-8"))
"#;

/// Prefix of errors meaning python3 or jinja2 could not be used at all,
/// as opposed to the template failing to render.
pub const UNAVAILABLE: &str = "python3/jinja2 unavailable";

/// Exit status of the script when the template itself raised.
const RENDER_FAILED: i32 = 3;

/// Renders `source` with `python3` + jinja2 configured like transformers.
///
/// `Err` is either `"<ExceptionType>: <message>"` when the template raised
/// (`raise_exception` gives `"TemplateError: <message>"`), or starts with
/// [`UNAVAILABLE`] when python3/jinja2 could not run (install them with
/// `python3 -m pip install jinja2`).
pub fn render_with_python_jinja2(
    source: &str,
    messages: &[ChatMessage],
    opts: &RenderOptions,
) -> Result<String, String> {
    let unavailable = |what: String| format!("{UNAVAILABLE}: {what}; run `python3 -m pip install jinja2`");
    let request = serde_json::json!({ "source": source, "context": opts.context(messages) });
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| unavailable(format!("cannot run python3 ({e})")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(request.to_string().as_bytes())
            .map_err(|e| unavailable(format!("cannot write to python3 ({e})")))?;
    }
    let output = child.wait_with_output().map_err(|e| unavailable(format!("python3 failed ({e})")))?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    match output.status.code() {
        Some(0) => String::from_utf8(output.stdout).map_err(|e| format!("invalid UTF-8 from python3: {e}")),
        Some(RENDER_FAILED) => Err(stderr),
        _ => Err(unavailable(stderr)),
    }
}
