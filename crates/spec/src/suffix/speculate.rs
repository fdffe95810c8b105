//! Drafting from a suffix tree: match the context's tail, then follow the
//! most frequent continuations.
//!
//! A drafted token's probability is the product of `count(child) /
//! count(parent)` along its path from the matched node: the empirical chance
//! that the pattern continues that way. A pattern's last occurrence (the
//! context itself, in a per-request tree) has no continuation yet, which
//! lowers these ratios a little; that is the honest estimate.
//!
//! Match length: every tail of the context up to the depth cap that occurs
//! in the tree is tried, and the one whose draft scores best (expected
//! accepted tokens) wins, ties to the longer match. Trying only the longest
//! match would fail exactly where the paper's trees shine: in a per-request
//! tree the longest match is usually the context's own tail, which has no
//! continuation, and in a depth-capped tree a long match leaves little depth
//! to draft into.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::tree::{Hit, SuffixTree};
use super::{DraftTree, SuffixDraft, SuffixParams};
use crate::Token;

/// The best candidate so far: match length, its node, budget and score.
#[derive(Clone, Copy)]
struct Choice {
    m: usize,
    node: Hit,
    budget: usize,
    score: f64,
}

impl SuffixTree {
    /// Single-path draft to follow `context`; see the module docs.
    pub fn speculate(&self, context: &[Token], params: &SuffixParams) -> SuffixDraft {
        let mut out = SuffixDraft::default();
        self.speculate_into(context, params, &mut out);
        out
    }

    /// As [`Self::speculate`], reusing `out`'s buffers.
    pub fn speculate_into(&self, context: &[Token], params: &SuffixParams, out: &mut SuffixDraft) {
        out.clear();
        let pick = self.choose(context, params, |node, budget| self.walk(node, budget, params, |_, _, _| {}));
        let Some(c) = pick else {
            return;
        };
        out.match_len = c.m;
        let score = self.walk(c.node, c.budget, params, |t, p, support| {
            out.tokens.push(t);
            out.probs.push(p as f32);
            out.support.push(support);
        });
        out.score = score as f32;
    }

    /// Tree-shaped draft: best-first expansion by cumulative probability,
    /// at most the same budget in nodes, same match-length choice rule.
    pub fn speculate_tree(&self, context: &[Token], params: &SuffixParams) -> DraftTree {
        let mut tree = DraftTree::default();
        self.speculate_tree_into(context, params, &mut TreeScratch::default(), &mut tree);
        tree
    }

    /// As [`Self::speculate_tree`], reusing `scratch`'s and `out`'s buffers.
    pub fn speculate_tree_into(
        &self,
        context: &[Token],
        params: &SuffixParams,
        scratch: &mut TreeScratch,
        out: &mut DraftTree,
    ) {
        let TreeScratch { heap, trial } = scratch;
        let pick = self.choose(context, params, |node, budget| self.expand(node, budget, params, heap, trial));
        out.clear();
        if let Some(c) = pick {
            self.expand(c.node, c.budget, params, heap, out);
            out.match_len = c.m;
        }
    }

    /// Tries every occurring tail of `context` (longest first) and keeps
    /// the best positive score from `eval(node, budget)`.
    fn choose(
        &self,
        context: &[Token],
        params: &SuffixParams,
        mut eval: impl FnMut(Hit, usize) -> f64,
    ) -> Option<Choice> {
        let cap = context.len().min(self.max_depth());
        let mut best: Option<Choice> = None;
        for m in (1..=cap).rev() {
            let budget = params.budget(m);
            let Some(node) = self.find(&context[context.len() - m..]) else {
                continue;
            };
            if budget == 0 {
                continue;
            }
            let score = eval(node, budget);
            if score > best.map_or(0.0, |b| b.score) {
                best = Some(Choice { m, node, budget, score });
            }
        }
        best
    }

    /// Follows most frequent children from `node`, calling `f(token, p,
    /// support)` for each kept token (`support`: how often its context
    /// occurred); returns the sum of the kept probabilities.
    fn walk(&self, mut node: Hit, budget: usize, params: &SuffixParams, mut f: impl FnMut(Token, f64, u32)) -> f64 {
        let min_prob = params.min_token_prob;
        let (mut prob, mut score) = (1.0f64, 0.0f64);
        for _ in 0..budget {
            let Some((t, child)) = self.best_child(node.0) else {
                break;
            };
            let p = prob * ratio(child, node);
            if p < f64::from(min_prob) {
                break;
            }
            (prob, score) = (p, score + p);
            f(t, p, node.1);
            node = child;
        }
        score
    }

