//! What every handler shares.

use std::sync::{Arc, OnceLock};

use augur_runtime::Backend;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::{ServerConfig, ServerError};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
    /// Set once, when the model has loaded.
    backend: Arc<OnceLock<Arc<dyn Backend>>>,
    inflight: Arc<Semaphore>,
    /// Several models as roles (issue 9); `None` serves the one backend.
    pub team: Option<Arc<crate::team::Team>>,
}

impl AppState {
    pub fn new(config: ServerConfig) -> Self {
        let inflight = Arc::new(Semaphore::new(config.max_inflight));
        AppState {
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            backend: Arc::new(OnceLock::new()),
            inflight,
            team: None,
        }
    }

    pub fn with_team(mut self, team: Arc<crate::team::Team>) -> Self {
        self.team = Some(team);
        self
    }

    pub fn set_backend(&self, backend: Arc<dyn Backend>) {
        // Only the loader calls this, once.
        let _ = self.backend.set(backend);
    }

    pub fn backend(&self) -> Result<Arc<dyn Backend>, ServerError> {
        self.backend.get().cloned().ok_or(ServerError::Loading)
    }

    pub fn is_ready(&self) -> bool {
        match &self.team {
            Some(t) => t.is_ready(),
            None => self.backend.get().is_some(),
        }
    }

    /// A slot for one expensive request; held until its response ends.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, ServerError> {
        self.inflight.clone().try_acquire_owned().map_err(|_| ServerError::Busy(self.config.max_inflight))
    }

    /// Refuse requests for a model this server does not serve.
    pub fn check_model(&self, requested: Option<&str>) -> Result<(), ServerError> {
        match requested {
            Some(m) if !self.config.model_names.iter().any(|n| n == m) => Err(ServerError::ModelNotFound(m.into())),
            _ => Ok(()),
        }
    }
}
