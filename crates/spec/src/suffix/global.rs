//! The global tree: finished outputs of earlier requests, bounded by a token
//! budget with oldest-first eviction.

use std::collections::{HashSet, VecDeque};

use sha2::{Digest, Sha256};

use super::tree::{SeqId, SuffixTree};
use super::{DraftTree, SuffixDraft, SuffixError, SuffixParams};
use crate::Token;

/// Default cap on tokens held by a global tree.
pub const DEFAULT_GLOBAL_BUDGET: usize = 1_000_000;

/// A stored sequence, oldest first in [`GlobalSuffixTree::order`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) id: SeqId,
    /// Content hash, to recognise the same output in another process's file.
    pub(crate) hash: u64,
}

/// Suffix tree over finished outputs. The sequences themselves stay in the
/// tree, so eviction and persistence replay them without a second copy.
#[derive(Clone, Debug)]
pub struct GlobalSuffixTree {
    pub(crate) tree: SuffixTree,
    pub(crate) order: VecDeque<Entry>,
    budget: usize,
    next_id: SeqId,
    /// Hashes of what the store file held when this tree last read or wrote
    /// it; a sequence there that we no longer hold was evicted by us and
    /// must not come back on the next merge.
    pub(crate) file_view: HashSet<u64>,
}

pub(crate) fn content_hash(tokens: &[Token]) -> u64 {
    let mut h = Sha256::new();
    for t in tokens {
        h.update(t.to_le_bytes());
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_le_bytes(first)
}

impl GlobalSuffixTree {
    /// `budget` caps the stored tokens; `max_depth` as for [`SuffixTree`].
    pub fn new(budget: usize, max_depth: usize) -> Self {
        Self { tree: SuffixTree::new(max_depth), order: VecDeque::new(), budget, next_id: 0, file_view: HashSet::new() }
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    pub fn max_depth(&self) -> usize {
        self.tree.max_depth()
    }

    pub fn tree(&self) -> &SuffixTree {
        &self.tree
    }

    pub fn stored_tokens(&self) -> usize {
        self.tree.token_count()
    }

    pub fn node_count(&self) -> usize {
        self.tree.node_count()
    }

    pub fn sequence_count(&self) -> usize {
        self.order.len()
    }

    /// Stored sequences, oldest first.
    pub fn sequences(&self) -> impl Iterator<Item = &[Token]> + '_ {
        self.order.iter().filter_map(|e| self.tree.sequence(e.id))
    }

    /// Stores a finished output, evicting the oldest outputs to stay within
    /// budget. An output longer than the budget keeps only its tail, the
    /// part nearest whatever comes next. Empty outputs are ignored.
    pub fn add(&mut self, tokens: &[Token]) -> Result<(), SuffixError> {
        let tail = &tokens[tokens.len().saturating_sub(self.budget)..];
        self.add_hashed(tail, content_hash(tail))
    }

    pub(crate) fn add_hashed(&mut self, tokens: &[Token], hash: u64) -> Result<(), SuffixError> {
        if tokens.is_empty() {
            return Ok(());
        }
        self.make_room(tokens.len());
        let id = self.next_id;
        self.next_id += 1;
        if let Err(e) = self.tree.extend(id, tokens) {
            // Keep the tree consistent: drop the partial sequence.
            self.tree.remove_sequence(id);
            return Err(e);
        }
        self.order.push_back(Entry { id, hash });
        Ok(())
    }

    /// Evicts oldest-first until `incoming` more tokens fit.
    fn make_room(&mut self, incoming: usize) {
        while self.stored_tokens().saturating_add(incoming) > self.budget {
            let Some(e) = self.order.pop_front() else {
                break;
            };
            self.tree.remove_sequence(e.id);
        }
    }

    pub fn speculate(&self, context: &[Token], params: &SuffixParams) -> SuffixDraft {
        self.tree.speculate(context, params)
    }

    pub fn speculate_tree(&self, context: &[Token], params: &SuffixParams) -> DraftTree {
        self.tree.speculate_tree(context, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_eviction_within_budget() {
        let mut g = GlobalSuffixTree::new(10, 4);
        g.add(&[1, 2, 3, 4]).unwrap();
        g.add(&[5, 6, 7, 8]).unwrap();
        g.add(&[9, 10, 11]).unwrap();
        assert_eq!(g.stored_tokens(), 7);
        let firsts: Vec<Token> = g.sequences().map(|s| s[0]).collect();
        assert_eq!(firsts, vec![5, 9]);
        g.add(&(0..25).collect::<Vec<_>>()).unwrap();
        assert_eq!(g.stored_tokens(), 10);
        assert_eq!(g.sequences().next(), Some(&(15..25).collect::<Vec<_>>()[..]));
        g.add(&[]).unwrap();
        assert_eq!(g.sequence_count(), 1);
    }

    #[test]
    fn zero_budget_stores_nothing() {
        let mut g = GlobalSuffixTree::new(0, 4);
        g.add(&[1, 2, 3]).unwrap();
        assert_eq!((g.stored_tokens(), g.node_count()), (0, 0));
    }
}
