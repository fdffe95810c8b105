//! Drives the CLI's `augur bench` code (crates/cli/src/bench.rs) standalone,
//! so it can be built and tried without the whole `augur` binary.

#[path = "../../cli/src/bench.rs"]
mod bench;

use clap::Parser;

#[derive(Parser)]
#[command(name = "augur-bench")]
struct Cli {
    #[command(flatten)]
    args: bench::BenchArgs,
}

fn main() {
    // Loads models without the binary's child-process probe.
    if let Err(e) = bench::bench(Cli::parse().args, |_| Ok(())) {
        eprintln!("augur bench: error: {e:#}");
        std::process::exit(1);
    }
}
