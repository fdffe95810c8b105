//! After a speculative generation with many rejections, the KV cache holds
//! exactly the accepted tokens: continuing from it gives the same logits as
//! a fresh plain run over the same tokens, and no cell is orphaned.

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

#[test]
fn cache_after_rejections_equals_a_fresh_plain_run() {
    let model = model();
    let params = ContextParams { n_ctx: 1024, ..ContextParams::default() };
    let mut ctx = Context::new(model.clone(), &params).unwrap();
    let mut batch = Batch::new(params.n_batch as usize, 1).unwrap();
    let settings =
        SpecSettings { mode: SpecMode::Lookup, spec_max: 6, policy: DraftPolicy::Always, ..SpecSettings::default() };
    let mut spec = Speculator::new(settings, None, None).unwrap();
    // Verify in chunks this machine's kernels decode bit-identically.
    let chunk = augur_runtime::invariant_batch(&mut ctx, &mut batch).unwrap();
    assert!(chunk >= 2, "no batch-invariant chunk above 1 on this build");
    spec.set_cost(CostModel::new(vec![0.05; 65]).unwrap(), chunk);
    let text = model
        .render_chat(
            &[ChatMessage::new("user", "Write a short story about a robot learning to paint, in plain prose.")],
            true,
        )
        .unwrap();
    let prompt = model.tokenize(&text, true, true).unwrap();
    let mut req = GenerateRequest::new(Prompt::Tokens(prompt.clone()), 160);
    req.spec = SpecOptions { mode: Some(SpecMode::Lookup), max: Some(6), ..Default::default() };
    let mut prefix = augur_runtime::PrefixCache::new(batch.capacity());
    let done = generate(&mut ctx, &mut batch, &mut spec, &mut prefix, &prompt, &req, &mut Discard).unwrap();
    let rejected = done.spec.drafted - done.spec.accepted;
    assert!(rejected >= 20, "want many rejections, got {rejected} of {}", done.spec.drafted);
    let gen = &done.tokens;
    assert!(gen.len() >= 100, "{}", gen.len());

    // No orphaned cells: the cache holds the prompt and every generated
    // token but the last (which is pending), and nothing past it.
    let in_cache = prompt.len() + gen.len() - 1;
    assert_eq!(ctx.kv_pos_min(0), Some(0));
    assert_eq!(ctx.kv_pos_max(0), Some(in_cache as i32 - 1));

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
    assert!(continued == reference, "logits differ after speculative generation");
}
