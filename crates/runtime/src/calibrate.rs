//! Measuring what verifying k tokens costs on this machine, once per model
//! and machine, cached on disk.

use std::path::{Path, PathBuf};

use augur_engine::{Batch, Context};
use augur_sampling::Token;
use augur_spec::{CostCurve, MAX_DRAFT};

use crate::RuntimeError;

/// Tokens of context in front of the measured batch, like a real request.
const CONTEXT: usize = 128;
/// Interleaved passes over the chunk sizes; the minimum per size is kept.
const REPS: usize = 5;
/// Passes whose single-token times differ by more than this factor were
/// disturbed by other work on the machine: such a curve is used but not
/// cached (the online cost estimate corrects it during requests).
const NOISY_SPREAD: f64 = 1.3;

/// Identifies this machine and build: CPU, threads and llama.cpp's features.
pub fn machine_id(threads: i32) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown-cpu".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let info = augur_engine::system_info();
    format!("{cpu}|cores={cores}|threads={threads}|{:016x}", augur_persist::fnv1a(info.as_bytes()))
}

pub(crate) fn cache_path(dir: &Path, model_id: &str, machine: &str) -> PathBuf {
    let safe: String = model_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
    dir.join(format!("{safe}-{:016x}.json", augur_persist::fnv1a(machine.as_bytes())))
}

/// Where a measurement for one model, weight layout and thread count is
/// cached (none: measure at every load).
#[derive(Clone, Copy)]
pub(crate) struct CacheKey<'a> {
    pub model_id: &'a str,
    pub threads: i32,
    pub dir: Option<&'a Path>,
}

/// The cached curve for this model and machine, or a fresh measurement
/// (saved atomically for next time). A corrupt cache is re-measured.
pub(crate) fn load_or_measure(
    ctx: &mut Context,
    batch: &mut Batch,
    key: CacheKey<'_>,
) -> Result<CostCurve, RuntimeError> {
    let CacheKey { model_id, threads, dir } = key;
    let machine = machine_id(threads);
    let path = dir.map(|d| cache_path(d, model_id, &machine));
    if let Some(curve) = path.as_deref().and_then(|p| CostCurve::load(p).ok()) {
        if curve.model_id == model_id && curve.machine_id == machine && curve.costs.len() > MAX_DRAFT {
            return Ok(curve);
        }
    }
    let invariant_batch = invariant_batch(ctx, batch)?;
    let (costs, steady) = measure(ctx, batch, invariant_batch)?;
    let curve = CostCurve {
        model_id: model_id.into(),
        machine_id: machine,
        threads: threads.max(1) as u32,
        costs,
        invariant_batch,
    };
    if !steady {
        tracing::warn!("the machine was busy while measuring verify costs for {model_id}; not caching them");
    }
    if let Some(p) = path.as_ref().filter(|_| steady) {
        if let Some(parent) = p.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Err(e) = curve.save(p) {
            tracing::warn!("could not cache the cost curve at {}: {e}", p.display());
        }
    }
    Ok(curve)
}

/// A deterministic stand-in for real tokens.
pub(crate) fn probe_token(i: usize, n_vocab: i32) -> Token {
    (100 + (i * 7919) % 1000) as i32 % n_vocab.max(1)
}

/// Fill the cache with CONTEXT probe tokens, as a request would have.
fn probe_context(ctx: &mut Context, batch: &mut Batch) -> Result<(), RuntimeError> {
    let n_vocab = ctx.model().n_vocab();
    let context: Vec<Token> = (0..CONTEXT).map(|i| probe_token(i, n_vocab)).collect();
    ctx.kv_remove(0, -1, -1)?;
    crate::generate::prefill(ctx, batch, &context, 0)?;
    Ok(())
}

/// Decode probe tokens CONTEXT..CONTEXT+k in chunks of `chunk`, all logits
/// on, calling `rows` with each chunk's logits; then drop them again.
fn decode_chunked(
    ctx: &mut Context,
    batch: &mut Batch,
    k: usize,
    chunk: usize,
    mut rows: impl FnMut(&[f32]),
) -> Result<f64, RuntimeError> {
    let n_vocab = ctx.model().n_vocab();
    let mut secs = 0.0;
    for start in (0..k).step_by(chunk.max(1)) {
        batch.clear();
        for i in start..(start + chunk).min(k) {
            batch.add(probe_token(CONTEXT + i, n_vocab), (CONTEXT + i) as i32, &[0], true)?;
        }
        secs += ctx.decode(batch)?.elapsed.as_secs_f64();
        rows(ctx.logits_all().unwrap_or(&[]));
    }
    ctx.kv_remove(0, CONTEXT as i32, -1)?;
    Ok(secs)
}

/// The largest batch (up to 16) whose logits are bit-identical to decoding
/// the same tokens one at a time. llama.cpp's CPU kernels change at some
/// batch sizes; this finds out on this machine and build, never assumes.
pub fn invariant_batch(ctx: &mut Context, batch: &mut Batch) -> Result<usize, RuntimeError> {
    const PROBE: usize = 16;
    probe_context(ctx, batch)?;
    let mut reference = Vec::new();
    decode_chunked(ctx, batch, PROBE, 1, |r| reference.extend_from_slice(r))?;
    let mut best = 1;
    for b in 2..=PROBE.min(batch.capacity()) {
        let mut got = Vec::with_capacity(reference.len());
        decode_chunked(ctx, batch, PROBE, b, |r| got.extend_from_slice(r))?;
        if got != reference {
            break;
        }
        best = b;
    }
    ctx.kv_remove(0, -1, -1)?;
    Ok(best)
}

/// Time one decode of each chunk size the verifier uses (1..=chunk rows,
/// all logits on); a verify of k tokens is a run of such chunks, so its
/// cost follows. Passes interleave the sizes, so a burst of other work
/// inflates one pass of every size rather than every pass of one size; the
/// minimum per size drops it. Also says whether the passes agreed (the
/// machine was steady).
fn measure(ctx: &mut Context, batch: &mut Batch, chunk: usize) -> Result<(Vec<f64>, bool), RuntimeError> {
    probe_context(ctx, batch)?;
    let chunk = chunk.clamp(1, batch.capacity());
    let mut best = vec![f64::INFINITY; chunk];
    let (mut fastest, mut slowest) = (f64::INFINITY, 0.0f64);
    for _ in 0..REPS {
        for (i, b) in best.iter_mut().enumerate() {
            let t = decode_chunked(ctx, batch, i + 1, chunk, |_| {})?;
            *b = b.min(t);
            if i == 0 {
                (fastest, slowest) = (fastest.min(t), slowest.max(t));
            }
        }
    }
    ctx.kv_remove(0, -1, -1)?;
    let costs =
        (1..=MAX_DRAFT + 1).map(|k| (k / chunk) as f64 * best[chunk - 1] + rem_cost(&best, k % chunk)).collect();
    Ok((costs, slowest <= fastest * NOISY_SPREAD))
}

fn rem_cost(chunk_costs: &[f64], rows: usize) -> f64 {
    rows.checked_sub(1).and_then(|i| chunk_costs.get(i)).copied().unwrap_or(0.0)
}
