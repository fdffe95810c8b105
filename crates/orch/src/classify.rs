//! The front door's classifier: a short prompt to a small model, answered
//! with one role name chosen greedily among the allowed names only.
//!
//! The answer is constrained with a trie over the names' tokens: at each
//! step only tokens that continue some allowed name compete, and the one
//! with the highest logit wins (ties: the lower token id). Usually the
//! first token already singles out one name, so a classification costs one
//! prefill. It has its own small context, so it never waits behind a
//! generation on the same model.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use augur_runtime::{Backend, ChatMessage, ModelParams, RuntimeError, Scorer, Token, Tokenizer};

use crate::route::{Classified, Classify};
use crate::OrchError;

/// Characters of the request the classifier reads: enough to tell a task's
/// kind, and it keeps the prompt well inside the small context.
const MAX_TEXT_CHARS: usize = 1500;
const CTX_TOKENS: u32 = 2048;

pub struct ModelClassifier {
    tokenizer: Tokenizer,
    state: Mutex<State>,
}

struct RoleSet {
    prefix: Vec<Token>,
    baseline: Vec<f32>,
}

struct State {
    scorer: Scorer,
    /// The prompt whose KV the context holds (a prefix of it is reused).
    cached: Vec<Token>,
    /// Per candidate list: the fixed instruction prefix and the
    /// content-free first-token logits.
    sets: HashMap<Vec<String>, RoleSet>,
}

impl ModelClassifier {
    /// A classifier on `backend`'s weights, in a small context of its own.
    pub fn on(backend: &dyn Backend, threads: Option<i32>) -> Result<ModelClassifier, OrchError> {
        Self::new(backend.scorer(CTX_TOKENS, threads).map_err(classify_err)?)
    }

    /// A classifier on a model loaded for it alone (`augur route`).
    pub fn load(path: &Path, params: &ModelParams, threads: Option<i32>) -> Result<ModelClassifier, OrchError> {
        Self::new(Scorer::load(path, params, CTX_TOKENS, threads).map_err(classify_err)?)
    }

    fn new(scorer: Scorer) -> Result<ModelClassifier, OrchError> {
        let tokenizer = scorer.tokenizer().clone();
        let state = State { scorer, cached: Vec::new(), sets: HashMap::new() };
        Ok(ModelClassifier { tokenizer, state: Mutex::new(state) })
    }

    /// The request comes last, so consecutive prompts share the long
    /// instruction prefix and its KV is reused.
    fn prompt(&self, text: &str, roles: &[(String, String)]) -> Result<Vec<Token>, OrchError> {
        let list: String = roles.iter().map(|(n, d)| format!("- {n}: {d}\n")).collect();
        let names: Vec<&str> = roles.iter().map(|(n, _)| n.as_str()).collect();
        let clipped: String = text.chars().take(MAX_TEXT_CHARS).collect();
        let content = format!(
            "Pick the team member who should handle a request.\nTeam:\n{list}\nAnswer with exactly one of: {}.\n\nRequest:\n{clipped}",
            names.join(", ")
        );
        let msg = ChatMessage { role: "user".into(), content, name: None, tool_calls: None, tool_call_id: None };
        let rendered = self.tokenizer.render_chat(&[msg], None).map_err(classify_err)?;
        self.tokenizer.tokenize(&rendered, true, true).map_err(classify_err)
    }
}

impl ModelClassifier {
    /// The instruction prefix every prompt of this role set shares (what two
    /// different content-free requests have in common), and the baseline.
    fn role_set(
        &self,
        st: &mut State,
        roles: &[(String, String)],
        names: &[(String, Vec<Token>)],
    ) -> Result<RoleSet, OrchError> {
        let a = self.prompt(CONTENT_FREE, roles)?;
        let b = self.prompt("-", roles)?;
        let n = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let prefix = a[..n].to_vec();
        let baseline = first_logits(st, &prefix, &a, names)?;
        Ok(RoleSet { prefix, baseline })
    }
}

impl Classify for ModelClassifier {
    fn classify(&self, text: &str, roles: &[(String, String)]) -> Result<Classified, OrchError> {
        if roles.is_empty() {
            return Err(OrchError::Classify("no roles to choose from".into()));
        }
        let mut names = Vec::with_capacity(roles.len());
        for (n, _) in roles {
            let toks = self.tokenizer.tokenize(n, false, false).map_err(classify_err)?;
            if toks.is_empty() {
                return Err(OrchError::Classify(format!("role name {n:?} has no tokens")));
            }
            names.push((n.clone(), toks));
        }
        let mut guard = self.state.lock().map_err(|_| OrchError::Classify("classifier state poisoned".into()))?;
        let st = &mut *guard;
        let key: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
        if !st.sets.contains_key(&key) {
            let set = self.role_set(st, roles, &names)?;
            st.sets.insert(key.clone(), set);
        }
        let set = st.sets.get(&key).map(|s| (s.prefix.clone(), s.baseline.clone()));
        let (prefix, baseline) = set.ok_or_else(|| OrchError::Classify("role set missing".into()))?;
        let prompt = self.prompt(text, roles)?;
        constrained_pick(st, &prefix, &prompt, names, &baseline)
    }
}

