//! An inference context: KV cache plus compute buffers, owned by one thread.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llama_cpp_sys_2 as sys;

use crate::backend;
use crate::batch::Batch;
use crate::error::{EngineError, Result};
use crate::kv_state::{self, ValueLayout};
use crate::model::Model;

/// Default prefill chunk (see `ContextParams::n_batch`).
pub const DEFAULT_BATCH: u32 = 128;

/// Context settings.
#[derive(Debug, Clone)]
pub struct ContextParams {
    /// KV cache size in tokens.
    pub n_ctx: u32,
    /// Largest batch one decode call takes; also the prefill chunk, and so
    /// the granularity of prefix reuse (only whole aligned chunks are
    /// reused). Small enough that a chat turn reuses most of the last one,
    /// large enough that prefill speed does not suffer.
    pub n_batch: u32,
    /// Physical micro-batch; larger batches are split into these.
    pub n_ubatch: u32,
    /// Distinct sequences the cache holds (tree drafts, several requests).
    pub n_seq_max: u32,
    pub threads: i32,
    pub threads_batch: i32,
    /// Flash attention. Off by default: llama.cpp's CPU flash attention takes
    /// a split-KV path for a single query over a long cache, so one token
    /// alone and the same token in a verify batch get different logits.
    pub flash_attn: bool,
    pub value_cache: ValueCache,
    /// Prefill sequence 0 in a second context on llama.cpp's fast batched
    /// kernels and carry its cells over; this context then runs flash
    /// attention with bf16 values, whose verify batches match one-token
    /// decoding (see `split.rs`). Overrides `flash_attn` and `value_cache`.
    pub split_prefill: bool,
}

/// Element type of the KV cache's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueCache {
    #[default]
    F16,
    /// Keys (f16) and values of different types keep llama.cpp's CPU flash
    /// attention off its split-KV path for single queries, so one token
    /// alone and the same token in a verify batch attend alike. (f32 values
    /// would not do: llama.cpp casts them to f16 for flash attention.)
    Q8_0,
    /// Also keeps flash attention off the split-KV path with f16 keys, and
    /// unlike q8_0 holds any f16 value rounded to 8 significant bits rather
    /// than rotated and quantised per block, so values computed elsewhere in
    /// f16 can be carried over by rounding alone.
    Bf16,
}

impl Default for ContextParams {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as i32);
        Self {
            n_ctx: 4096,
            n_batch: DEFAULT_BATCH,
            n_ubatch: DEFAULT_BATCH,
            n_seq_max: 1,
            threads,
            threads_batch: threads,
            flash_attn: false,
            value_cache: ValueCache::F16,
            split_prefill: false,
        }
    }
}

/// A handle that can stop a running decode from another thread.
#[derive(Clone)]
pub struct AbortHandle(Arc<AtomicBool>);

