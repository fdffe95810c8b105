//! The global tree stays within its token budget, and its node count within
//! budget × depth, however much is pushed through it.
//!
//! Timing is printed; run with `--release --nocapture` to see a useful one.

use std::time::Instant;

use augur_spec::{GlobalSuffixTree, SuffixParams, Token};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Outputs of 50..500 tokens: half drawn from a few shared phrases (so the
/// tree has repeated structure), half random over a 2,000-token vocabulary.
fn outputs(total: usize, seed: u64) -> Vec<Vec<Token>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let phrases: Vec<Vec<Token>> = (0..20).map(|_| (0..30).map(|_| rng.gen_range(0..2000)).collect()).collect();
    let mut out = Vec::new();
    let mut n = 0;
    while n < total {
        let len = rng.gen_range(50..500).min(total - n);
        let mut s = Vec::with_capacity(len);
        while s.len() < len {
            if rng.gen_bool(0.5) {
                s.extend_from_slice(&phrases[rng.gen_range(0..phrases.len())]);
            } else {
                s.push(rng.gen_range(0..2000));
            }
        }
        s.truncate(len);
        n += len;
        out.push(s);
    }
    out
}

#[test]
fn million_tokens_stay_within_budget() {
    const BUDGET: usize = 100_000;
    const DEPTH: usize = 32;
    let data = outputs(1_000_000, 7);
    let mut g = GlobalSuffixTree::new(BUDGET, DEPTH);
    let (mut max_nodes, mut max_tokens) = (0, 0);
    let start = Instant::now();
    for s in &data {
        g.add(s).unwrap();
        max_tokens = max_tokens.max(g.stored_tokens());
        max_nodes = max_nodes.max(g.node_count());
    }
    let elapsed = start.elapsed();
    eprintln!(
        "suffix memory: 1e6 tokens in {elapsed:?} ({:.0} ns/token); peak {max_tokens} tokens, \
         {max_nodes} nodes, {} sequences kept",
        elapsed.as_nanos() as f64 / 1e6,
        g.sequence_count()
    );
    assert!(max_tokens <= BUDGET);
    assert!(max_nodes <= BUDGET * DEPTH);
    assert!(g.stored_tokens() > BUDGET - 500, "eviction only as needed");
    let kept: usize = g.sequences().map(<[Token]>::len).sum();
    assert_eq!(kept, g.stored_tokens());
    // The newest output is kept and can be drafted from.
    let last = data.last().unwrap();
    let d = g.speculate(&last[..20], &SuffixParams::default());
    assert!(!d.tokens.is_empty());
}
