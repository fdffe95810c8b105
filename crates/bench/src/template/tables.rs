//! The block directives: tables and command lines.

use std::collections::BTreeMap;

use super::format::{self, cell, format_of, ratio};
use super::parse::Directive;
use super::render::{config, configs, digits, suite};
use crate::stats::{self, geomean};
use crate::store::{Row, Run};

/// The per-run report's columns, and `suite`'s default.
pub const SUITE_COLUMNS: &[&str] =
    &["prompts", "decode_tps", "e2e_tps", "ttft_ms", "acceptance", "score", "judge", "mismatches", "errors"];

/// A table of one suite: a row per configuration.
pub struct SuiteTable {
    pub suite: String,
    pub configs: Vec<String>,
    pub columns: Vec<String>,
    pub labels: Vec<String>,
    pub digits: Option<usize>,
}

impl SuiteTable {
    /// Every configuration, the report's columns.
    pub fn all(run: &Run, suite: &str) -> SuiteTable {
        let columns: Vec<String> = SUITE_COLUMNS.iter().map(|c| c.to_string()).collect();
        SuiteTable {
            suite: suite.into(),
            configs: run.configs().iter().map(|c| c.name.clone()).collect(),
            labels: columns.iter().map(|c| format::label(c)).collect(),
            columns,
            digits: None,
        }
    }

    pub fn render(&self, run: &Run) -> String {
        let mut lines = vec![header("config", &self.labels), align(1, self.columns.len())];
        for c in &self.configs {
            let cells: Vec<String> = self.columns.iter().map(|col| self.cell(run, c, col)).collect();
            lines.push(format!("| `{c}` | {} |", cells.join(" | ")));
        }
        lines.join("\n")
    }

    fn cell(&self, run: &Run, config: &str, column: &str) -> String {
        let st = || stats::suite_stats(&run.rows, config, &self.suite);
        match column {
            "prompts" => st().prompts.to_string(),
            "mismatches" => st().mismatches.to_string(),
            "errors" => st().errors.to_string(),
            m => cell(stats::metric_for_suite(&run.rows, config, &self.suite, m), format_of(m, self.digits)),
        }
    }
}

fn header(first: &str, labels: &[String]) -> String {
    format!("| {first} | {} |", labels.join(" | "))
}

/// `|---|` for the `left` text columns, `---:` for the numbers.
fn align(left: usize, numbers: usize) -> String {
    let cols: Vec<&str> = std::iter::repeat_n("---", left).chain(std::iter::repeat_n("---:", numbers)).collect();
    format!("|{}|", cols.join("|"))
}

/// `labels=` if given (one per column), else each column's own label.
fn labels(d: &Directive, columns: &[String]) -> Result<Vec<String>, String> {
    match d.list("labels") {
        Some(l) if l.len() == columns.len() => Ok(l),
        Some(l) => Err(format!("{} labels for {} columns", l.len(), columns.len())),
        None => Ok(columns.iter().map(|c| format::label(c)).collect()),
    }
}

pub fn suite_table(run: &Run, d: &Directive) -> Result<String, String> {
    let s = suite(run, d)?;
    let mut t = SuiteTable::all(run, &s);
    t.configs = configs(run, d, Some(&s))?;
    if let Some(cols) = d.list("columns") {
        t.columns = cols;
    }
    t.labels = labels(d, &t.columns)?;
    t.digits = digits(d)?;
    Ok(t.render(run))
}

/// Prompts of `suite` in the order they first appear in the run.
fn prompts_of(run: &Run, suite: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in run.rows.iter().filter(|r| r.suite == suite) {
        if !out.contains(&r.prompt) {
            out.push(r.prompt.clone());
        }
    }
    out
}

fn by_prompt(run: &Run, config: &str, suite: &str, metric: &str) -> BTreeMap<String, f64> {
    stats::metric_by_prompt(&run.rows, config, metric)
        .into_iter()
        .filter(|((s, _), _)| s == suite)
        .map(|((_, p), v)| (p, v))
        .collect()
}

