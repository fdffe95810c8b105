//! Quality checks, sweeps and target parsing.

use augur_bench::check::{extract_json, first_code_block, Check};
use augur_bench::suite::Filler;
use augur_bench::{Sweep, TargetConfig};
use augur_runtime::SpecMode;
use serde_json::json;

#[test]
fn python_check_runs_the_first_block_with_asserts() {
    let good = "Here:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.";
    let bad = "```python\ndef add(a, b):\n    return a - b\n```";
    let check = Check::Python { code: "assert add(2, 3) == 5".into(), timeout_s: Some(10) };
    assert_eq!(check.score(good).score, 1.0);
    let s = check.score(bad);
    assert_eq!(s.score, 0.0);
    assert!(s.detail.contains("AssertionError"), "{}", s.detail);
}

#[test]
fn python_check_times_out() {
    let check = Check::Python { code: "while True: pass".into(), timeout_s: Some(1) };
    assert_eq!(check.score("```python\nx = 1\n```").score, 0.0);
}

#[test]
fn json_schema_subset() {
    let schema = json!({"type": "object", "required": ["tool"], "properties": {
        "tool": {"type": "string", "enum": ["a"]},
        "n": {"type": "array", "items": {"type": "integer"}}}});
    let check = Check::JsonSchema { schema };
    assert_eq!(check.score("sure: {\"tool\": \"a\", \"n\": [1, 2]} ok").score, 1.0);
    assert_eq!(check.score("```json\n{\"tool\": \"a\"}\n```").score, 1.0);
    assert_eq!(check.score("{\"tool\": \"b\"}").score, 0.0);
    assert_eq!(check.score("{\"n\": [1]}").score, 0.0);
    assert_eq!(check.score("{\"tool\": \"a\", \"n\": [1.5]}").score, 0.0);
    assert_eq!(check.score("no json here").score, 0.0);
}

#[test]
fn exact_and_contains() {
    assert_eq!(Check::Exact { answer: "42".into() }.score(" 42\n").score, 1.0);
    assert_eq!(Check::Exact { answer: "42".into() }.score("43").score, 0.0);
    let c = Check::Contains { all: vec!["a".into(), "b".into()], none: vec!["z".into()] };
    assert_eq!(c.score("ab").score, 1.0);
    assert_eq!(c.score("a").score, 0.0);
    assert_eq!(c.score("abz").score, 0.0);
}

#[test]
fn extraction_helpers() {
    assert_eq!(first_code_block("x\n```rust\nfn f() {}\n```\n"), "fn f() {}\n");
    assert_eq!(first_code_block("plain"), "plain");
    assert_eq!(extract_json("[1, 2]"), Some(json!([1, 2])));
}

#[test]
fn targets_parse() {
    let t = TargetConfig::parse("name=fast,model=qwen2.5-coder-1.5b,spec=auto,spec_max=8,threads=2,experts=4").unwrap();
    assert_eq!(t.name, "fast");
    assert_eq!(t.spec, SpecMode::Auto);
    assert_eq!((t.spec_max, t.threads, t.experts), (8, Some(2), Some(4)));
    assert_eq!(TargetConfig::parse("gemma-3-270m").unwrap().model, "gemma-3-270m");
    assert!(TargetConfig::parse("spec=auto").is_err());
    assert!(TargetConfig::parse("model=x,bogus=1").is_err());
    assert!(TargetConfig::parse("model=x,spec=fast").is_err());
    let cold = TargetConfig::parse("model=m,spec=auto,cold=sequence").unwrap();
    assert_eq!(cold.cold, Some(augur_bench::ColdStore::Sequence));
    assert!(TargetConfig::parse("model=m,cold=warm").is_err());
    // A cold target is served by the same processes as another cold one,
    // never by an in-process worker.
    let fresh = TargetConfig::parse("model=m,spec=off,cold=fresh").unwrap();
    assert!(!fresh.shares_load(&TargetConfig::new("m")));
    assert!(fresh.shares_load(&TargetConfig::parse("model=m,spec=lookup,cold=fresh").unwrap()));
}

#[test]
fn sweeps_expand_per_target() {
    let base = vec![TargetConfig::new("m")];
    let s = Sweep::parse("mode=off,lookup,auto").unwrap();
    let t = s.expand(&base).unwrap();
    assert_eq!(t.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["m/mode=off", "m/mode=lookup", "m/mode=auto"]);
    assert_eq!(t[1].spec, SpecMode::Lookup);
    let t = Sweep::parse("spec_max=4,8").unwrap().expand(&t).unwrap();
    assert_eq!(t.len(), 6);
    assert!(Sweep::parse("model=a,b").is_err());
    assert!(Sweep::parse("experts=x").unwrap().expand(&base).is_err());
}

#[test]
fn filler_is_deterministic() {
    let f = Filler { template: "{i}:{r10} {words}|".into(), count: 3, seed: 9 };
    let a = f.expand();
    assert_eq!(a, f.expand());
    assert!(a.starts_with("1:"));
    assert_eq!(a.matches('|').count(), 3);
    assert_ne!(a, Filler { seed: 10, ..f }.expand());
    let code = Filler { template: "d = {'id': {i}}; {unknown}\n".into(), count: 2, seed: 0 };
    assert_eq!(code.expand(), "d = {'id': 1}; {unknown}\nd = {'id': 2}; {unknown}\n");
}
