//! Serving a team of roles: route each request, run it on its role's
//! backend, check the answer and escalate along the role's chain.
//!
//! Streamed requests run on their first role only: once tokens have gone
//! out, a later role's answer cannot replace them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use augur_orch::escalate::{check_answer, Checks, Failure};
use augur_orch::registry::Registry;
use augur_orch::{BackendSpec, Classify, Decision, OrchError, RouteInput, Router, Target, TeamConfig};
use augur_runtime::RuntimeError;
use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::{json, Value};

use crate::generation::{full_response, generate_once, respond_on, Engine, Served};
use crate::request::{Endpoint, RawRequest, RoleDefaults};
use crate::state::AppState;
use crate::ServerError;

pub struct Team {
    pub cfg: Arc<TeamConfig>,
    pub registry: Registry,
    /// Set once the front door model has loaded.
    pub classifier: OnceLock<Arc<dyn Classify>>,
    /// Hot models loaded.
    pub ready: AtomicBool,
}

impl Team {
    pub fn new(cfg: Arc<TeamConfig>, registry: Registry) -> Team {
        Team { cfg, registry, classifier: OnceLock::new(), ready: AtomicBool::new(false) }
    }

    pub fn router(&self) -> Router {
        Router::new(self.cfg.clone(), self.classifier.get().cloned())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

impl From<OrchError> for ServerError {
    fn from(e: OrchError) -> Self {
        match e {
            OrchError::NoSuchTarget(m) => ServerError::ModelNotFound(m),
            OrchError::LoadTimeout { .. } | OrchError::NoRoom { .. } => ServerError::Loading,
            OrchError::Runtime(r) => ServerError::Runtime(r),
            other => ServerError::Runtime(RuntimeError::LoadFailed(other.to_string())),
        }
    }
}

/// Route, run, check, escalate.
pub async fn generate(
    state: AppState,
    team: Arc<Team>,
    mut raw: RawRequest,
    endpoint: Endpoint,
) -> Result<Response, ServerError> {
    let arrived = Instant::now();
    let want_json = raw.take_json_format();
    let decision = route(&team, &raw).await?;
    let mut failures: Vec<Value> = Vec::new();
    let _permit = state.admit()?;
    for (i, role) in decision.chain.iter().enumerate() {
        let mut spec = role_request(&team.cfg, role, &raw).into_spec(endpoint, &state.config)?;
        let served = serve(&team, role, &decision, &failures).await?;
        if spec.stream {
            return Ok(labelled(respond_on(state.clone(), served, spec, arrived).await?, role));
        }
        let out = generate_once(&state, &served, &mut spec, arrived).await?;
        let gate = team.cfg.roles.get(role).and_then(|r| r.gate.as_deref());
        let failed = check_answer(&out.text, out.done.finish_reason, &Checks { want_json, gate });
        match failed {
            Some(f) if i + 1 < decision.chain.len() => failures.push(failure_json(role, &f)),
            _ => {
                let served = Served { augur: Some(augur_json(role, &decision, &failures, failed.as_ref())), ..served };
                return Ok(labelled(full_response(&spec, &served, &out), role));
            }
        }
    }
    Err(ServerError::Internal("empty escalation chain".into()))
}

/// The classifier decodes, so routing runs on a blocking thread.
async fn route(team: &Arc<Team>, raw: &RawRequest) -> Result<Decision, ServerError> {
    let text = raw.routing_text();
    let model = raw.model().map(str::to_string);
    let team = team.clone();
    let decision =
        tokio::task::spawn_blocking(move || team.router().decide(RouteInput { model: model.as_deref(), text: &text }))
            .await
            .map_err(|e| ServerError::Internal(format!("routing task failed: {e}")))??;
    Ok(decision)
}

/// The request as `role` runs it: its defaults, system prompt and speculation.
fn role_request(cfg: &TeamConfig, role: &str, raw: &RawRequest) -> RawRequest {
    let mut r = raw.clone();
    r.set_model(None);
    if let Some(spec) = cfg.roles.get(role) {
        let d = &spec.defaults;
        let defaults = RoleDefaults {
            temperature: d.temperature,
            top_p: d.top_p,
            top_k: d.top_k,
            min_p: d.min_p,
            max_tokens: d.max_tokens,
        };
        r.apply_role(&defaults, spec.system_prompt.as_deref());
        if spec.backend == BackendSpec::Local {
            r.apply_spec(spec.accel.spec, spec.accel.spec_max);
        }
    }
    r
}

async fn serve(team: &Team, role: &str, d: &Decision, failures: &[Value]) -> Result<Served, ServerError> {
    let model_id = match team.cfg.roles.get(role).map(|r| (&r.backend, &r.model)) {
        Some((BackendSpec::OpenAi(spec), _)) => spec.model.clone(),
        Some((BackendSpec::Local, Some(m))) => m.clone(),
        _ => role.to_string(),
    };
    let augur = Some(augur_json(role, d, failures, None));
    Ok(match team.registry.acquire_role(role).await? {
        Target::Local(lease) => {
            let engine = Engine::Local(lease.backend().clone());
            Served { engine, model_id, augur, hold: Some(Box::new(lease)) }
        }
        Target::Remote(r) => Served { engine: Engine::Remote(r), model_id, augur, hold: None },
    })
}

fn failure_json(role: &str, f: &Failure) -> Value {
    json!({"role": role, "failed": f})
}

/// `"augur": {"role", "chain", "routed_by", "why", "escalations"}`: the
/// chain lists the roles actually tried, in order.
fn augur_json(role: &str, d: &Decision, failures: &[Value], last: Option<&Failure>) -> Value {
    let mut chain: Vec<&str> = failures.iter().filter_map(|f| f["role"].as_str()).collect();
    chain.push(role);
    let mut v = json!({"role": role, "chain": chain, "routed_by": d.by, "why": d.why, "escalations": failures});
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

/// `/v1/models` for a team: every role (with its model's state), every
/// model instance, and `auto`.
pub fn models_json(team: &Team) -> Value {
    let status = team.registry.status();
    let state_of = |role: &str| {
        status.iter().find(|s| s.roles.iter().any(|r| r == role)).map_or("remote", |s| match s.state {
            augur_orch::LoadState::Loaded => "loaded",
            augur_orch::LoadState::Loading => "loading",
            augur_orch::LoadState::Unloaded => "unloaded",
        })
    };
    let mut data = vec![json!({"id": augur_orch::AUTO, "object": "model", "created": 0, "owned_by": "augur",
        "augur": {"kind": "router"}})];
    for r in team.cfg.roles.values() {
        data.push(json!({"id": r.name, "object": "model", "created": 0, "owned_by": "augur",
            "augur": {"kind": "role", "tier": r.tier, "model": r.model, "state": state_of(&r.name),
                      "escalation": r.escalation}}));
    }
    for s in status {
        data.push(json!({"id": s.id, "object": "model", "created": 0, "owned_by": "augur",
            "augur": {"kind": "model", "model": s.model, "state": s.state, "residency": s.residency,
                      "memory_bytes": s.memory_bytes, "roles": s.roles, "in_use": s.in_use, "error": s.error}}));
    }
    json!({"object": "list", "data": data})
}
