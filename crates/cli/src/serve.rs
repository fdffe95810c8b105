//! `augur serve`: the OpenAI-compatible HTTP server.

use std::sync::Arc;

use anyhow::Result;
use augur_runtime::{Backend, ModelWorker};
use augur_server::ServerOptions;
use clap::Args;

use crate::run::ModelArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub server: ServerOptions,
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let config = args.server.resolve(&args.model.model)?;
    let queue = config.queue;
    let model = args.model;
    // Runs on a blocking thread while the server already answers /health.
    let loader = move || -> Result<Arc<dyn Backend>, String> {
        let path = model.resolve().map_err(|e| format!("{e:#}"))?;
        let mut cfg = model.worker_config(&model.model, path).map_err(|e| format!("{e:#}"))?;
        cfg.queue = queue;
        let worker = ModelWorker::spawn(cfg).map_err(|e| e.to_string())?;
        Ok(Arc::new(worker))
    };
    augur_server::run(config, Box::new(loader))?;
    Ok(())
}
