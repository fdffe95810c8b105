//! Correcting a source's acceptance estimates from what the target does,
//! and observing sources for free on the steps they did not draft.

use crate::suffix::SuffixDraft;
use crate::{Token, MAX_DRAFT};

/// A factor on a source's per-position acceptance estimates, learnt from
/// how many tokens the target accepted against how many the scaled
/// estimates predicted. Below one it says the estimates overstate here
/// (count ratios from few occurrences; statistics learnt on other kinds of
/// request), above one that they understate.
#[derive(Clone, Debug)]
pub struct Trust {
    prior: f64,
    trust: f64,
    steps: u32,
    rates: [f64; MAX_DRAFT],
    /// Predicted accepted tokens of each prefix length of the last scaling.
    predicted: [f64; MAX_DRAFT + 1],
    /// Positions in the last scaling.
    scaled: usize,
    planned: usize,
}

/// Never plan on certainty: the target can always disagree.
pub const RATE_CAP: f64 = 0.98;
/// Shortest context match a suffix draft is planned from. One token is
/// enough: after a value the request just wrote, a format resumes from a
/// short match, and the count ratios with the trusts (per tree, learnt from
/// watched proposals) judge how far such a draft holds.
pub const SUFFIX_MIN_MATCH: usize = 1;
/// How much of a trust applies to a suffix draft's position `i` whose
/// context occurred `support` times. The first position takes all of it:
/// whether the pattern applies here at all is what the trust learns. Later
/// positions follow a pattern the request has just taken up; their count
/// ratios are as good as the observations behind them, so a ratio of 1 from
/// a context seen many times (a repeated format) needs little correction,
/// and one from a single occurrence (a phrase that recurs by chance) the
/// full one at every step.
pub fn suffix_weight(i: usize, support: u32) -> f64 {
    if i == 0 {
        1.0
    } else {
        1.0 / f64::from(support.max(1))
    }
}

/// Bounds on the factor, so a run of luck or bad luck is undone quickly.
const TRUST_RANGE: (f64, f64) = (0.05, 1.25);

impl Trust {
    /// `prior` is the factor before any observation.
    pub fn new(prior: f64) -> Self {
        let prior = prior.clamp(TRUST_RANGE.0, TRUST_RANGE.1);
        Self {
            prior,
            trust: prior,
            steps: 0,
            rates: [0.0; MAX_DRAFT],
            predicted: [0.0; MAX_DRAFT + 1],
            scaled: 0,
            planned: 0,
        }
    }

    /// Forget what was learnt (a new request).
    pub fn reset(&mut self) {
        *self = Self::new(self.prior);
    }

    pub fn value(&self) -> f64 {
        self.trust
    }

    /// Scale conditional acceptance rates (index 0 = draft position 1).
    pub fn scale(&mut self, cond: impl IntoIterator<Item = f64>) -> &[f64] {
        self.scale_weighted(cond.into_iter().map(|c| (c, 1.0)))
    }

    /// Scale conditional rates, each by the trust raised to its weight in
    /// [0, 1]: a weight below one says that position's estimate needs less
    /// correction.
    pub fn scale_weighted(&mut self, cond: impl IntoIterator<Item = (f64, f64)>) -> &[f64] {
        let mut reach = 1.0f64;
        let mut n = 0;
        for (i, (c, w)) in cond.into_iter().take(MAX_DRAFT).enumerate() {
            let c = if c.is_finite() { c.clamp(0.0, 1.0) } else { 0.0 };
            let w = if w.is_finite() { w.clamp(0.0, 1.0) } else { 1.0 };
            self.rates[i] = (c * self.trust.powf(w)).min(RATE_CAP);
            reach *= self.rates[i];
            self.predicted[i + 1] = self.predicted[i] + reach;
            n = i + 1;
        }
        self.scaled = n;
        &self.rates[..n]
    }

