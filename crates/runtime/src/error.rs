use augur_engine::EngineError;
use augur_grammar::GrammarError;

/// Why a generation could not run or stopped early.
///
/// [`RuntimeError::kind`] tells whose fault it is: the client's, augur's
/// own, or an upstream server's; callers map kinds, never message text.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Engine(#[from] EngineError),
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
    /// The client asked for something this backend cannot do.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("the request was cancelled")]
    Cancelled,
    #[error(transparent)]
    Grammar(#[from] GrammarError),
    #[error("constrained decoding is not available for this model: {0}")]
    GrammarUnavailable(String),
    /// A broken invariant inside augur (no logits where a row was asked
    /// for, a verify that chose no token): never the client's fault.
    #[error("internal error: {0}")]
    Internal(String),
    /// A remote server refused the request as the client's mistake (4xx).
    #[error("upstream {url} refused the request ({status}): {message}")]
    UpstreamRejected { url: String, status: u16, message: String },
    /// A remote server failed (5xx) or answered something unreadable.
    #[error("upstream {url} failed: {message}")]
    UpstreamFailed { url: String, message: String },
    /// A remote server could not be reached.
    #[error("upstream {url} is unreachable: {message}")]
    UpstreamUnreachable { url: String, message: String },
    /// A remote server did not answer in time.
    #[error("upstream {url} did not answer in time")]
    UpstreamTimeout { url: String },
}

/// Whose fault an error is, and so how an API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong (HTTP 400).
    Client,
    /// No room now; retry later (HTTP 429).
    Busy,
    /// The client went away.
    Cancelled,
    /// The model is not there to serve (HTTP 503).
    Unavailable,
    /// A fault inside augur (HTTP 500).
    Internal,
    /// A remote server failed (HTTP 502).
    UpstreamFailed,
    /// A remote server did not answer in time (HTTP 504).
    UpstreamTimeout,
}

impl RuntimeError {
    pub fn internal(what: impl Into<String>) -> Self {
        RuntimeError::Internal(what.into())
    }

    pub fn kind(&self) -> ErrorKind {
        use RuntimeError as E;
        match self {
            E::Engine(e) => engine_kind(e),
            E::QueueFull { .. } => ErrorKind::Busy,
            E::WorkerGone | E::LoadFailed(_) => ErrorKind::Unavailable,
            E::ContextOverflow { .. }
            | E::EmptyPrompt
            | E::InvalidRequest(_)
            | E::GrammarUnavailable(_)
            | E::UpstreamRejected { .. } => ErrorKind::Client,
            E::Cancelled => ErrorKind::Cancelled,
            E::Grammar(g) => grammar_kind(g),
            E::Internal(_) => ErrorKind::Internal,
            E::UpstreamFailed { .. } | E::UpstreamUnreachable { .. } => ErrorKind::UpstreamFailed,
            E::UpstreamTimeout { .. } => ErrorKind::UpstreamTimeout,
        }
    }

    /// A short machine-readable code (OpenAI's `error.code`).
    pub fn code(&self) -> &'static str {
        use RuntimeError as E;
        match self {
            E::Engine(e) => engine_code(e),
            E::QueueFull { .. } => "queue_full",
            E::WorkerGone | E::LoadFailed(_) => "model_unavailable",
            E::ContextOverflow { .. } => "context_length_exceeded",
            E::EmptyPrompt => "empty_prompt",
            E::InvalidRequest(_) => "invalid_request",
            E::Cancelled => "cancelled",
            E::Grammar(g) => grammar_code(g),
            E::GrammarUnavailable(_) => "grammar_unavailable",
            E::Internal(_) => "internal_error",
            E::UpstreamRejected { .. } => "upstream_rejected",
            E::UpstreamFailed { .. } => "upstream_error",
            E::UpstreamUnreachable { .. } => "upstream_unreachable",
            E::UpstreamTimeout { .. } => "upstream_timeout",
        }
    }

    /// The request field the error is about, where one is.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            RuntimeError::ContextOverflow { .. } => Some("max_tokens"),
            _ => None,
        }
    }
}

