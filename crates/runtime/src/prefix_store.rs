//! Earlier prompt prefixes kept off the context, so a worker that switches
//! between conversations (several users, several roles of a team on one
//! model, an agent's sub-tasks) does not prefill each one again.
//!
//! The context holds one live prefix (`PrefixCache`). When a request is
//! about to drop it for a prompt it does not share, the live prefix's cells
//! are saved here (llama.cpp's per-sequence state: positions, keys and
//! values, bit for bit). A later request that shares more of a saved prefix
//! than of the live one gets it restored into the emptied context, where it
//! takes cells 0.. exactly as its cold prefill did, and reuses it like a
//! live prefix. Saved positions are bounded by a budget (in positions, so it
//! scales with the model's KV size per token like the context does); the
//! least recently used prefix goes first. A prefix that another saved prefix extends is
//! dropped, since the longer one serves every prompt the shorter one does.

use augur_engine::Context;
use augur_sampling::Token;

use crate::prefix::PrefixCache;

/// Default budget: saved positions per position of the context, so about
/// this many full contexts are kept.
pub const DEFAULT_CONTEXTS: usize = 4;
/// Shorter live prefixes are not worth saving: they prefill in well under
/// a second.
const MIN_SAVED: usize = 32;

/// Before a request: make the context's live prefix the best one for
/// `prompt`. The live prefix is saved first if the request would lose it;
/// a saved one that shares more with `prompt` replaces it. A failed save or
/// restore costs only reuse, never the request.
pub fn prepare(ctx: &mut Context, live: &mut PrefixCache, store: &mut PrefixStore, prompt: &[Token]) {
    let grain = live.grain();
    let keep = live.reusable(prompt);
    let last = prompt.len().saturating_sub(1);
    let better = |store: &PrefixStore| {
        store.best(prompt).map(|(i, n)| (i, n.min(last) / grain * grain)).filter(|&(_, n)| n > keep)
    };
    if keep < live.len() || better(store).is_some() {
        save(ctx, live, store);
    }
    // Looked up again: saving may have dropped entries the live one extends.
    let Some((i, _)) = better(store) else { return };
    let Some((tokens, kv)) = store.get(i) else { return };
    let restored = ctx.kv_remove(0, -1, -1).is_ok() && ctx.set_seq_state(0, kv).is_ok();
    if restored {
        live.record(tokens);
    } else {
        tracing::warn!("could not restore a saved prompt prefix; prefilling instead");
        live.clear();
        ctx.kv_clear();
    }
}

/// Save the live prefix (sequence 0 holds exactly its cells between
/// requests) unless the store already has it.
fn save(ctx: &mut Context, live: &PrefixCache, store: &mut PrefixStore) {
    if live.len() < MIN_SAVED || store.budget == 0 || store.covers(live.tokens()) {
        return;
    }
    match ctx.seq_state(0) {
        Ok(kv) => store.insert(live.tokens().to_vec(), kv),
        Err(e) => tracing::warn!("could not save a prompt prefix: {e}"),
    }
}

/// One saved prefix: its tokens (whole grains, as `PrefixCache` keeps
/// them) and its cells.
struct Entry {
    tokens: Vec<Token>,
    kv: Vec<u8>,
    used_at: u64,
}

/// Saved prefixes of one model, within a budget of positions.
pub struct PrefixStore {
    entries: Vec<Entry>,
    budget: usize,
    held: usize,
    clock: u64,
}

impl PrefixStore {
    /// A store holding at most `budget` saved positions (0 keeps none).
    pub fn new(budget: usize) -> Self {
        Self { entries: Vec::new(), budget, held: 0, clock: 0 }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Saved positions.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Bytes of saved cells.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.kv.len()).sum()
    }

    /// The saved prefix sharing the longest run of leading tokens with
    /// `prompt`: its index and that length.
    pub fn best(&self, prompt: &[Token]) -> Option<(usize, usize)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_len(&e.tokens, prompt)))
            .filter(|&(_, n)| n > 0)
            .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)))
    }

    /// Entry `i`'s tokens and cells, marked as just used.
    pub fn get(&mut self, i: usize) -> Option<(&[Token], &[u8])> {
        self.clock += 1;
        let e = self.entries.get_mut(i)?;
        e.used_at = self.clock;
        Some((&e.tokens, &e.kv))
    }

    /// Whether a saved prefix already starts with all of `tokens`.
    pub fn covers(&self, tokens: &[Token]) -> bool {
        self.entries.iter().any(|e| e.tokens.starts_with(tokens))
    }

    /// Save a prefix. Saved prefixes it extends are dropped; then the least
    /// recently used go until it fits. One larger than the whole budget is
    /// not kept.
    pub fn insert(&mut self, tokens: Vec<Token>, kv: Vec<u8>) {
        if tokens.is_empty() || tokens.len() > self.budget || self.covers(&tokens) {
            return;
        }
        self.entries.retain(|e| !tokens.starts_with(&e.tokens));
        self.held = self.entries.iter().map(|e| e.tokens.len()).sum();
        while self.held + tokens.len() > self.budget {
            let Some(oldest) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].used_at) else { break };
            self.held -= self.entries.swap_remove(oldest).tokens.len();
        }
        self.clock += 1;
        self.held += tokens.len();
        self.entries.push(Entry { tokens, kv, used_at: self.clock });
    }
}