impl AbortHandle {
    pub fn abort(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What one decode call cost.
#[derive(Debug, Clone, Copy)]
pub struct DecodeTiming {
    pub n_tokens: usize,
    pub elapsed: Duration,
}

/// One llama.cpp context. `Send` so a worker thread can own it, not `Sync`:
/// every method that touches llama.cpp state takes `&mut self`, and logits
/// borrow the context, so they cannot outlive the next decode.
pub struct Context {
    ptr: NonNull<sys::llama_context>,
    model: Arc<Model>,
    abort: Arc<AtomicBool>,
    n_ctx: u32,
    n_batch: u32,
    n_seq_max: u32,
    values: ValueLayout,
    pub(crate) split: Option<Box<crate::split::Split>>,
    n_outputs: usize,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

// SAFETY: llama.cpp contexts may be used from any thread as long as only one
// uses it at a time, which `&mut self` and !Sync guarantee.
unsafe impl Send for Context {}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: ptr came from llama_init_from_model and is freed once, before
        // the Arc<Model> it uses is released.
        unsafe { sys::llama_free(self.ptr.as_ptr()) }
    }
}

// SAFETY: llama.cpp calls this with the `data` pointer given alongside it
// in `set_cancel_flag`, which is always an `AtomicBool` kept alive by the
// Context; it is never called after `llama_free`.
unsafe extern "C" fn abort_callback(data: *mut std::ffi::c_void) -> bool {
    // SAFETY: data points at the AtomicBool owned by the Context's Arc, which
    // outlives the llama.cpp context (it is dropped after llama_free).
    unsafe { (*data.cast::<AtomicBool>()).load(Ordering::Relaxed) }
}

impl Context {
    pub fn new(model: Arc<Model>, params: &ContextParams) -> Result<Context> {
        if params.split_prefill {
            return crate::split::new(model, params);
        }
        validate(params)?;
        backend::init();
        // SAFETY: plain value constructor.
        let mut cp = unsafe { sys::llama_context_default_params() };
        cp.n_ctx = params.n_ctx;
        cp.n_batch = params.n_batch;
        cp.n_ubatch = params.n_ubatch.min(params.n_batch);
        cp.n_seq_max = params.n_seq_max;
        cp.n_threads = params.threads;
        cp.n_threads_batch = params.threads_batch;
        cp.kv_unified = true;
        cp.flash_attn_type =
            if params.flash_attn { sys::LLAMA_FLASH_ATTN_TYPE_ENABLED } else { sys::LLAMA_FLASH_ATTN_TYPE_DISABLED };
        cp.type_v = match params.value_cache {
            ValueCache::F16 => sys::GGML_TYPE_F16,
            ValueCache::Q8_0 => sys::GGML_TYPE_Q8_0,
            ValueCache::Bf16 => sys::GGML_TYPE_BF16,
        };
        cp.no_perf = true;
        backend::clear_recent();
        // SAFETY: the model pointer is live (we hold an Arc to it).
        let raw = unsafe { sys::llama_init_from_model(model.as_ptr(), cp) };
        let ptr = NonNull::new(raw)
            .ok_or_else(|| EngineError::Context { n_ctx: params.n_ctx, detail: backend::recent_errors() })?;
        let abort = Arc::new(AtomicBool::new(false));
        // SAFETY: the callback only reads the AtomicBool, kept alive by `abort`.
        unsafe {
            sys::llama_set_abort_callback(ptr.as_ptr(), Some(abort_callback), Arc::as_ptr(&abort).cast_mut().cast())
        };
        // SAFETY: live context.
        let n_ctx = unsafe { sys::llama_n_ctx(ptr.as_ptr()) };
        Ok(Context {
            ptr,
            model,
            abort,
            n_ctx,
            n_batch: params.n_batch,
            n_seq_max: params.n_seq_max,
            values: ValueLayout { ty: cp.type_v as u32, transposed: !params.flash_attn },
            split: None,
            n_outputs: 0,
            _not_sync: PhantomData,
        })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    pub fn n_ctx(&self) -> u32 {
        self.n_ctx
    }

    /// Most tokens one `decode` takes.
    pub fn n_batch(&self) -> u32 {
        self.n_batch
    }

    pub(crate) fn abort_flag(&self) -> Arc<AtomicBool> {
        self.abort.clone()
    }

    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle(self.abort.clone())
    }

    /// Make decodes abort while `flag` is set: each request brings its own
    /// cancellation flag, so a client that leaves stops even a long prefill.
    pub fn set_cancel_flag(&mut self, flag: Arc<AtomicBool>) {
        // SAFETY: the callback reads the AtomicBool that `flag` keeps alive;
        // the old one is released only after the new pointer is registered.
        unsafe {
            sys::llama_set_abort_callback(self.ptr.as_ptr(), Some(abort_callback), Arc::as_ptr(&flag).cast_mut().cast())
        };
        if let Some(split) = &mut self.split {
            split.pre.set_cancel_flag(flag.clone());
        }
        self.abort = flag;
    }

    /// Run the model over `batch`. Token ids and sequence ids are checked here
    /// so a bad id is an error, not undefined behaviour inside llama.cpp.
    pub fn decode(&mut self, batch: &Batch) -> Result<DecodeTiming> {
        self.sync()?;
        if batch.is_empty() {
            return Ok(DecodeTiming { n_tokens: 0, elapsed: Duration::ZERO });
        }
        // llama.cpp aborts the process on a batch over n_batch.
        if batch.len() > self.n_batch as usize {
            return Err(EngineError::BatchFull { capacity: self.n_batch as usize });
        }
        let n_vocab = self.model.n_vocab();
        if let Some(&bad) = batch.tokens().iter().find(|&&t| t < 0 || t >= n_vocab) {
            return Err(EngineError::TokenOutOfRange { token: bad, n_vocab });
        }
        self.n_outputs = 0;
        let start = Instant::now();
        // SAFETY: the batch's arrays are valid for n_tokens entries; ids were
        // checked above and seq ids are checked by llama.cpp against n_seq_max.
        let rc = unsafe { sys::llama_decode(self.ptr.as_ptr(), batch.raw()) };
        let elapsed = start.elapsed();
        match rc {
            0 => {
                self.n_outputs = batch.outputs();
                Ok(DecodeTiming { n_tokens: batch.len(), elapsed })
            }
            1 => Err(EngineError::KvFull { n_ctx: self.n_ctx }),
            2 => Err(EngineError::Aborted),
            other => Err(EngineError::Decode(other)),
        }
    }

