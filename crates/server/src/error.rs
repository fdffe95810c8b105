//! The crate's one error type and its mapping to OpenAI-shaped HTTP errors.

use augur_engine::EngineError;
use augur_grammar::GrammarError;
use augur_runtime::RuntimeError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything the server can refuse or fail at, from startup to streaming.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid JSON in the request body: {0}")]
    InvalidJson(String),
    #[error("the request body is not valid UTF-8")]
    InvalidUtf8,
    #[error("{message}")]
    InvalidBody { param: Option<String>, message: String },
    #[error("{message}")]
    InvalidParam { param: String, message: String },
    #[error("{message}")]
    Unsupported { param: String, message: String },
    #[error("Content-Type must be application/json, got {0:?}")]
    UnsupportedMediaType(String),
    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("the request headers are larger than the limit of {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("the model `{0}` does not exist or is not served here")]
    ModelNotFound(String),
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("method not allowed for this route")]
    MethodNotAllowed,
    #[error("invalid or missing API key; send `Authorization: Bearer KEY`")]
    Unauthorized,
    #[error("the server is busy ({0} requests in flight); retry later")]
    Busy(usize),
    #[error("the model is still loading; retry shortly")]
    Loading,
    #[error("the request took longer than the {0} s limit")]
    Timeout(u64),
    /// A constraint (schema, grammar, tools) that does not compile; `param`
    /// is the request field it came from.
    #[error("`{param}`: {source}")]
    Grammar { param: String, source: GrammarError },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the model failed to load: {0}")]
    Load(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// How an error is presented: HTTP status, OpenAI `type`, `code`, `param`.
pub struct ErrorShape {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub param: Option<String>,
}

const INVALID: &str = "invalid_request_error";
const SERVER: &str = "server_error";

fn shape(status: StatusCode, kind: &'static str, code: &'static str) -> ErrorShape {
    ErrorShape { status, kind, code, param: None }
}

impl ServerError {
    pub fn param(param: impl Into<String>, message: impl Into<String>) -> Self {
        ServerError::InvalidParam { param: param.into(), message: message.into() }
    }

    pub fn unsupported(param: impl Into<String>, message: impl Into<String>) -> Self {
        ServerError::Unsupported { param: param.into(), message: message.into() }
    }

    pub fn shape(&self) -> ErrorShape {
        use ServerError as E;
        match self {
            E::InvalidJson(_) => shape(StatusCode::BAD_REQUEST, INVALID, "invalid_json"),
            E::InvalidUtf8 => shape(StatusCode::BAD_REQUEST, INVALID, "invalid_utf8"),
            E::InvalidBody { param, .. } => {
                ErrorShape { param: param.clone(), ..shape(StatusCode::BAD_REQUEST, INVALID, "invalid_body") }
            }
            E::InvalidParam { param, .. } => {
                ErrorShape { param: Some(param.clone()), ..shape(StatusCode::BAD_REQUEST, INVALID, "invalid_value") }
            }
            E::Unsupported { param, .. } => ErrorShape {
                param: Some(param.clone()),
                ..shape(StatusCode::BAD_REQUEST, INVALID, "unsupported_parameter")
            },
            E::UnsupportedMediaType(_) => shape(StatusCode::UNSUPPORTED_MEDIA_TYPE, INVALID, "unsupported_media_type"),
            E::BodyTooLarge { .. } => shape(StatusCode::PAYLOAD_TOO_LARGE, INVALID, "body_too_large"),
            E::BodyRead(_) => shape(StatusCode::BAD_REQUEST, INVALID, "body_read_failed"),
            E::HeadersTooLarge { .. } => {
                shape(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, INVALID, "headers_too_large")
            }
            E::ModelNotFound(_) => {
                ErrorShape { param: Some("model".into()), ..shape(StatusCode::NOT_FOUND, INVALID, "model_not_found") }
            }
            E::RouteNotFound(_) => shape(StatusCode::NOT_FOUND, INVALID, "not_found"),
            E::MethodNotAllowed => shape(StatusCode::METHOD_NOT_ALLOWED, INVALID, "method_not_allowed"),
            E::Unauthorized => shape(StatusCode::UNAUTHORIZED, INVALID, "invalid_api_key"),
            E::Busy(_) => shape(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "server_busy"),
            E::Loading => shape(StatusCode::SERVICE_UNAVAILABLE, SERVER, "model_loading"),
            E::Timeout(_) => shape(StatusCode::GATEWAY_TIMEOUT, SERVER, "timeout"),
            E::Grammar { param, source } => ErrorShape { param: Some(param.clone()), ..grammar_shape(source) },
            E::Runtime(e) => runtime_shape(e),
            E::Config(_) | E::Bind { .. } | E::Io(_) | E::Load(_) | E::Internal(_) => {
                shape(StatusCode::INTERNAL_SERVER_ERROR, SERVER, "internal_error")
            }
        }
    }

    /// The OpenAI error object: `{"error": {message, type, param, code}}`.
    pub fn body(&self) -> serde_json::Value {
        let s = self.shape();
        json!({"error": {"message": self.to_string(), "type": s.kind, "param": s.param, "code": s.code}})
    }
}

fn runtime_shape(e: &RuntimeError) -> ErrorShape {
    match e {
        RuntimeError::Engine(e) => engine_shape(e),
        RuntimeError::QueueFull { .. } => shape(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "queue_full"),
        RuntimeError::WorkerGone | RuntimeError::LoadFailed(_) => {
            shape(StatusCode::SERVICE_UNAVAILABLE, SERVER, "model_unavailable")
        }
        RuntimeError::ContextOverflow { .. } => ErrorShape {
            param: Some("max_tokens".into()),
            ..shape(StatusCode::BAD_REQUEST, INVALID, "context_length_exceeded")
        },
        RuntimeError::EmptyPrompt => shape(StatusCode::BAD_REQUEST, INVALID, "empty_prompt"),
        RuntimeError::InvalidRequest(_) => shape(StatusCode::BAD_REQUEST, INVALID, "invalid_request"),
        // Only seen when the client already left; nobody reads it.
        RuntimeError::Cancelled => shape(StatusCode::REQUEST_TIMEOUT, INVALID, "cancelled"),
        RuntimeError::Grammar(g) => grammar_shape(g),
        RuntimeError::GrammarUnavailable(_) => shape(StatusCode::BAD_REQUEST, INVALID, "grammar_unavailable"),
        RuntimeError::Internal(_) => shape(StatusCode::INTERNAL_SERVER_ERROR, SERVER, e.code()),
        RuntimeError::UpstreamRejected { .. } => shape(StatusCode::BAD_REQUEST, INVALID, e.code()),
        RuntimeError::UpstreamFailed { .. } | RuntimeError::UpstreamUnreachable { .. } => {
            shape(StatusCode::BAD_GATEWAY, SERVER, e.code())
        }
        RuntimeError::UpstreamTimeout { .. } => shape(StatusCode::GATEWAY_TIMEOUT, SERVER, e.code()),
    }
}

fn grammar_shape(e: &GrammarError) -> ErrorShape {
    let code = match e {
        GrammarError::Invalid(_) => "invalid_grammar",
        GrammarError::Unsatisfiable => "unsatisfiable_grammar",
        GrammarError::TooLarge { .. } | GrammarError::TooManyRefs { .. } => "grammar_too_large",
        GrammarError::Timeout(_) => "grammar_timeout",
        GrammarError::Vocabulary(_) | GrammarError::Stuck(_) | GrammarError::Internal(_) => {
            return shape(StatusCode::INTERNAL_SERVER_ERROR, SERVER, "grammar_error");
        }
    };
    shape(StatusCode::BAD_REQUEST, INVALID, code)
}

fn engine_shape(e: &EngineError) -> ErrorShape {
    match e {
        EngineError::TokenOutOfRange { .. } => shape(StatusCode::BAD_REQUEST, INVALID, "token_out_of_range"),
        EngineError::TextTooLong(_) => shape(StatusCode::BAD_REQUEST, INVALID, "prompt_too_long"),
        EngineError::Template(_) | EngineError::NoTemplate => {
            shape(StatusCode::BAD_REQUEST, INVALID, "chat_template_error")
        }
        EngineError::Nul => shape(StatusCode::BAD_REQUEST, INVALID, "nul_byte"),
        EngineError::Param { .. } => shape(StatusCode::BAD_REQUEST, INVALID, "invalid_value"),
        EngineError::KvFull { .. } => shape(StatusCode::BAD_REQUEST, INVALID, "context_length_exceeded"),
        EngineError::Aborted => shape(StatusCode::REQUEST_TIMEOUT, INVALID, "cancelled"),
        EngineError::Gguf { .. }
        | EngineError::Invalid { .. }
        | EngineError::Override(_)
        | EngineError::Load { .. }
        | EngineError::Context { .. }
        | EngineError::BatchFull { .. }
        | EngineError::Decode(_)
        | EngineError::Tokenize(_) => shape(StatusCode::INTERNAL_SERVER_ERROR, SERVER, "engine_error"),
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let status = self.shape().status;
        if status.is_server_error() {
            tracing::warn!("request failed: {self}");
        }
        let retry = matches!(
            self,
            ServerError::Busy(_) | ServerError::Loading | ServerError::Runtime(RuntimeError::QueueFull { .. })
        );
        let mut resp = (status, axum::Json(self.body())).into_response();
        if retry {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
