//! The team side of the CLI: `serve --config` with roles, `route`, and
//! `config check`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use augur_orch::classify::ModelClassifier;
use augur_orch::registry::{budget_for, plan_instances, worker_config, InstancePlan, LoadFn, RegistryOptions};
use augur_orch::{check_files, Classify, Registry, RouteInput, Router, TeamConfig};
use augur_runtime::{Backend, ModelParams, ModelWorker};
use augur_server::team::Team;
use augur_store::Store;
use clap::{Args, Subcommand};

use crate::check;

/// The team tables of a config file, if it has any.
pub fn load_team(path: &Path) -> Result<Option<TeamConfig>> {
    let cfg = TeamConfig::load(path).with_context(|| format!("{}", path.display()))?;
    Ok((!cfg.is_empty()).then_some(cfg))
}

/// The registry and team a server runs; models are pulled if missing.
pub fn build_team(cfg: TeamConfig, queue: usize) -> Result<Arc<Team>> {
    let store = Store::open_default()?;
    let pull = |src: &str| store.ensure(src, true).map_err(|e| e.to_string());
    let paths = check_files(&cfg, &pull)?;
    let instances = plan_instances(&cfg, &paths)?;
    let state_dir = store.root().parent().map(Path::to_path_buf);
    let load: LoadFn = Arc::new(move |inst: &InstancePlan| load_instance(inst, queue, state_dir.as_deref()));
    let opts =
        RegistryOptions { budget: budget_for(&cfg), load_timeout: cfg.residency.load_timeout, remote_capacity: queue };
    let registry = Registry::new(instances, &cfg, opts, load);
    Ok(Arc::new(Team::new(Arc::new(cfg), registry)))
}

/// Check (in a child process, once per file) and load one instance.
fn load_instance(inst: &InstancePlan, queue: usize, state_dir: Option<&Path>) -> Result<Arc<dyn Backend>, String> {
    let cfg = worker_config(inst, queue, state_dir);
    check::ensure_loadable(&cfg, &inst.override_args()).map_err(|e| format!("{e:#}"))?;
    let worker = ModelWorker::spawn(cfg).map_err(|e| e.to_string())?;
    Ok(Arc::new(worker))
}

/// Runs on the server's loader thread: hot models, then the classifier on
/// the front door's weights. Returns the default role's backend for
/// `/tokenize` without a model.
pub fn warm_up(team: &Team) -> Result<Arc<dyn Backend>, String> {
    let rt = tokio::runtime::Handle::current();
    rt.block_on(team.registry.load_hot()).map_err(|e| e.to_string())?;
    if let Some(front) = &team.cfg.routing.classifier {
        let lease = rt.block_on(team.registry.acquire_role(front)).map_err(|e| e.to_string())?;
        if lease.instance().is_some() {
            let c = ModelClassifier::on(lease.backend().as_ref(), None).map_err(|e| e.to_string())?;
            let _ = team.classifier.set(Arc::new(c));
        }
    }
    let default = rt.block_on(team.registry.acquire_role(&team.cfg.routing.default)).map_err(|e| e.to_string())?;
    Ok(default.backend().clone())
}

#[derive(Args, Debug)]
pub struct RouteArgs {
    /// The request text (the last user message).
    pub text: String,
    /// Config file with [roles.*] tables.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The request's `model` field.
    #[arg(long, default_value = "auto")]
    pub model: String,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `augur route "text"`: the decision and why; the front door model loads
/// only when the rules do not decide.
pub fn route(a: RouteArgs) -> Result<()> {
    let cfg = Arc::new(load_team(&a.config)?.context("the config has no [roles.*] tables")?);
    let input = RouteInput { model: Some(&a.model), text: &a.text };
    let mut decision = Router::new(cfg.clone(), None).decide_by_rules(input)?;
    if decision.is_none() {
        decision = Some(Router::new(cfg.clone(), classifier(&cfg)?).decide(input)?);
    }
    let d = decision.context("no decision")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        println!("role:  {}\nchain: {}\nby:    {:?}\nwhy:   {}", d.role, d.chain.join(" -> "), d.by, d.why);
    }
    Ok(())
}

fn classifier(cfg: &TeamConfig) -> Result<Option<Arc<dyn Classify>>> {
    let Some(front) = &cfg.routing.classifier else { return Ok(None) };
    let Some(model) = cfg.roles.get(front).and_then(|r| r.model.as_ref()).and_then(|m| cfg.models.get(m)) else {
        return Ok(None);
    };
    let path = Store::open_default()?.ensure(&model.source, true)?;
    let params = ModelParams { overrides: model.overrides.clone(), ..ModelParams::default() };
    Ok(Some(Arc::new(ModelClassifier::load(&path, &params, model.threads)?)))
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Check a config file: unknown keys, missing models, unknown roles,
    /// draft vocabularies, model files (without downloading).
    Check { file: PathBuf },
}

pub fn config(a: ConfigArgs) -> Result<()> {
    let ConfigCommand::Check { file } = a.command;
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    augur_server::ServerOptions::from_toml(&text).with_context(|| format!("{}: server settings", file.display()))?;
    let cfg = TeamConfig::from_toml(&text).with_context(|| format!("{}", file.display()))?;
    let store = Store::open_default()?;
    let resolve = |src: &str| store.resolve(src).map_err(|e| e.to_string());
    let paths = check_files(&cfg, &resolve).with_context(|| format!("{}", file.display()))?;
    println!(
        "{}: ok ({} models, {} roles, {} routing rules)",
        file.display(),
        paths.len(),
        cfg.roles.len(),
        cfg.routing.rules.len()
    );
    Ok(())
}
