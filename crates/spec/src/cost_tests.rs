use super::*;
use crate::stats::{AcceptancePrior, StatsConfig};

const MS: f64 = 1e-3;

/// This machine's measured 1.5B curve (k = 1, 2, 4, 8, 16, 32), filled in.
fn steep() -> CostModel {
    let pts = [(1, 55.0 * MS), (2, 95.0 * MS), (4, 214.0 * MS), (8, 539.0 * MS), (16, 580.0 * MS), (32, 791.0 * MS)];
    CostModel::new(CostCurve::interpolate(&pts, 65).unwrap()).unwrap()
}

fn flat() -> CostModel {
    CostModel::new(vec![20.0 * MS; 65]).unwrap()
}

fn stats_with(first: f64, decay: f64) -> AcceptanceStats {
    AcceptanceStats::new(StatsConfig { alpha: 0.1, prior: AcceptancePrior { first, decay } }).unwrap()
}

/// Expected tokens/sec of drafting `d` tokens at constant acceptance `a`.
fn rate_at(m: &CostModel, a: f64, d: usize) -> f64 {
    let e: f64 = (0..=d).map(|i| a.powi(i as i32)).sum();
    e / m.verify_cost(d + 1).unwrap()
}

#[test]
fn flat_curve_drafts_long() {
    let m = flat();
    let s = stats_with(0.8, 1.0);
    let plan = m.choose(&s, DraftSourceId::Lookup, 64);
    assert!(plan.k >= 16, "{plan:?}");
    assert_eq!(plan.source, Some(DraftSourceId::Lookup));
    assert!(plan.expected_tokens_per_sec > m.plain().expected_tokens_per_sec);
}

#[test]
fn steep_curve_with_modest_acceptance_stays_plain_or_short() {
    let m = steep();
    let plan = m.choose(&stats_with(0.6, 0.95), DraftSourceId::Lookup, 64);
    assert!(plan.k <= 1, "{plan:?}");
    assert_eq!(plan.k, 0, "0.6 acceptance cannot pay for c(2) = 95 ms");
    assert_eq!(plan.source, None);
}

#[test]
fn steep_curve_with_high_acceptance_drafts_only_when_faster() {
    let m = steep();
    let plan = m.choose(&stats_with(0.95, 1.0), DraftSourceId::Lookup, 64);
    let plain = 1.0 / (55.0 * MS);
    // 1.95 tokens per 95 ms beats 1 per 55 ms, so some draft must be chosen.
    assert!(rate_at(&m, 0.95, 1) > plain);
    assert!(plan.k > 0, "{plan:?}");
    assert!(plan.expected_tokens_per_sec > plain);
    // And it is the best k by brute force.
    let best = (1..=63).map(|d| rate_at(&m, 0.95, d)).fold(plain, f64::max);
    assert!((plan.expected_tokens_per_sec - best).abs() < 1e-9);
    // (The plateau between k = 8 and 16 makes a long draft competitive
    // here; the brute-force check above is the real requirement.)
}

#[test]
fn never_worse_than_plain() {
    let models = [steep(), flat(), CostModel::new(vec![1.0, 0.5, 3.0]).unwrap()];
    for m in &models {
        for first in [0.0, 0.1, 0.5, 0.9, 1.0] {
            for decay in [0.0, 0.5, 1.0] {
                let s = stats_with(first, decay);
                for max_k in [0, 1, 5, 64, 1000] {
                    let p = m.choose(&s, DraftSourceId::DraftModel, max_k);
                    assert!(p.expected_tokens_per_sec >= m.plain().expected_tokens_per_sec);
                    assert!(p.k <= max_k.min(64));
                    assert_eq!(p.k == 0, p.source.is_none());
                }
            }
        }
    }
    // Garbage rates never produce a plan worse than plain either.
    let p = steep().plan_for(&[f64::NAN, -3.0, 7.0], 0.0, 3);
    assert!(p.expected_tokens_per_sec >= steep().plain().expected_tokens_per_sec);
}

