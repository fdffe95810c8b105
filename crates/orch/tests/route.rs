//! Routing decisions on a table of example requests, with the example
//! config and the real front door model (gemma-3-270m) as the classifier.

mod common;

use std::sync::Arc;

use augur_orch::classify::ModelClassifier;
use augur_orch::{Classify, DecidedBy, RouteInput, Router};
use augur_runtime::ModelParams;

use DecidedBy::{Classifier, Default, Hint, Named, Rule};

/// (model field, last user message, expected role, expected deciding step)
const TABLE: &[(Option<&str>, &str, &str, DecidedBy)] = &[
    // The request's `model` names a role or a model.
    (Some("coder"), "hello", "coder", Named),
    (Some("architect"), "Write a sorting function.", "architect", Named),
    (Some("qwen2.5-coder-0.5b"), "hi", "worker", Named),
    (Some("qwen2.5-coder-1.5b"), "hi", "coder", Named),
    (Some("gemma-3-270m"), "Write a haiku.", "frontdoor", Named),
    // Explicit hints.
    (None, "@architect how should I split this monolith?", "architect", Hint),
    (Some("auto"), "@coder: what is 2+2?", "coder", Hint),
    (Some("auto"), "@worker summarise the plot of Hamlet", "worker", Hint),
    (Some("auto"), "@nobody please fix the bug", "coder", Rule),
    // Input size.
    (Some("auto"), LONG, "ingest_long_context", Rule),
    // Keywords and regexes.
    (Some("auto"), "What is the best architecture for a chat app with a million users?", "architect", Rule),
    (Some("auto"), "Compare microservices and a modular monolith.", "architect", Rule),
    (Some("auto"), "How do I make this scalable to many regions?", "architect", Rule),
    (Some("auto"), "Write a Python function that reverses a string.", "coder", Rule),
    (Some("auto"), "There is a bug in my Rust code, it does not compile.", "coder", Rule),
    (Some("auto"), "How do I write a regex for email addresses?", "coder", Rule),
    (Some("auto"), "Explain this SQL query to me", "coder", Rule),
    (Some("auto"), "My program crashes with a segfault", "coder", Rule),
    (Some("auto"), "Write unit test cases for the parser", "coder", Rule),
    (Some("auto"), "hello", "frontdoor", Rule),
    (Some("auto"), "Thanks!", "frontdoor", Rule),
    (Some("auto"), "good morning", "frontdoor", Rule),
    // Code in the message.
    (Some("auto"), "Why is this slow?\n```\nfor i in range(n):\n    total += i\n```", "coder", Rule),
    (Some("auto"), "What does this do?\nint main() {\n  return 0;\n}", "coder", Rule),
    (Some("auto"), "Fix it:\nlet x = 5;\nlet y = x + 1;", "coder", Rule),
    // Keywords match whole words only: "latest" has no "test", "apiary" no "api".
    (None, "Tell me about the apiary on the hill", "worker", Classifier),
    // Nothing matches: the front door's classifier decides.
    (Some("auto"), "Summarise the causes of the French Revolution in three sentences.", "worker", Classifier),
    (Some("auto"), "What is the capital of France?", "worker", Classifier),
    (None, "Translate 'good night' into German.", "worker", Classifier),
    (Some("auto"), "Give me three tips for a job interview.", "worker", Classifier),
    (Some("auto"), "Write a short poem about autumn leaves.", "worker", Classifier),
    (Some("auto"), "Implement quicksort in C++ with templates.", "coder", Classifier),
    (Some("auto"), "Design the database schema for an online shop", "architect", Classifier),
];

/// Stands for a 20,000-character log (over the `long input` rule's 12,000).
const LONG: &str = "<long log>";

fn long_log() -> String {
    (0..400).map(|i| format!("2025-01-01 12:00:{:02} worker {i} finished job ok\n", i % 60)).collect()
}

fn classifier() -> Arc<ModelClassifier> {
    let path = common::model_path("gemma-3-270m");
    Arc::new(ModelClassifier::load(&path, &ModelParams::default(), None).expect("classifier"))
}

fn router(with_classifier: bool) -> Router {
    router_with(with_classifier.then(classifier))
}

fn router_with(classifier: Option<Arc<ModelClassifier>>) -> Router {
    let cfg = Arc::new(common::example());
    Router::new(cfg, classifier.map(|c| c as Arc<dyn Classify>))
}

/// Calibrated scores closer than this are a near-tie: kernels differ between
/// CPUs (AVX2 against AVX-512 here), and so do logits by a few tenths.
const NEAR_TIE: f32 = 0.25;

#[test]
fn routing_table() {
    assert!(TABLE.len() >= 30);
    let long = long_log();
    assert!(long.chars().count() > 12_000);
    let c = classifier();
    let r = router_with(Some(c.clone()));
    let (mut wrong, mut near_ties) = (Vec::new(), Vec::new());
    for (i, (model, text, role, by)) in TABLE.iter().enumerate() {
        let text = if *text == LONG { long.as_str() } else { text };
        let d = r.decide(RouteInput { model: *model, text }).expect("decides");
        println!("{i:2} {:<20} {:<10?} {}", d.role, d.by, d.why);
        if d.role == *role && d.by == *by {
            continue;
        }
        let case = format!("#{i} {text:.60?}: got {} by {:?} ({}), want {role} by {by:?}", d.role, d.by, d.why);
        // The classifier may pick the other side of a near-tie, nothing else.
        let score = |scores: &[(String, f32)], name: &str| scores.iter().find(|(n, _)| n == name).map(|s| s.1);
        let tie = (d.by == Classifier && *by == Classifier)
            .then(|| c.classify(text, &r.candidates()).expect("classifies").scores)
            .and_then(|s: Vec<(String, f32)>| Some((score(&s, &d.role)? - score(&s, role)?).abs()))
            .is_some_and(|gap| gap < NEAR_TIE);
        if tie {
            near_ties.push(case)
        } else {
            wrong.push(case)
        }
    }
    println!("{} near-tie(s) decided the other way: {near_ties:#?}", near_ties.len());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(near_ties.len() <= 2, "too many near-ties to trust the classifier: {near_ties:#?}");
}

#[test]
fn classification_is_deterministic() {
    let r = router(true);
    let input = RouteInput { model: None, text: "Plan a week of vegetarian dinners." };
    let first = r.decide(input).unwrap();
    for _ in 0..2 {
        let again = r.decide(input).unwrap();
        assert_eq!((again.role.as_str(), again.why.as_str()), (first.role.as_str(), first.why.as_str()));
    }
}

#[test]
fn without_a_classifier_the_default_role_answers() {
    let r = router(false);
    let d = r.decide(RouteInput { model: Some("auto"), text: "What is the capital of France?" }).unwrap();
    assert_eq!((d.role.as_str(), d.by), ("worker", Default));
    assert_eq!(d.chain, vec!["worker", "coder"]);
    let e = r.decide(RouteInput { model: Some("gpt-4"), text: "hi" }).unwrap_err();
    assert!(e.to_string().contains("no role or model named `gpt-4`"), "{e}");
}
