//! The generation loop and the per-model worker threads.
//!
//! Callers (CLI, server, bench) see only the [`Backend`] trait: submit a
//! [`GenerateRequest`], read a [`TokenStream`] of [`Event`]s.

#![forbid(unsafe_code)]

mod backend;
mod calibrate;
mod draft;
mod error;
pub mod generate;
mod grain;
pub mod grammar;
pub mod prefix;
pub mod prefix_store;
pub mod probe;
mod request;
pub mod speculate;
pub mod stop;
mod text;
mod worker;

pub use backend::{Backend, TokenStream};
pub use calibrate::{invariant_batch, machine_id};
pub use error::{grammar_code as grammar_error_code, grammar_kind as grammar_error_kind, ErrorKind, RuntimeError};
pub use prefix::PrefixCache;
pub use probe::Scorer;
pub use request::{
    tokens_per_sec, Completion, Event, FinishReason, GenerateRequest, Prompt, SpecMode, SpecOptions, Usage,
};
pub use speculate::{DraftPolicy, SpecSettings, SpecStats, StepTimes, SuffixTuning};
pub use text::Tokenizer;
pub use worker::{DraftConfig, ModelWorker, PrefixReuse, WorkerConfig};

/// Types of the engine that callers above the runtime name (messages,
/// load-time settings, build facts), so they need not depend on the engine.
pub use augur_engine::{
    system_info, ChatMessage, ContextParams, ModelParams, ValueCache, DEFAULT_BATCH, LLAMA_CPP_CRATE_VERSION,
};
pub use augur_sampling::Token;
