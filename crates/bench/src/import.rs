//! `bench import`: measurements made by other programs (llama.cpp's tools,
//! `augur run --json`, the tool-calling client) stored as a run, so
//! documents are rendered from them like from `bench run`'s.
//!
//! Input: JSON lines, one measurement each:
//!
//! ```json
//! {"suite": "spec", "prompt": "edit-rust", "config": "llama-lookup",
//!  "command": "llama-lookup -m MODEL -f PROMPT -n 128 -t 2 --temp 0",
//!  "metrics": {"decode_tps": 45.9}, "output_sha256": "…"}
//! ```
//!
//! `suite`, `prompt`, `config` and `metrics` (or `error`) are required;
//! `iteration` (default: the next for that prompt and configuration),
//! `command` (the exact command line that measured it), `model`,
//! `output_sha256` (for the greedy-identity check against the baseline)
//! and `error` are optional. Unknown fields are an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::TargetConfig;
use crate::error::{BenchError, Result};
use crate::meta::{Meta, Record, SuiteRef};
use crate::store::{self, Row, RowKey};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    suite: String,
    prompt: String,
    config: String,
    #[serde(default)]
    iteration: Option<u32>,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
    #[serde(default)]
    output_sha256: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// What to import and how to describe the run.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    pub file: PathBuf,
    pub runs_dir: PathBuf,
    /// The script's invocation, servers it started, label, peer versions.
    pub record: Record,
    /// Configuration whose outputs the others' hashes are checked against
    /// (default: the first).
    pub baseline: Option<String>,
    /// Configurations checked against another configuration than the
    /// baseline, as `(config, its baseline)`: those that load the model
    /// differently (tree verification's attention layout) have plain
    /// outputs of their own.
    pub identity: Vec<(String, String)>,
    pub temperature: f32,
    pub warmup: u32,
}

#[derive(Debug)]
pub struct Imported {
    pub run_id: String,
    pub dir: PathBuf,
    pub rows: usize,
    pub mismatches: usize,
}

pub fn import(plan: &ImportPlan) -> Result<Imported> {
    let text =
        std::fs::read_to_string(&plan.file).map_err(BenchError::io(format!("reading {}", plan.file.display())))?;
    let parsed = parse(&plan.file, &text)?;
    let configs = configs(&parsed);
    let baseline = match &plan.baseline {
        Some(b) if configs.iter().any(|c| &c.name == b) => b.clone(),
        Some(b) => return Err(bad(&plan.file, 0, format!("baseline {b:?} has no rows"))),
        None => configs[0].name.clone(),
    };
    for (config, base) in &plan.identity {
        if let Some(missing) = [config, base].into_iter().find(|n| !configs.iter().any(|c| &c.name == *n)) {
            return Err(bad(&plan.file, 0, format!("identity {config}={base}: {missing:?} has no rows")));
        }
    }
    let base_of = |config: &str| -> String {
        plan.identity.iter().find(|(c, _)| c == config).map_or_else(|| baseline.clone(), |(_, b)| b.clone())
    };
    let mut rows: Vec<Row> = parsed.into_iter().map(|r| r.row).collect();
    let mismatches = check_identity(&mut rows, base_of);
    let meta = Meta {
        suites: suites(&rows),
        iterations: rows.iter().map(|r| r.iteration + 1).max().unwrap_or(1),
        warmup: plan.warmup,
        temperature: plan.temperature,
        ..Meta::now(&plan.record, configs, baseline)
    };
    let dir = store::commit(&plan.runs_dir, &meta, &rows, mismatches)?;
    Ok(Imported { run_id: meta.run_id, dir, rows: rows.len(), mismatches })
}

fn bad(path: &Path, line: usize, message: String) -> BenchError {
    BenchError::Import { path: path.to_path_buf(), line, message }
}

