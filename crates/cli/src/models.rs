//! `augur pull` and `augur models`.

use anyhow::Result;
use augur_store::Store;
use clap::Args;

#[derive(Args)]
pub struct PullArgs {
    /// Catalogue name, path to a .gguf file, or hf:OWNER/REPO/FILE.gguf.
    pub spec: String,
}

#[derive(Args)]
pub struct ModelsArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn pull(a: PullArgs) -> Result<()> {
    let store = Store::open_default()?;
    let pulled = store.pull(&a.spec, true)?;
    println!("{}", pulled.path.display());
    Ok(())
}

pub fn list(a: ModelsArgs) -> Result<()> {
    let store = Store::open_default()?;
    let entries = store.list();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    println!("{:<28} {:>10} {:<10} {:>8} {:<8} STATUS", "NAME", "SIZE", "ARCH", "PARAMS", "QUANT");
    for e in &entries {
        let status = e.error.as_deref().map_or_else(|| "ok".to_string(), |r| format!("invalid: {r}"));
        println!(
            "{:<28} {:>10} {:<10} {:>8} {:<8} {}",
            e.name,
            human_bytes(e.size),
            e.arch.as_deref().unwrap_or("-"),
            e.params.map_or_else(|| "-".into(), augur_store::human_params),
            e.quant.as_deref().unwrap_or("-"),
            status
        );
    }
    if entries.is_empty() {
        eprintln!("no models in {}; try `augur pull qwen2.5-coder-1.5b`", store.root().display());
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}