    /// Scaled rates for a suffix draft: its cumulative count-ratio
    /// probabilities turned into conditional ones, each position after the
    /// first weighted by [`suffix_weight`].
    pub fn scale_suffix(&mut self, draft: &SuffixDraft) -> &[f64] {
        let n = if draft.match_len < SUFFIX_MIN_MATCH { 0 } else { draft.probs.len() };
        let mut prev = 1.0f64;
        let cond = draft.probs[..n].iter().enumerate().map(move |(i, &p)| {
            let p = f64::from(p);
            let c = if prev > 0.0 { p / prev } else { 0.0 };
            prev = p;
            (c, suffix_weight(i, draft.support.get(i).copied().unwrap_or(1)))
        });
        self.scale_weighted(cond)
    }

    /// The rates of the last scaling.
    pub fn rates(&self) -> &[f64] {
        &self.rates[..self.scaled]
    }

    /// Expected accepted tokens of the first `n` tokens of the last scaling.
    pub fn predicted(&self, n: usize) -> f64 {
        self.predicted[n.min(MAX_DRAFT)]
    }

    /// The draft length the plan took from the last scaling.
    pub fn planned(&mut self, k: usize) {
        self.planned = k;
    }

    /// A verified draft of the planned length: `accepted` of `drafted`.
    /// A draft cut after planning (by a grammar) says nothing.
    pub fn observe(&mut self, drafted: usize, accepted: usize) {
        if let Some(predicted) = self.planned_prediction(drafted) {
            self.learn(predicted, accepted);
        }
    }

    /// What the last scaling predicted of a verified draft of `drafted`
    /// tokens, if that is the planned length.
    pub fn planned_prediction(&self, drafted: usize) -> Option<f64> {
        (drafted > 0 && drafted == self.planned).then(|| self.predicted(drafted))
    }

    /// Move the factor towards observed / predicted; early observations
    /// move it most, like a posterior mean with the prior worth two.
    pub fn learn(&mut self, predicted: f64, accepted: usize) {
        let ratio = ((accepted as f64 + 0.5) / (predicted.max(0.0) + 0.5)).clamp(0.0, 1.5);
        let w = (1.0 / (f64::from(self.steps) + 3.0)).max(0.05);
        self.steps = self.steps.saturating_add(1);
        self.trust = (self.trust + w * (ratio - 1.0) * self.trust).clamp(TRUST_RANGE.0, TRUST_RANGE.1);
    }
}

/// A proposal that was not verified, checked against the tokens the target
/// then chose. The target accepts a drafted token exactly when it equals its
/// own choice at that position (greedy, or the seeded sample at T > 0), so
/// this observes what verifying the draft would have accepted, at no cost,
/// position by position as the tokens arrive. A draft verified in part
/// watches only the rest: when the verified part is accepted, the target's
/// own next token says whether the next drafted one would have been.
#[derive(Clone, Debug)]
pub struct Shadow {
    tokens: [Token; MAX_DRAFT],
    /// The estimated conditional acceptance of each position, when started.
    rates: [f64; MAX_DRAFT],
    len: usize,
    matched: usize,
    /// Positions a real verify observes; not reported.
    skip: usize,
}

/// Positions `from + 1 ..= from + drafted` resolved: the first `accepted`
/// would have been accepted and, if `accepted < drafted`, the next one
/// rejected. `predicted` is what the estimates expected of them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShadowOutcome {
    pub from: usize,
    pub drafted: usize,
    pub accepted: usize,
    pub predicted: f64,
}

impl Default for Shadow {
    fn default() -> Self {
        Self { tokens: [0; MAX_DRAFT], rates: [0.0; MAX_DRAFT], len: 0, matched: 0, skip: 0 }
    }
}

impl Shadow {
    pub fn is_active(&self) -> bool {
        self.len > 0
    }