/// Rows in file order, each checked; a configuration's commands and model
/// travel in the rows' `command` and `model` fields.
fn parse(path: &Path, text: &str) -> Result<Vec<ImportedRow>> {
    let mut out: Vec<ImportedRow> = Vec::new();
    for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let line: Line = serde_json::from_str(l).map_err(|source| BenchError::Json {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        validate(&line).map_err(|m| bad(path, i + 1, m))?;
        let iteration = line.iteration.unwrap_or_else(|| {
            out.iter()
                .filter(|r| r.row.suite == line.suite && r.row.prompt == line.prompt && r.row.config == line.config)
                .count() as u32
        });
        out.push(ImportedRow::new(line, iteration));
    }
    if out.is_empty() {
        return Err(bad(path, 0, "no rows".into()));
    }
    Ok(out)
}

fn validate(l: &Line) -> Result<(), String> {
    if l.suite.is_empty() || l.prompt.is_empty() || l.config.is_empty() {
        return Err("suite, prompt and config must not be empty".into());
    }
    if l.metrics.is_empty() && l.error.is_none() {
        return Err("a row needs metrics (or an error)".into());
    }
    if let Some((k, v)) = l.metrics.iter().find(|(_, v)| !v.is_finite()) {
        return Err(format!("metric {k:?} is {v}"));
    }
    match &l.output_sha256 {
        Some(h) if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err(format!("output_sha256 {h:?} is not 64 hex digits"))
        }
        _ => Ok(()),
    }
}

/// A stored row with what the run's metadata takes from it.
struct ImportedRow {
    row: Row,
    command: Option<String>,
    model: Option<String>,
}

impl ImportedRow {
    fn new(l: Line, iteration: u32) -> ImportedRow {
        let key = RowKey { suite: l.suite, prompt: l.prompt, config: l.config, iteration };
        let row = Row {
            output_sha256: l.output_sha256.map(|h| h.to_ascii_lowercase()),
            error: l.error,
            ..Row::measured(key, l.metrics)
        };
        ImportedRow { row, command: l.command, model: l.model }
    }
}

/// Configurations in order of first appearance, each with its distinct commands.
fn configs(rows: &[ImportedRow]) -> Vec<TargetConfig> {
    let mut out: Vec<TargetConfig> = Vec::new();
    for r in rows {
        let i = match out.iter().position(|c| c.name == r.row.config) {
            Some(i) => i,
            None => {
                let model = r.model.clone().unwrap_or_default();
                out.push(TargetConfig { name: r.row.config.clone(), ..TargetConfig::new(&model) });
                out.len() - 1
            }
        };
        if let Some(cmd) = &r.command {
            if !out[i].commands.contains(cmd) {
                out[i].commands.push(cmd.clone());
            }
        }
    }
    out
}

fn suites(rows: &[Row]) -> Vec<SuiteRef> {
    let mut out: Vec<SuiteRef> = Vec::new();
    for name in crate::stats::suites(rows) {
        let mut prompts: Vec<&str> = rows.iter().filter(|r| r.suite == name).map(|r| r.prompt.as_str()).collect();
        prompts.sort_unstable();
        prompts.dedup();
        out.push(SuiteRef { name: name.clone(), version: 0, prompts: prompts.len() });
    }
    out
}

/// Hashed outputs against their baseline's first one per prompt, as
/// `bench run` checks texts; returns the number of rows that differ.
fn check_identity(rows: &mut [Row], base_of: impl Fn(&str) -> String) -> usize {
    let mut reference: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.error.is_none()) {
        if let Some(h) = &r.output_sha256 {
            reference.entry((r.config.clone(), r.suite.clone(), r.prompt.clone())).or_insert_with(|| h.clone());
        }
    }
    let mut mismatches = 0;
    for r in rows.iter_mut().filter(|r| r.error.is_none()) {
        let key = (base_of(&r.config), r.suite.clone(), r.prompt.clone());
        if let (Some(h), Some(want)) = (&r.output_sha256, reference.get(&key)) {
            let same = h == want;
            r.identical = Some(same);
            mismatches += usize::from(!same);
        }
    }
    mismatches
}
