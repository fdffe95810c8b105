//! Speculative decoding: propose, verify in one batch, keep what the
//! target agrees with. With no draft (k = 0) a step is exactly plain
//! decoding, so `--spec off` runs through the same loop.
//!
//! - `settings`, `stats`: what a worker is set to and what a request
//!   reports; leaves, so `request` names them without a cycle.
//! - `proposer` (with `lanes`): the worker's draft sources, the plan of
//!   each step and what it learns.
//! - `verifier`: the target's choice at each row, chunked and tree
//!   verification.
//! - `driver`: one request's loop and its KV bookkeeping.
//! - `replay`: the proposer's calls against recorded answers, no model.

mod driver;
mod lanes;
mod proposer;
mod replay;
pub(crate) mod settings;
pub(crate) mod stats;
mod verifier;

pub use driver::generate;
pub use proposer::Speculator;
pub use replay::ReplayOutcome;
pub use settings::{DraftPolicy, SpecMode, SpecSettings, SuffixTuning};
pub use stats::{ConstraintReport, SourceStats, SpecStats, StepTimes};
