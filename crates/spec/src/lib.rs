//! Speculative decoding: proposers (draft sources), the verifier's pure
//! acceptance maths, and the cost model that picks the draft length.
//!
//! Nothing here touches a model: the runtime feeds in target distributions
//! (via [`verify::TargetDists`]), drafts (via [`drafter::Drafter`]) and
//! measured costs (via [`curve::CostCurve`]).
//!
//! One speculative step, as the runtime wires it:
//!
//! ```
//! use augur_sampling::{Sampler, SamplingParams};
//! use augur_spec::{verify_stochastic, Draft, Drafter, LogitRows, LookupConfig, PromptLookup};
//!
//! let n_vocab = 4;
//! let mut sampler = Sampler::new(SamplingParams::Greedy, n_vocab).unwrap();
//! let mut lookup = PromptLookup::new(LookupConfig::default()).unwrap();
//! let mut draft = Draft::with_capacity(64);
//! let context = [1, 2, 3, 1, 2];
//! lookup.propose(&context, 8, &mut draft); // [3, 1, 2]
//! // The target scored context + draft: one logits row per verify position.
//! let logits = [
//!     0.0, 0.0, 0.0, 9.0, // after ..2    -> 3 (matches draft[0])
//!     0.0, 9.0, 0.0, 0.0, // after ..2 3  -> 1 (matches draft[1])
//!     9.0, 0.0, 0.0, 0.0, // after ..3 1  -> 0 (rejects draft[2] = 2)
//!     0.0, 0.0, 0.0, 0.0,
//! ];
//! let (builder, rng) = sampler.parts();
//! let mut target = LogitRows::new(builder, &logits);
//! let v = verify_stochastic(draft.tokens(), &mut target, &draft, rng).unwrap();
//! assert_eq!((v.accepted, v.next), (2, 0));
//! ```

#![forbid(unsafe_code)]

pub mod cost;
pub mod curve;
pub mod drafter;
pub mod lookup;
pub mod stats;
pub mod suffix;
pub mod tree;
pub mod trust;
pub mod verify;

use std::path::PathBuf;

pub use augur_sampling::Token;
pub use cost::{CostModel, Offer, Plan};
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
pub use verify::{
    accept_greedy, verify_position, verify_stochastic, DraftProbs, LogitRows, Step, TargetDists, Verdict,
};

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
