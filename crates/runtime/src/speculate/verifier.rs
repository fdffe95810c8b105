//! Verification: the target decodes the pending token and the proposal in
//! batch-invariant chunks, and the `Picker` decides its own token at each
//! row. A draft token is accepted iff it is that token, so the output is
//! the one plain decoding gives.

use augur_engine::{Batch, Context};
use augur_grammar::Constraint;
use augur_sampling::{Sampler, Token};
use augur_spec::{CostModel, TreeWalk, Verdict, MAX_DRAFT, MAX_TREE_BRANCHES, TREE_GRAVEYARD_SEQ};

use super::proposer::{Drafted, Proposal};
use super::stats::ConstraintReport;
use crate::generate::pos;
use crate::request::GenerateRequest;
use crate::RuntimeError;

/// Where a step's verification decodes.
pub(crate) struct VerifyAt {
    /// The last committed token, not yet in the cache.
    pub(crate) pending: Token,
    /// Cells of sequence 0 (the committed tokens but `pending`).
    pub(crate) n_kv: usize,
    /// Index, among generated tokens, of the token the first row decides.
    pub(crate) out_pos: u64,
}

/// A verified step.
pub(crate) struct Checked {
    pub(crate) verdict: Verdict,
    /// Draft tokens (tree nodes) that were verified.
    pub(crate) drafted: usize,
    /// Rows of a tree's rejected branches, now in `TREE_GRAVEYARD_SEQ`.
    pub(crate) rejected_rows: usize,
}

/// Verify `proposal` on top of the committed cache. Afterwards sequence 0
/// may still hold rejected rows past `n_kv + 1 + accepted`: the caller
/// removes them.
pub(crate) fn verify(
    ctx: &mut Context,
    batch: &mut Batch,
    picker: &mut Picker,
    proposal: &mut Proposal<'_>,
    at: &VerifyAt,
) -> Result<Checked, RuntimeError> {
    let chunk = proposal.chunk;
    let cost = proposal.cost.as_deref_mut();
    match &mut proposal.draft {
        Drafted::Tree(walk) => {
            let tree_at = TreeAt { n_kv: at.n_kv, chunk, out_pos: at.out_pos };
            let verdict = verify_tree(ctx, batch, picker, walk, &tree_at, cost)?;
            let rejected_rows = walk.decoded_rows().saturating_sub(1 + verdict.accepted);
            Ok(Checked { verdict, drafted: walk.nodes(), rejected_rows })
        }
        Drafted::Path(draft) => {
            let input =
                VerifyInput { pending: at.pending, draft: draft.tokens(), n_kv: at.n_kv, chunk, out_pos: at.out_pos };
            let verdict = verify_chunked(ctx, batch, picker, &input, cost)?;
            Ok(Checked { verdict, drafted: draft.len(), rejected_rows: 0 })
        }
    }
}

/// Chooses the target's token at each output position: greedy or seeded
/// sampling, under the request's constraint when it has one. Every chosen
/// token is committed to the constraint, so its state always matches the
/// accepted output and a rejected draft needs no grammar rollback.
pub(crate) struct Picker {
    sampler: Sampler,
    constraint: Option<Constraint>,
    /// Masked logits at temperature > 0 (reused).
    masked: Vec<f32>,
}

impl Picker {
    pub(crate) fn new(req: &GenerateRequest, n_vocab: usize) -> Result<Self, RuntimeError> {
        let bad = |e: augur_sampling::SamplingError| RuntimeError::InvalidRequest(e.to_string());
        let sampler = Sampler::new(req.sampling.clone(), n_vocab).map_err(bad)?;
        let constraint = req.constraint.as_ref().map(|g| g.start()).transpose()?;
        let masked =
            if constraint.is_some() && !sampler.params().is_greedy() { vec![0.0; n_vocab] } else { Vec::new() };
        Ok(Self { sampler, constraint, masked })
    }

