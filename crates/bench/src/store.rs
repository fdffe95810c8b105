//! `runs/<run_id>/{meta.json,results.jsonl}` and the append-only
//! `runs/index.jsonl`.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

use crate::config::TargetConfig;
use crate::error::{BenchError, Result};
use crate::meta::Meta;

/// One prompt × configuration × iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub suite: String,
    pub prompt: String,
    pub config: String,
    pub iteration: u32,
    pub ttft_s: f64,
    pub decode_tps: f64,
    pub e2e_tps: f64,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub drafted: Option<u64>,
    pub accepted: Option<u64>,
    pub acceptance: Option<f64>,
    pub finish_reason: String,
    pub output: String,
    /// Same text as the baseline configuration's (greedy runs only).
    pub identical: Option<bool>,
    pub score: Option<f64>,
    pub score_detail: Option<String>,
    /// The judge model's 0-3 grade, when a judge was asked.
    #[serde(default)]
    pub judge: Option<u8>,
    /// Set when the generation failed; the metrics are then zero.
    pub error: Option<String>,
    /// SHA-256 of the output, kept when the text itself is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_sha256: Option<String>,
    /// Named measurements of rows made by `bench import` and `bench load`;
    /// such a row carries all its numbers here, none in the fields above.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}

impl Row {
    /// A row that carries its numbers as named metrics.
    pub fn measured(key: RowKey, metrics: BTreeMap<String, f64>) -> Row {
        Row {
            suite: key.suite,
            prompt: key.prompt,
            config: key.config,
            iteration: key.iteration,
            ttft_s: 0.0,
            decode_tps: 0.0,
            e2e_tps: 0.0,
            prompt_tokens: 0,
            completion_tokens: 0,
            drafted: None,
            accepted: None,
            acceptance: None,
            finish_reason: String::new(),
            output: String::new(),
            identical: None,
            score: None,
            score_detail: None,
            judge: None,
            error: None,
            output_sha256: None,
            metrics,
        }
    }

    /// One measurement by name: a key of `metrics`, else (for rows of
    /// `bench run`) a field. `NAME_ms` is `NAME_s` in milliseconds.
    pub fn metric(&self, name: &str) -> Option<f64> {
        if let Some(v) = self.own_metric(name) {
            return Some(v);
        }
        let seconds = name.strip_suffix("_ms").map(|base| format!("{base}_s"))?;
        self.own_metric(&seconds).map(|v| v * 1000.0)
    }

    fn own_metric(&self, name: &str) -> Option<f64> {
        if !self.metrics.is_empty() {
            return self.metrics.get(name).copied();
        }
        let count = |n: usize| Some(n as f64);
        match name {
            "ttft_s" => Some(self.ttft_s),
            "decode_tps" => Some(self.decode_tps),
            "e2e_tps" => Some(self.e2e_tps),
            "prompt_tokens" => count(self.prompt_tokens),
            "completion_tokens" => count(self.completion_tokens),
            "drafted" => self.drafted.map(|n| n as f64),
            "accepted" => self.accepted.map(|n| n as f64),
            "acceptance" => self.acceptance,
            "score" => self.score,
            "judge" => self.judge.map(f64::from),
            _ => None,
        }
    }

    /// The same row without its generated text (the hash stays).
    pub fn without_text(self) -> Row {
        let output_sha256 = self.output_sha256.clone().or_else(|| Some(sha256_hex(self.output.as_bytes())));
        Row { output: String::new(), output_sha256, ..self }
    }
}

/// What a row measured: which prompt of which suite, under which
/// configuration, which iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct RowKey {
    pub suite: String,
    pub prompt: String,
    pub config: String,
    pub iteration: u32,
}

pub use augur_persist::sha256_hex;

/// One line of `runs/index.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub run_id: String,
    pub created: String,
    pub suites: Vec<String>,
    pub configs: Vec<String>,
    pub baseline: String,
    pub mismatches: usize,
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl IndexEntry {
    pub fn of(meta: &Meta, mismatches: usize) -> IndexEntry {
        IndexEntry {
            run_id: meta.run_id.clone(),
            created: meta.created.clone(),
            suites: meta.suites.iter().map(|s| s.name.clone()).collect(),
            configs: meta.configs.iter().map(|c| c.name.clone()).collect(),
            baseline: meta.baseline.clone(),
            mismatches,
            command: meta.command.clone(),
            label: meta.label.clone(),
        }
    }
}

/// A stored run.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub meta: Meta,
    pub rows: Vec<Row>,
}

impl Run {
    pub fn id(&self) -> &str {
        &self.meta.run_id
    }

    pub fn configs(&self) -> &[TargetConfig] {
        &self.meta.configs
    }

