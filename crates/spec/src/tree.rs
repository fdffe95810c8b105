//! Verifying a draft tree in verify chunks, without a model.
//!
//! Row 0 is the pending token; row `i + 1` is tree node `i`. A row's logits
//! give the target's token after the path to it. The walk keeps `cur`, the
//! deepest node the target has accepted so far; each chunk decodes `cur`'s
//! row and then the most probable nodes below it (the tree's own order is
//! best-first, parents before children), so a chunk never spends rows on a
//! branch the target already left. After a chunk, the target's token at
//! `cur` either names one of its children (accepted: go down) or ends the
//! step. This accepts the longest path that agrees with the target, so it
//! is never shorter than verifying any single path of the tree, and with
//! one-hot drafts at T > 0 it is exact for the same reason a path is: a
//! node is accepted iff it equals the target's own (seeded) choice there.
//!
//! Attention: every leaf gets a KV sequence of its own (1..=branches), and
//! a node belongs to the sequences of the leaves below it, so each row sees
//! exactly the context and its ancestors. The pending row belongs to all of
//! them and to sequence 0, which holds the committed context.

use crate::suffix::DraftTree;
use crate::Token;

/// Most leaves (KV sequences besides sequence 0) a verified tree may have.
pub const MAX_TREE_BRANCHES: usize = 8;

/// The KV sequence that keeps a request's rejected tree rows until it ends:
/// freeing their cells would let later tokens fill the holes out of
/// position order, which changes the attention sums.
pub const TREE_GRAVEYARD_SEQ: usize = MAX_TREE_BRANCHES + 1;

/// One tree verification in progress. Buffers are reused across steps.
#[derive(Clone, Debug, Default)]
pub struct TreeWalk {
    tokens: Vec<Token>,
    /// Row of each row's parent; row 0 has none (`usize::MAX`).
    parent: Vec<usize>,
    depth: Vec<usize>,
    /// Bit `s` = branch sequence `s + 1`.
    seqs: Vec<u64>,
    prob: Vec<f32>,
    decoded: Vec<bool>,
    /// Batch index of each row decoded by the latest chunk.
    slot: Vec<Option<usize>>,
    chunk: Vec<usize>,
    cur: usize,
    branches: usize,
    done: Option<TreeVerdict>,
}

/// How a tree verification ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeVerdict {
    /// Drafted tokens accepted (the depth of the last accepted node).
    pub accepted: usize,
    /// The target's token after them.
    pub next: Token,
}

impl TreeWalk {
    /// Starts a walk over `tree`, kept to at most `max_nodes` nodes and
    /// [`MAX_TREE_BRANCHES`] leaves (nodes that would add a leaf past that
    /// are dropped with their subtrees; the tree is best-first, so these
    /// are the least probable). `pending` is row 0's token.
    pub fn start(&mut self, pending: Token, tree: &DraftTree, max_nodes: usize) {
        self.clear_rows();
        self.push_row(pending, usize::MAX, 0, 1.0);
        // Row of each tree node, or None when dropped.
        let mut row_of = std::mem::take(&mut self.slot);
        row_of.clear();
        let mut has_child = std::mem::take(&mut self.decoded);
        has_child.clear();
        has_child.push(false);
        let mut leaves = 0usize;
        for (i, &t) in tree.tokens.iter().enumerate() {
            let parent = match tree.parents.get(i).copied().flatten() {
                None => Some(0),
                Some(p) if p < i => row_of.get(p).copied().flatten(),
                Some(_) => None,
            };
            let room = self.tokens.len() <= max_nodes;
            let Some(p) = parent.filter(|_| room) else {
                row_of.push(None);
                continue;
            };
            // A second child, or the root's first, makes a new leaf.
            let adds_leaf = has_child[p] || p == 0;
            if adds_leaf && leaves >= MAX_TREE_BRANCHES {
                row_of.push(None);
                continue;
            }
            leaves += usize::from(adds_leaf);
            has_child[p] = true;
            has_child.push(false);
            let prob = tree.probs.get(i).copied().unwrap_or(0.0);
            self.push_row(t, p, self.depth[p] + 1, prob);
            row_of.push(Some(self.tokens.len() - 1));
        }
        self.slot = row_of;
        self.decoded = has_child;
        self.assign_sequences();
        self.slot.clear();
        self.slot.resize(self.tokens.len(), None);
        self.decoded.clear();
        self.decoded.resize(self.tokens.len(), false);
    }

    fn clear_rows(&mut self) {
        self.tokens.clear();
        self.parent.clear();
        self.depth.clear();
        self.seqs.clear();
        self.prob.clear();
        self.chunk.clear();
        self.cur = 0;
        self.branches = 0;
        self.done = None;
    }

