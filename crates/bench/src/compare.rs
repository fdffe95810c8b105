//! `bench compare A B`: speed ratios per suite, quality alongside.

use std::fmt::Write;

use crate::stats::{self, geomean, median};
use crate::store::Run;

#[derive(Debug, Clone, PartialEq)]
pub struct Ratios {
    pub geomean: f64,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Ratios {
    fn of(mut xs: Vec<f64>) -> Ratios {
        let g = geomean(&xs);
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Ratios { geomean: g, min: if xs.is_empty() { 0.0 } else { min }, median: median(&mut xs), max: max.max(0.0) }
    }
}

/// B over A for one suite and one pair of configurations.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteComparison {
    pub suite: String,
    pub config_a: String,
    pub config_b: String,
    /// Prompts measured by both.
    pub prompts: usize,
    /// Decode tokens/s, B / A, per prompt.
    pub decode: Ratios,
    /// End-to-end tokens/s, B / A, per prompt.
    pub e2e: Ratios,
    pub quality_a: Option<f64>,
    pub quality_b: Option<f64>,
    /// Prompts where B's text differed from its run's baseline.
    pub mismatches_b: usize,
}

/// Pairs: same-named configurations; else A's baseline against each of B's.
/// Comparing a run with itself pits every configuration against its baseline.
pub fn pairs(a: &Run, b: &Run) -> Vec<(String, String)> {
    let a_names: Vec<&str> = a.configs().iter().map(|c| c.name.as_str()).collect();
    let same_run = a.id() == b.id();
    b.configs()
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| !(same_run && *n == a.meta.baseline))
        .map(|n| {
            let pa = if !same_run && a_names.contains(&n) { n } else { a.meta.baseline.as_str() };
            (pa.to_string(), n.to_string())
        })
        .collect()
}

pub fn compare(a: &Run, b: &Run) -> Vec<SuiteComparison> {
    let mut out = Vec::new();
    for (ca, cb) in pairs(a, b) {
        for suite in stats::suites(&b.rows) {
            if let Some(c) = compare_suite(a, b, &ca, &cb, &suite) {
                out.push(c);
            }
        }
    }
    out
}

fn compare_suite(a: &Run, b: &Run, ca: &str, cb: &str, suite: &str) -> Option<SuiteComparison> {
    let pa = stats::per_prompt(&a.rows, ca);
    let pb = stats::per_prompt(&b.rows, cb);
    let both: Vec<_> =
        pb.iter().filter(|((s, _), _)| s == suite).filter_map(|(k, vb)| pa.get(k).map(|va| (va, vb))).collect();
    if both.is_empty() {
        return None;
    }
    let ratio = |x: f64, y: f64| if x > 0.0 { y / x } else { 0.0 };
    Some(SuiteComparison {
        suite: suite.into(),
        config_a: ca.into(),
        config_b: cb.into(),
        prompts: both.len(),
        decode: Ratios::of(both.iter().map(|(x, y)| ratio(x.decode_tps, y.decode_tps)).collect()),
        e2e: Ratios::of(both.iter().map(|(x, y)| ratio(x.e2e_tps, y.e2e_tps)).collect()),
        quality_a: stats::suite_stats(&a.rows, ca, suite).score,
        quality_b: stats::suite_stats(&b.rows, cb, suite).score,
        mismatches_b: both.iter().filter(|(_, y)| y.identical == Some(false)).count(),
    })
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

/// A plain-text table for the terminal.
pub fn render(a: &Run, b: &Run, rows: &[SuiteComparison]) -> String {
    let mut s = format!("A = {}  B = {}\n", a.id(), b.id());
    let _ = writeln!(
        s,
        "{:<22} {:<24} {:<24} {:>3} {:>8} {:>6} {:>6} {:>6} {:>8} {:>6} {:>6} {:>4}",
        "suite", "config A", "config B", "n", "decode×", "min", "med", "max", "e2e×", "qualA", "qualB", "diff"
    );
    for c in rows {
        let _ = writeln!(
            s,
            "{:<22} {:<24} {:<24} {:>3} {:>8.3} {:>6.2} {:>6.2} {:>6.2} {:>8.3} {:>6} {:>6} {:>4}",
            c.suite,
            c.config_a,
            c.config_b,
            c.prompts,
            c.decode.geomean,
            c.decode.min,
            c.decode.median,
            c.decode.max,
            c.e2e.geomean,
            opt(c.quality_a),
            opt(c.quality_b),
            c.mismatches_b
        );
    }
    s
}
