//! `augur bench`: run prompt suites against target configurations, then
//! compare, plot and report stored runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use augur_bench::{compare, plot, protocol, report, store, suite, Plan, Sweep, TargetConfig};
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
    /// A Markdown section per run, on stdout.
    Report(ReportArgs),
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
    /// Run ids or directories (default: every run in the index).
    pub run: Vec<String>,
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
}

#[derive(Args, Debug)]
pub struct SuitesArgs {
    #[arg(long)]
    pub prompts: Option<PathBuf>,
}

pub fn bench(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Run(a) => run(a),
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

fn run(a: RunArgs) -> Result<()> {
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
    let ids =
        if a.run.is_empty() { store::read_index(&a.runs)?.into_iter().map(|e| e.run_id).collect() } else { a.run };
    let runs = ids.iter().map(|r| store::load(&a.runs, r)).collect::<Result<Vec<_>, _>>()?;
    out(&report::markdown(&runs))
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
