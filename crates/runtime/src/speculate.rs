//! The speculative driver: propose, verify in one batch, keep what the
//! target agrees with. With no draft (k = 0) a step is exactly plain
//! decoding, so `--spec off` runs through the same loop.

use std::time::Instant;

use augur_engine::{Batch, Context};
use augur_grammar::{Constraint, ConstraintStats};
use augur_sampling::{Sampler, Token};
use augur_spec::trust::{suffix_weight, SUFFIX_MIN_MATCH};
use augur_spec::{
    AcceptancePrior, AcceptanceStats, CostModel, Draft, DraftSourceId, DraftTree, Drafter, LookupConfig, Plan,
    PromptLookup, Shadow, ShadowOutcome, SharedGlobal, StatsConfig, SuffixConfig, SuffixDrafter, SuffixOrigin,
    TreeWalk, Trust, Verdict, MAX_DRAFT, MAX_TREE_BRANCHES, TREE_GRAVEYARD_SEQ,
};
use serde::Serialize;

use crate::draft::DraftModel;
use crate::generate::{pos, prefill, Clock, Emitter, Sink};
use crate::prefix::PrefixCache;
use crate::request::{Completion, GenerateRequest, SpecMode};
use crate::RuntimeError;

mod replay;
pub use replay::ReplayOutcome;

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
    pub policy: DraftPolicy,
    /// Let suffix drafts branch: a tree is verified when the cost model
    /// expects more tokens per second from it than from its best path. The
    /// worker then runs the target with flash attention and a q8_0 value
    /// cache, in which a tree's rows are exact (docs/ARCHITECTURE.md, "Cell
    /// order"); off by default, since that layout prefills more slowly and
    /// a compute-bound machine gains nothing from trees.
    pub tree: bool,
    pub suffix: SuffixTuning,
}

/// How far suffix drafts run past their match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuffixTuning {
    /// A draft stops where its estimated probability (the product of count
    /// ratios) falls below this.
    pub min_token_prob: f32,
    /// A draft may run to this many times its match length.
    pub spec_factor: f32,
}

impl Default for SuffixTuning {
    fn default() -> Self {
        Self { min_token_prob: SUFFIX_MIN_TOKEN_PROB, spec_factor: SUFFIX_SPEC_FACTOR }
    }
}

impl SuffixTuning {
    /// Largest accepted `spec_factor`: past it the cost model's k cap is
    /// what limits a draft anyway.
    pub const MAX_FACTOR: f32 = 64.0;

    /// The defaults with whichever values a flag or config key set.
    pub fn with_overrides(min_token_prob: Option<f32>, spec_factor: Option<f32>) -> Self {
        let d = Self::default();
        Self {
            min_token_prob: min_token_prob.unwrap_or(d.min_token_prob),
            spec_factor: spec_factor.unwrap_or(d.spec_factor),
        }
    }

    pub fn valid_min_token_prob(p: f32) -> bool {
        (0.0..=1.0).contains(&p)
    }

    pub fn valid_spec_factor(f: f32) -> bool {
        (0.0..=Self::MAX_FACTOR).contains(&f)
    }

    /// Why these values cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if !Self::valid_min_token_prob(self.min_token_prob) {
            return Err(format!("suffix min token probability must be in [0, 1], got {}", self.min_token_prob));
        }
        if !Self::valid_spec_factor(self.spec_factor) {
            return Err(format!("suffix spec factor must be in [0, {}], got {}", Self::MAX_FACTOR, self.spec_factor));
        }
        Ok(())
    }
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
            policy: DraftPolicy::CostModel,
            tree: false,
            suffix: SuffixTuning::default(),
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
    /// The suffix steps that verified a branching tree (drafted = nodes).
    pub tree: SourceStats,
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

/// Lookup's worker-wide statistics are scaled by a trust factor that each
/// request starts at this value and learns for itself (for free, from the
/// proposals it did not draft): what holds for code edits does not hold
/// for prose, and a chance phrase match must not cost a short answer a
/// rejected verify before the request has shown that copying pays.
const LOOKUP_TRUST_PRIOR: f64 = 0.6;