/// The request used to measure the classifier's bias towards each name.
const CONTENT_FREE: &str = "N/A";

/// Each name's first-token logit after `prompt`.
fn first_logits(
    st: &mut State,
    prefix: &[Token],
    prompt: &[Token],
    names: &[(String, Vec<Token>)],
) -> Result<Vec<f32>, OrchError> {
    let logits = feed_prompt(st, prefix, prompt)?;
    Ok(names.iter().map(|(_, t)| token_logit(logits, t[0])).collect())
}

fn token_logit(logits: &[f32], t: Token) -> f32 {
    usize::try_from(t).ok().and_then(|i| logits.get(i)).copied().unwrap_or(f32::MIN)
}

fn classify_err(e: RuntimeError) -> OrchError {
    OrchError::Classify(e.to_string())
}

/// Decode `prompt` and return the logits after it. When it starts with
/// the role set's fixed instruction `prefix`, that prefix's KV is decoded
/// alone once and reused; the rest is one more batch. The prefix is always
/// computed the same way, so a request's logits never depend on the
/// requests before it.
fn feed_prompt<'a>(st: &'a mut State, prefix: &[Token], prompt: &[Token]) -> Result<&'a [f32], OrchError> {
    let reuse = !prefix.is_empty() && prompt.len() > prefix.len() && prompt.starts_with(prefix);
    if !reuse {
        st.scorer.truncate(0).map_err(classify_err)?;
        st.cached.clear();
        return feed(&mut st.scorer, prompt, 0);
    }
    if st.cached != prefix {
        st.scorer.truncate(0).map_err(classify_err)?;
        st.cached.clear();
        feed(&mut st.scorer, prefix, 0)?;
        st.cached = prefix.to_vec();
    }
    st.scorer.truncate(prefix.len()).map_err(classify_err)?;
    feed(&mut st.scorer, &prompt[prefix.len()..], prefix.len())
}

/// Decode `tokens` at positions from `pos`; the logits after the last one.
fn feed<'a>(scorer: &'a mut Scorer, tokens: &[Token], pos: usize) -> Result<&'a [f32], OrchError> {
    if pos + tokens.len() >= scorer.n_ctx() as usize {
        return Err(OrchError::Classify(format!("prompt of {} tokens does not fit the classifier", tokens.len())));
    }
    scorer.feed(tokens, pos).map_err(classify_err)
}

/// Greedy decoding restricted to the allowed names' token sequences. The
/// first step is calibrated: each name's logit minus its logit for a
/// content-free request ("Calibrate Before Use", Zhao et al. 2021), since a
/// small model otherwise prefers some names whatever the request says.
fn constrained_pick(
    st: &mut State,
    prefix: &[Token],
    prompt: &[Token],
    names: Vec<(String, Vec<Token>)>,
    baseline: &[f32],
) -> Result<Classified, OrchError> {
    let logits = feed_prompt(st, prefix, prompt)?;
    let scores: Vec<(String, f32)> =
        names.iter().zip(baseline).map(|((n, t), b)| (n.clone(), token_logit(logits, t[0]) - b)).collect();
    // Highest calibrated score; ties go to the earlier name.
    let first = scores
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| a.1.total_cmp(&b.1).then(j.cmp(i)))
        .map(|(i, _)| names[i].1[0])
        .ok_or_else(|| OrchError::Classify("no candidates".into()))?;
    let mut alive: Vec<(String, Vec<Token>)> = names.into_iter().filter(|(_, t)| t[0] == first).collect();
    let mut step = 1;
    loop {
        // A name that ends here beats longer names sharing its prefix: the
        // shorter answer is complete.
        if let Some(done) = alive.iter().find(|(_, t)| t.len() == step) {
            return Ok(Classified { role: done.0.clone(), scores });
        }
        if alive.len() == 1 {
            return Ok(Classified { role: alive.remove(0).0, scores });
        }
        let prev = alive[0].1[step - 1];
        let logits = feed(&mut st.scorer, &[prev], prompt.len() + step - 1)?;
        let best = alive
            .iter()
            .map(|(_, t)| t[step])
            .max_by(|&a, &b| token_logit(logits, a).total_cmp(&token_logit(logits, b)).then(b.cmp(&a)))
            .ok_or_else(|| OrchError::Classify("no candidates".into()))?;
        alive.retain(|(_, t)| t[step] == best);
        step += 1;
    }
}
