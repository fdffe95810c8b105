//! Suffix tree against brute force: stored counts, single-path drafts, and
//! the tree draft's relation to the path draft.

use std::collections::HashMap;

use augur_spec::{SuffixParams, SuffixTree, Token};
use proptest::prelude::*;

/// Occurrences of every substring of at most `depth` tokens.
fn occurrences(seqs: &[&[Token]], depth: usize) -> HashMap<Vec<Token>, u32> {
    let mut map = HashMap::new();
    for s in seqs {
        for i in 0..s.len() {
            for j in i + 1..=(i + depth).min(s.len()) {
                *map.entry(s[i..j].to_vec()).or_insert(0) += 1;
            }
        }
    }
    map
}

fn budget(p: &SuffixParams, m: usize) -> usize {
    let raw = f64::from(p.max_spec_factor) * m as f64 + f64::from(p.max_spec_offset);
    (raw.floor().max(0.0) as usize).min(p.max_spec_tokens)
}

/// Most frequent one-token extension of `q`, ties to the smallest token.
fn best_next(map: &HashMap<Vec<Token>, u32>, q: &[Token]) -> Option<(Token, u32)> {
    map.iter()
        .filter(|(k, _)| k.len() == q.len() + 1 && k.starts_with(q))
        .map(|(k, &c)| (k[q.len()], c))
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
}

type Greedy = (Vec<Token>, Vec<f32>, f64);

fn greedy(map: &HashMap<Vec<Token>, u32>, pat: &[Token], budget: usize, min_p: f32) -> Greedy {
    let (mut q, mut prob, mut score) = (pat.to_vec(), 1.0f64, 0.0f64);
    let (mut toks, mut probs) = (Vec::new(), Vec::new());
    while toks.len() < budget {
        let Some((t, c)) = best_next(map, &q) else {
            break;
        };
        let p = prob * (f64::from(c) / f64::from(map[&q]));
        if p < f64::from(min_p) {
            break;
        }
        (prob, score) = (p, score + p);
        toks.push(t);
        probs.push(p as f32);
        q.push(t);
    }
    (toks, probs, score)
}

/// The documented rule: every occurring tail, best score, ties to longer.
fn reference(
    map: &HashMap<Vec<Token>, u32>,
    depth: usize,
    ctx: &[Token],
    p: &SuffixParams,
) -> (Vec<Token>, Vec<f32>, usize, f32) {
    let mut best: (Vec<Token>, Vec<f32>, usize, f64) = (vec![], vec![], 0, 0.0);
    for m in (1..=ctx.len().min(depth)).rev() {
        let pat = &ctx[ctx.len() - m..];
        let b = budget(p, m);
        if b == 0 || !map.contains_key(pat) {
            continue;
        }
        let (toks, probs, score) = greedy(map, pat, b, p.min_token_prob);
        if score > best.3 {
            best = (toks, probs, m, score);
        }
    }
    (best.0, best.1, best.2, best.3 as f32)
}

fn params() -> impl Strategy<Value = SuffixParams> {
    (1usize..12, 0u8..8, -2i8..4, 0u8..7).prop_map(|(k, f, o, mp)| SuffixParams {
        max_spec_tokens: k,
        max_spec_factor: f32::from(f) * 0.5,
        max_spec_offset: f32::from(o),
        min_token_prob: f32::from(mp) * 0.1,
    })
}

/// Builds a tree from `seqs` appended round-robin, removes `removed`, then
/// appends `late` as a new sequence (reusing freed nodes).
fn build(depth: usize, seqs: &[Vec<Token>], removed: &[bool], late: &[Token]) -> SuffixTree {
    let mut tree = SuffixTree::new(depth);
    let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for (id, s) in seqs.iter().enumerate() {
            if let Some(&t) = s.get(i) {
                tree.append(id as u64, t).unwrap();
            }
        }
    }
    for (id, _) in removed.iter().enumerate().filter(|(_, &r)| r) {
        let stored = seqs.get(id).filter(|s| !s.is_empty());
        assert_eq!(tree.remove_sequence(id as u64).as_ref(), stored);
    }
    tree.extend(99, late).unwrap();
    tree
}

