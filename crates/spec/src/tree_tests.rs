use proptest::prelude::*;

use super::*;

/// A target whose token after a path is a hash of that path, so different
/// branches get different answers.
fn target(path: &[Token], vocab: i32) -> Token {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &t in path {
        h = (h ^ t as u64).wrapping_mul(0x1000_0000_01b3);
    }
    (h % vocab as u64) as Token
}

fn path_tokens(tree: &DraftTree, path: &[usize]) -> Vec<Token> {
    path.iter().map(|&i| tree.tokens[i]).collect()
}

/// Accepted length of one path verified alone.
fn path_accepts(tokens: &[Token], vocab: i32) -> usize {
    (0..tokens.len()).take_while(|&i| target(&tokens[..i], vocab) == tokens[i]).count()
}

/// Runs the walk to its end with chunks of `chunk` rows; returns the
/// verdict, the accepted tokens and the rows decoded.
fn walk(tree: &DraftTree, chunk: usize, vocab: i32) -> (TreeVerdict, Vec<Token>, usize) {
    let mut w = TreeWalk::default();
    w.start(0, tree, 64);
    let mut decoded = 0;
    loop {
        let rows: Vec<usize> = w.next_chunk(chunk).to_vec();
        assert!(!rows.is_empty(), "an unfinished walk always has a row to decode");
        assert!(rows.len() <= chunk);
        decoded += rows.len();
        // The target's token after each decoded row's path.
        let picks: Vec<Token> = rows
            .iter()
            .map(|&r| {
                let mut path = Vec::new();
                let mut cur = r;
                while cur != 0 {
                    path.push(w.tokens[cur]);
                    cur = w.parent[cur];
                }
                path.reverse();
                target(&path, vocab)
            })
            .collect();
        if let Some(v) = w.advance(|i, _| Ok::<_, ()>(picks[i])).unwrap() {
            let mut accepted = Vec::new();
            w.accepted_path(&mut accepted);
            return (v, accepted, decoded);
        }
    }
}

/// Random trees within the leaf cap: each node's parent is an earlier node
/// or the root, children of one parent have distinct tokens.
fn arb_tree() -> impl Strategy<Value = DraftTree> {
    prop::collection::vec((any::<prop::sample::Index>(), 0i32..4), 0..24).prop_map(|spec| {
        let mut tree = DraftTree::default();
        for (parent, token) in spec {
            let i = tree.tokens.len();
            let p = parent.index(i + 1);
            let parent = (p > 0).then(|| p - 1);
            let clash = (0..i).any(|j| tree.parents[j] == parent && tree.tokens[j] == token);
            let siblings = (0..i).any(|j| tree.parents[j] == parent);
            let is_leaf = |n: usize| !(0..i).any(|j| tree.parents[j] == Some(n));
            let leaves = (0..i).filter(|&n| is_leaf(n)).count();
            let adds_leaf = siblings || parent.is_none();
            if clash || (adds_leaf && leaves >= MAX_TREE_BRANCHES) {
                continue;
            }
            tree.tokens.push(token);
            tree.parents.push(parent);
            tree.probs.push(0.5);
        }
        tree
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The tree accepts the longest path that agrees with the target: at
    /// least as long as the best single path verified alone, and the same
    /// whatever the chunk size.
    #[test]
    fn tree_acceptance_is_the_best_path_and_independent_of_chunks(tree in arb_tree()) {
        let vocab = 4;
        let best_path = tree.paths().iter().map(|p| path_accepts(&path_tokens(&tree, p), vocab)).max().unwrap_or(0);
        let (v, accepted, _) = walk(&tree, 3, vocab);
        prop_assert!(v.accepted >= best_path);
        prop_assert_eq!(v.accepted, accepted.len());
        prop_assert_eq!(path_accepts(&accepted, vocab), accepted.len(), "accepted tokens agree with the target");
        prop_assert_eq!(v.next, target(&accepted, vocab));
        // Within the caps every node is kept, so the best is reached exactly.
        prop_assert_eq!(v.accepted, best_path);
        for chunk in [1, 2, 5, 64] {
            let (w, _, _) = walk(&tree, chunk, vocab);
            prop_assert_eq!(w, v);
        }
    }

    /// Each row sees its ancestors and nothing else: a row's sequences are
    /// a subset of its parent's, and rows share a sequence only along a path.
    #[test]
    fn sequences_follow_the_paths(tree in arb_tree()) {
        let mut w = TreeWalk::default();
        w.start(0, &tree, 64);
        prop_assert!(w.branches() <= MAX_TREE_BRANCHES);
        let all = if w.branches() == 0 { 0 } else { u64::MAX >> (64 - w.branches()) };
        prop_assert_eq!(w.seqs[0], all);
        for r in 1..w.tokens.len() {
            let p = w.parent[r];
            prop_assert!(w.seqs[r] != 0 && w.seqs[r] & !w.seqs[p] == 0);
            for q in 1..r {
                let related = w.is_below(r, q) || w.is_below(q, r);
                prop_assert_eq!(w.seqs[r] & w.seqs[q] != 0, related, "rows {} and {}", q, r);
            }
        }
    }
}

#[test]
fn a_chunk_follows_the_branch_the_target_took() {
    // root -> 1 -> 2, root -> 3 -> 4 -> 5: chunks of 2 rows.
    let tree = DraftTree {
        tokens: vec![1, 3, 2, 4, 5],
        parents: vec![None, None, Some(0), Some(1), Some(3)],
        probs: vec![0.6, 0.4, 0.5, 0.3, 0.2],
        ..DraftTree::default()
    };
    let mut w = TreeWalk::default();
    w.start(9, &tree, 64);
    assert_eq!((w.nodes(), w.branches()), (5, 2));
    assert_eq!(w.next_chunk(2), &[0, 1]);
    // The target writes 3 after the pending token: node 1 is dead.
    assert_eq!(w.advance(|_, _| Ok::<_, ()>(3)), Ok(None));
    assert_eq!(w.next_chunk(2), &[2, 4]);
    let picks = [4, 7];
    assert_eq!(w.advance(|i, _| Ok::<_, ()>(picks[i])), Ok(Some(TreeVerdict { accepted: 2, next: 7 })));
    assert_eq!(w.decoded_rows(), 4);
    let mut path = Vec::new();
    w.accepted_path(&mut path);
    assert_eq!(path, vec![3, 4]);
    assert_eq!(w.accepted_sequence(), Some(2));
    assert!(w.next_chunk(2).is_empty());
}

#[test]
fn trees_are_cut_to_the_node_and_leaf_caps() {
    let n = MAX_TREE_BRANCHES + 4;
    let tree = DraftTree {
        tokens: (0..n as Token).collect(),
        parents: vec![None; n],
        probs: vec![0.1; n],
        ..DraftTree::default()
    };
    let mut w = TreeWalk::default();
    w.start(0, &tree, 64);
    assert_eq!((w.nodes(), w.branches()), (MAX_TREE_BRANCHES, MAX_TREE_BRANCHES));
    w.start(0, &tree, 3);
    assert_eq!(w.nodes(), 3);
    // A malformed parent link (not earlier) drops the node.
    let bad =
        DraftTree { tokens: vec![1, 2], parents: vec![Some(1), None], probs: vec![0.5; 2], ..DraftTree::default() };
    w.start(0, &bad, 64);
    assert_eq!(w.nodes(), 1);
}
