use super::*;
use augur_sampling::{SamplerRng, SamplingParams};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

fn dist(w: &[f32]) -> Dist {
    Dist::from_probs(w).unwrap()
}

fn chi_square(counts: &[u64], p: &[f32], n: u64) -> f64 {
    counts
        .iter()
        .zip(p)
        .map(|(&c, &p)| {
            let e = f64::from(p) * n as f64;
            if e == 0.0 {
                assert_eq!(c, 0, "token with p = 0 was emitted");
                0.0
            } else {
                (c as f64 - e).powi(2) / e
            }
        })
        .sum()
}

/// Chi-square critical values at significance ~1e-4 by degrees of freedom:
/// with a fixed seed the test is deterministic, and a correct verifier sits
/// far below these.
fn critical(df: usize) -> f64 {
    match df {
        1 => 15.14,
        2 => 18.42,
        3 => 21.11,
        4 => 23.51,
        5 => 25.74,
        _ => panic!("add a critical value for df {df}"),
    }
}

/// Runs `TRIALS` single-token deterministic drafts of `x` through the
/// verifier and counts the first emitted token.
fn first_token_counts_onehot(p: &[f32], x: Token, seed: u64) -> Vec<u64> {
    let mut rng = SamplerRng::seed_from_u64(seed);
    let mut target = vec![dist(p), dist(&vec![1.0; p.len()])];
    let mut counts = vec![0u64; p.len()];
    for _ in 0..TRIALS {
        let v = verify_stochastic(&[x], target.as_mut_slice(), &Deterministic, &mut rng).unwrap();
        let first = if v.accepted == 1 { x } else { v.next };
        counts[first as usize] += 1;
    }
    counts
}

/// Same with `x ~ q` drawn fresh each trial.
fn first_token_counts_dense(p: &[f32], q: &[f32], seed: u64) -> Vec<u64> {
    let mut rng = SamplerRng::seed_from_u64(seed);
    let mut target = vec![dist(p), dist(&vec![1.0; p.len()])];
    let qd = [dist(q)];
    let mut counts = vec![0u64; p.len()];
    for _ in 0..TRIALS {
        let x = qd[0].sample(&mut rng);
        let v = verify_stochastic(&[x], target.as_mut_slice(), &qd[..], &mut rng).unwrap();
        let first = if v.accepted == 1 { x } else { v.next };
        counts[first as usize] += 1;
    }
    counts
}

const P: [f32; 6] = [0.3, 0.25, 0.2, 0.15, 0.07, 0.03];
const TRIALS: u64 = 20_000;

fn assert_matches_p(p: &[f32], counts: &[u64], label: &str) {
    let df = p.iter().filter(|&&x| x > 0.0).count() - 1;
    let chi = chi_square(counts, p, TRIALS);
    assert!(chi < critical(df), "{label}: chi2 {chi:.2} >= {} (counts {counts:?})", critical(df));
}

