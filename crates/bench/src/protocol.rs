//! The measurement protocol: a discarded warm-up per configuration, then N
//! iterations of every prompt, greedy by default, each configuration's text
//! checked against the baseline's.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::check::Score;
use crate::config::TargetConfig;
use crate::error::{BenchError, Result};
use crate::meta::{Meta, Record, SuiteRef};
use crate::store::{self, Row};
use crate::suite::{BenchPrompt, Suite};
use crate::target::{self, Generation, Request, RequestSpec, Target};

/// Fewer iterations than this are noise unless a test asks for them.
pub const MIN_ITERATIONS: u32 = 3;

#[derive(Debug, Clone)]
pub struct Plan {
    pub suites: Vec<Suite>,
    pub targets: Vec<TargetConfig>,
    /// Name of the configuration others are checked against; default the first.
    pub baseline: Option<String>,
    pub iterations: u32,
    /// For tests and CI smoke runs only.
    pub allow_fewer_iterations: bool,
    pub max_prompts: Option<usize>,
    pub temperature: f32,
    pub seed: u64,
    pub checks: bool,
    /// A model that grades each distinct output 0-3 after the run.
    pub judge: Option<TargetConfig>,
    pub progress: bool,
    /// The command lines, label and peer versions stored with the run.
    pub record: Record,
    /// Store each output's SHA-256 instead of its text (committed results).
    pub text: TextPolicy,
    pub runs_dir: PathBuf,
}

/// What a stored row keeps of the generated text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextPolicy {
    #[default]
    Full,
    /// Only the SHA-256 (`output_sha256`), which identity checks need.
    HashOnly,
}

impl Plan {
    pub fn new(suites: Vec<Suite>, targets: Vec<TargetConfig>, runs_dir: PathBuf) -> Plan {
        Plan {
            suites,
            targets,
            baseline: None,
            iterations: MIN_ITERATIONS,
            allow_fewer_iterations: false,
            max_prompts: None,
            temperature: 0.0,
            seed: 0,
            checks: true,
            judge: None,
            progress: false,
            record: Record::here(),
            text: TextPolicy::Full,
            runs_dir,
        }
    }

    fn validate(&self) -> Result<()> {
        let floor = if self.allow_fewer_iterations { 1 } else { MIN_ITERATIONS };
        if self.iterations < floor {
            return Err(BenchError::Plan(format!("at least {floor} iterations are needed, got {}", self.iterations)));
        }
        if self.targets.is_empty() || self.suites.is_empty() {
            return Err(BenchError::Plan("need at least one target and one suite".into()));
        }
        let mut names = std::collections::HashSet::new();
        if let Some(t) = self.targets.iter().find(|t| !names.insert(t.name.as_str())) {
            return Err(BenchError::Plan(format!("two targets are named {:?}", t.name)));
        }
        match &self.baseline {
            Some(b) if !names.contains(b.as_str()) => Err(BenchError::Plan(format!("no target named {b:?}"))),
            _ => Ok(()),
        }
    }

    fn prompts(&self) -> impl Iterator<Item = (&Suite, &BenchPrompt)> {
        let k = self.max_prompts.unwrap_or(usize::MAX);
        self.suites.iter().flat_map(move |s| s.prompts.iter().take(k).map(move |p| (s, p)))
    }

    /// Baseline first, so every later row can be checked as it is made.
    fn ordered_targets(&self) -> Vec<TargetConfig> {
        let base = self.baseline.clone().unwrap_or_else(|| self.targets[0].name.clone());
        let mut t = self.targets.clone();
        t.sort_by_key(|c| c.name != base);
        t
    }

    /// Context the longest selected prompt needs, in whole KiB of tokens.
    fn min_ctx(&self) -> u32 {
        let need = self.prompts().map(|(_, p)| p.estimated_tokens() + p.max_tokens as usize).max().unwrap_or(0);
        need.div_ceil(1024) as u32 * 1024
    }
}

/// A configuration whose output differs from the baseline's.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub config: String,
    pub suite: String,
    pub prompt: String,
    pub iteration: u32,
    /// Byte offset of the first difference.
    pub at: usize,
}

#[derive(Debug)]
pub struct Outcome {
    pub run_id: String,
    pub dir: PathBuf,
    pub rows: Vec<Row>,
    pub mismatches: Vec<Mismatch>,
}

pub type Opener<'a> = dyn Fn(&TargetConfig, u32) -> Result<Box<dyn Target>> + 'a;

/// Run the plan against real targets and store the results.
pub fn execute(plan: &Plan) -> Result<Outcome> {
    execute_with(plan, &target::open)
}

