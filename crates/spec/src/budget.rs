//! A request's account of what speculation has won and lost, which bounds
//! how much it may still lose.
//!
//! The cost model drafts where the *estimated* acceptance pays; estimates
//! from priors or from other requests can be wrong for this one, and a cold
//! process has nothing better. The budget makes "never slower" hold
//! whatever the estimates say: a step may only risk (lose, if its first
//! drafted token is rejected) what the request has already won, plus a
//! small seed and a share of the plain decoding time so far. A request
//! whose drafts keep failing then stops drafting within a step or two, and
//! one whose drafts pay funds longer ones.
//!
//! Amounts are in plain decode steps (one target decode of one row), so
//! the account does not drift with the machine's speed.

use crate::cost::CostModel;

/// What a request may lose before its first win: about one rejected
/// one-token draft on a machine where two rows cost 1.7 single ones.
pub const SEED_STEPS: f64 = 0.8;
/// The share of plain decoding time a request may lose overall, beyond the
/// seed.
pub const LOSS_SHARE: f64 = 0.02;

#[derive(Clone, Debug)]
pub struct RiskBudget {
    seed: f64,
    share: f64,
    /// Tokens produced minus steps spent (positive: ahead of plain).
    balance: f64,
    /// Tokens produced so far: plain decoding's time for them, in steps.
    produced: f64,
}

impl Default for RiskBudget {
    fn default() -> Self {
        Self::new(SEED_STEPS, LOSS_SHARE)
    }
}

impl RiskBudget {
    pub fn new(seed: f64, share: f64) -> Self {
        let finite = |x: f64| if x.is_finite() { x.max(0.0) } else { 0.0 };
        Self { seed: finite(seed), share: finite(share), balance: 0.0, produced: 0.0 }
    }

    /// A new request.
    pub fn reset(&mut self) {
        *self = Self::new(self.seed, self.share);
    }

    /// What a step may still lose, in plain steps.
    pub fn available(&self) -> f64 {
        self.seed + self.share * self.produced + self.balance
    }

    /// Whether a step whose worst case takes `worst_steps` plain steps (and
    /// produces one token) fits.
    pub fn allows(&self, worst_steps: f64) -> bool {
        worst_steps.is_finite() && worst_steps - 1.0 <= self.available() + 1e-9
    }

    /// A step took `steps` plain steps and produced `produced` tokens.
    pub fn settle(&mut self, steps: f64, produced: usize) {
        if steps.is_finite() {
            self.balance += produced as f64 - steps;
            self.produced += produced as f64;
        }
    }

    /// Tokens ahead of plain decoding (negative: behind).
    pub fn balance(&self) -> f64 {
        self.balance
    }
}

impl CostModel {
    /// Seconds of a step that drafts `k` tokens (at `draft_per_token`
    /// each) and whose first drafted token is rejected: only the first
    /// verify chunk runs.
    pub fn worst_case_secs(&self, k: usize, draft_per_token: f64) -> f64 {
        self.step_secs(k, 0, draft_per_token)
    }

    /// Seconds of a step that drafted `drafted` tokens of which the target
    /// accepted `accepted`: every chunk up to the first with a rejected row.
    pub fn step_secs(&self, drafted: usize, accepted: usize, draft_per_token: f64) -> f64 {
        let rows = (drafted + 1).min(self.max_rows());
        let verify = self.cost_of_rows(rows, |i| if i <= accepted { 1.0 } else { 0.0 });
        verify + draft_per_token.max(0.0) * drafted as f64
    }

    /// Seconds of one plain step.
    pub fn plain_secs(&self) -> f64 {
        1.0 / self.plain().expected_tokens_per_sec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn model() -> CostModel {
        // Chunks of three rows: 1, 1.75 and 2.3 single decodes.
        CostModel::chunked(vec![0.04, 0.07, 0.092], 64).unwrap()
    }

    #[test]
    fn a_rejected_draft_costs_only_its_first_chunk() {
        let m = model();
        assert!((m.worst_case_secs(1, 0.0) - 0.07).abs() < 1e-12);
        assert!((m.worst_case_secs(10, 0.0) - 0.092).abs() < 1e-12);
        // Accepted through the first chunk: the second runs too.
        assert!((m.step_secs(5, 3, 0.0) - (0.092 + 0.092)).abs() < 1e-12);
        assert!((m.step_secs(4, 4, 0.01) - (0.092 + 0.07 + 0.04)).abs() < 1e-12);
    }

    #[test]
    fn failures_stop_drafting_and_wins_fund_it() {
        let m = model();
        let steps = |k, a| m.step_secs(k, a, 0.0) / m.plain_secs();
        let worst = |k| m.worst_case_secs(k, 0.0) / m.plain_secs();
        let mut b = RiskBudget::default();
        assert!(b.allows(worst(1)), "the seed buys one short draft");
        b.settle(steps(1, 0), 1);
        assert!(!b.allows(worst(1)), "after a loss nothing more is risked");
        for _ in 0..30 {
            b.settle(1.0, 1);
        }
        assert!(!b.allows(worst(1)));
        for _ in 0..10 {
            b.settle(1.0, 1);
        }
        assert!(b.allows(worst(1)), "plain tokens earn a share back");
        b.settle(steps(2, 2), 3);
        assert!(b.balance() > -1.0);
        assert!(b.allows(worst(2)), "a win funds a longer draft");
    }

    proptest! {
        /// Whatever the drafts and outcomes, a request that only takes the
        /// steps the budget allows never costs more than plain decoding plus
        /// the seed and the share.
        #[test]
        fn allowed_steps_never_lose_more_than_the_budget(
            steps in proptest::collection::vec((0usize..16, 0usize..17, 0.0f64..0.02), 1..200)
        ) {
            let m = model();
            let mut b = RiskBudget::default();
            let (mut spent, mut produced) = (0.0, 0usize);
            for (k, accepted, draft) in steps {
                let accepted = accepted.min(k);
                let worst = m.worst_case_secs(k, draft) / m.plain_secs();
                let (k, accepted, draft) = if b.allows(worst) { (k, accepted, draft) } else { (0, 0, 0.0) };
                let s = m.step_secs(k, accepted, draft) / m.plain_secs();
                b.settle(s, accepted + 1);
                spent += s;
                produced += accepted + 1;
            }
            let bound = produced as f64 * (1.0 + LOSS_SHARE) + SEED_STEPS;
            prop_assert!(spent <= bound + 1e-6, "spent {spent} for {produced} tokens");
        }
    }
}
