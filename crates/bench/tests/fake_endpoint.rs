//! The whole pipeline — protocol, store, index, compare, report, plot —
//! against fake OpenAI-compatible servers on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

use std::time::Duration;

use augur_bench::load::{execute_load, LoadPlan};
use augur_bench::{compare, plot, report, store, suite, BenchError, Plan, Suite, TargetConfig};

/// How the fake answers its n-th request (counted from 0 over all clients).
#[derive(Clone, Copy)]
enum Answer {
    Stream,
    /// 429 with this Retry-After (seconds).
    Busy(u64),
    /// 500.
    Fail,
}

/// Serves canned SSE: `words` as one chunk each, then usage, then [DONE].
fn fake_server(words: &'static [&'static str]) -> String {
    scripted_server(words, |_| Answer::Stream)
}

/// Like `fake_server`, one thread per connection, answering each request
/// as `script` says.
fn scripted_server(words: &'static [&'static str], script: fn(usize) -> Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || serve(stream, words, script(n)));
        }
    });
    format!("http://{addr}")
}

fn serve(stream: TcpStream, words: &[&str], answer: Answer) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    assert_eq!(req["stream"], true);
    let mut out = stream;
    let refuse = |status: &str, extra: String| {
        let body = r#"{"error": {"message": "no"}}"#;
        format!("HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    };
    match answer {
        Answer::Busy(secs) => {
            return out.write_all(refuse("429 Too Many Requests", format!("Retry-After: {secs}\r\n")).as_bytes())
        }
        Answer::Fail => return out.write_all(refuse("500 Internal Server Error", String::new()).as_bytes()),
        Answer::Stream => {}
    }
    out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")?;
    for w in words {
        let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}]});
        write!(out, "data: {chunk}\n\n")?;
        out.flush()?;
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let fin = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    let usage = serde_json::json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": words.len()}});
    write!(out, "data: {fin}\n\ndata: {usage}\n\ndata: [DONE]\n\n")?;
    out.flush()
}

fn tiny_suite() -> Suite {
    let yaml = r#"
suite: tiny
version: 1
prompts:
  - id: greet
    max_tokens: 8
    messages: [{role: user, content: "Say hello"}]
    check: {type: contains, all: ["hello"]}
  - id: greet2
    max_tokens: 8
    messages: [{role: user, content: "Say hello again"}]
"#;
    serde_norway::from_str(yaml).expect("suite")
}

fn plan(dir: &Path, targets: Vec<TargetConfig>) -> Plan {
    let mut p = Plan::new(vec![tiny_suite()], targets, dir.to_path_buf());
    p.iterations = 3;
    p.record.command = "augur bench run --suite tiny".into();
    p
}

