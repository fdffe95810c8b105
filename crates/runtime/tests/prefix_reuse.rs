//! Prefix reuse never changes an output: a worker that keeps KV between
//! requests (the last prompt's full chunks, and while idle the last answer)
//! gives token-identical greedy output to a worker that prefills every
//! prompt from scratch, on multi-turn chats, a shared system prompt and
//! interleaved conversations, and it really does skip the shared part.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use augur_engine::{ChatMessage, ContextParams};
use augur_runtime::{
    Backend, Completion, Event, GenerateRequest, ModelWorker, PrefixReuse, Prompt, SpecMode, SpecOptions, SpecSettings,
    WorkerConfig,
};

fn model_path(name: &str) -> PathBuf {
    augur_store::Store::open_default().unwrap().ensure(name, false).unwrap()
}

/// On the 0.5B: the same Q4_K_M kernels as the 1.5B at a third of the time.
fn worker(reuse: PrefixReuse) -> ModelWorker {
    let name = "qwen2.5-coder-0.5b";
    let store = augur_store::Store::open_default().unwrap();
    ModelWorker::spawn(WorkerConfig {
        context: ContextParams { n_ctx: 4096, ..ContextParams::default() },
        spec: SpecSettings { mode: SpecMode::Off, ..SpecSettings::default() },
        calibration_dir: store.root().parent().map(|p| p.join("calibration")),
        prefix_cache: reuse,
        queue: 4,
        ..WorkerConfig::new(name, model_path(name))
    })
    .expect("worker")
}

/// What a request got: its completion and how many prompt tokens were reused.
struct Answer {
    done: Completion,
    text: String,
    cached: usize,
    prompt: usize,
}

