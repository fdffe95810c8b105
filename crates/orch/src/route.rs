//! Choosing a role for a request.
//!
//! Order: the request's `model` (a role or a model name); with `"auto"` (or
//! no model), an explicit `@role` hint at the start of the last user
//! message, then the configured rules in file order, then the front door's
//! classifier, then the default role. Every step is deterministic, so the
//! same request always goes to the same role; [`Decision::why`] says which
//! step decided.

use std::sync::Arc;

use serde::Serialize;

use crate::resolve::{Rule, TeamConfig, AUTO};
use crate::OrchError;

/// What decided a request's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The request's `model` named the role (or a model it uses).
    Named,
    /// An `@role` hint in the message.
    Hint,
    Rule,
    Classifier,
    Default,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub role: String,
    /// The roles tried in order if answers fail their checks.
    pub chain: Vec<String>,
    pub by: DecidedBy,
    pub why: String,
}

/// The front door model's answer: one of the allowed roles.
#[derive(Debug, Clone)]
pub struct Classified {
    pub role: String,
    /// Each candidate's logit for its first token, for explanations.
    pub scores: Vec<(String, f32)>,
}

/// Asks a model which role fits a request. Must be deterministic.
pub trait Classify: Send + Sync {
    /// `roles` are (name, description) pairs; the answer is one of the names.
    fn classify(&self, text: &str, roles: &[(String, String)]) -> Result<Classified, OrchError>;
}

/// Rules and, when they do not decide, a classifier.
pub struct Router {
    cfg: Arc<TeamConfig>,
    classifier: Option<Arc<dyn Classify>>,
}

/// What routing reads of a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteInput<'a> {
    /// The request's `model` field.
    pub model: Option<&'a str>,
    /// The last user message (or the completion prompt).
    pub text: &'a str,
}

impl Router {
    pub fn new(cfg: Arc<TeamConfig>, classifier: Option<Arc<dyn Classify>>) -> Router {
        Router { cfg, classifier }
    }

    pub fn config(&self) -> &Arc<TeamConfig> {
        &self.cfg
    }

    /// Rules only: `None` when the classifier would be asked.
    pub fn decide_by_rules(&self, input: RouteInput<'_>) -> Result<Option<Decision>, OrchError> {
        if let Some(d) = self.named(input.model)? {
            return Ok(Some(d));
        }
        if let Some(role) = hint(input.text).filter(|r| self.cfg.roles.contains_key(*r)) {
            return Ok(Some(self.decision(role, DecidedBy::Hint, format!("the message starts with @{role}"))));
        }
        let features = Features::of(input.text);
        if let Some(rule) = self.cfg.routing.rules.iter().find(|r| rule_matches(r, &features)) {
            let why = format!("{} matched ({})", rule.name, explain(rule, &features));
            return Ok(Some(self.decision(&rule.role, DecidedBy::Rule, why)));
        }
        Ok(None)
    }

    /// The full decision; the classifier runs on the calling thread (it
    /// decodes, so async callers use a blocking task).
    pub fn decide(&self, input: RouteInput<'_>) -> Result<Decision, OrchError> {
        if let Some(d) = self.decide_by_rules(input)? {
            return Ok(d);
        }
        if let (Some(c), true) = (&self.classifier, self.cfg.routing.classifier.is_some()) {
            let roles = self.candidates();
            match c.classify(input.text, &roles) {
                Ok(answer) => {
                    let why = format!("the front door classified it; first-token logits: {}", scores(&answer));
                    return Ok(self.decision(&answer.role, DecidedBy::Classifier, why));
                }
                Err(e) => tracing::warn!("front door classification failed, using the default role: {e}"),
            }
        }
        let default = self.cfg.routing.default.clone();
        Ok(self.decision(&default, DecidedBy::Default, "no rule matched; the default role".into()))
    }

    /// (name, description) of the roles the classifier may answer.
    pub fn candidates(&self) -> Vec<(String, String)> {
        self.cfg
            .routing
            .classify_roles
            .iter()
            .map(|r| {
                let d = self.cfg.roles.get(r).and_then(|s| s.description.clone()).unwrap_or_default();
                (r.clone(), d)
            })
            .collect()
    }

