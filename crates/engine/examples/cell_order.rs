//! Does a token's logits depend on where its context sits in the KV cache?
//! A tree draft puts sibling branches side by side in one cache, so a node
//! on a second branch sees its ancestors with other branches' cells (masked
//! out) between them. This decodes the same continuation three ways and
//! compares the logits bitwise:
//!   - plain: the continuation right after the prompt, one token at a time;
//!   - gap: one unrelated token of another sequence first takes the next
//!     cell, so the continuation's cells are shifted by one, with a masked
//!     cell between the prompt and them (what a second branch sees);
//!   - hole: the same unrelated token, removed again before decoding, so the
//!     continuation refills the hole (what the linear verifier does after a
//!     rejection).
//!
//! usage: [FA=1] [VCACHE=q8_0] cell_order MODEL.gguf [threads]

use std::sync::Arc;

use augur_engine::{Batch, Context, ContextParams, Model, ModelParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = std::path::PathBuf::from(args.get(1).ok_or("usage: cell_order MODEL [threads]")?);
    let threads: i32 = args.get(2).map_or(Ok(2), |s| s.parse())?;
    let text = "fn fibonacci(n: u64) -> u64 {\n    match n {\n        0 => 0,\n        1 => 1,\n        _ => fibonacci(n - 1) + fibonacci(n - 2),\n    }\n}\n";
    let model = Arc::new(Model::load(&path, &ModelParams::default())?);
    let toks = model.tokenize(text, true, false)?;
    let long: Vec<i32> = std::iter::repeat_n(toks.iter().copied(), 4).flatten().collect();
    let (prompt, rest) = long.split_at(long.len() - 16);
    let params = ContextParams {
        n_ctx: 1024,
        n_batch: 512,
        n_seq_max: 2,
        threads,
        threads_batch: threads,
        flash_attn: std::env::var("FA").is_ok_and(|v| v == "1"),
        value_cache: match std::env::var("VCACHE").as_deref() {
            Ok("q8_0") => augur_engine::ValueCache::Q8_0,
            _ => augur_engine::ValueCache::F16,
        },
        ..Default::default()
    };
    let mut ctx = Context::new(model.clone(), &params)?;
    let plain = run(&mut ctx, prompt, rest, Layout::Plain)?;
    for layout in [Layout::Gap, Layout::Hole] {
        let got = run(&mut ctx, prompt, rest, layout)?;
        let (mut max, mut differ) = (0f32, 0);
        for (a, b) in plain.iter().zip(&got) {
            max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(max, f32::max);
            differ += usize::from(a != b);
        }
        println!("{layout:?}: {differ}/{} positions not bit-identical, max |logit diff| = {max:.6}", rest.len());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    Plain,
    Gap,
    Hole,
}

fn run(
    ctx: &mut Context,
    prompt: &[i32],
    rest: &[i32],
    layout: Layout,
) -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error>> {
    ctx.kv_clear();
    let mut batch = Batch::new(512, 2)?;
    for (i, &t) in prompt.iter().enumerate() {
        batch.add(t, i as i32, &[0], false)?;
    }
    ctx.decode(&batch)?;
    if layout != Layout::Plain {
        // Sequence 1 shares the prompt; its token takes the next free cell.
        ctx.kv_copy(0, 1, 0, prompt.len() as i32)?;
        batch.clear();
        batch.add(rest[rest.len() - 1], prompt.len() as i32, &[1], false)?;
        ctx.decode(&batch)?;
        if layout == Layout::Hole {
            ctx.kv_remove(1, -1, -1)?;
        }
    }
    let mut out = Vec::new();
    for (i, &t) in rest.iter().enumerate() {
        batch.clear();
        batch.add(t, (prompt.len() + i) as i32, &[0], true)?;
        ctx.decode(&batch)?;
        out.push(ctx.logits(0).ok_or("no logits")?.to_vec());
    }
    Ok(out)
}