    /// The token at output position `pos`, given the target's logits there.
    ///
    /// At temperature > 0 the randomness is keyed by the output position
    /// (the request's seed, stream = position), so every speculation mode
    /// draws the same token plain sampling draws there.
    pub(crate) fn pick(&mut self, row: &[f32], pos: u64) -> Result<Token, RuntimeError> {
        let mut t = self.choose(row, pos)?;
        if self.constraint.as_mut().is_some_and(|c| c.opens_call(t)) {
            t = self.choose(row, pos)?;
        }
        if let Some(c) = self.constraint.as_mut() {
            c.commit(t)?;
        }
        Ok(t)
    }

    /// The request's constraint while it still restricts the output.
    pub(crate) fn active_constraint(&mut self) -> Option<&mut Constraint> {
        self.constraint.as_mut().filter(|c| c.is_active())
    }

    /// What the constraint cost, if the request had one.
    pub(crate) fn constraint_report(&self) -> Option<ConstraintReport> {
        self.constraint.as_ref().map(|c| c.stats().into())
    }

    fn choose(&mut self, row: &[f32], pos: u64) -> Result<Token, RuntimeError> {
        match self.constraint.as_mut().filter(|c| c.is_active()) {
            None => pick_free(&mut self.sampler, row, pos),
            Some(c) if self.sampler.params().is_greedy() => pick_greedy_masked(c, row),
            Some(c) => {
                let mask = c.mask()?.ok_or_else(|| RuntimeError::internal("constraint inactive"))?;
                if self.masked.len() != row.len() {
                    return Err(RuntimeError::internal("logits length changed"));
                }
                self.masked.copy_from_slice(row);
                let masked = &mut self.masked;
                mask.iter_unset_entries(|i| {
                    if let Some(v) = masked.get_mut(i) {
                        *v = f32::NEG_INFINITY;
                    }
                });
                pick_free(&mut self.sampler, &self.masked, pos)
            }
        }
    }
}

fn pick_free(sampler: &mut Sampler, row: &[f32], pos: u64) -> Result<Token, RuntimeError> {
    if sampler.params().is_greedy() {
        return Ok(augur_sampling::argmax(row).unwrap_or(0));
    }
    let bad = |e: augur_sampling::SamplingError| RuntimeError::InvalidRequest(e.to_string());
    let (builder, rng) = sampler.parts();
    let p = builder.build(row).map_err(bad)?;
    rng.set_stream(pos);
    rng.set_word_pos(0);
    Ok(p.sample(rng))
}

/// Argmax over the allowed tokens. The unmasked argmax is checked first:
/// when the grammar allows it (the usual case) it is the masked argmax
/// too, and no full mask is needed. Ties go to the lowest id either way.
fn pick_greedy_masked(c: &mut Constraint, row: &[f32]) -> Result<Token, RuntimeError> {
    let t = augur_sampling::argmax(row).unwrap_or(0);
    if c.allows(t)? {
        return Ok(t);
    }
    let mask = c.mask()?.ok_or_else(|| RuntimeError::internal("constraint inactive"))?;
    let mut best: Option<(usize, f32)> = None;
    mask.iter_set_entries(|i| {
        if let Some(&v) = row.get(i) {
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((i, v));
            }
        }
    });
    let (i, _) = best.ok_or(RuntimeError::Grammar(augur_grammar::GrammarError::Stuck("no token allowed".into())))?;
    Token::try_from(i).map_err(|_| RuntimeError::internal("token id overflow"))
}

/// One verify step: the pending token (not yet in the cache) and its draft.
struct VerifyInput<'a> {
    pending: Token,
    draft: &'a [Token],
    n_kv: usize,
    /// Largest batch whose logits equal one-token decoding (see calibrate).
    chunk: usize,
    /// Index, among generated tokens, of the token the first row decides.
    out_pos: u64,
}