    /// Several runs read as one: their configurations and rows side by
    /// side (the names must differ), the first run's machine and baseline,
    /// every run's command lines.
    pub fn combine(mut runs: Vec<Run>) -> Result<Run> {
        if runs.len() <= 1 {
            return runs.pop().ok_or_else(|| BenchError::UnknownRun(String::new()));
        }
        let mut all = runs.remove(0);
        for r in runs {
            if let Some(c) = r.configs().iter().find(|c| all.meta.configs.iter().any(|a| a.name == c.name)) {
                return Err(BenchError::Runs(format!(
                    "runs {} and {} both have a configuration named {:?}",
                    all.id(),
                    r.id(),
                    c.name
                )));
            }
            all.meta.run_id = format!("{}+{}", all.meta.run_id, r.meta.run_id);
            all.meta.commands.push(r.meta.command);
            all.meta.commands.extend(r.meta.commands);
            all.meta.configs.extend(r.meta.configs);
            all.meta.peers.extend(r.meta.peers);
            all.rows.extend(r.rows);
        }
        Ok(all)
    }
}

/// Write a file so readers see the old contents or the new, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    augur_persist::write_atomic(path, bytes).map_err(BenchError::io(format!("writing {}", path.display())))
}

/// Write a run's directory (without indexing it; see [`commit`]).
pub fn save(runs_dir: &Path, meta: &Meta, rows: &[Row]) -> Result<PathBuf> {
    let dir = runs_dir.join(&meta.run_id);
    std::fs::create_dir_all(&dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    let meta_json = serde_json::to_vec_pretty(meta).map_err(|e| json_err(&dir, e))?;
    write_atomic(&dir.join("meta.json"), &meta_json)?;
    let mut lines = Vec::new();
    for r in rows {
        lines.extend(serde_json::to_vec(r).map_err(|e| json_err(&dir, e))?);
        lines.push(b'\n');
    }
    write_atomic(&dir.join("results.jsonl"), &lines)?;
    Ok(dir)
}

/// Store a finished run: its directory, then its line in the index.
pub fn commit(runs_dir: &Path, meta: &Meta, rows: &[Row], mismatches: usize) -> Result<PathBuf> {
    let dir = save(runs_dir, meta, rows)?;
    append_index(runs_dir, &IndexEntry::of(meta, mismatches))?;
    Ok(dir)
}

fn json_err(path: &Path, source: serde_json::Error) -> BenchError {
    BenchError::Json { path: path.to_path_buf(), line: 0, source }
}

/// Append one complete line under an exclusive advisory lock, then fsync,
/// so concurrent runs never interleave or leave half a line.
pub fn append_index(runs_dir: &Path, entry: &IndexEntry) -> Result<()> {
    let path = runs_dir.join("index.jsonl");
    let ctx = || format!("appending to {}", path.display());
    let mut line = serde_json::to_vec(entry).map_err(|e| json_err(&path, e))?;
    line.push(b'\n');
    let file = OpenOptions::new().create(true).append(true).open(&path).map_err(BenchError::io(ctx()))?;
    FileExt::lock_exclusive(&file).map_err(BenchError::io(ctx()))?;
    let result = (&file).write_all(&line).and_then(|()| file.sync_all());
    let _ = FileExt::unlock(&file);
    result.map_err(BenchError::io(ctx()))
}

pub fn read_index(runs_dir: &Path) -> Result<Vec<IndexEntry>> {
    read_jsonl(&runs_dir.join("index.jsonl"))
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BenchError::Io { context: format!("reading {}", path.display()), source: e }),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| BenchError::Json { path: path.into(), line: i + 1, source })
        })
        .collect()
}

/// A run by label (the latest run indexed with it), else as [`load`] finds it.
pub fn resolve(runs_dir: &Path, name: &str) -> Result<Run> {
    let index = read_index(runs_dir)?;
    match index.iter().rev().find(|e| e.label.as_deref() == Some(name)) {
        Some(e) => load(runs_dir, &e.run_id),
        None => load(runs_dir, name),
    }
}

/// A run by directory path, or by id under `runs_dir`.
pub fn load(runs_dir: &Path, run: &str) -> Result<Run> {
    let direct = PathBuf::from(run);
    let dir = if direct.join("meta.json").is_file() { direct } else { runs_dir.join(run) };
    let meta_path = dir.join("meta.json");
    if !meta_path.is_file() {
        return Err(BenchError::UnknownRun(run.into()));
    }
    let text =
        std::fs::read_to_string(&meta_path).map_err(BenchError::io(format!("reading {}", meta_path.display())))?;
    let meta: Meta = serde_json::from_str(&text).map_err(|e| json_err(&meta_path, e))?;
    let rows = read_jsonl(&dir.join("results.jsonl"))?;
    Ok(Run { dir, meta, rows })
}
