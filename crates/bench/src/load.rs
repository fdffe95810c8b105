//! `bench load`: latency and throughput of a server under 1, 4, 8, ...
//! concurrent clients.
//!
//! Per target and concurrency level, `clients` threads stream chat
//! completions back to back until the level's `requests` are done (prompts
//! from a suite, in turn). A 429 is waited out for its Retry-After and the
//! request retried (and counted), so throughput stays meaningful; a request
//! still refused after `max_wait` is an error. Latency and time to first
//! token are measured from the request's first attempt, as its client
//! would feel them. One row per target and level is stored.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use augur_runtime::ChatMessage;

use crate::config::TargetConfig;
use crate::error::{BenchError, Result};
use crate::meta::{Meta, Record, SuiteRef};
use crate::stats::percentile;
use crate::store::{self, Row, RowKey};
use crate::suite::Suite;
use crate::target::{Endpoint, Generation, Request, Target};

/// Refusals in a row past this end a request even within `max_wait`.
const MAX_RETRIES: u32 = 1000;
/// No server gets to park a client longer than this per 429.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub suite: Suite,
    pub max_prompts: Option<usize>,
    /// Servers to measure, one after the other; each needs `endpoint`.
    pub targets: Vec<TargetConfig>,
    /// Concurrency levels, e.g. 1, 4, 8.
    pub clients: Vec<usize>,
    /// Requests per level, shared among its clients.
    pub requests: usize,
    /// Overrides the prompts' own `max_tokens`.
    pub max_tokens: Option<u32>,
    pub temperature: f32,
    pub seed: u64,
    /// How long one request may keep being refused with 429.
    pub max_wait: Duration,
    pub record: Record,
    pub runs_dir: PathBuf,
}

impl LoadPlan {
    pub fn new(suite: Suite, targets: Vec<TargetConfig>, runs_dir: PathBuf) -> LoadPlan {
        LoadPlan {
            suite,
            max_prompts: None,
            targets,
            clients: vec![1, 4, 8],
            requests: 16,
            max_tokens: None,
            temperature: 0.0,
            seed: 0,
            max_wait: Duration::from_secs(600),
            record: Record::here(),
            runs_dir,
        }
    }

    fn validate(&self) -> Result<()> {
        let err = |m: String| Err(BenchError::Load(m));
        if self.targets.is_empty() {
            return err("need at least one target".into());
        }
        if let Some(t) = self.targets.iter().find(|t| t.endpoint.is_none()) {
            return err(format!("target {:?} has no endpoint=URL: bench load measures servers", t.name));
        }
        if self.clients.is_empty() || self.clients.contains(&0) {
            return err("clients must be one or more counts of at least 1".into());
        }
        let most = self.clients.iter().copied().max().unwrap_or(1);
        if self.requests < most {
            return err(format!("{} requests cannot keep {most} clients busy", self.requests));
        }
        Ok(())
    }

    fn prompts(&self) -> Vec<(Vec<ChatMessage>, u32)> {
        let k = self.max_prompts.unwrap_or(usize::MAX);
        self.suite.prompts.iter().take(k).map(|p| (p.chat(), self.max_tokens.unwrap_or(p.max_tokens))).collect()
    }
}

/// One request as its client saw it.
#[derive(Debug, Clone, PartialEq)]
enum Sample {
    Done { latency: Duration, ttft: Duration, decode: Duration, tokens: usize, retries: u32 },
    Failed { retries: u32 },
}

/// One concurrency level against one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub clients: usize,
    pub requests: usize,
    pub completed: usize,
    pub errors: usize,
    pub retries_429: u32,
    pub completion_tokens: usize,
    pub wall: Duration,
    pub latencies_s: Vec<f64>,
    pub ttfts_s: Vec<f64>,
    /// Decode time and token gaps summed over requests with two or more tokens.
    decode: Duration,
    gaps: usize,
}

