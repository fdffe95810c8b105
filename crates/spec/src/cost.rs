//! Picks the draft source and length that maximise expected tokens/second.
//!
//! For a draft of length `d` with per-position acceptance `a_1..a_d`
//! (conditional on the earlier ones being accepted), the expected number of
//! emitted tokens is `1 + Σ_{i=1..d} Π_{j<=i} a_j` (the target always emits
//! one token of its own), and the step costs `c(d+1) + draft(d)`, where
//! `c(k)` is the measured time to verify a batch of `k` tokens. Plain
//! decoding (`d = 0`) yields `1 / c(1)` tokens per second; a plan is only
//! ever chosen over it when strictly faster.

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

/// A source able to draft this step, and how many tokens it can offer
/// (e.g. lookup may only have a short continuation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    pub source: DraftSourceId,
    pub available: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CostModel {
    /// `verify[k-1] = c(k)` in seconds.
    verify: Vec<f64>,
    /// Seconds per drafted token, per source (0 for lookup-style sources).
    draft_per_token: [f64; DraftSourceId::COUNT],
}

fn valid_cost(c: f64) -> bool {
    c.is_finite() && c > 0.0
}

impl CostModel {
    /// `verify_costs[k-1]` is `c(k)`; needs at least `c(1)`, all finite and
    /// positive. Drafts are capped at `verify_costs.len() - 1` tokens: a
    /// batch size that was never measured is never planned.
    pub fn new(verify_costs: Vec<f64>) -> Result<Self, SpecError> {
        if verify_costs.is_empty() || !verify_costs.iter().all(|&c| valid_cost(c)) {
            return Err(SpecError::InvalidCost("verify costs must be non-empty, finite and positive"));
        }
        Ok(Self { verify: verify_costs, draft_per_token: [0.0; DraftSourceId::COUNT] })
    }

    pub fn from_curve(curve: &CostCurve) -> Result<Self, SpecError> {
        Self::new(curve.costs.clone())
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

    /// `c(k)`, if measured.
    pub fn verify_cost(&self, k: usize) -> Option<f64> {
        self.verify.get(k.checked_sub(1)?).copied()
    }

    /// The plain-decoding plan: one token per `c(1)`.
    pub fn plain(&self) -> Plan {
        let c1 = self.verify.first().copied().unwrap_or(f64::INFINITY);
        Plan { source: None, k: 0, expected_tokens: 1.0, expected_tokens_per_sec: 1.0 / c1 }
    }

    /// Best draft length for one source given its per-position acceptance
    /// `rates` (index 0 = position 1), or plain decoding if nothing beats it.
    pub fn plan_for(&self, rates: &[f64], draft_per_token: f64, max_k: usize) -> Plan {
        let mut best = self.plain();
        let max_d = max_k.min(rates.len()).min(MAX_DRAFT).min(self.verify.len().saturating_sub(1));
        let (mut survive, mut expected) = (1.0, 1.0);
        for (i, &a) in rates[..max_d].iter().enumerate() {
            let d = i + 1;
            survive *= if a.is_finite() { a.clamp(0.0, 1.0) } else { 0.0 };
            expected += survive;
            let cost = self.verify[d] + draft_per_token * d as f64;
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

    /// Best plan across `offers`, including plain decoding.
    pub fn choose_best(&self, stats: &AcceptanceStats, offers: &[Offer]) -> Plan {
        offers.iter().map(|o| self.choose(stats, o.source, o.available)).fold(self.plain(), |best, p| {
            if p.expected_tokens_per_sec > best.expected_tokens_per_sec {
                p
            } else {
                best
            }
        })
    }
}

#[cfg(test)]
#[path = "cost_tests.rs"]
mod tests;
