//! The generation loop and the per-model worker threads.
//!
//! Callers (CLI, server, bench) see only the [`Backend`] trait: submit a
//! [`GenerateRequest`], read a [`TokenStream`] of [`Event`]s.

mod calibrate;
mod draft;
mod error;
pub mod generate;
pub mod grammar;
pub mod prefix;
mod request;
pub mod speculate;
pub mod stop;
mod worker;

pub use calibrate::{invariant_batch, machine_id};
pub use error::{ErrorKind, RuntimeError};
pub use prefix::PrefixCache;
pub use request::{
    tokens_per_sec, Completion, Event, FinishReason, GenerateRequest, Prompt, SpecMode, SpecOptions, Usage,
};
pub use speculate::{DraftPolicy, SpecSettings, SpecStats, SuffixTuning};
pub use worker::{prepare, Backend, DraftConfig, ModelWorker, PrefixReuse, TokenStream, WorkerConfig};

/// Types of the engine that callers above the runtime name (messages,
/// load-time settings, build facts), so they need not depend on the engine.
pub use augur_engine::{
    system_info, ChatMessage, ContextParams, ModelParams, ValueCache, DEFAULT_BATCH, LLAMA_CPP_CRATE_VERSION,
};
pub use augur_sampling::Token;
