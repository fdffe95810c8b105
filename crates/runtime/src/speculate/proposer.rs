//! The proposer: what speculation keeps across the requests of a worker
//! (draft sources, their statistics and trusts, the cost model), the plan
//! of each step, and what it learns from the verified outcome.
//!
//! A step is `propose` (or `propose_forced` under a grammar), verification
//! of the returned [`Proposal`], then `observe` and `observe_committed`.
//! The driver and the replay make exactly these calls.

use augur_sampling::Token;
use augur_spec::trust::{suffix_weight, SUFFIX_MIN_MATCH};
use augur_spec::{
    AcceptanceStats, CostModel, Draft, DraftSourceId, Drafter, Plan, PromptLookup, RiskBudget, Shadow, ShadowOutcome,
    SharedGlobal, StatsConfig, SuffixConfig, SuffixDrafter, SuffixOrigin, TreeWalk, Trust, MAX_DRAFT,
};

use super::lanes::{SuffixLane, TreeDrafting};
use super::settings::{
    DraftPolicy, SpecMode, SpecSettings, CATCH_UP_FRACTION, FORCED_PRIOR, LOOKUP_BUCKETS, LOOKUP_TRUST_PRIOR,
};
use crate::draft::{DraftModel, DraftTimes};
use crate::RuntimeError;

/// Whether this step may verify a branching draft: not under an output
/// constraint, whose state follows one path of committed tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DraftShape {
    Path,
    PathOrTree,
}

/// What a step asks of the proposer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ask<'h> {
    pub(crate) mode: SpecMode,
    pub(crate) shape: DraftShape,
    /// The committed tokens; the last one is pending (not in the cache).
    pub(crate) history: &'h [Token],
    /// Most draft tokens the step may verify.
    pub(crate) limit: usize,
    /// Cells a tree may occupy and leave behind in the context.
    pub(crate) room: usize,
}

/// This step's draft, lent to verification.
pub(crate) struct Proposal<'a> {
    pub(crate) plan: Plan,
    pub(crate) draft: Drafted<'a>,
    /// Largest verify batch that is bit-identical to one-token decoding.
    pub(crate) chunk: usize,
    /// Verification feeds its decode times back into the plans' costs.
    pub(crate) cost: Option<&'a mut CostModel>,
}

/// A draft is a path, or a tree (when `plan` chose one).
pub(crate) enum Drafted<'a> {
    Path(&'a mut Draft),
    Tree(&'a mut TreeWalk),
}

impl Proposal<'_> {
    /// The path's tokens (none for a tree).
    pub(crate) fn path(&self) -> &[Token] {
        match &self.draft {
            Drafted::Path(d) => d.tokens(),
            Drafted::Tree(_) => &[],
        }
    }

    /// Keep the path's first `n` tokens (what a grammar allows).
    pub(crate) fn truncate(&mut self, n: usize) {
        let Drafted::Path(d) = &mut self.draft else { return };
        if n < d.len() {
            d.truncate(n);
            self.plan.k = n;
            if n == 0 {
                self.plan.source = None;
            }
        }
    }

    pub(crate) fn is_tree(&self) -> bool {
        matches!(self.draft, Drafted::Tree(_))
    }

    /// The first `accepted` tokens of the verified draft, into `out`.
    pub(crate) fn accepted(&self, accepted: usize, out: &mut Vec<Token>) {
        match &self.draft {
            Drafted::Path(d) => {
                out.clear();
                out.extend_from_slice(&d.tokens()[..accepted]);
            }
            Drafted::Tree(walk) => walk.accepted_path(out),
        }
    }
}

