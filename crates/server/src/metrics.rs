//! Counters and histograms, rendered in the Prometheus text format (0.0.4)
//! by `prometheus-client`.
//!
//! Every label set is bounded: routes come from the router's own table (or
//! "unmatched"), status codes are finite, draft sources are names chosen by
//! code, and draft positions are clamped to [`MAX_POSITION`].

use std::sync::Mutex;

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Positions at or past this one share one series.
pub const MAX_POSITION: usize = 32;

const LATENCY_BUCKETS: [f64; 15] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PositionLabels {
    position: usize,
}

/// The server's metrics registry; shared by every handler.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    queue_depth: Gauge,
    model_loaded: Gauge,
    ttft: Histogram,
    itl: Histogram,
    prompt_tokens: Counter,
    completion_tokens: Counter,
    cached_tokens: Counter,
    spec_drafted: Family<SourceLabels, Counter>,
    spec_accepted: Family<SourceLabels, Counter>,
    /// Accepted draft tokens per position in the draft.
    spec_positions: Family<PositionLabels, Counter>,
    /// The gauges are set just before encoding; one scrape at a time keeps
    /// each response's values its own.
    render_lock: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        // Names without `_total` and help without the final period: the
        // encoder appends both.
        let requests = Family::default();
        registry.register("augur_http_requests", "HTTP requests by route and status code", requests.clone());
        let queue_depth = Gauge::default();
        registry.register("augur_queue_depth", "Requests waiting for the model worker", queue_depth.clone());
        let model_loaded = Gauge::default();
        registry.register("augur_model_loaded", "1 once the model is ready", model_loaded.clone());
        let ttft = Histogram::new(LATENCY_BUCKETS);
        registry.register("augur_time_to_first_token_seconds", "From request arrival to first token", ttft.clone());
        let itl = Histogram::new(LATENCY_BUCKETS);
        registry.register("augur_inter_token_latency_seconds", "Time between generated tokens", itl.clone());
        let prompt_tokens = Counter::default();
        registry.register("augur_prompt_tokens", "Prompt tokens processed", prompt_tokens.clone());
        let completion_tokens = Counter::default();
        registry.register("augur_completion_tokens", "Tokens generated", completion_tokens.clone());
        let cached_tokens = Counter::default();
        registry.register("augur_cached_prompt_tokens", "Prompt tokens reused from cache", cached_tokens.clone());
        let spec_drafted = Family::default();
        registry.register("augur_spec_drafted_tokens", "Draft tokens proposed, by draft source", spec_drafted.clone());
        let spec_accepted = Family::default();
        registry.register(
            "augur_spec_accepted_tokens",
            "Draft tokens accepted, by draft source",
            spec_accepted.clone(),
        );
        let spec_positions = Family::default();
        registry.register(
            "augur_spec_accepted_by_position",
            "Draft tokens accepted, by position in the draft (0 = first)",
            spec_positions.clone(),
        );
        Metrics {
            registry,
            requests,
            queue_depth,
            model_loaded,
            ttft,
            itl,
            prompt_tokens,
            completion_tokens,
            cached_tokens,
            spec_drafted,
            spec_accepted,
            spec_positions,
            render_lock: Mutex::new(()),
        }
    }
}

impl Metrics {
    pub fn record_request(&self, route: &str, status: u16) {
        self.requests.get_or_create(&RequestLabels { route: route.to_string(), code: status }).inc();
    }

    /// Seconds from the request's arrival to its first generated token.
    pub fn observe_ttft(&self, secs: f64) {
        self.ttft.observe(secs);
    }

    /// `tokens` tokens arrived together `secs` after the previous ones.
    pub fn observe_inter_token(&self, secs: f64, tokens: usize) {
        // Each token of the batch counts, at the batch's mean gap.
        let gap = secs / tokens.max(1) as f64;
        for _ in 0..tokens {
            self.itl.observe(gap);
        }
    }

    pub fn add_tokens(&self, prompt: usize, completion: usize, cached: usize) {
        self.prompt_tokens.inc_by(prompt as u64);
        self.completion_tokens.inc_by(completion as u64);
        self.cached_tokens.inc_by(cached as u64);
    }

    /// Draft tokens one source proposed and the target accepted.
    pub fn record_draft_source(&self, source: &str, drafted: u64, accepted: u64) {
        let labels = SourceLabels { source: source.to_string() };
        self.spec_drafted.get_or_create(&labels).inc_by(drafted);
        self.spec_accepted.get_or_create(&labels).inc_by(accepted);
    }

    /// Draft tokens accepted at `position` (0 = first drafted token).
    pub fn record_accepted_at(&self, position: usize, accepted: u64) {
        let labels = PositionLabels { position: position.min(MAX_POSITION) };
        self.spec_positions.get_or_create(&labels).inc_by(accepted);
    }

    pub fn render(&self, queue_depth: usize, model_loaded: bool) -> String {
        // A panic elsewhere must not take the metrics down with it.
        let _one_scrape = self.render_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.queue_depth.set(i64::try_from(queue_depth).unwrap_or(i64::MAX));
        self.model_loaded.set(i64::from(model_loaded));
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
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

    #[test]
    fn keeps_names_types_and_escapes_labels() {
        let m = Metrics::default();
        m.record_request("/a\"b\\c", 404);
        m.record_accepted_at(0, 1);
        let text = m.render(0, false);
        for line in [
            "# HELP augur_http_requests_total HTTP requests by route and status code.",
            "# TYPE augur_http_requests_total counter",
            "augur_http_requests_total{route=\"/a\\\"b\\\\c\",code=\"404\"} 1",
            "# TYPE augur_queue_depth gauge",
            "augur_model_loaded 0",
            "# TYPE augur_time_to_first_token_seconds histogram",
            "augur_time_to_first_token_seconds_bucket{le=\"1\"} 0",
            "augur_time_to_first_token_seconds_bucket{le=\"+Inf\"} 0",
            "# HELP augur_cached_prompt_tokens_total Prompt tokens reused from cache.",
            "# HELP augur_spec_accepted_by_position_total Draft tokens accepted, by position in the draft (0 = first).",
            "# TYPE augur_spec_accepted_by_position_total counter",
            "augur_spec_accepted_by_position_total{position=\"0\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }
}
