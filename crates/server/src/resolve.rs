//! One admission path for every request: admit, resolve the request to
//! the backends that may answer it (one model, or a team role and its
//! escalation chain), run it, and check the answer where a chain goes on.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use augur_orch::escalate::{check_answer, Checks, Failure};
use augur_runtime::{Backend, SpecMode};
use axum::http::HeaderValue;
use axum::response::Response;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::generation::{full_response, generate_once, respond_on, Served};
use crate::request::{Endpoint, RawRequest, RoleDefaults};
use crate::state::AppState;
use crate::ServerError;

/// Where requests go: the one model of a plain server, or a team.
pub trait Resolver: Send + Sync {
    /// `/v1/models`.
    fn models(&self) -> Value;
    /// `/v1/models/{id}`.
    fn model(&self, id: &str) -> Option<Value> {
        let all = self.models();
        all["data"].as_array().and_then(|d| d.iter().find(|m| m["id"] == id)).cloned()
    }
    /// The backends to try for `raw`, in order. May rewrite the request
    /// (a team checks a JSON answer itself rather than constraining it).
    fn resolve<'a>(&'a self, raw: &'a mut RawRequest) -> BoxFuture<'a, Result<Route, ServerError>>;
    /// The backend of one step, loading it if needed; held by the response.
    fn acquire<'a>(&'a self, step: &'a Step) -> BoxFuture<'a, Result<Served, ServerError>>;
}

/// What a resolver decided for one request.
pub struct Route {
    pub steps: Vec<Step>,
    /// Set when steps after the first may take over a failed answer; the
    /// response then says which were tried (`"augur": {...}`).
    pub escalation: Option<Escalation>,
}

pub struct Escalation {
    pub routed_by: Value,
    pub why: String,
    /// The answer must be JSON (the request's `response_format`).
    pub want_json: bool,
}

/// One backend a request may run on, and how it shapes the request.
pub struct Step {
    /// The role name (team) or the model id.
    pub name: String,
    /// The `model` the response names.
    pub model_id: String,
    pub shape: Option<RoleShape>,
    /// A command (argv) the answer must pass; stdin is the answer.
    pub gate: Option<Vec<String>>,
}

/// A role's defaults, system prompt and speculation settings.
pub struct RoleShape {
    pub defaults: RoleDefaults,
    pub system_prompt: Option<String>,
    /// Applied to local roles only.
    pub spec: Option<(Option<SpecMode>, Option<usize>)>,
}

impl Step {
    fn request(&self, raw: &RawRequest) -> RawRequest {
        let mut r = raw.clone();
        if let Some(s) = &self.shape {
            r.set_model(None);
            r.apply_role(&s.defaults, s.system_prompt.as_deref());
            if let Some((mode, max)) = s.spec {
                r.apply_spec(mode, max);
            }
        }
        r
    }
}

/// A plain server: one model, loaded once by the loader.
pub struct SingleModel {
    pub model_names: Vec<String>,
    pub model_id: String,
    pub loaded: Arc<OnceLock<Arc<dyn Backend>>>,
}

impl Resolver for SingleModel {
    fn models(&self) -> Value {
        json!({"object": "list", "data": [model_object(&self.model_id)]})
    }

    /// Any name the model is served under (its alias, or the name it was
    /// loaded by) finds it.
    fn model(&self, id: &str) -> Option<Value> {
        self.model_names.iter().any(|n| n == id).then(|| model_object(&self.model_id))
    }

    fn resolve<'a>(&'a self, raw: &'a mut RawRequest) -> BoxFuture<'a, Result<Route, ServerError>> {
        let step = Step { name: self.model_id.clone(), model_id: self.model_id.clone(), shape: None, gate: None };
        let route = check_model(&self.model_names, raw.model()).map(|()| Route { steps: vec![step], escalation: None });
        Box::pin(std::future::ready(route))
    }

    fn acquire<'a>(&'a self, step: &'a Step) -> BoxFuture<'a, Result<Served, ServerError>> {
        let served = self.loaded.get().cloned().ok_or(ServerError::Loading).map(|backend| Served {
            backend,
            model_id: step.model_id.clone(),
            augur: None,
            hold: None,
        });
        Box::pin(std::future::ready(served))
    }
}

pub fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "augur"})
}

/// Refuse a model this server does not serve.
pub fn check_model(names: &[String], requested: Option<&str>) -> Result<(), ServerError> {
    match requested {
        Some(m) if !names.iter().any(|n| n == m) => Err(ServerError::ModelNotFound(m.into())),
        _ => Ok(()),
    }
}

/// Admit, resolve, run; escalate a failed non-streamed answer along the
/// route. A streamed answer runs on the first step only: once tokens have
/// gone out, a later step's answer cannot replace them.
pub async fn generate(state: AppState, mut raw: RawRequest, endpoint: Endpoint) -> Result<Response, ServerError> {
    let arrived = Instant::now();
    let permit = state.admit()?;
    let route = state.resolver.resolve(&mut raw).await?;
    let mut failures: Vec<Value> = Vec::new();
    let last = route.steps.len().saturating_sub(1);
    for (i, step) in route.steps.iter().enumerate() {
        let parsed = step.request(&raw).into_parsed(endpoint, &state.config)?;
        let mut served = state.resolver.acquire(step).await?;
        let Some(esc) = &route.escalation else {
            return respond_on(state, served, parsed, arrived, permit).await;
        };
        served.augur = Some(augur_json(&step.name, esc, &failures, None));
        if parsed.stream {
            return Ok(labelled(respond_on(state, served, parsed, arrived, permit).await?, &step.name));
        }
        let out = generate_once(&state, &served, &parsed, arrived).await?;
        let checks = Checks { want_json: esc.want_json, gate: step.gate.as_deref() };
        let failed = check_answer(&out.text, out.done.finish_reason, &checks);
        match failed {
            Some(f) if i < last => failures.push(json!({"role": step.name, "failed": f})),
            _ => {
                served.augur = Some(augur_json(&step.name, esc, &failures, failed.as_ref()));
                return Ok(labelled(full_response(&parsed, &served, &out), &step.name));
            }
        }
    }
    Err(ServerError::Internal("the route has no steps".into()))
}

/// `"augur": {"role", "chain", "routed_by", "why", "escalations"}`: the
/// chain lists the roles actually tried, in order.
fn augur_json(role: &str, esc: &Escalation, failures: &[Value], last: Option<&Failure>) -> Value {
    let mut chain: Vec<&str> = failures.iter().filter_map(|f| f["role"].as_str()).collect();
    chain.push(role);
    let mut v =
        json!({"role": role, "chain": chain, "routed_by": esc.routed_by, "why": esc.why, "escalations": failures});
    if let Some(f) = last {
        v["unresolved"] = json!(f);
    }
    v
}

fn labelled(mut resp: Response, role: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(role) {
        resp.headers_mut().insert("x-augur-role", v);
    }
    resp
}