/// What verification made of a proposal.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepOutcome {
    pub(crate) source: Option<DraftSourceId>,
    pub(crate) drafted: usize,
    pub(crate) accepted: usize,
}

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
    /// What this request's drafts have won and lost: no step risks more
    /// than it allows.
    budget: RiskBudget,
    /// The draft model's catch-up this step's plan counted on, in seconds.
    catch_up_secs: f64,
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
            budget: RiskBudget::default(),
            catch_up_secs: 0.0,
            settings,
        })
    }

    pub fn settings(&self) -> &SpecSettings {
        &self.settings
    }

    pub fn has_draft_model(&self) -> bool {
        self.draft_model.is_some()
    }

    /// The draft model's time in this request so far.
    pub(crate) fn draft_times(&self) -> DraftTimes {
        self.draft_model.as_ref().map(DraftModel::times).unwrap_or_default()
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

    /// A new request whose output starts after `prompt_len` tokens: its own
    /// trusts, nothing watched. The draft model keeps its cache (it catches
    /// up from the common prefix).
    pub(crate) fn begin_request(&mut self, prompt_len: usize) {
        if let Some(d) = self.draft_model.as_mut() {
            d.begin_request();
        }
        self.reset_request();
        self.suffix.begin_output(prompt_len);
    }

    /// The request is over: with suffix drafting on, later requests draft
    /// from its `output`, up to the token that ended it (the prompt stays
    /// private).
    pub(crate) fn finish_request(&mut self, mode: SpecMode, output: &[Token]) {
        if matches!(mode, SpecMode::Suffix | SpecMode::Auto) {
            let _ = self.suffix.finish_request(output);
        }
    }

    /// Choose and fill the draft for this step.
    pub(crate) fn propose(&mut self, ask: &Ask<'_>) -> Proposal<'_> {
        self.tree.room = ask.room;
        let plan = self.plan(ask.mode, ask.shape, ask.history, ask.limit);
        self.proposal(plan)
    }

    /// Fast-forward: the tokens the grammar forces, as a draft the target
    /// verifies (another tokenisation of the same text may be its choice).
    /// Needs the calibrated curve: without batching they would gain nothing.
    /// Returns the plan; `proposal` then lends its draft (in two calls, so
    /// a caller may fall back to `propose` when there is none).
    pub(crate) fn propose_forced(&mut self, forced: &[u32], limit: usize) -> Option<Plan> {
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

    /// The draft `plan` (just made) stands for.
    pub(crate) fn proposal(&mut self, plan: Plan) -> Proposal<'_> {
        let draft = if self.tree.predicted.is_some() {
            Drafted::Tree(&mut self.tree.walk)
        } else {
            Drafted::Path(&mut self.draft)
        };
        Proposal { plan, draft, chunk: self.chunk, cost: self.cost.as_mut() }
    }

    /// What verification made of this step's proposal.
    pub(crate) fn observe(&mut self, o: &StepOutcome) {
        let (drafted, accepted) = (o.drafted, o.accepted);
        self.settle(o);
        match o.source {
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

    /// The tokens the target committed this step: watched proposals
    /// resolve against them.
    pub(crate) fn observe_committed(&mut self, committed: &[Token]) {
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

    /// Charge the step to the request's budget, at the cost model's prices.
    fn settle(&mut self, o: &StepOutcome) {
        let Some(cost) = &self.cost else { return };
        let (per_token, extra) = self.overhead(cost, o.source);
        let secs = cost.step_secs(o.drafted, o.accepted, per_token) + extra;
        self.budget.settle(secs / cost.plain_secs(), o.accepted + 1);
    }

    /// What a step drafting from `source` costs besides its verify chunks:
    /// seconds per drafted token, and the draft model's planned catch-up.
    fn overhead(&self, cost: &CostModel, source: Option<DraftSourceId>) -> (f64, f64) {
        let per_token = source.map_or(0.0, |s| cost.draft_cost(s));
        let catch_up = if source == Some(DraftSourceId::DraftModel) { self.catch_up_secs } else { 0.0 };
        (per_token, catch_up)
    }

    fn learn_lookup(&mut self, bucket: usize, o: ShadowOutcome) {
        if let Some(stats) = self.lookup_stats.get_mut(bucket) {
            stats.observe_from(DraftSourceId::Lookup, o.from, o.drafted, o.accepted);
        }
        self.lookup_trust.learn(o.predicted, o.accepted);
    }

    /// The per-request state of the sources and their trusts.
    fn reset_request(&mut self) {
        self.lookup.reset();
        self.suffix.reset();
        self.lookup_trust.reset();
        self.lookup_shadow = LookupShadow::default();
        self.budget.reset();
        for lane in &mut self.suffix_lanes {
            lane.request_trust.reset();
            lane.shadow = Shadow::default();
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
        // Taken for the plan, so the sources can be borrowed beside it.
        let Some(cost) = self.cost.take() else { return plain_unknown() };
        let plan = self.plan_costed(&cost, mode, trees, history, limit);
        self.cost = Some(cost);
        plan
    }

    /// The cost model's choice among the sources `mode` allows.
    fn plan_costed(&mut self, cost: &CostModel, mode: SpecMode, trees: bool, history: &[Token], limit: usize) -> Plan {
        let use_lookup = matches!(mode, SpecMode::Lookup | SpecMode::Auto);
        let use_suffix = matches!(mode, SpecMode::Suffix | SpecMode::Auto);
        let use_draft = matches!(mode, SpecMode::Draft | SpecMode::Auto) && self.draft_model.is_some();
        if limit == 0 || !(use_lookup || use_suffix || use_draft) {
            return cost.plain();
        }
        let mut best = cost.plain();
        if use_lookup {
            self.plan_lookup(cost, history, limit, &mut best);
        }
        if use_suffix {
            self.plan_suffix(cost, trees, history, limit, &mut best);
        }
        if use_draft {
            self.plan_draft_model(cost, history, limit, &mut best);
        }
        let best = self.within_budget(cost, best);
        self.watch(best.source, best.k);
        if self.tree.predicted.is_some() {
            return best;
        }
        self.fill_draft(best, history)
    }

    fn plan_lookup(&mut self, cost: &CostModel, history: &[Token], limit: usize, best: &mut Plan) {
        self.lookup.propose(history, limit, &mut self.draft);
        if self.draft.is_empty() {
            return;
        }
        let stats = &self.lookup_stats[self.lookup_bucket()];
        let cond = stats.rates(DraftSourceId::Lookup)[..self.draft.len()].iter().copied();
        let rates = self.lookup_trust.scale(cond);
        let mut p = cost.plan_for(rates, cost.draft_cost(DraftSourceId::Lookup), self.draft.len());
        self.lookup_trust.planned(p.k);
        if p.k > 0 {
            p.source = Some(DraftSourceId::Lookup);
            *best = p;
        }
    }

    /// Each suffix lane's path, then (when allowed) the branching tree.
    fn plan_suffix(&mut self, cost: &CostModel, trees: bool, history: &[Token], limit: usize, best: &mut Plan) {
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
                *best = p;
                self.suffix_chosen = origin;
            }
        }
        if trees {
            let found = self.tree.plan(&mut self.suffix, cost, &self.suffix_lanes, history, limit);
            if let Some((p, predicted)) =
                found.filter(|(p, _)| p.expected_tokens_per_sec > best.expected_tokens_per_sec)
            {
                *best = p;
                self.tree.predicted = Some(predicted);
            }
        }
    }

    fn plan_draft_model(&mut self, cost: &CostModel, history: &[Token], limit: usize, best: &mut Plan) {
        let Some(d) = self.draft_model.as_ref() else { return };
        let mut p = cost.choose(&self.draft_stats, DraftSourceId::DraftModel, limit);
        // Catching the draft model up on tokens it has not seen costs
        // too; a prompt-sized lag makes drafting a loss.
        let catch_up = d.lag(history) as f64 * d.cost_per_token * CATCH_UP_FRACTION;
        if p.k > 0 && p.expected_tokens_per_sec > 0.0 {
            p.expected_tokens_per_sec = p.expected_tokens / (p.expected_tokens / p.expected_tokens_per_sec + catch_up);
        }
        if p.expected_tokens_per_sec > best.expected_tokens_per_sec {
            *best = p;
            self.catch_up_secs = catch_up;
        }
    }

    /// The plan, cut to the longest draft whose worst case (its first token
    /// rejected) the request's budget covers; plain decoding if none.
    fn within_budget(&mut self, cost: &CostModel, best: Plan) -> Plan {
        let Some(source) = best.source.filter(|_| best.k > 0) else { return best };
        let plain = cost.plain_secs();
        let (per_token, extra) = self.overhead(cost, Some(source));
        let fits = |k: usize| self.budget.allows((cost.worst_case_secs(k, per_token) + extra) / plain);
        if self.tree.predicted.is_some() {
            if fits(best.k) {
                return best;
            }
            self.tree.predicted = None;
            return cost.plain();
        }
        let Some(k) = (1..=best.k).rev().find(|&k| fits(k)) else { return cost.plain() };
        if k < best.k {
            // The trusts judge the draft that is verified.
            match source {
                DraftSourceId::Lookup => self.lookup_trust.planned(k),
                DraftSourceId::Suffix => self.suffix_lanes[self.suffix_chosen.index()].request_trust.planned(k),
                _ => {}
            }
        }
        Plan { k, ..best }
    }

    /// Put the chosen path into `draft`, cut to the plan's length.
    fn fill_draft(&mut self, mut best: Plan, history: &[Token]) -> Plan {
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
                // Below its confidence floor the model drafts nothing, after
                // paying for its catch-up: for the plan, a rejection.
                if self.draft.is_empty() {
                    self.draft_stats.record(DraftSourceId::DraftModel, best.k, 0);
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
            // Each lane still holds its own draft: `fill_draft` moves the
            // chosen one into `draft` after this.
            let chosen = chosen == Some(DraftSourceId::Suffix) && self.suffix_chosen == origin;
            if !tree && lane.match_len >= SUFFIX_MIN_MATCH && !lane.draft.is_empty() {
                let skip = if chosen { k } else { 0 };
                lane.shadow.start(lane.draft.tokens(), lane.request_trust.rates(), skip);
            }
        }
    }
}

/// Plain decoding when no cost curve is known (speculation off).
fn plain_unknown() -> Plan {
    Plan { source: None, k: 0, expected_tokens: 1.0, expected_tokens_per_sec: 0.0 }
}

#[cfg(test)]
#[path = "proposer_tests.rs"]
mod tests;
