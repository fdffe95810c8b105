//! The proposer's planning and learning, replayed without a model.

use super::*;
use crate::speculate::replay::replay_tree;

impl Speculator {
    /// The replay's tree verification of this step's tree.
    fn replay_tree(&mut self, truth: &[Token], cost: &CostModel) -> Option<(usize, usize, f64)> {
        replay_tree(&mut self.tree.walk, self.chunk, truth, cost)
    }
}

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
    s.begin_request(0);
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
    let mut s = flat_speculator(SpecMode::Lookup);
    let history = copying(&passage(3), 4);
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
        assert!(out.time_ratio < 0.85, "copy {seed}: {} with {} drafting steps", out.time_ratio, out.drafting_steps);
    }
    let other = passage(7);
    run_mode(&mut s, SpecMode::Suffix, &passage(20), &other);
    let truth: Vec<Token> = (0..12)
        .flat_map(|i| [other[i * 9], other[i * 9 + 1], other[i * 9 + 2], 2000 + i as Token, 3000 + i as Token])
        .collect();
    let out = run_mode(&mut s, SpecMode::Suffix, &passage(30), &truth);
    // The trust learnt on the copies may buy a chance match a draft or
    // two, but never more than the request's risk budget.
    let bound = 1.0 + augur_spec::budget::LOSS_SHARE + augur_spec::budget::SEED_STEPS / truth.len() as f64;
    assert!(out.time_ratio <= bound, "{} with {} drafting steps", out.time_ratio, out.drafting_steps);
}

/// Whatever the trusts learnt, a request of chance matches after many
/// copying ones stays within its budget: each failed draft must be paid
/// for by plain tokens before the next is risked.
#[test]
fn failing_drafts_stop_within_the_risk_budget() {
    let global = std::sync::Arc::new(std::sync::RwLock::new(augur_spec::GlobalSuffixTree::new(1 << 20, 64)));
    let mut s = Speculator::new(SpecSettings::default(), None, Some(global)).unwrap();
    s.set_cost(CostModel::chunked(CHUNK_COST.to_vec(), 65).unwrap(), 3);
    // Many earlier answers share a long format; this one breaks it at
    // every field.
    for seed in 0..8 {
        run_mode(&mut s, SpecMode::Suffix, &passage(40 + seed), &passage(0));
    }
    let base = passage(0);
    let truth: Vec<Token> = (0..20).flat_map(|i| [base[i * 4], base[i * 4 + 1], 4000 + i as Token]).collect();
    let out = run_mode(&mut s, SpecMode::Suffix, &passage(60), &truth);
    let bound = 1.0 + augur_spec::budget::LOSS_SHARE + augur_spec::budget::SEED_STEPS / truth.len() as f64;
    assert!(out.time_ratio <= bound, "{} with {} drafting steps", out.time_ratio, out.drafting_steps);
}

/// A speculator in `mode` on a flat cost curve (32 rows cost one), with a
/// request begun.
fn flat_speculator(mode: SpecMode) -> Speculator {
    let settings = SpecSettings { mode, ..SpecSettings::default() };
    let mut s = Speculator::new(settings, None, None).unwrap();
    s.set_cost(CostModel::chunked(vec![0.05; 32], 65).unwrap(), 32);
    s.begin_request(0);
    s
}

/// `passage`, a separator, then the first `copied` tokens of it again.
fn copying(passage: &[Token], copied: usize) -> Vec<Token> {
    let mut history = passage.to_vec();
    history.extend([7, 8, 9]);
    history.extend_from_slice(&passage[..copied]);
    history
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
    s.begin_request(0);
    assert_eq!(s.lookup_trust.value(), LOOKUP_TRUST_PRIOR);
}

/// Regression: `watch` ran before `fill_draft` moved the chosen suffix
/// lane's draft into `draft`, so the chosen lane watched whatever `draft`
/// held (the lookup's proposal, or nothing in `suffix` mode) and never
/// learnt from the part of its draft past the verified length.
#[test]
fn chosen_suffix_lane_watches_its_own_draft() {
    let mut s = flat_speculator(SpecMode::Suffix);
    let p = passage(4);
    let history = copying(&p, 6);
    let plan = s.plan(SpecMode::Suffix, DraftShape::Path, &history, 16);
    assert_eq!(plan.source, Some(DraftSourceId::Suffix), "{plan:?}");
    let lane = &s.suffix_lanes[s.suffix_chosen.index()];
    assert!(lane.shadow.is_active(), "the chosen lane watches its own draft");
    assert_eq!(&s.draft.tokens()[..plan.k], &p[6..6 + plan.k]);
}
