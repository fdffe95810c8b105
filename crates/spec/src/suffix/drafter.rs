//! The suffix draft source: a per-request tree over prompt and output so
//! far, plus the shared global tree over earlier outputs.

use std::sync::{Arc, PoisonError, RwLock};

use super::global::GlobalSuffixTree;
use super::tree::{SeqId, SuffixTree, MAX_TREE_DEPTH};
use super::{DraftTree, SuffixDraft, SuffixError, SuffixParams, TreeScratch, DEFAULT_MAX_DEPTH, OUTPUT_START};
use crate::drafter::{Draft, DraftSourceId, Drafter};
use crate::{SpecError, Token, MAX_DRAFT};

/// The global tree as shared by all requests of a server.
pub type SharedGlobal = Arc<RwLock<GlobalSuffixTree>>;

/// Which tree a suffix draft comes from. The two fail differently (chance
/// matches in a long prompt; another request's values in the global tree),
/// so callers learn how far to trust each on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuffixOrigin {
    /// The tree over this request's prompt and output.
    Request,
    /// The tree over earlier outputs.
    Global,
}

impl SuffixOrigin {
    pub const ALL: [SuffixOrigin; 2] = [SuffixOrigin::Request, SuffixOrigin::Global];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The per-request tree holds one sequence.
const REQUEST_SEQ: SeqId = 0;

/// How many trailing tokens of what was indexed are compared with a new
/// context to detect a context that is not an extension (a new request
/// without `reset`). Comparing everything would make each step O(context).
const CHECK_WINDOW: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SuffixConfig {
    /// Depth cap of the per-request tree (pattern plus draft).
    pub max_depth: usize,
    /// `max_spec_tokens` is a ceiling; each call's `max_len` lowers it.
    pub params: SuffixParams,
}

impl Default for SuffixConfig {
    fn default() -> Self {
        Self { max_depth: DEFAULT_MAX_DEPTH, params: SuffixParams::default() }
    }
}

impl SuffixConfig {
    pub fn validate(&self) -> Result<(), SuffixError> {
        if !(1..=MAX_TREE_DEPTH).contains(&self.max_depth) {
            return Err(SuffixError::InvalidConfig("max_depth must be 1..=1024"));
        }
        if !(1..=MAX_DRAFT).contains(&self.params.max_spec_tokens) {
            return Err(SuffixError::InvalidConfig("max_spec_tokens must be 1..=64"));
        }
        self.params.validate()
    }
}

/// SuffixDecoding as a [`Drafter`]: drafts from whichever tree scores
/// better (ties to the request's own tree).
///
/// The request tree is never evicted, so it costs up to `max_depth` nodes
/// (about 40 bytes each) per context token on non-repetitive text; keep
/// `max_depth` modest. Persisting the global tree is the owner's job
/// ([`GlobalSuffixTree::save`]); [`SuffixDrafter::finish_request`] only
/// updates it in memory.
#[derive(Debug)]
pub struct SuffixDrafter {
    cfg: SuffixConfig,
    request: SuffixTree,
    global: Option<SharedGlobal>,
    /// The last proposal, with probabilities and score.
    last: SuffixDraft,
    scratch: SuffixDraft,
    tree_scratch: TreeScratch,
    tree_other: DraftTree,
    /// The tree the last tree-shaped draft came from.
    tree_origin: SuffixOrigin,
    /// Where this request's output starts in the contexts it is given.
    output_from: Option<usize>,
    /// The context the global tree is queried with (reused).
    query: Vec<Token>,
}

impl SuffixDrafter {
    pub fn new(cfg: SuffixConfig, global: Option<SharedGlobal>) -> Result<Self, SpecError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            request: SuffixTree::new(cfg.max_depth),
            global,
            last: SuffixDraft::default(),
            scratch: SuffixDraft::default(),
            tree_scratch: TreeScratch::default(),
            tree_other: DraftTree::default(),
            tree_origin: SuffixOrigin::Request,
            output_from: None,
            query: Vec::with_capacity(cfg.max_depth + 1),
        })
    }

    pub fn config(&self) -> &SuffixConfig {
        &self.cfg
    }

    pub fn global(&self) -> Option<&SharedGlobal> {
        self.global.as_ref()
    }

    /// The last [`Drafter::propose`] result with its probabilities and
    /// score (expected accepted tokens), for weighing against other sources.
    pub fn last_draft(&self) -> &SuffixDraft {
        &self.last
    }

    fn params(&self, max_len: usize) -> SuffixParams {
        let cap = self.cfg.params.max_spec_tokens.min(max_len).min(MAX_DRAFT);
        SuffixParams { max_spec_tokens: cap, ..self.cfg.params }
    }

    /// Indexes the part of `context` not yet seen, rebuilding if `context`
    /// does not extend what was indexed.
    fn sync(&mut self, context: &[Token]) {
        let seen = self.request.sequence(REQUEST_SEQ).unwrap_or(&[]);
        let from = seen.len().saturating_sub(CHECK_WINDOW);
        let extends = context.get(from..seen.len()) == seen.get(from..);
        let start = if extends {
            seen.len()
        } else {
            self.request.clear();
            0
        };
        // A full tree just stops learning; drafting never fails a request.
        let _ = self.request.extend(REQUEST_SEQ, &context[start..]);
    }

    /// The contexts of this request are a prompt of `prompt_len` tokens
    /// and the output after it: the global tree, which holds outputs only,
    /// is matched against the output, anchored at its start.
    pub fn begin_output(&mut self, prompt_len: usize) {
        self.output_from = Some(prompt_len);
    }

    /// The context to match in the global tree: the output so far after
    /// [`OUTPUT_START`] while it is shorter than the depth cap (the prompt
    /// before it is not in that tree), else `context` itself.
    fn global_context<'a>(
        query: &'a mut Vec<Token>,
        output_from: Option<usize>,
        context: &'a [Token],
        depth: usize,
    ) -> &'a [Token] {
        let Some(output) = output_from.and_then(|from| context.get(from..)) else { return context };
        if output.len() >= depth {
            return context;
        }
        query.clear();
        query.push(OUTPUT_START);
        query.extend_from_slice(output);
        query
    }

    /// Tree-shaped draft of at most `max_len` nodes from the better tree.
    pub fn propose_tree(&mut self, context: &[Token], max_len: usize) -> DraftTree {
        let mut tree = DraftTree::default();
        self.propose_tree_into(context, max_len, &mut tree);
        tree
    }

    /// As [`Self::propose_tree`], into `out`'s buffers.
    pub fn propose_tree_into(&mut self, context: &[Token], max_len: usize, out: &mut DraftTree) {
        self.sync(context);
        let params = self.params(max_len);
        self.request.speculate_tree_into(context, &params, &mut self.tree_scratch, out);
        if let Some(g) = self.global.as_ref() {
            let g = g.read().unwrap_or_else(PoisonError::into_inner);
            let context = Self::global_context(&mut self.query, self.output_from, context, g.max_depth());
            g.tree().speculate_tree_into(context, &params, &mut self.tree_scratch, &mut self.tree_other);
            self.tree_origin = SuffixOrigin::Request;
            if self.tree_other.score > out.score {
                std::mem::swap(out, &mut self.tree_other);
                self.tree_origin = SuffixOrigin::Global;
            }
        }
    }

    /// The tree the last [`Self::propose_tree_into`] drafted from.
    pub fn tree_origin(&self) -> SuffixOrigin {
        self.tree_origin
    }

    /// A single-path draft of at most `max_len` tokens from one tree only
    /// (empty without a global tree); [`Self::last_draft`] then describes it.
    pub fn propose_from(&mut self, origin: SuffixOrigin, context: &[Token], max_len: usize, out: &mut Draft) {
        out.clear();
        self.sync(context);
        let params = self.params(max_len);
        match origin {
            SuffixOrigin::Request => self.request.speculate_into(context, &params, &mut self.last),
            SuffixOrigin::Global => self.speculate_global(context, &params),
        }
        for &t in &self.last.tokens {
            // A cleared draft is deterministic, so push cannot fail.
            let _ = out.push(t);
        }
    }

    /// The global tree's single-path draft into `last` (cleared without one).
    fn speculate_global(&mut self, context: &[Token], params: &SuffixParams) {
        self.last.clear();
        if let Some(g) = &self.global {
            let g = g.read().unwrap_or_else(PoisonError::into_inner);
            let context = Self::global_context(&mut self.query, self.output_from, context, g.max_depth());
            g.tree().speculate_into(context, params, &mut self.last);
        }
    }

    /// Adds a finished request's output (not its prompt), with the token
    /// that ended it, to the global tree, after [`OUTPUT_START`]: later
    /// outputs are drafted from their first token on, and to their end.
    pub fn finish_request(&mut self, output: &[Token]) -> Result<(), SpecError> {
        if let Some(g) = self.global.as_ref().filter(|_| !output.is_empty()) {
            self.query.clear();
            self.query.push(OUTPUT_START);
            self.query.extend_from_slice(output);
            let mut g = g.write().unwrap_or_else(PoisonError::into_inner);
            g.add(&self.query)?;
        }
        Ok(())
    }
}