    fn push_row(&mut self, t: Token, parent: usize, depth: usize, prob: f32) {
        self.tokens.push(t);
        self.parent.push(parent);
        self.depth.push(depth);
        self.prob.push(prob);
    }

    /// Leaves get sequences in row order; parents take the union below.
    fn assign_sequences(&mut self) {
        let n = self.tokens.len();
        self.seqs.clear();
        self.seqs.resize(n, 0);
        let mut is_parent = std::mem::take(&mut self.decoded);
        is_parent.clear();
        is_parent.resize(n, false);
        for r in 1..n {
            is_parent[self.parent[r]] = true;
        }
        let mut next = 0;
        for (seqs, &parent) in self.seqs.iter_mut().zip(&is_parent).skip(1) {
            if !parent && next < 64 {
                *seqs = 1 << next;
                next += 1;
            }
        }
        for r in (1..n).rev() {
            let (p, s) = (self.parent[r], self.seqs[r]);
            self.seqs[p] |= s;
        }
        self.branches = next;
        self.decoded = is_parent;
    }

    /// Drafted nodes in the walk.
    pub fn nodes(&self) -> usize {
        self.tokens.len().saturating_sub(1)
    }

    /// Rows decoded so far, the pending token's included.
    pub fn decoded_rows(&self) -> usize {
        self.decoded.iter().filter(|&&d| d).count()
    }

    /// Branch sequences the walk uses (1..=branches).
    pub fn branches(&self) -> usize {
        self.branches
    }

    /// Expected accepted tokens under `scale(depth) * prob`.
    pub fn expected_accepted(&self, scale: impl Fn(usize) -> f64) -> f64 {
        (1..self.tokens.len()).map(|r| f64::from(self.prob[r]) * scale(self.depth[r])).sum()
    }

    /// The rows to decode next (at most `chunk`), or none when the walk
    /// has ended. Marks them decoded; their batch indices are their order.
    pub fn next_chunk(&mut self, chunk: usize) -> &[usize] {
        self.chunk.clear();
        self.slot.iter_mut().for_each(|s| *s = None);
        if self.done.is_some() || self.decoded[self.cur] {
            return &self.chunk;
        }
        let chunk = chunk.max(1);
        self.chunk.push(self.cur);
        for r in self.cur + 1..self.tokens.len() {
            if self.chunk.len() >= chunk {
                break;
            }
            if self.is_below(r, self.cur) {
                self.chunk.push(r);
            }
        }
        for (i, &r) in self.chunk.iter().enumerate() {
            self.decoded[r] = true;
            self.slot[r] = Some(i);
        }
        &self.chunk
    }

    fn is_below(&self, mut r: usize, ancestor: usize) -> bool {
        while r != usize::MAX && r > ancestor {
            r = self.parent[r];
        }
        r == ancestor
    }

    /// Token, position offset (0 = the pending token's) and sequences of a
    /// row, for the batch.
    pub fn row(&self, r: usize) -> (Token, usize, u64) {
        (self.tokens[r], self.depth[r], self.seqs[r])
    }

    /// After the latest chunk was decoded: `pick(batch index, depth)` is
    /// the target's token after the row at that index. Follows the target
    /// down the tree as far as this chunk's rows reach; returns the verdict
    /// once the target leaves the tree.
    pub fn advance<E>(
        &mut self,
        mut pick: impl FnMut(usize, usize) -> Result<Token, E>,
    ) -> Result<Option<TreeVerdict>, E> {
        while self.done.is_none() {
            let Some(i) = self.slot[self.cur] else { break };
            let t = pick(i, self.depth[self.cur])?;
            let cur = self.cur;
            match (cur + 1..self.tokens.len()).find(|&r| self.parent[r] == cur && self.tokens[r] == t) {
                Some(child) => self.cur = child,
                None => self.done = Some(TreeVerdict { accepted: self.depth[cur], next: t }),
            }
        }
        Ok(self.done)
    }

    /// The accepted tokens, root first, into `out` (cleared first).
    pub fn accepted_path(&self, out: &mut Vec<Token>) {
        out.clear();
        let mut r = self.cur;
        while r != 0 && r != usize::MAX {
            out.push(self.tokens[r]);
            r = self.parent[r];
        }
        out.reverse();
    }

    /// A branch sequence (1-based) that holds every accepted node.
    pub fn accepted_sequence(&self) -> Option<usize> {
        (self.cur != 0).then(|| self.seqs[self.cur].trailing_zeros() as usize + 1)
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
