use std::path::PathBuf;

/// Everything the engine can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: {source}")]
    Gguf {
        path: PathBuf,
        #[source]
        source: augur_gguf::GgufError,
    },
    #[error("{path}: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: augur_gguf::ModelError,
    },
    #[error("invalid metadata override: {0}")]
    Override(String),
    #[error("llama.cpp could not load {path}: {detail}")]
    Load { path: PathBuf, detail: String },
    #[error("llama.cpp could not create a context (n_ctx {n_ctx}): {detail}")]
    Context { n_ctx: u32, detail: String },
    #[error("invalid parameter {name}: {why}")]
    Param { name: &'static str, why: String },
    #[error("batch is full ({capacity} tokens)")]
    BatchFull { capacity: usize },
    #[error("token id {token} is outside the vocabulary (0..{n_vocab})")]
    TokenOutOfRange { token: i32, n_vocab: i32 },
    #[error("the KV cache has no room for this batch (context {n_ctx} tokens)")]
    KvFull { n_ctx: u32 },
    #[error("decode was aborted")]
    Aborted,
    #[error("llama_decode failed with code {0}")]
    Decode(i32),
    #[error("text is too long to tokenize ({0} bytes)")]
    TextTooLong(usize),
    #[error("tokenizer failed with code {0}")]
    Tokenize(i32),
    #[error("chat template: {0}")]
    Template(#[from] augur_template::TemplateError),
    #[error(
        "chat template: llama.cpp has no built-in template matching this model's and it has no usable jinja template"
    )]
    NoTemplate,
    #[error("a string passed to llama.cpp contains a NUL byte")]
    Nul,
    #[error("a sequence's KV state could not be converted: {0}")]
    KvState(#[from] crate::kv_state::KvStateError),
    #[error("llama.cpp could not {0} a sequence's KV state")]
    SeqState(&'static str),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