/// Count ratios from few occurrences overstate: suffix drafts start at this
/// trust (per worker, as the global tree is).
const SUFFIX_TRUST_PRIOR: f64 = 0.8;

/// Each request scales each tree's drafts by a trust of its own on top,
/// starting here: the worker's trust in that tree carries what earlier
/// requests showed, but a request whose matches are chance (phrases of an
/// earlier answer, then something else) must not pay for that before its
/// own watched proposals correct it.
const SUFFIX_REQUEST_TRUST_PRIOR: f64 = 0.7;

/// By default a suffix draft may run to this many times its match length
/// (the paper's default is 1): the count ratios and the cost model cut it
/// where it stops paying, and a repeated format often continues far past a
/// short match (a value just written, then the format again).
const SUFFIX_SPEC_FACTOR: f32 = 4.0;

/// By default suffix drafts stop below this estimated probability (the
/// paper's default is 0.1). Besides cutting drafts, it decides which match
/// length wins: a short match's long tail of unlikely tokens no longer
/// outscores a longer, more specific match. On the agentic sequence of
/// docs/BENCHMARKS.md, replayed with `examples/replay.rs`, 0.3 drafts
/// better than 0.1 with paths and with trees.
const SUFFIX_MIN_TOKEN_PROB: f32 = 0.3;

/// A lookup proposal being watched, and the bucket it came from.
#[derive(Clone, Debug, Default)]
struct LookupShadow {
    shadow: Shadow,
    bucket: usize,
}

/// Everything speculation keeps across the requests of one worker.
pub struct Speculator {
    settings: SpecSettings,
    lookup: PromptLookup,
    suffix: SuffixDrafter,
    draft_model: Option<DraftModel>,
    lookup_stats: Vec<AcceptanceStats>,
    /// This request's correction of `lookup_stats`.
    lookup_trust: Trust,
    lookup_shadow: LookupShadow,
    suffix_stats: AcceptanceStats,
    /// The per-request and the global tree, each a source of its own.
    suffix_lanes: [SuffixLane; 2],
    /// The lane this step's suffix draft came from.
    suffix_chosen: SuffixOrigin,
    draft_stats: AcceptanceStats,
    grammar_stats: AcceptanceStats,
    cost: Option<CostModel>,
    draft: Draft,
    tree: TreeDrafting,
    /// Largest verify batch that is bit-identical to one-token decoding.
    chunk: usize,
}