    /// Best-first expansion below `node` into `out` (cleared first);
    /// returns the score.
    fn expand(
        &self,
        node: Hit,
        budget: usize,
        params: &SuffixParams,
        heap: &mut BinaryHeap<Cand>,
        out: &mut DraftTree,
    ) -> f64 {
        let min_prob = params.min_token_prob;
        out.clear();
        heap.clear();
        let mut seq = 0u64;
        let mut push_children = |heap: &mut BinaryHeap<Cand>, from: Hit, cum: f64, parent| {
            self.for_each_child(from.0, |token, child| {
                let p = cum * ratio(child, from);
                if p >= f64::from(min_prob) {
                    seq += 1;
                    let (node, prob) = (child, p);
                    heap.push(Cand { prob, seq, node, token, parent });
                }
            });
        };
        push_children(heap, node, 1.0, None);
        let mut score = 0.0;
        while out.tokens.len() < budget {
            let Some(c) = heap.pop() else {
                break;
            };
            let idx = out.tokens.len();
            out.tokens.push(c.token);
            out.parents.push(c.parent);
            out.probs.push(c.prob as f32);
            score += c.prob;
            push_children(heap, c.node, c.prob, Some(idx));
        }
        out.score = score as f32;
        score
    }
}

/// `count(child) / count(parent)`; a parent is never rarer than its child,
/// and a zero count (impossible in a consistent tree) cannot divide by 0.
fn ratio(child: Hit, parent: Hit) -> f64 {
    f64::from(child.1) / f64::from(parent.1.max(1))
}

/// Buffers of tree-shaped drafting, kept so a step allocates nothing.
#[derive(Default)]
pub struct TreeScratch {
    heap: BinaryHeap<Cand>,
    trial: DraftTree,
}

impl std::fmt::Debug for TreeScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeScratch").finish_non_exhaustive()
    }
}

/// A frontier node in best-first expansion. Highest probability first;
/// among equals the earlier pushed, so expansion is deterministic.
struct Cand {
    prob: f64,
    seq: u64,
    node: Hit,
    token: Token,
    parent: Option<usize>,
}

impl PartialEq for Cand {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Cand {}

impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.prob.total_cmp(&other.prob).then_with(|| other.seq.cmp(&self.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(k: usize) -> SuffixParams {
        SuffixParams { max_spec_tokens: k, ..SuffixParams::default() }
    }

    fn wide_k(k: usize) -> SuffixParams {
        SuffixParams { max_spec_factor: 4.0, ..params(k) }
    }

    #[test]
    fn drafts_repeated_continuation() {
        let mut t = SuffixTree::new(8);
        t.extend(0, &[1, 2, 3, 4, 9, 1, 2]).unwrap();
        let wide = SuffixParams { max_spec_factor: 4.0, ..params(8) };
        let d = t.speculate(&[1, 2], &wide);
        assert_eq!(d.tokens, vec![3, 4, 9, 1, 2]);
        assert_eq!(d.match_len, 2);
        // [1, 2] occurs twice, continued once: every token is 1/2.
        assert!(d.probs.iter().all(|&p| (p - 0.5).abs() < 1e-6));
        assert!((d.score - 2.5).abs() < 1e-6);
        // Budget = floor(1.0 * m) = 2 for a length-2 match by default.
        assert_eq!(t.speculate(&[1, 2], &params(8)).tokens, vec![3, 4]);
        assert_eq!(t.speculate(&[1, 2], &wide_k(1)).tokens, vec![3]);
    }

    #[test]
    fn nothing_to_offer() {
        let mut t = SuffixTree::new(8);
        assert!(t.speculate(&[1, 2], &params(8)).tokens.is_empty());
        t.extend(0, &[1, 2]).unwrap();
        assert!(t.speculate(&[], &params(8)).tokens.is_empty());
        assert!(t.speculate(&[7], &params(8)).tokens.is_empty());
        assert!(t.speculate(&[1], &params(0)).tokens.is_empty());
        assert!(t.speculate_tree(&[1], &params(0)).tokens.is_empty());
    }

    #[test]
    fn tree_holds_both_branches() {
        let mut t = SuffixTree::new(8);
        t.extend(0, &[1, 2, 3]).unwrap();
        t.extend(1, &[1, 2, 4]).unwrap();
        t.extend(2, &[1, 2, 3]).unwrap();
        let p = SuffixParams { max_spec_factor: 4.0, ..params(8) };
        let tree = t.speculate_tree(&[1], &p);
        assert_eq!(tree.tokens, vec![2, 3, 4]);
        assert_eq!(tree.parents, vec![None, Some(0), Some(0)]);
        assert_eq!(tree.best_path(), vec![2, 3]);
        assert_eq!(tree.paths(), vec![vec![0, 1], vec![0, 2]]);
        let path = t.speculate(&[1], &p);
        assert_eq!(path.tokens, vec![2, 3]);
        assert!(tree.score >= path.score);
    }
}