fn live<'a>(seqs: &'a [Vec<Token>], removed: &[bool], late: &'a [Token]) -> Vec<&'a [Token]> {
    let kept = seqs.iter().enumerate().filter(|(i, _)| !removed.get(*i).copied().unwrap_or(false));
    kept.map(|(_, s)| s.as_slice()).chain([late]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn counts_match_brute_force(
        depth in 1usize..7,
        seqs in prop::collection::vec(prop::collection::vec(0i32..3, 0..40), 1..5),
        removed in prop::collection::vec(any::<bool>(), 0..5),
        late in prop::collection::vec(0i32..3, 0..20),
    ) {
        let tree = build(depth, &seqs, &removed, &late);
        let map = occurrences(&live(&seqs, &removed, &late), depth);
        for (pat, &c) in &map {
            prop_assert_eq!(tree.count(pat), c, "pattern {:?}", pat);
        }
        // No leaked nodes: exactly one per distinct pattern.
        prop_assert_eq!(tree.node_count(), map.len());
        let total: usize = live(&seqs, &removed, &late).iter().map(|s| s.len()).sum();
        prop_assert_eq!(tree.token_count(), total);
        prop_assert_eq!(tree.count(&[3]), 0);
    }

    #[test]
    fn speculate_matches_brute_force(
        depth in 1usize..8,
        seqs in prop::collection::vec(prop::collection::vec(0i32..3, 0..40), 1..4),
        removed in prop::collection::vec(any::<bool>(), 0..4),
        late in prop::collection::vec(0i32..3, 0..20),
        ctx in prop::collection::vec(0i32..3, 0..10),
        p in params(),
    ) {
        let tree = build(depth, &seqs, &removed, &late);
        let map = occurrences(&live(&seqs, &removed, &late), depth);
        let d = tree.speculate(&ctx, &p);
        let (toks, probs, m, score) = reference(&map, depth, &ctx, &p);
        prop_assert_eq!(&d.tokens, &toks);
        prop_assert_eq!(&d.probs, &probs);
        prop_assert_eq!(d.match_len, m);
        prop_assert_eq!(d.score, score);

        let t = tree.speculate_tree(&ctx, &p);
        prop_assert!(t.score + 1e-5 >= d.score, "tree {} < path {}", t.score, d.score);
        prop_assert!(t.len() <= p.max_spec_tokens);
        prop_assert_eq!(t.parents.len(), t.len());
        prop_assert_eq!(t.probs.len(), t.len());
        for (i, parent) in t.parents.iter().enumerate() {
            prop_assert!(parent.is_none_or(|q| q < i), "parent after child");
        }
        // Every path continues the matched tail as something seen.
        let tail = &ctx[ctx.len() - t.match_len..];
        for path in t.paths() {
            let mut pat = tail.to_vec();
            pat.extend(path.iter().map(|&i| t.tokens[i]));
            prop_assert!(map.contains_key(&pat), "unseen path {:?}", pat);
        }
    }
}

#[test]
fn dominant_branch_tree_path_equals_single_path() {
    let mut tree = SuffixTree::new(16);
    for id in 0..8 {
        tree.extend(id, &[10, 11, 12, 13, 14, 15, 16]).unwrap();
    }
    tree.extend(8, &[10, 11, 12, 20, 21]).unwrap();
    tree.extend(9, &[10, 11, 12, 20, 22]).unwrap();
    let p = SuffixParams { max_spec_factor: 8.0, ..SuffixParams::default() };
    let path = tree.speculate(&[10, 11], &p);
    assert_eq!(path.tokens, vec![12, 13, 14, 15, 16]);
    let t = tree.speculate_tree(&[10, 11], &p);
    assert_eq!(t.best_path(), path.tokens);
    assert!(t.score >= path.score);
    // The minority branch (0.2) makes it into the tree.
    assert!(t.tokens.contains(&20));
    assert!(t.score > path.score);
}