#[test]
fn first_token_follows_p_for_dense_drafts() {
    let cases: [(&str, [f32; 6]); 4] = [
        ("q close to p", [0.28, 0.27, 0.19, 0.16, 0.06, 0.04]),
        ("q far from p", [0.02, 0.03, 0.05, 0.1, 0.3, 0.5]),
        ("q zero where p positive", [0.5, 0.5, 0.0, 0.0, 0.0, 0.0]),
        ("q one-hot as a dense vector", [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
    ];
    for (i, (label, q)) in cases.iter().enumerate() {
        let counts = first_token_counts_dense(&P, q, 100 + i as u64);
        assert_matches_p(&P, &counts, label);
    }
}

#[test]
fn first_token_follows_p_for_deterministic_drafts() {
    for (label, x) in [("one-hot on likely", 0), ("one-hot on unlikely", 5)] {
        let counts = first_token_counts_onehot(&P, x, 7);
        assert_matches_p(&P, &counts, label);
    }
}

#[test]
fn zero_probability_tokens_are_never_emitted() {
    let p = [0.5, 0.0, 0.3, 0.2, 0.0, 0.0];
    let q = [0.1, 0.4, 0.1, 0.1, 0.2, 0.1];
    let counts = first_token_counts_dense(&p, &q, 11);
    assert_matches_p(&p, &counts, "q positive where p is zero");
    let counts = first_token_counts_onehot(&p, 4, 12);
    assert_matches_p(&p, &counts, "one-hot on a p = 0 token");
}

#[test]
fn later_positions_and_bonus_follow_their_p() {
    let p0 = P;
    let p1 = [0.1, 0.1, 0.5, 0.1, 0.1, 0.1];
    let p2 = [0.05, 0.05, 0.1, 0.2, 0.3, 0.3];
    let q0 = [0.25, 0.25, 0.2, 0.1, 0.1, 0.1];
    let q1 = [0.3, 0.1, 0.2, 0.2, 0.1, 0.1];
    let mut target = vec![dist(&p0), dist(&p1), dist(&p2)];
    let q = [dist(&q0), dist(&q1)];
    let mut rng = SamplerRng::seed_from_u64(5);
    let (mut second, mut bonus) = (vec![0u64; 6], vec![0u64; 6]);
    let mut n_second = 0;
    let mut n_bonus = 0;
    while n_bonus < TRIALS {
        let draft = [q[0].sample(&mut rng), q[1].sample(&mut rng)];
        let v = verify_stochastic(&draft, target.as_mut_slice(), &q[..], &mut rng).unwrap();
        if v.accepted >= 1 && n_second < TRIALS {
            let t = if v.accepted == 2 { draft[1] } else { v.next };
            second[t as usize] += 1;
            n_second += 1;
        }
        if v.accepted == 2 {
            bonus[v.next as usize] += 1;
            n_bonus += 1;
        }
    }
    assert_matches_p(&p1, &second, "second position");
    assert_matches_p(&p2, &bonus, "bonus token");
}

#[test]
fn greedy_acceptance() {
    let v = accept_greedy(&[1, 2, 3], &[1, 2, 3, 4]).unwrap();
    assert_eq!(v, Verdict { accepted: 3, next: 4 });
    let v = accept_greedy(&[1, 2, 3], &[1, 9, 3, 4]).unwrap();
    assert_eq!(v, Verdict { accepted: 1, next: 9 });
    let v = accept_greedy(&[5], &[6, 7]).unwrap();
    assert_eq!(v, Verdict { accepted: 0, next: 6 });
    let v = accept_greedy(&[], &[8]).unwrap();
    assert_eq!(v, Verdict { accepted: 0, next: 8 });
    assert!(accept_greedy(&[1, 2], &[1, 2]).is_err());
    assert!(accept_greedy(&[], &[]).is_err());
}

#[test]
fn missing_target_positions_are_errors() {
    // p certain of the drafted token, so verification walks past the end.
    let mut target = vec![dist(&[1.0, 0.0, 0.0])];
    let mut rng = SamplerRng::seed_from_u64(1);
    let r = verify_stochastic(&[0, 0], target.as_mut_slice(), &Deterministic, &mut rng);
    assert!(matches!(r, Err(SpecError::MissingPosition(1))));
}

proptest! {
    /// With greedy sampling parameters the stochastic verifier is the greedy
    /// verifier, whatever the RNG does.
    #[test]
    fn stochastic_with_greedy_params_equals_greedy(
        rows in prop::collection::vec(prop::collection::vec(-3i32..3, 5), 1..6),
        draft_seed in any::<u64>(),
    ) {
        let n_vocab = 5;
        let logits: Vec<f32> = rows.iter().flatten().map(|&x| x as f32).collect();
        let argmax: Vec<Token> = rows
            .iter()
            .map(|r| augur_sampling::argmax(&r.iter().map(|&x| x as f32).collect::<Vec<_>>()).unwrap())
            .collect();
        let mut rng = SamplerRng::seed_from_u64(draft_seed);
        let draft: Vec<Token> = (0..rows.len() - 1)
            .map(|i| if rng.gen_bool(0.7) { argmax[i] } else { rng.gen_range(0..5) })
            .collect();
        let mut builder = DistBuilder::new(&SamplingParams::Greedy, n_vocab).unwrap();
        let mut target = LogitRows::new(&mut builder, &logits);
        let v = verify_stochastic(&draft, &mut target, &Deterministic, &mut rng).unwrap();
        prop_assert_eq!(v, accept_greedy(&draft, &argmax).unwrap());
    }
}

#[test]
fn logit_rows_out_of_range() {
    let mut builder = DistBuilder::new(&SamplingParams::Greedy, 3).unwrap();
    let logits = [0.0, 1.0, 0.0, 2.0, 0.0];
    let mut rows = LogitRows::new(&mut builder, &logits);
    assert_eq!(rows.dist(0).unwrap().support(), &[1]);
    assert!(matches!(rows.dist(1), Err(SpecError::MissingPosition(1))));
    assert!(matches!(rows.dist(usize::MAX), Err(SpecError::MissingPosition(_))));
}

/// Negative control: the chi-square check does reject a wrong distribution
/// (a verifier that accepted every draft would emit q, not p).
#[test]
fn chi_square_check_has_power() {
    let q = [0.28f32, 0.27, 0.19, 0.16, 0.06, 0.04];
    let qd = dist(&q);
    let mut rng = SamplerRng::seed_from_u64(100);
    let mut counts = vec![0u64; 6];
    for _ in 0..TRIALS {
        counts[qd.sample(&mut rng) as usize] += 1;
    }
    assert!(chi_square(&counts, &P, TRIALS) > critical(5));
}

proptest! {
    /// Arbitrary p, q and drafts (including tokens outside the vocabulary
    /// and q giving the drafted token zero mass): no panic, the verdict is
    /// in range, and emitted tokens always have p > 0.
    #[test]
    fn verdicts_are_well_formed(
        ps in prop::collection::vec(prop::collection::vec(0u8..4, 5), 1..6),
        qs in prop::collection::vec(prop::collection::vec(0u8..4, 5), 5),
        draft_raw in prop::collection::vec(-1i32..6, 0..5),
        seed in any::<u64>(),
    ) {
        let to_dist = |w: &Vec<u8>| {
            let mut w: Vec<f32> = w.iter().map(|&x| f32::from(x)).collect();
            w[0] += 0.5; // never all-zero
            dist(&w)
        };
        let mut target: Vec<Dist> = ps.iter().map(to_dist).collect();
        let q: Vec<Dist> = qs.iter().map(to_dist).collect();
        let draft = &draft_raw[..draft_raw.len().min(target.len() - 1)];
        let mut rng = SamplerRng::seed_from_u64(seed);
        let v = verify_stochastic(draft, target.as_mut_slice(), &q[..], &mut rng).unwrap();
        prop_assert!(v.accepted <= draft.len());
        prop_assert!(target[v.accepted].prob(v.next) > 0.0);
        for (i, &t) in draft[..v.accepted].iter().enumerate() {
            prop_assert!(target[i].prob(t) > 0.0);
        }
    }
}