fn engine_kind(e: &EngineError) -> ErrorKind {
    use EngineError as E;
    match e {
        E::TokenOutOfRange { .. }
        | E::TextTooLong(_)
        | E::Template(_)
        | E::NoTemplate
        | E::Nul
        | E::Param { .. }
        | E::KvFull { .. } => ErrorKind::Client,
        E::Aborted => ErrorKind::Cancelled,
        E::Gguf { .. } | E::Invalid { .. } | E::Override(_) | E::Load { .. } | E::Context { .. } => {
            ErrorKind::Unavailable
        }
        E::BatchFull { .. } | E::Decode(_) | E::Tokenize(_) | E::SeqState(_) | E::KvState(_) => ErrorKind::Internal,
    }
}

fn engine_code(e: &EngineError) -> &'static str {
    use EngineError as E;
    match e {
        E::TokenOutOfRange { .. } => "token_out_of_range",
        E::TextTooLong(_) => "prompt_too_long",
        E::Template(_) | E::NoTemplate => "chat_template_error",
        E::Nul => "nul_byte",
        E::Param { .. } => "invalid_value",
        E::KvFull { .. } => "context_length_exceeded",
        E::Aborted => "cancelled",
        E::Gguf { .. } | E::Invalid { .. } | E::Override(_) | E::Load { .. } | E::Context { .. } => "model_unavailable",
        E::BatchFull { .. } | E::Decode(_) | E::Tokenize(_) | E::SeqState(_) | E::KvState(_) => "engine_error",
    }
}

/// A constraint that does not compile is the client's; one that breaks
/// while decoding is augur's.
pub fn grammar_kind(e: &GrammarError) -> ErrorKind {
    match e {
        GrammarError::Invalid(_)
        | GrammarError::Unsatisfiable
        | GrammarError::TooLarge { .. }
        | GrammarError::TooManyRefs { .. }
        | GrammarError::Recursive { .. }
        | GrammarError::Timeout(_) => ErrorKind::Client,
        GrammarError::Vocabulary(_) | GrammarError::Stuck(_) | GrammarError::Internal(_) => ErrorKind::Internal,
    }
}

pub fn grammar_code(e: &GrammarError) -> &'static str {
    match e {
        GrammarError::Invalid(_) | GrammarError::Recursive { .. } => "invalid_grammar",
        GrammarError::Unsatisfiable => "unsatisfiable_grammar",
        GrammarError::TooLarge { .. } | GrammarError::TooManyRefs { .. } => "grammar_too_large",
        GrammarError::Timeout(_) => "grammar_timeout",
        GrammarError::Vocabulary(_) | GrammarError::Stuck(_) | GrammarError::Internal(_) => "grammar_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_fault_is_told_apart() {
        assert_eq!(RuntimeError::EmptyPrompt.kind(), ErrorKind::Client);
        assert_eq!(RuntimeError::internal("no logits").kind(), ErrorKind::Internal);
        assert_eq!(RuntimeError::Engine(EngineError::Decode(-3)).kind(), ErrorKind::Internal);
        assert_eq!(RuntimeError::Engine(EngineError::KvFull { n_ctx: 8 }).kind(), ErrorKind::Client);
        let up = RuntimeError::UpstreamFailed { url: "u".into(), message: "HTTP 500".into() };
        assert_eq!(up.kind(), ErrorKind::UpstreamFailed);
        assert_eq!(RuntimeError::UpstreamTimeout { url: "u".into() }.kind(), ErrorKind::UpstreamTimeout);
        let rej = RuntimeError::UpstreamRejected { url: "u".into(), status: 422, message: "bad".into() };
        assert_eq!(rej.kind(), ErrorKind::Client);
        assert_eq!(RuntimeError::QueueFull { capacity: 1 }.kind(), ErrorKind::Busy);
    }
}
