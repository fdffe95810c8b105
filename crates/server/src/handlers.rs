//! Route handlers.

use std::time::Instant;

use augur_runtime::RuntimeError;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Number, Value};

use crate::extract::ApiJson;
use crate::generation::respond;
use crate::request::{Endpoint, RawRequest};
use crate::state::AppState;
use crate::ServerError;

pub async fn health(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "loading"}))).into_response()
    }
}

fn model_object(state: &AppState) -> Value {
    json!({"id": state.config.model_id, "object": "model", "created": 0, "owned_by": "augur"})
}

pub async fn list_models(State(state): State<AppState>) -> Json<Value> {
    if let Some(team) = &state.team {
        return Json(crate::team::models_json(team));
    }
    Json(json!({"object": "list", "data": [model_object(&state)]}))
}

pub async fn get_model(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ServerError> {
    if let Some(team) = &state.team {
        let all = crate::team::models_json(team);
        let found = all["data"].as_array().and_then(|d| d.iter().find(|m| m["id"] == id.as_str())).cloned();
        return found.map(Json).ok_or(ServerError::ModelNotFound(id));
    }
    state.check_model(Some(&id))?;
    Ok(Json(model_object(&state)))
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

async fn generate(state: AppState, raw: RawRequest, endpoint: Endpoint) -> Result<Response, ServerError> {
    if let Some(team) = state.team.clone() {
        return crate::team::generate(state, team, raw, endpoint).await;
    }
    let arrived = Instant::now();
    state.check_model(raw.model())?;
    let spec = raw.into_spec(endpoint, &state.config)?;
    respond(state, spec, arrived).await
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
    let tokens = tokio::task::spawn_blocking(move || backend.model().tokenize(&req.content, req.add_special, true))
        .await
        .map_err(|e| ServerError::Internal(format!("tokenizer task failed: {e}")))?
        .map_err(RuntimeError::from)?;
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
    let n_vocab = backend.model().n_vocab();
    let ids = req
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_i64().and_then(|v| i32::try_from(v).ok()).filter(|&v| backend.model().contains(v)).ok_or_else(|| {
                ServerError::param(
                    format!("tokens[{i}]"),
                    format!("token id {t} is outside the vocabulary (0..{n_vocab})"),
                )
            })
        })
        .collect::<Result<Vec<i32>, _>>()?;
    Ok(Json(json!({"content": backend.model().detokenize(&ids)})))
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
