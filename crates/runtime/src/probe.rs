//! Scoring prompts in a small context of their own: the logits after a
//! prompt, without a generation loop (the team's classifier, and the load
//! check that a model produces finite logits at all).

use std::path::Path;
use std::sync::Arc;

use augur_engine::{Batch, Context, ContextParams, Model, ModelParams};
use augur_sampling::Token;

use crate::text::Tokenizer;
use crate::RuntimeError;

pub struct Scorer {
    ctx: Context,
    batch: Batch,
    tokenizer: Tokenizer,
}

impl Scorer {
    /// Load `path` for scoring only.
    pub fn load(path: &Path, params: &ModelParams, n_ctx: u32, threads: Option<i32>) -> Result<Scorer, RuntimeError> {
        Scorer::on(Arc::new(Model::load(path, params)?), n_ctx, threads)
    }

    /// A context of `n_ctx` cells on already loaded weights.
    pub(crate) fn on(model: Arc<Model>, n_ctx: u32, threads: Option<i32>) -> Result<Scorer, RuntimeError> {
        let mut params = ContextParams { n_ctx, n_batch: n_ctx, n_ubatch: n_ctx.min(512), ..Default::default() };
        if let Some(t) = threads {
            params.threads = t;
            params.threads_batch = t;
        }
        let ctx = Context::new(model.clone(), &params)?;
        let batch = Batch::new(n_ctx as usize, 1)?;
        Ok(Scorer { ctx, batch, tokenizer: Tokenizer::new(model) })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn n_ctx(&self) -> u32 {
        self.ctx.n_ctx()
    }

    /// Decode `tokens` at positions from `pos` (the cells before it are
    /// whatever was fed before) and return the logits after the last one.
    pub fn feed(&mut self, tokens: &[Token], pos: usize) -> Result<&[f32], RuntimeError> {
        let Some(last) = tokens.len().checked_sub(1) else {
            return Err(RuntimeError::InvalidRequest("nothing to score".into()));
        };
        if pos + tokens.len() > self.ctx.n_ctx() as usize {
            return Err(RuntimeError::ContextOverflow {
                prompt: pos + tokens.len(),
                max_tokens: 0,
                n_ctx: self.n_ctx(),
            });
        }
        self.tokenizer.check(tokens)?;
        self.batch.clear();
        for (i, &t) in tokens.iter().enumerate() {
            self.batch.add(t, crate::generate::pos(pos + i)?, &[0], i == last)?;
        }
        self.ctx.decode(&self.batch)?;
        self.ctx.logits(last).ok_or_else(|| RuntimeError::internal("the scorer's decode returned no logits"))
    }

    /// Forget every cell from position `from` on.
    pub fn truncate(&mut self, from: usize) -> Result<(), RuntimeError> {
        self.ctx.kv_remove(0, crate::generate::pos(from)?, -1)?;
        Ok(())
    }
}
