//! `augur bench`: run prompt suites against target configurations, then
//! compare, plot and report stored runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use augur_bench::import::{self, ImportPlan};
use augur_bench::load::{self, LoadPlan};
use augur_bench::meta::{command_line, Record};
use augur_bench::{compare, plot, protocol, report, store, suite, template, Plan, Sweep, TargetConfig, TextPolicy};
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Measure suites against one or more target configurations.
    Run(RunArgs),
    /// Speed ratios (B over A) per suite, with quality alongside.
    Compare(CompareArgs),
    /// An SVG bar chart of decode tokens/s per suite per configuration.
    Plot(PlotArgs),
    /// A Markdown section per run on stdout, or a document rendered from a template.
    Report(ReportArgs),
    /// Store measurements made by other programs (JSON lines) as a run.
    Import(ImportArgs),
    /// Latency and throughput of servers under several numbers of concurrent clients.
    Load(LoadArgs),
    /// List the suites and their prompts.
    Suites(SuitesArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Suite names (comma-separated or repeated), or `all`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub suite: Vec<String>,
    /// A configuration: MODEL, or key=value pairs joined by commas (name,
    /// model, spec=off|lookup|draft|suffix|auto, spec_max, draft, experts,
    /// threads, ctx, endpoint). Repeatable; the first is the baseline.
    #[arg(long = "target", value_name = "CONFIG")]
    pub targets: Vec<String>,
    /// An OpenAI-compatible server to measure as one more target.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Model name sent to --endpoint.
    #[arg(long, default_value = "default")]
    pub endpoint_model: String,
    /// Configuration the others must match token for token (default: the first).
    #[arg(long)]
    pub baseline: Option<String>,
    #[arg(long, default_value_t = protocol::MIN_ITERATIONS)]
    pub iterations: u32,
    /// Allow fewer than 3 iterations (CI smoke runs only).
    #[arg(long, hide = true)]
    pub allow_fewer_iterations: bool,
    /// Use only the first K prompts of each suite.
    #[arg(long)]
    pub max_prompts: Option<usize>,
    /// Sweep one setting: spec_max=4,8,16 | mode=off,lookup,auto | experts=2,4 | threads=1,2.
    #[arg(long)]
    pub sweep: Vec<String>,
    /// Sampling temperature; the greedy-identity check needs 0.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skip the per-prompt quality checks (python, json_schema, ...).
    #[arg(long)]
    pub no_checks: bool,
    /// A configuration (same syntax as --target) that grades each distinct
    /// output 0-3 after the run.
    #[arg(long)]
    pub judge: Option<String>,
    /// Exit non-zero when any configuration's text differs from the baseline's.
    #[arg(long)]
    pub strict: bool,
    /// Where run directories and index.jsonl go.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Suite directory (default: bench/prompts/v1).
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// Store each output's SHA-256 instead of its text (for committed results).
    #[arg(long)]
    pub hash_only: bool,
    #[command(flatten)]
    pub record: RecordArgs,
}

/// How a run is described for the documents made from it.
#[derive(Args, Debug, Clone)]
pub struct RecordArgs {
    /// A name documents refer to the run by (the latest run with it wins).
    #[arg(long)]
    pub label: Option<String>,
    /// The exact command line of a server or other program the measurement
    /// depended on (repeatable).
    #[arg(long = "server-command", value_name = "COMMAND")]
    pub server_commands: Vec<String>,
    /// Version of another program measured, as NAME=VERSION (repeatable).
    #[arg(long = "peer", value_name = "NAME=VERSION", value_parser = parse_peer)]
    pub peers: Vec<(String, String)>,
}

impl RecordArgs {
    fn record(&self, command: String) -> Record {
        Record {
            command,
            commands: self.server_commands.clone(),
            peers: self.peers.iter().cloned().collect(),
            label: self.label.clone(),
        }
    }
}

