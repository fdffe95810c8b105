//! SuffixDecoding (Oliaro et al., NeurIPS 2025): model-free drafts from
//! suffix trees over the current request and over earlier outputs.
//!
//! - [`SuffixTree`]: depth-capped suffix trie with occurrence counts.
//! - [`SuffixTree::speculate`] / [`SuffixTree::speculate_tree`]: path and
//!   tree drafts with per-token probability estimates and a score
//!   (expected accepted tokens) the caller can weigh against other sources.
//! - [`GlobalSuffixTree`]: a token-budgeted FIFO of finished outputs,
//!   persisted with a checksum and merged safely between processes.
//! - [`SuffixDrafter`]: the [`crate::Drafter`] combining both trees.

mod drafter;
mod global;
mod persist;
mod speculate;
mod tree;

use std::path::PathBuf;

pub use drafter::{SharedGlobal, SuffixConfig, SuffixDrafter, SuffixOrigin};
pub use global::{GlobalSuffixTree, DEFAULT_GLOBAL_BUDGET};
pub use persist::SUFFIX_STORE_VERSION;
pub use speculate::TreeScratch;
pub use tree::{SeqId, SuffixTree, MAX_TREE_DEPTH};

use crate::{Token, MAX_DRAFT};

/// Default depth cap (pattern plus draft). Node count grows with it
/// roughly linearly on non-repetitive text, while a match of `m` tokens
/// leaves `depth - m` to draft into; 24 leaves room for 16-token drafts
/// after 8-token matches.
pub const DEFAULT_MAX_DEPTH: usize = 24;

/// Marks where an output starts in the global tree: no token has this id.
pub const OUTPUT_START: Token = -1;

/// Failures of suffix trees and their store.
#[derive(Debug, thiserror::Error)]
pub enum SuffixError {
    #[error("suffix tree is full (node ids exhausted)")]
    TreeFull,
    #[error("suffix store {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("suffix store is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("suffix store format version {found} is not supported (this build reads {expected})")]
    Version { found: u32, expected: u32 },
    #[error("suffix store checksum mismatch (file damaged or edited)")]
    Checksum,
    #[error("invalid suffix configuration: {0}")]
    InvalidConfig(&'static str),
}

/// How far to speculate from a match.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SuffixParams {
    /// Hard cap on drafted tokens (the cost model's k).
    pub max_spec_tokens: usize,
    /// Budget grows with the match length `m`: `factor * m + offset`.
    pub max_spec_factor: f32,
    pub max_spec_offset: f32,
    /// Stop once a token's estimated probability falls below this.
    pub min_token_prob: f32,
}

impl Default for SuffixParams {
    fn default() -> Self {
        Self { max_spec_tokens: MAX_DRAFT, max_spec_factor: 1.0, max_spec_offset: 0.0, min_token_prob: 0.1 }
    }
}

impl SuffixParams {
    /// `min(max_spec_tokens, floor(factor * m + offset))`, never negative;
    /// NaN parameters give 0.
    pub fn budget(&self, match_len: usize) -> usize {
        let raw = f64::from(self.max_spec_factor) * match_len as f64 + f64::from(self.max_spec_offset);
        // `as` saturates and maps NaN to 0, which is the wanted clamp.
        (raw.floor() as usize).min(self.max_spec_tokens)
    }

    pub fn validate(&self) -> Result<(), SuffixError> {
        let finite = self.max_spec_factor.is_finite() && self.max_spec_offset.is_finite();
        if !finite || self.max_spec_factor < 0.0 {
            return Err(SuffixError::InvalidConfig("max_spec_factor must be finite and >= 0, offset finite"));
        }
        if !(0.0..=1.0).contains(&self.min_token_prob) {
            return Err(SuffixError::InvalidConfig("min_token_prob must be in [0, 1]"));
        }
        Ok(())
    }
}

/// A single-path draft.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SuffixDraft {
    pub tokens: Vec<Token>,
    /// Estimated probability that each token is reached and right,
    /// i.e. cumulative along the path.
    pub probs: Vec<f32>,
    /// How many times each token's context occurred in the tree: the
    /// number of observations behind its count ratio.
    pub support: Vec<u32>,
    /// Length of the context tail the draft was grown from (0: none).
    pub match_len: usize,
    /// Expected accepted tokens: the sum of `probs`.
    pub score: f32,
}

impl SuffixDraft {
    pub fn clear(&mut self) {
        self.tokens.clear();
        self.probs.clear();
        self.support.clear();
        self.match_len = 0;
        self.score = 0.0;
    }
}

/// A tree-shaped draft. Node `i` is `tokens[i]`; its parent is
/// `parents[i]` (`None`: it directly follows the context). Parents precede
/// children.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DraftTree {
    pub tokens: Vec<Token>,
    pub parents: Vec<Option<usize>>,
    /// Cumulative probability of reaching each node.
    pub probs: Vec<f32>,
    pub match_len: usize,
    /// Expected accepted tokens: the sum of `probs`.
    pub score: f32,
}

impl DraftTree {
    pub fn clear(&mut self) {
        self.tokens.clear();
        self.parents.clear();
        self.probs.clear();
        self.match_len = 0;
        self.score = 0.0;
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Root-to-leaf paths as node indices, in leaf order.
    pub fn paths(&self) -> Vec<Vec<usize>> {
        let mut has_child = vec![false; self.tokens.len()];
        for p in self.parents.iter().flatten() {
            if let Some(h) = has_child.get_mut(*p) {
                *h = true;
            }
        }
        (0..self.tokens.len()).filter(|&i| !has_child[i]).map(|leaf| self.path_to(leaf)).collect()
    }

    /// Indices from the root down to `node`. A malformed parent link (not
    /// pointing to an earlier node) ends the path rather than looping.
    fn path_to(&self, node: usize) -> Vec<usize> {
        let mut path = vec![node];
        let mut cur = node;
        while let Some(&Some(p)) = self.parents.get(cur) {
            if p >= cur {
                break;
            }
            path.push(p);
            cur = p;
        }
        path.reverse();
        path
    }

    /// Tokens of the path with the highest expected accepted length (sum of
    /// cumulative probabilities), ties to the first leaf.
    pub fn best_path(&self) -> Vec<Token> {
        let value = |path: &[usize]| -> f32 { path.iter().filter_map(|&i| self.probs.get(i)).sum() };
        let mut best: Option<(f32, Vec<usize>)> = None;
        for path in self.paths() {
            let v = value(&path);
            if best.as_ref().is_none_or(|(b, _)| v > *b) {
                best = Some((v, path));
            }
        }
        best.map_or_else(Vec::new, |(_, path)| path.iter().filter_map(|&i| self.tokens.get(i).copied()).collect())
    }
}
