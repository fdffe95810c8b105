//! After a speculative generation with many rejections, the KV cache holds
//! exactly the accepted tokens: continuing from it gives the same logits as
//! a fresh plain run over the same tokens, and no cell is orphaned; the
//! same after tree verification, whose rejected branches sit among the
//! accepted cells until the request ends. Also: the split prefill's
//! decode context, fed a prompt prefilled elsewhere, decodes like a single
//! context.

use std::sync::Arc;

use augur_engine::{Batch, ChatMessage, Context, ContextParams, Model, ModelParams};
use augur_runtime::generate::{prefill, Sink};
use augur_runtime::speculate::{generate, Speculator};
use augur_runtime::{DraftPolicy, Event, GenerateRequest, Prompt, SpecMode, SpecOptions, SpecSettings};
use augur_spec::CostModel;

struct Discard;

impl Sink for Discard {
    fn send(&mut self, _: Event) -> bool {
        true
    }
    fn is_closed(&self) -> bool {
        false
    }
}

fn model() -> Arc<Model> {
    let path = augur_store::Store::open_default().unwrap().ensure("qwen2.5-coder-0.5b", false).unwrap();
    Arc::new(Model::load(&path, &ModelParams::default()).unwrap())
}

/// Generates greedily in `mode` (always drafting), then checks the cache
/// holds exactly the accepted tokens and continues like a fresh plain run.
/// Returns the completion and the largest logit difference to the fresh run
/// (printed, so a failure says how far off it is).
fn check_cache(mode: SpecMode, tree: bool, user: &str, max_tokens: u32) -> (augur_runtime::Completion, f32) {
    let model = model();
    let seqs = 1 + augur_spec::TREE_GRAVEYARD_SEQ as u32;
    // What a worker runs (see `worker::load`): prompts prefilled in a
    // second context, decoding and verification in this one.
    let params = ContextParams { n_ctx: 1024, n_seq_max: seqs, split_prefill: true, ..ContextParams::default() };
    let mut ctx = Context::new(model.clone(), &params).unwrap();
    let mut batch = Batch::new(params.n_batch as usize, seqs as usize).unwrap();
    let settings = SpecSettings { mode, spec_max: 6, policy: DraftPolicy::Always, tree, ..SpecSettings::default() };
    let mut spec = Speculator::new(settings, None, None).unwrap();
    // Verify in chunks this machine's kernels decode bit-identically.
    let chunk = augur_runtime::invariant_batch(&mut ctx, &mut batch).unwrap();
    assert!(chunk >= 2, "no batch-invariant chunk above 1 on this build");
    spec.set_cost(CostModel::new(vec![0.05; 65]).unwrap(), chunk);
    let text = model.render_chat(&[ChatMessage::new("user", user)], true).unwrap();
    let prompt = model.tokenize(&text, true, true).unwrap();
    let mut req = GenerateRequest::new(Prompt::Tokens(prompt.clone()), max_tokens);
    req.spec = SpecOptions { mode: Some(mode), max: Some(6), ..Default::default() };
    let mut prefix = augur_runtime::PrefixCache::new(batch.capacity(), batch.capacity());
    let done = generate(&mut ctx, &mut batch, &mut spec, &mut prefix, &prompt, &req, &mut Discard).unwrap();
    let gen = &done.tokens;
    assert!(gen.len() >= 100, "{}", gen.len());

    // No orphaned cells: the cache holds the prompt and every generated
    // token but the last (which is pending), nothing past it, and no
    // branch sequence of a verified tree holds anything.
    let in_cache = prompt.len() + gen.len() - 1;
    assert_eq!(ctx.kv_pos_min(0), Some(0));
    assert_eq!(ctx.kv_pos_max(0), Some(in_cache as i32 - 1));
    for s in 1..seqs as i32 {
        assert_eq!(ctx.kv_pos_max(s), None, "branch sequence {s} left cells behind");
    }

    // Continue: decode the pending token on top of the speculative cache.
    batch.clear();
    batch.add(*gen.last().unwrap(), in_cache as i32, &[0], true).unwrap();
    ctx.decode(&batch).unwrap();
    let continued = ctx.logits(0).unwrap().to_vec();

    // Fresh plain run over the same tokens, one at a time after the prompt.
    let mut fresh = Context::new(model.clone(), &params).unwrap();
    prefill(&mut fresh, &mut batch, &prompt, 0).unwrap();
    for (i, &t) in gen.iter().enumerate() {
        batch.clear();
        batch.add(t, (prompt.len() + i) as i32, &[0], true).unwrap();
        fresh.decode(&batch).unwrap();
    }
    let reference = fresh.logits(0).unwrap();
    let diff = continued.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("{mode:?} (tree {tree}): largest logit difference to a fresh plain run {diff}");
    (done, diff)
}

