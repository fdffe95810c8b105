//! The crate's one error type and its mapping to OpenAI-shaped HTTP errors.

use augur_grammar::GrammarError;
use augur_runtime::{grammar_error_kind, ErrorKind, RuntimeError};
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
    #[error("the request URI is longer than the limit of {limit} bytes")]
    UriTooLong { limit: usize },
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
            E::UriTooLong { .. } => shape(StatusCode::URI_TOO_LONG, INVALID, "uri_too_long"),
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

/// The one place a runtime error becomes an HTTP status: by whose fault
/// it is, never by its text.
fn runtime_shape(e: &RuntimeError) -> ErrorShape {
    let (status, kind) = match e.kind() {
        ErrorKind::Client => (StatusCode::BAD_REQUEST, INVALID),
        ErrorKind::Busy => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
        // Only seen when the client already left; nobody reads it.
        ErrorKind::Cancelled => (StatusCode::REQUEST_TIMEOUT, INVALID),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, SERVER),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, SERVER),
        ErrorKind::UpstreamFailed => (StatusCode::BAD_GATEWAY, SERVER),
        ErrorKind::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, SERVER),
    };
    ErrorShape { param: e.param().map(str::to_string), ..shape(status, kind, e.code()) }
}

fn grammar_shape(e: &GrammarError) -> ErrorShape {
    let code = augur_runtime::grammar_error_code(e);
    match grammar_error_kind(e) {
        ErrorKind::Client => shape(StatusCode::BAD_REQUEST, INVALID, code),
        _ => shape(StatusCode::INTERNAL_SERVER_ERROR, SERVER, code),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: RuntimeError) -> u16 {
        ServerError::Runtime(e).shape().status.as_u16()
    }

    /// The client's mistakes are 4xx, augur's faults 500, and an upstream's
    /// failures 502/504, whatever the message says.
    #[test]
    fn runtime_errors_map_by_kind() {
        assert_eq!(status(RuntimeError::EmptyPrompt), 400);
        let overflow = RuntimeError::ContextOverflow { prompt: 9, max_tokens: 9, n_ctx: 8 };
        assert_eq!(ServerError::Runtime(overflow).shape().param.as_deref(), Some("max_tokens"));
        assert_eq!(status(RuntimeError::internal("verification produced no token")), 500);
        assert_eq!(status(RuntimeError::QueueFull { capacity: 1 }), 429);
        assert_eq!(status(RuntimeError::WorkerGone), 503);
        let up = |m: &str| RuntimeError::UpstreamFailed { url: "http://u".into(), message: m.into() };
        assert_eq!(status(up("HTTP 500")), 502);
        let gone = RuntimeError::UpstreamUnreachable { url: "http://u".into(), message: "refused".into() };
        assert_eq!(status(gone), 502);
        assert_eq!(status(RuntimeError::UpstreamTimeout { url: "http://u".into() }), 504);
        let refused = RuntimeError::UpstreamRejected { url: "http://u".into(), status: 400, message: "bad".into() };
        assert_eq!(status(refused), 400);
        assert_eq!(status(RuntimeError::Grammar(GrammarError::Unsatisfiable)), 400);
        assert_eq!(status(RuntimeError::Grammar(GrammarError::Stuck("x".into()))), 500);
    }
}
