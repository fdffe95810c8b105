//! The suffix drafter on agent-style repetitive text, and learning across
//! requests through the shared global tree.

use std::sync::{Arc, RwLock};

use augur_spec::suffix::OUTPUT_START;
use augur_spec::{
    Draft, DraftSourceId, Drafter, GlobalSuffixTree, SharedGlobal, SuffixConfig, SuffixDrafter, SuffixOrigin, Token,
};

/// `{"name": "get_weather", "arguments": {"city": "<city>", "unit": "c"}}`
/// as token ids: fixed structure with one varying slot.
fn tool_call(city: Token) -> Vec<Token> {
    let mut t = vec![100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111];
    t.extend([city, 112, 113, 114, 115, 116, 117, 118]);
    t
}

fn shared() -> SharedGlobal {
    Arc::new(RwLock::new(GlobalSuffixTree::new(10_000, 64)))
}

#[test]
fn repeated_template_is_continued() {
    let mut d = SuffixDrafter::new(SuffixConfig::default(), None).unwrap();
    assert_eq!(d.source(), DraftSourceId::Suffix);
    let mut context: Vec<Token> = vec![1, 2, 3];
    for city in [7, 8, 9] {
        context.extend(tool_call(city));
        context.push(50);
        d.observe(&context);
    }
    // The fourth call is under way up to its varying slot.
    let call = tool_call(10);
    context.extend(&call[..6]);
    let mut draft = Draft::default();
    d.propose(&context, 16, &mut draft);
    assert_eq!(draft.tokens()[..6], call[6..12]);
    let last = d.last_draft();
    assert!(last.score > 5.0, "score {}", last.score);
    assert_eq!(last.tokens, draft.tokens());
    // The cost model's k caps the draft.
    d.propose(&context, 3, &mut draft);
    assert_eq!(draft.tokens(), &call[6..9]);
    // A never-seen slot value matches nothing; a few tokens past it the
    // match (and with it the budget) has grown back.
    context.extend(&call[6..13]);
    d.propose(&context, 16, &mut draft);
    assert!(draft.is_empty());
    context.extend(&call[13..17]);
    d.propose(&context, 16, &mut draft);
    assert_eq!(draft.tokens(), &[116, 117, 118, 50]);
    let tree = d.propose_tree(&context, 16);
    assert_eq!(tree.best_path(), draft.tokens());
    assert!(tree.score >= d.last_draft().score);
}

#[test]
fn second_request_benefits_from_first() {
    let global = shared();
    let output: Vec<Token> = (500..540).collect();
    let mut first = SuffixDrafter::new(SuffixConfig::default(), Some(Arc::clone(&global))).unwrap();
    let prompt: Vec<Token> = vec![1, 2, 3, 4];
    let mut context = prompt.clone();
    context.extend(&output);
    first.observe(&context);
    first.finish_request(&output).unwrap();
    first.reset();
    // Only the output is stored (after the start marker), not the prompt.
    assert_eq!(global.read().unwrap().stored_tokens(), output.len() + 1);

    let mut second = SuffixDrafter::new(SuffixConfig::default(), Some(global)).unwrap();
    let mut context: Vec<Token> = vec![9, 9, 8];
    context.extend(&output[..10]);
    let mut draft = Draft::default();
    second.propose(&context, 64, &mut draft);
    // Budget = match length (10) with the default factor.
    assert_eq!(draft.tokens(), &output[10..20]);
    let tree = second.propose_tree(&context, 64);
    assert_eq!(tree.best_path(), &output[10..20]);

    // Without the global tree there is nothing to go on.
    let mut alone = SuffixDrafter::new(SuffixConfig::default(), None).unwrap();
    alone.propose(&context, 64, &mut draft);
    assert!(draft.is_empty());
}

/// A later output is drafted from its first token: the global tree holds
/// outputs after a start marker, and a request's context is matched there
/// from where its output starts, not across its prompt.
#[test]
fn outputs_are_drafted_from_their_start() {
    let global = shared();
    let output: Vec<Token> = vec![700, 701, 702, 703, 704, 705, 2];
    let mut first = SuffixDrafter::new(SuffixConfig::default(), Some(Arc::clone(&global))).unwrap();
    first.begin_output(3);
    first.finish_request(&output).unwrap();
    let stored: Vec<Vec<Token>> = global.read().unwrap().sequences().map(<[Token]>::to_vec).collect();
    assert_eq!(stored, vec![[&[OUTPUT_START][..], &output].concat()]);

    let mut second = SuffixDrafter::new(SuffixConfig::default(), Some(global)).unwrap();
    let prompt: Vec<Token> = vec![40, 41, 42, 43];
    second.begin_output(prompt.len());
    let mut draft = Draft::default();
    // Right after the first output token: matched as [start, 700].
    let context = [&prompt[..], &output[..1]].concat();
    second.propose_from(SuffixOrigin::Global, &context, 64, &mut draft);
    assert_eq!(second.last_draft().match_len, 2);
    assert_eq!(draft.tokens(), &output[1..3]);
    // Further on the draft runs to the end token.
    let context = [&prompt[..], &output[..4]].concat();
    second.propose_from(SuffixOrigin::Global, &context, 64, &mut draft);
    assert_eq!(draft.tokens(), &output[4..]);
    assert!(second.last_draft().support.iter().all(|&n| n == 1));
    // The request's own tree knows nothing of that output.
    second.propose_from(SuffixOrigin::Request, &context, 64, &mut draft);
    assert!(draft.is_empty());
}

#[test]
fn garbage_inputs_do_not_panic() {
    let mut d = SuffixDrafter::new(SuffixConfig::default(), Some(shared())).unwrap();
    let mut draft = Draft::default();
    let weird: Vec<Token> = vec![i32::MIN, -1, i32::MAX, 0, i32::MIN, -1];
    d.propose(&weird, 0, &mut draft);
    assert!(draft.is_empty());
    d.propose(&weird, usize::MAX, &mut draft);
    assert_eq!(draft.tokens(), &[i32::MAX, 0]);
    d.observe(&[]);
    d.finish_request(&[]).unwrap();
    d.feedback(3, 1);
    assert!(d.propose_tree(&[], 8).is_empty());
}