    /// Watch `draft`, whose positions the estimates gave conditional
    /// acceptance `rates` (missing ones count as 0), reporting positions
    /// past the first `skip` only.
    pub fn start(&mut self, draft: &[Token], rates: &[f64], skip: usize) {
        let n = draft.len().min(MAX_DRAFT);
        self.tokens[..n].copy_from_slice(&draft[..n]);
        for (i, r) in self.rates[..n].iter_mut().enumerate() {
            *r = rates.get(i).copied().unwrap_or(0.0);
        }
        self.len = n;
        self.matched = 0;
        self.skip = skip;
    }

    /// Feed the tokens the target committed since the last call; what they
    /// resolved, if anything. The watch ends at the first mismatch or the
    /// draft's end.
    pub fn advance(&mut self, committed: &[Token]) -> Option<ShadowOutcome> {
        let from = self.matched;
        let mut failed = false;
        for &t in committed {
            if self.matched == self.len {
                break;
            }
            if self.tokens[self.matched] != t {
                failed = true;
                break;
            }
            self.matched += 1;
        }
        let resolved = self.matched + usize::from(failed);
        let from = from.max(self.skip);
        let out = (resolved > from).then(|| ShadowOutcome {
            from,
            drafted: resolved - from,
            accepted: self.matched.saturating_sub(from),
            predicted: self.rates[from..resolved].iter().sum(),
        });
        if failed || self.matched == self.len {
            self.stop();
        }
        out
    }

