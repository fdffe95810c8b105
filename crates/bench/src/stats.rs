//! Aggregation of rows: medians over iterations, then over prompts.

use std::collections::BTreeMap;

use crate::store::Row;

/// One prompt under one configuration, over its iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptStats {
    pub decode_tps: f64,
    pub e2e_tps: f64,
    pub ttft_s: f64,
    pub acceptance: Option<f64>,
    pub score: Option<f64>,
    /// Mean judge grade (0-3).
    pub judge: Option<f64>,
    /// Every iteration matched the baseline (`None`: not checked).
    pub identical: Option<bool>,
}

pub fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Geometric mean of positive values; others carry no speed information.
pub fn geomean(xs: &[f64]) -> f64 {
    let logs: Vec<f64> = xs.iter().filter(|x| **x > 0.0).map(|x| x.ln()).collect();
    mean(&logs).map_or(0.0, f64::exp)
}

/// Per (suite, prompt) statistics of one configuration; failed rows excluded.
pub fn per_prompt(rows: &[Row], config: &str) -> BTreeMap<(String, String), PromptStats> {
    let mut groups: BTreeMap<(String, String), Vec<&Row>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.config == config && r.error.is_none()) {
        groups.entry((r.suite.clone(), r.prompt.clone())).or_default().push(r);
    }
    groups.into_iter().map(|(k, rs)| (k, prompt_stats(&rs))).collect()
}

fn prompt_stats(rs: &[&Row]) -> PromptStats {
    let pick = |f: fn(&Row) -> f64| median(&mut rs.iter().map(|r| f(r)).collect::<Vec<_>>());
    let acc: Vec<f64> = rs.iter().filter_map(|r| r.acceptance).collect();
    let scores: Vec<f64> = rs.iter().filter_map(|r| r.score).collect();
    let grades: Vec<f64> = rs.iter().filter_map(|r| r.judge.map(f64::from)).collect();
    let checked: Vec<bool> = rs.iter().filter_map(|r| r.identical).collect();
    PromptStats {
        decode_tps: pick(|r| r.decode_tps),
        e2e_tps: pick(|r| r.e2e_tps),
        ttft_s: pick(|r| r.ttft_s),
        acceptance: mean(&acc),
        score: mean(&scores),
        judge: mean(&grades),
        identical: (!checked.is_empty()).then(|| checked.iter().all(|x| *x)),
    }
}

/// One suite under one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteStats {
    pub prompts: usize,
    pub decode_tps: f64,
    pub e2e_tps: f64,
    pub ttft_s: f64,
    pub acceptance: Option<f64>,
    pub score: Option<f64>,
    pub judge: Option<f64>,
    pub mismatches: usize,
    pub errors: usize,
}

pub fn suite_stats(rows: &[Row], config: &str, suite: &str) -> SuiteStats {
    let per = per_prompt(rows, config);
    let ps: Vec<&PromptStats> = per.iter().filter(|((s, _), _)| s == suite).map(|(_, v)| v).collect();
    let med = |f: fn(&PromptStats) -> f64| median(&mut ps.iter().map(|p| f(p)).collect::<Vec<_>>());
    SuiteStats {
        prompts: ps.len(),
        decode_tps: med(|p| p.decode_tps),
        e2e_tps: med(|p| p.e2e_tps),
        ttft_s: med(|p| p.ttft_s),
        acceptance: mean(&ps.iter().filter_map(|p| p.acceptance).collect::<Vec<_>>()),
        score: mean(&ps.iter().filter_map(|p| p.score).collect::<Vec<_>>()),
        judge: mean(&ps.iter().filter_map(|p| p.judge).collect::<Vec<_>>()),
        mismatches: ps.iter().filter(|p| p.identical == Some(false)).count(),
        errors: rows.iter().filter(|r| r.config == config && r.suite == suite && r.error.is_some()).count(),
    }
}

/// Suites in the order they first appear.
pub fn suites(rows: &[Row]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in rows {
        if !out.contains(&r.suite) {
            out.push(r.suite.clone());
        }
    }
    out
}

/// Acceptance, quality and judge grades average by mean (as the per-run
/// report always did); speeds, times and counts by median.
pub fn averages_by_mean(metric: &str) -> bool {
    matches!(metric, "acceptance" | "score" | "judge")
}

fn average(metric: &str, xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    if averages_by_mean(metric) {
        mean(xs)
    } else {
        Some(median(xs))
    }
}

/// Rows of one configuration grouped by (suite, prompt), in the order the
/// groups first appear; failed rows left out.
pub fn groups<'a>(rows: &'a [Row], config: &str) -> Vec<((String, String), Vec<&'a Row>)> {
    let mut out: Vec<((String, String), Vec<&Row>)> = Vec::new();
    for r in rows.iter().filter(|r| r.config == config && r.error.is_none()) {
        match out.iter_mut().find(|(k, _)| k.0 == r.suite && k.1 == r.prompt) {
            Some((_, v)) => v.push(r),
            None => out.push(((r.suite.clone(), r.prompt.clone()), vec![r])),
        }
    }
    out
}

/// One metric per (suite, prompt) of one configuration, averaged over
/// iterations; prompts without the metric are left out.
pub fn metric_by_prompt(rows: &[Row], config: &str, metric: &str) -> Vec<((String, String), f64)> {
    groups(rows, config)
        .into_iter()
        .filter_map(|(k, rs)| {
            let mut xs: Vec<f64> = rs.iter().filter_map(|r| r.metric(metric)).collect();
            average(metric, &mut xs).map(|v| (k, v))
        })
        .collect()
}

/// One metric of one configuration over a suite's prompts.
pub fn metric_for_suite(rows: &[Row], config: &str, suite: &str, metric: &str) -> Option<f64> {
    let mut xs: Vec<f64> =
        metric_by_prompt(rows, config, metric).into_iter().filter(|((s, _), _)| s == suite).map(|(_, v)| v).collect();
    average(metric, &mut xs)
}

/// Nearest-rank percentile (`p` in 0..=100) of unsorted values.
pub fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let xs: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), Some(10.0));
        assert_eq!(percentile(&xs, 95.0), Some(19.0));
        assert_eq!(percentile(&xs, 100.0), Some(20.0));
        assert_eq!(percentile(&[3.0], 95.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
