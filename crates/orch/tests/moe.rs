//! MoE expert reduction: a role's `acceleration.experts` becomes the
//! metadata override `<arch>.expert_used_count`, which must reach the model
//! llama.cpp loads (read back from it), change what it computes, and make
//! decoding faster as the count falls. The models are synthetic qwen3moe
//! files written to a temporary directory by `augur_gguf::writer`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use augur_engine::{Batch, Context, ContextParams, EngineError, Model, ModelParams};
use augur_gguf::writer::{tiny_qwen3moe, TinyQwen3MoeOpts};
use augur_gguf::MetaOverride;
use augur_orch::registry::plan_instances;
use augur_orch::{check_files, TeamConfig};

/// The tests here time decoding on a small shared machine; running them one
/// at a time keeps one test's model loads out of another's measurements.
static SERIAL: Mutex<()> = Mutex::new(());

const COUNTS: [u32; 4] = [8, 4, 2, 1];

/// 16 experts of 64x64: loads in milliseconds, enough for counts 1..=16.
fn small_opts() -> TinyQwen3MoeOpts {
    TinyQwen3MoeOpts { n_embd: 64, n_layer: 2, n_ff_exp: 64, n_expert: 16, n_expert_used: 8, ..Default::default() }
}

fn write_model(dir: &Path, opts: &TinyQwen3MoeOpts) -> PathBuf {
    let path = dir.join("tiny-qwen3moe.gguf");
    tiny_qwen3moe(opts).write_to(&path).expect("write the synthetic MoE");
    path
}

/// A team with one role per expert count, all on the same model file.
fn team_toml(path: &Path, counts: &[u32]) -> String {
    let mut text = format!("[models.moe]\nsource = {:?}\nrepack = false\n", path.display().to_string());
    for n in counts {
        text.push_str(&format!("[roles.e{n}]\nmodel = \"moe\"\nacceleration = {{ experts = {n} }}\n"));
    }
    text
}

fn identity(src: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(src))
}

/// Loads the model as each role's instance would be loaded.
fn load_roles(path: &Path, counts: &[u32]) -> Vec<(u32, Arc<Model>)> {
    let cfg = TeamConfig::from_toml(&team_toml(path, counts)).expect("team config");
    let paths = check_files(&cfg, &identity).expect("files check");
    let instances = plan_instances(&cfg, &paths).expect("instances");
    let mut out = Vec::new();
    for n in counts {
        let inst = instances.iter().find(|i| i.roles.contains(&format!("e{n}"))).expect("an instance per role");
        out.push((*n, Arc::new(Model::load(&inst.path, &inst.params).expect("load"))));
    }
    out
}

/// One thread: with more, ggml's threads meet at a barrier after every op,
/// and on a busy machine one descheduled thread stalls them all, which
/// swamps the difference being measured.
fn context(model: &Arc<Model>) -> Context {
    let params = ContextParams { n_ctx: 512, threads: 1, threads_batch: 1, ..Default::default() };
    Context::new(model.clone(), &params).expect("context")
}

/// Greedy decoding of `n` tokens after a fixed prompt; returns the tokens
/// and the time of each one-token decode call (prefill excluded).
fn greedy(ctx: &mut Context, n: usize) -> (Vec<i32>, Vec<Duration>) {
    ctx.kv_clear();
    let prompt = ctx.model().tokenize("The quick brown fox jumps over the lazy dog", false, false).expect("tokens");
    let mut batch = Batch::new(prompt.len().max(1), 1).expect("batch");
    for (i, &t) in prompt.iter().enumerate() {
        batch.add(t, i as i32, &[0], i + 1 == prompt.len()).expect("add");
    }
    ctx.decode(&batch).expect("prefill");
    let (mut out, mut times) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let next = augur_engine::sampling::argmax(ctx.logits(batch.len() - 1).expect("logits")).expect("argmax");
        out.push(next);
        batch.clear();
        batch.add(next, (prompt.len() + i) as i32, &[0], true).expect("add");
        let start = Instant::now();
        ctx.decode(&batch).expect("decode");
        times.push(start.elapsed());
    }
    (out, times)
}

#[test]
fn team_expert_counts_reach_the_loaded_model_and_change_its_output() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_model(dir.path(), &small_opts());
    let mut outputs = Vec::new();
    for (n, model) in load_roles(&path, &COUNTS) {
        // The file says 8; llama.cpp must report the role's count.
        assert_eq!(model.info().n_expert, Some(16));
        assert_eq!(model.info().n_expert_used, Some(n), "experts={n}");
        outputs.push((n, greedy(&mut context(&model), 24).0));
    }
    for (i, (a, out_a)) in outputs.iter().enumerate() {
        for (b, out_b) in &outputs[i + 1..] {
            assert_ne!(out_a, out_b, "greedy output with {a} experts equals the one with {b}");
        }
    }
}

/// Median time of one decode step per count, over several interleaved runs.
/// The median ignores the steps during which other processes had the core;
/// interleaving spreads any slow phase over every count instead of one.
fn median_step_times(models: &[(u32, Arc<Model>)], rounds: usize, tokens: usize) -> Vec<(u32, Duration)> {
    let mut ctxs: Vec<(u32, Context)> = models.iter().map(|(n, m)| (*n, context(m))).collect();
    let mut steps: Vec<Vec<Duration>> = vec![Vec::new(); ctxs.len()];
    for _ in 0..rounds {
        for ((_, ctx), steps) in ctxs.iter_mut().zip(&mut steps) {
            steps.extend(greedy(ctx, tokens).1);
        }
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or(Duration::MAX)
    };
    ctxs.iter().map(|(n, _)| *n).zip(steps.into_iter().map(median)).collect()
}

