//! Prefill in one context, decode in another: is it faster, and is it exact?
//!
//! Prefills PROMPT in a context with llama.cpp's fast prefill path (no flash
//! attention, f16 values; with `P_FA=1`, flash attention with f16 keys and
//! values), carries the cells over (`Context::copy_seq_from`) into a decode
//! context with flash attention and bf16 values, and then:
//! - times both against a prefill in the decode context itself;
//! - decodes N tokens greedily one at a time, then again in verify chunks of
//!   2..=4 after a fresh copy, and prints whether each chunk size gave the
//!   one-at-a-time logits bit for bit;
//! - says how many of those greedy tokens a decode in the prefill context
//!   alone would have picked the same (the quality cost of bf16 values).
//!
//! usage: [P_FA=1] split_prefill MODEL.gguf PROMPT.txt [N=32] [threads]

use std::sync::Arc;
use std::time::Instant;

use augur_engine::{sampling::argmax, Batch, Context, ContextParams, Model, ModelParams, ValueCache};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(prompt)) = (args.get(1), args.get(2)) else {
        return Err("usage: split_prefill MODEL.gguf PROMPT.txt [N] [threads]".into());
    };
    let n_gen: usize = args.get(3).map_or(Ok(32), |s| s.parse())?;
    let threads: i32 = args.get(4).map_or(Ok(2), |s| s.parse())?;
    let model = Arc::new(Model::load(std::path::Path::new(path), &ModelParams::default())?);
    let toks = model.tokenize(&std::fs::read_to_string(prompt)?, true, false)?;
    let base = ContextParams {
        n_ctx: toks.len() as u32 + n_gen as u32 + 16,
        threads,
        threads_batch: threads,
        ..Default::default()
    };
    let p_fa = std::env::var("P_FA").is_ok_and(|v| v == "1");
    let mut pre = Context::new(model.clone(), &ContextParams { flash_attn: p_fa, ..base.clone() })?;
    let mut dec =
        Context::new(model.clone(), &ContextParams { flash_attn: true, value_cache: ValueCache::Bf16, ..base })?;
    let mut batch = Batch::new(pre.n_batch() as usize, 1)?;

    let t = Instant::now();
    let first = prefill(&mut pre, &mut batch, &toks)?;
    let t_pre = t.elapsed().as_secs_f64();
    let t = Instant::now();
    dec.copy_seq_from(&mut pre, 0)?;
    let t_copy = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut direct = Context::new(dec.model().clone(), &ContextParams { n_ctx: dec.n_ctx(), ..dec_params(threads) })?;
    prefill(&mut direct, &mut batch, &toks)?;
    let t_direct = t.elapsed().as_secs_f64();
    drop(direct);
    let n = toks.len() as f64;
    println!(
        "{} prompt tokens: prefill context {:.1} t/s + copy {:.3} s = {:.1} t/s; decode context alone {:.1} t/s",
        toks.len(),
        n / t_pre,
        t_copy,
        n / (t_pre + t_copy),
        n / t_direct
    );

    // Greedy continuation, one token at a time, in the decode context.
    let mut gen = vec![first];
    let mut reference = Vec::new();
    for i in 0..n_gen {
        let logits = decode(&mut dec, &mut batch, &gen[i..=i], toks.len() + i)?;
        gen.push(argmax(&logits[0]).ok_or("empty logits")?);
        reference.extend(logits);
    }
    for k in 2..=4 {
        dec.copy_seq_from(&mut pre, 0)?;
        let mut got = Vec::new();
        for (c, chunk) in gen[..n_gen].chunks(k).enumerate() {
            got.extend(decode(&mut dec, &mut batch, chunk, toks.len() + c * k)?);
        }
        println!("verify chunk {k}: {}", if got == reference { "identical" } else { "DIFFERS" });
    }
    // The same continuation scored in the prefill context.
    let mut same = 0;
    for (i, &t) in gen[..n_gen].iter().enumerate() {
        let logits = decode(&mut pre, &mut batch, &[t], toks.len() + i)?;
        same += usize::from(argmax(&logits[0]) == Some(gen[i + 1]));
    }
    println!("greedy tokens the prefill context agrees with: {same}/{n_gen}");
    Ok(())
}

fn dec_params(threads: i32) -> ContextParams {
    ContextParams {
        flash_attn: true,
        value_cache: ValueCache::Bf16,
        threads,
        threads_batch: threads,
        ..Default::default()
    }
}

/// Prefill in chunks of the context's batch; the greedy next token.
fn prefill(ctx: &mut Context, batch: &mut Batch, toks: &[i32]) -> Res<i32> {
    ctx.kv_clear();
    let chunk = ctx.n_batch() as usize;
    let mut last = 0;
    for (c, part) in toks.chunks(chunk).enumerate() {
        batch.clear();
        for (i, &t) in part.iter().enumerate() {
            let pos = c * chunk + i;
            batch.add(t, pos as i32, &[0], pos + 1 == toks.len())?;
        }
        ctx.decode(batch)?;
        last = part.len() - 1;
    }
    Ok(argmax(ctx.logits(last).ok_or("no logits")?).ok_or("empty logits")?)
}

/// Decode `toks` at positions from `pos`, all logits on.
fn decode(ctx: &mut Context, batch: &mut Batch, toks: &[i32], pos: usize) -> Res<Vec<Vec<f32>>> {
    batch.clear();
    for (i, &t) in toks.iter().enumerate() {
        batch.add(t, (pos + i) as i32, &[0], true)?;
    }
    ctx.decode(batch)?;
    (0..toks.len()).map(|i| Ok(ctx.logits(i).ok_or("no logits")?.to_vec())).collect()
}
