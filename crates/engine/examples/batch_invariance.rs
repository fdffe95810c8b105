//! Are llama.cpp's logits for a token the same whether it is decoded alone or
//! inside a batch of k? Prints, per k and per repack setting, the largest
//! logit difference against one-token-at-a-time decoding.
//!
//! usage: [FA=1] [VCACHE=q8_0] [REPS=6] batch_invariance MODEL.gguf [threads]
//! (flash attention; the value cache type; how many copies of the text make
//! the context: 6 reach llama.cpp's split-KV path at 512 cells, 2 do not)

use std::sync::Arc;

use augur_engine::{Batch, Context, ContextParams, Model, ModelParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = std::path::PathBuf::from(args.get(1).ok_or("usage: batch_invariance MODEL [threads]")?);
    let threads: i32 = args.get(2).map_or(Ok(2), |s| s.parse())?;
    let text = "fn fibonacci(n: u64) -> u64 {\n    match n {\n        0 => 0,\n        1 => 1,\n        _ => fibonacci(n - 1) + fibonacci(n - 2),\n    }\n}\n\nfn main() {\n    for i in 0..10 {\n        println!(\"{}\", fibonacci(i));\n    }\n}\n";
    let fa = std::env::var("FA").is_ok_and(|v| v == "1");
    for repack in [false, true] {
        let model = Arc::new(Model::load(&path, &ModelParams { repack, ..Default::default() })?);
        let toks = model.tokenize(text, true, false)?;
        let reps = std::env::var("REPS").ok().and_then(|r| r.parse().ok()).unwrap_or(6);
        let long: Vec<i32> = std::iter::repeat_n(toks.iter().copied(), reps).flatten().collect();
        let (prompt, rest) = long.split_at(long.len() - 64);
        let rest = &rest[..rest.len().min(64)];
        let params = ContextParams {
            n_ctx: 1024,
            n_batch: 512,
            threads,
            threads_batch: threads,
            flash_attn: fa,
            value_cache: match std::env::var("VCACHE").as_deref() {
                Ok("q8_0") => augur_engine::ValueCache::Q8_0,
                Ok("bf16") => augur_engine::ValueCache::Bf16,
                _ => augur_engine::ValueCache::F16,
            },
            ..Default::default()
        };
        let mut ctx = Context::new(model.clone(), &params)?;
        let reference = run(&mut ctx, prompt, rest, 1)?;
        for k in [1usize, 2, 3, 4, 8, 16, 32, 64] {
            let got = run(&mut ctx, prompt, rest, k)?;
            let (mut max, mut argmax_diff) = (0f32, 0);
            for (a, b) in reference.iter().zip(&got) {
                max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(max, f32::max);
                argmax_diff += usize::from(augur_engine::sampling::argmax(a) != augur_engine::sampling::argmax(b));
            }
            println!("fa={fa} repack={repack} k={k:>2}: max |logit diff| = {max:.6}, argmax differs at {argmax_diff}/{} positions", rest.len());
        }
    }
    Ok(())
}

/// Prefill `prompt` alone, then decode `rest` in chunks of k, all logits on.
fn run(ctx: &mut Context, prompt: &[i32], rest: &[i32], k: usize) -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error>> {
    ctx.kv_clear();
    let mut batch = Batch::new(512, 1)?;
    for (i, &t) in prompt.iter().enumerate() {
        batch.add(t, i as i32, &[0], false)?;
    }
    ctx.decode(&batch)?;
    let t0 = std::time::Instant::now();
    let mut out = Vec::new();
    for (c, chunk) in rest.chunks(k).enumerate() {
        batch.clear();
        for (i, &t) in chunk.iter().enumerate() {
            batch.add(t, (prompt.len() + c * k + i) as i32, &[0], true)?;
        }
        ctx.decode(&batch)?;
        for i in 0..chunk.len() {
            out.push(ctx.logits(i).ok_or("no logits")?.to_vec());
        }
    }
    if k == 1 {
        eprintln!("{} single-token decodes after {} prompt tokens: {:?}", rest.len(), prompt.len(), t0.elapsed());
    }
    Ok(out)
}
