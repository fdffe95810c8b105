//! In-process configurations that differ only in per-request settings run
//! on one loaded worker, alternating request by request.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use augur_bench::{execute_with, Generation, Plan, Request, RequestSpec, Result, Suite, Target, TargetConfig};
use augur_runtime::SpecMode;

/// Records the speculation each request asked for.
struct Recorder(Rc<RefCell<Vec<Option<RequestSpec>>>>);

impl Target for Recorder {
    fn generate(&self, req: &Request) -> Result<Generation> {
        self.0.borrow_mut().push(req.spec);
        Ok(Generation {
            text: "same".into(),
            ttft: Duration::from_millis(5),
            total: Duration::from_millis(20),
            decode: Duration::from_millis(15),
            prompt_tokens: 3,
            completion_tokens: 4,
            finish_reason: "stop".into(),
            ..Generation::default()
        })
    }
}

fn suite() -> Suite {
    serde_norway::from_str(
        "suite: tiny\nversion: 1\nprompts:\n  - id: a\n    max_tokens: 8\n    messages: [{role: user, content: hi}]\n  - id: b\n    max_tokens: 8\n    messages: [{role: user, content: ho}]\n",
    )
    .unwrap()
}

fn config(name: &str, spec: SpecMode, threads: Option<i32>) -> TargetConfig {
    TargetConfig { name: name.into(), spec, threads, ..TargetConfig::new("m") }
}

#[test]
fn configurations_sharing_a_load_alternate_on_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let targets = vec![
        config("off", SpecMode::Off, None),
        config("lookup", SpecMode::Lookup, None),
        config("one-thread", SpecMode::Off, Some(1)),
        config("auto", SpecMode::Auto, None),
    ];
    let mut plan = Plan::new(vec![suite()], targets, dir.path().to_path_buf());
    plan.iterations = 3;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let opened = RefCell::new(Vec::new());
    let open = |cfg: &TargetConfig, _ctx: u32| -> Result<Box<dyn Target>> {
        opened.borrow_mut().push(cfg.clone());
        seen.borrow_mut().clear();
        Ok(Box::new(Recorder(seen.clone())))
    };
    let out = execute_with(&plan, &open).unwrap();
    let opened = opened.into_inner();
    // Two loads: off + lookup + auto on one worker (loaded for auto, the
    // most demanding), then the one-thread configuration alone.
    assert_eq!(opened.len(), 2, "{opened:?}");
    assert_eq!((opened[0].spec, opened[0].threads), (SpecMode::Auto, None));
    assert_eq!(opened[1].name, "one-thread");
    assert_eq!(out.rows.len(), 2 * 3 * 4);
    assert!(out.mismatches.is_empty());
    for name in ["off", "lookup", "auto", "one-thread"] {
        assert_eq!(out.rows.iter().filter(|r| r.config == name).count(), 6, "{name}");
    }
    // Group rows alternate, rotating each iteration, the baseline first.
    let group: Vec<(&str, &str, u32)> = out
        .rows
        .iter()
        .filter(|r| r.config != "one-thread")
        .map(|r| (r.prompt.as_str(), r.config.as_str(), r.iteration))
        .collect();
    assert_eq!(
        &group[..9],
        &[
            ("a", "off", 0),
            ("a", "lookup", 0),
            ("a", "auto", 0),
            ("a", "lookup", 1),
            ("a", "auto", 1),
            ("a", "off", 1),
            ("a", "auto", 2),
            ("a", "off", 2),
            ("a", "lookup", 2),
        ]
    );
}

#[test]
fn each_request_carries_its_configurations_speculation() {
    let dir = tempfile::tempdir().unwrap();
    let targets = vec![config("off", SpecMode::Off, None), config("auto", SpecMode::Auto, None)];
    let mut plan = Plan::new(vec![suite()], targets, dir.path().to_path_buf());
    plan.iterations = 3;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let open = |_: &TargetConfig, _: u32| -> Result<Box<dyn Target>> { Ok(Box::new(Recorder(seen.clone()))) };
    execute_with(&plan, &open).unwrap();
    let modes: Vec<Option<SpecMode>> = seen.borrow().iter().map(|s| s.map(|s| s.mode)).collect();
    // The worker's warm-up leaves speculation to the target; then per prompt
    // one unmeasured warm-up of the baseline, then the measured requests.
    let per_prompt = [
        Some(SpecMode::Off),
        Some(SpecMode::Off),
        Some(SpecMode::Auto),
        Some(SpecMode::Auto),
        Some(SpecMode::Off),
        Some(SpecMode::Off),
        Some(SpecMode::Auto),
    ];
    let want: Vec<Option<SpecMode>> = [None].into_iter().chain(per_prompt).chain(per_prompt).collect();
    assert_eq!(modes, want);
}
