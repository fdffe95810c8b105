//! Global tree store: round trip, damage of every kind falls back to a fresh
//! tree with a warning, and concurrent savers never corrupt or lose data.

use std::path::Path;
use std::sync::{Arc, Barrier};

use augur_spec::suffix::SUFFIX_STORE_VERSION;
use augur_spec::{GlobalSuffixTree, SuffixError, Token};

const BUDGET: usize = 1000;
const DEPTH: usize = 8;

fn sample() -> GlobalSuffixTree {
    let mut g = GlobalSuffixTree::new(BUDGET, DEPTH);
    g.add(&[1, 2, 3, 4]).unwrap();
    g.add(&[-7, i32::MAX, 0]).unwrap();
    g.add(&[1, 2, 5]).unwrap();
    g
}

fn seqs(g: &GlobalSuffixTree) -> Vec<Vec<Token>> {
    g.sequences().map(<[Token]>::to_vec).collect()
}

fn saved_bytes(dir: &Path) -> Vec<u8> {
    let path = dir.join("store.bin");
    sample().save(&path).unwrap();
    std::fs::read(&path).unwrap()
}

/// Loading `bytes` must give an empty tree and a warning.
fn assert_fresh(dir: &Path, bytes: &[u8], what: &str) -> String {
    let path = dir.join("damaged.bin");
    std::fs::write(&path, bytes).unwrap();
    let (g, warning) = GlobalSuffixTree::load_or_fresh(&path, BUDGET, DEPTH);
    assert_eq!(g.sequence_count(), 0, "{what}");
    assert_eq!(g.node_count(), 0, "{what}");
    warning.unwrap_or_else(|| panic!("no warning for {what}"))
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.bin");
    let mut g = sample();
    g.save(&path).unwrap();
    let (back, warning) = GlobalSuffixTree::load_or_fresh(&path, BUDGET, DEPTH);
    assert!(warning.is_none());
    assert_eq!(seqs(&back), seqs(&g));
    assert_eq!(back.node_count(), g.node_count());
    assert_eq!(back.tree().count(&[1, 2]), 2);
    // A smaller budget on load keeps the newest sequences.
    let small = GlobalSuffixTree::load(&path, 6, DEPTH).unwrap();
    assert_eq!(seqs(&small), vec![vec![-7, i32::MAX, 0], vec![1, 2, 5]]);
}

#[test]
fn missing_file_is_fresh_without_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (g, warning) = GlobalSuffixTree::load_or_fresh(&dir.path().join("none"), BUDGET, DEPTH);
    assert!(warning.is_none());
    assert_eq!(g.sequence_count(), 0);
}

#[test]
fn every_truncation_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = saved_bytes(dir.path());
    for len in 0..bytes.len() {
        assert_fresh(dir.path(), &bytes[..len], &format!("truncated to {len}"));
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_fresh(dir.path(), &longer, "extra byte");
}

#[test]
fn every_bit_flip_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = saved_bytes(dir.path());
    for i in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[i / 8] ^= 1 << (i % 8);
        assert_fresh(dir.path(), &b, &format!("bit {i} flipped"));
    }
}

#[test]
fn wrong_magic_and_newer_version() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = saved_bytes(dir.path());
    let mut b = bytes.clone();
    b[..8].copy_from_slice(b"NOTSUFX\0");
    assert!(assert_fresh(dir.path(), &b, "magic").contains("magic"));
    let mut b = bytes.clone();
    b[8..12].copy_from_slice(&(SUFFIX_STORE_VERSION + 1).to_le_bytes());
    assert!(assert_fresh(dir.path(), &b, "version").contains("version"));
    // A newer store is not overwritten by an older build.
    let path = dir.path().join("newer.bin");
    std::fs::write(&path, &b).unwrap();
    let err = sample().save(&path).unwrap_err();
    assert!(matches!(err, SuffixError::Version { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b);
    assert_fresh(dir.path(), b"", "empty file");
}

#[test]
fn save_over_corrupt_store_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.bin");
    std::fs::write(&path, b"garbage").unwrap();
    sample().save(&path).unwrap();
    let g = GlobalSuffixTree::load(&path, BUDGET, DEPTH).unwrap();
    assert_eq!(seqs(&g), seqs(&sample()));
}

#[test]
fn merge_keeps_others_and_respects_own_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.bin");
    let mut a = GlobalSuffixTree::new(8, DEPTH);
    a.add(&[1, 1, 1, 1]).unwrap();
    a.save(&path).unwrap();
    let (mut b, _) = GlobalSuffixTree::load_or_fresh(&path, 8, DEPTH);
    b.add(&[2, 2]).unwrap();
    b.save(&path).unwrap();
    // a evicts its [1; 4] and learns b's [2, 2] on save.
    a.add(&[3, 3, 3, 3, 3]).unwrap();
    a.save(&path).unwrap();
    assert_eq!(seqs(&a), vec![vec![3, 3, 3, 3, 3], vec![2, 2]]);
    let g = GlobalSuffixTree::load(&path, 8, DEPTH).unwrap();
    assert_eq!(seqs(&g), seqs(&a));
}

#[test]
fn concurrent_savers_merge_without_corruption() {
    const ROUNDS: i32 = 15;
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("store.bin"));
    let barrier = Arc::new(Barrier::new(2));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (path, barrier) = (Arc::clone(&path), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut g = GlobalSuffixTree::new(100_000, DEPTH);
                barrier.wait();
                for r in 0..ROUNDS {
                    g.add(&[w, r, w, r, 1000 + r]).unwrap();
                    g.save(&path).unwrap();
                    let (_, warning) = GlobalSuffixTree::load_or_fresh(&path, 100_000, DEPTH);
                    assert!(warning.is_none(), "{warning:?}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let g = GlobalSuffixTree::load(&path, 100_000, DEPTH).unwrap();
    let mut got = seqs(&g);
    got.sort();
    let mut want: Vec<Vec<Token>> = (0..2).flat_map(|w| (0..ROUNDS).map(move |r| vec![w, r, w, r, 1000 + r])).collect();
    want.sort();
    assert_eq!(got, want, "every output of both savers survives");
}