#[test]
fn cache_after_rejections_equals_a_fresh_plain_run() {
    let user = "Write a short story about a robot learning to paint, in plain prose.";
    let (done, diff) = check_cache(SpecMode::Lookup, false, user, 160);
    assert_eq!(diff, 0.0, "logits differ after speculative generation");
    let rejected = done.spec.drafted - done.spec.accepted;
    assert!(rejected >= 20, "want many rejections, got {rejected} of {}", done.spec.drafted);
}

#[test]
fn cache_after_tree_verification_equals_a_fresh_plain_run() {
    let user = "Write Python functions add, subtract, multiply, divide, power and modulo, each taking a and b, \
                each with a one-line docstring and a doctest.";
    let (done, diff) = check_cache(SpecMode::Suffix, true, user, 200);
    let t = &done.spec.tree;
    assert!(t.steps >= 5, "want tree verification steps, got {}", t.steps);
    assert!(t.drafted - t.accepted >= 20, "want rejected branches, got {} of {}", t.drafted - t.accepted, t.drafted);
    assert_eq!(diff, 0.0, "logits differ after tree verification");
}

/// The split prefill carries the prompt's cells into the decode context by
/// converting llama.cpp's state (values re-laid out, f16 to bf16). A wrong
/// conversion leaves the decode context attending to garbage: its greedy
/// choices, fed the same tokens, would stop matching a context that
/// prefilled and decodes on its own. Rounding values to bf16 may flip a
/// near tie, never most of them.
#[test]
fn split_prefill_decodes_what_a_single_context_decodes() {
    let model = model();
    let text = model
        .render_chat(&[ChatMessage::new("user", "Explain what a hash map is, then write one in Rust.")], true)
        .unwrap();
    let prompt = model.tokenize(&text, true, true).unwrap();
    let single = ContextParams { n_ctx: 1024, ..ContextParams::default() };
    let mut split = Context::new(model.clone(), &ContextParams { split_prefill: true, ..single.clone() }).unwrap();
    let mut alone = Context::new(model.clone(), &single).unwrap();
    assert!(split.splits_prefill());
    let mut batch = Batch::new(single.n_batch as usize, 1).unwrap();
    let greedy = |ctx: &Context, i: usize| augur_engine::sampling::argmax(ctx.logits(i).unwrap()).unwrap();
    let last = prefill(&mut split, &mut batch, &prompt, 0).unwrap();
    // Until the decode context runs, its sequence 0 is the prefill context's.
    assert_eq!(split.kv_pos_max(0), Some(prompt.len() as i32 - 1));
    let mut tokens = vec![greedy(&split, last)];
    let last = prefill(&mut alone, &mut batch, &prompt, 0).unwrap();
    assert_eq!(greedy(&alone, last), tokens[0], "both prefill on the same kernels");
    let mut agree = 0;
    for i in 0..48 {
        let at = (prompt.len() + i) as i32;
        let mut next = [0; 2];
        for (ctx, out) in [&mut split, &mut alone].into_iter().zip(&mut next) {
            batch.clear();
            batch.add(tokens[i], at, &[0], true).unwrap();
            ctx.decode(&batch).unwrap();
            *out = greedy(ctx, 0);
        }
        agree += usize::from(next[0] == next[1]);
        tokens.push(next[0]);
    }
    eprintln!("greedy agreement, split against single context: {agree}/48");
    assert!(agree >= 44, "the decode context agrees with a single context at only {agree} of 48 positions");
    assert_eq!(split.kv_pos_max(0), Some(prompt.len() as i32 + 47));
}
