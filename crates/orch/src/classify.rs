//! The front door's classifier: a short prompt to a small model, answered
//! with one role name chosen greedily among the allowed names only.
//!
//! The answer is constrained with a trie over the names' tokens: at each
//! step only tokens that continue some allowed name compete, and the one
//! with the highest logit wins (ties: the lower token id). Usually the
//! first token already singles out one name, so a classification costs one
//! prefill. It has its own small context, so it never waits behind a
//! generation on the same model.

use std::sync::{Arc, Mutex};

use augur_engine::{Batch, ChatMessage, Context, ContextParams, Model};
use augur_sampling::Token;

use crate::route::{Classified, Classify};
use crate::OrchError;

/// Characters of the request the classifier reads: enough to tell a task's
/// kind, and it keeps the prompt well inside the small context.
const MAX_TEXT_CHARS: usize = 1500;
const CTX_TOKENS: u32 = 2048;

pub struct ModelClassifier {
    model: Arc<Model>,
    state: Mutex<(Context, Batch)>,
}

impl ModelClassifier {
    pub fn new(model: Arc<Model>, threads: Option<i32>) -> Result<ModelClassifier, OrchError> {
        let mut params = ContextParams { n_ctx: CTX_TOKENS, n_batch: CTX_TOKENS, n_ubatch: 512, ..Default::default() };
        if let Some(t) = threads {
            params.threads = t;
            params.threads_batch = t;
        }
        let ctx = Context::new(model.clone(), &params).map_err(|e| OrchError::Classify(e.to_string()))?;
        let batch = Batch::new(CTX_TOKENS as usize, 1).map_err(|e| OrchError::Classify(e.to_string()))?;
        Ok(ModelClassifier { model, state: Mutex::new((ctx, batch)) })
    }

    fn prompt(&self, text: &str, roles: &[(String, String)]) -> Result<Vec<Token>, OrchError> {
        let list: String = roles.iter().map(|(n, d)| format!("- {n}: {d}\n")).collect();
        let names: Vec<&str> = roles.iter().map(|(n, _)| n.as_str()).collect();
        let clipped: String = text.chars().take(MAX_TEXT_CHARS).collect();
        let content = format!(
            "Pick the team member who should handle the request below.\nTeam:\n{list}\nRequest:\n\"\"\"\n{clipped}\n\"\"\"\n\nAnswer with exactly one of: {}.",
            names.join(", ")
        );
        let msg = ChatMessage { role: "user".into(), content, name: None, tool_calls: None, tool_call_id: None };
        let rendered = self.model.render_chat(&[msg], true).map_err(|e| OrchError::Classify(e.to_string()))?;
        self.model.tokenize(&rendered, true, true).map_err(|e| OrchError::Classify(e.to_string()))
    }
}

impl Classify for ModelClassifier {
    fn classify(&self, text: &str, roles: &[(String, String)]) -> Result<Classified, OrchError> {
        if roles.is_empty() {
            return Err(OrchError::Classify("no roles to choose from".into()));
        }
        let prompt = self.prompt(text, roles)?;
        let mut names = Vec::with_capacity(roles.len());
        for (n, _) in roles {
            let toks = self.model.tokenize(n, false, false).map_err(|e| OrchError::Classify(e.to_string()))?;
            names.push((n.clone(), toks));
        }
        let mut guard = self.state.lock().map_err(|_| OrchError::Classify("classifier state poisoned".into()))?;
        let (ctx, batch) = &mut *guard;
        ctx.kv_clear();
        let out = constrained_pick(ctx, batch, &prompt, names);
        ctx.kv_clear();
        out
    }
}

fn decode_err(e: augur_engine::EngineError) -> OrchError {
    OrchError::Classify(e.to_string())
}

/// Decode `tokens` at positions from `pos`; logits for the last one only.
fn feed(ctx: &mut Context, batch: &mut Batch, tokens: &[Token], pos: usize) -> Result<(), OrchError> {
    if pos + tokens.len() >= ctx.n_ctx() as usize {
        return Err(OrchError::Classify(format!("prompt of {} tokens does not fit the classifier", tokens.len())));
    }
    batch.clear();
    for (i, &t) in tokens.iter().enumerate() {
        let p = i32::try_from(pos + i).map_err(|_| OrchError::Classify("position overflow".into()))?;
        batch.add(t, p, &[0], i + 1 == tokens.len()).map_err(decode_err)?;
    }
    ctx.decode(batch).map_err(decode_err)?;
    Ok(())
}

/// Greedy decoding restricted to the allowed names' token sequences.
fn constrained_pick(
    ctx: &mut Context,
    batch: &mut Batch,
    prompt: &[Token],
    mut alive: Vec<(String, Vec<Token>)>,
) -> Result<Classified, OrchError> {
    feed(ctx, batch, prompt, 0)?;
    let mut scores = Vec::new();
    let mut step = 0;
    loop {
        let logits = ctx.logits(0).ok_or_else(|| OrchError::Classify("no logits".into()))?;
        let logit = |t: Token| usize::try_from(t).ok().and_then(|i| logits.get(i)).copied().unwrap_or(f32::MIN);
        if step == 0 {
            scores = alive.iter().map(|(n, t)| (n.clone(), t.first().map_or(f32::MIN, |&x| logit(x)))).collect();
        }
        // A name that ends here beats longer names sharing its prefix: the
        // shorter answer is complete.
        if let Some(done) = alive.iter().find(|(_, t)| t.len() == step) {
            return Ok(Classified { role: done.0.clone(), scores });
        }
        let best = alive
            .iter()
            .map(|(_, t)| t[step])
            .max_by(|&a, &b| logit(a).total_cmp(&logit(b)).then(b.cmp(&a)))
            .ok_or_else(|| OrchError::Classify("no candidates".into()))?;
        alive.retain(|(_, t)| t[step] == best);
        if alive.len() == 1 {
            return Ok(Classified { role: alive.remove(0).0, scores });
        }
        feed(ctx, batch, &[best], prompt.len() + step)?;
        step += 1;
    }
}