fn ask(w: &ModelWorker, msgs: &[ChatMessage], max_tokens: u32, mode: SpecMode) -> Answer {
    let mut req = GenerateRequest::new(Prompt::Chat(msgs.to_vec()), max_tokens);
    req.spec = SpecOptions { mode: Some(mode), ..Default::default() };
    let mut s = w.submit(req).unwrap();
    let (mut text, mut cached, mut prompt) = (String::new(), 0, 0);
    while let Some(ev) = s.blocking_next() {
        match ev {
            Event::Started { prompt_tokens, cached_tokens } => (prompt, cached) = (prompt_tokens, cached_tokens),
            Event::Text { text: t, .. } => text.push_str(&t),
            Event::Done(done) => {
                assert_eq!(done.usage.cached_tokens, cached, "usage and the start event disagree");
                return Answer { done: *done, text, cached, prompt };
            }
            Event::Error(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("stream ended without Done");
}

fn wait_idle(w: &ModelWorker) {
    let start = Instant::now();
    while !w.is_idle() {
        assert!(start.elapsed() < Duration::from_secs(120), "worker never went idle");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const GUIDE: &str = "You are a senior engineer reviewing code for a team that writes Python services and Rust \
libraries. Follow these rules in every answer. Prefer small functions with clear names. Point out missing \
error handling, unchecked indexing, integer overflow, resource leaks, and any place where input from a user \
reaches a file path, a shell command or a SQL string without validation. Suggest tests for each bug you find: \
a unit test with the smallest input that shows it, and a property test when a brute-force reference exists. \
Keep the style of the code you are given. When you rewrite code, return the whole function, not a fragment, \
and explain each change in one short sentence after the code. Do not invent APIs; if a library call is \
unclear, say so. Answer in plain Markdown with fenced code blocks, and never more than necessary.";

const PY: &str = "def load_users(path):\n    users = []\n    f = open(path)\n    for line in f:\n        parts = line.split(',')\n        users.append({'id': int(parts[0]), 'name': parts[1], 'email': parts[2]})\n    return users\n\n\ndef find_user(users, user_id):\n    for i in range(len(users) + 1):\n        if users[i]['id'] == user_id:\n            return users[i]\n    return None\n";

const RS: &str = "pub fn checksum(data: &[u8]) -> u16 {\n    let mut sum: u16 = 0;\n    for i in 0..data.len() {\n        sum = sum + data[i] as u16;\n    }\n    sum\n}\n\npub fn parse_port(s: &str) -> u16 {\n    s.trim().parse::<u32>().unwrap() as u16\n}\n";

/// Longer than the largest prefill chunk, so a new conversation with the
/// same system prompt has whole chunks to reuse.
fn system() -> ChatMessage {
    ChatMessage::new("system", GUIDE.repeat(4))
}

/// Three turns of one review conversation, answered by both workers; the
/// warm one must reuse the earlier turns and say exactly what the cold one
/// says.
fn conversation(warm: &ModelWorker, cold: &ModelWorker, code: &str, follow_ups: &[&str], idle: bool) {
    let mut msgs = vec![system(), ChatMessage::new("user", format!("Review this code:\n\n{code}"))];
    for (turn, next) in follow_ups.iter().map(Some).chain([None]).enumerate() {
        let w = ask(warm, &msgs, 32, SpecMode::Off);
        let c = ask(cold, &msgs, 32, SpecMode::Off);
        assert_eq!(c.cached, 0, "the cold worker reused KV");
        assert_eq!(
            w.done.tokens, c.done.tokens,
            "turn {turn}: warm output differs from cold\nwarm: {}\ncold: {}",
            w.text, c.text
        );
        assert_eq!(w.text, c.text);
        eprintln!("turn {turn}: prompt {} tokens, reused {}", w.prompt, w.cached);
        if turn > 0 {
            assert!(w.cached > 0, "turn {turn} reused nothing of {} tokens", w.prompt);
        }
        let Some(next) = next else { break };
        if idle {
            wait_idle(warm);
        }
        msgs.push(ChatMessage::new("assistant", w.text));
        msgs.push(ChatMessage::new("user", next.to_string()));
    }
}

#[test]
fn warm_prefix_gives_the_cold_output() {
    let warm = worker(PrefixReuse::Conversation);
    let cold = worker(PrefixReuse::Off);

    // Multi-turn, with the idle extension over each answer finished.
    let before = Instant::now();
    conversation(&warm, &cold, PY, &["Now fix the bug in find_user.", "Add a test for it."], true);
    eprintln!("conversation 1: {:?}", before.elapsed());

    // The next turn right away: idle work is interrupted, output unchanged.
    conversation(&warm, &cold, RS, &["Fix the overflow."], false);

    // A new conversation with the same system prompt reuses its chunks.
    let first = ask(&warm, &[system(), ChatMessage::new("user", "Review: x = [1, 2][2]")], 32, SpecMode::Off);
    assert!(first.cached > 0, "the shared system prompt was not reused");
    let cold_first = ask(&cold, &[system(), ChatMessage::new("user", "Review: x = [1, 2][2]")], 32, SpecMode::Off);
    assert_eq!(first.done.tokens, cold_first.done.tokens);

    // The same prompt twice, with speculation the second time.
    let msgs = [system(), ChatMessage::new("user", format!("Review this code:\n\n{RS}"))];
    let a = ask(&warm, &msgs, 32, SpecMode::Off);
    wait_idle(&warm);
    let b = ask(&warm, &msgs, 32, SpecMode::Auto);
    assert!(b.cached >= a.cached && b.cached > 0);
    assert_eq!(a.done.tokens, b.done.tokens, "a repeated prompt changed its answer");
}

/// While idle the worker prefills the last answer, so the next turn reuses
/// every whole grain it shares with the last prompt and answer; with prompt
/// reuse only, nothing past the last prompt.
#[test]
fn idle_extension_covers_the_answer() {
    let warm = worker(PrefixReuse::Conversation);
    let prompt_only = worker(PrefixReuse::Prompt);
    let chunk = ContextParams::default().n_batch as usize;
    let grain = warm.prefix_grain();
    assert_eq!(grain, prompt_only.prefix_grain());
    eprintln!("prefix grain on this machine: {grain} of a {chunk}-token chunk");
    let model = warm.model().clone();
    let mut msgs = vec![system(), ChatMessage::new("user", format!("Review this code in detail:\n\n{PY}"))];
    let max_tokens = (2 * chunk + 32) as u32;
    let w1 = ask(&warm, &msgs, max_tokens, SpecMode::Off);
    let p1 = ask(&prompt_only, &msgs, max_tokens, SpecMode::Off);
    assert_eq!(w1.done.tokens, p1.done.tokens);
    wait_idle(&warm);
    wait_idle(&prompt_only);
    let mut history = model.tokenize_chat(&msgs, None).unwrap();
    history.extend_from_slice(&w1.done.tokens);
    msgs.push(ChatMessage::new("assistant", w1.text));
    msgs.push(ChatMessage::new("user", "Thanks. Which of these bugs is the worst?"));
    let next = model.tokenize_chat(&msgs, None).unwrap();
    let common = history.iter().zip(&next).take_while(|(a, b)| a == b).count();
    let expected = common.min(next.len() - 1) / grain * grain;
    assert!(
        expected > w1.prompt,
        "test setup: the answer ({} tokens, {common} shared) does not reach a chunk boundary past the prompt ({})",
        w1.done.tokens.len(),
        w1.prompt
    );
    let w2 = ask(&warm, &msgs, 32, SpecMode::Off);
    let p2 = ask(&prompt_only, &msgs, 32, SpecMode::Off);
    assert_eq!(w2.done.tokens, p2.done.tokens);
    eprintln!("turn 2 of {} tokens: reused {} (conversation) vs {} (prompt only)", w2.prompt, w2.cached, p2.cached);
    assert_eq!(w2.cached, expected, "conversation reuse should cover every shared whole grain");
    assert_eq!(p2.cached, w1.prompt / grain * grain, "prompt-only reuse is the last prompt's whole grains");
}

/// Two conversations taking turns on one worker: each turn gets its own
/// conversation's earlier prompt and answer back from the saved prefixes
/// (the other conversation held the context in between), and says exactly
/// what a cold worker says.
#[test]
fn interleaved_conversations_restore_their_saved_prefix() {
    let warm = worker(PrefixReuse::Conversation);
    let cold = worker(PrefixReuse::Off);
    let grain = warm.prefix_grain();
    let rust = "You answer questions about Rust code in one short paragraph, quoting the lines you mean.";
    let mut convs = [
        (vec![system(), ChatMessage::new("user", format!("Review this code:\n\n{PY}"))], "Fix the first bug."),
        (
            vec![ChatMessage::new("system", rust.repeat(3)), ChatMessage::new("user", format!("Review:\n\n{RS}"))],
            "Fix the overflow.",
        ),
    ];
    let mut last_prompt = [0usize; 2];
    for turn in 0..2 {
        for (i, (msgs, follow_up)) in convs.iter_mut().enumerate() {
            let w = ask(&warm, msgs, 24, SpecMode::Off);
            let c = ask(&cold, msgs, 24, SpecMode::Off);
            assert_eq!(w.done.tokens, c.done.tokens, "turn {turn} of conversation {i}: warm output differs from cold");
            eprintln!("turn {turn} of conversation {i}: prompt {} tokens, reused {}", w.prompt, w.cached);
            if turn > 0 {
                // At least the whole last prompt came back from the store.
                let saved = last_prompt[i] / grain * grain;
                assert!(w.cached >= saved, "reused {} of the {saved} positions saved", w.cached);
            }
            last_prompt[i] = w.prompt;
            wait_idle(&warm);
            msgs.push(ChatMessage::new("assistant", w.text));
            msgs.push(ChatMessage::new("user", follow_up.to_string()));
        }
    }
}
