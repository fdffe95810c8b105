//! The speculative driver: propose, verify in one batch, keep what the
//! target agrees with. With no draft (k = 0) a step is exactly plain
//! decoding, so `--spec off` runs through the same loop.

use std::time::Instant;

use augur_engine::{Batch, Context};
use augur_grammar::{Constraint, ConstraintStats};
use augur_sampling::{Sampler, Token};
use augur_spec::{
    AcceptancePrior, AcceptanceStats, CostModel, Draft, DraftSourceId, Drafter, LookupConfig, Plan, PromptLookup,
    SharedGlobal, StatsConfig, SuffixConfig, SuffixDrafter, Verdict, MAX_DRAFT,
};
use serde::Serialize;

use crate::draft::DraftModel;
use crate::generate::{pos, prefill, Clock, Emitter, Sink};
use crate::prefix::PrefixCache;
use crate::request::{Completion, GenerateRequest, SpecMode};
use crate::RuntimeError;

/// Speculation settings of a worker.
#[derive(Debug, Clone)]
pub struct SpecSettings {
    /// Mode for requests that do not choose one.
    pub mode: SpecMode,
    /// Longest draft per step.
    pub spec_max: usize,
    pub lookup: LookupConfig,
    /// The draft model stops when its own confidence falls below this.
    pub draft_min_confidence: f32,
    /// After this many steps without drafting, try one short draft so the
    /// statistics can notice that a source became useful. Each probe costs
    /// one extra verify row, c(2) - c(1): with 96 that stays under 1% of
    /// plain decoding even where c(k) is nearly linear.
    pub explore_every: u32,
    pub policy: DraftPolicy,
}

/// How the draft length is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DraftPolicy {
    /// The cost model: expected accepted tokens per second, k = 0 allowed.
    #[default]
    CostModel,
    /// Always draft as much as the sources offer, up to `spec_max`. For
    /// tests and measurements that must exercise verification.
    Always,
}

impl Default for SpecSettings {
    fn default() -> Self {
        Self {
            mode: SpecMode::Off,
            spec_max: 16,
            lookup: LookupConfig::default(),
            draft_min_confidence: 0.4,
            explore_every: 96,
            policy: DraftPolicy::CostModel,
        }
    }
}

/// Per-source counters of one request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStats {
    pub steps: u64,
    pub drafted: u64,
    pub accepted: u64,
}

/// What speculation did during one request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpecStats {
    pub mode: Option<SpecMode>,
    /// Verify steps (target decodes after the prefill).
    pub steps: u64,
    pub drafted: u64,
    pub accepted: u64,
    pub lookup: SourceStats,
    pub draft: SourceStats,
    pub suffix: SourceStats,
    /// Tokens the grammar forced (fast-forward), verified like drafts.
    pub grammar: SourceStats,
    /// Accepted drafts per draft position (index 0 = first drafted token).
    pub accepted_at: Vec<u64>,
    /// Work of the output constraint, when the request had one.
    pub constraint: Option<ConstraintReport>,
}

/// What the output constraint cost during one request.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ConstraintReport {
    /// Full token masks computed.
    pub masks: u64,
    /// Single-token checks (the target's own choice was allowed).
    pub checks: u64,
    /// Milliseconds spent in the grammar (masks, checks, forced tokens).
    pub time_ms: f64,
}

impl From<ConstraintStats> for ConstraintReport {
    fn from(s: ConstraintStats) -> Self {
        Self { masks: s.masks, checks: s.checks, time_ms: s.time.as_secs_f64() * 1e3 }
    }
}

impl SpecStats {
    pub fn acceptance(&self) -> f64 {
        ratio(self.accepted, self.drafted)
    }

    /// Tokens produced per target decode.
    pub fn mean_accepted_length(&self) -> f64 {
        ratio(self.steps + self.accepted, self.steps)
    }

