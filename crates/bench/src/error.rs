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
    /// An OpenAI-compatible endpoint failed or refused a request.
    #[error("endpoint {0}")]
    Endpoint(#[source] augur_openai::OpenAiError),
    #[error("{path}: line {line}: {source}")]
    Json {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("run {0:?} not found (not a run id, run directory or label)")]
    UnknownRun(String),
    #[error("{0}")]
    Runs(String),
    /// The server asked the client to come back later (HTTP 429).
    #[error("endpoint {url}: busy (429), retry after {retry_after:?}")]
    Busy { url: String, retry_after: std::time::Duration },
    #[error("{path}:{line}: {message}")]
    Template { path: PathBuf, line: usize, message: String },
    #[error("{path}: line {line}: {message}")]
    Import { path: PathBuf, line: usize, message: String },
    #[error("invalid load plan: {0}")]
    Load(String),
    #[error("plot: {0}")]
    Plot(String),
    /// A child process (a cold target's `augur run`) failed.
    #[error("{what}: {message}")]
    Process { what: String, message: String },
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
