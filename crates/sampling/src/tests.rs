use super::*;
use proptest::prelude::*;

fn sample_params(temperature: f32, top_k: Option<u32>, top_p: Option<f32>, min_p: Option<f32>) -> SamplingParams {
    SamplingParams::Sample { temperature, top_k, top_p, min_p, seed: 42 }
}

/// Pearson chi-square statistic of `counts` against probabilities `p`.
fn chi_square(counts: &[u64], p: &[f64], n: u64) -> f64 {
    counts
        .iter()
        .zip(p)
        .filter(|(_, &p)| p > 0.0)
        .map(|(&c, &p)| {
            let e = p * n as f64;
            (c as f64 - e).powi(2) / e
        })
        .sum()
}

fn softmax(logits: &[f32], t: f64) -> Vec<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let w: Vec<f64> = logits.iter().map(|&l| ((l as f64 - max) / t).exp()).collect();
    let z: f64 = w.iter().sum();
    w.iter().map(|x| x / z).collect()
}

#[test]
fn validate_refuses_bad_values() {
    let bad = [
        sample_params(f32::NAN, None, None, None),
        sample_params(-0.1, None, None, None),
        sample_params(f32::INFINITY, None, None, None),
        sample_params(1.0, Some(0), None, None),
        sample_params(1.0, None, Some(0.0), None),
        sample_params(1.0, None, Some(1.01), None),
        sample_params(1.0, None, Some(f32::NAN), None),
        sample_params(1.0, None, None, Some(-0.01)),
        sample_params(1.0, None, None, Some(1.5)),
        sample_params(1.0, None, None, Some(f32::NAN)),
    ];
    for p in bad {
        assert!(p.validate().is_err(), "{p:?} should be refused");
        assert!(Sampler::new(p, 10).is_err());
    }
    let good = sample_params(0.7, Some(40), Some(1.0), Some(0.0));
    assert_eq!(good.validate(), Ok(()));
    assert!(sample_params(0.0, None, None, None).is_greedy());
    assert!(SamplingParams::Greedy.validate().is_ok());
}

#[test]
fn vocab_and_length_errors() {
    assert!(Sampler::new(SamplingParams::Greedy, 0).is_err());
    let mut s = Sampler::new(sample_params(1.0, None, None, None), 4).unwrap();
    assert_eq!(s.sample(&[0.0; 3]), Err(SamplingError::LogitsLength { expected: 4, got: 3 }));
    let mut g = Sampler::new(SamplingParams::Greedy, 4).unwrap();
    assert!(g.sample(&[]).is_err());
}