/// `execute` with a custom way to open targets (tests use fakes).
pub fn execute_with(plan: &Plan, open: &Opener) -> Result<Outcome> {
    plan.validate()?;
    let targets = plan.ordered_targets();
    let meta = make_meta(plan, &targets);
    let bar = progress_bar(plan, targets.len());
    let mut state = State { base: targets[0].name.clone(), ..State::default() };
    for group in load_groups(&targets) {
        let names: Vec<&str> = group.iter().map(|c| c.name.as_str()).collect();
        bar.set_message(names.join(" + "));
        let load = TargetConfig::load_for(&group).ok_or(BenchError::Plan("empty target group".into()))?;
        // Dropped at the end of each pass: one model in memory at a time.
        let t = open(if group.len() == 1 { group[0] } else { &load }, plan.min_ctx())?;
        warm_up(plan, t.as_ref());
        bar.inc(group.len() as u64);
        if let [cfg] = group[..] {
            measure(plan, cfg, t.as_ref(), &mut state, &bar);
        } else {
            measure_interleaved(plan, &group, t.as_ref(), &mut state, &bar);
        }
    }
    if let Some(j) = &plan.judge {
        bar.set_message(format!("judge {}", j.name));
        let judge = open(j, plan.min_ctx().max(8192))?;
        let prompts: Vec<(&str, &BenchPrompt)> = plan.prompts().map(|(s, p)| (s.suite.as_str(), p)).collect();
        crate::judge::grade(judge.as_ref(), &prompts, &mut state.rows);
    }
    bar.finish_and_clear();
    let stored: Vec<Row> = match plan.text {
        TextPolicy::Full => state.rows.clone(),
        TextPolicy::HashOnly => state.rows.iter().cloned().map(Row::without_text).collect(),
    };
    let dir = store::commit(&plan.runs_dir, &meta, &stored, state.mismatches.len())?;
    Ok(Outcome { run_id: meta.run_id, dir, rows: state.rows, mismatches: state.mismatches })
}

#[derive(Default)]
struct State {
    base: String,
    rows: Vec<Row>,
    mismatches: Vec<Mismatch>,
    /// The baseline's first output per (suite, prompt).
    reference: HashMap<(String, String), String>,
    scores: HashMap<(String, String, String), Score>,
}

fn progress_bar(plan: &Plan, n_targets: usize) -> ProgressBar {
    let per_target = 1 + plan.prompts().count() as u64 * u64::from(plan.iterations);
    let bar = ProgressBar::with_draw_target(Some(per_target * n_targets as u64), ProgressDrawTarget::stderr());
    if !plan.progress {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg} (eta {eta})") {
        bar.set_style(style);
    }
    bar
}

/// One short generation whose numbers are thrown away: it pages the
/// weights in and warms the caches so the first measured prompt is fair.
fn warm_up(plan: &Plan, t: &dyn Target) {
    if let Some((_, p)) = plan.prompts().next() {
        let messages = p.chat();
        let req = Request { max_tokens: p.max_tokens.min(32), seed: 0, ..request(plan, p, &messages) };
        if let Err(e) = t.generate(&req) {
            tracing::warn!("warm-up failed: {e}");
        }
    }
}

/// Targets in run order, grouped where one loaded worker can serve them
/// all (in-process configurations differing only in per-request settings).
/// The baseline stays first in the first group.
fn load_groups(targets: &[TargetConfig]) -> Vec<Vec<&TargetConfig>> {
    let mut groups: Vec<Vec<&TargetConfig>> = Vec::new();
    for t in targets {
        match groups.iter_mut().find(|g| g[0].shares_load(t)) {
            Some(g) => g.push(t),
            None => groups.push(vec![t]),
        }
    }
    groups
}

fn request<'a>(plan: &Plan, p: &BenchPrompt, messages: &'a [augur_runtime::ChatMessage]) -> Request<'a> {
    Request { messages, max_tokens: p.max_tokens, temperature: plan.temperature, seed: plan.seed, spec: None }
}

fn measure(plan: &Plan, cfg: &TargetConfig, t: &dyn Target, st: &mut State, bar: &ProgressBar) {
    for (suite, p) in plan.prompts() {
        let messages = p.chat();
        for iteration in 0..plan.iterations {
            let g = t.generate(&request(plan, p, &messages));
            record(plan, st, bar, p, to_row(&suite.suite, &p.id, &cfg.name, iteration, g));
        }
    }
}