impl Drafter for SuffixDrafter {
    fn source(&self) -> DraftSourceId {
        DraftSourceId::Suffix
    }

    fn propose(&mut self, context: &[Token], max_len: usize, out: &mut Draft) {
        out.clear();
        self.sync(context);
        let params = self.params(max_len);
        self.request.speculate_into(context, &params, &mut self.scratch);
        self.speculate_global(context, &params);
        if self.scratch.score >= self.last.score {
            std::mem::swap(&mut self.last, &mut self.scratch);
        }
        for &t in &self.last.tokens {
            // A cleared draft is deterministic, so push cannot fail.
            let _ = out.push(t);
        }
    }

    fn observe(&mut self, context: &[Token]) {
        self.sync(context);
    }

    fn reset(&mut self) {
        self.request.clear();
        self.last.clear();
        self.output_from = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilds_on_foreign_context() {
        let mut d = SuffixDrafter::new(SuffixConfig::default(), None).unwrap();
        let mut draft = Draft::default();
        d.propose(&[1, 2, 3, 1, 2], 8, &mut draft);
        // Budget = match length (2) by default.
        assert_eq!(draft.tokens(), &[3, 1]);
        d.propose(&[7, 8, 7], 8, &mut draft);
        assert_eq!(draft.tokens(), &[8]);
        assert_eq!(d.request.sequence(REQUEST_SEQ), Some(&[7, 8, 7][..]));
        d.reset();
        d.propose(&[], 8, &mut draft);
        assert!(draft.is_empty());
    }

    #[test]
    fn config_validation() {
        let bad_depth = SuffixConfig { max_depth: 0, ..SuffixConfig::default() };
        assert!(SuffixDrafter::new(bad_depth, None).is_err());
        let mut c = SuffixConfig::default();
        c.params.min_token_prob = 1.5;
        assert!(SuffixDrafter::new(c, None).is_err());
        c.params.min_token_prob = 0.1;
        c.params.max_spec_factor = f32::NAN;
        assert!(SuffixDrafter::new(c, None).is_err());
    }
}
