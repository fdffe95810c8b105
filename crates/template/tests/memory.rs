//! Memory blow-ups must be refused before the huge allocation happens.
//!
//! Rust aborts the process when an allocation fails, so a case that got
//! through would kill this binary or show up in the peak-RSS check below.
//! The cases run one after another in a single test so the peak is ours.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use augur_template::{ChatMessage, ChatTemplate, Limits, RenderOptions, TemplateError};

const CASES: &[(&str, &str)] = &[
    (
        "concat doubling",
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    ),
    (
        "plus doubling",
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    ),
    ("string repetition", "{{ ('a' * 10**10)|length }}"),
    ("folded repetition", "{{ ('a' * 99999999)|length }}"),
    (
        "folded tree of repetitions",
        "{{ ('a' * 30000000 ~ 'a' * 30000000 ~ 'a' * 30000000 ~ 'a' * 30000000)|length }}",
    ),
    (
        "folded repetitions re-evaluated per level",
        "{{ ((((((((('a' * 1000000) ~ 'b') ~ 'b') ~ 'b') ~ 'b') ~ 'b') ~ 'b') ~ 'b') ~ 'b') ~ x }}{{ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ 'a' * 1000000 ~ x }}",
    ),
    (
        "list of big strings",
        "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + ['a' * 10000000 ~ i] %}{% endfor %}{{ ns.l|length }}",
    ),
    (
        "list doubling",
        "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|list|length }}",
    ),
    ("list repetition", "{{ ([1] * 10**12)|length }}"),
    ("batch with fill", "{{ range(10)|batch(10**9, 'x')|list|length }}"),
    ("slice into many groups", "{{ range(10)|slice(10**9)|list|length }}"),
    ("list of a long string", "{% set s = 'x' * 16000000 %}{{ s|list|length }}"),
    ("split method", "{% set s = 'x ' * 8000000 %}{{ s.split()|length }}"),
    ("lines filter", "{% set s = 'x\\n' * 8000000 %}{{ s|lines|length }}"),
    ("split filter", "{% set s = 'x ' * 8000000 %}{{ s|split|list|length }}"),
    ("join", "{{ range(100000)|join('x' * 10000000) }}"),
    ("join method", "{{ ('x' * 10000000).join(range(100000))|length }}"),
    ("replace filter", "{{ ('x' * 1000000)|replace('x', 'y' * 1000) }}"),
    ("replace method", "{{ ('x' * 1000000).replace('x', 'y' * 1000)|length }}"),
    ("format width", "{{ '%999999999s'|format('a') }}"),
    ("center method", "{{ 'a'.center(10**10)|length }}"),
    ("indent", "{{ ('a\\n' * 1000000)|indent(1000) }}"),
    (
        "tojson of wide list",
        "{% set s = 'x' * 10000000 %}{{ [s, s, s, s, s, s, s, s, s, s]|tojson|length }}",
    ),
    (
        "string of wide list",
        "{% set s = 'x' * 10000000 %}{{ [s, s, s, s, s, s, s, s, s, s]|string|length }}",
    ),
    (
        "macro output accumulation",
        "{% macro big() %}{{ 'x' * 10000000 }}{% endmacro %}{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = ns.l + [big()] %}{% endfor %}{{ ns.l|length }}",
    ),
    (
        "upper of big strings kept alive",
        "{% set s = 'x' * 10000000 %}{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = ns.l + [s|upper] %}{% endfor %}{{ ns.l|length }}",
    ),
    (
        "set block capture",
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set c %}{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = c %}{% endfor %}{{ ns.s|length }}",
    ),
];

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn run(source: &'static str) -> Result<String, TemplateError> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let t = ChatTemplate::compile(source, Limits::default());
        let _ = tx.send(t.and_then(|t| t.render(&[ChatMessage::new("user", "hi")], &RenderOptions::default())));
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("did not finish in time: {source}"))
}

#[test]
fn memory_blowups_are_refused_with_bounded_memory() {
    let before = peak_rss_kib();
    for (name, source) in CASES {
        match run(source) {
            Ok(out) => panic!("{name}: rendered {} bytes: {out:.80}", out.len()),
            Err(err) => eprintln!("{name}: {err}"),
        }
        let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
        eprintln!("  peak RSS growth so far: {grown_mib} MiB");
        assert!(grown_mib < 1024, "{name}: peak RSS grew by {grown_mib} MiB");
    }
}
