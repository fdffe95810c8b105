//! Greedy identity: every speculation mode gives byte-identical output to
//! plain decoding, on the 1.5B target with the 0.5B draft.

mod common;

use std::path::PathBuf;

use augur_engine::{ChatMessage, ContextParams};
use augur_runtime::{
    Backend, Completion, DraftConfig, DraftPolicy, Event, GenerateRequest, ModelWorker, Prompt, SpecMode, SpecOptions,
    SpecSettings, WorkerConfig,
};

fn model_path(name: &str) -> PathBuf {
    augur_store::Store::open_default().unwrap().ensure(name, false).unwrap()
}

fn worker(policy: DraftPolicy) -> ModelWorker {
    let context = ContextParams { n_ctx: 2048, ..ContextParams::default() };
    let store = augur_store::Store::open_default().unwrap();
    ModelWorker::spawn(WorkerConfig {
        context: context.clone(),
        spec: SpecSettings { mode: SpecMode::Auto, spec_max: 8, policy, ..SpecSettings::default() },
        draft: Some(DraftConfig { path: model_path("qwen2.5-coder-0.5b"), model: Default::default(), context }),
        calibration_dir: store.root().parent().map(|p| p.join("calibration")),
        queue: 4,
        ..WorkerConfig::new("qwen2.5-coder-1.5b", model_path("qwen2.5-coder-1.5b"))
    })
    .expect("worker")
}

/// A worker that verifies draft trees (always, where the suffix trees fork),
/// in the attention layout that makes them exact.
fn tree_worker() -> ModelWorker {
    let store = augur_store::Store::open_default().unwrap();
    let spec = SpecSettings {
        mode: SpecMode::Suffix,
        spec_max: 8,
        policy: DraftPolicy::Always,
        tree: true,
        ..Default::default()
    };
    ModelWorker::spawn(WorkerConfig {
        context: ContextParams { n_ctx: 2048, ..ContextParams::default() },
        spec,
        calibration_dir: store.root().parent().map(|p| p.join("calibration")),
        queue: 4,
        ..WorkerConfig::new("qwen2.5-coder-1.5b", model_path("qwen2.5-coder-1.5b"))
    })
    .expect("worker")
}

fn shared() -> &'static ModelWorker {
    static W: std::sync::OnceLock<ModelWorker> = std::sync::OnceLock::new();
    // Always draft: a cost model that declines to draft would make these
    // tests vacuous on a compute-bound machine.
    W.get_or_init(|| worker(DraftPolicy::Always))
}

fn run(w: &ModelWorker, case: &common::prompts::Case, mode: SpecMode) -> Completion {
    run_with(w, case, mode, augur_sampling::SamplingParams::Greedy)
}

fn run_with(
    w: &ModelWorker,
    case: &common::prompts::Case,
    mode: SpecMode,
    sampling: augur_sampling::SamplingParams,
) -> Completion {
    let mut msgs = Vec::new();
    if let Some(s) = case.system {
        msgs.push(ChatMessage::new("system", s));
    }
    msgs.push(ChatMessage::new("user", case.user.clone()));
    let mut req = GenerateRequest::new(Prompt::Chat(msgs), case.max_tokens);
    req.spec = SpecOptions { mode: Some(mode), ..Default::default() };
    req.sampling = sampling;
    let mut s = w.submit(req).unwrap();
    while let Some(ev) = s.blocking_next() {
        match ev {
            Event::Done(c) => return *c,
            Event::Error(e) => panic!("{}: {e}", case.id),
            _ => {}
        }
    }
    panic!("no completion")
}

