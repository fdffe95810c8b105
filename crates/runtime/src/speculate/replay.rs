//! Replaying speculation against a known greedy output, without the model.
//!
//! At temperature 0 the target's tokens do not depend on the drafts, so a
//! recorded answer says what every verify step would have accepted: a
//! draft's accepted prefix is its common prefix with the rest of the
//! answer. The step's time is the calibrated cost of the rows the verifier
//! decodes (chunk by chunk, stopping after the chunk with the first
//! rejection). Drafting policies can then be compared on a workload in
//! milliseconds, on the costs of the machine that calibrated the curve
//! (`examples/replay.rs`).

use augur_sampling::Token;
use augur_spec::{CostModel, TreeWalk, MAX_DRAFT};

use super::proposer::{Ask, DraftShape, Drafted, Proposal, Speculator, StepOutcome};
use super::settings::SpecMode;

/// What one replayed request cost, against plain decoding of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplayOutcome {
    /// Output tokens decoded after the first (which prefill yields).
    pub decoded: usize,
    /// Verify steps.
    pub steps: usize,
    /// Steps that verified a draft.
    pub drafting_steps: usize,
    pub drafted: usize,
    pub accepted: usize,
    /// Modelled decode seconds.
    pub secs: f64,
    /// The same for plain decoding: one single-row step per token.
    pub plain_secs: f64,
}

impl ReplayOutcome {
    /// Modelled decode time over plain decoding's (below 1 is a gain).
    pub fn time_ratio(&self) -> f64 {
        if self.plain_secs > 0.0 {
            self.secs / self.plain_secs
        } else {
            1.0
        }
    }

    /// Sum of several requests.
    pub fn add(&mut self, o: &ReplayOutcome) {
        self.decoded += o.decoded;
        self.steps += o.steps;
        self.drafting_steps += o.drafting_steps;
        self.drafted += o.drafted;
        self.accepted += o.accepted;
        self.secs += o.secs;
        self.plain_secs += o.plain_secs;
    }
}

impl Speculator {
    /// One request through the speculative loop's planning and learning,
    /// with `output` (the greedy answer, ending with its end-of-generation
    /// token) standing in for the target. Needs a cost model; the global
    /// suffix tree learns the answer afterwards, as after a real request.
    pub fn replay(&mut self, mode: SpecMode, prompt: &[Token], output: &[Token]) -> Option<ReplayOutcome> {
        let cost = self.cost()?.clone();
        self.replay_charged(mode, prompt, output, &cost)
    }

    /// As [`Self::replay`], charging each step at `cost` (say, the curve
    /// measured at the workload's context length) while the plans follow
    /// the installed cost model. Makes the driver's calls: `begin_request`,
    /// per step `propose`, `observe`, `observe_committed`, then
    /// `finish_request`.
    pub fn replay_charged(
        &mut self,
        mode: SpecMode,
        prompt: &[Token],
        output: &[Token],
        cost: &CostModel,
    ) -> Option<ReplayOutcome> {
        let plain = cost.verify_cost(1)?;
        let (&first, rest) = output.split_first()?;
        self.begin_request(prompt.len());
        let mut history: Vec<Token> = Vec::with_capacity(prompt.len() + output.len() + MAX_DRAFT);
        history.extend_from_slice(prompt);
        history.push(first);
        let mut out =
            ReplayOutcome { decoded: rest.len(), plain_secs: rest.len() as f64 * plain, ..Default::default() };
        let limit = self.settings().spec_max;
        let mut at = 0;
        while at < rest.len() {
            let truth = &rest[at..];
            // Drafts do not know where the answer ends; what they draft past
            // it is rejected.
            let ask = Ask { mode, shape: DraftShape::PathOrTree, history: &history, limit, room: usize::MAX / 2 };
            let mut proposal = self.propose(&ask);
            let (drafted, accepted, secs) = replay_step(&mut proposal, truth, cost)?;
            let plan = proposal.plan;
            out.secs += secs;
            out.steps += 1;
            out.drafting_steps += usize::from(plan.k > 0);
            out.drafted += drafted;
            out.accepted += accepted;
            self.observe(&StepOutcome { source: plan.source, drafted, accepted });
            let committed = &truth[..accepted + 1];
            history.extend_from_slice(committed);
            self.observe_committed(committed);
            at += accepted + 1;
        }
        self.finish_request(mode, output);
        Some(out)
    }
}

/// A verification against a target that writes `truth`: drafted tokens,
/// accepted tokens and the decoded chunks' cost.
fn replay_step(proposal: &mut Proposal<'_>, truth: &[Token], cost: &CostModel) -> Option<(usize, usize, f64)> {
    let chunk = proposal.chunk;
    match &mut proposal.draft {
        Drafted::Tree(walk) => replay_tree(walk, chunk, truth, cost),
        Drafted::Path(draft) => {
            let draft = draft.tokens();
            let accepted = draft.iter().zip(truth).take_while(|(a, b)| a == b).count().min(truth.len() - 1);
            let rows = (draft.len() + 1).min((accepted / chunk + 1) * chunk);
            Some((draft.len(), accepted, cost.verify_cost(rows)?))
        }
    }
}

/// A tree verification against a target that writes `truth`: drafted
/// nodes, accepted tokens and the decoded chunks' cost.
pub(super) fn replay_tree(
    walk: &mut TreeWalk,
    chunk: usize,
    truth: &[Token],
    cost: &CostModel,
) -> Option<(usize, usize, f64)> {
    let mut secs = 0.0;
    let verdict = loop {
        let rows = walk.next_chunk(chunk).len();
        secs += cost.verify_cost(rows)?;
        // Past the answer's end the target "writes" a token no draft has.
        let pick = |_, d: usize| Ok::<_, ()>(if d + 1 < truth.len() { truth[d] } else { -1 });
        if let Some(v) = walk.advance(pick).ok()? {
            break v;
        }
    };
    Some((walk.nodes(), verdict.accepted, secs))
}
