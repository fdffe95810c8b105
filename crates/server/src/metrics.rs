//! Counters and histograms, rendered in the Prometheus text format.
//!
//! Every label set is bounded: routes come from the router's own table (or
//! "unmatched"), status codes are finite, draft sources are names chosen by
//! code, and draft positions are clamped to [`MAX_POSITION`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Positions at or past this one share one series.
pub const MAX_POSITION: usize = 32;

const LATENCY_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram { counts: vec![0; LATENCY_BUCKETS.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, v: f64, n: u64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| v <= b) {
            self.counts[i] += n;
        }
        self.sum += v * n as f64;
        self.count += n;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in LATENCY_BUCKETS.iter().zip(&self.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", self.sum, self.count);
    }
}

/// The server's metrics registry; shared by every handler.
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    ttft: Mutex<Histogram>,
    itl: Mutex<Histogram>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    /// Per draft source: (drafted, accepted).
    spec_sources: Mutex<BTreeMap<String, (u64, u64)>>,
    /// Accepted draft tokens per position in the draft.
    spec_positions: Mutex<BTreeMap<usize, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            ttft: Mutex::new(Histogram::new()),
            itl: Mutex::new(Histogram::new()),
            prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            cached_tokens: AtomicU64::new(0),
            spec_sources: Mutex::default(),
            spec_positions: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the metrics down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    pub fn record_request(&self, route: &str, status: u16) {
        *lock(&self.requests).entry((route.to_string(), status)).or_insert(0) += 1;
    }

    /// Seconds from the request's arrival to its first generated token.
    pub fn observe_ttft(&self, secs: f64) {
        lock(&self.ttft).observe(secs, 1);
    }

    /// `tokens` tokens arrived together `secs` after the previous ones.
    pub fn observe_inter_token(&self, secs: f64, tokens: usize) {
        if tokens > 0 {
            lock(&self.itl).observe(secs / tokens as f64, tokens as u64);
        }
    }

    pub fn add_tokens(&self, prompt: usize, completion: usize, cached: usize) {
        self.prompt_tokens.fetch_add(prompt as u64, Ordering::Relaxed);
        self.completion_tokens.fetch_add(completion as u64, Ordering::Relaxed);
        self.cached_tokens.fetch_add(cached as u64, Ordering::Relaxed);
    }

    /// Draft tokens one source proposed and the target accepted.
    pub fn record_draft_source(&self, source: &str, drafted: u64, accepted: u64) {
        let mut spec = lock(&self.spec_sources);
        let c = spec.entry(source.to_string()).or_default();
        c.0 += drafted;
        c.1 += accepted;
    }

    /// Draft tokens accepted at `position` (0 = first drafted token).
    pub fn record_accepted_at(&self, position: usize, accepted: u64) {
        *lock(&self.spec_positions).entry(position.min(MAX_POSITION)).or_default() += accepted;
    }

    pub fn render(&self, queue_depth: usize, model_loaded: bool) -> String {
        let mut out = String::with_capacity(4096);
        self.render_requests(&mut out);
        let _ = writeln!(out, "# HELP augur_queue_depth Requests waiting for the model worker.");
        let _ = writeln!(out, "# TYPE augur_queue_depth gauge\naugur_queue_depth {queue_depth}");
        let _ = writeln!(out, "# HELP augur_model_loaded 1 once the model is ready.");
        let _ = writeln!(out, "# TYPE augur_model_loaded gauge\naugur_model_loaded {}", u8::from(model_loaded));
        lock(&self.ttft).render(&mut out, "augur_time_to_first_token_seconds", "From request arrival to first token.");
        lock(&self.itl).render(&mut out, "augur_inter_token_latency_seconds", "Time between generated tokens.");
        counter(&mut out, "augur_prompt_tokens_total", "Prompt tokens processed.", &self.prompt_tokens);
        counter(&mut out, "augur_completion_tokens_total", "Tokens generated.", &self.completion_tokens);
        counter(&mut out, "augur_cached_prompt_tokens_total", "Prompt tokens reused from cache.", &self.cached_tokens);
        self.render_spec(&mut out);
        out
    }

    fn render_requests(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP augur_http_requests_total HTTP requests by route and status code.");
        let _ = writeln!(out, "# TYPE augur_http_requests_total counter");
        for ((route, code), n) in lock(&self.requests).iter() {
            let _ = writeln!(out, "augur_http_requests_total{{route=\"{}\",code=\"{code}\"}} {n}", escape(route));
        }
    }

    fn render_spec(&self, out: &mut String) {
        let sources = lock(&self.spec_sources);
        for (name, help, accepted) in [
            ("augur_spec_drafted_tokens_total", "Draft tokens proposed, by draft source.", false),
            ("augur_spec_accepted_tokens_total", "Draft tokens accepted, by draft source.", true),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (source, (d, a)) in sources.iter() {
                let v = if accepted { a } else { d };
                let _ = writeln!(out, "{name}{{source=\"{}\"}} {v}", escape(source));
            }
        }
        let name = "augur_spec_accepted_by_position_total";
        let _ = writeln!(out, "# HELP {name} Draft tokens accepted, by position in the draft (0 = first).");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (pos, n) in lock(&self.spec_positions).iter() {
            let _ = writeln!(out, "{name}{{position=\"{pos}\"}} {n}");
        }
    }
}

fn counter(out: &mut String, name: &str, help: &str, v: &AtomicU64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.record_request("/v1/chat/completions", 200);
        m.record_request("/v1/chat/completions", 200);
        m.observe_ttft(0.2);
        m.observe_inter_token(0.3, 3);
        m.add_tokens(10, 5, 2);
        m.record_draft_source("lookup", 4, 3);
        m.record_accepted_at(100, 2);
        let text = m.render(2, true);
        assert!(text.contains("augur_http_requests_total{route=\"/v1/chat/completions\",code=\"200\"} 2"));
        assert!(text.contains("augur_queue_depth 2"));
        assert!(text.contains("augur_time_to_first_token_seconds_bucket{le=\"0.25\"} 1"));
        assert!(text.contains("augur_inter_token_latency_seconds_count 3"));
        assert!(text.contains("augur_inter_token_latency_seconds_bucket{le=\"0.1\"} 3"));
        assert!(text.contains("augur_completion_tokens_total 5"));
        assert!(text.contains("augur_spec_drafted_tokens_total{source=\"lookup\"} 4"));
        assert!(text.contains("augur_spec_accepted_tokens_total{source=\"lookup\"} 3"));
        assert!(text.contains("augur_spec_accepted_by_position_total{position=\"32\"} 2"));
    }
}
