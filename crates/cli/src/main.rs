//! The `augur` command.

mod models;
mod run;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "augur", version, about = "Fast, lossless speculative LLM inference on CPUs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt with one model.
    Run(run::RunArgs),
    /// Fetch a model into the store: a catalogue name, a .gguf path, or hf:OWNER/REPO/FILE.
    Pull(models::PullArgs),
    /// List the models in the store.
    Models(models::ModelsArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Pull(a) => models::pull(a),
        Command::Models(a) => models::list(a),
    };
    if let Err(e) = result {
        eprintln!("augur: error: {e:#}");
        std::process::exit(1);
    }
}