fn common_len(a: &[Token], b: &[Token]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kv(n: usize) -> Vec<u8> {
        vec![7; n]
    }

    #[test]
    fn finds_the_longest_shared_prefix() {
        let mut s = PrefixStore::new(100);
        s.insert(vec![1, 2, 3, 4], kv(10));
        s.insert(vec![1, 2, 9], kv(10));
        s.insert(vec![5, 6], kv(10));
        assert_eq!(s.best(&[1, 2, 3, 4, 5]).map(|b| b.1), Some(4));
        assert_eq!(s.best(&[1, 2, 9, 9]).map(|b| b.1), Some(3));
        assert_eq!(s.best(&[5, 1]).map(|b| b.1), Some(1));
        assert_eq!(s.best(&[8]), None);
        let (i, _) = s.best(&[1, 2, 9]).unwrap();
        assert_eq!(s.get(i).unwrap().0, &[1, 2, 9]);
    }

    #[test]
    fn a_longer_prefix_replaces_the_ones_it_extends() {
        let mut s = PrefixStore::new(100);
        s.insert(vec![1, 2], kv(10));
        s.insert(vec![1, 2, 3, 4], kv(20));
        assert_eq!((s.len(), s.held(), s.bytes()), (1, 4, 20));
        // Already covered: nothing changes.
        s.insert(vec![1, 2, 3], kv(15));
        assert_eq!((s.len(), s.held(), s.bytes()), (1, 4, 20));
    }

    #[test]
    fn evicts_the_least_recently_used_within_the_budget() {
        let mut s = PrefixStore::new(6);
        s.insert(vec![1, 1], kv(10));
        s.insert(vec![2, 2], kv(10));
        s.insert(vec![3, 3], kv(10));
        // Using [1, 1] makes [2, 2] the oldest.
        let (i, _) = s.best(&[1]).unwrap();
        s.get(i);
        s.insert(vec![4, 4], kv(10));
        assert!(s.best(&[2]).is_none());
        assert!(s.best(&[1]).is_some() && s.best(&[3]).is_some() && s.best(&[4]).is_some());
        // Too long for the budget: not kept, nothing evicted.
        s.insert(vec![5; 7], kv(1));
        assert_eq!((s.len(), s.held()), (3, 6));
        // A zero budget keeps nothing.
        let mut none = PrefixStore::new(0);
        none.insert(vec![1], kv(1));
        assert!(none.is_empty());
    }

    proptest! {
        /// Against a brute-force reference: the positions held are the sum
        /// of what is kept and within the budget, no kept prefix is a prefix
        /// of another, and `best` finds the longest shared run.
        #[test]
        fn invariants_hold(
            ops in proptest::collection::vec((proptest::collection::vec(0i32..3, 0..6), 1usize..20), 0..40),
            probe in proptest::collection::vec(0i32..3, 0..6),
            budget in 0usize..15,
        ) {
            let mut s = PrefixStore::new(budget);
            for (tokens, size) in ops {
                s.insert(tokens, kv(size));
                prop_assert_eq!(s.held(), s.entries.iter().map(|e| e.tokens.len()).sum::<usize>());
                prop_assert!(s.held() <= budget);
                for (i, a) in s.entries.iter().enumerate() {
                    for (j, b) in s.entries.iter().enumerate() {
                        prop_assert!(i == j || !b.tokens.starts_with(&a.tokens));
                    }
                }
            }
            let want = s.entries.iter().map(|e| common_len(&e.tokens, &probe)).max().unwrap_or(0);
            prop_assert_eq!(s.best(&probe).map_or(0, |b| b.1), want);
        }
    }
}