    /// Logits of the batch entry `index` of the last decode (one that asked
    /// for logits). The slice borrows the context, so the next decode cannot
    /// invalidate it behind the caller's back.
    pub fn logits(&self, index: usize) -> Option<&[f32]> {
        if let Some(pre) = self.prefilled_last() {
            return pre.logits(index);
        }
        let i = i32::try_from(index).ok()?;
        // SAFETY: llama.cpp returns null for an index without logits; a
        // non-null pointer addresses n_vocab floats owned by the context.
        unsafe {
            let p = sys::llama_get_logits_ith(self.ptr.as_ptr(), i);
            (!p.is_null()).then(|| std::slice::from_raw_parts(p, self.model.n_vocab() as usize))
        }
    }

    /// Logits of every entry of the last decode that asked for them, in batch
    /// order, as one `outputs × n_vocab` slice.
    pub fn logits_all(&self) -> Option<&[f32]> {
        if let Some(pre) = self.prefilled_last() {
            return pre.logits_all();
        }
        if self.n_outputs == 0 {
            return None;
        }
        let n = self.n_outputs.checked_mul(self.model.n_vocab() as usize)?;
        // SAFETY: after a successful decode llama.cpp holds n_outputs rows of
        // n_vocab logits contiguously, in batch order; the slice borrows self.
        unsafe {
            let p = sys::llama_get_logits(self.ptr.as_ptr());
            (!p.is_null()).then(|| std::slice::from_raw_parts(p, n))
        }
    }

    fn memory(&self) -> sys::llama_memory_t {
        // SAFETY: live context; the memory handle lives as long as it.
        unsafe { sys::llama_get_memory(self.ptr.as_ptr()) }
    }

    fn check_seq(&self, seq: i32) -> Result<()> {
        if seq < 0 || seq as u32 >= self.n_seq_max {
            return Err(EngineError::Param { name: "seq_id", why: format!("{seq} not in 0..{}", self.n_seq_max) });
        }
        Ok(())
    }

    /// Drop cells of `seq` at positions [p0, p1); a negative bound is open.
    pub fn kv_remove(&mut self, seq: i32, p0: i32, p1: i32) -> Result<bool> {
        self.check_seq(seq)?;
        if let (0, Some(split)) = (seq, &mut self.split) {
            split.pre.kv_remove(0, p0, p1)?;
        }
        // SAFETY: live memory handle, seq in range.
        Ok(unsafe { sys::llama_memory_seq_rm(self.memory(), seq, p0, p1) })
    }

    /// Make `dst` share `src`'s cells at positions [p0, p1).
    pub fn kv_copy(&mut self, src: i32, dst: i32, p0: i32, p1: i32) -> Result<()> {
        self.sync()?;
        self.check_seq(src)?;
        self.check_seq(dst)?;
        // SAFETY: live memory handle, both seqs in range.
        unsafe { sys::llama_memory_seq_cp(self.memory(), src, dst, p0, p1) };
        Ok(())
    }

    /// Drop every cell not in `seq`.
    pub fn kv_keep(&mut self, seq: i32) -> Result<()> {
        self.sync()?;
        self.check_seq(seq)?;
        // SAFETY: live memory handle, seq in range.
        unsafe { sys::llama_memory_seq_keep(self.memory(), seq) };
        Ok(())
    }

    pub fn kv_clear(&mut self) {
        if let Some(split) = &mut self.split {
            split.pre.kv_clear();
            split.stale = false;
        }
        // SAFETY: live memory handle.
        unsafe { sys::llama_memory_clear(self.memory(), true) }
    }