/// A row per prompt: the baseline's value, then each configuration's value
/// with its ratio to the baseline; then the minimum and geometric mean of
/// each column's ratios.
pub fn grid(run: &Run, d: &Directive) -> Result<String, String> {
    let metric = d.req("metric");
    let base = config(run, d.get("baseline").unwrap_or(&run.meta.baseline))?.to_string();
    let s = suite(run, d)?;
    let others: Vec<String> = configs(run, d, Some(&s))?.into_iter().filter(|c| *c != base).collect();
    let identity = match d.get("identity") {
        None | Some("no") => false,
        Some("yes") => true,
        Some(v) => return Err(format!("identity={v}: expected yes or no")),
    };
    let f = format_of(metric, digits(d)?);
    let base_vals = by_prompt(run, &base, &s, metric);
    let vals: Vec<BTreeMap<String, f64>> = others.iter().map(|c| by_prompt(run, c, &s, metric)).collect();
    let mut labels = vec![format!("`{base}` {}", format::label(metric))];
    labels.extend(others.iter().map(|c| format!("`{c}`")));
    if identity {
        labels.push(format!("identical to `{base}`"));
    }
    let mut lines = vec![header("prompt", &labels), align(1, labels.len())];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); others.len()];
    for p in prompts_of(run, &s) {
        let b = base_vals.get(&p).copied();
        let mut cells = vec![cell(b, f)];
        for (i, v) in vals.iter().enumerate() {
            let v = v.get(&p).copied();
            let r = b.zip(v).filter(|(b, _)| *b > 0.0).map(|(b, v)| v / b);
            ratios[i].extend(r);
            cells.push(match (v, r) {
                (Some(v), Some(r)) => format!("{} ({})", format::number(v, f), ratio(r, 2)),
                (v, _) => cell(v, f),
            });
        }
        if identity {
            cells.push(identical(run, &s, &p));
        }
        lines.push(format!("| {p} | {} |", cells.join(" | ")));
    }
    for (name, agg) in [("minimum", min as fn(&[f64]) -> f64), ("geometric mean", geomean)] {
        let cells: Vec<String> =
            ratios.iter().map(|r| if r.is_empty() { "-".into() } else { ratio(agg(r), 2) }).collect();
        let tail = if identity { " |" } else { "" };
        lines.push(format!("| {name} | | {} |{tail}", cells.join(" | ")));
    }
    Ok(lines.join("\n"))
}

pub fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

/// `yes` when every checked row of the prompt matched the baseline, `NO
/// (configs)` naming those that did not, `-` when nothing was checked.
fn identical(run: &Run, suite: &str, prompt: &str) -> String {
    let checked: Vec<_> =
        run.rows.iter().filter(|r| r.suite == suite && r.prompt == prompt && r.identical.is_some()).collect();
    let mut differ: Vec<&str> = Vec::new();
    for r in checked.iter().filter(|r| r.identical == Some(false)) {
        if !differ.contains(&r.config.as_str()) {
            differ.push(&r.config);
        }
    }
    match (checked.is_empty(), differ.is_empty()) {
        (true, _) => "-".into(),
        (false, true) => "yes".into(),
        (false, false) => format!("NO ({})", differ.join(", ")),
    }
}

