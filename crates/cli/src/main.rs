//! The `augur` command.

#![forbid(unsafe_code)]

mod bench;
mod check;
mod models;
mod run;
mod serve;
mod team;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "augur", version, about = "Fast, lossless speculative LLM inference on CPUs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log more (info level unless AUGUR_LOG says otherwise), including
    /// llama.cpp's own output when a model fails its load check.
    #[arg(long, short = 'v', global = true)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt with one model.
    Run(run::RunArgs),
    /// Fetch a model into the store: a catalogue name, a .gguf path, or hf:OWNER/REPO/FILE.
    Pull(models::PullArgs),
    /// List the models in the store.
    Models(models::ModelsArgs),
    /// Serve an OpenAI-compatible HTTP API.
    Serve(serve::ServeArgs),
    /// Measure speed and quality on prompt suites; compare, plot and report runs.
    Bench(bench::BenchArgs),
    /// Load a model once in an isolated child process and report whether it is safe.
    Check(check::CheckArgs),
    /// Show which role a request would go to, and why.
    Route(team::RouteArgs),
    /// Check a config file.
    Config(team::ConfigArgs),
    /// Internal: the child side of `augur check`.
    #[command(hide = true)]
    CheckChild(check::ChildArgs),
}

fn main() {
    let cli = Cli::parse();
    let level = if cli.verbose { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUGUR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Pull(a) => models::pull(a),
        Command::Models(a) => models::list(a),
        Command::Serve(a) => serve::serve(a),
        Command::Bench(a) => bench::bench(a, check::bench_models),
        Command::Check(a) => check::check(a),
        Command::CheckChild(a) => check::child(a),
        Command::Route(a) => team::route(a),
        Command::Config(a) => team::config(a),
    };
    if let Err(e) = result {
        eprintln!("augur: error: {e:#}");
        std::process::exit(1);
    }
}
