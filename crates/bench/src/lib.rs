//! The benchmark harness behind `augur bench`.
//!
//! Prompt suites (YAML, `bench/prompts/v1/`) are run against named target
//! configurations — the in-process engine or an OpenAI-compatible endpoint,
//! timed by the same streaming client code — under a fixed protocol: one
//! discarded warm-up, N ≥ 3 iterations, greedy decoding, every
//! configuration's text checked against the baseline's. Results go to
//! `runs/<run_id>/` and an append-only `runs/index.jsonl`. Measurements of
//! other programs enter the same store with `bench import`, server load
//! with `bench load`; documents are rendered from stored runs by
//! [`template`].

#![forbid(unsafe_code)]

pub mod check;
pub mod cold;
pub mod compare;
pub mod config;
mod error;
pub mod import;
pub mod judge;
pub mod load;
pub mod meta;
pub mod plot;
pub mod protocol;
pub mod report;
pub mod stats;
pub mod store;
pub mod suite;
pub mod target;
pub mod template;

pub use config::{ColdStore, Sweep, TargetConfig};
pub use error::{BenchError, Result};
pub use protocol::{execute, execute_with, Mismatch, Outcome, Plan, TextPolicy, MIN_ITERATIONS};
pub use store::{Row, Run};
pub use suite::{BenchPrompt, Suite};
pub use target::{Endpoint, Generation, InProcess, Request, RequestSpec, Target};
