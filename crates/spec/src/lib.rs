//! Speculative decoding: proposers (draft sources), the cost model that
//! picks the draft length, and (in tests only, module `verify`) the
//! reference rejection-sampling maths the runtime's verifier is checked
//! against.
//!
//! Nothing here touches a model: the runtime feeds in drafts (via
//! [`drafter::Drafter`]) and measured costs (via [`curve::CostCurve`]), and
//! reports each step's [`Verdict`] back.
//!
//! A draft, as the runtime asks for one:
//!
//! ```
//! use augur_spec::{Draft, Drafter, LookupConfig, PromptLookup};
//!
//! let mut lookup = PromptLookup::new(LookupConfig::default()).unwrap();
//! let mut draft = Draft::with_capacity(64);
//! let context = [1, 2, 3, 1, 2];
//! lookup.propose(&context, 8, &mut draft);
//! assert_eq!(draft.tokens(), &[3, 1, 2]);
//! // The target then accepted two of the three: tell the source.
//! lookup.feedback(draft.len(), 2);
//! ```

#![forbid(unsafe_code)]

pub mod budget;
pub mod cost;
pub mod curve;
pub mod drafter;
pub mod lookup;
pub mod stats;
pub mod suffix;
pub mod tree;
pub mod trust;
#[cfg(test)]
pub mod verify;

use std::path::PathBuf;

pub use augur_sampling::Token;
pub use budget::RiskBudget;
pub use cost::{CostModel, Plan};
pub use curve::{CostCurve, COST_CURVE_VERSION};
pub use drafter::{Draft, DraftSourceId, Drafter};
pub use lookup::{LookupConfig, PromptLookup};
pub use stats::{AcceptancePrior, AcceptanceStats, SourceCounters, StatsConfig};
pub use suffix::{
    DraftTree, GlobalSuffixTree, SharedGlobal, SuffixConfig, SuffixDraft, SuffixDrafter, SuffixError, SuffixOrigin,
    SuffixParams, SuffixTree,
};
pub use tree::{TreeVerdict, TreeWalk, MAX_TREE_BRANCHES, TREE_GRAVEYARD_SEQ};
pub use trust::{Shadow, ShadowOutcome, Trust};

/// Outcome of verifying one draft: how many draft tokens were accepted, and
/// the target's own token emitted after them (correction or bonus).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub accepted: usize,
    pub next: Token,
}

/// Longest draft any source may propose, and the number of per-position
/// acceptance statistics kept.
pub const MAX_DRAFT: usize = 64;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("target must supply draft.len() + 1 = {expected} positions, got {got}")]
    TargetLength { expected: usize, got: usize },
    #[error("no target distribution for verify position {0}")]
    MissingPosition(usize),
    #[error("draft probability row has {got} entries, expected {expected}")]
    DraftRowLength { expected: usize, got: usize },
    #[error(transparent)]
    Sampling(#[from] augur_sampling::SamplingError),
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("invalid cost data: {0}")]
    InvalidCost(&'static str),
    #[error("cost curve file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cost curve file is corrupt: {0}")]
    Corrupt(String),
    #[error("cost curve format version {found} is not supported (this build reads {expected})")]
    Version { found: u32, expected: u32 },
    #[error("cost curve checksum mismatch (file damaged or edited)")]
    Checksum,
    #[error(transparent)]
    Suffix(#[from] suffix::SuffixError),
}
