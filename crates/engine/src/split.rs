//! Split prefill: a context that prefills in a second one.
//!
//! llama.cpp's batched kernels that make prefill fast (llamafile's sgemm
//! for the attention products) compute a row differently from the
//! single-token path, so a verify batch run on them would not match plain
//! decoding. Flash attention with keys and values of different types keeps
//! every batch size up to the weights' invariant one on the same path, but
//! prefills long prompts slowly (no tiling). So sequence 0's prompt is
//! decoded in a companion context (no flash attention, f16 values) and its
//! cells are carried into this one (flash attention, bf16 values) before this
//! one next runs. Every mode prefills the same way, so plain and speculative
//! decoding still see the same cells; a warm prefix is the prefill context's
//! own, saved and restored there.

use std::sync::Arc;

use crate::batch::Batch;
use crate::context::{Context, ContextParams, DecodeTiming, ValueCache};
use crate::error::{EngineError, Result};
use crate::model::Model;

/// The prefill context of a split [`Context`].
pub(crate) struct Split {
    pub pre: Context,
    /// Sequence 0 changed in `pre` since it was last carried over.
    pub stale: bool,
    /// The last decode ran in `pre`, so logits are read there.
    pub last_was_pre: bool,
}

pub(crate) fn new(model: Arc<Model>, params: &ContextParams) -> Result<Context> {
    let decode =
        ContextParams { split_prefill: false, flash_attn: true, value_cache: ValueCache::Bf16, ..params.clone() };
    let prefill = ContextParams {
        split_prefill: false,
        flash_attn: false,
        value_cache: ValueCache::F16,
        n_seq_max: 1,
        ..params.clone()
    };
    let mut ctx = Context::new(model.clone(), &decode)?;
    // Multi-axis positions carry per-cell data the state converter does not
    // parse; such models prefill where they decode.
    if model.multi_axis_positions() {
        return Ok(ctx);
    }
    let mut pre = Context::new(model, &prefill)?;
    pre.set_cancel_flag(ctx.abort_flag());
    ctx.split = Some(Box::new(Split { pre, stale: false, last_was_pre: false }));
    // A cache layout the converter does not know (recurrent state, say)
    // shows on the first carry-over: then prefill where it decodes.
    if carry_one_token(&mut ctx).is_err() {
        ctx.split = None;
    }
    ctx.kv_clear();
    Ok(ctx)
}

fn carry_one_token(ctx: &mut Context) -> Result<()> {
    let mut batch = Batch::new(1, 1)?;
    batch.add(ctx.model().bos().unwrap_or(0), 0, &[0], false)?;
    ctx.prefill(&batch)?;
    ctx.sync()
}

impl Context {
    /// Decode a prompt chunk of sequence 0 (prefill). Same as
    /// [`Context::decode`] unless the context was made with `split_prefill`,
    /// in which case it runs in the prefill context and the cells follow
    /// before this context next decodes.
    pub fn prefill(&mut self, batch: &Batch) -> Result<DecodeTiming> {
        let Some(split) = self.split.as_deref_mut() else {
            return self.decode(batch);
        };
        if !batch.only_seq0() {
            return Err(EngineError::Param { name: "batch", why: "a prefill batch holds sequence 0 only".into() });
        }
        split.last_was_pre = true;
        split.stale = true;
        split.pre.decode(batch)
    }

    /// Whether a prefill context is in use.
    pub fn splits_prefill(&self) -> bool {
        self.split.is_some()
    }

    /// Carry sequence 0 over from the prefill context if it changed there.
    pub(crate) fn sync(&mut self) -> Result<()> {
        let Some(mut split) = self.split.take() else { return Ok(()) };
        split.last_was_pre = false;
        let done = if split.stale { self.copy_seq_from(&mut split.pre, 0) } else { Ok(()) };
        split.stale = done.is_err();
        self.split = Some(split);
        done
    }

    /// The prefill context, when the last decode ran there.
    pub(crate) fn prefilled_last(&self) -> Option<&Context> {
        self.split.as_deref().filter(|s| s.last_was_pre).map(|s| &s.pre)
    }

    /// The prefill context, when sequence 0 there is newer than here.
    pub(crate) fn stale_pre(&self, seq: i32) -> Option<&Context> {
        self.split.as_deref().filter(|s| s.stale && seq == 0).map(|s| &s.pre)
    }
}