#[test]
fn every_mode_matches_plain_decoding() {
    let w = shared();
    let cases = common::prompts::cases();
    assert!(cases.len() >= 20);
    let (mut drafted, mut diverged) = (0u64, Vec::new());
    let (mut eog, mut length) = (0, 0);
    for (i, case) in cases.iter().enumerate() {
        let plain = run(w, case, SpecMode::Off);
        assert_eq!(plain.spec.drafted, 0);
        match plain.finish_reason {
            augur_runtime::FinishReason::Stop => eog += 1,
            _ => length += 1,
        }
        // The draft model's drafts cost the most to make: every other case
        // (`auto`, drafting from all sources, runs on each).
        let modes: &[SpecMode] = if i % 2 == 0 {
            &[SpecMode::Lookup, SpecMode::Draft, SpecMode::Suffix, SpecMode::Auto]
        } else {
            &[SpecMode::Lookup, SpecMode::Suffix, SpecMode::Auto]
        };
        for &mode in modes {
            let got = run(w, case, mode);
            drafted += got.spec.drafted;
            if got.tokens != plain.tokens {
                diverged.push(format!("{} {:?}", case.id, mode));
            }
            assert_eq!(got.finish_reason, plain.finish_reason, "{} {mode:?}", case.id);
        }
    }
    eprintln!("identity: {} prompts, {eog} ended by EOG, {length} by the limit, {drafted} tokens drafted", cases.len());
    assert!(eog > 0 && length > 0, "the set must hit both ends");
    assert!(drafted > 500, "verification must actually run ({drafted} drafted)");
    assert!(diverged.is_empty(), "outputs differ from plain decoding: {diverged:?}");
}

#[test]
fn tree_verification_matches_plain_decoding() {
    let w = tree_worker();
    let cases = common::prompts::cases();
    let (mut trees, mut diverged) = (0u64, Vec::new());
    // Every other case, for CI time: `every_mode_matches_plain_decoding`
    // covers them all without trees.
    for case in cases.iter().step_by(2) {
        let plain = run(&w, case, SpecMode::Off);
        let got = run(&w, case, SpecMode::Suffix);
        trees += got.spec.tree.steps;
        if got.tokens != plain.tokens {
            diverged.push(case.id);
        }
        assert_eq!(got.finish_reason, plain.finish_reason, "{}", case.id);
    }
    // At T > 0 a node is accepted iff it is the target's own seeded sample
    // at that position, so a seed gives plain sampling's text in this
    // worker too (trees where the sampled text forks).
    let sampled = augur_sampling::SamplingParams::Sample {
        temperature: 0.8,
        top_k: Some(40),
        top_p: Some(0.95),
        min_p: None,
        seed: 5,
    };
    for case in &cases[..4] {
        let plain = run_with(&w, case, SpecMode::Off, sampled.clone());
        let got = run_with(&w, case, SpecMode::Suffix, sampled.clone());
        trees += got.spec.tree.steps;
        if got.tokens != plain.tokens {
            diverged.push(case.id);
        }
    }
    eprintln!(
        "tree identity: {} prompts, {trees} trees verified, {} diverged",
        cases.len().div_ceil(2),
        diverged.len()
    );
    assert!(diverged.is_empty(), "tree-verified outputs differ from plain decoding: {diverged:?}");
    assert!(trees >= 10, "tree verification must actually run ({trees} trees)");
}

#[test]
fn seeded_sampling_through_the_verifier_is_reproducible() {
    let w = shared();
    let case = &common::prompts::cases()[0];
    let params = |seed| augur_sampling::SamplingParams::Sample {
        temperature: 0.8,
        top_k: Some(40),
        top_p: Some(0.95),
        min_p: None,
        seed,
    };
    // Sampling is keyed by output position, so a seed gives one text
    // whatever speculation does.
    let plain = run_with(w, case, SpecMode::Off, params(11));
    for mode in [SpecMode::Lookup, SpecMode::Draft, SpecMode::Auto] {
        let a = run_with(w, case, mode, params(11));
        let b = run_with(w, case, mode, params(11));
        assert!(a.spec.drafted > 0, "{mode:?} drafted nothing");
        assert_eq!(a.tokens, b.tokens, "{mode:?}: same seed, same output");
        assert_eq!(a.tokens, plain.tokens, "{mode:?}: same seed as plain sampling, same output");
    }
    let other = run_with(w, case, SpecMode::Off, params(12));
    assert_ne!(other.tokens, plain.tokens, "another seed should give another text");
}