fn parse_peer(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok((k.trim().into(), v.trim().into())),
        _ => Err(format!("{s:?}: expected NAME=VERSION")),
    }
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// JSON lines, one measurement each (see `augur_bench::import`).
    pub file: PathBuf,
    /// The exact command that made the measurements (default: this one).
    #[arg(long)]
    pub command: Option<String>,
    /// Configuration whose output hashes the others must match (default: the first).
    #[arg(long)]
    pub baseline: Option<String>,
    /// CONFIG=BASE: check CONFIG against BASE instead of the baseline (a
    /// configuration that loads the model differently, as `--spec-tree`
    /// does, against its own plain run). Repeatable.
    #[arg(long, value_parser = config_pair)]
    pub identity: Vec<(String, String)>,
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Discarded warm-up runs per configuration, as the measuring script did them.
    #[arg(long, default_value_t = 0)]
    pub warmup: u32,
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    #[command(flatten)]
    pub record: RecordArgs,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// A server to measure: name=...,model=...,endpoint=URL (repeatable; measured in turn).
    #[arg(long = "target", value_name = "CONFIG", required = true)]
    pub targets: Vec<String>,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8")]
    pub clients: Vec<usize>,
    /// Requests per level, shared among its clients.
    #[arg(long, default_value_t = 16)]
    pub requests: usize,
    /// max_tokens of every request (default: each prompt's own).
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// The suite whose prompts the clients send, in turn.
    #[arg(long)]
    pub suite: String,
    #[arg(long)]
    pub max_prompts: Option<usize>,
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seconds a request may keep being refused with 429 before it counts as an error.
    #[arg(long, default_value_t = 600)]
    pub max_wait: u64,
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    #[command(flatten)]
    pub record: RecordArgs,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Run id or directory.
    pub a: String,
    /// Run id or directory (default: A again, comparing its configurations with its baseline).
    pub b: Option<String>,
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    pub run: String,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run ids, labels or directories (default: every run in the index).
    pub run: Vec<String>,
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Render this template (e.g. docs/BENCHMARKS.in.md) from the runs instead.
    #[arg(long, conflicts_with = "run")]
    pub template: Option<PathBuf>,
    /// Write the rendered template here (atomically) instead of stdout.
    #[arg(long, requires = "template")]
    pub out: Option<PathBuf>,
    /// Write nothing; fail if --out differs from the rendered template.
    #[arg(long, requires = "out")]
    pub check: bool,
}

#[derive(Args, Debug)]
pub struct SuitesArgs {
    #[arg(long)]
    pub prompts: Option<PathBuf>,
}

/// Checks the models a plan's in-process targets load before they are
/// loaded (the `augur` binary probes new files in a child process); `bench
/// load` measures endpoints only.
pub type ModelCheck = fn(&[TargetConfig]) -> Result<()>;

pub fn bench(args: BenchArgs, check: ModelCheck) -> Result<()> {
    match args.command {
        BenchCommand::Run(a) => run(a, check),
        BenchCommand::Compare(a) => {
            let ra = store::load(&a.runs, &a.a)?;
            let rb = match &a.b {
                Some(b) => store::load(&a.runs, b)?,
                None => ra.clone(),
            };
            out(&compare::render(&ra, &rb, &compare::compare(&ra, &rb)))
        }
        BenchCommand::Plot(a) => {
            plot::svg(&store::load(&a.runs, &a.run)?, &a.out)?;
            eprintln!("augur bench: wrote {}", a.out.display());
            Ok(())
        }
        BenchCommand::Report(a) => report_cmd(a),
        BenchCommand::Import(a) => import_cmd(a),
        BenchCommand::Load(a) => load_cmd(a),
        BenchCommand::Suites(a) => list_suites(&prompts_dir(a.prompts)),
    }
}

/// `bench/prompts/v1` under the current directory, else the source tree's.
fn prompts_dir(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let local = Path::new("bench/prompts/v1");
        if local.is_dir() {
            local.to_path_buf()
        } else {
            suite::default_dir()
        }
    })
}

fn targets(a: &RunArgs) -> Result<Vec<TargetConfig>> {
    let mut t = a.targets.iter().map(|s| TargetConfig::parse(s)).collect::<Result<Vec<_>, _>>()?;
    if let Some(url) = &a.endpoint {
        t.push(TargetConfig::endpoint(url, &a.endpoint_model));
    }
    if t.is_empty() {
        bail!("give at least one --target CONFIG or --endpoint URL");
    }
    for s in &a.sweep {
        t = Sweep::parse(s)?.expand(&t)?;
    }
    Ok(t)
}