impl Level {
    fn of(clients: usize, samples: &[Sample], wall: Duration) -> Level {
        let mut l = Level {
            clients,
            requests: samples.len(),
            completed: 0,
            errors: 0,
            retries_429: 0,
            completion_tokens: 0,
            wall,
            latencies_s: Vec::new(),
            ttfts_s: Vec::new(),
            decode: Duration::ZERO,
            gaps: 0,
        };
        for s in samples {
            match s {
                Sample::Done { latency, ttft, decode, tokens, retries } => {
                    l.completed += 1;
                    l.retries_429 += retries;
                    l.completion_tokens += tokens;
                    l.latencies_s.push(latency.as_secs_f64());
                    l.ttfts_s.push(ttft.as_secs_f64());
                    if *tokens >= 2 {
                        l.decode += *decode;
                        l.gaps += tokens - 1;
                    }
                }
                Sample::Failed { retries } => {
                    l.errors += 1;
                    l.retries_429 += retries;
                }
            }
        }
        l
    }

    /// Completion tokens per second of wall time, all clients together.
    pub fn throughput_tps(&self) -> f64 {
        augur_runtime::tokens_per_sec(self.completion_tokens, self.wall)
    }

    /// Mean gap between tokens, over every gap of every completed request.
    pub fn itl_mean_s(&self) -> Option<f64> {
        (self.gaps > 0).then(|| self.decode.as_secs_f64() / self.gaps as f64)
    }

    /// The stored row's metrics; times in seconds (`_ms` renders them in ms).
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: Option<f64>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        put("clients", Some(self.clients as f64));
        put("requests", Some(self.requests as f64));
        put("completed", Some(self.completed as f64));
        put("errors", Some(self.errors as f64));
        put("retries_429", Some(f64::from(self.retries_429)));
        put("completion_tokens", Some(self.completion_tokens as f64));
        put("wall_s", Some(self.wall.as_secs_f64()));
        put("throughput_tps", Some(self.throughput_tps()));
        put("latency_p50_s", percentile(&self.latencies_s, 50.0));
        put("latency_p95_s", percentile(&self.latencies_s, 95.0));
        put("ttft_p50_s", percentile(&self.ttfts_s, 50.0));
        put("ttft_p95_s", percentile(&self.ttfts_s, 95.0));
        put("itl_mean_s", self.itl_mean_s());
        m
    }
}

#[derive(Debug)]
pub struct LoadOutcome {
    pub run_id: String,
    pub dir: PathBuf,
    /// (target, level) in the order measured.
    pub levels: Vec<(String, Level)>,
}

/// Measure every target at every level and store the run.
pub fn execute_load(plan: &LoadPlan) -> Result<LoadOutcome> {
    plan.validate()?;
    let prompts = plan.prompts();
    if prompts.is_empty() {
        return Err(BenchError::Load("no prompts selected (--max-prompts 0?)".into()));
    }
    let mut levels = Vec::new();
    for t in &plan.targets {
        let endpoint = Endpoint::new(t.endpoint.as_deref().unwrap_or_default(), &t.model);
        // Discarded: pages the weights in, as `bench run`'s warm-up does.
        let _ = one_request(&endpoint, &prompts[0], plan);
        for &c in &plan.clients {
            let level = run_level(&endpoint, &prompts, c, plan);
            eprintln!(
                "augur bench load: {} with {c} client(s): {:.2} tokens/s, {} done, {} error(s), {} 429(s)",
                t.name,
                level.throughput_tps(),
                level.completed,
                level.errors,
                level.retries_429
            );
            levels.push((t.name.clone(), level));
        }
    }
    let rows: Vec<Row> = levels.iter().map(|(name, l)| level_row(&plan.suite.suite, name, l)).collect();
    let meta = Meta {
        suites: vec![SuiteRef { name: plan.suite.suite.clone(), version: plan.suite.version, prompts: prompts.len() }],
        warmup: 1,
        temperature: plan.temperature,
        ..Meta::now(&plan.record, plan.targets.clone(), plan.targets[0].name.clone())
    };
    let dir = store::commit(&plan.runs_dir, &meta, &rows, 0)?;
    Ok(LoadOutcome { run_id: meta.run_id, dir, levels })
}

