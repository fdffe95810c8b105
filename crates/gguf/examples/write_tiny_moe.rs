//! Writes the synthetic qwen3moe model (random weights, 64 experts, 8 used,
//! about 100 MB) that the MoE tests and benchmarks use:
//! `cargo run --release -p augur-gguf --example write_tiny_moe -- OUT.gguf`.

use std::path::PathBuf;

use augur_gguf::writer::{tiny_qwen3moe, TinyQwen3MoeOpts};

fn main() -> std::io::Result<()> {
    let path = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "tiny-qwen3moe.gguf".into()));
    let opts = TinyQwen3MoeOpts::default();
    tiny_qwen3moe(&opts).write_to(&path)?;
    let size = std::fs::metadata(&path)?.len();
    println!("wrote {} ({size} bytes): {opts:?}", path.display());
    Ok(())
}
