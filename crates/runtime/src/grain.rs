//! How finely a cached prompt prefix can be reused without changing an
//! output: the *grain*. Measured once per model, machine, weight layout and
//! prefill chunk, and cached next to the cost curves.
//!
//! A prompt's KV is reusable at position m only if a cold prefill of the
//! new prompt would compute positions `0..m` bit for bit as the cached run
//! did. Prefill runs in chunks aligned to multiples of the chunk size, so a
//! whole chunk always qualifies. Whether a row's KV also stays the same
//! when its chunk holds other tokens after it, or starts at m, depends on
//! the kernels: llama.cpp's repacked Q4_K GEMM takes rows in groups of 4
//! (left-over rows take the single-row path), its tiled K-quant matmul
//! switches on at 8 rows, and on AMX every row is computed alike. So the
//! grain is probed, never assumed: the smallest power of two g dividing the
//! chunk for which reusing m = g, 2g, ... positions of a prompt that
//! diverges right after them, then prefilling the rest, gives the cold
//! prefill's logits bit for bit. The chunk itself always qualifies.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use augur_engine::{Batch, Context};
use augur_sampling::Token;
use serde::{Deserialize, Serialize};

use crate::calibrate::{cache_path, machine_id, probe_token, CacheKey};
use crate::generate::prefill;
use crate::RuntimeError;

/// Format version of the cached grain.
const GRAIN_VERSION: u32 = 1;
/// Probe prompts are this long (or a chunk, if shorter) plus a tail of 1
/// and of 7 tokens: reusing every multiple of g up to here leaves tails of
/// every size below 8, where kernels switch paths.
const PROBE_BASE: usize = 64;
const PROBE_TAILS: [usize; 2] = [1, 7];
/// Tokens the donor prompt has after the shared positions.
const DONOR_TAIL: usize = 9;

#[derive(Serialize, Deserialize)]
struct Cached {
    model_id: String,
    machine_id: String,
    chunk: usize,
    grain: usize,
}

/// The cached grain for this model and machine, or a fresh probe (saved
/// atomically for next time).
pub(crate) fn load_or_measure(ctx: &mut Context, batch: &mut Batch, key: CacheKey<'_>) -> Result<usize, RuntimeError> {
    let CacheKey { model_id, threads, dir } = key;
    let machine = machine_id(threads);
    let chunk = batch.capacity();
    let path = dir.map(|d| cache_path(d, model_id, &machine).with_extension("grain.json"));
    let cached = path.as_deref().and_then(|p| std::fs::read_to_string(p).ok());
    if let Some(c) = cached.and_then(|t| augur_persist::sealed::open::<Cached>(&t, GRAIN_VERSION).ok()) {
        if c.model_id == model_id && c.machine_id == machine && c.chunk == chunk && valid(c.grain, chunk) {
            return Ok(c.grain);
        }
    }
    let memo_key = format!("{model_id}|{machine}|{chunk}");
    let memoed = memo().lock().ok().and_then(|m| m.get(&memo_key).copied());
    if let Some(g) = memoed {
        return Ok(g);
    }
    let grain = measure(ctx, batch)?;
    if let Ok(mut m) = memo().lock() {
        m.insert(memo_key, grain);
    }
    if let Some(p) = path {
        let value = Cached { model_id: model_id.into(), machine_id: machine, chunk, grain };
        let written = augur_persist::sealed::seal(GRAIN_VERSION, &value)
            .map_err(std::io::Error::other)
            .and_then(|text| augur_persist::write_atomic(&p, text.as_bytes()));
        if let Err(e) = written {
            tracing::warn!("could not cache the prefix grain at {}: {e}", p.display());
        }
    }
    Ok(grain)
}

/// Grains probed in this process, for workers without a cache directory.
fn memo() -> &'static Mutex<HashMap<String, usize>> {
    static MEMO: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    MEMO.get_or_init(Mutex::default)
}

fn valid(grain: usize, chunk: usize) -> bool {
    grain >= 1 && grain <= chunk && chunk.is_multiple_of(grain)
}

/// Probe the grain on this context (see the module docs).
pub fn measure(ctx: &mut Context, batch: &mut Batch) -> Result<usize, RuntimeError> {
    let chunk = batch.capacity().max(1);
    let n_vocab = ctx.model().n_vocab();
    let mut probes = Vec::new();
    for tail in PROBE_TAILS {
        let prompt: Vec<Token> = (0..chunk.min(PROBE_BASE) + tail).map(|i| probe_token(i, n_vocab)).collect();
        let cold = prefill_logits(ctx, batch, &prompt, 0)?;
        probes.push((prompt, cold));
    }
    // Exactness at g implies it at 2g (its positions are a subset), so a
    // binary search over the powers of two below the chunk, which is exact.
    let powers: Vec<usize> = (0..).map(|i| 1usize << i).take_while(|&g| g < chunk).collect();
    let (mut lo, mut hi) = (0, powers.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        let g = powers[mid];
        let mut exact = chunk.is_multiple_of(g);
        for (prompt, cold) in &probes {
            exact = exact && reuse_is_exact(ctx, batch, prompt, cold, g)?;
        }
        if exact {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let grain = powers.get(lo).copied().unwrap_or(chunk);
    ctx.kv_remove(0, -1, -1)?;
    tracing::info!("prefix reuse is exact in grains of {grain} positions (prefill chunk {chunk})");
    Ok(grain)
}

/// Reuse at the last multiple of g (the shortest tail, where kernels most
/// often switch, first), half way and at g: each after a donor prompt that
/// shares exactly those positions.
fn reuse_is_exact(
    ctx: &mut Context,
    batch: &mut Batch,
    prompt: &[Token],
    cold: &[f32],
    g: usize,
) -> Result<bool, RuntimeError> {
    let n = prompt.len();
    let n_vocab = ctx.model().n_vocab();
    let floor = |x: usize| x / g * g;
    for m in [floor(n - 1), floor(n / 2), g] {
        if m == 0 || m >= n {
            continue;
        }
        let donor: Vec<Token> =
            prompt[..m].iter().copied().chain((0..DONOR_TAIL).map(|i| probe_token(5000 + i, n_vocab))).collect();
        prefill_logits(ctx, batch, &donor, 0)?;
        ctx.kv_remove(0, crate::generate::pos(m)?, -1)?;
        if prefill_logits(ctx, batch, &prompt[m..], m)? != cold {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Prefill `tokens` at `start..` (after clearing the cache when starting at
/// 0) and return the last token's logits.
fn prefill_logits(
    ctx: &mut Context,
    batch: &mut Batch,
    tokens: &[Token],
    start: usize,
) -> Result<Vec<f32>, RuntimeError> {
    if start == 0 {
        ctx.kv_remove(0, -1, -1)?;
    }
    let last = prefill(ctx, batch, tokens, start)?;
    ctx.logits(last).map(<[f32]>::to_vec).ok_or_else(|| RuntimeError::internal("the grain probe got no logits"))
}