#[test]
fn serde_round_trip_and_unknown_fields() {
    let p = sample_params(0.8, Some(5), Some(0.9), None);
    let json = serde_json_like(&p);
    assert!(json.contains("\"mode\":\"sample\""), "{json}");
    let greedy: SamplingParams = serde_from(r#"{"mode":"greedy"}"#).unwrap();
    assert_eq!(greedy, SamplingParams::Greedy);
    let minimal: SamplingParams = serde_from(r#"{"mode":"sample","temperature":0.5}"#).unwrap();
    assert_eq!(minimal, sample_params(0.5, None, None, None).with_seed(0));
    assert!(serde_from(r#"{"mode":"sample","temperature":0.5,"top-p":0.9}"#).is_err());
    assert_eq!(serde_from(&json).unwrap(), p);
}

impl SamplingParams {
    fn with_seed(self, s: u64) -> Self {
        match self {
            Self::Sample { temperature, top_k, top_p, min_p, .. } => {
                Self::Sample { temperature, top_k, top_p, min_p, seed: s }
            }
            g => g,
        }
    }
}

fn serde_json_like(p: &SamplingParams) -> String {
    serde_json::to_string(p).unwrap()
}

fn serde_from(s: &str) -> Result<SamplingParams, serde_json::Error> {
    serde_json::from_str(s)
}

fn naive_argmax(logits: &[f32]) -> Token {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        let b = logits[best];
        if !l.is_nan() && (b.is_nan() || l > b) {
            best = i;
        }
    }
    best as Token
}

proptest! {
    #[test]
    fn greedy_matches_naive(logits in prop::collection::vec(
        prop_oneof![(-4i32..4).prop_map(|x| x as f32), Just(f32::NAN), Just(f32::NEG_INFINITY)],
        1..60,
    )) {
        let mut s = Sampler::new(SamplingParams::Greedy, logits.len()).unwrap();
        let t = s.sample(&logits).unwrap();
        prop_assert_eq!(t, naive_argmax(&logits));
        let d = s.probs(&logits).unwrap();
        prop_assert_eq!(d.support(), &[t][..]);
        prop_assert_eq!(d.prob(t), 1.0);
        // Temperature 0 is greedy too.
        let mut z = Sampler::new(sample_params(0.0, Some(3), None, None), logits.len()).unwrap();
        prop_assert_eq!(z.sample(&logits).unwrap(), t);
    }
}

#[test]
fn seeded_reproducibility() {
    let logits: Vec<f32> = (0..500).map(|i| ((i * 37) % 101) as f32 / 20.0).collect();
    let params = sample_params(1.0, Some(50), Some(0.95), Some(0.01));
    let run = |p: SamplingParams| {
        let mut s = Sampler::new(p, logits.len()).unwrap();
        (0..200).map(|_| s.sample(&logits).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(run(params.clone()), run(params.clone()));
    assert_ne!(run(params.clone()), run(params.with_seed(7)));
}

/// Brute-force allowed sets in f64: `strict` must be kept, `loose` may be.
/// The `eps` margin absorbs f32 rounding right at a top-p/min-p boundary.
fn reference_sets(
    logits: &[f32],
    t: f32,
    top_k: Option<u32>,
    top_p: Option<f32>,
    min_p: Option<f32>,
) -> (Vec<bool>, Vec<bool>) {
    const EPS: f64 = 1e-4;
    let key = |l: f32| if l.is_nan() { f32::NEG_INFINITY } else { l };
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| key(logits[b]).total_cmp(&key(logits[a])).then(a.cmp(&b)));
    if let Some(k) = top_k {
        order.truncate(k as usize);
    }
    let max = key(logits[order[0]]) as f64;
    let w: Vec<f64> = order.iter().map(|&i| ((key(logits[i]) as f64 - max) / t as f64).exp()).collect();
    let z: f64 = w.iter().sum();
    let cut = |p: f64| {
        let mut cum = 0.0;
        for (i, x) in w.iter().enumerate() {
            cum += x;
            if cum >= p * z {
                return i + 1;
            }
        }
        w.len()
    };
    let (cut_strict, cut_loose) = match top_p {
        Some(p) if p < 1.0 => (cut(p as f64 - EPS), cut(p as f64 + EPS)),
        _ => (w.len(), w.len()),
    };
    let mp = min_p.unwrap_or(0.0) as f64;
    let mut strict = vec![false; logits.len()];
    let mut loose = vec![false; logits.len()];
    for (r, &i) in order.iter().enumerate() {
        strict[i] = r < cut_strict && w[r] >= mp + EPS && w[r] > 1e-30;
        loose[i] = r < cut_loose && w[r] >= mp - EPS && w[r] > 0.0;
    }
    // The top token always survives.
    strict[order[0]] = true;
    (strict, loose)
}

proptest! {
    #[test]
    fn sampled_tokens_lie_in_allowed_set(
        logits in prop_oneof![
            prop::collection::vec((-20i32..20).prop_map(|x| x as f32 * 0.5), 1..40),
            // Dense logits: many candidates share a top-p bucket.
            prop::collection::vec((-300i32..300).prop_map(|x| x as f32 * 0.013), 1..400),
        ],
        t in 0.05f32..3.0,
        top_k in prop::option::of(1u32..45),
        top_p in prop::option::of(0.01f32..=1.0),
        min_p in prop::option::of(0.0f32..=1.0),
        seed in any::<u64>(),
    ) {
        let params = SamplingParams::Sample { temperature: t, top_k, top_p, min_p, seed };
        let mut s = Sampler::new(params, logits.len()).unwrap();
        let (strict, loose) = reference_sets(&logits, t, top_k, top_p, min_p);
        let d = s.probs(&logits).unwrap();
        let sum: f32 = d.support().iter().map(|&t| d.prob(t)).sum();
        prop_assert!((sum - 1.0).abs() < 1e-4);
        for (i, (&st, &lo)) in strict.iter().zip(&loose).enumerate() {
            let kept = d.prob(i as Token) > 0.0;
            prop_assert!(!st || kept, "token {} must be kept", i);
            prop_assert!(lo || !kept, "token {} must be filtered", i);
        }
        for _ in 0..20 {
            let tok = s.sample(&logits).unwrap();
            prop_assert!(loose[tok as usize], "sampled disallowed token {}", tok);
        }
    }
}

/// Draws `n` samples and returns counts per token.
fn counts_of(s: &mut Sampler, logits: &[f32], n: u64) -> Vec<u64> {
    let mut counts = vec![0u64; logits.len()];
    for _ in 0..n {
        counts[s.sample(logits).unwrap() as usize] += 1;
    }
    counts
}

// Critical values of chi-square at significance ~1e-4 (deterministic with a
// fixed seed, and far enough out that a correct sampler never trips it).
const CHI2_DF7_P1E4: f64 = 29.88;
const CHI2_DF4_P1E4: f64 = 23.51;

#[test]
fn sampling_matches_softmax_chi_square() {
    let logits = [1.0f32, 2.0, 0.5, -1.0, 1.5, 0.0, 2.2, 1.1];
    let mut s = Sampler::new(sample_params(0.8, None, None, None), logits.len()).unwrap();
    let n = 40_000;
    let counts = counts_of(&mut s, &logits, n);
    let p = softmax(&logits, 0.8);
    let chi = chi_square(&counts, &p, n);
    assert!(chi < CHI2_DF7_P1E4, "chi2 = {chi}, counts {counts:?}");
}

#[test]
fn dist_sampling_matches_softmax_chi_square() {
    let logits = [1.0f32, 2.0, 0.5, -1.0, 1.5, 0.0, 2.2, 1.1];
    let mut b = DistBuilder::new(&sample_params(0.8, None, None, None), 8).unwrap();
    let mut rng = SamplerRng::seed_from_u64(9);
    let n = 40_000;
    let mut counts = vec![0u64; 8];
    for _ in 0..n {
        counts[b.build(&logits).unwrap().sample(&mut rng) as usize] += 1;
    }
    let chi = chi_square(&counts, &softmax(&logits, 0.8), n);
    assert!(chi < CHI2_DF7_P1E4, "chi2 = {chi}, counts {counts:?}");
}

#[test]
fn top_k_renormalises_chi_square() {
    let logits = [1.0f32, 2.0, 0.5, -1.0, 1.5, 0.0, 2.2, 1.1];
    let mut s = Sampler::new(sample_params(1.3, Some(5), None, None), logits.len()).unwrap();
    let n = 30_000;
    let counts = counts_of(&mut s, &logits, n);
    let mut p = softmax(&logits, 1.3);
    let mass: f64 = [6usize, 1, 4, 7, 0].iter().map(|&i| p[i]).sum();
    for (i, x) in p.iter_mut().enumerate() {
        *x = if [6usize, 1, 4, 7, 0].contains(&i) { *x / mass } else { 0.0 };
        if *x == 0.0 {
            assert_eq!(counts[i], 0, "filtered token {i} was sampled");
        }
    }
    let chi = chi_square(&counts, &p, n);
    assert!(chi < CHI2_DF4_P1E4, "chi2 = {chi}");
}

#[test]
fn residual_sampling_matches_chi_square() {
    let p = Dist::from_probs(&[0.1, 0.4, 0.2, 0.3]).unwrap();
    let q = [0.3f32, 0.1, 0.5, 0.1];
    let mut rng = SamplerRng::seed_from_u64(3);
    let n = 20_000;
    let mut counts = [0u64; 4];
    for _ in 0..n {
        counts[p.sample_residual(|t| q[t as usize], &mut rng) as usize] += 1;
    }
    // max(0, p - q) = [0, 0.3, 0, 0.2] -> [0, 0.6, 0, 0.4]
    assert_eq!(counts[0] + counts[2], 0);
    let chi = chi_square(&counts, &[0.0, 0.6, 0.0, 0.4], n);
    assert!(chi < 15.14, "chi2 = {chi}"); // df 1, p ~ 1e-4
}

#[test]
fn degenerate_logits_never_panic() {
    let cases: [&[f32]; 5] = [
        &[f32::NEG_INFINITY; 4],
        &[f32::NAN; 4],
        &[0.0, f32::INFINITY, 1.0, f32::INFINITY],
        &[f32::NAN, 1.0, f32::NAN, 1.0],
        &[f32::MAX, f32::MIN, 0.0, f32::MAX],
    ];
    for logits in cases {
        let mut s = Sampler::new(sample_params(0.7, Some(2), Some(0.5), Some(0.1)), 4).unwrap();
        let t = s.sample(logits).unwrap();
        assert!((0..4).contains(&t));
        let d = s.probs(logits).unwrap();
        assert!(!d.support().is_empty());
    }
    let mut s = Sampler::new(sample_params(1.0, None, None, None), 4).unwrap();
    assert_eq!(s.sample(&[f32::NAN, 1.0, f32::INFINITY, 2.0]).unwrap(), 2);
    for t in [1e-40f32, f32::MIN_POSITIVE, 1e-30] {
        let mut s = Sampler::new(sample_params(t, None, Some(0.5), None), 4).unwrap();
        assert_eq!(s.sample(&[0.0, 3.0, 1.0, 2.0]).unwrap(), 1, "T = {t}");
    }
    assert!(Dist::from_probs(&[0.0, 0.0]).is_err());
    assert!(Dist::from_probs(&[1.0, f32::NAN]).is_err());
    assert!(Dist::from_probs(&[]).is_err());
    let d = Dist::from_probs(&[1.0, 3.0]).unwrap();
    assert_eq!(d.prob(-1), 0.0);
    assert_eq!(d.prob(2), 0.0);
    assert_eq!(d.prob(1), 0.75);
}

#[test]
fn buffers_are_reused_between_calls() {
    let a: Vec<f32> = (0..100).map(|i| i as f32 / 10.0).collect();
    let b: Vec<f32> = (0..100).map(|i| (100 - i) as f32 / 10.0).collect();
    let mut s = Sampler::new(sample_params(0.5, Some(3), None, None), 100).unwrap();
    s.probs(&a).unwrap();
    let d = s.probs(&b).unwrap();
    // Stale entries from the first call must be gone.
    assert_eq!(d.prob(99), 0.0);
    assert!(d.prob(0) > 0.0);
    assert_eq!(d.support().len(), 3);
}

/// A Qwen-sized vocabulary with a peaked, LLM-like logit profile.
fn big_logits(n: usize) -> Vec<f32> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f32 / (1u64 << 53) as f32;
            // Heavy tail: a few large logits, most small.
            -8.0 + 26.0 * u.powi(12)
        })
        .collect()
}

#[test]
fn big_vocab_correctness() {
    let logits = big_logits(152_064);
    let mut g = Sampler::new(SamplingParams::Greedy, logits.len()).unwrap();
    assert_eq!(g.sample(&logits).unwrap(), naive_argmax(&logits));
    let mut s = Sampler::new(sample_params(0.8, None, Some(0.9), Some(0.05)), logits.len()).unwrap();
    let t = s.sample(&logits).unwrap();
    assert!(s.probs(&logits).unwrap().prob(t) > 0.0);
}

/// Timing over a 152,064-token vocabulary. Run with
/// `cargo test --release -p augur-sampling -- --ignored --nocapture bench`.
#[test]
#[ignore]
fn bench_152k() {
    let logits = big_logits(152_064);
    let time = |name: &str, params: SamplingParams| {
        let mut s = Sampler::new(params, logits.len()).unwrap();
        // Best of several rounds: the machine is shared, so the minimum is
        // the least noisy estimate.
        let (rounds, iters) = (7, 50);
        let mut acc = 0i64;
        let best = (0..rounds)
            .map(|_| {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    acc += i64::from(s.sample(&logits).unwrap());
                }
                start.elapsed().as_secs_f64() * 1e6 / iters as f64
            })
            .fold(f64::INFINITY, f64::min);
        println!("{name}: {best:.1} us/token (checksum {acc})");
    };
    time("argmax", SamplingParams::Greedy);
    time("temp only", sample_params(0.8, None, None, None));
    time("top_k=40", sample_params(0.8, Some(40), None, None));
    time("top_p=0.9", sample_params(0.8, None, Some(0.9), None));
    time("top_k=40 top_p=0.95 min_p=0.05", sample_params(0.8, Some(40), Some(0.95), Some(0.05)));
    time("min_p=0.05", sample_params(0.8, None, None, Some(0.05)));

    // The verifier's path: materialise p, then draw from it.
    let mut s = Sampler::new(sample_params(0.8, None, Some(0.95), None), logits.len()).unwrap();
    let best = (0..7)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..50 {
                let (b, rng) = s.parts();
                std::hint::black_box(b.build(&logits).unwrap().sample(rng));
            }
            start.elapsed().as_secs_f64() * 1e6 / 50.0
        })
        .fold(f64::INFINITY, f64::min);
    println!("probs()+draw top_p=0.95: {best:.1} us/token");
}
