//! The driver: one request through the speculative loop. It owns the KV
//! bookkeeping (prefix reuse, prefill, committed cells, the tree
//! graveyard) and each step asks the proposer for a draft, has the
//! verifier check it, and reports the outcome back.
//!
//! What belongs to one request lives in [`SeqState`], apart from the
//! worker's [`Speculator`], so that several sequences could later share a
//! step's batch.

use std::time::{Duration, Instant};

use augur_engine::{Batch, Context, Model};
use augur_sampling::Token;
use augur_spec::{MAX_DRAFT, TREE_GRAVEYARD_SEQ};

use super::proposer::{Ask, DraftShape, Proposal, Speculator, StepOutcome};
use super::settings::SpecMode;
use super::stats::{SpecStats, StepTimes};
use super::verifier::{verify, Picker, VerifyAt};
use crate::draft::DraftTimes;
use crate::generate::{pos, prefill, Clock, Emitter, Sink};
use crate::prefix::PrefixCache;
use crate::request::{Completion, FinishReason, GenerateRequest, Usage};
use crate::RuntimeError;

/// One request: what the loop keeps per sequence.
struct SeqState<'m> {
    mode: SpecMode,
    fast_forward: bool,
    /// Longest draft the request allows.
    limit_max: usize,
    prompt_len: usize,
    max_tokens: usize,
    picker: Picker,
    em: Emitter<'m>,
    stats: SpecStats,
    /// Prompt and committed output; the last token is pending (not yet in
    /// the KV cache).
    history: Vec<Token>,
    /// Cells of sequence 0: `history` but the pending token.
    n_kv: usize,
    /// Cells this request's rejected tree rows hold (`TREE_GRAVEYARD_SEQ`).
    graveyard: usize,
    /// The draft tokens a step accepted (reused).
    accepted: Vec<Token>,
    finish: Option<FinishReason>,
    /// Time in proposing and in verifying, over the request.
    proposing: Duration,
    verifying: Duration,
}

impl<'m> SeqState<'m> {
    fn new(model: &'m Model, spec: &Speculator, req: &GenerateRequest, prompt: &[Token], picker: Picker) -> Self {
        let mode = req.spec.mode.unwrap_or(spec.settings().mode);
        let mut history = Vec::with_capacity(prompt.len() + req.max_tokens as usize + MAX_DRAFT);
        history.extend_from_slice(prompt);
        Self {
            mode,
            fast_forward: req.spec.fast_forward.unwrap_or(true),
            limit_max: req.spec.max.unwrap_or(spec.settings().spec_max),
            prompt_len: prompt.len(),
            max_tokens: req.max_tokens as usize,
            picker,
            em: Emitter::new(model, req),
            stats: SpecStats { mode: Some(mode), ..SpecStats::default() },
            history,
            n_kv: prompt.len(),
            graveyard: 0,
            accepted: Vec::with_capacity(MAX_DRAFT),
            finish: None,
            proposing: Duration::ZERO,
            verifying: Duration::ZERO,
        }
    }

    /// Commit the accepted draft (`accepted` tokens, in `self.accepted`)
    /// and the target's `next` token; returns where they start in `history`.
    fn commit(&mut self, accepted: usize, next: Token) -> usize {
        let new_from = self.history.len();
        self.history.extend_from_slice(&self.accepted);
        self.history.push(next);
        self.n_kv += accepted + 1;
        new_from
    }

    fn complete(mut self, usage: Usage, draft: DraftTimes) -> Completion {
        self.stats.constraint = self.picker.constraint_report();
        self.stats.time = StepTimes::from_parts(self.proposing, self.verifying, draft);
        let finish_reason = self.finish.unwrap_or(FinishReason::Stop);
        Completion { finish_reason, usage, tokens: std::mem::take(&mut self.em.tokens), spec: self.stats }
    }
}