#[test]
fn decode_speed_rises_as_fewer_experts_are_used() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    // The default shape: 4 layers of 64 experts, ~100 MB, experts dominate.
    let path = write_model(dir.path(), &TinyQwen3MoeOpts::default());
    let models = load_roles(&path, &COUNTS);
    let times = median_step_times(&models, 5, 64);
    let tps: Vec<(u32, f64)> = times.iter().map(|(n, t)| (*n, 1.0 / t.as_secs_f64())).collect();
    eprintln!("decode tokens/s per expert count: {tps:?}");
    let speed = |n: u32| tps.iter().find(|(m, _)| *m == n).map_or(0.0, |(_, s)| *s);
    // Generous margins (about 3x and 1.3x to 1.6x per halving were measured):
    // the ratios are taken within one run, on a two-core machine shared with
    // other work.
    assert!(speed(1) >= 1.5 * speed(8), "1 expert is not 1.5x faster than 8: {tps:?}");
    for pair in COUNTS.windows(2) {
        let (more, fewer) = (pair[0], pair[1]);
        assert!(speed(fewer) >= 1.05 * speed(more), "{fewer} experts are not faster than {more}: {tps:?}");
    }
}

#[test]
fn invalid_expert_counts_are_refused_with_a_clear_message() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_model(dir.path(), &small_opts());
    // Zero is refused by the config check itself.
    let e = TeamConfig::from_toml(&team_toml(&path, &[0])).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("roles.e0.acceleration.experts") && e.contains("at least 1"), "{e}");
    // More than the file's 16 experts is refused once the file is opened.
    let cfg = TeamConfig::from_toml(&team_toml(&path, &[17])).expect("syntactically valid");
    let e = check_files(&cfg, &identity).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("roles.e17.acceleration.experts") && e.contains("exceeds"), "{e}");
    // The engine refuses them too, before llama.cpp (which would abort).
    for bad in ["0", "17", "-1"] {
        let o = MetaOverride::parse(&format!("qwen3moe.expert_used_count=int:{bad}")).expect("override");
        let params = ModelParams { overrides: vec![o], ..Default::default() };
        match Model::load(&path, &params) {
            Err(EngineError::Invalid { source, .. }) => {
                assert!(source.to_string().contains("qwen3moe.expert_used_count"), "{source}")
            }
            Err(other) => panic!("experts={bad}: unexpected error {other}"),
            Ok(_) => panic!("experts={bad} was accepted"),
        }
    }
}

/// The instances planned for `roles` over one small MoE model `moe`.
fn instances_of_roles(roles: &str) -> Vec<augur_orch::registry::InstancePlan> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_model(dir.path(), &small_opts());
    let text = format!("[models.moe]\nsource = {:?}\nrepack = false\n{roles}", path.display().to_string());
    let cfg = TeamConfig::from_toml(&text).expect("team config");
    plan_instances(&cfg, &check_files(&cfg, &identity).expect("files")).expect("instances")
}

/// Roles on one model share an instance unless they load it differently:
/// trees run another attention layout, so a tree role gets its own.
#[test]
fn a_tree_role_gets_its_own_instance() {
    let instances = instances_of_roles(
        "[roles.a]\nmodel = \"moe\"\n[roles.b]\nmodel = \"moe\"\n\
         [roles.t]\nmodel = \"moe\"\nacceleration = { spec_tree = true }\n",
    );
    assert_eq!(instances.len(), 2, "{:?}", instances.iter().map(|i| &i.key).collect::<Vec<_>>());
    let tree = instances.iter().find(|i| i.roles == ["t"]).expect("the tree role alone");
    assert!(tree.spec_tree);
    assert!(instances.iter().any(|i| i.roles.len() == 2 && !i.spec_tree));
}

/// Suffix tuning is a worker setting, so a role that changes it gets its
/// own instance and the worker is built with it.
#[test]
fn a_suffix_tuned_role_gets_its_own_instance() {
    let d = augur_runtime::SuffixTuning::default();
    let instances = instances_of_roles(&format!(
        "[roles.a]\nmodel = \"moe\"\n[roles.s]\nmodel = \"moe\"\nacceleration = {{ suffix_factor = 1.0 }}\n\
         [roles.d]\nmodel = \"moe\"\nacceleration = {{ suffix_min_prob = {:?}, suffix_factor = {:?} }}\n",
        d.min_token_prob, d.spec_factor
    ));
    assert_eq!(instances.len(), 2, "{:?}", instances.iter().map(|i| &i.key).collect::<Vec<_>>());
    let tuned = instances.iter().find(|i| i.roles == ["s"]).expect("the tuned role alone");
    let spec = augur_orch::registry::worker_config(tuned, 1, None).spec;
    assert_eq!(spec.suffix.spec_factor, 1.0);
    assert_eq!(spec.suffix.min_token_prob, d.min_token_prob);
    let plain = instances.iter().find(|i| i.roles == ["a", "d"]).expect("explicit defaults share the plain instance");
    assert_eq!(augur_orch::registry::worker_config(plain, 1, None).spec.suffix, d);
}
