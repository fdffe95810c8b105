//! The inline directives: single numbers and the machine line.

use super::format::{self, format_of, ratio as times};
use super::parse::Directive;
use super::render::{config, digits, suite};
use crate::stats::{self, geomean, median};
use crate::store::Run;

/// One configuration's metric: of one prompt (`prompt=`), else over a suite.
fn measured(run: &Run, d: &Directive, key: &str) -> Result<f64, String> {
    let c = config(run, d.req(key))?;
    let metric = d.req("metric");
    let v = match d.get("prompt") {
        Some(p) => {
            let s = d.get("suite").map(|_| suite(run, d)).transpose()?;
            let hits: Vec<f64> = stats::metric_by_prompt(&run.rows, c, metric)
                .into_iter()
                .filter(|((su, pr), _)| pr == p && s.as_ref().is_none_or(|s| s == su))
                .map(|(_, v)| v)
                .collect();
            match hits[..] {
                [v] => Some(v),
                [] => None,
                _ => return Err(format!("prompt {p:?} is in several suites of run {}: give suite=", run.id())),
            }
        }
        None => stats::metric_for_suite(&run.rows, c, &suite(run, d)?, metric),
    };
    let at = d.get("prompt").map(|p| format!(" for prompt {p:?}")).unwrap_or_default();
    v.ok_or_else(|| format!("run {}: configuration {c:?} has no {metric:?} measurement{at}", run.id()))
}

pub fn value(run: &Run, d: &Directive) -> Result<String, String> {
    let v = measured(run, d, "config")?;
    Ok(format::number(v, format_of(d.req("metric"), digits(d)?)))
}

/// `config` over `baseline`: of their values (`stat=value`, the default),
/// or the min, max, median or geometric mean of their per-prompt ratios.
pub fn ratio(run: &Run, d: &Directive) -> Result<String, String> {
    let places = digits(d)?.unwrap_or(2);
    let stat = d.get("stat").unwrap_or("value");
    if stat == "value" {
        let (v, b) = (measured(run, d, "config")?, measured(run, d, "baseline")?);
        if b <= 0.0 {
            return Err(format!("baseline {:?} measured {b}: no ratio", d.req("baseline")));
        }
        return Ok(times(v / b, places));
    }
    if d.get("prompt").is_some() {
        return Err(format!("stat={stat} is over prompts: drop prompt="));
    }
    let ratios = prompt_ratios(run, d)?;
    let r = match stat {
        "min" => super::tables::min(&ratios),
        "max" => ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "median" => median(&mut ratios.clone()),
        "geomean" => geomean(&ratios),
        _ => return Err(format!("stat={stat}: expected value, min, max, median or geomean")),
    };
    Ok(times(r, places))
}

fn prompt_ratios(run: &Run, d: &Directive) -> Result<Vec<f64>, String> {
    let (c, b) = (config(run, d.req("config"))?, config(run, d.req("baseline"))?);
    let s = suite(run, d)?;
    let metric = d.req("metric");
    let base = stats::metric_by_prompt(&run.rows, b, metric);
    let ratios: Vec<f64> = stats::metric_by_prompt(&run.rows, c, metric)
        .into_iter()
        .filter(|((su, _), _)| *su == s)
        .filter_map(|(k, v)| base.iter().find(|(bk, _)| *bk == k).filter(|(_, bv)| *bv > 0.0).map(|(_, bv)| v / bv))
        .collect();
    if ratios.is_empty() {
        return Err(format!("run {}: no prompt of suite {s:?} has {metric:?} for both {c:?} and {b:?}", run.id()));
    }
    Ok(ratios)
}

/// `what=rows|prompts|configs|mismatches|errors`, optionally of one
/// configuration and one suite.
pub fn count(run: &Run, d: &Directive) -> Result<String, String> {
    let only = d.get("config").map(|c| config(run, c)).transpose()?;
    let suite = d.get("suite");
    if let Some(s) = suite.filter(|s| !run.rows.iter().any(|r| r.suite == *s)) {
        return Err(format!("run {}: no suite {s:?}", run.id()));
    }
    let rows: Vec<_> =
        run.rows.iter().filter(|r| only.is_none_or(|c| r.config == c) && suite.is_none_or(|s| r.suite == s)).collect();
    let n = match d.req("what") {
        "rows" => rows.len(),
        "mismatches" => rows.iter().filter(|r| r.identical == Some(false)).count(),
        "errors" => rows.iter().filter(|r| r.error.is_some()).count(),
        "prompts" => {
            let mut keys: Vec<(&str, &str)> = rows.iter().map(|r| (r.suite.as_str(), r.prompt.as_str())).collect();
            keys.sort_unstable();
            keys.dedup();
            keys.len()
        }
        "configs" => run.configs().iter().filter(|c| only.is_none_or(|o| o == c.name)).count(),
        w => return Err(format!("what={w}: expected rows, prompts, configs, mismatches or errors")),
    };
    Ok(n.to_string())
}

/// One configuration's metric for each prompt of a suite, in order.
pub fn series(run: &Run, d: &Directive) -> Result<String, String> {
    let c = config(run, d.req("config"))?;
    let s = suite(run, d)?;
    let metric = d.req("metric");
    let f = format_of(metric, digits(d)?);
    let vals: Vec<String> = stats::metric_by_prompt(&run.rows, c, metric)
        .into_iter()
        .filter(|((su, _), _)| *su == s)
        .map(|(_, v)| format::number(v, f))
        .collect();
    if vals.is_empty() {
        return Err(format!("run {}: configuration {c:?} has no {metric:?} in suite {s:?}", run.id()));
    }
    Ok(vals.join(", "))
}

/// CPU, cores, memory and SIMD flags; versions and commit; date.
pub fn machine(run: &Run) -> String {
    let m = &run.meta;
    let full = m.git_commit.as_deref().unwrap_or("unknown");
    let (hash, dirty) = full.split_once('+').map_or((full, ""), |(h, _)| (h, "+dirty"));
    let commit: String = hash.chars().take(12).chain(dirty.chars()).collect();
    let peers: String = m.peers.iter().map(|(k, v)| format!(", {k} {v}")).collect();
    format!(
        "{} ({} cores, {:.1} GiB, {}); augur {} at commit `{commit}` with {}{peers}; measured {}",
        m.machine.cpu_model,
        m.machine.cores,
        m.machine.memory_bytes as f64 / (1u64 << 30) as f64,
        m.machine.isa_flags.join(" "),
        m.augur_version,
        m.llama_cpp_version,
        m.created
    )
}