    fn named(&self, model: Option<&str>) -> Result<Option<Decision>, OrchError> {
        let Some(m) = model.filter(|m| *m != AUTO) else { return Ok(None) };
        if self.cfg.roles.contains_key(m) {
            return Ok(Some(self.decision(m, DecidedBy::Named, format!("the request names role {m}"))));
        }
        // A model name: the cheapest role that serves it, a role that only
        // drafts last.
        let role = self
            .cfg
            .roles
            .values()
            .filter(|r| r.model.as_deref() == Some(m))
            .min_by_key(|r| (r.name == "draft", r.tier, r.name.clone()))
            .ok_or_else(|| OrchError::NoSuchTarget(m.to_string()))?;
        let why = format!("the request names model {m}, served by role {}", role.name);
        Ok(Some(self.decision(&role.name.clone(), DecidedBy::Named, why)))
    }

    fn decision(&self, role: &str, by: DecidedBy, why: String) -> Decision {
        Decision { role: role.to_string(), chain: self.cfg.chain(role), by, why }
    }
}

fn scores(c: &Classified) -> String {
    c.scores.iter().map(|(r, s)| format!("{r}={s:.2}")).collect::<Vec<_>>().join(", ")
}

/// `@role` as the first word of the message.
fn hint(text: &str) -> Option<&str> {
    let first = text.trim_start().strip_prefix('@')?.split_whitespace().next()?;
    Some(first.trim_end_matches([',', ':', ';']))
}

/// What rules look at, computed once per request.
pub struct Features<'a> {
    pub text: &'a str,
    pub lower: String,
    pub chars: usize,
    pub has_code: bool,
}

impl<'a> Features<'a> {
    pub fn of(text: &'a str) -> Features<'a> {
        Features { text, lower: text.to_lowercase(), chars: text.chars().count(), has_code: has_code(text) }
    }
}

fn rule_matches(r: &Rule, f: &Features<'_>) -> bool {
    (r.keywords.is_empty() || r.keywords.iter().any(|k| contains_word(&f.lower, k)))
        && r.regex.as_ref().is_none_or(|re| re.is_match(f.text))
        && r.has_code.is_none_or(|want| want == f.has_code)
        && r.min_chars.is_none_or(|n| f.chars >= n)
        && r.max_chars.is_none_or(|n| f.chars <= n)
}

fn explain(r: &Rule, f: &Features<'_>) -> String {
    let mut parts = Vec::new();
    if let Some(k) = r.keywords.iter().find(|k| contains_word(&f.lower, k)) {
        parts.push(format!("keyword {k:?}"));
    }
    if let Some(re) = &r.regex {
        parts.push(format!("regex {:?}", re.as_str()));
    }
    if let Some(c) = r.has_code {
        parts.push(format!("has_code = {c}"));
    }
    if r.min_chars.is_some() || r.max_chars.is_some() {
        parts.push(format!("{} chars", f.chars));
    }
    parts.join(", ")
}

/// `word` in `hay` with no letter or digit right before or after it, so
/// "test" does not match "latest".
pub fn contains_word(hay: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    hay.match_indices(word).any(|(i, _)| {
        let before = hay[..i].chars().next_back().is_none_or(|c| !is_word(c));
        let after = hay[i + word.len()..].chars().next().is_none_or(|c| !is_word(c));
        before && after
    })
}

/// A fenced block, or at least two lines that read like code.
pub fn has_code(text: &str) -> bool {
    if text.contains("```") {
        return true;
    }
    text.lines().filter(|l| code_like(l.trim())).count() >= 2
}

fn code_like(l: &str) -> bool {
    const STARTS: [&str; 16] = [
        "def ",
        "fn ",
        "pub fn ",
        "class ",
        "import ",
        "from ",
        "#include",
        "function ",
        "let ",
        "const ",
        "var ",
        "return ",
        "if (",
        "for (",
        "while (",
        "struct ",
    ];
    const ENDS: [&str; 4] = [";", "{", "}", "):"];
    STARTS.iter().any(|s| l.starts_with(s)) || (l.len() > 1 && ENDS.iter().any(|e| l.ends_with(e)))
}
