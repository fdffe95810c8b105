//! What a worker's speculation is set to, and the tuning constants its
//! planning starts from. A leaf module: requests name these types too.

use augur_spec::{AcceptancePrior, LookupConfig};
use serde::{Deserialize, Serialize};

/// Which draft sources speculation may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecMode {
    /// Plain decoding.
    #[default]
    Off,
    /// Prompt lookup (n-gram matches in prompt and output).
    Lookup,
    /// The draft model.
    Draft,
    /// Suffix trees over the request and earlier outputs.
    Suffix,
    /// The cascade: every available source, chosen by the cost model.
    Auto,
}

/// Speculation settings of a worker.
#[derive(Debug, Clone)]
pub struct SpecSettings {
    /// Mode for requests that do not choose one.
    pub mode: SpecMode,
    /// Longest draft per step.
    pub spec_max: usize,
    pub lookup: LookupConfig,
    /// The draft model stops when its own confidence falls below this.
    pub draft_min_confidence: f32,
    pub policy: DraftPolicy,
    /// Let suffix drafts branch: a tree is verified when the cost model
    /// expects more tokens per second from it than from its best path. The
    /// worker then runs the target with flash attention and a q8_0 value
    /// cache, in which a tree's rows are exact (docs/ARCHITECTURE.md, "Cell
    /// order"); off by default, since that layout prefills more slowly and
    /// a compute-bound machine gains nothing from trees.
    pub tree: bool,
    pub suffix: SuffixTuning,
}

/// How far suffix drafts run past their match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuffixTuning {
    /// A draft stops where its estimated probability (the product of count
    /// ratios) falls below this.
    pub min_token_prob: f32,
    /// A draft may run to this many times its match length.
    pub spec_factor: f32,
}

impl Default for SuffixTuning {
    fn default() -> Self {
        Self { min_token_prob: SUFFIX_MIN_TOKEN_PROB, spec_factor: SUFFIX_SPEC_FACTOR }
    }
}

impl SuffixTuning {
    /// Largest accepted `spec_factor`: past it the cost model's k cap is
    /// what limits a draft anyway.
    pub const MAX_FACTOR: f32 = 64.0;

    /// The defaults with whichever values a flag or config key set.
    pub fn with_overrides(min_token_prob: Option<f32>, spec_factor: Option<f32>) -> Self {
        let d = Self::default();
        Self {
            min_token_prob: min_token_prob.unwrap_or(d.min_token_prob),
            spec_factor: spec_factor.unwrap_or(d.spec_factor),
        }
    }

    pub fn valid_min_token_prob(p: f32) -> bool {
        (0.0..=1.0).contains(&p)
    }

    pub fn valid_spec_factor(f: f32) -> bool {
        (0.0..=Self::MAX_FACTOR).contains(&f)
    }

    /// Why these values cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if !Self::valid_min_token_prob(self.min_token_prob) {
            return Err(format!("suffix min token probability must be in [0, 1], got {}", self.min_token_prob));
        }
        if !Self::valid_spec_factor(self.spec_factor) {
            return Err(format!("suffix spec factor must be in [0, {}], got {}", Self::MAX_FACTOR, self.spec_factor));
        }
        Ok(())
    }
}

/// How the draft length is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DraftPolicy {
    /// The cost model: expected accepted tokens per second, k = 0 allowed.
    #[default]
    CostModel,
    /// Always draft as much as the sources offer, up to `spec_max`. Public
    /// although no server uses it: the integration tests (which must
    /// exercise verification) and `examples/replay.rs` set it from outside
    /// the crate.
    Always,
}

impl Default for SpecSettings {
    fn default() -> Self {
        Self {
            mode: SpecMode::Off,
            spec_max: 16,
            lookup: LookupConfig::default(),
            draft_min_confidence: 0.4,
            policy: DraftPolicy::CostModel,
            tree: false,
            suffix: SuffixTuning::default(),
        }
    }
}

/// Batched catch-up decoding of the draft model costs about this fraction
/// of a single-token decode per token.
pub(crate) const CATCH_UP_FRACTION: f64 = 0.3;

/// Text a grammar forces is almost always what the target writes too; only
/// a different tokenisation of it is rejected.
pub(crate) const FORCED_PRIOR: AcceptancePrior = AcceptancePrior { first: 0.95, decay: 0.97 };

/// Lookup statistics are kept per match length (the lower bounds of the
/// buckets): a copied passage that matches 16 tokens back is far more
/// reliable than a chance 4-gram, and one average would hide that.
pub(crate) const LOOKUP_BUCKETS: [usize; 6] = [1, 2, 3, 4, 8, 16];

/// Lookup's worker-wide statistics are scaled by a trust factor that each
/// request starts at this value and learns for itself (for free, from the
/// proposals it did not draft): what holds for code edits does not hold
/// for prose, and a chance phrase match must not cost a short answer a
/// rejected verify before the request has shown that copying pays.
pub(crate) const LOOKUP_TRUST_PRIOR: f64 = 0.6;

/// Count ratios from few occurrences overstate: suffix drafts start at this
/// trust (per worker, as the global tree is).
pub(crate) const SUFFIX_TRUST_PRIOR: f64 = 0.8;

/// Each request scales each tree's drafts by a trust of its own on top,
/// starting here: the worker's trust in that tree carries what earlier
/// requests showed, but a request whose matches are chance (phrases of an
/// earlier answer, then something else) must not pay for that before its
/// own watched proposals correct it.
pub(crate) const SUFFIX_REQUEST_TRUST_PRIOR: f64 = 0.7;

/// By default a suffix draft may run to this many times its match length
/// (the paper's default is 1): the count ratios and the cost model cut it
/// where it stops paying, and a repeated format often continues far past a
/// short match (a value just written, then the format again).
const SUFFIX_SPEC_FACTOR: f32 = 4.0;

/// By default suffix drafts stop below this estimated probability (the
/// paper's default is 0.1). Besides cutting drafts, it decides which match
/// length wins: a short match's long tail of unlikely tokens no longer
/// outscores a longer, more specific match. On the agentic sequence of
/// docs/BENCHMARKS.md, replayed with `examples/replay.rs`, 0.3 drafts
/// better than 0.1 with paths and with trees.
const SUFFIX_MIN_TOKEN_PROB: f32 = 0.3;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speculate::Speculator;
    use crate::RuntimeError;

    #[test]
    fn suffix_tuning_rejects_values_the_drafter_cannot_use() {
        assert!(SuffixTuning::default().check().is_ok());
        for (p, f) in [(1.5, 4.0), (-0.1, 4.0), (f32::NAN, 4.0), (0.3, -1.0), (0.3, f32::INFINITY), (0.3, f32::NAN)] {
            let t = SuffixTuning { min_token_prob: p, spec_factor: f };
            assert!(t.check().is_err(), "{t:?} accepted");
        }
        let bad = SpecSettings { suffix: SuffixTuning { min_token_prob: 2.0, spec_factor: 4.0 }, ..Default::default() };
        assert!(matches!(Speculator::new(bad, None, None), Err(RuntimeError::InvalidRequest(_))));
        let edge = SuffixTuning { min_token_prob: 0.0, spec_factor: SuffixTuning::MAX_FACTOR };
        let ok = SpecSettings { suffix: edge, ..Default::default() };
        assert!(Speculator::new(ok, None, None).is_ok());
    }
}
