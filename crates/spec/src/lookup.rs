//! Prompt lookup: draft by copying what followed an earlier occurrence of
//! the context's most recent n-gram.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::drafter::{Draft, DraftSourceId, Drafter};
use crate::{SpecError, Token, MAX_DRAFT};

/// Longest n-gram the index supports (keys are fixed-size arrays).
pub const MAX_NGRAM: usize = 8;

/// How far back a match is followed past its n-gram to measure its length
/// (bounds the per-step work).
pub const MATCH_CAP: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupConfig {
    /// Shortest n-gram worth matching (1..=n_max).
    pub n_min: usize,
    /// Longest n-gram tried first (..=MAX_NGRAM).
    pub n_max: usize,
    /// Cap on proposed tokens (1..=MAX_DRAFT).
    pub max_draft: usize,
}

impl Default for LookupConfig {
    fn default() -> Self {
        Self { n_min: 1, n_max: 4, max_draft: MAX_DRAFT }
    }
}

impl LookupConfig {
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(1..=self.n_max).contains(&self.n_min) || self.n_max > MAX_NGRAM {
            return Err(SpecError::InvalidConfig("lookup needs 1 <= n_min <= n_max <= 8"));
        }
        if !(1..=MAX_DRAFT).contains(&self.max_draft) {
            return Err(SpecError::InvalidConfig("lookup max_draft must be 1..=64"));
        }
        Ok(())
    }
}

/// An n-gram as a hash key; the length disambiguates the zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    n: u8,
    toks: [Token; MAX_NGRAM],
}

impl Key {
    /// `None` if `gram` is too long (cannot happen with a validated config).
    fn new(gram: &[Token]) -> Option<Self> {
        let mut toks = [0; MAX_NGRAM];
        toks.get_mut(..gram.len())?.copy_from_slice(gram);
        Some(Self { n: gram.len() as u8, toks })
    }
}

/// The preferred continuation of one n-gram: most frequent next token, ties
/// to the most recent; `pos` is where its latest occurrence starts.
#[derive(Clone, Copy, Debug)]
struct Best {
    count: u32,
    pos: usize,
}

/// N-gram index over the whole context. Appending a token costs
/// `O(n_max - n_min + 1)` hash-map updates (amortised; map growth is the only
/// allocation). A query costs the same, plus copying the draft.
#[derive(Clone, Debug)]
pub struct PromptLookup {
    cfg: LookupConfig,
    /// Tokens of the context already indexed.
    indexed: usize,
    best: HashMap<Key, Best>,
    /// Occurrence count of each (n-gram, next token) pair.
    counts: HashMap<(Key, Token), u32>,
    last_match: usize,
}

impl PromptLookup {
    pub fn new(cfg: LookupConfig) -> Result<Self, SpecError> {
        cfg.validate()?;
        Ok(Self { cfg, indexed: 0, best: HashMap::new(), counts: HashMap::new(), last_match: 0 })
    }

    pub fn config(&self) -> &LookupConfig {
        &self.cfg
    }

    /// Indexes `context[indexed..]`. A shorter context than already indexed
    /// means a new request was started without `reset`: start over.
    fn sync(&mut self, context: &[Token]) {
        if context.len() < self.indexed {
            self.reset();
        }
        let levels = self.cfg.n_max - self.cfg.n_min + 1;
        let new = context.len() - self.indexed;
        self.best.reserve(new * levels);
        self.counts.reserve(new * levels);
        for j in self.indexed..context.len() {
            self.index_position(context, j);
        }
        self.indexed = context.len();
    }

    /// Records `context[j]` as the continuation of each n-gram ending at j-1.
    fn index_position(&mut self, context: &[Token], j: usize) {
        let next = context[j];
        for n in self.cfg.n_min..=self.cfg.n_max.min(j) {
            let Some(key) = Key::new(&context[j - n..j]) else {
                continue;
            };
            let count = self.counts.entry((key, next)).or_insert(0);
            *count = count.saturating_add(1);
            let count = *count;
            let best = self.best.entry(key).or_insert(Best { count: 0, pos: j });
            // The just-seen token is the most recent, so it wins ties.
            if count >= best.count {
                *best = Best { count, pos: j };
            }
        }
    }

    /// Start of the continuation to copy, and the n-gram size that matched,
    /// from the longest matching suffix.
    fn lookup(&self, context: &[Token]) -> Option<(usize, usize)> {
        let len = context.len();
        (self.cfg.n_min..=self.cfg.n_max.min(len))
            .rev()
            .find_map(|n| self.best.get(&Key::new(&context[len - n..])?).map(|b| (b.pos, n)))
    }

    /// Length of the match behind the last proposal (0: none): the n-gram,
    /// followed back through the tokens before it while the earlier
    /// occurrence agrees with the context, up to `MATCH_CAP`. A copy of a
    /// whole passage matches far back, a chance phrase only for its n-gram,
    /// so the driver keeps statistics per length.
    pub fn last_match(&self) -> usize {
        self.last_match
    }

    /// `n` plus how many tokens before the two occurrences also agree.
    fn match_length(context: &[Token], start: usize, n: usize) -> usize {
        let (earlier, recent) = (start - n, context.len() - n);
        let back = (0..MATCH_CAP.saturating_sub(n))
            .take_while(|&i| i < earlier && context[earlier - 1 - i] == context[recent - 1 - i])
            .count();
        n + back
    }
}

impl Drafter for PromptLookup {
    fn source(&self) -> DraftSourceId {
        DraftSourceId::Lookup
    }

