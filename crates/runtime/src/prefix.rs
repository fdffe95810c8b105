//! Prompt KV kept between requests, reused only where reuse cannot change
//! the output.
//!
//! llama.cpp's prefill kernels are not batch-invariant: the KV a token gets
//! can depend on the batch it was decoded in. A prompt's KV is therefore
//! only reusable if it was computed exactly as a cold prefill of the new
//! prompt would compute it. Every prefill runs in *aligned* chunks
//! (positions `[i·B, (i+1)·B)`, the last one possibly shorter), and the
//! cache reuses and remembers only whole *grains*: multiples of g positions,
//! where g divides B and was probed on this machine to leave every reused
//! row as a cold prefill computes it (`grain`). A request reuses the longest
//! run of grains its prompt starts with and prefills the rest, in the same
//! aligned chunks a cold prefill would use.

use augur_sampling::Token;

/// The tokens whose KV sits in sequence 0 at positions `0..len()`, as a
/// cold prefill of any prompt starting with them computes it.
#[derive(Debug, Clone)]
pub struct PrefixCache {
    tokens: Vec<Token>,
    chunk: usize,
    grain: usize,
}

impl PrefixCache {
    /// A cache for prefills in chunks of `chunk` tokens, reusable in
    /// multiples of `grain` (the chunk itself unless the grain divides it).
    pub fn new(chunk: usize, grain: usize) -> Self {
        let chunk = chunk.max(1);
        let grain = if grain >= 1 && chunk.is_multiple_of(grain) { grain } else { chunk };
        Self { tokens: Vec::new(), chunk, grain }
    }

    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// The tokens whose KV is held.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    pub fn grain(&self) -> usize {
        self.grain
    }

    /// Positions held (always a multiple of the grain).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// How many leading positions of `prompt` can be taken from the cache:
    /// whole grains of the common prefix, leaving at least the last prompt
    /// token to decode (its logits choose the first output token).
    pub fn reusable(&self, prompt: &[Token]) -> usize {
        let common = self.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        self.floor(common.min(prompt.len().saturating_sub(1)))
    }

    /// `tokens` were prefilled from position 0 in aligned chunks (in one
    /// go or in several calls): remember their whole grains.
    pub fn record(&mut self, tokens: &[Token]) {
        let n = self.floor(tokens.len());
        self.tokens.clear();
        self.tokens.extend_from_slice(&tokens[..n]);
    }

    /// Forget everything past `len` positions (rounded down to a grain).
    pub fn truncate(&mut self, len: usize) {
        let n = self.floor(len.min(self.tokens.len()));
        self.tokens.truncate(n);
    }

    pub fn clear(&mut self) {
        self.tokens.clear();
    }

    /// Positions `[start, end)` split at every multiple of the chunk: the
    /// aligned schedule every prefill follows.
    pub fn schedule(chunk: usize, start: usize, end: usize) -> impl Iterator<Item = (usize, usize)> {
        let chunk = chunk.max(1);
        let mut at = start;
        std::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let stop = ((at / chunk + 1) * chunk).min(end);
            let part = (at, stop);
            at = stop;
            Some(part)
        })
    }

    fn floor(&self, n: usize) -> usize {
        n / self.grain * self.grain
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reuses_whole_grains_of_the_common_prefix() {
        let mut c = PrefixCache::new(8, 4);
        let first: Vec<Token> = (0..14).collect();
        c.record(&first);
        // Past the first chunk, into the second: whole grains.
        assert_eq!(c.len(), 12);
        // The next turn: the same 14 tokens and more.
        let next: Vec<Token> = (0..20).collect();
        assert_eq!(c.reusable(&next), 12);
        // Diverging at 6: only the first grain.
        let other: Vec<Token> = (0..6).chain(100..110).collect();
        assert_eq!(c.reusable(&other), 4);
        // The same prompt again: the last token is always decoded.
        let same: Vec<Token> = (0..12).collect();
        assert_eq!(c.reusable(&same), 8);
        assert_eq!(c.reusable(&[]), 0);
        assert_eq!(c.chunk(), 8);
        c.truncate(7);
        assert_eq!(c.len(), 4);
        c.clear();
        assert_eq!(c.reusable(&next), 0);
    }

    #[test]
    fn schedule_splits_at_absolute_multiples() {
        let parts: Vec<_> = PrefixCache::schedule(4, 6, 15).collect();
        assert_eq!(parts, vec![(6, 8), (8, 12), (12, 15)]);
        assert_eq!(PrefixCache::schedule(4, 5, 5).count(), 0);
        assert_eq!(PrefixCache::schedule(0, 0, 2).collect::<Vec<_>>(), vec![(0, 1), (1, 2)]);
    }

    #[test]
    fn a_grain_that_does_not_divide_the_chunk_falls_back_to_the_chunk() {
        assert_eq!(PrefixCache::new(8, 3).grain(), 8);
        assert_eq!(PrefixCache::new(8, 0).grain(), 8);
        assert_eq!(PrefixCache::new(8, 2).grain(), 2);
        assert_eq!(PrefixCache::new(0, 1).grain(), 1);
    }

    proptest! {
        /// Against a brute-force reference: the reuse is the largest multiple
        /// of the grain that is a common prefix and leaves a token to decode.
        #[test]
        fn reusable_matches_brute_force(
            cached in proptest::collection::vec(0i32..3, 0..40),
            prompt in proptest::collection::vec(0i32..3, 0..40),
            grain in 1usize..5,
            grains_per_chunk in 1usize..4,
        ) {
            let mut c = PrefixCache::new(grain * grains_per_chunk, grain);
            c.record(&cached);
            let held = cached.len() / grain * grain;
            let best = (0..=prompt.len())
                .filter(|&n| n % grain == 0 && n < prompt.len().max(1) && n <= held)
                .filter(|&n| cached[..n] == prompt[..n])
                .max()
                .unwrap_or(0);
            prop_assert_eq!(c.reusable(&prompt), best);
        }

        /// The schedule covers the range exactly, in order, and no part
        /// crosses a chunk boundary.
        #[test]
        fn schedule_tiles_the_range(start in 0usize..50, len in 0usize..50, chunk in 1usize..9) {
            let end = start + len;
            let mut at = start;
            for (a, b) in PrefixCache::schedule(chunk, start, end) {
                prop_assert_eq!(a, at);
                prop_assert!(b > a && b <= end);
                prop_assert_eq!(a / chunk, (b - 1) / chunk);
                at = b;
            }
            prop_assert_eq!(at, end);
        }
    }
}
