//! A reusable llama.cpp token batch.

use augur_sampling::Token;
use llama_cpp_sys_2 as sys;

use crate::error::{EngineError, Result};

/// Tokens to decode in one call, each with its position, sequence ids and
/// whether its logits are wanted. Allocated once and reused across steps.
pub struct Batch {
    raw: sys::llama_batch,
    capacity: usize,
    n_seq_max: usize,
    outputs: usize,
    /// Some entry belongs to a sequence other than 0 alone.
    other_seqs: bool,
}

// SAFETY: the batch owns its buffers exclusively; moving it between threads is
// fine, sharing is not (no Sync).
unsafe impl Send for Batch {}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: raw came from llama_batch_init and is freed exactly once.
        unsafe { sys::llama_batch_free(self.raw) }
    }
}

impl Batch {
    /// A batch for up to `capacity` tokens, each in up to `n_seq_max` sequences.
    pub fn new(capacity: usize, n_seq_max: usize) -> Result<Batch> {
        let cap = i32::try_from(capacity)
            .ok()
            .filter(|&c| c > 0)
            .ok_or(EngineError::Param { name: "batch capacity", why: format!("{capacity} is not in 1..=i32::MAX") })?;
        let seqs = i32::try_from(n_seq_max)
            .ok()
            .filter(|&s| s > 0)
            .ok_or(EngineError::Param { name: "n_seq_max", why: format!("{n_seq_max} is not in 1..=i32::MAX") })?;
        // SAFETY: sizes are positive; embd = 0 allocates token ids.
        let raw = unsafe { sys::llama_batch_init(cap, 0, seqs) };
        if raw.token.is_null() || raw.pos.is_null() || raw.seq_id.is_null() || raw.logits.is_null() {
            return Err(EngineError::Param { name: "batch", why: "allocation failed".into() });
        }
        Ok(Batch { raw, capacity, n_seq_max, outputs: 0, other_seqs: false })
    }

    pub fn clear(&mut self) {
        self.raw.n_tokens = 0;
        self.outputs = 0;
        self.other_seqs = false;
    }

    /// How many entries asked for logits.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    pub fn len(&self) -> usize {
        self.raw.n_tokens as usize
    }

    pub fn is_empty(&self) -> bool {
        self.raw.n_tokens == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Append a token; returns its index in the batch (the index whose logits
    /// `Context::logits` returns when `logits` is true).
    pub fn add(&mut self, token: Token, pos: i32, seq_ids: &[i32], logits: bool) -> Result<usize> {
        let i = self.len();
        if i >= self.capacity {
            return Err(EngineError::BatchFull { capacity: self.capacity });
        }
        if seq_ids.is_empty() || seq_ids.len() > self.n_seq_max {
            return Err(EngineError::Param {
                name: "seq_ids",
                why: format!("{} ids, batch allows 1..={}", seq_ids.len(), self.n_seq_max),
            });
        }
        // SAFETY: i < capacity, the length every array was allocated with;
        // seq_id[i] points at n_seq_max ids and seq_ids.len() <= n_seq_max.
        unsafe {
            *self.raw.token.add(i) = token;
            *self.raw.pos.add(i) = pos;
            *self.raw.n_seq_id.add(i) = seq_ids.len() as i32;
            let dst = *self.raw.seq_id.add(i);
            std::ptr::copy_nonoverlapping(seq_ids.as_ptr(), dst, seq_ids.len());
            *self.raw.logits.add(i) = i8::from(logits);
        }
        self.raw.n_tokens += 1;
        self.outputs += usize::from(logits);
        self.other_seqs |= seq_ids != [0];
        Ok(i)
    }

    /// Every entry belongs to sequence 0 alone.
    pub fn only_seq0(&self) -> bool {
        !self.other_seqs
    }

    /// The tokens currently in the batch.
    pub fn tokens(&self) -> &[Token] {
        // SAFETY: the first n_tokens entries were written by `add`.
        unsafe { std::slice::from_raw_parts(self.raw.token, self.len()) }
    }

    pub(crate) fn raw(&self) -> sys::llama_batch {
        self.raw
    }
}
