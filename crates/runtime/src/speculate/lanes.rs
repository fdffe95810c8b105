//! The suffix trees as draft sources: a lane per tree (its draft and how
//! far it is trusted), and the branching drafts built from them.

use augur_sampling::Token;
use augur_spec::trust::SUFFIX_MIN_MATCH;
use augur_spec::{CostModel, Draft, DraftSourceId, DraftTree, Plan, Shadow, SuffixDrafter, TreeWalk, Trust, MAX_DRAFT};

use super::settings::{SUFFIX_REQUEST_TRUST_PRIOR, SUFFIX_TRUST_PRIOR};

/// One suffix tree as a draft source: this step's draft and how far its
/// count ratios are trusted, by the worker and by this request.
#[derive(Debug)]
pub(crate) struct SuffixLane {
    pub(crate) draft: Draft,
    pub(crate) match_len: usize,
    /// Observed over predicted acceptance, which scales the drafts' own
    /// count-ratio probabilities (over-confident where a context was seen
    /// only once or twice).
    pub(crate) trust: Trust,
    /// This request's correction on top of `trust`.
    pub(crate) request_trust: Trust,
    pub(crate) shadow: Shadow,
}

impl SuffixLane {
    pub(crate) fn new() -> Self {
        Self {
            draft: Draft::with_capacity(MAX_DRAFT),
            match_len: 0,
            trust: Trust::new(SUFFIX_TRUST_PRIOR),
            request_trust: Trust::new(SUFFIX_REQUEST_TRUST_PRIOR),
            shadow: Shadow::default(),
        }
    }

    /// Both trusts learn from the prediction they made together.
    pub(crate) fn learn(&mut self, predicted: f64, accepted: usize) {
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
pub(crate) struct TreeDrafting {
    pub(crate) tree: DraftTree,
    pub(crate) walk: TreeWalk,
    /// Expected accepted tokens of this step's tree, if it verifies one.
    pub(crate) predicted: Option<f64>,
    /// Cells a tree may use this step and leave behind, so the request's
    /// own tokens always fit in the context (the caller's, per step).
    pub(crate) room: usize,
}

impl TreeDrafting {
    /// This step's tree from the suffix trees, at most `limit` nodes and
    /// within `room`; returns the pending token and that node cap.
    pub(crate) fn propose(
        &mut self,
        suffix: &mut SuffixDrafter,
        history: &[Token],
        limit: usize,
    ) -> Option<(Token, usize)> {
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
    pub(crate) fn plan(
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
