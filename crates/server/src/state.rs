//! What every handler shares.

use std::sync::{Arc, OnceLock};

use augur_runtime::Backend;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::resolve::{check_model, Resolver, SingleModel};
use crate::team::Team;
use crate::{ServerConfig, ServerError};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
    /// The loader's backend, set once it has loaded: the one model, or a
    /// team's default role (for `/tokenize` and `/detokenize`).
    loaded: Arc<OnceLock<Arc<dyn Backend>>>,
    inflight: Arc<Semaphore>,
    /// Where generation requests go.
    pub resolver: Arc<dyn Resolver>,
}

impl AppState {
    /// A server for one model, or for `team` when there is one.
    pub fn new(config: ServerConfig, team: Option<Arc<Team>>) -> Self {
        let inflight = Arc::new(Semaphore::new(config.max_inflight));
        let loaded = Arc::new(OnceLock::new());
        let resolver: Arc<dyn Resolver> = match team {
            Some(t) => t,
            None => Arc::new(SingleModel {
                model_names: config.model_names.clone(),
                model_id: config.model_id.clone(),
                loaded: loaded.clone(),
            }),
        };
        AppState { config: Arc::new(config), metrics: Arc::new(Metrics::default()), loaded, inflight, resolver }
    }

    pub fn set_backend(&self, backend: Arc<dyn Backend>) {
        // Only the loader calls this, once.
        let _ = self.loaded.set(backend);
    }

    pub fn backend(&self) -> Result<Arc<dyn Backend>, ServerError> {
        self.loaded.get().cloned().ok_or(ServerError::Loading)
    }

    /// Ready once the loader has finished (a team's hot models included).
    pub fn is_ready(&self) -> bool {
        self.loaded.get().is_some()
    }

    /// The one admission: a slot for one expensive request, held until its
    /// response ends (a stream's last byte).
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, ServerError> {
        self.inflight.clone().try_acquire_owned().map_err(|_| ServerError::Busy(self.config.max_inflight))
    }

    /// Refuse requests for a model this server does not serve.
    pub fn check_model(&self, requested: Option<&str>) -> Result<(), ServerError> {
        check_model(&self.config.model_names, requested)
    }
}
