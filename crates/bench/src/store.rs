//! `runs/<run_id>/{meta.json,results.jsonl}` and the append-only
//! `runs/index.jsonl`.

use std::fs::{File, OpenOptions};
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
}

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
}

/// Write a file so readers see the old contents or the new, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let ctx = || format!("writing {}", path.display());
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(BenchError::io(ctx()))?;
    tmp.write_all(bytes).map_err(BenchError::io(ctx()))?;
    tmp.as_file().sync_all().map_err(BenchError::io(ctx()))?;
    tmp.persist(path).map_err(|e| BenchError::Io { context: ctx(), source: e.error })?;
    // The rename is durable only once the directory is synced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

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
