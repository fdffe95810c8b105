//! Pieces of the generation loop: prefill, and the emitter that turns
//! accepted tokens into streamed text. The loop itself is in
//! `speculate::driver`.

use std::time::Instant;

use augur_engine::{Batch, Context, Detokenizer, Model};
use augur_sampling::Token;

use crate::prefix::PrefixCache;
use crate::request::{Event, FinishReason, GenerateRequest, Usage};
use crate::stop::{StopMatcher, StopState};
use crate::RuntimeError;

/// Where a generation's events go. `send` returns false once the consumer
/// has gone, which cancels the generation.
pub trait Sink {
    fn send(&mut self, event: Event) -> bool;
    fn is_closed(&self) -> bool;
}

/// Decode `tokens` at positions `start..` of sequence 0, asking for logits
/// of the last token only. Chunks of the batch size are aligned to absolute
/// positions (`PrefixCache::schedule`), so a token's KV depends only on the
/// tokens up to its chunk's end, never on where this call started: that is
/// what makes a cached prefix reusable without changing the output. Returns
/// the batch index of the last token's logits.
pub fn prefill(ctx: &mut Context, batch: &mut Batch, tokens: &[Token], start: usize) -> Result<usize, RuntimeError> {
    let mut last = 0;
    let end = start + tokens.len();
    for (a, b) in PrefixCache::schedule(batch.capacity(), start, end) {
        batch.clear();
        for (i, &t) in tokens[a - start..b - start].iter().enumerate() {
            last = batch.add(t, pos(a + i)?, &[0], a + i + 1 == end)?;
        }
        ctx.prefill(batch)?;
    }
    Ok(last)
}

pub(crate) fn pos(p: usize) -> Result<i32, RuntimeError> {
    i32::try_from(p).map_err(|_| RuntimeError::internal(format!("position {p} overflows")))
}

/// Turns accepted tokens into streamed text: detokenises, applies stop
/// strings, counts, and decides when the generation is over.
pub struct Emitter<'m> {
    model: &'m Model,
    detok: Detokenizer,
    stop: StopMatcher,
    text: String,
    out: String,
    pub tokens: Vec<Token>,
    max_tokens: usize,
    pub first_token_at: Option<Instant>,
}

impl<'m> Emitter<'m> {
    pub fn new(model: &'m Model, req: &GenerateRequest) -> Self {
        Self {
            model,
            detok: Detokenizer::new(),
            stop: StopMatcher::new(&req.stop),
            text: String::with_capacity(64),
            out: String::with_capacity(64),
            tokens: Vec::with_capacity(req.max_tokens as usize),
            max_tokens: req.max_tokens as usize,
            first_token_at: None,
        }
    }

    /// Accept tokens produced by one step; send their text. Returns a finish
    /// reason when the generation must end (eog, stop string, length, gone).
    pub fn accept(&mut self, new: &[Token], sink: &mut dyn Sink) -> Option<FinishReason> {
        self.first_token_at.get_or_insert_with(Instant::now);
        let mut finish = None;
        let mut n = 0;
        for &t in new {
            if self.model.is_eog(t) {
                self.flush_tail();
                finish = Some(FinishReason::Stop);
                break;
            }
            self.tokens.push(t);
            n += 1;
            self.detok.push(self.model.piece(t), &mut self.text);
            let stopped = self.stop.push(&self.text, &mut self.out) == StopState::Stopped;
            self.text.clear();
            if stopped {
                finish = Some(FinishReason::Stop);
                break;
            }
            if self.tokens.len() >= self.max_tokens {
                self.flush_tail();
                finish = Some(FinishReason::Length);
                break;
            }
        }
        if !self.send(n, sink) {
            return Some(FinishReason::Cancelled);
        }
        finish
    }

    fn flush_tail(&mut self) {
        self.detok.finish(&mut self.text);
        self.stop.push(&self.text, &mut self.out);
        self.text.clear();
        self.stop.flush(&mut self.out);
    }

    fn send(&mut self, n: usize, sink: &mut dyn Sink) -> bool {
        if self.out.is_empty() && n == 0 {
            return !sink.is_closed();
        }
        let text = compact_str::CompactString::from(self.out.as_str());
        self.out.clear();
        sink.send(Event::Text { text, tokens: n })
    }
}

/// Timestamps of one request, turned into `Usage` at the end.
pub struct Clock {
    pub start: Instant,
    pub prefill_done: Instant,
}

impl Clock {
    pub fn usage(&self, prompt_tokens: usize, cached: usize, em: &Emitter<'_>) -> Usage {
        let first = em.first_token_at.unwrap_or(self.prefill_done);
        Usage {
            prompt_tokens,
            completion_tokens: em.tokens.len(),
            cached_tokens: cached,
            prefill_time: self.prefill_done - self.start,
            decode_time: Instant::now().saturating_duration_since(first),
            time_to_first_token: first - self.start,
        }
    }
}