/// Decode [pending, draft...] in chunks no larger than the batch-invariant
/// size, checking each row as it arrives. Stops at the first rejection, so
/// later chunks cost nothing.
///
/// A drafted token is accepted iff it equals the target's own choice at
/// that position (`Picker::pick`). At temperature > 0 that accepts with
/// probability p(x), exactly as rejection sampling with a one-hot q does,
/// and it makes the output a function of the seed alone: every speculation
/// mode gives the text plain sampling gives.
///
/// Each chunk's decode time goes into the cost model, so its plans follow
/// what verifying costs now (load, context length), not only at load time.
fn verify_chunked(
    ctx: &mut Context,
    batch: &mut Batch,
    picker: &mut Picker,
    v: &VerifyInput<'_>,
    mut cost: Option<&mut CostModel>,
) -> Result<Verdict, RuntimeError> {
    let n_vocab = ctx.model().n_vocab() as usize;
    let total = v.draft.len() + 1;
    let mut first = 0;
    while first < total {
        let end = (first + v.chunk.max(1)).min(total);
        batch.clear();
        for i in first..end {
            let t = if i == 0 { v.pending } else { v.draft[i - 1] };
            batch.add(t, pos(v.n_kv + i)?, &[0], true)?;
        }
        let timing = ctx.decode(batch)?;
        if let Some(c) = cost.as_deref_mut() {
            c.observe(timing.n_tokens, timing.elapsed.as_secs_f64());
        }
        let rows = ctx.logits_all().ok_or_else(|| RuntimeError::internal("no logits"))?;
        for (j, row) in rows.chunks_exact(n_vocab).enumerate() {
            let i = first + j;
            let t = picker.pick(row, v.out_pos + i as u64)?;
            if v.draft.get(i) != Some(&t) {
                return Ok(Verdict { accepted: i, next: t });
            }
        }
        first = end;
    }
    Err(RuntimeError::internal("verification produced no token"))
}

/// Where a tree verification decodes: the committed cache length, the
/// batch-invariant chunk, and the output index of the pending token's row.
struct TreeAt {
    n_kv: usize,
    chunk: usize,
    out_pos: u64,
}