#[test]
fn endpoint_runs_are_stored_indexed_compared_and_reported() {
    let same = fake_server(&["hello", " world", "!"]);
    let other = fake_server(&["hello", " there", "!"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut base = TargetConfig::endpoint(&same, "m");
    base.name = "base".into();
    let mut b = TargetConfig::endpoint(&format!("{other}/v1"), "m");
    b.name = "other".into();
    let out = augur_bench::execute(&plan(dir.path(), vec![base, b])).expect("run");

    assert_eq!(out.rows.len(), 2 * 2 * 3);
    let r0 = &out.rows[0];
    assert_eq!(r0.config, "base");
    assert_eq!(r0.output, "hello world!");
    assert_eq!(r0.completion_tokens, 3);
    assert!(r0.ttft_s > 0.0 && r0.decode_tps > 0.0 && r0.e2e_tps > 0.0);
    assert_eq!(r0.score, Some(1.0));
    assert!(out.rows.iter().filter(|r| r.config == "base").all(|r| r.identical == Some(true)));
    assert!(out.rows.iter().filter(|r| r.config == "other").all(|r| r.identical == Some(false)));
    assert_eq!(out.mismatches.len(), 6);
    assert_eq!(out.mismatches[0].at, "hello ".len());

    let run = store::load(dir.path(), &out.run_id).expect("load");
    // JSON keeps floats to within an ulp; compare what must round-trip exactly.
    let key = |r: &augur_bench::Row| (r.config.clone(), r.prompt.clone(), r.iteration, r.output.clone(), r.identical);
    assert_eq!(run.rows.iter().map(key).collect::<Vec<_>>(), out.rows.iter().map(key).collect::<Vec<_>>());
    assert_eq!(run.meta.baseline, "base");
    assert_eq!(run.meta.iterations, 3);
    assert!(!run.meta.machine.cpu_model.is_empty());
    let index = store::read_index(dir.path()).expect("index");
    assert_eq!(index.len(), 1);
    assert_eq!(index[0].mismatches, 6);

    let cmp = compare::compare(&run, &run);
    assert_eq!(cmp.len(), 1);
    assert_eq!((cmp[0].config_a.as_str(), cmp[0].config_b.as_str()), ("base", "other"));
    assert_eq!(cmp[0].prompts, 2);
    assert_eq!(cmp[0].mismatches_b, 2);
    assert!(cmp[0].decode.geomean > 0.0);
    assert!(cmp[0].decode.min <= cmp[0].decode.median && cmp[0].decode.median <= cmp[0].decode.max);
    let text = compare::render(&run, &run, &cmp);
    assert!(text.contains("tiny") && text.contains("other"));

    let md = report::markdown(std::slice::from_ref(&run));
    assert!(md.contains("augur bench run --suite tiny"));
    assert!(md.contains("| `other` | 2 |"));

    let svg = dir.path().join("plot.svg");
    plot::svg(&run, &svg).expect("plot");
    let s = std::fs::read_to_string(&svg).expect("svg");
    assert!(s.starts_with("<svg") && s.contains("other"));
}

#[test]
fn two_runs_compare_by_config_name_and_index_appends() {
    let url = fake_server(&["hello", " world"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut t = TargetConfig::endpoint(&url, "m");
    t.name = "x".into();
    let a = augur_bench::execute(&plan(dir.path(), vec![t.clone()])).expect("run a");
    let b = augur_bench::execute(&plan(dir.path(), vec![t])).expect("run b");
    assert_ne!(a.run_id, b.run_id);
    let ra = store::load(dir.path(), &a.run_id).expect("a");
    let rb = store::load(dir.path(), &b.dir.to_string_lossy()).expect("b by path");
    let cmp = compare::compare(&ra, &rb);
    assert_eq!(cmp.len(), 1);
    assert_eq!((cmp[0].config_a.as_str(), cmp[0].config_b.as_str()), ("x", "x"));
    assert_eq!(cmp[0].quality_a, Some(1.0));
    let index = store::read_index(dir.path()).expect("index");
    assert_eq!(index.iter().map(|e| e.run_id.as_str()).collect::<Vec<_>>(), [a.run_id.as_str(), b.run_id.as_str()]);
}

#[test]
fn fewer_than_three_iterations_need_the_override() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = plan(dir.path(), vec![TargetConfig::endpoint("http://127.0.0.1:9", "m")]);
    p.iterations = 1;
    assert!(augur_bench::execute(&p).is_err());
    assert!(store::read_index(dir.path()).expect("index").is_empty());
}

#[test]
fn failed_generations_are_recorded_not_fatal() {
    // Port 9 (discard) is closed on test machines: every request fails.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = plan(dir.path(), vec![TargetConfig::endpoint("http://127.0.0.1:9", "m")]);
    p.iterations = 1;
    p.allow_fewer_iterations = true;
    let out = augur_bench::execute(&p).expect("run");
    assert_eq!(out.rows.len(), 2);
    assert!(out.rows.iter().all(|r| r.error.is_some() && r.identical.is_none()));
}

#[test]
fn shipped_suites_load() {
    let suites = suite::load_all(&suite::default_dir()).expect("suites");
    let names: Vec<&str> = suites.iter().map(|s| s.suite.as_str()).collect();
    for want in ["agentic", "code_editing", "code_generation", "long_context", "multi_turn", "summarisation"] {
        assert!(names.contains(&want), "{want} missing");
    }
    for s in &suites {
        assert!(s.prompts.len() >= 5, "{} has {} prompts", s.suite, s.prompts.len());
    }
    let agentic = suites.iter().find(|s| s.suite == "agentic").expect("agentic");
    assert!(agentic.prompts.len() >= 8);
    let long = suites.iter().find(|s| s.suite == "long_context").expect("long");
    for p in &long.prompts {
        // Two to four bytes per token for this text (real counts: real_model.rs).
        let bytes: usize = p.chat().iter().map(|m| m.content.len()).sum();
        assert!((8_000..=64_000).contains(&bytes), "{}: {bytes} bytes", p.id);
        assert!(!p.chat().iter().any(|m| m.content.contains("{{filler}}")));
    }
}

#[test]
fn a_judge_grades_each_output() {
    let url = fake_server(&["hello"]);
    let grader = fake_server(&["Grade: ", "2"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = plan(dir.path(), vec![TargetConfig::endpoint(&url, "m")]);
    p.judge = Some(TargetConfig::endpoint(&grader, "judge"));
    let out = augur_bench::execute(&p).expect("run");
    assert!(out.rows.iter().all(|r| r.judge == Some(2)));
    let run = store::load(dir.path(), &out.run_id).expect("load");
    assert!(run.meta.judge.is_some());
    assert!(report::markdown(&[run]).contains("| 2.00 |"));
}

fn load_plan(dir: &Path, url: &str, clients: Vec<usize>, requests: usize) -> LoadPlan {
    let mut t = TargetConfig::endpoint(url, "m");
    t.name = "server".into();
    let mut p = LoadPlan::new(tiny_suite(), vec![t], dir.to_path_buf());
    p.clients = clients;
    p.requests = requests;
    p.record.command = "augur bench load --suite tiny".into();
    p.record.label = Some("load".into());
    p
}

#[test]
fn load_levels_are_measured_and_stored() {
    let url = fake_server(&["a", " b", " c", " d"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = execute_load(&load_plan(dir.path(), &url, vec![1, 3], 6)).expect("load");
    assert_eq!(out.levels.len(), 2);
    for (name, l) in &out.levels {
        assert_eq!(name, "server");
        assert_eq!((l.requests, l.completed, l.errors, l.retries_429), (6, 6, 0, 0));
        assert_eq!(l.completion_tokens, 24);
        assert!(l.throughput_tps() > 0.0);
        // Four chunks 2 ms apart: three gaps of at least 2 ms.
        assert!(l.itl_mean_s().expect("itl") >= 0.0015, "{:?}", l.itl_mean_s());
    }
    let run = store::resolve(dir.path(), "load").expect("by label");
    assert_eq!(run.rows.len(), 2);
    assert_eq!(run.rows[1].prompt, "clients=3");
    assert_eq!(run.rows[1].metric("clients"), Some(3.0));
    assert_eq!(run.rows[1].metric("completed"), Some(6.0));
    assert!(run.rows[0].metric("latency_p95_ms").expect("p95") >= run.rows[0].metric("latency_p50_ms").expect("p50"));
    let md = report::markdown(std::slice::from_ref(&run));
    assert!(md.contains("| clients=3 | `server` |"), "{md}");
}

/// Requests 0 and 1 are refused (Retry-After 1 s), request 4 fails.
fn busy_then_fail(n: usize) -> Answer {
    match n {
        0 | 1 => Answer::Busy(1),
        4 => Answer::Fail,
        _ => Answer::Stream,
    }
}

#[test]
fn load_retries_429_after_retry_after_and_counts_errors() {
    let url = scripted_server(&["x", " y"], busy_then_fail);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = execute_load(&load_plan(dir.path(), &url, vec![2], 6)).expect("load");
    let l = &out.levels[0].1;
    // The warm-up took requests 0 (429), 1 (429) and 2; the level saw request 4 fail.
    assert_eq!((l.completed, l.errors, l.retries_429), (5, 1, 0));
    let run = store::load(dir.path(), &out.run_id).expect("stored");
    assert_eq!(run.rows[0].metric("errors"), Some(1.0));
}

/// After the warm-up (request 0), every request is refused once at first.
fn busy_first(n: usize) -> Answer {
    if n % 2 == 1 {
        Answer::Busy(1)
    } else {
        Answer::Stream
    }
}

#[test]
fn a_retried_request_counts_its_wait_in_latency() {
    let url = scripted_server(&["x", " y"], busy_first);
    let dir = tempfile::tempdir().expect("tempdir");
    // One client: warm-up is request 0; then 1 (429), 2, 3 (429), 4.
    let out = execute_load(&load_plan(dir.path(), &url, vec![1], 2)).expect("load");
    let l = &out.levels[0].1;
    assert_eq!((l.completed, l.errors, l.retries_429), (2, 0, 2));
    assert!(l.latencies_s.iter().all(|s| *s >= 1.0), "{:?}", l.latencies_s);
    assert!(l.ttfts_s.iter().all(|s| *s >= 1.0), "{:?}", l.ttfts_s);
}

#[test]
fn a_429_is_busy_with_its_retry_after() {
    let url = scripted_server(&["x"], |_| Answer::Busy(7));
    let t = augur_bench::Endpoint::new(&url, "m");
    let messages = [augur_runtime::ChatMessage::new("user", "hi")];
    let req = augur_bench::Request { messages: &messages, max_tokens: 4, temperature: 0.0, seed: 0, spec: None };
    match augur_bench::Target::generate(&t, &req) {
        Err(BenchError::Busy { retry_after, .. }) => assert_eq!(retry_after, Duration::from_secs(7)),
        other => panic!("expected Busy, got {other:?}"),
    }
}

#[test]
fn load_plans_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let no_endpoint = LoadPlan::new(tiny_suite(), vec![TargetConfig::new("m")], dir.path().to_path_buf());
    assert!(matches!(execute_load(&no_endpoint), Err(BenchError::Load(m)) if m.contains("no endpoint")));
    let few = load_plan(dir.path(), "http://127.0.0.1:9", vec![1, 8], 4);
    assert!(matches!(execute_load(&few), Err(BenchError::Load(m)) if m.contains("cannot keep 8 clients")));
    assert!(store::read_index(dir.path()).expect("index").is_empty());
}