impl Speculator {
    pub fn new(
        settings: SpecSettings,
        draft_model: Option<DraftModel>,
        global: Option<SharedGlobal>,
    ) -> Result<Self, RuntimeError> {
        let spec = |e: augur_spec::SpecError| RuntimeError::InvalidRequest(e.to_string());
        let lookup = PromptLookup::new(settings.lookup).map_err(spec)?;
        settings.suffix.check().map_err(RuntimeError::InvalidRequest)?;
        let mut suffix_cfg = SuffixConfig::default();
        suffix_cfg.params.max_spec_factor = settings.suffix.spec_factor;
        suffix_cfg.params.min_token_prob = settings.suffix.min_token_prob;
        let suffix = SuffixDrafter::new(suffix_cfg, global).map_err(spec)?;
        let stats = AcceptanceStats::new(StatsConfig::default()).map_err(spec)?;
        let grammar_stats =
            AcceptanceStats::new(StatsConfig { prior: FORCED_PRIOR, ..StatsConfig::default() }).map_err(spec)?;
        Ok(Self {
            grammar_stats,
            lookup,
            suffix,
            draft_model,
            lookup_stats: vec![stats.clone(); LOOKUP_BUCKETS.len()],
            lookup_trust: Trust::new(LOOKUP_TRUST_PRIOR),
            lookup_shadow: LookupShadow::default(),
            suffix_stats: stats.clone(),
            suffix_lanes: [SuffixLane::new(), SuffixLane::new()],
            suffix_chosen: SuffixOrigin::Request,
            draft_stats: stats,
            cost: None,
            draft: Draft::with_capacity(MAX_DRAFT),
            tree: TreeDrafting::default(),
            chunk: 1,
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
    fn plan(&mut self, mode: SpecMode, shape: DraftShape, history: &[Token], limit: usize) -> Plan {
        self.draft.clear();
        self.suffix_lanes.iter_mut().for_each(|l| l.draft.clear());
        self.tree.predicted = None;
        let limit = limit.min(self.settings.spec_max).min(MAX_DRAFT);
        let trees = shape == DraftShape::PathOrTree && self.settings.tree;
        if self.settings.policy == DraftPolicy::Always {
            return self.plan_always(mode, trees, history, limit);
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
                let cond = stats.rates(DraftSourceId::Lookup)[..self.draft.len()].iter().copied();
                let rates = self.lookup_trust.scale(cond);
                let mut p = cost.plan_for(rates, cost.draft_cost(DraftSourceId::Lookup), self.draft.len());
                self.lookup_trust.planned(p.k);
                if p.k > 0 {
                    p.source = Some(DraftSourceId::Lookup);
                    best = p;
                }
            }
        }
        if use_suffix {
            for origin in SuffixOrigin::ALL {
                let lane = &mut self.suffix_lanes[origin.index()];
                self.suffix.propose_from(origin, history, limit, &mut lane.draft);
                lane.match_len = self.suffix.last_draft().match_len;
                if lane.draft.is_empty() {
                    continue;
                }
                let draft = self.suffix.last_draft();
                let worker = lane.trust.scale_suffix(draft);
                let weights = (0..).map(|i| suffix_weight(i, draft.support.get(i).copied().unwrap_or(1)));
                let rates = lane.request_trust.scale_weighted(worker.iter().copied().zip(weights));
                let mut p = cost.plan_for(rates, cost.draft_cost(DraftSourceId::Suffix), lane.draft.len());
                lane.request_trust.planned(p.k);
                if p.k > 0 && p.expected_tokens_per_sec > best.expected_tokens_per_sec {
                    p.source = Some(DraftSourceId::Suffix);
                    best = p;
                    self.suffix_chosen = origin;
                }
            }
            if trees {
                let found = self.tree.plan(&mut self.suffix, cost, &self.suffix_lanes, history, limit);
                if let Some((p, predicted)) =
                    found.filter(|(p, _)| p.expected_tokens_per_sec > best.expected_tokens_per_sec)
                {
                    best = p;
                    self.tree.predicted = Some(predicted);
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
        self.watch(best.source, best.k);
        if self.tree.predicted.is_some() {
            return best;
        }
        match best.source {
            Some(DraftSourceId::Lookup) => self.draft.truncate(best.k),
            Some(DraftSourceId::Suffix) => {
                std::mem::swap(&mut self.draft, &mut self.suffix_lanes[self.suffix_chosen.index()].draft);
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
        self.tree.predicted = None;
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
    /// suffix trees (branching, when allowed), else the draft model.
    fn plan_always(&mut self, mode: SpecMode, trees: bool, history: &[Token], limit: usize) -> Plan {
        let mut source = None;
        if limit > 0 && matches!(mode, SpecMode::Lookup | SpecMode::Auto) {
            self.lookup.propose(history, limit, &mut self.draft);
            source = (!self.draft.is_empty()).then_some(DraftSourceId::Lookup);
        }
        if source.is_none() && limit > 0 && trees && matches!(mode, SpecMode::Suffix | SpecMode::Auto) {
            if let Some((pending, limit)) = self.tree.propose(&mut self.suffix, history, limit) {
                let t = &mut self.tree;
                t.walk.start(pending, &t.tree, limit);
                if t.walk.branches() >= 2 {
                    t.predicted = Some(0.0);
                    return Plan { source: Some(DraftSourceId::Suffix), k: t.walk.nodes(), ..plain_unknown() };
                }
            }
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

    /// This step's proposals are watched against the tokens the target
    /// commits (`observe_committed`): wholly if not verified, past the
    /// verified part otherwise. A watch lasts one step; the next step's
    /// proposal, from a longer match, is the better one to learn from.
    fn watch(&mut self, chosen: Option<DraftSourceId>, k: usize) {
        let skip = |source| if chosen == Some(source) { k } else { 0 };
        self.lookup_shadow.shadow.stop();
        if !self.draft.is_empty() {
            let skip = skip(DraftSourceId::Lookup);
            self.lookup_shadow.shadow.start(self.draft.tokens(), self.lookup_trust.rates(), skip);
            self.lookup_shadow.bucket = self.lookup_bucket();
        }
        let tree = self.tree.predicted.is_some();
        for origin in SuffixOrigin::ALL {
            let lane = &mut self.suffix_lanes[origin.index()];
            lane.shadow.stop();
            // The chosen lane's draft moved into `draft`.
            let chosen = chosen == Some(DraftSourceId::Suffix) && self.suffix_chosen == origin;
            let tokens = if chosen { self.draft.tokens() } else { lane.draft.tokens() };
            if !tree && lane.match_len >= SUFFIX_MIN_MATCH && !tokens.is_empty() {
                let skip = if chosen { k } else { 0 };
                lane.shadow.start(tokens, lane.request_trust.rates(), skip);
            }
        }
    }

    /// The tokens the target committed this step: watched proposals
    /// resolve against them.
    fn observe_committed(&mut self, committed: &[Token]) {
        if let Some(o) = self.lookup_shadow.shadow.advance(committed) {
            self.learn_lookup(self.lookup_shadow.bucket, o);
        }
        for lane in &mut self.suffix_lanes {
            if let Some(o) = lane.shadow.advance(committed) {
                self.suffix_stats.observe_from(DraftSourceId::Suffix, o.from, o.drafted, o.accepted);
                lane.learn(o.predicted, o.accepted);
            }
        }
    }

    fn learn_lookup(&mut self, bucket: usize, o: ShadowOutcome) {
        if let Some(stats) = self.lookup_stats.get_mut(bucket) {
            stats.observe_from(DraftSourceId::Lookup, o.from, o.drafted, o.accepted);
        }
        self.lookup_trust.learn(o.predicted, o.accepted);
    }

    /// A new request: its own trust in lookup, nothing watched.
    fn begin_request(&mut self) {
        self.lookup.reset();
        self.suffix.reset();
        self.lookup_trust.reset();
        self.lookup_shadow = LookupShadow::default();
        for lane in &mut self.suffix_lanes {
            lane.request_trust.reset();
            lane.shadow = Shadow::default();
        }
    }

    fn record(&mut self, source: Option<DraftSourceId>, drafted: usize, accepted: usize) {
        match source {
            Some(DraftSourceId::Lookup) => {
                let b = self.lookup_bucket();
                self.lookup_stats[b].record(DraftSourceId::Lookup, drafted, accepted);
                self.lookup_trust.observe(drafted, accepted);
            }
            Some(DraftSourceId::DraftModel) => self.draft_stats.record(DraftSourceId::DraftModel, drafted, accepted),
            Some(DraftSourceId::Suffix) if self.tree.predicted.is_some() => {
                // Per-position statistics describe paths; a tree teaches the
                // trusts what it predicted against what the target took.
                if let Some(predicted) = self.tree.predicted.filter(|_| self.settings.policy == DraftPolicy::CostModel)
                {
                    self.suffix_lanes[self.suffix.tree_origin().index()].learn(predicted, accepted);
                }
            }
            Some(DraftSourceId::Suffix) => {
                self.suffix_stats.record(DraftSourceId::Suffix, drafted, accepted);
                let lane = &mut self.suffix_lanes[self.suffix_chosen.index()];
                if let Some(predicted) = lane.request_trust.planned_prediction(drafted) {
                    lane.learn(predicted, accepted);
                }
            }
            Some(DraftSourceId::Grammar) => self.grammar_stats.record(DraftSourceId::Grammar, drafted, accepted),
            _ => {}
        }
    }
}

/// One suffix tree as a draft source: this step's draft and how far its
/// count ratios are trusted, by the worker and by this request.
#[derive(Debug)]
struct SuffixLane {
    draft: Draft,
    match_len: usize,
    /// Observed over predicted acceptance, which scales the drafts' own
    /// count-ratio probabilities (over-confident where a context was seen
    /// only once or twice).
    trust: Trust,
    /// This request's correction on top of `trust`.
    request_trust: Trust,
    shadow: Shadow,
}

impl SuffixLane {
    fn new() -> Self {
        Self {
            draft: Draft::with_capacity(MAX_DRAFT),
            match_len: 0,
            trust: Trust::new(SUFFIX_TRUST_PRIOR),
            request_trust: Trust::new(SUFFIX_REQUEST_TRUST_PRIOR),
            shadow: Shadow::default(),
        }
    }

    /// Both trusts learn from the prediction they made together.
    fn learn(&mut self, predicted: f64, accepted: usize) {
        self.trust.learn(predicted, accepted);
        self.request_trust.learn(predicted, accepted);
    }

    fn trust(&self) -> f64 {
        self.trust.value() * self.request_trust.value()
    }
}

/// Tree-shaped suffix drafts: the tree, its verification, and what it
/// predicted, when this step verifies one.
#[derive(Debug, Default)]
struct TreeDrafting {
    tree: DraftTree,
    walk: TreeWalk,
    /// Expected accepted tokens of this step's tree, if it verifies one.
    predicted: Option<f64>,
    /// The tokens its verification accepted.
    path: Vec<Token>,
    /// Cells this request's rejected tree rows hold (`TREE_GRAVEYARD_SEQ`).
    graveyard: usize,
    /// Cells a tree may use this step and leave behind, so the request's
    /// own tokens always fit in the context.
    room: usize,
}

impl TreeDrafting {
    /// This step's tree from the suffix trees, at most `limit` nodes and
    /// within `room`; returns the pending token and that node cap.
    fn propose(&mut self, suffix: &mut SuffixDrafter, history: &[Token], limit: usize) -> Option<(Token, usize)> {
        let pending = *history.last()?;
        let limit = limit.min(self.room.saturating_sub(1));
        suffix.propose_tree_into(history, limit, &mut self.tree);
        Some((pending, limit))
    }

    /// The suffix tree's draft as a tree, cut to the size (a whole number
    /// of verify chunks) the cost model rates best, if it branches. The
    /// cost counts every row decoded: a tree's later chunks are cheaper
    /// than that only when the target follows its likelier branches.
    /// Returns the plan and its expected accepted tokens; `walk` holds it.
    fn plan(
        &mut self,
        suffix: &mut SuffixDrafter,
        cost: &CostModel,
        lanes: &[SuffixLane; 2],
        history: &[Token],
        limit: usize,
    ) -> Option<(Plan, f64)> {
        let (pending, limit) = self.propose(suffix, history, limit)?;
        let trust = lanes[suffix.tree_origin().index()].trust();
        if self.tree.match_len < SUFFIX_MIN_MATCH {
            return None;
        }
        let t = trust.min(augur_spec::trust::RATE_CAP);
        let scale = |d: usize| t.powi(d.min(MAX_DRAFT) as i32);
        let per_token = cost.draft_cost(DraftSourceId::Suffix);
        let mut best: Option<(usize, f64, f64)> = None;
        let chunk = cost.chunk().max(1);
        let mut tried = usize::MAX;
        for rows in (chunk..=limit + 1).step_by(chunk).chain(std::iter::once(limit + 1)) {
            self.walk.start(pending, &self.tree, rows - 1);
            let nodes = self.walk.nodes();
            if self.walk.branches() < 2 || nodes == tried {
                continue;
            }
            tried = nodes;
            let predicted = self.walk.expected_accepted(scale);
            let Some(secs) = cost.verify_cost(nodes + 1) else { continue };
            let rate = (1.0 + predicted) / (secs + per_token * nodes as f64);
            if best.is_none_or(|(_, r, _)| rate > r) {
                best = Some((nodes, rate, predicted));
            }
        }
        let (nodes, rate, predicted) = best?;
        self.walk.start(pending, &self.tree, nodes);
        let plan = Plan {
            source: Some(DraftSourceId::Suffix),
            k: nodes,
            expected_tokens: 1.0 + predicted,
            expected_tokens_per_sec: rate,
        };
        Some((plan, predicted))
    }
}

/// Whether this step may verify a branching draft: not under an output
/// constraint, whose state follows one path of committed tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DraftShape {
    Path,
    PathOrTree,
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
    spec.begin_request();
    spec.suffix.begin_output(prompt.len());
    if spec.settings.tree {
        // An earlier request that failed mid-way may have left rows there.
        ctx.kv_remove(TREE_GRAVEYARD_SEQ as i32, -1, -1)?;
        spec.tree.graveyard = 0;
    }
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
        let used = n_kv + remaining + spec.tree.graveyard;
        spec.tree.room = (ctx.n_ctx() as usize).saturating_sub(used);
        let plan = plan_step(spec, &mut picker, mode, fast_forward, &history, limit);
        let tree = spec.tree.predicted.is_some();
        let out_pos = (history.len() - prompt.len()) as u64;
        let (drafted, verdict) = if tree {
            let at = TreeAt { n_kv, chunk: spec.chunk, out_pos };
            let v = verify_tree(ctx, batch, &mut picker, &mut spec.tree.walk, &at, spec.cost.as_mut())?;
            spec.tree.walk.accepted_path(&mut spec.tree.path);
            spec.tree.graveyard += spec.tree.walk.decoded_rows().saturating_sub(1 + v.accepted);
            (spec.tree.walk.nodes(), v)
        } else {
            let input = VerifyInput {
                pending: history[history.len() - 1],
                draft: spec.draft.tokens(),
                n_kv,
                chunk: spec.chunk,
                out_pos,
            };
            (spec.draft.len(), verify_chunked(ctx, batch, &mut picker, &input, spec.cost.as_mut())?)
        };
        ctx.kv_remove(0, pos(n_kv + 1 + verdict.accepted)?, -1)?;
        spec.record(plan.source, drafted, verdict.accepted);
        stats.record(plan.source, drafted, verdict.accepted);
        if tree {
            stats.tree.steps += 1;
            stats.tree.drafted += drafted as u64;
            stats.tree.accepted += verdict.accepted as u64;
        }
        let new_from = history.len();
        let accepted = if tree { &spec.tree.path[..] } else { &spec.draft.tokens()[..verdict.accepted] };
        history.extend_from_slice(accepted);
        history.push(verdict.next);
        n_kv += verdict.accepted + 1;
        spec.observe_committed(&history[new_from..]);
        finish = em.accept(&history[new_from..], sink);
    }
    if spec.settings.tree {
        ctx.kv_remove(TREE_GRAVEYARD_SEQ as i32, -1, -1)?;
        spec.tree.graveyard = 0;
    }
    let usage = clock.usage(prompt.len(), reused, &em);
    if matches!(mode, SpecMode::Suffix | SpecMode::Auto) {
        // Later requests draft from this one's output, up to the token that
        // ended it (the prompt stays private).
        let _ = spec.suffix.finish_request(&history[prompt.len()..]);
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
        return spec.plan(mode, DraftShape::PathOrTree, history, limit);
    };
    if fast_forward {
        if let Some(p) = spec.plan_forced(c.forced(), limit) {
            return p;
        }
    }
    let mut plan = spec.plan(mode, DraftShape::Path, history, limit);
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
            return Err(RuntimeError::InvalidRequest("tree verification produced no token".into()));
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
        let logits = ctx.logits_all().ok_or(RuntimeError::InvalidRequest("no logits".into()))?;
        let pick = |i: usize, depth: usize| {
            let row =
                logits.get(i * n_vocab..(i + 1) * n_vocab).ok_or(RuntimeError::InvalidRequest("no logits".into()))?;
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

    #[test]
    fn suffix_tuning_rejects_values_the_drafter_cannot_use() {
        assert!(SuffixTuning::default().check().is_ok());
        for (p, f) in [(1.5, 4.0), (-0.1, 4.0), (f32::NAN, 4.0), (0.3, -1.0), (0.3, f32::INFINITY), (0.3, f32::NAN)] {
            let t = SuffixTuning { min_token_prob: p, spec_factor: f };
            assert!(t.check().is_err(), "{t:?} accepted");
        }
        let bad = SpecSettings { suffix: SuffixTuning { min_token_prob: 2.0, spec_factor: 4.0 }, ..Default::default() };
        assert!(matches!(Speculator::new(bad, None, None), Err(RuntimeError::InvalidRequest(_))));
        let edge = SuffixTuning { min_token_prob: 0.0, spec_factor: SuffixTuning::MAX_FACTOR };
        let ok = SpecSettings { suffix: edge, ..Default::default() };
        assert!(Speculator::new(ok, None, None).is_ok());
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
mod shadow_tests {
    use super::*;

    /// This box's shape: a chunk of 3 rows costs a little over twice one.
    const CHUNK_COST: [f64; 3] = [0.028, 0.049, 0.063];

    fn speculator() -> Speculator {
        let settings = SpecSettings::default();
        let mut s = Speculator::new(settings, None, None).unwrap();
        s.set_cost(CostModel::chunked(CHUNK_COST.to_vec(), 65).unwrap(), 3);
        s
    }

    struct Outcome {
        /// Simulated decode time over plain decoding's.
        time_ratio: f64,
        drafting_steps: usize,
    }

    /// One request: the prompt holds `passage`, the target writes `truth`
    /// (a greedy target accepts the draft's prefix that equals it).
    fn run(s: &mut Speculator, passage: &[Token], truth: &[Token]) -> Outcome {
        run_mode(s, SpecMode::Lookup, passage, truth)
    }

    fn run_mode(s: &mut Speculator, mode: SpecMode, passage: &[Token], truth: &[Token]) -> Outcome {
        let mut prompt = passage.to_vec();
        prompt.extend([7, 8]);
        // Prefill yields the 9; the steps decode `truth`.
        let output: Vec<Token> = std::iter::once(9).chain(truth.iter().copied()).collect();
        let o = s.replay(mode, &prompt, &output).unwrap();
        Outcome { time_ratio: o.time_ratio(), drafting_steps: o.drafting_steps }
    }

    /// Where a chunk of rows costs what one does, a context the request
    /// continued two ways is drafted as a tree, and the target's branch is
    /// accepted although the single best path is the other one.
    #[test]
    fn a_flat_cost_curve_verifies_both_branches_of_a_fork() {
        let settings = SpecSettings { mode: SpecMode::Suffix, tree: true, ..SpecSettings::default() };
        let mut s = Speculator::new(settings, None, None).unwrap();
        s.set_cost(CostModel::chunked(vec![0.05; 32], 65).unwrap(), 32);
        s.begin_request();
        s.tree.room = 1000;
        let filler = |from: Token| (from..from + 8).collect::<Vec<Token>>();
        let mut history = Vec::new();
        for (at, branch) in [(100, 10), (200, 10), (250, 10), (300, 20), (350, 20)] {
            history.extend(filler(at));
            history.extend(1..=8);
            history.extend(branch..branch + 3);
        }
        history.extend(filler(400));
        history.extend(1..=8);
        let plan = s.plan(SpecMode::Suffix, DraftShape::PathOrTree, &history, 16);
        assert!(s.tree.predicted.is_some(), "a fork on a flat curve is verified as a tree: {plan:?}");
        let path = &s.suffix_lanes[SuffixOrigin::Request.index()].draft;
        assert_eq!(path.tokens().first(), Some(&10), "the best single path follows the likelier branch");
        let truth: Vec<Token> = (20..23).chain([50, 51]).collect();
        let cost = s.cost().unwrap().clone();
        let (drafted, accepted, _) = s.replay_tree(&truth, &cost).unwrap();
        assert!(drafted >= 6, "both branches are drafted ({drafted} nodes)");
        // The best path would have been rejected at its first token.
        assert!(accepted >= 2, "the target's branch is accepted ({accepted})");
        // Under a constraint the same step drafts a path only.
        s.plan(SpecMode::Suffix, DraftShape::Path, &history, 16);
        assert!(s.tree.predicted.is_none());
    }

    /// Where verifying many tokens costs what one does (a bandwidth-bound
    /// server), the request's modest starting trust does not hold drafts
    /// back: the first proposal is drafted long.
    #[test]
    fn a_flat_cost_curve_drafts_long_from_the_first_proposal() {
        let settings = SpecSettings { mode: SpecMode::Lookup, ..SpecSettings::default() };
        let mut s = Speculator::new(settings, None, None).unwrap();
        s.set_cost(CostModel::chunked(vec![0.05; 32], 65).unwrap(), 32);
        s.begin_request();
        let p = passage(3);
        let mut history = p.clone();
        history.extend([7, 8, 9]);
        history.extend_from_slice(&p[..4]);
        let plan = s.plan(SpecMode::Lookup, DraftShape::PathOrTree, &history, 16);
        assert_eq!((plan.source, plan.k), (Some(DraftSourceId::Lookup), 16));
    }

    /// The same for suffix drafts from the global tree: requests that copy
    /// an answer the tree holds gain, and a later request that repeats
    /// three-token phrases of an earlier answer, then goes elsewhere, is
    /// not slowed by the trust the worker learnt on the copying ones (a
    /// single earlier occurrence makes a count ratio of 1).
    #[test]
    fn suffix_drafts_pay_for_no_chance_match_either() {
        let global = std::sync::Arc::new(std::sync::RwLock::new(augur_spec::GlobalSuffixTree::new(1 << 20, 64)));
        let mut s = Speculator::new(SpecSettings::default(), None, Some(global)).unwrap();
        s.set_cost(CostModel::chunked(CHUNK_COST.to_vec(), 65).unwrap(), 3);
        let answer = passage(0);
        run_mode(&mut s, SpecMode::Suffix, &passage(10), &answer);
        for seed in 1..6 {
            let out = run_mode(&mut s, SpecMode::Suffix, &passage(10 + seed), &answer);
            assert!(
                out.time_ratio < 0.85,
                "copy {seed}: {} with {} drafting steps",
                out.time_ratio,
                out.drafting_steps
            );
        }
        let other = passage(7);
        run_mode(&mut s, SpecMode::Suffix, &passage(20), &other);
        let truth: Vec<Token> = (0..12)
            .flat_map(|i| [other[i * 9], other[i * 9 + 1], other[i * 9 + 2], 2000 + i as Token, 3000 + i as Token])
            .collect();
        let out = run_mode(&mut s, SpecMode::Suffix, &passage(30), &truth);
        assert!(out.time_ratio <= 1.0 + 1e-9, "{} with {} drafting steps", out.time_ratio, out.drafting_steps);
    }

    fn passage(seed: Token) -> Vec<Token> {
        (0..120).map(|i| 1000 + (i * 37 + seed * 11) % 500).collect()
    }

    /// A request that copies its prompt starts drafting within a few steps,
    /// learnt from proposals it only watched.
    #[test]
    fn lookup_earns_its_drafts_from_proposals_it_only_watched() {
        let mut s = speculator();
        let p = passage(1);
        let out = run(&mut s, &p, &p);
        assert!(out.time_ratio < 0.85, "{} with {} drafting steps", out.time_ratio, out.drafting_steps);
        assert!(s.lookup_trust.value() > LOOKUP_TRUST_PRIOR, "{}", s.lookup_trust.value());
        // The watched steps were observations, not verify steps.
        let counted: u64 = s.lookup_stats.iter().map(|b| b.counters(DraftSourceId::Lookup).steps).sum();
        assert_eq!(counted as usize, out.drafting_steps);
    }

    /// After requests that copied, a request whose matches are chance
    /// (prose repeating three-token phrases of its prompt, then going
    /// elsewhere) is not slower than plain decoding: statistics learnt on
    /// copying do not buy it rejected verifies before it earns its own trust.
    #[test]
    fn statistics_from_copying_requests_do_not_slow_a_request_of_chance_matches() {
        let mut s = speculator();
        for seed in 0..5 {
            let p = passage(seed);
            assert!(run(&mut s, &p, &p).time_ratio < 0.85);
        }
        let p = passage(9);
        let truth: Vec<Token> =
            (0..12).flat_map(|i| [p[i * 9], p[i * 9 + 1], p[i * 9 + 2], 2000 + i as Token, 3000, 3001]).collect();
        let out = run(&mut s, &p, &truth);
        assert!(out.time_ratio <= 1.0 + 1e-9, "{} with {} drafting steps", out.time_ratio, out.drafting_steps);
        s.begin_request();
        assert_eq!(s.lookup_trust.value(), LOOKUP_TRUST_PRIOR);
    }
}
