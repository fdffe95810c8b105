//! Per-source, per-position acceptance statistics.

use serde::{Deserialize, Serialize};

use crate::drafter::DraftSourceId;
use crate::{SpecError, MAX_DRAFT};

/// Belief about an unseen source/position: `a_i = first * decay^(i-1)`.
/// The EWMA starts from this value, so the prior fades as evidence arrives
/// rather than being switched off at the first observation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AcceptancePrior {
    pub first: f64,
    pub decay: f64,
}

impl Default for AcceptancePrior {
    /// Deliberately modest: a new source must earn long drafts.
    fn default() -> Self {
        Self { first: 0.5, decay: 0.9 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsConfig {
    /// Weight of one new observation in the EWMA (0, 1].
    pub alpha: f64,
    pub prior: AcceptancePrior,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self { alpha: 0.05, prior: AcceptancePrior::default() }
    }
}

impl StatsConfig {
    pub fn validate(&self) -> Result<(), SpecError> {
        let unit = |x: f64| (0.0..=1.0).contains(&x);
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(SpecError::InvalidConfig("stats alpha must be in (0, 1]"));
        }
        if !unit(self.prior.first) || !unit(self.prior.decay) {
            return Err(SpecError::InvalidConfig("acceptance prior first and decay must be in [0, 1]"));
        }
        Ok(())
    }
}

/// Plain counters for reporting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCounters {
    /// Verify steps that used this source.
    pub steps: u64,
    pub drafted: u64,
    pub accepted: u64,
}

#[derive(Clone, Debug)]
struct SourceStats {
    /// `rates[i]` estimates P(token i+1 accepted | tokens 1..=i accepted).
    rates: [f64; MAX_DRAFT],
    /// Observations of each position so far.
    seen: [u32; MAX_DRAFT],
    counters: SourceCounters,
}

/// The prior counts as this many observations: early evidence moves a rate
/// like a Beta posterior mean (the first observation a third of the way),
/// later evidence at the EWMA weight, so a source that proves itself in its
/// first few drafts is believed without waiting for dozens.
const PRIOR_WEIGHT: f64 = 2.0;

/// EWMA acceptance rates per draft source and per draft position.
#[derive(Clone, Debug)]
pub struct AcceptanceStats {
    cfg: StatsConfig,
    sources: [SourceStats; DraftSourceId::COUNT],
}

impl AcceptanceStats {
    pub fn new(cfg: StatsConfig) -> Result<Self, SpecError> {
        cfg.validate()?;
        let mut rates = [0.0; MAX_DRAFT];
        let mut a = cfg.prior.first;
        for r in &mut rates {
            *r = a;
            a *= cfg.prior.decay;
        }
        let fresh = SourceStats { rates, seen: [0; MAX_DRAFT], counters: SourceCounters::default() };
        Ok(Self { cfg, sources: std::array::from_fn(|_| fresh.clone()) })
    }

    /// Records one verify step: `accepted` of `drafted` tokens survived.
    /// Positions 1..=accepted saw a success, position accepted+1 a failure;
    /// later positions were not observed (their condition did not hold).
    pub fn record(&mut self, source: DraftSourceId, drafted: usize, accepted: usize) {
        let c = &mut self.sources[source.index()].counters;
        let drafted = drafted.min(MAX_DRAFT);
        let accepted = accepted.min(drafted);
        c.steps += 1;
        c.drafted += drafted as u64;
        c.accepted += accepted as u64;
        self.observe(source, drafted, accepted);
    }

    /// Learns from what verifying a draft accepted, or would have (a
    /// proposal checked against the target's tokens without a verify), but
    /// leaves the counters of real verify steps alone.
    pub fn observe(&mut self, source: DraftSourceId, drafted: usize, accepted: usize) {
        self.observe_from(source, 0, drafted, accepted);
    }

    /// Like `observe`, for draft positions `from + 1 ..= from + drafted`
    /// (the earlier ones were observed accepted before).
    pub fn observe_from(&mut self, source: DraftSourceId, from: usize, drafted: usize, accepted: usize) {
        let alpha = self.cfg.alpha;
        let s = &mut self.sources[source.index()];
        let from = from.min(MAX_DRAFT);
        let drafted = drafted.min(MAX_DRAFT - from);
        let accepted = accepted.min(drafted);
        let weight = |seen: &mut u32| {
            let w = (1.0 / (PRIOR_WEIGHT + f64::from(*seen) + 1.0)).max(alpha);
            *seen = seen.saturating_add(1);
            w
        };
        let (rates, seen) = (&mut s.rates[from..], &mut s.seen[from..]);
        for (r, n) in rates[..accepted].iter_mut().zip(seen.iter_mut()) {
            *r += weight(n) * (1.0 - *r);
        }
        if accepted < drafted {
            let w = weight(&mut seen[accepted]);
            rates[accepted] -= w * rates[accepted];
        }
    }

