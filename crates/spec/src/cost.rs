//! Picks the draft source and length that maximise expected tokens/second.
//!
//! For a draft of length `d` with per-position acceptance `a_1..a_d`
//! (conditional on the earlier ones being accepted), the expected number of
//! emitted tokens is `1 + Σ_{i=1..d} Π_{j<=i} a_j` (the target always emits
//! one token of its own). The verifier decodes `[pending, draft…]` in chunks
//! of at most the batch-invariant size `C` and stops at the first rejected
//! token, so chunk `i` (rows `i·C..`) runs only when the `i·C` draft tokens
//! before it were all accepted: the step is expected to cost
//! `Σ_i P(first i·C accepted) · e(size of chunk i) + draft(d)`, where `e(j)`
//! is the time to decode a chunk of `j` rows. Plain decoding (`d = 0`) yields
//! `1 / e(1)` tokens per second; a plan is only ever chosen over it when
//! strictly faster.
//!
//! `e(j)` is the calibrated curve times one speed factor, a running average
//! of observed over calibrated decode times (any chunk size), so load on the
//! machine, or a long context, moves every size alike. Moving only the sizes
//! that happen to be observed would skew the curve: plain decoding observes
//! only `e(1)`, and a rising `e(1)` beside a stale `e(2)` would make a draft
//! look cheaper than it is.

use crate::curve::CostCurve;
use crate::drafter::DraftSourceId;
use crate::stats::AcceptanceStats;
use crate::{SpecError, MAX_DRAFT};

/// What to do next step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// `None` (and `k == 0`) means plain decoding.
    pub source: Option<DraftSourceId>,
    /// Draft tokens to request.
    pub k: usize,
    /// Expected tokens emitted by the step.
    pub expected_tokens: f64,
    pub expected_tokens_per_sec: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CostModel {
    /// `chunk_cost[j-1]` = calibrated seconds to decode a verify chunk of
    /// `j` rows, `j = 1..=C`.
    chunk_cost: Vec<f64>,
    /// Observed over calibrated decode time, running average (starts at 1).
    speed: f64,
    /// Largest verify batch (rows) ever planned.
    max_rows: usize,
    /// Seconds per drafted token, per source (0 for lookup-style sources).
    draft_per_token: [f64; DraftSourceId::COUNT],
}

/// Weight of one observed decode time in the running chunk costs.
const OBSERVE_WEIGHT: f64 = 0.05;

fn valid_cost(c: f64) -> bool {
    c.is_finite() && c > 0.0
}

impl CostModel {
    /// `verify_costs[k-1]` is `c(k)` for one batch of `k` rows (no
    /// chunking); needs at least `c(1)`, all finite and positive. Drafts are
    /// capped at `verify_costs.len() - 1` tokens: a batch size that was
    /// never measured is never planned.
    pub fn new(verify_costs: Vec<f64>) -> Result<Self, SpecError> {
        let rows = verify_costs.len();
        Self::chunked(verify_costs, rows)
    }

    /// A verifier that decodes chunks of at most `chunk_costs.len()` rows,
    /// `chunk_costs[j-1]` seconds each, for batches of up to `max_rows`.
    pub fn chunked(chunk_costs: Vec<f64>, max_rows: usize) -> Result<Self, SpecError> {
        if chunk_costs.is_empty() || !chunk_costs.iter().all(|&c| valid_cost(c)) {
            return Err(SpecError::InvalidCost("verify costs must be non-empty, finite and positive"));
        }
        let max_rows = max_rows.clamp(1, MAX_DRAFT + 1);
        Ok(Self { chunk_cost: chunk_costs, speed: 1.0, max_rows, draft_per_token: [0.0; DraftSourceId::COUNT] })
    }

    /// The measured chunks of a calibrated curve (measured the way the
    /// verifier decodes: in chunks of the invariant size).
    pub fn from_curve(curve: &CostCurve) -> Result<Self, SpecError> {
        let chunk = curve.invariant_batch.clamp(1, curve.costs.len().max(1));
        let costs = curve.costs.get(..chunk).ok_or(SpecError::InvalidCost("empty cost curve"))?;
        Self::chunked(costs.to_vec(), curve.costs.len())
    }

