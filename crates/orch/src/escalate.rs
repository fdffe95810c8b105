//! The checks an answer must pass; a failed one sends the request to the
//! next role of its chain.

mod gate;

use augur_runtime::FinishReason;
use serde::Serialize;

pub use gate::{run_gate, run_gate_within, GATE_TIMEOUT};

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
    fn a_failing_gate_fails_the_answer() {
        let gate = vec!["sh".to_string(), "-c".to_string(), "exit 1".to_string()];
        let checks = Checks { want_json: false, gate: Some(&gate) };
        assert!(matches!(check_answer("fine", FinishReason::Stop, &checks), Some(Failure::Gate(_))));
    }
}
