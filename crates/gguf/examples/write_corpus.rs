//! Writes the tiny llama models and the hostile corpus to a directory:
//! `cargo run -p augur-gguf --example write_corpus -- OUT_DIR`.

use std::path::PathBuf;

use augur_gguf::writer::{tiny_llama, TinyLlamaOpts, TinyMoe};

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "gguf-corpus".into()));
    let hostile = dir.join("hostile");
    std::fs::create_dir_all(&hostile)?;
    tiny_llama(&TinyLlamaOpts::default()).write_to(&dir.join("tiny-llama.gguf"))?;
    let moe = TinyMoe { n_expert: 4, n_expert_used: 2 };
    let opts = TinyLlamaOpts { moe: Some(moe), ..TinyLlamaOpts::default() };
    tiny_llama(&opts).write_to(&dir.join("tiny-llama-moe.gguf"))?;
    // Small enough for a fuzzer's input size limit, header and data both.
    let small = TinyLlamaOpts { n_embd: 8, n_layer: 1, n_head: 2, n_head_kv: 1, n_ff: 16, ..TinyLlamaOpts::default() };
    tiny_llama(&small).write_to(&dir.join("tiny-llama-small.gguf"))?;
    let variants = augur_gguf::hostile::variants();
    for (name, bytes) in &variants {
        let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        std::fs::write(hostile.join(format!("{safe}.gguf")), bytes)?;
    }
    println!("wrote 3 valid models and {} hostile variants to {}", variants.len(), dir.display());
    Ok(())
}
