//! Route handlers.

use augur_runtime::{Backend, Tokenizer};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Number, Value};

use crate::extract::ApiJson;
use crate::request::{Endpoint, RawRequest};
use crate::resolve::generate;
use crate::state::AppState;
use crate::ServerError;

pub async fn health(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "loading"}))).into_response()
    }
}

pub async fn list_models(State(state): State<AppState>) -> Json<Value> {
    Json(state.resolver.models())
}

pub async fn get_model(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ServerError> {
    state.resolver.model(&id).map(Json).ok_or(ServerError::ModelNotFound(id))
}

pub async fn chat_completions(
    State(state): State<AppState>,
    ApiJson(raw): ApiJson<RawRequest>,
) -> Result<Response, ServerError> {
    generate(state, raw, Endpoint::Chat).await
}

pub async fn completions(
    State(state): State<AppState>,
    ApiJson(raw): ApiJson<RawRequest>,
) -> Result<Response, ServerError> {
    generate(state, raw, Endpoint::Completions).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeRequest {
    content: String,
    /// Add the model's BOS token, as a completion prompt would get.
    #[serde(default)]
    add_special: bool,
    model: Option<String>,
}

pub async fn tokenize(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenizeRequest>,
) -> Result<Json<Value>, ServerError> {
    state.check_model(req.model.as_deref())?;
    if req.content.len() > state.config.max_prompt_bytes {
        return Err(ServerError::param(
            "content",
            format!("content is {} bytes, more than the limit of {}", req.content.len(), state.config.max_prompt_bytes),
        ));
    }
    let _permit = state.admit()?;
    let backend = state.backend()?;
    let tokens = tokio::task::spawn_blocking(move || {
        tokenizer_of(backend.as_ref())?.tokenize(&req.content, req.add_special, true).map_err(ServerError::from)
    })
    .await
    .map_err(|e| ServerError::Internal(format!("tokenizer task failed: {e}")))??;
    Ok(Json(json!({"tokens": tokens})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetokenizeRequest {
    tokens: Vec<Number>,
    model: Option<String>,
}

pub async fn detokenize(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DetokenizeRequest>,
) -> Result<Json<Value>, ServerError> {
    state.check_model(req.model.as_deref())?;
    let backend = state.backend()?;
    let tok = tokenizer_of(backend.as_ref())?;
    let n_vocab = tok.n_vocab();
    let ids = req
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_i64().and_then(|v| i32::try_from(v).ok()).filter(|v| (0..n_vocab).contains(v)).ok_or_else(|| {
                ServerError::param(
                    format!("tokens[{i}]"),
                    format!("token id {t} is outside the vocabulary (0..{n_vocab})"),
                )
            })
        })
        .collect::<Result<Vec<i32>, _>>()?;
    Ok(Json(json!({"content": tok.detokenize(&ids)?})))
}

/// A model served elsewhere has no vocabulary here.
fn tokenizer_of(backend: &dyn Backend) -> Result<&Tokenizer, ServerError> {
    backend.tokenizer().ok_or_else(|| {
        ServerError::unsupported(
            "model",
            format!("{} is served remotely and tokenises for itself", backend.model_name()),
        )
    })
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let depth = state.backend().map(|b| b.queue_depth()).unwrap_or(0);
    let text = state.metrics.render(depth, state.is_ready());
    let mut resp = text.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}

pub async fn not_found(uri: Uri) -> ServerError {
    ServerError::RouteNotFound(uri.path().to_string())
}

pub async fn method_not_allowed() -> ServerError {
    ServerError::MethodNotAllowed
}