    /// The cells of `seq` (positions, keys and values) as bytes, to put back
    /// later with [`Context::set_seq_state`] on a context of the same model
    /// and settings.
    pub fn seq_state(&mut self, seq: i32) -> Result<Vec<u8>> {
        self.check_seq(seq)?;
        // Sequence 0's cells are the prefill context's; this one holds a
        // rounded copy, which could not be put back there exactly.
        if let (0, Some(split)) = (seq, &mut self.split) {
            return split.pre.seq_state(0);
        }
        // SAFETY: live context, seq in range.
        let size = unsafe { sys::llama_state_seq_get_size(self.ptr.as_ptr(), seq) };
        let mut bytes = vec![0u8; size];
        // SAFETY: `bytes` has `size` writable bytes; llama.cpp writes at most that.
        let written = unsafe { sys::llama_state_seq_get_data(self.ptr.as_ptr(), bytes.as_mut_ptr(), size, seq) };
        if written != size {
            return Err(EngineError::SeqState("save"));
        }
        Ok(bytes)
    }

    /// Replace the cells of `seq` with a state saved by
    /// [`Context::seq_state`]; in an empty cache they take cells from 0 on,
    /// as a prefill of the same tokens would.
    pub fn set_seq_state(&mut self, seq: i32, bytes: &[u8]) -> Result<()> {
        self.check_seq(seq)?;
        if let (0, Some(split)) = (seq, &mut self.split) {
            split.pre.set_seq_state(0, bytes)?;
            split.stale = true;
            return Ok(());
        }
        self.load_seq_state(seq, bytes)
    }

    fn load_seq_state(&mut self, seq: i32, bytes: &[u8]) -> Result<()> {
        // SAFETY: live context, seq in range; llama.cpp reads at most
        // `bytes.len()` bytes and checks the layout before using them.
        let read = unsafe { sys::llama_state_seq_set_data(self.ptr.as_ptr(), bytes.as_ptr(), bytes.len(), seq) };
        if read == 0 {
            return Err(EngineError::SeqState("restore"));
        }
        Ok(())
    }

    /// Replace the cells of `seq` with those of `seq` in `src`, a context of
    /// the same model whose keys are stored alike but whose values may differ
    /// in type (f32, f16, bf16) or layout (flash attention or not): a prompt
    /// prefilled where prefill is fast, decoded where decoding is exact.
    /// Values are converted by rounding to this context's type.
    pub fn copy_seq_from(&mut self, src: &mut Context, seq: i32) -> Result<()> {
        if !Arc::ptr_eq(&self.model, &src.model) {
            return Err(EngineError::Param { name: "src", why: "a context of another model".into() });
        }
        // Multi-axis positions add per-cell data of a size llama.cpp does
        // not export; such models keep one context.
        if self.model.multi_axis_positions() {
            return Err(EngineError::Param { name: "src", why: "multi-axis positions are not carried over".into() });
        }
        let blob = src.seq_state(seq)?;
        let converted = kv_state::convert(&blob, self.values, 0).map_err(EngineError::KvState)?;
        self.load_seq_state(seq, &converted)
    }

    /// Highest position stored for `seq`, or None when it is empty.
    pub fn kv_pos_max(&self, seq: i32) -> Option<i32> {
        self.check_seq(seq).ok()?;
        if let Some(pre) = self.stale_pre(seq) {
            return pre.kv_pos_max(0);
        }
        // SAFETY: live memory handle, seq in range.
        let p = unsafe { sys::llama_memory_seq_pos_max(self.memory(), seq) };
        (p >= 0).then_some(p)
    }

    /// Lowest position stored for `seq`, or None when it is empty.
    pub fn kv_pos_min(&self, seq: i32) -> Option<i32> {
        self.check_seq(seq).ok()?;
        if let Some(pre) = self.stale_pre(seq) {
            return pre.kv_pos_min(0);
        }
        // SAFETY: live memory handle, seq in range.
        let p = unsafe { sys::llama_memory_seq_pos_min(self.memory(), seq) };
        (p >= 0).then_some(p)
    }
}

fn validate(p: &ContextParams) -> Result<()> {
    let check = |name: &'static str, ok: bool, v: i64| {
        if ok {
            Ok(())
        } else {
            Err(EngineError::Param { name, why: format!("{v} is out of range") })
        }
    };
    check("n_ctx", (16..=1 << 22).contains(&p.n_ctx), p.n_ctx.into())?;
    check("n_batch", (1..=1 << 16).contains(&p.n_batch), p.n_batch.into())?;
    check("n_ubatch", (1..=1 << 16).contains(&p.n_ubatch), p.n_ubatch.into())?;
    check("n_seq_max", (1..=256).contains(&p.n_seq_max), p.n_seq_max.into())?;
    check("threads", (1..=1024).contains(&p.threads), p.threads.into())?;
    check("threads_batch", (1..=1024).contains(&p.threads_batch), p.threads_batch.into())
}