    fn propose(&mut self, context: &[Token], max_len: usize, out: &mut Draft) {
        out.clear();
        self.sync(context);
        self.last_match = 0;
        let Some((start, n)) = self.lookup(context) else {
            return;
        };
        self.last_match = Self::match_length(context, start, n);
        let end = start.saturating_add(max_len.min(self.cfg.max_draft)).min(context.len());
        for &t in context.get(start..end).unwrap_or(&[]) {
            // A cleared draft is deterministic, so push cannot fail.
            let _ = out.push(t);
        }
    }

    fn observe(&mut self, context: &[Token]) {
        self.sync(context);
    }

    fn reset(&mut self) {
        self.indexed = 0;
        self.best.clear();
        self.counts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Brute force: scan for the longest n-gram equal to the context suffix
    /// that has a continuation; pick the most frequent continuation token,
    /// ties to the most recent occurrence; copy from there.
    fn reference(context: &[Token], cfg: &LookupConfig, max_len: usize) -> Vec<Token> {
        let len = context.len();
        for n in (cfg.n_min..=cfg.n_max.min(len)).rev() {
            let suffix = &context[len - n..];
            let mut counts: HashMap<Token, (u32, usize)> = HashMap::new();
            for i in 0..len - n {
                if &context[i..i + n] == suffix {
                    let e = counts.entry(context[i + n]).or_insert((0, 0));
                    *e = (e.0 + 1, i + n);
                }
            }
            if let Some((_, &(_, pos))) = counts.iter().max_by_key(|(_, &(c, p))| (c, p)) {
                let end = (pos + max_len.min(cfg.max_draft)).min(len);
                return context[pos..end].to_vec();
            }
        }
        Vec::new()
    }

    proptest! {
        #[test]
        fn matches_brute_force(
            context in prop::collection::vec(0i32..4, 0..120),
            cuts in prop::collection::vec(0usize..120, 0..6),
            n_min in 1usize..4,
            extra in 0usize..4,
            max_len in 1usize..70,
            max_draft in 1usize..=64,
        ) {
            let cfg = LookupConfig { n_min, n_max: n_min + extra, max_draft };
            let mut lookup = PromptLookup::new(cfg).unwrap();
            let mut draft = Draft::with_capacity(64);
            // Grow the context in random bulk steps, checking at each one.
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= context.len()).collect();
            cuts.push(context.len());
            cuts.sort_unstable();
            for (i, &cut) in cuts.iter().enumerate() {
                let ctx = &context[..cut];
                if i % 2 == 1 {
                    lookup.observe(ctx);
                }
                lookup.propose(ctx, max_len, &mut draft);
                prop_assert_eq!(draft.tokens(), &reference(ctx, &cfg, max_len)[..]);
            }
        }
    }

    #[test]
    fn long_match_copies_long_continuation() {
        let text: Vec<Token> = (0..50).chain(0..10).collect();
        let mut lookup = PromptLookup::new(LookupConfig::default()).unwrap();
        let mut draft = Draft::default();
        lookup.propose(&text, 64, &mut draft);
        assert_eq!(draft.tokens(), &(10..50).chain(0..10).collect::<Vec<_>>()[..]);
        lookup.propose(&text, 5, &mut draft);
        assert_eq!(draft.tokens(), &[10, 11, 12, 13, 14]);
    }

    #[test]
    fn match_length_follows_the_copy_back() {
        let mut lookup = PromptLookup::new(LookupConfig::default()).unwrap();
        let mut draft = Draft::default();
        // 0..20 then its first 12 tokens again: the 4-gram matches, and so
        // do the 8 tokens before it.
        let text: Vec<Token> = (0..20).chain(0..12).collect();
        lookup.propose(&text, 8, &mut draft);
        assert_eq!((draft.tokens()[0], lookup.last_match()), (12, 12));
        // A chance phrase: only the n-gram agrees.
        let text = [9, 1, 2, 3, 4, 5, 8, 1, 2, 3, 4];
        lookup.propose(&text, 8, &mut draft);
        assert_eq!((draft.tokens()[0], lookup.last_match()), (5, 4));
        // Capped, however long the copy.
        let text: Vec<Token> = (0..100).chain(0..90).collect();
        lookup.propose(&text, 8, &mut draft);
        assert_eq!(lookup.last_match(), MATCH_CAP);
        lookup.propose(&[], 8, &mut draft);
        assert_eq!(lookup.last_match(), 0);
    }

    #[test]
    fn shorter_context_resets() {
        let mut lookup = PromptLookup::new(LookupConfig::default()).unwrap();
        let mut draft = Draft::default();
        lookup.propose(&[1, 2, 3, 1, 2], 8, &mut draft);
        assert_eq!(draft.tokens(), &[3, 1, 2]);
        lookup.propose(&[7, 7], 8, &mut draft);
        assert_eq!(draft.tokens(), &[7]);
        lookup.propose(&[], 8, &mut draft);
        assert!(draft.is_empty());
    }

    #[test]
    fn config_validation() {
        let bad = [
            LookupConfig { n_min: 0, n_max: 4, max_draft: 8 },
            LookupConfig { n_min: 5, n_max: 4, max_draft: 8 },
            LookupConfig { n_min: 1, n_max: 9, max_draft: 8 },
            LookupConfig { n_min: 1, n_max: 4, max_draft: 0 },
            LookupConfig { n_min: 1, n_max: 4, max_draft: 65 },
        ];
        for cfg in bad {
            assert!(PromptLookup::new(cfg).is_err(), "{cfg:?}");
        }
    }
}