fn run(a: RunArgs, check: ModelCheck) -> Result<()> {
    let suites = suite::select(&prompts_dir(a.prompts.clone()), &a.suite)?;
    let mut plan = Plan::new(suites, targets(&a)?, a.out.clone());
    plan.baseline = a.baseline.clone();
    plan.iterations = a.iterations;
    plan.allow_fewer_iterations = a.allow_fewer_iterations;
    plan.max_prompts = a.max_prompts;
    plan.temperature = a.temperature;
    plan.seed = a.seed;
    plan.checks = !a.no_checks;
    plan.judge = a.judge.as_deref().map(TargetConfig::parse).transpose()?;
    plan.progress = true;
    plan.record = a.record.record(command_line());
    if a.hash_only {
        plan.text = TextPolicy::HashOnly;
    }
    check(&plan.targets.iter().chain(&plan.judge).cloned().collect::<Vec<_>>())?;
    let outcome = augur_bench::execute(&plan)?;
    let run = store::load(&a.out, &outcome.run_id)?;
    out(&report::markdown(std::slice::from_ref(&run)))?;
    eprintln!("augur bench: results in {}", outcome.dir.display());
    if !outcome.mismatches.is_empty() {
        eprintln!("augur bench: {} GREEDY-IDENTITY MISMATCH(ES) against the baseline", outcome.mismatches.len());
        if a.strict {
            bail!(augur_bench::BenchError::Mismatch { count: outcome.mismatches.len() });
        }
    }
    Ok(())
}

fn report_cmd(a: ReportArgs) -> Result<()> {
    if let Some(t) = &a.template {
        return render_template(t, &a.runs, a.out.as_deref(), a.check);
    }
    let ids =
        if a.run.is_empty() { store::read_index(&a.runs)?.into_iter().map(|e| e.run_id).collect() } else { a.run };
    let runs = ids.iter().map(|r| store::resolve(&a.runs, r)).collect::<Result<Vec<_>, _>>()?;
    out(&report::markdown(&runs))
}

fn render_template(template: &Path, runs: &Path, dest: Option<&Path>, check: bool) -> Result<()> {
    let text = template::render_file(template, runs)?;
    match dest {
        None => out(&text),
        Some(d) if check => {
            let old = std::fs::read_to_string(d).with_context(|| format!("reading {}", d.display()))?;
            if old != text {
                bail!("{} is stale: regenerate it from {}", d.display(), template.display());
            }
            Ok(())
        }
        Some(d) => {
            store::write_atomic(d, text.as_bytes())?;
            eprintln!("augur bench: wrote {}", d.display());
            Ok(())
        }
    }
}

fn config_pair(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((c, b)) if !c.is_empty() && !b.is_empty() => Ok((c.to_string(), b.to_string())),
        _ => Err(format!("expected CONFIG=BASE, got {s:?}")),
    }
}

fn import_cmd(a: ImportArgs) -> Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let plan = ImportPlan {
        file: a.file.clone(),
        runs_dir: a.out.clone(),
        record: a.record.record(a.command.clone().unwrap_or_else(command_line)),
        baseline: a.baseline.clone(),
        identity: a.identity.clone(),
        temperature: a.temperature,
        warmup: a.warmup,
    };
    let done = import::import(&plan)?;
    out(&report::markdown(&[store::load(&a.out, &done.run_id)?]))?;
    eprintln!("augur bench: imported {} row(s) into {}", done.rows, done.dir.display());
    if done.mismatches > 0 {
        eprintln!("augur bench: {} GREEDY-IDENTITY MISMATCH(ES) against the baseline", done.mismatches);
    }
    Ok(())
}

fn load_cmd(a: LoadArgs) -> Result<()> {
    let mut suites = suite::select(&prompts_dir(a.prompts.clone()), std::slice::from_ref(&a.suite))?;
    let targets = a.targets.iter().map(|s| TargetConfig::parse(s)).collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut plan = LoadPlan::new(suites.remove(0), targets, a.out.clone());
    plan.max_prompts = a.max_prompts;
    plan.clients = a.clients.clone();
    plan.requests = a.requests;
    plan.max_tokens = a.max_tokens;
    plan.temperature = a.temperature;
    plan.seed = a.seed;
    plan.max_wait = Duration::from_secs(a.max_wait);
    plan.record = a.record.record(command_line());
    let outcome = load::execute_load(&plan)?;
    out(&report::markdown(&[store::load(&a.out, &outcome.run_id)?]))?;
    eprintln!("augur bench: results in {}", outcome.dir.display());
    Ok(())
}

fn list_suites(dir: &Path) -> Result<()> {
    let suites = suite::load_all(dir).with_context(|| format!("loading suites from {}", dir.display()))?;
    let mut text = String::new();
    for s in suites {
        text.push_str(&format!("{} (v{}): {}\n", s.suite, s.version, s.description.trim()));
        for p in &s.prompts {
            text.push_str(&format!("  {:<28} ~{} tokens, max {}\n", p.id, p.estimated_tokens(), p.max_tokens));
        }
    }
    out(&text)
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