/// A row per (suite, prompt, configuration) in the order the run made them.
pub fn rows(run: &Run, d: &Directive) -> Result<String, String> {
    let columns = d.list("columns").unwrap_or_default();
    let mut labels = labels(d, &columns)?;
    let suite_filter = d.get("suite").map(|_| suite(run, d)).transpose()?;
    let wanted = configs(run, d, suite_filter.as_deref())?;
    let prompt_filter = d.list("prompts");
    let f = digits(d)?;
    let ratio_col = ratio_column(run, d, &columns)?;
    if let Some((at, base, _)) = &ratio_col {
        labels.insert(at + 1, format!("vs `{base}`"));
    }
    let text_cols = columns.iter().filter(|c| is_key_column(c)).count();
    let mut lines = vec![format!("| {} |", labels.join(" | ")), align(text_cols, labels.len() - text_cols)];
    let keys = row_keys(run, |r| {
        wanted.iter().any(|c| c == &r.config)
            && suite_filter.as_ref().is_none_or(|s| s == &r.suite)
            && prompt_filter.as_ref().is_none_or(|ps| ps.contains(&r.prompt))
    });
    for key in keys {
        let mut cells: Vec<String> = columns.iter().map(|c| row_cell(run, key, c, f)).collect();
        if let Some((at, base, metric)) = &ratio_col {
            let v = group_value(run, key, metric);
            let b = group_value(run, (key.0, key.1, base.as_str()), metric);
            let r = v.zip(b).filter(|(_, b)| *b > 0.0).map(|(v, b)| ratio(v / b, 2));
            cells.insert(at + 1, r.unwrap_or_else(|| "-".into()));
        }
        lines.push(format!("| {} |", cells.join(" | ")));
    }
    Ok(lines.join("\n"))
}

/// All prompts and configurations of one suite with the given metrics
/// (the per-run report of imported and load runs).
pub fn measured_rows(run: &Run, suite: &str, metrics: &[&str]) -> String {
    let mut columns = vec!["prompt".to_string(), "config".to_string()];
    columns.extend(metrics.iter().map(|m| m.to_string()));
    let mut lines = vec![format!("| {} |", columns.iter().map(|c| format::label(c)).collect::<Vec<_>>().join(" | "))];
    lines.push(align(2, metrics.len()));
    for key in row_keys(run, |r| r.suite == suite) {
        let cells: Vec<String> = columns.iter().map(|c| row_cell(run, key, c, None)).collect();
        lines.push(format!("| {} |", cells.join(" | ")));
    }
    lines.join("\n")
}

/// Distinct (suite, prompt, configuration) of the rows kept, in run order.
fn row_keys(run: &Run, keep: impl Fn(&Row) -> bool) -> Vec<(&str, &str, &str)> {
    let mut seen = Vec::new();
    for r in run.rows.iter().filter(|r| keep(r)) {
        let key = (r.suite.as_str(), r.prompt.as_str(), r.config.as_str());
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    seen
}

fn is_key_column(c: &str) -> bool {
    matches!(c, "config" | "prompt" | "suite")
}

/// `ratio=METRIC baseline=CONFIG`: (index of the metric's column, baseline, metric).
fn ratio_column(run: &Run, d: &Directive, columns: &[String]) -> Result<Option<(usize, String, String)>, String> {
    let Some(metric) = d.get("ratio") else {
        return match d.get("baseline") {
            Some(_) => Err("baseline= needs ratio=METRIC".into()),
            None => Ok(None),
        };
    };
    let at = columns.iter().position(|c| c == metric).ok_or(format!("ratio={metric} must be one of the columns"))?;
    let base = config(run, d.get("baseline").unwrap_or(&run.meta.baseline))?;
    Ok(Some((at, base.to_string(), metric.to_string())))
}

fn group_value(run: &Run, (suite, prompt, config): (&str, &str, &str), metric: &str) -> Option<f64> {
    stats::metric_by_prompt(&run.rows, config, metric)
        .into_iter()
        .find(|((s, p), _)| s == suite && p == prompt)
        .map(|(_, v)| v)
}

fn row_cell(run: &Run, key: (&str, &str, &str), column: &str, digits: Option<usize>) -> String {
    match column {
        "suite" => key.0.into(),
        "prompt" => key.1.into(),
        "config" => format!("`{}`", key.2),
        m => cell(group_value(run, key, m), format_of(m, digits)),
    }
}

/// The run's command lines, once each, as a code block.
pub fn command(run: &Run) -> String {
    let m = &run.meta;
    let mut lines: Vec<&str> = Vec::new();
    let all = std::iter::once(&m.command).chain(&m.commands).chain(m.configs.iter().flat_map(|c| &c.commands));
    for l in all {
        if !lines.contains(&l.as_str()) {
            lines.push(l);
        }
    }
    format!("```\n{}\n```", lines.join("\n"))
}