#[test]
fn draft_cost_counts() {
    let mut m = flat();
    let s = stats_with(0.8, 1.0);
    m.set_draft_cost(DraftSourceId::DraftModel, 20.0 * MS).unwrap();
    let costly = m.choose(&s, DraftSourceId::DraftModel, 64);
    let free = m.choose(&s, DraftSourceId::Lookup, 64);
    assert!(costly.k < free.k);
    assert!(m.set_draft_cost(DraftSourceId::Lookup, -1.0).is_err());
    assert!(m.set_draft_cost(DraftSourceId::Lookup, f64::NAN).is_err());
}

#[test]
fn choose_respects_what_each_source_offers() {
    let mut m = flat();
    m.set_draft_cost(DraftSourceId::DraftModel, 2.0 * MS).unwrap();
    let s = stats_with(0.8, 1.0);
    // Lookup is free but only has 2 tokens; the draft model can go long.
    let lookup = m.choose(&s, DraftSourceId::Lookup, 2);
    assert_eq!((lookup.source, lookup.k), (Some(DraftSourceId::Lookup), 2));
    let model = m.choose(&s, DraftSourceId::DraftModel, 64);
    assert_eq!(model.source, Some(DraftSourceId::DraftModel));
    assert!(model.expected_tokens_per_sec > lookup.expected_tokens_per_sec);
    assert!(lookup.expected_tokens_per_sec > m.plain().expected_tokens_per_sec);
    // Nothing worth it on the steep curve with poor acceptance.
    let poor = stats_with(0.3, 0.9);
    assert_eq!(steep().choose(&poor, DraftSourceId::Lookup, 2), steep().plain());
    assert_eq!(steep().choose(&poor, DraftSourceId::DraftModel, 64), steep().plain());
}

#[test]
fn invalid_models_refused() {
    assert!(CostModel::new(vec![]).is_err());
    assert!(CostModel::new(vec![0.0]).is_err());
    assert!(CostModel::new(vec![1.0, f64::INFINITY]).is_err());
    let m = CostModel::new(vec![1.0]).unwrap();
    assert_eq!(m.choose(&stats_with(1.0, 1.0), DraftSourceId::Lookup, 64).k, 0);
    assert_eq!(m.verify_cost(0), None);
    assert_eq!(m.verify_cost(2), None);
}

/// Brute force over where the first rejection falls: the verifier decodes
/// chunk `i` iff every drafted token before its first row was accepted.
fn brute_force_cost(chunk_costs: &[f64], rates: &[f64], d: usize) -> f64 {
    let c = chunk_costs.len();
    let mut total = 0.0;
    let mut survive = 1.0;
    for accepted in 0..=d {
        let p_stop = if accepted == d { 1.0 } else { 1.0 - rates[accepted] };
        let mut cost = 0.0;
        let mut row = 0;
        while row <= accepted && row < d + 1 {
            cost += chunk_costs[(d + 1 - row).min(c) - 1];
            row += c;
        }
        total += survive * p_stop * cost;
        survive *= rates.get(accepted).copied().unwrap_or(0.0);
    }
    total
}

#[test]
fn chunked_cost_counts_only_the_chunks_reached() {
    let chunk_costs = [27.0 * MS, 50.0 * MS, 71.0 * MS];
    let m = CostModel::chunked(chunk_costs.to_vec(), 65).unwrap();
    assert_eq!(m.chunk(), 3);
    assert!((m.verify_cost(7).unwrap() - (2.0 * 71.0 + 27.0) * MS).abs() < 1e-12);
    assert_eq!(m.verify_cost(66), None);
    for rates in [[0.9; 12], [0.5; 12], [1.0; 12], [0.0; 12]] {
        let mut survive = vec![1.0];
        for r in rates {
            survive.push(survive.last().unwrap() * r);
        }
        for d in 1..12 {
            let got = m.cost_of_rows(d + 1, |i| survive[i]);
            let want = brute_force_cost(&chunk_costs, &rates, d);
            assert!((got - want).abs() < 1e-12, "d = {d}, rates {rates:?}: {got} vs {want}");
        }
    }
}