/// One request through the speculative loop.
///
/// The KV of `prefix` is reused where the prompt starts with it; the rest is
/// prefilled in the same aligned chunks a cold prefill uses, and `prefix`
/// then holds this prompt's full chunks.
pub fn generate(
    ctx: &mut Context,
    batch: &mut Batch,
    spec: &mut Speculator,
    prefix: &mut PrefixCache,
    prompt: &[Token],
    req: &GenerateRequest,
    sink: &mut dyn Sink,
) -> Result<Completion, RuntimeError> {
    let model = ctx.model().clone();
    let picker = Picker::new(req, model.n_vocab() as usize)?;
    let start = Instant::now();
    let (reused, last) = start_request(ctx, batch, spec, prefix, prompt)?;
    let clock = Clock { start, prefill_done: Instant::now() };
    let mut seq = SeqState::new(&model, spec, req, prompt, picker);
    let logits = ctx.logits(last).ok_or_else(|| RuntimeError::internal("no logits"))?;
    let first = seq.picker.pick(logits, 0)?;
    seq.history.push(first);
    seq.finish = seq.em.accept(&[first], sink);
    while seq.finish.is_none() {
        step(ctx, batch, spec, &mut seq, sink)?;
    }
    if spec.settings().tree {
        ctx.kv_remove(TREE_GRAVEYARD_SEQ as i32, -1, -1)?;
        seq.graveyard = 0;
    }
    let usage = clock.usage(prompt.len(), reused, &seq.em);
    spec.finish_request(seq.mode, &seq.history[prompt.len()..]);
    Ok(seq.complete(usage, spec.draft_times()))
}

/// Reuse what `prefix` holds of the prompt, start the proposer's request
/// and prefill the rest. Returns the reused length and the batch index of
/// the last prompt token's logits.
fn start_request(
    ctx: &mut Context,
    batch: &mut Batch,
    spec: &mut Speculator,
    prefix: &mut PrefixCache,
    prompt: &[Token],
) -> Result<(usize, usize), RuntimeError> {
    let reused = prefix.reusable(prompt);
    prefix.truncate(reused);
    ctx.kv_remove(0, pos(reused)?, -1)?;
    spec.begin_request(prompt.len());
    if spec.settings().tree {
        // An earlier request that failed mid-way may have left rows there.
        ctx.kv_remove(TREE_GRAVEYARD_SEQ as i32, -1, -1)?;
    }
    let last = prefill(ctx, batch, &prompt[reused..], reused)?;
    prefix.record(prompt);
    Ok((reused, last))
}

/// One verify step: propose, verify, drop the rejected cells, learn, and
/// emit the committed tokens.
fn step(
    ctx: &mut Context,
    batch: &mut Batch,
    spec: &mut Speculator,
    seq: &mut SeqState<'_>,
    sink: &mut dyn Sink,
) -> Result<(), RuntimeError> {
    let remaining = seq.max_tokens.saturating_sub(seq.em.tokens.len());
    let limit = remaining.saturating_sub(1).min(seq.limit_max);
    let used = seq.n_kv + remaining + seq.graveyard;
    let room = (ctx.n_ctx() as usize).saturating_sub(used);
    let ask = Ask { mode: seq.mode, shape: DraftShape::PathOrTree, history: &seq.history, limit, room };
    let started = Instant::now();
    let mut proposal = propose_step(spec, &mut seq.picker, seq.fast_forward, ask);
    let proposed = Instant::now();
    seq.proposing += proposed - started;
    let pending = seq.history[seq.history.len() - 1];
    let out_pos = (seq.history.len() - seq.prompt_len) as u64;
    let at = VerifyAt { pending, n_kv: seq.n_kv, out_pos };
    let checked = verify(ctx, batch, &mut seq.picker, &mut proposal, &at)?;
    seq.verifying += proposed.elapsed();
    let (plan, tree, verdict) = (proposal.plan, proposal.is_tree(), checked.verdict);
    proposal.accepted(verdict.accepted, &mut seq.accepted);
    seq.graveyard += checked.rejected_rows;
    ctx.kv_remove(0, pos(seq.n_kv + 1 + verdict.accepted)?, -1)?;
    let outcome = StepOutcome { source: plan.source, drafted: checked.drafted, accepted: verdict.accepted };
    spec.observe(&outcome);
    seq.stats.record(plan.source, checked.drafted, verdict.accepted, tree);
    let new_from = seq.commit(verdict.accepted, verdict.next);
    spec.observe_committed(&seq.history[new_from..]);
    seq.finish = seq.em.accept(&seq.history[new_from..], sink);
    Ok(())
}

/// This step's draft: the grammar's forced tokens when it forces any,
/// else the speculation sources' draft cut to what the grammar allows.
fn propose_step<'s>(spec: &'s mut Speculator, picker: &mut Picker, fast_forward: bool, ask: Ask<'_>) -> Proposal<'s> {
    let Some(c) = picker.active_constraint() else {
        return spec.propose(&ask);
    };
    if fast_forward {
        if let Some(plan) = spec.propose_forced(c.forced(), ask.limit) {
            return spec.proposal(plan);
        }
    }
    let mut proposal = spec.propose(&Ask { shape: DraftShape::Path, ..ask });
    let valid = c.valid_prefix(proposal.path());
    proposal.truncate(valid);
    proposal
}
