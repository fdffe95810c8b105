//! Measuring what verifying k tokens costs on this machine, once per model
//! and machine, cached on disk.

use std::path::{Path, PathBuf};

use augur_engine::{Batch, Context};
use augur_sampling::Token;
use augur_spec::{CostCurve, MAX_DRAFT};

use crate::RuntimeError;

/// Batch sizes measured; the rest of 1..=MAX_DRAFT+1 is interpolated.
const POINTS: [usize; 16] = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 65];
/// Tokens of context in front of the measured batch, like a real request.
const CONTEXT: usize = 128;
const REPS: usize = 2;

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
    format!("{cpu}|cores={cores}|threads={threads}|{}", fnv(&info))
}

fn fnv(s: &str) -> String {
    let h = s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
    format!("{h:016x}")
}

fn cache_path(dir: &Path, model_id: &str, machine: &str) -> PathBuf {
    let safe: String = model_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
    dir.join(format!("{safe}-{}.json", fnv(machine)))
}

/// The cached curve for this model and machine, or a fresh measurement
/// (saved atomically for next time). A corrupt cache is re-measured.
pub fn load_or_measure(
    ctx: &mut Context,
    batch: &mut Batch,
    model_id: &str,
    threads: i32,
    dir: Option<&Path>,
) -> Result<CostCurve, RuntimeError> {
    let machine = machine_id(threads);
    let path = dir.map(|d| cache_path(d, model_id, &machine));
    if let Some(curve) = path.as_deref().and_then(|p| CostCurve::load(p).ok()) {
        if curve.model_id == model_id && curve.machine_id == machine && curve.costs.len() > MAX_DRAFT {
            return Ok(curve);
        }
    }
    let invariant_batch = invariant_batch(ctx, batch)?;
    let costs = measure(ctx, batch, invariant_batch)?;
    let curve = CostCurve {
        model_id: model_id.into(),
        machine_id: machine,
        threads: threads.max(1) as u32,
        costs,
        invariant_batch,
    };
    if let Some(p) = &path {
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
fn probe_token(i: usize, n_vocab: i32) -> Token {
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

/// Time a verify of k tokens, as the driver runs it (chunks of the
/// invariant size, all logits on), for each measured k.
fn measure(ctx: &mut Context, batch: &mut Batch, chunk: usize) -> Result<Vec<f64>, RuntimeError> {
    probe_context(ctx, batch)?;
    let cap = batch.capacity();
    let mut points = Vec::with_capacity(POINTS.len());
    for &k in POINTS.iter().filter(|&&k| k <= cap) {
        let mut best = f64::INFINITY;
        for _ in 0..REPS {
            best = best.min(decode_chunked(ctx, batch, k, chunk, |_| {})?);
        }
        points.push((k, best));
    }
    ctx.kv_remove(0, -1, -1)?;
    CostCurve::interpolate(&points, MAX_DRAFT + 1).map_err(|e| RuntimeError::InvalidRequest(e.to_string()))
}
