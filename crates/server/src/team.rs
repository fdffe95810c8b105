//! Serving a team of roles: route each request to a role and its
//! escalation chain, and lease each role's backend from the registry. The
//! run, the checks and the escalation are `resolve::generate`'s, the same
//! path a single model's requests take.

use std::sync::{Arc, OnceLock};

use augur_orch::registry::Registry;
use augur_orch::{Classify, Decision, OrchError, RoleBackend, RouteInput, Router, TeamConfig};
use augur_runtime::RuntimeError;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::generation::Served;
use crate::request::{RawRequest, RoleDefaults};
use crate::resolve::{Escalation, Resolver, RoleShape, Route, Step};
use crate::ServerError;

pub struct Team {
    pub cfg: Arc<TeamConfig>,
    pub registry: Registry,
    /// Set once the front door model has loaded.
    pub classifier: OnceLock<Arc<dyn Classify>>,
}

impl Team {
    pub fn new(cfg: Arc<TeamConfig>, registry: Registry) -> Team {
        Team { cfg, registry, classifier: OnceLock::new() }
    }

    pub fn router(&self) -> Router {
        Router::new(self.cfg.clone(), self.classifier.get().cloned())
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

impl Resolver for Team {
    fn models(&self) -> Value {
        models_json(self)
    }

    fn resolve<'a>(&'a self, raw: &'a mut RawRequest) -> BoxFuture<'a, Result<Route, ServerError>> {
        Box::pin(async move {
            let want_json = raw.take_json_format();
            let d = route(self, raw).await?;
            let steps = d.chain.iter().map(|role| self.step(role)).collect();
            let escalation = Escalation { routed_by: json!(d.by), why: d.why, want_json };
            Ok(Route { steps, escalation: Some(escalation) })
        })
    }

    fn acquire<'a>(&'a self, step: &'a Step) -> BoxFuture<'a, Result<Served, ServerError>> {
        Box::pin(async move {
            let lease = self.registry.acquire_role(&step.name).await?;
            let backend = lease.backend().clone();
            Ok(Served { backend, model_id: step.model_id.clone(), augur: None, hold: Some(Box::new(lease)) })
        })
    }
}

impl Team {
    /// How `role` runs a request: its defaults, system prompt and (on a
    /// local model) speculation settings, and its gate.
    fn step(&self, role: &str) -> Step {
        let spec = self.cfg.roles.get(role);
        let model_id = match spec.map(|r| (&r.backend, &r.model)) {
            Some((RoleBackend::OpenAi(remote), _)) => remote.model.clone(),
            Some((RoleBackend::Local, Some(m))) => m.clone(),
            _ => role.to_string(),
        };
        let shape = spec.map(|r| {
            let d = &r.defaults;
            RoleShape {
                defaults: RoleDefaults {
                    temperature: d.temperature,
                    top_p: d.top_p,
                    top_k: d.top_k,
                    min_p: d.min_p,
                    max_tokens: d.max_tokens,
                },
                system_prompt: r.system_prompt.clone(),
                spec: (r.backend == RoleBackend::Local).then_some((r.accel.spec, r.accel.spec_max)),
            }
        });
        let gate = spec.and_then(|r| r.gate.clone());
        Step { name: role.to_string(), model_id, shape, gate }
    }
}

/// The classifier decodes, so routing runs on a blocking thread.
async fn route(team: &Team, raw: &RawRequest) -> Result<Decision, ServerError> {
    let text = raw.routing_text();
    let model = raw.model().map(str::to_string);
    let router = team.router();
    let decision =
        tokio::task::spawn_blocking(move || router.decide(RouteInput { model: model.as_deref(), text: &text }))
            .await
            .map_err(|e| ServerError::Internal(format!("routing task failed: {e}")))??;
    Ok(decision)
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
