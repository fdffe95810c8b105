//! Replays recorded greedy answers through the speculation policy, without
//! the model, on a machine's calibrated verify-cost curve: modelled speedup
//! of each mode over plain decoding, over all requests, the first ten and
//! the last ten (the global suffix tree learns as it goes).
//!
//! cargo run --release -p augur-runtime --example replay -- TOKENS.jsonl CURVE.json [MODES]
//!
//! TOKENS.jsonl: one request per line, `{"prompt": [ids], "output": [ids]}`
//! with the output ending in its end-of-generation token, in the order the
//! requests were answered. CURVE.json: a stored calibration
//! (`$AUGUR_HOME/calibration/`). MODES: comma-separated, from off, lookup,
//! suffix, auto, each optionally with `+tree` (default all of them).
//! Environment: CHARGE_CURVE=PATH charges the steps at another stored curve
//! (one measured at the workload's context length) while the plans use
//! CURVE; REPLAY_ALWAYS=1 drafts whatever the sources offer (the
//! `DraftPolicy::Always` of tests), for how much the proposals hold.

use std::sync::{Arc, RwLock};

use augur_runtime::speculate::{ReplayOutcome, Speculator};
use augur_runtime::{SpecMode, SpecSettings};
use augur_spec::{CostCurve, CostModel, GlobalSuffixTree};

#[derive(serde::Deserialize)]
struct Request {
    prompt: Vec<i32>,
    output: Vec<i32>,
}

fn mode(name: &str) -> Result<SpecMode, String> {
    Ok(match name {
        "off" => SpecMode::Off,
        "lookup" => SpecMode::Lookup,
        "suffix" => SpecMode::Suffix,
        "auto" => SpecMode::Auto,
        _ => return Err(format!("unknown mode {name}")),
    })
}

fn run(requests: &[Request], curve: &CostCurve, charge: &CostCurve, name: &str) -> Result<Vec<ReplayOutcome>, String> {
    let tree = name.ends_with("+tree");
    let mode = mode(name.trim_end_matches("+tree"))?;
    let policy = if std::env::var_os("REPLAY_ALWAYS").is_some() {
        augur_runtime::DraftPolicy::Always
    } else {
        augur_runtime::DraftPolicy::CostModel
    };
    let settings = SpecSettings { mode, tree, policy, ..SpecSettings::default() };
    let global = Arc::new(RwLock::new(GlobalSuffixTree::new(
        augur_spec::suffix::DEFAULT_GLOBAL_BUDGET,
        augur_spec::suffix::DEFAULT_MAX_DEPTH,
    )));
    let mut s = Speculator::new(settings, None, Some(global)).map_err(|e| e.to_string())?;
    s.set_cost(CostModel::from_curve(curve).map_err(|e| e.to_string())?, curve.invariant_batch);
    let charge = CostModel::from_curve(charge).map_err(|e| e.to_string())?;
    requests
        .iter()
        .map(|r| {
            s.replay_charged(mode, &r.prompt, &r.output, &charge).ok_or_else(|| "empty output or no cost".to_string())
        })
        .collect()
}

fn total(outcomes: &[ReplayOutcome]) -> ReplayOutcome {
    let mut t = ReplayOutcome::default();
    outcomes.iter().for_each(|o| t.add(o));
    t
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, tokens, curve, rest @ ..] = &args[..] else {
        return Err("usage: replay TOKENS.jsonl CURVE.json [MODES]".into());
    };
    let text = std::fs::read_to_string(tokens).map_err(|e| format!("{tokens}: {e}"))?;
    let requests = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<Vec<Request>, _>>()
        .map_err(|e| format!("{tokens}: {e}"))?;
    let curve = CostCurve::load(curve.as_ref()).map_err(|e| format!("{curve}: {e}"))?;
    // Steps are charged at this curve (default: the one the plans use).
    let charge = match std::env::var("CHARGE_CURVE") {
        Ok(path) => CostCurve::load(path.as_ref()).map_err(|e| format!("{path}: {e}"))?,
        Err(_) => curve.clone(),
    };
    let modes = rest.first().map_or("off,lookup,suffix,auto,off+tree,auto+tree", String::as_str);
    println!("| mode | requests | speedup | steps | drafting steps | drafted | accepted |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for name in modes.split(',') {
        let outcomes = run(&requests, &curve, &charge, name)?;
        let n = outcomes.len();
        for (phase, part) in [
            ("all", &outcomes[..]),
            ("first 10", &outcomes[..n.min(10)]),
            ("last 10", &outcomes[n.saturating_sub(10)..]),
        ] {
            let t = total(part);
            println!(
                "| {name} | {phase} | {:.2}x | {} | {} | {} | {} |",
                1.0 / t.time_ratio(),
                t.steps,
                t.drafting_steps,
                t.drafted,
                t.accepted
            );
        }
    }
    Ok(())
}
