//! The draft-model proposer: a small model with the target's vocabulary,
//! drafting greedily in its own context.

use std::sync::Arc;
use std::time::{Duration, Instant};

use augur_engine::{Batch, Context, ContextParams, Model};
use augur_sampling::Token;
use augur_spec::{Draft, DraftSourceId, Drafter};

use crate::RuntimeError;

/// A draft model with its own KV cache, kept in sync with the accepted
/// tokens: `kv` mirrors what the cache holds, so after a rejection only the
/// tokens past the common prefix are dropped and re-decoded.
pub struct DraftModel {
    ctx: Context,
    batch: Batch,
    kv: Vec<Token>,
    /// Stop drafting when the draft's own probability of its token falls below.
    min_confidence: f32,
    /// Draft seconds per token, measured at load.
    pub cost_per_token: f64,
    failed: bool,
    /// This request's time in catching up and in drafting.
    times: DraftTimes,
}

/// Where a draft model's time went during one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct DraftTimes {
    /// Decoding committed tokens its cache did not hold.
    pub catch_up: Duration,
    /// Decoding its own draft tokens.
    pub drafting: Duration,
}

impl DraftModel {
    pub fn new(model: Arc<Model>, params: &ContextParams, min_confidence: f32) -> Result<Self, RuntimeError> {
        let ctx = Context::new(model, params)?;
        let batch = Batch::new(params.n_batch as usize, 1)?;
        Ok(Self {
            ctx,
            batch,
            kv: Vec::new(),
            min_confidence,
            cost_per_token: 0.0,
            failed: false,
            times: DraftTimes::default(),
        })
    }

    /// Tokens of `history` its cache does not hold: what the next proposal
    /// must decode before drafting.
    pub fn lag(&self, history: &[Token]) -> usize {
        history.len() - common_prefix(&self.kv, history)
    }

    /// A new request: the cache is kept (the next sync re-decodes only what
    /// differs), and a failure of the last request is forgotten.
    pub fn begin_request(&mut self) {
        self.failed = false;
        self.times = DraftTimes::default();
    }

    /// Time spent since the request began.
    pub fn times(&self) -> DraftTimes {
        self.times
    }

    pub fn model(&self) -> &Arc<Model> {
        self.ctx.model()
    }

    /// Measure the draft model's single-token decode cost.
    pub fn calibrate(&mut self) -> Result<(), RuntimeError> {
        let probe: Vec<Token> = (0..16).map(|i| 100 + i).collect();
        self.sync(&probe)?;
        let mut best = f64::INFINITY;
        for i in 0..4 {
            self.batch.clear();
            self.batch.add(probe[i], (probe.len() + i) as i32, &[0], true)?;
            best = best.min(self.ctx.decode(&self.batch)?.elapsed.as_secs_f64());
        }
        self.reset_cache();
        self.cost_per_token = best;
        Ok(())
    }

    fn reset_cache(&mut self) {
        self.ctx.kv_clear();
        self.kv.clear();
    }

    /// Make the cache hold `history[..len-1]` and decode the last token, so
    /// the logits at batch index `last` predict what follows `history`.
    fn sync(&mut self, history: &[Token]) -> Result<usize, RuntimeError> {
        let keep = common_prefix(&self.kv, history).min(history.len().saturating_sub(1));
        self.ctx.kv_remove(0, keep as i32, -1)?;
        self.kv.truncate(keep);
        let rest = &history[keep..];
        let last = crate::generate::prefill(&mut self.ctx, &mut self.batch, rest, keep)?;
        self.kv.extend_from_slice(rest);
        Ok(last)
    }

    fn draft(&mut self, history: &[Token], max_len: usize, out: &mut Draft) -> Result<(), RuntimeError> {
        let start = Instant::now();
        let last = self.sync(history)?;
        let synced = Instant::now();
        self.times.catch_up += synced - start;
        let drafted = self.extend(last, max_len, out);
        self.times.drafting += synced.elapsed();
        drafted
    }

    /// Draft greedily from the logits at batch index `last`.
    fn extend(&mut self, mut last: usize, max_len: usize, out: &mut Draft) -> Result<(), RuntimeError> {
        while out.len() < max_len {
            let logits = self.ctx.logits(last).ok_or_else(|| RuntimeError::internal("draft logits"))?;
            let (token, p) = top_with_prob(logits);
            if p < self.min_confidence {
                break;
            }
            let _ = out.push(token);
            if out.len() == max_len {
                break;
            }
            self.batch.clear();
            last = self.batch.add(token, self.kv.len() as i32, &[0], true)?;
            self.ctx.decode(&self.batch)?;
            self.kv.push(token);
        }
        Ok(())
    }
}

impl Drafter for DraftModel {
    fn source(&self) -> DraftSourceId {
        DraftSourceId::DraftModel
    }

    fn propose(&mut self, context: &[Token], max_len: usize, out: &mut Draft) {
        out.clear();
        if self.failed || max_len == 0 || context.is_empty() {
            return;
        }
        if self.draft(context, max_len, out).is_err() {
            // A draft failure must never fail the request: stop drafting.
            out.clear();
            self.reset_cache();
            self.failed = true;
        }
    }

    fn observe(&mut self, _context: &[Token]) {}

    fn reset(&mut self) {
        self.reset_cache();
        self.failed = false;
    }
}

fn common_prefix(a: &[Token], b: &[Token]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Argmax and its softmax probability.
fn top_with_prob(logits: &[f32]) -> (Token, f32) {
    let token = augur_sampling::argmax(logits).unwrap_or(0);
    let max = logits.get(token as usize).copied().unwrap_or(0.0);
    let sum: f32 = logits.iter().filter(|l| l.is_finite()).map(|&l| (l - max).exp()).sum();
    (token, if sum > 0.0 { 1.0 / sum } else { 0.0 })
}
