//! One real in-process run: gemma-3-270m, two prompts, one iteration, two
//! configurations (plain and prompt lookup) that must agree token for token.
//! Skipped when the model is not in the store (set AUGUR_HOME).

use augur_bench::{store, Plan, Suite, TargetConfig};
use augur_runtime::{ModelWorker, WorkerConfig};

#[test]
fn gemma_in_process_smoke() {
    let Ok(s) = augur_store::Store::open_default() else { return };
    if s.resolve("gemma-3-270m").is_err() {
        eprintln!("skipping: gemma-3-270m is not in the store");
        return;
    }
    let yaml = r#"
suite: smoke
version: 1
prompts:
  - id: count
    max_tokens: 24
    messages: [{role: user, content: "Count from 1 to 10, separated by commas."}]
  - id: copy
    max_tokens: 32
    messages: [{role: user, content: "Repeat exactly: the quick brown fox jumps over the lazy dog."}]
"#;
    let suite: Suite = serde_norway::from_str(yaml).expect("suite");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut base = TargetConfig::new("gemma-3-270m");
    base.threads = Some(2);
    base.ctx_size = Some(1024);
    let lookup = TargetConfig { name: "lookup".into(), spec: augur_runtime::SpecMode::Lookup, ..base.clone() };
    let mut plan = Plan::new(vec![suite], vec![base, lookup], dir.path().to_path_buf());
    plan.iterations = 1;
    plan.allow_fewer_iterations = true;
    let out = augur_bench::execute(&plan).expect("run");
    assert_eq!(out.rows.len(), 4);
    for r in &out.rows {
        assert!(r.error.is_none(), "{:?}", r.error);
        assert!(r.completion_tokens > 0 && r.decode_tps > 0.0 && r.ttft_s > 0.0, "{r:?}");
        assert!(r.drafted.is_some());
    }
    assert!(out.mismatches.is_empty(), "{:?}", out.mismatches);
    let run = store::load(dir.path(), &out.run_id).expect("load");
    assert_eq!(run.meta.configs.len(), 2);
    assert!(run.meta.system_info.contains("CPU"), "{}", run.meta.system_info);
}

/// The long-context suite's prompts really are 4k-16k tokens (checked with
/// Qwen2.5's tokenizer, the project's default target family).
#[test]
fn long_context_prompts_are_4k_to_16k_tokens() {
    let Ok(s) = augur_store::Store::open_default() else { return };
    let Ok(path) = s.resolve("qwen2.5-coder-0.5b") else {
        eprintln!("skipping: qwen2.5-coder-0.5b is not in the store");
        return;
    };
    // The worker's model is the engine's, so the bench needs no engine dependency to count tokens.
    let context = augur_runtime::ContextParams { n_ctx: 512, ..Default::default() };
    let worker = ModelWorker::spawn(WorkerConfig { context, ..WorkerConfig::new("qwen", path) }).expect("load");
    let model = worker.model();
    let suites = augur_bench::suite::load_all(&augur_bench::suite::default_dir()).expect("suites");
    let long = suites.iter().find(|s| s.suite == "long_context").expect("long_context");
    for p in &long.prompts {
        let text = model.render_chat(&p.chat(), true).expect("render");
        let n = model.tokenize(&text, false, true).expect("tokenize").len();
        eprintln!("{}: {n} tokens", p.id);
        assert!((4_000..=16_384).contains(&n), "{}: {n} tokens", p.id);
    }
}