    /// Stop watching (a real draft from the same source takes over).
    pub fn stop(&mut self) {
        self.len = 0;
        self.matched = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(probs: &[f32], match_len: usize) -> SuffixDraft {
        SuffixDraft {
            tokens: (0..probs.len() as Token).collect(),
            probs: probs.to_vec(),
            support: vec![1; probs.len()],
            match_len,
            score: probs.iter().sum(),
        }
    }

    #[test]
    fn rates_are_conditional_probabilities_times_trust() {
        let mut t = Trust::new(0.8);
        let r = t.scale_suffix(&draft(&[1.0, 0.5, 0.25], 8)).to_vec();
        let want = [0.8, 0.4, 0.4];
        assert_eq!(r.len(), 3);
        assert!(r.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{r:?}");
        assert!((t.predicted(2) - (0.8 + 0.8 * 0.4)).abs() < 1e-12);
        // However trusted, never certain.
        let mut sure = Trust::new(1.2);
        assert_eq!(sure.scale_suffix(&draft(&[1.0], 8)), [RATE_CAP]);
        assert_eq!(sure.scale([0.9, f64::NAN]), [RATE_CAP, 0.0]);
        // Too short a match is not planned on.
        assert!(t.scale_suffix(&draft(&[1.0, 1.0], SUFFIX_MIN_MATCH - 1)).is_empty());
    }

    /// Past the first position, a ratio backed by many occurrences is
    /// scaled by little of the trust; one from a single occurrence by all
    /// of it, at every position.
    #[test]
    fn well_supported_positions_need_less_correction() {
        let mut t = Trust::new(0.5);
        let mut d = draft(&[1.0, 1.0, 1.0], 8);
        assert_eq!(t.scale_suffix(&d), [0.5, 0.5, 0.5]);
        d.support = vec![10, 10, 20];
        let r = t.scale_suffix(&d).to_vec();
        assert_eq!(r[0], 0.5, "whether the pattern applies takes the whole trust");
        assert!((r[1] - 0.5f64.powf(0.1)).abs() < 1e-12 && (r[2] - 0.5f64.powf(0.05)).abs() < 1e-12, "{r:?}");
        assert!(t.predicted(3) > 1.3);
        assert_eq!(suffix_weight(0, 1000), 1.0);
        assert_eq!(suffix_weight(3, 0), 1.0);
    }

    #[test]
    fn trust_follows_what_the_target_accepts() {
        let mut bad = Trust::new(0.8);
        for _ in 0..5 {
            bad.scale([1.0, 1.0, 1.0]);
            bad.planned(3);
            bad.observe(3, 0);
        }
        assert!(bad.value() < 0.4, "{}", bad.value());
        let mut good = Trust::new(0.8);
        for _ in 0..5 {
            good.scale([1.0, 1.0, 1.0]);
            good.planned(3);
            good.observe(3, 3);
        }
        assert!(good.value() > 0.8, "{}", good.value());
        // A draft cut after planning (by a grammar) says nothing.
        let before = good.value();
        good.planned(3);
        good.observe(2, 0);
        assert_eq!(good.value(), before);
        good.reset();
        assert_eq!(good.value(), 0.8);
    }

    /// Summed over its outcomes, a shadow observes what verifying its
    /// draft against the committed tokens would have accepted, however the
    /// tokens arrive in steps: checked against a brute-force prefix match.
    #[test]
    fn shadow_equals_verification_of_the_same_draft() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % m) as Token
        };
        for _ in 0..2000 {
            let n = 1 + next(6) as usize;
            let drafted: Vec<Token> = (0..n).map(|_| next(3)).collect();
            let actual: Vec<Token> = (0..n + 4).map(|_| next(3)).collect();
            let want = drafted.iter().zip(&actual).take_while(|(a, b)| a == b).count();
            let rates: Vec<f64> = (0..n).map(|i| 0.1 * (i + 1) as f64).collect();
            let mut s = Shadow::default();
            s.start(&drafted, &rates, 0);
            let (mut at, mut resolved, mut accepted, mut predicted) = (0, 0, 0, 0.0);
            while s.is_active() && at < actual.len() {
                let step = (1 + next(3) as usize).min(actual.len() - at);
                if let Some(o) = s.advance(&actual[at..at + step]) {
                    assert_eq!(o.from, resolved, "outcomes are contiguous");
                    assert!(o.accepted == o.drafted || !s.is_active(), "a rejection ends the watch");
                    resolved += o.drafted;
                    accepted += o.accepted;
                    predicted += o.predicted;
                }
                at += step;
            }
            assert!(!s.is_active(), "a draft of at most 6 tokens resolves within 10 committed tokens");
            assert_eq!(accepted, want, "{drafted:?} vs {actual:?}");
            assert_eq!(resolved, (want + 1).min(n));
            let expect: f64 = rates[..resolved].iter().sum();
            assert!((predicted - expect).abs() < 1e-12);
            assert_eq!(s.advance(&actual), None);
        }
    }

    #[test]
    fn a_stopped_shadow_observes_nothing_more() {
        let mut s = Shadow::default();
        s.start(&[5, 6, 7, 8], &[0.5; 4], 0);
        assert_eq!(s.advance(&[5, 6]), Some(ShadowOutcome { from: 0, drafted: 2, accepted: 2, predicted: 1.0 }));
        assert_eq!(s.advance(&[]), None);
        s.stop();
        assert!(!s.is_active());
        assert_eq!(s.advance(&[7]), None);
    }

    /// Past a verified part: only the positions after it are reported.
    #[test]
    fn a_partly_verified_draft_reports_its_tail() {
        let mut s = Shadow::default();
        s.start(&[5, 6, 7, 8], &[0.5; 4], 2);
        // The verify accepted both drafted tokens, then the target chose 7.
        assert_eq!(s.advance(&[5, 6, 7]), Some(ShadowOutcome { from: 2, drafted: 1, accepted: 1, predicted: 0.5 }));
        assert_eq!(s.advance(&[9]), Some(ShadowOutcome { from: 3, drafted: 1, accepted: 0, predicted: 0.5 }));
        assert!(!s.is_active());
        // A rejection inside the verified part is the verify's to record.
        s.start(&[5, 6, 7, 8], &[0.5; 4], 2);
        assert_eq!(s.advance(&[5, 1]), None);
        assert!(!s.is_active());
    }
}
