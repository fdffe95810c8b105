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
    counters: SourceCounters,
}

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
        let fresh = SourceStats { rates, counters: SourceCounters::default() };
        Ok(Self { cfg, sources: std::array::from_fn(|_| fresh.clone()) })
    }

    /// Records one verify step: `accepted` of `drafted` tokens survived.
    /// Positions 1..=accepted saw a success, position accepted+1 a failure;
    /// later positions were not observed (their condition did not hold).
    pub fn record(&mut self, source: DraftSourceId, drafted: usize, accepted: usize) {
        let alpha = self.cfg.alpha;
        let s = &mut self.sources[source.index()];
        let drafted = drafted.min(MAX_DRAFT);
        let accepted = accepted.min(drafted);
        s.counters.steps += 1;
        s.counters.drafted += drafted as u64;
        s.counters.accepted += accepted as u64;
        for r in &mut s.rates[..accepted] {
            *r += alpha * (1.0 - *r);
        }
        if let Some(r) = s.rates[..drafted].get_mut(accepted) {
            *r -= alpha * *r;
        }
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

    #[test]
    fn bad_config() {
        for (alpha, first, decay) in [(0.0, 0.5, 0.5), (1.5, 0.5, 0.5), (0.1, -0.1, 0.5), (0.1, 0.5, f64::NAN)] {
            let cfg = StatsConfig { alpha, prior: AcceptancePrior { first, decay } };
            assert!(AcceptanceStats::new(cfg).is_err());
        }
    }
}