    /// How often 1-based draft position `pos` of `source` was observed.
    pub fn observations(&self, source: DraftSourceId, pos: usize) -> u32 {
        pos.checked_sub(1).and_then(|i| self.sources[source.index()].seen.get(i)).copied().unwrap_or(0)
    }

    /// Estimated acceptance at 1-based draft position `pos` (0 outside
    /// 1..=MAX_DRAFT).
    pub fn rate(&self, source: DraftSourceId, pos: usize) -> f64 {
        pos.checked_sub(1).and_then(|i| self.rates(source).get(i)).copied().unwrap_or(0.0)
    }

    /// All per-position rates; index 0 is draft position 1.
    pub fn rates(&self, source: DraftSourceId) -> &[f64; MAX_DRAFT] {
        &self.sources[source.index()].rates
    }

    pub fn counters(&self, source: DraftSourceId) -> SourceCounters {
        self.sources[source.index()].counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prior_then_ewma() {
        let mut s = AcceptanceStats::new(StatsConfig { alpha: 0.5, prior: AcceptancePrior { first: 0.5, decay: 0.5 } })
            .unwrap();
        let src = DraftSourceId::Lookup;
        assert_eq!(s.rate(src, 1), 0.5);
        assert_eq!(s.rate(src, 2), 0.25);
        assert_eq!(s.rate(src, 0), 0.0);
        assert_eq!(s.rate(src, 65), 0.0);
        s.record(src, 3, 1);
        assert_eq!(s.rate(src, 1), 0.75); // success
        assert_eq!(s.rate(src, 2), 0.125); // failure
        assert_eq!(s.rate(src, 3), 0.125); // unobserved
        assert_eq!(s.rate(DraftSourceId::DraftModel, 1), 0.5);
        s.record(src, 100, 100);
        assert_eq!(s.counters(src), SourceCounters { steps: 2, drafted: 3 + 64, accepted: 1 + 64 });
        s.record(src, 2, 5); // accepted > drafted is clamped, no panic
    }

    #[test]
    fn converges_to_true_rate() {
        let mut s = AcceptanceStats::new(StatsConfig::default()).unwrap();
        for i in 0..2000 {
            // Position 1 accepted 3 times out of 4.
            s.record(DraftSourceId::Suffix, 1, usize::from(i % 4 != 0));
        }
        assert!((s.rate(DraftSourceId::Suffix, 1) - 0.75).abs() < 0.1);
    }

    /// The first observations move a rate like a Beta posterior mean with
    /// the prior worth two observations; later ones at the EWMA weight.
    #[test]
    fn early_evidence_counts_more() {
        let mut s = AcceptanceStats::new(StatsConfig::default()).unwrap();
        let src = DraftSourceId::Lookup;
        assert_eq!(s.observations(src, 1), 0);
        s.record(src, 1, 1);
        assert!((s.rate(src, 1) - 2.0 / 3.0).abs() < 1e-12, "{}", s.rate(src, 1));
        s.record(src, 1, 1);
        assert!((s.rate(src, 1) - 0.75).abs() < 1e-12);
        s.record(src, 1, 0);
        assert!((s.rate(src, 1) - 0.6).abs() < 1e-12);
        assert_eq!(s.observations(src, 1), 3);
        assert_eq!(s.observations(src, 2), 0);
        // After many observations a step moves it by alpha only.
        for _ in 0..100 {
            s.record(src, 1, 1);
        }
        let before = s.rate(src, 1);
        s.record(src, 1, 0);
        assert!((s.rate(src, 1) - before * 0.95).abs() < 1e-12);
    }

    /// Positions resolved in pieces learn what one observation of the
    /// whole draft learns; and only real verify steps are counted.
    #[test]
    fn observing_in_pieces_equals_observing_at_once() {
        let mut whole = AcceptanceStats::new(StatsConfig::default()).unwrap();
        let mut pieces = whole.clone();
        let src = DraftSourceId::Lookup;
        whole.observe(src, 6, 4);
        pieces.observe_from(src, 0, 2, 2);
        pieces.observe_from(src, 2, 1, 1);
        pieces.observe_from(src, 3, 3, 1);
        assert_eq!(whole.rates(src), pieces.rates(src));
        assert_eq!(pieces.counters(src), SourceCounters::default());
        pieces.observe_from(src, MAX_DRAFT, 5, 0); // past the end: ignored, no panic
        assert_eq!(whole.rates(src), pieces.rates(src));
    }

    #[test]
    fn bad_config() {
        for (alpha, first, decay) in [(0.0, 0.5, 0.5), (1.5, 0.5, 0.5), (0.1, -0.1, 0.5), (0.1, 0.5, f64::NAN)] {
            let cfg = StatsConfig { alpha, prior: AcceptancePrior { first, decay } };
            assert!(AcceptanceStats::new(cfg).is_err());
        }
    }
}
