//! Can a prompt's KV be reused from an unaligned position? Prefills a
//! prompt cold (aligned chunks of B), then again after reusing the first m
//! positions of a different prompt that shares them, and prints, per m,
//! whether the last logits are bit-identical.
//!
//! usage: [GGML_CPU_TILED_MM=0] [REPACK=0] [B=128] prefix_invariance MODEL.gguf [threads]

use std::sync::Arc;

use augur_engine::{Batch, Context, ContextParams, Model, ModelParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = std::path::PathBuf::from(args.get(1).ok_or("usage: prefix_invariance MODEL [threads]")?);
    let threads: i32 = args.get(2).map_or(Ok(2), |s| s.parse())?;
    let b: usize = std::env::var("B").ok().and_then(|v| v.parse().ok()).unwrap_or(128);
    let text = "fn fibonacci(n: u64) -> u64 {\n    match n {\n        0 => 0,\n        1 => 1,\n        _ => fibonacci(n - 1) + fibonacci(n - 2),\n    }\n}\n\nfn main() {\n    for i in 0..10 {\n        println!(\"{}\", fibonacci(i));\n    }\n}\n// A second function, with comments, so the prompt is not periodic.\nfn gcd(a: u64, b: u64) -> u64 { if b == 0 { a } else { gcd(b, a % b) } }\n";
    let repacks: &[bool] = if std::env::var("REPACK").is_ok_and(|v| v == "0") { &[false] } else { &[true] };
    for &repack in repacks {
        let model = Arc::new(Model::load(&path, &ModelParams { repack, ..Default::default() })?);
        let toks = model.tokenize(text, true, false)?;
        let prompt: Vec<i32> = std::iter::repeat_n(toks.iter().copied(), 4).flatten().collect();
        let donor_tail: Vec<i32> = model.tokenize("Something else entirely, to fill the chunk: the quick brown fox jumps over the lazy dog, twice, and a third time for luck.", false, false)?;
        let params = ContextParams {
            n_ctx: 2048,
            n_batch: b as u32,
            n_ubatch: b as u32,
            threads,
            threads_batch: threads,
            ..Default::default()
        };
        let mut ctx = Context::new(model.clone(), &params)?;
        let mut batch = Batch::new(b, 1)?;
        for n in [prompt.len(), prompt.len() - 3] {
            let cold = prefill(&mut ctx, &mut batch, &prompt[..n], 0, b, Schedule::Aligned)?;
            let mut line = format!("repack={repack} B={b} N={n}:");
            for m in [1, 2, 3, 4, 8, 33, 64, 125, 129, 132, 255, n - 8, n - 7, n - 4, n - 3, n - 2, n - 1] {
                if m == 0 || m >= n {
                    continue;
                }
                // The donor shares the first m tokens, then diverges.
                let donor: Vec<i32> = prompt[..m].iter().chain(&donor_tail).copied().collect();
                prefill(&mut ctx, &mut batch, &donor, 0, b, Schedule::Aligned)?;
                ctx.kv_remove(0, m as i32, -1)?;
                let aligned = prefill(&mut ctx, &mut batch, &prompt[m..n], m, b, Schedule::Aligned)?;
                // The same, but chunks counted from m instead of from 0.
                prefill(&mut ctx, &mut batch, &donor, 0, b, Schedule::Aligned)?;
                ctx.kv_remove(0, m as i32, -1)?;
                let from_m = prefill(&mut ctx, &mut batch, &prompt[m..n], m, b, Schedule::FromStart)?;
                let mark = |v: &[f32]| if v == cold.as_slice() { '=' } else { 'x' };
                line.push_str(&format!(" {m}{}{}", mark(&aligned), mark(&from_m)));
            }
            println!("{line}");
        }
    }
    Ok(())
}

/// Where prefill chunks start.
#[derive(Clone, Copy)]
enum Schedule {
    /// At multiples of b, counted from position 0 (what augur does).
    Aligned,
    /// Every b tokens from the first one prefilled.
    FromStart,
}

/// Prefill `tokens` at positions `start..` in chunks of b (clearing the
/// cache first when starting at 0); returns the last token's logits.
fn prefill(
    ctx: &mut Context,
    batch: &mut Batch,
    tokens: &[i32],
    start: usize,
    b: usize,
    schedule: Schedule,
) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    if start == 0 {
        ctx.kv_clear();
    }
    let end = start + tokens.len();
    let mut at = start;
    while at < end {
        let stop = match schedule {
            Schedule::Aligned => (at / b + 1) * b,
            Schedule::FromStart => at + b,
        }
        .min(end);
        decode(ctx, batch, &tokens[at - start..stop - start], at, stop == end)?;
        at = stop;
    }
    Ok(ctx.logits(batch.len() - 1).ok_or("no logits")?.to_vec())
}

fn decode(
    ctx: &mut Context,
    batch: &mut Batch,
    tokens: &[i32],
    pos: usize,
    last: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    batch.clear();
    for (i, &t) in tokens.iter().enumerate() {
        batch.add(t, (pos + i) as i32, &[0], last && i + 1 == tokens.len())?;
    }
    ctx.decode(batch)?;
    Ok(())
}