    fn record(&mut self, source: Option<DraftSourceId>, drafted: usize, accepted: usize) {
        self.steps += 1;
        self.drafted += drafted as u64;
        self.accepted += accepted as u64;
        let s = match source {
            Some(DraftSourceId::Lookup) => &mut self.lookup,
            Some(DraftSourceId::DraftModel) => &mut self.draft,
            Some(DraftSourceId::Suffix) => &mut self.suffix,
            Some(DraftSourceId::Grammar) => &mut self.grammar,
            _ => return,
        };
        s.steps += 1;
        s.drafted += drafted as u64;
        s.accepted += accepted as u64;
        if self.accepted_at.len() < accepted {
            self.accepted_at.resize(accepted, 0);
        }
        for a in &mut self.accepted_at[..accepted] {
            *a += 1;
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Batched catch-up decoding of the draft model costs about this fraction
/// of a single-token decode per token.
const CATCH_UP_FRACTION: f64 = 0.3;

/// Text a grammar forces is almost always what the target writes too; only
/// a different tokenisation of it is rejected.
const FORCED_PRIOR: AcceptancePrior = AcceptancePrior { first: 0.95, decay: 0.97 };

/// Lookup statistics are kept per match length (the lower bounds of the
/// buckets): a copied passage that matches 16 tokens back is far more
/// reliable than a chance 4-gram, and one average would hide that.
const LOOKUP_BUCKETS: [usize; 6] = [1, 2, 3, 4, 8, 16];

/// A lookup match at least this long whose bucket has fewer than
/// `EARLY_PROBES` observations is drafted (one verify chunk) whatever the
/// prior says: the modest prior alone would never let a reliable bucket
/// prove itself, since `explore_every` is rarely reached in one request.
/// The probes are paid once per worker, as its statistics persist.
const EARLY_MIN_MATCH: usize = 3;
const EARLY_PROBES: u32 = 3;

/// Everything speculation keeps across the requests of one worker.
pub struct Speculator {
    settings: SpecSettings,
    lookup: PromptLookup,
    suffix: SuffixDrafter,
    draft_model: Option<DraftModel>,
    lookup_stats: Vec<AcceptanceStats>,
    suffix_stats: AcceptanceStats,
    /// Observed over predicted acceptance of suffix drafts, which scales
    /// the drafts' own count-ratio probabilities (over-confident where a
    /// context was seen only once or twice).
    suffix_trust: SuffixTrust,
    draft_stats: AcceptanceStats,
    grammar_stats: AcceptanceStats,
    cost: Option<CostModel>,
    draft: Draft,
    suffix_draft: Draft,
    /// Largest verify batch that is bit-identical to one-token decoding.
    chunk: usize,
    idle_steps: u32,
}

impl Speculator {
    pub fn new(
        settings: SpecSettings,
        draft_model: Option<DraftModel>,
        global: Option<SharedGlobal>,
    ) -> Result<Self, RuntimeError> {
        let spec = |e: augur_spec::SpecError| RuntimeError::InvalidRequest(e.to_string());
        let lookup = PromptLookup::new(settings.lookup).map_err(spec)?;
        let suffix = SuffixDrafter::new(SuffixConfig::default(), global).map_err(spec)?;
        let stats = AcceptanceStats::new(StatsConfig::default()).map_err(spec)?;
        let grammar_stats =
            AcceptanceStats::new(StatsConfig { prior: FORCED_PRIOR, ..StatsConfig::default() }).map_err(spec)?;
        Ok(Self {
            grammar_stats,
            lookup,
            suffix,
            draft_model,
            lookup_stats: vec![stats.clone(); LOOKUP_BUCKETS.len()],
            suffix_stats: stats.clone(),
            suffix_trust: SuffixTrust::default(),
            draft_stats: stats,
            cost: None,
            draft: Draft::with_capacity(MAX_DRAFT),
            suffix_draft: Draft::with_capacity(MAX_DRAFT),
            chunk: 1,
            idle_steps: 0,
            settings,
        })
    }

    pub fn settings(&self) -> &SpecSettings {
        &self.settings
    }

    pub fn has_draft_model(&self) -> bool {
        self.draft_model.is_some()
    }

    pub fn draft_model_mut(&mut self) -> Option<&mut DraftModel> {
        self.draft_model.as_mut()
    }

    /// Install the measured verify-cost curve and invariant batch size.
    pub fn set_cost(&mut self, mut cost: CostModel, invariant_batch: usize) {
        self.chunk = invariant_batch.max(1);
        if let Some(d) = &self.draft_model {
            let _ = cost.set_draft_cost(DraftSourceId::DraftModel, d.cost_per_token);
        }
        self.cost = Some(cost);
    }

    pub fn cost(&self) -> Option<&CostModel> {
        self.cost.as_ref()
    }

    /// Persist the global suffix tree (merging what other processes added).
    pub fn save_suffix(&self, path: &std::path::Path) {
        let Some(global) = self.suffix.global() else { return };
        let Ok(mut tree) = global.write() else { return };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = tree.save(path) {
            tracing::warn!("could not save the suffix store {}: {e}", path.display());
        }
    }

    fn lookup_bucket(&self) -> usize {
        let m = self.lookup.last_match();
        LOOKUP_BUCKETS.iter().rposition(|&lo| m >= lo).unwrap_or(0)
    }

    /// Choose and fill the draft for this step; returns the plan.
    fn plan(&mut self, mode: SpecMode, history: &[Token], limit: usize) -> Plan {
        self.draft.clear();
        let limit = limit.min(self.settings.spec_max).min(MAX_DRAFT);
        if self.settings.policy == DraftPolicy::Always {
            return self.plan_always(mode, history, limit);
        }
        let Some(cost) = &self.cost else { return plain_unknown() };
        let use_lookup = matches!(mode, SpecMode::Lookup | SpecMode::Auto);
        let use_suffix = matches!(mode, SpecMode::Suffix | SpecMode::Auto);
        let use_draft = matches!(mode, SpecMode::Draft | SpecMode::Auto) && self.draft_model.is_some();
        if limit == 0 || !(use_lookup || use_suffix || use_draft) {
            return cost.plain();
        }
        let mut best = cost.plain();
        if use_lookup {
            self.lookup.propose(history, limit, &mut self.draft);
            if !self.draft.is_empty() {
                let stats = &self.lookup_stats[self.lookup_bucket()];
                best = cost.choose(stats, DraftSourceId::Lookup, self.draft.len());
            }
        }
        if use_suffix {
            self.suffix.propose(history, limit, &mut self.suffix_draft);
            if !self.suffix_draft.is_empty() {
                let rates = self.suffix_trust.rates(self.suffix.last_draft());
                let mut p = cost.plan_for(rates, cost.draft_cost(DraftSourceId::Suffix), self.suffix_draft.len());
                self.suffix_trust.planned(p.k);
                if p.k > 0 && p.expected_tokens_per_sec > best.expected_tokens_per_sec {
                    p.source = Some(DraftSourceId::Suffix);
                    best = p;
                }
            }
        }
        if let (true, Some(d)) = (use_draft, self.draft_model.as_ref()) {
            let mut p = cost.choose(&self.draft_stats, DraftSourceId::DraftModel, limit);
            // Catching the draft model up on tokens it has not seen costs
            // too; a prompt-sized lag makes drafting a loss.
            let catch_up = d.lag(history) as f64 * d.cost_per_token * CATCH_UP_FRACTION;
            if p.k > 0 && p.expected_tokens_per_sec > 0.0 {
                p.expected_tokens_per_sec =
                    p.expected_tokens / (p.expected_tokens / p.expected_tokens_per_sec + catch_up);
            }
            if p.expected_tokens_per_sec > best.expected_tokens_per_sec {
                best = p;
            }
        }
        if best.k == 0 {
            best = self.explore(use_lookup, use_suffix, best);
        }
        match best.source {
            Some(DraftSourceId::Lookup) => self.draft.truncate(best.k),
            Some(DraftSourceId::Suffix) => {
                std::mem::swap(&mut self.draft, &mut self.suffix_draft);
                self.draft.truncate(best.k);
            }
            Some(DraftSourceId::DraftModel) => {
                if let Some(d) = self.draft_model.as_mut() {
                    d.propose(history, best.k, &mut self.draft);
                }
            }
            _ => self.draft.clear(),
        }
        if self.draft.is_empty() {
            best.source = None;
        }
        best.k = self.draft.len();
        best
    }

    /// Fast-forward: the tokens the grammar forces, as a draft the target
    /// verifies (another tokenisation of the same text may be its choice).
    /// Needs the calibrated curve: without batching they would gain nothing.
    fn plan_forced(&mut self, forced: &[u32], limit: usize) -> Option<Plan> {
        let limit = limit.min(MAX_DRAFT).min(forced.len());
        let cost = self.cost.as_ref()?;
        if limit == 0 {
            return None;
        }
        let plan = if self.settings.policy == DraftPolicy::Always {
            Plan { source: Some(DraftSourceId::Grammar), k: limit, ..plain_unknown() }
        } else {
            cost.choose(&self.grammar_stats, DraftSourceId::Grammar, limit)
        };
        if plan.k == 0 {
            return None;
        }
        self.draft.clear();
        for &t in &forced[..plan.k] {
            let t = Token::try_from(t).ok()?;
            self.draft.push(t).ok()?;
        }
        Some(plan)
    }

    /// Draft the most any allowed source offers: lookup first, else the
    /// draft model.
    fn plan_always(&mut self, mode: SpecMode, history: &[Token], limit: usize) -> Plan {
        let mut source = None;
        if limit > 0 && matches!(mode, SpecMode::Lookup | SpecMode::Auto) {
            self.lookup.propose(history, limit, &mut self.draft);
            source = (!self.draft.is_empty()).then_some(DraftSourceId::Lookup);
        }
        if source.is_none() && limit > 0 && matches!(mode, SpecMode::Suffix | SpecMode::Auto) {
            self.suffix.propose(history, limit, &mut self.draft);
            source = (!self.draft.is_empty()).then_some(DraftSourceId::Suffix);
        }
        if source.is_none() && limit > 0 && matches!(mode, SpecMode::Draft | SpecMode::Auto) {
            if let Some(d) = self.draft_model.as_mut() {
                d.propose(history, limit, &mut self.draft);
                source = (!self.draft.is_empty()).then_some(DraftSourceId::DraftModel);
            }
        }
        Plan { source, k: self.draft.len(), ..plain_unknown() }
    }

    /// Occasionally draft one token anyway, so a source whose statistics
    /// went stale can prove itself again. Bounded cost: one extra verify
    /// position every `explore_every` idle steps.
    /// Only free sources explore: trying the draft model means catching its
    /// cache up first, which is never cheap.
    fn explore(&mut self, use_lookup: bool, use_suffix: bool, plain: Plan) -> Plan {
        if use_lookup && self.lookup.last_match() >= EARLY_MIN_MATCH && !self.draft.is_empty() {
            let stats = &self.lookup_stats[self.lookup_bucket()];
            if stats.observations(DraftSourceId::Lookup, 1) < EARLY_PROBES {
                let k = self.draft.len().min(self.chunk);
                return Plan { source: Some(DraftSourceId::Lookup), k, ..plain };
            }
        }
        self.idle_steps += 1;
        if self.idle_steps < self.settings.explore_every {
            return plain;
        }
        self.idle_steps = 0;
        let source = if use_lookup && !self.draft.is_empty() {
            DraftSourceId::Lookup
        } else if use_suffix && !self.suffix_draft.is_empty() {
            DraftSourceId::Suffix
        } else {
            return plain;
        };
        Plan { source: Some(source), k: 1, ..plain }
    }

    fn record(&mut self, source: Option<DraftSourceId>, drafted: usize, accepted: usize) {
        match source {
            Some(DraftSourceId::Lookup) => {
                let b = self.lookup_bucket();
                self.lookup_stats[b].record(DraftSourceId::Lookup, drafted, accepted);
            }
            Some(DraftSourceId::DraftModel) => self.draft_stats.record(DraftSourceId::DraftModel, drafted, accepted),
            Some(DraftSourceId::Suffix) => {
                self.suffix_stats.record(DraftSourceId::Suffix, drafted, accepted);
                self.suffix_trust.observe(drafted, accepted);
            }
            Some(DraftSourceId::Grammar) => self.grammar_stats.record(DraftSourceId::Grammar, drafted, accepted),
            _ => {}
        }
        if drafted > 0 {
            self.idle_steps = 0;
        }
    }
}

/// Acceptance estimates for a suffix draft: its own conditional
/// probabilities (count ratios along the tree path) times a trust factor
/// learnt from how many of its tokens the target accepted against how many
/// it predicted. The tree's estimate is specific to this context, which
/// per-position averages are not; the factor corrects its bias.
#[derive(Clone, Debug)]
struct SuffixTrust {
    trust: f64,
    steps: u32,
    rates: [f64; MAX_DRAFT],
    /// Predicted accepted tokens of each prefix length of the last draft.
    predicted: [f64; MAX_DRAFT + 1],
    planned: usize,
}

/// A first guess below one: count ratios from few occurrences overstate.
const SUFFIX_TRUST_PRIOR: f64 = 0.8;
/// Never plan on certainty: the target can always disagree.
const SUFFIX_RATE_CAP: f64 = 0.98;
/// A draft grown from a shorter context match is a guess from one or two
/// tokens of context: not planned on.
const SUFFIX_MIN_MATCH: usize = 3;

impl Default for SuffixTrust {
    fn default() -> Self {
        Self {
            trust: SUFFIX_TRUST_PRIOR,
            steps: 0,
            rates: [0.0; MAX_DRAFT],
            predicted: [0.0; MAX_DRAFT + 1],
            planned: 0,
        }
    }
}

impl SuffixTrust {
    /// Per-position conditional acceptance for `draft`, scaled by the trust.
    fn rates(&mut self, draft: &augur_spec::SuffixDraft) -> &[f64] {
        let n = if draft.match_len < SUFFIX_MIN_MATCH { 0 } else { draft.probs.len().min(MAX_DRAFT) };
        let (mut prev, mut reach) = (1.0f64, 1.0f64);
        for (i, &p) in draft.probs[..n].iter().enumerate() {
            let p = f64::from(p);
            let cond = if prev > 0.0 { (p / prev).clamp(0.0, 1.0) } else { 0.0 };
            prev = p;
            self.rates[i] = (cond * self.trust).min(SUFFIX_RATE_CAP);
            reach *= self.rates[i];
            self.predicted[i + 1] = self.predicted[i] + reach;
        }
        &self.rates[..n]
    }

    fn planned(&mut self, k: usize) {
        self.planned = k;
    }

    /// Move the trust towards observed / predicted for the drafted prefix;
    /// early steps move it most, as with the acceptance statistics.
    fn observe(&mut self, drafted: usize, accepted: usize) {
        if drafted == 0 || drafted != self.planned {
            return;
        }
        let predicted = self.predicted[drafted.min(MAX_DRAFT)];
        let ratio = ((accepted as f64 + 0.5) / (predicted + 0.5)).clamp(0.0, 1.5);
        let w = (1.0 / (f64::from(self.steps) + 3.0)).max(0.05);
        self.steps = self.steps.saturating_add(1);
        self.trust = (self.trust + w * (ratio * self.trust - self.trust)).clamp(0.05, 1.25);
    }
}

/// Plain decoding when no cost curve is known (speculation off).
fn plain_unknown() -> Plan {
    Plan { source: None, k: 0, expected_tokens: 1.0, expected_tokens_per_sec: 0.0 }
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
    let mut picker = Picker::new(req, model.n_vocab() as usize)?;
    let mode = req.spec.mode.unwrap_or(spec.settings.mode);
    let fast_forward = req.spec.fast_forward.unwrap_or(true);
    let limit_max = req.spec.max.unwrap_or(spec.settings.spec_max);
    let start = Instant::now();
    let reused = prefix.reusable(prompt);
    prefix.truncate(reused);
    ctx.kv_remove(0, pos(reused)?, -1)?;
    if let Some(d) = spec.draft_model.as_mut() {
        // Its cache stays: it catches up from the common prefix.
        d.begin_request();
    }
    spec.lookup.reset();
    spec.suffix.reset();
    let last = prefill(ctx, batch, &prompt[reused..], reused)?;
    prefix.record(prompt);
    let clock = Clock { start, prefill_done: Instant::now() };
    let mut em = Emitter::new(&model, req);
    let mut stats = SpecStats { mode: Some(mode), ..SpecStats::default() };
    let first = picker.pick(ctx.logits(last).ok_or(RuntimeError::InvalidRequest("no logits".into()))?, 0)?;
    let mut history: Vec<Token> = Vec::with_capacity(prompt.len() + req.max_tokens as usize + MAX_DRAFT);
    history.extend_from_slice(prompt);
    history.push(first);
    let mut finish = em.accept(&[first], sink);
    // `pending` (the last token of history) is not in the KV cache yet.
    let mut n_kv = prompt.len();
    while finish.is_none() {
        let remaining = (req.max_tokens as usize).saturating_sub(em.tokens.len());
        let limit = remaining.saturating_sub(1).min(limit_max);
        let plan = plan_step(spec, &mut picker, mode, fast_forward, &history, limit);
        let drafted = spec.draft.len();
        let input = VerifyInput {
            pending: history[history.len() - 1],
            draft: spec.draft.tokens(),
            n_kv,
            chunk: spec.chunk,
            out_pos: (history.len() - prompt.len()) as u64,
        };
        let verdict = verify_chunked(ctx, batch, &mut picker, &input, spec.cost.as_mut())?;
        ctx.kv_remove(0, pos(n_kv + 1 + verdict.accepted)?, -1)?;
        spec.record(plan.source, drafted, verdict.accepted);
        stats.record(plan.source, drafted, verdict.accepted);
        let new_from = history.len();
        history.extend_from_slice(&spec.draft.tokens()[..verdict.accepted]);
        history.push(verdict.next);
        n_kv += verdict.accepted + 1;
        finish = em.accept(&history[new_from..], sink);
    }
    let usage = clock.usage(prompt.len(), reused, &em);
    if matches!(mode, SpecMode::Suffix | SpecMode::Auto) {
        // Later requests draft from this one's output (the prompt stays private).
        let _ = spec.suffix.finish_request(&em.tokens);
    }
    stats.constraint = picker.constraint.as_ref().map(|c| c.stats().into());
    let finish_reason = finish.unwrap_or(crate::FinishReason::Stop);
    Ok(Completion { finish_reason, usage, tokens: std::mem::take(&mut em.tokens), spec: stats })
}

/// This step's draft: the grammar's forced tokens when it forces any,
/// else the speculation sources' draft cut to what the grammar allows.
fn plan_step(
    spec: &mut Speculator,
    picker: &mut Picker,
    mode: SpecMode,
    fast_forward: bool,
    history: &[Token],
    limit: usize,
) -> Plan {
    let Some(c) = picker.constraint.as_mut().filter(|c| c.is_active()) else {
        return spec.plan(mode, history, limit);
    };
    if fast_forward {
        if let Some(p) = spec.plan_forced(c.forced(), limit) {
            return p;
        }
    }
    let mut plan = spec.plan(mode, history, limit);
    let valid = c.valid_prefix(spec.draft.tokens());
    if valid < spec.draft.len() {
        spec.draft.truncate(valid);
        plan.k = valid;
        if valid == 0 {
            plan.source = None;
        }
    }
    plan
}

/// Chooses the target's token at each output position: greedy or seeded
/// sampling, under the request's constraint when it has one. Every chosen
/// token is committed to the constraint, so its state always matches the
/// accepted output and a rejected draft needs no grammar rollback.
struct Picker {
    sampler: Sampler,
    constraint: Option<Constraint>,
    /// Masked logits at temperature > 0 (reused).
    masked: Vec<f32>,
}

impl Picker {
    fn new(req: &GenerateRequest, n_vocab: usize) -> Result<Self, RuntimeError> {
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
    fn pick(&mut self, row: &[f32], pos: u64) -> Result<Token, RuntimeError> {
        let mut t = self.choose(row, pos)?;
        if self.constraint.as_mut().is_some_and(|c| c.opens_call(t)) {
            t = self.choose(row, pos)?;
        }
        if let Some(c) = self.constraint.as_mut() {
            c.commit(t)?;
        }
        Ok(t)
    }

    fn choose(&mut self, row: &[f32], pos: u64) -> Result<Token, RuntimeError> {
        match self.constraint.as_mut().filter(|c| c.is_active()) {
            None => pick_free(&mut self.sampler, row, pos),
            Some(c) if self.sampler.params().is_greedy() => pick_greedy_masked(c, row),
            Some(c) => {
                let mask = c.mask()?.ok_or(RuntimeError::InvalidRequest("constraint inactive".into()))?;
                if self.masked.len() != row.len() {
                    return Err(RuntimeError::InvalidRequest("logits length changed".into()));
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
    let mask = c.mask()?.ok_or(RuntimeError::InvalidRequest("constraint inactive".into()))?;
    let mut best: Option<(usize, f32)> = None;
    mask.iter_set_entries(|i| {
        if let Some(&v) = row.get(i) {
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((i, v));
            }
        }
    });
    let (i, _) = best.ok_or(RuntimeError::Grammar(augur_grammar::GrammarError::Stuck("no token allowed".into())))?;
    Token::try_from(i).map_err(|_| RuntimeError::InvalidRequest("token id overflow".into()))
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
        let rows = ctx.logits_all().ok_or(RuntimeError::InvalidRequest("no logits".into()))?;
        for (j, row) in rows.chunks_exact(n_vocab).enumerate() {
            let i = first + j;
            let t = picker.pick(row, v.out_pos + i as u64)?;
            if v.draft.get(i) != Some(&t) {
                return Ok(Verdict { accepted: i, next: t });
            }
        }
        first = end;
    }
    Err(RuntimeError::InvalidRequest("verification produced no token".into()))
}

#[cfg(test)]
mod picker_tests {
    use super::*;
    use augur_grammar::{test_vocab, GrammarEngine, GrammarLimits, GrammarSpec};
    use augur_sampling::SamplingParams;

    fn request(pattern: &str, sampling: SamplingParams) -> GenerateRequest {
        static ENGINE: std::sync::OnceLock<GrammarEngine> = std::sync::OnceLock::new();
        let e = ENGINE.get_or_init(|| GrammarEngine::new(test_vocab::small(), GrammarLimits::default()).unwrap());
        let mut req = GenerateRequest::new(crate::Prompt::Tokens(vec![1]), 4);
        req.constraint = Some(e.compile(&GrammarSpec::Regex { pattern: pattern.into() }).unwrap());
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

#[cfg(test)]
mod suffix_trust_tests {
    use super::*;
    use augur_spec::SuffixDraft;

    fn draft(probs: &[f32], match_len: usize) -> SuffixDraft {
        SuffixDraft {
            tokens: (0..probs.len() as Token).collect(),
            probs: probs.to_vec(),
            match_len,
            score: probs.iter().sum(),
        }
    }

    #[test]
    fn rates_are_conditional_probabilities_times_trust() {
        let mut t = SuffixTrust::default();
        let r = t.rates(&draft(&[1.0, 0.5, 0.25], 8)).to_vec();
        let want = [SUFFIX_TRUST_PRIOR, 0.5 * SUFFIX_TRUST_PRIOR, 0.5 * SUFFIX_TRUST_PRIOR];
        assert_eq!(r.len(), 3);
        assert!(r.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{r:?}");
        // However trusted, never certain.
        t.trust = 1.2;
        assert_eq!(t.rates(&draft(&[1.0], 8)), [SUFFIX_RATE_CAP]);
        // Too short a match is not planned on.
        assert!(t.rates(&draft(&[1.0, 1.0], SUFFIX_MIN_MATCH - 1)).is_empty());
    }

    #[test]
    fn trust_follows_what_the_target_accepts() {
        let mut bad = SuffixTrust::default();
        for _ in 0..5 {
            bad.rates(&draft(&[1.0, 1.0, 1.0], 8));
            bad.planned(3);
            bad.observe(3, 0);
        }
        assert!(bad.trust < 0.5 * SUFFIX_TRUST_PRIOR, "{}", bad.trust);
        let mut good = SuffixTrust::default();
        for _ in 0..5 {
            good.rates(&draft(&[1.0, 1.0, 1.0], 8));
            good.planned(3);
            good.observe(3, 3);
        }
        assert!(good.trust > SUFFIX_TRUST_PRIOR, "{}", good.trust);
        // A draft cut after planning (by a grammar) says nothing.
        let before = good.trust;
        good.planned(3);
        good.observe(2, 0);
        assert_eq!(good.trust, before);
    }
}
