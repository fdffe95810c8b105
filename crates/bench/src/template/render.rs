//! Template → Markdown: prose verbatim, each directive replaced by what it
//! computes from the stored runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::parse::{self, Directive, Kind, Piece};
use super::{tables, values};
use crate::error::{BenchError, Result};
use crate::store::{self, Run};

/// Runs by the name a directive gives (`ID`, `LABEL`, or `A+B` for several
/// read as one), each loaded once.
pub struct Runs {
    dir: PathBuf,
    cache: HashMap<String, Run>,
}

impl Runs {
    pub fn new(dir: &Path) -> Runs {
        Runs { dir: dir.to_path_buf(), cache: HashMap::new() }
    }

    pub fn get(&mut self, name: &str) -> Result<&Run, String> {
        if !self.cache.contains_key(name) {
            let parts = name
                .split('+')
                .map(|n| store::resolve(&self.dir, n).map_err(|e| describe(e, n, &self.dir)))
                .collect::<Result<Vec<_>, _>>()?;
            let run = Run::combine(parts).map_err(|e| e.to_string())?;
            self.cache.insert(name.to_string(), run);
        }
        Ok(&self.cache[name])
    }
}

fn describe(e: BenchError, name: &str, dir: &Path) -> String {
    match e {
        BenchError::UnknownRun(_) => format!("unknown run {name:?}: no run id or label in {}", dir.display()),
        other => other.to_string(),
    }
}

/// Render `text` (read from `path`, named in errors) against `runs_dir`.
pub fn render(text: &str, path: &Path, runs_dir: &Path) -> Result<String> {
    let fail = |line: usize, message: String| BenchError::Template { path: path.to_path_buf(), line, message };
    let lines = parse::parse(text).map_err(|(line, m)| fail(line, m))?;
    let mut runs = Runs::new(runs_dir);
    let mut out = String::new();
    for line in &lines {
        for piece in &line.pieces {
            match piece {
                Piece::Text(_) if is_block_line(&line.pieces) => {}
                Piece::Text(t) => out.push_str(t),
                Piece::Directive(d) => out.push_str(&expand(d, &mut runs).map_err(|m| fail(line.number, m))?),
            }
        }
        out.push('\n');
    }
    if !text.ends_with('\n') {
        out.pop();
    }
    Ok(out)
}

/// A line holding a block directive (alone, as the parser checked).
fn is_block_line(pieces: &[Piece]) -> bool {
    pieces.iter().any(|p| matches!(p, Piece::Directive(d) if d.kind.is_block()))
}

fn expand(d: &Directive, runs: &mut Runs) -> Result<String, String> {
    let run = runs.get(d.req("run"))?;
    match d.kind {
        Kind::Suite => tables::suite_table(run, d),
        Kind::Grid => tables::grid(run, d),
        Kind::Rows => tables::rows(run, d),
        Kind::Command => Ok(tables::command(run)),
        Kind::Value => values::value(run, d),
        Kind::Ratio => values::ratio(run, d),
        Kind::Count => values::count(run, d),
        Kind::Series => values::series(run, d),
        Kind::Machine => Ok(values::machine(run)),
    }
}

/// A configuration the run has.
pub fn config<'r>(run: &'r Run, name: &str) -> Result<&'r str, String> {
    match run.configs().iter().find(|c| c.name == name) {
        Some(c) => Ok(&c.name),
        None => {
            let names: Vec<&str> = run.configs().iter().map(|c| c.name.as_str()).collect();
            Err(format!("run {} has no configuration {name:?} (it has: {})", run.id(), names.join(", ")))
        }
    }
}

/// The directive's `configs=a,b`, else the run's configurations that have
/// rows in `suite` (all of them without one).
pub fn configs(run: &Run, d: &Directive, suite: Option<&str>) -> Result<Vec<String>, String> {
    match d.list("configs") {
        Some(names) => names.iter().map(|n| config(run, n).map(String::from)).collect(),
        None => Ok(run
            .configs()
            .iter()
            .filter(|c| suite.is_none_or(|s| run.rows.iter().any(|r| r.config == c.name && r.suite == s)))
            .map(|c| c.name.clone())
            .collect()),
    }
}

/// The directive's `suite=`, which the run must have, else the run's only suite.
pub fn suite(run: &Run, d: &Directive) -> Result<String, String> {
    let all = crate::stats::suites(&run.rows);
    match d.get("suite") {
        Some(s) if all.iter().any(|a| a == s) => Ok(s.into()),
        Some(s) => Err(format!("run {} has no suite {s:?} (it has: {})", run.id(), all.join(", "))),
        None if all.len() == 1 => Ok(all[0].clone()),
        None => Err(format!("run {} has suites {}: give suite=", run.id(), all.join(", "))),
    }
}

pub fn digits(d: &Directive) -> Result<Option<usize>, String> {
    let parse = |v: &str| match v.parse::<usize>() {
        Ok(n) if n <= 12 => Ok(n),
        _ => Err(format!("digits={v}: expected a whole number up to 12")),
    };
    d.get("digits").map(parse).transpose()
}
