//! Prefill speed at the engine alone: one prompt decoded in one call, with
//! physical batches of 128 and of 512, twice each. Separates llama.cpp's
//! own prefill speed (as built here) from anything the runtime adds.
//!
//! usage: prefill_speed MODEL.gguf PROMPT.txt [threads]

use std::sync::Arc;

use augur_engine::{Batch, Context, ContextParams, Model, ModelParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(prompt)) = (args.get(1), args.get(2)) else {
        return Err("usage: prefill_speed MODEL.gguf PROMPT.txt [threads]".into());
    };
    let threads: i32 = args.get(3).map_or(Ok(2), |s| s.parse())?;
    let model = Arc::new(Model::load(std::path::Path::new(path), &ModelParams::default())?);
    let toks = model.tokenize(&std::fs::read_to_string(prompt)?, true, false)?;
    let n = toks.len() as u32;
    for ubatch in [128u32, 512] {
        let params = ContextParams {
            n_ctx: n + 16,
            n_batch: n,
            n_ubatch: ubatch,
            threads,
            threads_batch: threads,
            ..Default::default()
        };
        let mut ctx = Context::new(model.clone(), &params)?;
        let mut batch = Batch::new(n as usize, 1)?;
        for _ in 0..2 {
            ctx.kv_clear();
            batch.clear();
            for (i, &t) in toks.iter().enumerate() {
                batch.add(t, i as i32, &[0], i + 1 == toks.len())?;
            }
            let t0 = std::time::Instant::now();
            ctx.decode(&batch)?;
            let secs = t0.elapsed().as_secs_f64();
            println!("ubatch {ubatch}: {n} tokens in {secs:.2} s: {:.1} t/s", f64::from(n) / secs);
        }
    }
    Ok(())
}
