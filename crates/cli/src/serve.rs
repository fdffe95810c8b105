//! `augur serve`: the OpenAI-compatible HTTP server.

use std::sync::Arc;

use anyhow::Result;
use augur_runtime::{Backend, ModelWorker};
use augur_server::ServerOptions;
use clap::Args;

use crate::check;
use crate::run::ModelArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub server: ServerOptions,
}

pub fn serve(args: ServeArgs) -> Result<()> {
    // A config file with [roles.*] serves a team; the model flags then do not apply.
    if let Some(team_cfg) = args.server.config.as_deref().map(crate::team::load_team).transpose()?.flatten() {
        let config = args.server.resolve("auto")?;
        let team = crate::team::build_team(team_cfg, config.queue)?;
        let t = team.clone();
        let loader = move || crate::team::warm_up(&t);
        augur_server::run_team(config, team, Box::new(loader))?;
        return Ok(());
    }
    let config = args.server.resolve(&args.model.model)?;
    let queue = config.queue;
    let mut model = args.model;
    // A server drafts by default; the cost model keeps it from ever costing speed.
    model.spec.get_or_insert(crate::run::SpecArg::Auto);
    // Runs on a blocking thread while the server already answers /health.
    let loader = move || -> Result<Arc<dyn Backend>, String> {
        let path = model.resolve().map_err(|e| format!("{e:#}"))?;
        let mut cfg = model.worker_config(&model.model, path).map_err(|e| format!("{e:#}"))?;
        // A file this server has not loaded before is first loaded in a
        // child process: if llama.cpp aborts on it, the server survives.
        check::ensure_loadable(&cfg, &model.overrides).map_err(|e| format!("{e:#}"))?;
        cfg.queue = queue;
        let worker = ModelWorker::spawn(cfg).map_err(|e| e.to_string())?;
        Ok(Arc::new(worker))
    };
    augur_server::run(config, Box::new(loader))?;
    Ok(())
}
