use std::path::PathBuf;

/// Everything the harness can fail at.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Suite { path: PathBuf, message: String },
    #[error("unknown suite {0:?} (see bench/prompts/v1/)")]
    UnknownSuite(String),
    #[error("bad target {spec:?}: {message}")]
    Target { spec: String, message: String },
    #[error("bad sweep {spec:?}: {message}")]
    Sweep { spec: String, message: String },
    #[error("invalid plan: {0}")]
    Plan(String),
    #[error(transparent)]
    Runtime(#[from] augur_runtime::RuntimeError),
    #[error(transparent)]
    Store(#[from] augur_store::StoreError),
    #[error("endpoint {url}: {message}")]
    Http { url: String, message: String },
    #[error("{path}: line {line}: {source}")]
    Json {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("run {0:?} not found")]
    UnknownRun(String),
    #[error("plot: {0}")]
    Plot(String),
    #[error("{count} greedy-identity mismatch(es) against the baseline")]
    Mismatch { count: usize },
}

impl BenchError {
    /// A closure for `map_err` that names what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let context = context.into();
        move |source| BenchError::Io { context, source }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