#[test]
fn chunked_plan_is_the_brute_force_best() {
    let chunk_costs = [27.0 * MS, 50.0 * MS, 71.0 * MS];
    let m = CostModel::chunked(chunk_costs.to_vec(), 65).unwrap();
    let s = stats_with(0.97, 1.0);
    let plan = m.choose(&s, DraftSourceId::Lookup, 64);
    let rates = s.rates(DraftSourceId::Lookup);
    let rate = |d: usize| -> f64 {
        let e: f64 = 1.0 + (1..=d).map(|i| rates[..i].iter().product::<f64>()).sum::<f64>();
        e / brute_force_cost(&chunk_costs, rates, d)
    };
    let best = (1..=64).map(rate).fold(m.plain().expected_tokens_per_sec, f64::max);
    assert!((plan.expected_tokens_per_sec - best).abs() < 1e-9, "{plan:?} vs {best}");
    // Stopping early makes a long draft cheap when acceptance is high.
    assert!(plan.k > 3, "{plan:?}");
}

#[test]
fn a_bandwidth_bound_chunk_drafts_long() {
    // Three rows cost about what one does, as on a server whose decode is
    // bound by memory bandwidth: long drafts over several chunks pay.
    let m = CostModel::chunked(vec![20.0 * MS, 20.5 * MS, 21.0 * MS], 65).unwrap();
    let plan = m.choose(&stats_with(0.8, 1.0), DraftSourceId::Lookup, 64);
    assert!(plan.k >= 8, "{plan:?}");
    assert!(plan.expected_tokens_per_sec > 2.0 * m.plain().expected_tokens_per_sec);
}

#[test]
fn observed_costs_scale_the_whole_curve() {
    let mut m = CostModel::chunked(vec![27.0 * MS, 30.0 * MS, 33.0 * MS], 65).unwrap();
    let s = stats_with(0.7, 1.0);
    let before = m.choose(&s, DraftSourceId::Lookup, 64);
    assert!(before.k > 0);
    // The machine gets twice as slow; only plain decodes are observed.
    for _ in 0..400 {
        m.observe(1, 54.0 * MS);
    }
    assert!((m.verify_cost(1).unwrap() - 54.0 * MS).abs() < 1e-4);
    assert!((m.verify_cost(3).unwrap() - 66.0 * MS).abs() < 1e-3, "{:?}", m.verify_cost(3));
    // Everything scaled alike, so the choice is the same, at half the rate.
    let after = m.choose(&s, DraftSourceId::Lookup, 64);
    assert_eq!(after.k, before.k);
    assert!((after.expected_tokens_per_sec * 2.0 - before.expected_tokens_per_sec).abs() < 0.05);
    // Sizes outside the chunk and nonsense times change nothing.
    let kept = m.clone();
    m.observe(0, 1.0);
    m.observe(4, 1.0);
    m.observe(1, f64::NAN);
    m.observe(1, -1.0);
    assert_eq!(m, kept);
}

/// Plain decoding observed alone must never make drafting look cheaper:
/// with a modest prior, a draft on a nearly linear curve stays unplanned
/// however slow single decodes become.
#[test]
fn slow_plain_decodes_do_not_invite_drafts() {
    let mut m = CostModel::chunked(vec![60.0 * MS, 100.0 * MS, 150.0 * MS], 65).unwrap();
    let s = stats_with(0.5, 0.9);
    assert_eq!(m.choose(&s, DraftSourceId::Suffix, 64).k, 0);
    for _ in 0..400 {
        m.observe(1, 70.0 * MS);
    }
    assert_eq!(m.choose(&s, DraftSourceId::Suffix, 64).k, 0);
}
