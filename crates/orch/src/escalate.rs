//! The checks an answer must pass; a failed one sends the request to the
//! next role of its chain.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use augur_runtime::FinishReason;
use serde::Serialize;
use wait_timeout::ChildExt;

/// Longest a gate command may run before it counts as failed.
pub const GATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an answer was not good enough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "check", content = "detail", rename_all = "snake_case")]
pub enum Failure {
    /// Nothing but whitespace.
    Empty,
    /// `max_tokens` cut it off.
    Truncated,
    /// `response_format` asked for JSON and this does not parse.
    InvalidJson(String),
    /// The role's gate command refused it (exit status, stderr excerpt).
    Gate(String),
}

/// What a check needs to know about the request.
#[derive(Debug, Clone, Default)]
pub struct Checks<'a> {
    pub want_json: bool,
    pub gate: Option<&'a [String]>,
}

/// The first check `text` fails, if any. Cheap checks run first; the gate
/// command runs only for an answer that passed them.
pub fn check_answer(text: &str, finish: FinishReason, checks: &Checks<'_>) -> Option<Failure> {
    if text.trim().is_empty() {
        return Some(Failure::Empty);
    }
    if finish == FinishReason::Length {
        return Some(Failure::Truncated);
    }
    if checks.want_json {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(strip_fence(text)) {
            return Some(Failure::InvalidJson(e.to_string()));
        }
    }
    checks.gate.and_then(|argv| run_gate(argv, text).err()).map(Failure::Gate)
}

/// Models often wrap JSON in a Markdown fence; the content is what counts.
fn strip_fence(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else { return t };
    let body = rest.split_once('\n').map_or("", |(_, b)| b);
    body.strip_suffix("```").unwrap_or(body).trim()
}

/// Run `argv` with the answer on stdin; `Err` says why it failed.
pub fn run_gate(argv: &[String], answer: &str) -> Result<(), String> {
    let (cmd, args) = argv.split_first().ok_or("empty gate command")?;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A gate that exits without reading its input is fine: ignore EPIPE.
        let _ = stdin.write_all(answer.as_bytes());
    }
    let status = match child.wait_timeout(GATE_TIMEOUT).map_err(|e| e.to_string())? {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd} ran longer than {} s", GATE_TIMEOUT.as_secs()));
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut s, &mut err);
    }
    let excerpt: String = err.trim().chars().take(300).collect();
    Err(format!("{cmd} exited with {status}: {excerpt}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_in_order() {
        let none = Checks::default();
        let json = Checks { want_json: true, gate: None };
        assert_eq!(check_answer("  \n", FinishReason::Stop, &none), Some(Failure::Empty));
        assert_eq!(check_answer("abc", FinishReason::Length, &none), Some(Failure::Truncated));
        assert_eq!(check_answer("abc", FinishReason::Stop, &none), None);
        assert!(matches!(check_answer("name: x", FinishReason::Stop, &json), Some(Failure::InvalidJson(_))));
        assert_eq!(check_answer("```json\n{\"a\": 1}\n```", FinishReason::Stop, &json), None);
        assert_eq!(check_answer("{\"a\": 1}", FinishReason::Stop, &json), None);
    }

    #[test]
    fn gate_exit_status_decides() {
        let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];
        assert!(run_gate(&sh("grep -q hello"), "say hello").is_ok());
        let e = run_gate(&sh("grep -q hello || { echo no greeting >&2; exit 3; }"), "bye").unwrap_err();
        assert!(e.contains("no greeting"), "{e}");
        assert!(run_gate(&["/nonexistent/gate".to_string()], "x").is_err());
        let gate = sh("exit 1");
        let checks = Checks { want_json: false, gate: Some(&gate) };
        assert!(matches!(check_answer("fine", FinishReason::Stop, &checks), Some(Failure::Gate(_))));
    }
}