    /// Sets a source's drafting cost in seconds per token.
    pub fn set_draft_cost(&mut self, source: DraftSourceId, secs: f64) -> Result<(), SpecError> {
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(SpecError::InvalidCost("draft cost must be finite and >= 0"));
        }
        self.draft_per_token[source.index()] = secs;
        Ok(())
    }

    pub fn draft_cost(&self, source: DraftSourceId) -> f64 {
        self.draft_per_token[source.index()]
    }

    /// Most rows a step may verify.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }

    /// Largest chunk the verifier decodes at once.
    pub fn chunk(&self) -> usize {
        self.chunk_cost.len()
    }

    /// A decode of `rows` verify rows took `secs`: fold its ratio to the
    /// calibrated time into the speed factor. Sizes outside the chunk and
    /// nonsense times are ignored.
    pub fn observe(&mut self, rows: usize, secs: f64) {
        let Some(&c) = rows.checked_sub(1).and_then(|i| self.chunk_cost.get(i)) else { return };
        if valid_cost(secs) {
            self.speed += OBSERVE_WEIGHT * (secs / c - self.speed);
        }
    }

    /// Current seconds for a chunk of `rows` (1..=C) rows.
    fn chunk_secs(&self, rows: usize) -> f64 {
        self.chunk_cost[rows - 1] * self.speed
    }

    /// Time to verify all of `k` rows (every chunk decoded), if `k` is
    /// within the planned range.
    pub fn verify_cost(&self, k: usize) -> Option<f64> {
        (1..=self.max_rows).contains(&k).then(|| self.cost_of_rows(k, |_| 1.0))
    }

    /// Expected cost of `rows` verify rows when chunk `i` runs with
    /// probability `reach(i·C)` (the chance the first `i·C` drafted tokens
    /// were accepted).
    pub(crate) fn cost_of_rows(&self, rows: usize, reach: impl Fn(usize) -> f64) -> f64 {
        let c = self.chunk();
        (0..rows.div_ceil(c))
            .map(|i| {
                let size = (rows - i * c).min(c);
                reach(i * c) * self.chunk_secs(size)
            })
            .sum()
    }

    /// The plain-decoding plan: one token per `e(1)`.
    pub fn plain(&self) -> Plan {
        let c1 = self.chunk_secs(1);
        Plan { source: None, k: 0, expected_tokens: 1.0, expected_tokens_per_sec: 1.0 / c1 }
    }

    /// Best draft length for one source given its per-position acceptance
    /// `rates` (index 0 = position 1), or plain decoding if nothing beats it.
    pub fn plan_for(&self, rates: &[f64], draft_per_token: f64, max_k: usize) -> Plan {
        let mut best = self.plain();
        let max_d = max_k.min(rates.len()).min(MAX_DRAFT).min(self.max_rows.saturating_sub(1));
        // survive[i] = P(the first i drafted tokens are all accepted).
        let mut survive = [1.0f64; MAX_DRAFT + 1];
        for (i, &a) in rates[..max_d].iter().enumerate() {
            let a = if a.is_finite() { a.clamp(0.0, 1.0) } else { 0.0 };
            survive[i + 1] = survive[i] * a;
        }
        let mut expected = 1.0;
        for d in 1..=max_d {
            expected += survive[d];
            let cost = self.cost_of_rows(d + 1, |i| survive[i]) + draft_per_token * d as f64;
            let rate = expected / cost;
            if rate > best.expected_tokens_per_sec {
                best = Plan { source: None, k: d, expected_tokens: expected, expected_tokens_per_sec: rate };
            }
        }
        best
    }

    /// Best plan drafting from `source` (at most `max_k` tokens).
    pub fn choose(&self, stats: &AcceptanceStats, source: DraftSourceId, max_k: usize) -> Plan {
        let plan = self.plan_for(stats.rates(source), self.draft_cost(source), max_k);
        Plan { source: (plan.k > 0).then_some(source), ..plan }
    }
}

#[cfg(test)]
#[path = "cost_tests.rs"]
mod tests;
