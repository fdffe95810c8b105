/// Why a generation could not run or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Engine(#[from] augur_engine::EngineError),
    #[error("the request queue is full ({capacity} waiting); retry later")]
    QueueFull { capacity: usize },
    #[error("the model worker has stopped")]
    WorkerGone,
    #[error("the model failed to load: {0}")]
    LoadFailed(String),
    #[error("prompt ({prompt} tokens) plus max_tokens ({max_tokens}) exceeds the context size ({n_ctx} tokens)")]
    ContextOverflow { prompt: usize, max_tokens: u32, n_ctx: u32 },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("the request was cancelled")]
    Cancelled,
    #[error(transparent)]
    Grammar(#[from] augur_grammar::GrammarError),
    #[error("constrained decoding is not available for this model: {0}")]
    GrammarUnavailable(String),
}
