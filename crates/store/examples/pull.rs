//! Pulls models into the default store and prints what landed.
//!
//! `cargo run -p augur-store --example pull -- qwen2.5-coder-0.5b [...]`

use augur_store::Store;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open_default()?;
    let specs: Vec<String> = std::env::args().skip(1).collect();
    if specs.is_empty() {
        return Err("usage: pull NAME|PATH|hf:OWNER/REPO/FILE.gguf ...".into());
    }
    for spec in &specs {
        let started = std::time::Instant::now();
        let m = store.pull(spec, true)?;
        println!("{}", serde_json::to_string(&m)?);
        eprintln!("{spec}: {:.1}s", started.elapsed().as_secs_f64());
    }
    Ok(())
}
