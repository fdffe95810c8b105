//! augur's safe facade over llama.cpp — the only crate that touches the FFI.
//!
//! Every raw handle is a `NonNull` freed in `Drop`; every `unsafe` block says
//! why it is sound. Files are checked in Rust (`augur-gguf`) before llama.cpp
//! opens them, chat templates run under limits (`augur-template`), and
//! sampling is pure Rust (`augur-sampling`) over the logits returned here.

mod backend;
mod batch;
mod chat;
mod context;
mod detok;
mod error;
mod kv_state;
mod model;
mod split;

pub use augur_sampling as sampling;
pub use augur_template::ChatMessage;
pub use backend::system_info;
pub use batch::Batch;
pub use chat::ChatRenderer;
pub use context::{AbortHandle, Context, ContextParams, DecodeTiming, ValueCache, DEFAULT_BATCH};
pub use detok::Detokenizer;
pub use error::{EngineError, Result};
pub use kv_state::KvStateError;
pub use model::{check_file, Model, ModelInfo, ModelParams};

/// The version of the llama.cpp sources this build embeds.
pub const LLAMA_CPP_CRATE_VERSION: &str = "llama-cpp-sys-2 0.1.160";