/// Several configurations on one worker, alternating request by request
/// (the order rotates each iteration) so that drift in the machine's speed
/// falls on all of them alike. Each prompt is first run once unmeasured,
/// so no configuration pays alone for a cold prompt cache.
fn measure_interleaved(plan: &Plan, group: &[&TargetConfig], t: &dyn Target, st: &mut State, bar: &ProgressBar) {
    for (suite, p) in plan.prompts() {
        let messages = p.chat();
        let spec_of = |c: &TargetConfig| Some(RequestSpec { mode: c.spec, max: c.spec_max });
        if t.warms_prompts() {
            if let Err(e) = t.generate(&Request { spec: spec_of(group[0]), ..request(plan, p, &messages) }) {
                tracing::warn!("warm-up of {} failed: {e}", p.id);
            }
        }
        for iteration in 0..plan.iterations {
            for j in 0..group.len() {
                let cfg = group[(j + iteration as usize) % group.len()];
                let g = t.generate(&Request { spec: spec_of(cfg), ..request(plan, p, &messages) });
                record(plan, st, bar, p, to_row(&suite.suite, &p.id, &cfg.name, iteration, g));
            }
        }
    }
}

fn record(plan: &Plan, st: &mut State, bar: &ProgressBar, p: &BenchPrompt, mut row: Row) {
    if plan.checks {
        score(st, p, &mut row);
    }
    if plan.temperature <= 0.0 {
        identity(st, &mut row, bar);
    }
    st.rows.push(row);
    bar.inc(1);
}

fn to_row(suite: &str, prompt: &str, config: &str, iteration: u32, g: Result<Generation>) -> Row {
    let (g, error) = match g {
        Ok(g) => (g, None),
        Err(e) => (Generation::default(), Some(e.to_string())),
    };
    let acceptance = match (g.drafted, g.accepted) {
        (Some(d), Some(a)) if d > 0 => Some(a as f64 / d as f64),
        _ => None,
    };
    Row {
        suite: suite.into(),
        prompt: prompt.into(),
        config: config.into(),
        iteration,
        ttft_s: g.ttft.as_secs_f64(),
        decode_tps: g.decode_tps(),
        e2e_tps: g.e2e_tps(),
        prompt_tokens: g.prompt_tokens,
        completion_tokens: g.completion_tokens,
        drafted: g.drafted,
        accepted: g.accepted,
        acceptance,
        finish_reason: g.finish_reason,
        identical: None,
        score: None,
        score_detail: None,
        judge: None,
        error,
        output_sha256: Some(store::sha256_hex(g.text.as_bytes())),
        output: g.text,
        metrics: BTreeMap::new(),
    }
}

/// Outputs repeat under greedy decoding: score each distinct one once.
fn score(st: &mut State, p: &BenchPrompt, row: &mut Row) {
    let (Some(check), None) = (&p.check, &row.error) else { return };
    let key = (row.suite.clone(), row.prompt.clone(), row.output.clone());
    let s = st.scores.entry(key).or_insert_with(|| check.score(&row.output));
    row.score = Some(s.score);
    row.score_detail = Some(s.detail.clone());
}

fn identity(st: &mut State, row: &mut Row, bar: &ProgressBar) {
    if row.error.is_some() {
        return;
    }
    let key = (row.suite.clone(), row.prompt.clone());
    let Some(reference) = st.reference.get(&key) else {
        if row.config == st.base {
            st.reference.insert(key, row.output.clone());
            row.identical = Some(true);
        }
        return;
    };
    let same = *reference == row.output;
    row.identical = Some(same);
    if !same {
        let at = reference.bytes().zip(row.output.bytes()).take_while(|(a, b)| a == b).count();
        let m = Mismatch {
            config: row.config.clone(),
            suite: row.suite.clone(),
            prompt: row.prompt.clone(),
            iteration: row.iteration,
            at,
        };
        bar.suspend(|| {
            eprintln!(
                "augur bench: GREEDY MISMATCH: {} differs from baseline {} on {}/{} (iteration {}) at byte {}",
                m.config, st.base, m.suite, m.prompt, m.iteration, m.at
            )
        });
        st.mismatches.push(m);
    }
}

fn make_meta(plan: &Plan, targets: &[TargetConfig]) -> Meta {
    let k = plan.max_prompts.unwrap_or(usize::MAX);
    Meta {
        suites: plan
            .suites
            .iter()
            .map(|s| SuiteRef { name: s.suite.clone(), version: s.version, prompts: s.prompts.len().min(k) })
            .collect(),
        iterations: plan.iterations,
        warmup: 1,
        temperature: plan.temperature,
        judge: plan.judge.clone(),
        ..Meta::now(&plan.record, targets.to_vec(), targets[0].name.clone())
    }
}