/// Verify the draft tree in `walk`, chunk by chunk (`TreeWalk` chooses the
/// rows, each in the KV sequences of the leaves below it, so it attends to
/// its own ancestors only). Afterwards sequence 0 holds the accepted nodes,
/// the rejected rows stay in `TREE_GRAVEYARD_SEQ` (masked for everyone)
/// until the request ends, and no branch sequence holds anything.
fn verify_tree(
    ctx: &mut Context,
    batch: &mut Batch,
    picker: &mut Picker,
    walk: &mut TreeWalk,
    at: &TreeAt,
    mut cost: Option<&mut CostModel>,
) -> Result<Verdict, RuntimeError> {
    let n_vocab = ctx.model().n_vocab() as usize;
    let branches = walk.branches().min(MAX_TREE_BRANCHES);
    for s in 1..=branches as i32 {
        ctx.kv_remove(s, -1, -1)?;
        ctx.kv_copy(0, s, -1, -1)?;
    }
    let verdict = loop {
        let mut rows = [0usize; MAX_DRAFT + 1];
        let chunk = walk.next_chunk(at.chunk.min(rows.len()));
        if chunk.is_empty() {
            return Err(RuntimeError::internal("tree verification produced no token"));
        }
        let n = chunk.len();
        rows[..n].copy_from_slice(chunk);
        batch.clear();
        for &r in &rows[..n] {
            let (token, depth, seqs) = walk.row(r);
            let mut ids = [0i32; MAX_TREE_BRANCHES + 1];
            let mut m = usize::from(r == 0);
            for s in 0..branches {
                if seqs & (1 << s) != 0 {
                    ids[m] = s as i32 + 1;
                    m += 1;
                }
            }
            batch.add(token, pos(at.n_kv + depth)?, &ids[..m], true)?;
        }
        let timing = ctx.decode(batch)?;
        if let Some(c) = cost.as_deref_mut() {
            c.observe(timing.n_tokens, timing.elapsed.as_secs_f64());
        }
        let logits = ctx.logits_all().ok_or_else(|| RuntimeError::internal("no logits"))?;
        let pick = |i: usize, depth: usize| {
            let row = logits.get(i * n_vocab..(i + 1) * n_vocab).ok_or_else(|| RuntimeError::internal("no logits"))?;
            picker.pick(row, at.out_pos + depth as u64)
        };
        if let Some(v) = walk.advance(pick)? {
            break v;
        }
    };
    let grave = TREE_GRAVEYARD_SEQ as i32;
    for s in 1..=branches as i32 {
        ctx.kv_copy(s, grave, pos(at.n_kv + 1)?, -1)?;
    }
    if let Some(s) = walk.accepted_sequence() {
        ctx.kv_copy(s as i32, 0, pos(at.n_kv + 1)?, pos(at.n_kv + 1 + verdict.accepted)?)?;
    }
    for s in 1..=branches as i32 {
        ctx.kv_remove(s, -1, -1)?;
    }
    Ok(Verdict { accepted: verdict.accepted, next: verdict.next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use augur_grammar::{test_vocab, GrammarCompiler, GrammarLimits, GrammarSource};
    use augur_sampling::SamplingParams;

    fn request(pattern: &str, sampling: SamplingParams) -> GenerateRequest {
        static ENGINE: std::sync::OnceLock<GrammarCompiler> = std::sync::OnceLock::new();
        let e = ENGINE.get_or_init(|| GrammarCompiler::new(test_vocab::small(), GrammarLimits::default()).unwrap());
        let mut req = GenerateRequest::new(crate::Prompt::Tokens(vec![1]), 4);
        req.constraint = Some(e.compile(&GrammarSource::Regex { pattern: pattern.into() }).unwrap());
        req.sampling = sampling;
        req
    }

    fn logits(n: usize) -> Vec<f32> {
        // Fixed, uneven logits; the allowed letters are not the favourites.
        (0..n).map(|i| ((i * 7919) % 101) as f32 / 20.0).collect()
    }

    /// At T > 0 the picker draws from the target distribution masked to
    /// the allowed tokens and renormalised: chi-square against the exact
    /// masked softmax over many seeds.
    #[test]
    fn sampling_under_a_mask_follows_the_renormalised_distribution() {
        let n = test_vocab::small().tokens.len();
        let row = logits(n);
        let temp = 0.7f32;
        let allowed = [b'a', b'b', b'c', b'd'];
        let w: Vec<f64> = allowed.iter().map(|&b| ((row[b as usize] / temp) as f64).exp()).collect();
        let total: f64 = w.iter().sum();
        let draws = 4000;
        let mut counts = [0u64; 4];
        for seed in 0..draws {
            let sampling =
                SamplingParams::Sample { temperature: temp, top_k: None, top_p: None, min_p: None, seed: seed as u64 };
            let mut p = Picker::new(&request("[abcd]x", sampling), n).unwrap();
            let t = p.pick(&row, 0).unwrap();
            let i = allowed.iter().position(|&b| b as i32 == t).unwrap_or_else(|| panic!("token {t} is not allowed"));
            counts[i] += 1;
        }
        let chi2: f64 = counts
            .iter()
            .zip(&w)
            .map(|(&c, &wi)| {
                let e = draws as f64 * wi / total;
                (c as f64 - e).powi(2) / e
            })
            .sum();
        // 3 degrees of freedom: P(chi2 > 16.27) = 0.001.
        assert!(chi2 < 16.27, "chi2 {chi2:.2}, counts {counts:?}, weights {w:?}");
    }

    /// Greedy under a mask is the argmax over the allowed tokens, whether
    /// or not the unmasked favourite is allowed.
    #[test]
    fn greedy_under_a_mask_is_the_allowed_argmax() {
        let n = test_vocab::small().tokens.len();
        let row = logits(n);
        let best_allowed = [b'a', b'b', b'c', b'd']
            .into_iter()
            .max_by(|&x, &y| row[x as usize].total_cmp(&row[y as usize]).then(y.cmp(&x)))
            .unwrap();
        let mut p = Picker::new(&request("[abcd]x", SamplingParams::Greedy), n).unwrap();
        assert_eq!(p.pick(&row, 0).unwrap(), best_allowed as i32);
        // Then only `x` is allowed, and after it only the end token.
        assert_eq!(p.pick(&row, 1).unwrap(), b'x' as i32);
        assert_eq!(p.pick(&row, 2).unwrap(), test_vocab::small().eos as i32);
    }
}