fn level_row(suite: &str, config: &str, l: &Level) -> Row {
    let key =
        RowKey { suite: suite.into(), prompt: format!("clients={}", l.clients), config: config.into(), iteration: 0 };
    Row::measured(key, l.metrics())
}

/// `clients` threads take request numbers from a shared counter until
/// `plan.requests` are taken; prompt `i % len` for request `i`.
fn run_level(t: &(dyn Target + Sync), prompts: &[(Vec<ChatMessage>, u32)], clients: usize, plan: &LoadPlan) -> Level {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let samples: Vec<Sample> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= plan.requests {
                            return mine;
                        }
                        mine.push(one_request(t, &prompts[i % prompts.len()], plan));
                    }
                })
            })
            .collect();
        // A client thread cannot panic short of a bug; its requests then count as lost.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    let wall = start.elapsed();
    let mut level = Level::of(clients, &samples, wall);
    level.requests = plan.requests;
    level.errors += plan.requests.saturating_sub(samples.len());
    level
}

fn one_request(t: &(dyn Target + Sync), (messages, max_tokens): &(Vec<ChatMessage>, u32), plan: &LoadPlan) -> Sample {
    let req = Request { messages, max_tokens: *max_tokens, temperature: plan.temperature, seed: plan.seed, spec: None };
    let first = Instant::now();
    let mut retries = 0u32;
    loop {
        let attempt = Instant::now();
        match t.generate(&req) {
            Ok(g) => return done(&g, first, attempt, retries),
            Err(BenchError::Busy { retry_after, .. }) => {
                let wait = retry_after.min(MAX_RETRY_AFTER);
                retries += 1;
                if retries > MAX_RETRIES || first.elapsed() + wait > plan.max_wait {
                    return Sample::Failed { retries };
                }
                std::thread::sleep(wait);
            }
            Err(e) => {
                tracing::warn!("load request failed: {e}");
                return Sample::Failed { retries };
            }
        }
    }
}

fn done(g: &Generation, first: Instant, attempt: Instant, retries: u32) -> Sample {
    Sample::Done {
        latency: first.elapsed(),
        ttft: (attempt - first) + g.ttft,
        decode: g.decode,
        tokens: g.completion_tokens,
        retries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_level_summarises_its_samples() {
        let samples = [
            Sample::Done { latency: ms(1000), ttft: ms(100), decode: ms(900), tokens: 10, retries: 0 },
            Sample::Done { latency: ms(3000), ttft: ms(2100), decode: ms(900), tokens: 10, retries: 2 },
            Sample::Done { latency: ms(50), ttft: ms(50), decode: ms(0), tokens: 1, retries: 0 },
            Sample::Failed { retries: 1 },
        ];
        let l = Level::of(4, &samples, ms(4000));
        assert_eq!((l.requests, l.completed, l.errors, l.retries_429), (4, 3, 1, 3));
        assert_eq!(l.completion_tokens, 21);
        assert!((l.throughput_tps() - 21.0 / 4.0).abs() < 1e-9);
        // 18 gaps over 1.8 s: the one-token request has no gap.
        assert!((l.itl_mean_s().expect("itl") - 0.1).abs() < 1e-9);
        let m = l.metrics();
        assert_eq!(m["latency_p50_s"], 1.0);
        assert_eq!(m["latency_p95_s"], 3.0);
        assert_eq!(m["ttft_p50_s"], 0.1);
        assert_eq!(m["clients"], 4.0);
    }

    #[test]
    fn nothing_completed_has_no_percentiles() {
        let l = Level::of(1, &[Sample::Failed { retries: 0 }], ms(10));
        let m = l.metrics();
        assert!(!m.contains_key("latency_p50_s") && !m.contains_key("itl_mean_s"));
        assert_eq!(m["errors"], 1.0);
        assert_eq!(m["throughput_tps"], 0.0);
    }
}
