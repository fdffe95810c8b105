//! `augur serve` under load and abandonment: concurrent streams against a
//! small queue (each completes or gets 429, nothing hangs), clients that
//! hang up mid-stream, during prefill and while queued (the worker is freed
//! at once), and memory that stays near its baseline.
//!
//! One server and one test function: phases run in order so their timings
//! do not compete for the machine's cores.

mod server_support;

use std::thread;
use std::time::{Duration, Instant};

use server_support::{chat_body, hang_up, read_head, read_until, time_to_first_content, Resp, Server};

/// A short request's time to first token once the worker is free. Test
/// machines may be shared and slow, so this is generous; an abandoned
/// generation left running (1500 tokens) would take minutes.
const PROMPT_START: f64 = 20.0;

/// About 1500 tokens: seconds of prefill.
fn long_prompt() -> String {
    "The quick brown fox jumps over the lazy dog. ".repeat(150)
}

fn short() -> serde_json::Value {
    chat_body("Say OK.", 3, true)
}

fn counting(max_tokens: u32) -> serde_json::Value {
    chat_body("Count from 1 to 1000, separated by commas.", max_tokens, true)
}

/// Each of 16 concurrent streams either completes with [DONE] or is refused
/// with a 429 carrying Retry-After.
fn concurrent_streams(s: &Server) {
    let port = s.port;
    let key = s.key.clone();
    let start = Instant::now();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let key = key.clone();
            thread::spawn(move || {
                let body =
                    chat_body(&format!("Give me a word that starts with the letter {}.", (b'a' + i) as char), 6, true);
                let auth = key.map(|k| format!("Bearer {k}"));
                let mut headers = vec![("Content-Type", "application/json")];
                if let Some(a) = &auth {
                    headers.push(("Authorization", a.as_str()));
                }
                server_support::try_request(port, "POST", "/v1/chat/completions", &headers, body.to_string().as_bytes())
            })
        })
        .collect();
    let results: Vec<Resp> = handles.into_iter().map(|h| h.join().unwrap().expect("request failed")).collect();
    let (mut ok, mut busy) = (0, 0);
    for r in &results {
        match r.status {
            200 => {
                assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"), "{}", r.text());
                assert!(!r.text().contains("\"error\""), "{}", r.text());
                ok += 1;
            }
            429 => {
                r.assert_error(429, "queue full");
                assert!(r.header("retry-after").is_some(), "429 without Retry-After");
                busy += 1;
            }
            other => panic!("unexpected status {other}: {}", r.text()),
        }
    }
    assert!(ok >= 1 && busy >= 1, "expected both completions and 429s, got {ok} ok, {busy} busy");
    eprintln!("16 streams: {ok} completed, {busy} refused, {:?}", start.elapsed());
}

/// Hang up after the first content token of a long generation; the next
/// request must not wait for the abandoned one.
fn disconnect_frees_worker(s: &Server) {
    let c = s.open_stream(&counting(1500));
    read_until(&c, |b| b.matches("data: ").count() >= 3).expect("stream");
    hang_up(c);
    let t = time_to_first_content(s, &short());
    assert!(t < PROMPT_START, "first token {t:.2}s after a disconnect");
}

fn disconnect_mid_stream(s: &Server, n: usize) {
    for _ in 0..n {
        let c = s.open_stream(&counting(500));
        read_until(&c, |b| b.matches("data: ").count() >= 2).expect("stream");
        hang_up(c);
    }
}

fn disconnect_in_prefill(s: &Server, n: usize) {
    let body = chat_body(&long_prompt(), 8, true);
    for i in 0..n {
        let c = s.open_stream(&body);
        let (status, _) = read_head(&mut std::io::BufReader::new(c.try_clone().unwrap())).expect("head");
        assert_eq!(status, 200, "prefill disconnect {i}: refused, so earlier ones still hold the worker");
        thread::sleep(Duration::from_millis(200));
        hang_up(c);
    }
}

/// Keep the worker busy, queue requests behind it, abandon them, then
/// release the worker: the abandoned ones must be skipped, not run.
fn disconnect_while_queued(s: &Server, n: usize) {
    let mut left = n;
    while left > 0 {
        let holder = s.open_stream(&counting(3000));
        read_until(&holder, |b| b.matches("data: ").count() >= 2).expect("holder stream");
        let queued: Vec<_> = (0..left.min(3)).map(|_| s.open_stream(&short())).collect();
        for c in &queued {
            let mut r = std::io::BufReader::new(c.try_clone().unwrap());
            let (status, _) = read_head(&mut r).expect("queued response head");
            assert_eq!(status, 200, "a queued request was refused");
        }
        left -= queued.len();
        queued.into_iter().for_each(hang_up);
        thread::sleep(Duration::from_millis(100));
        hang_up(holder);
        wait_idle(s);
    }
}

fn metric(s: &Server, name: &str) -> f64 {
    let text = s.get("/metrics").text();
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn wait_idle(s: &Server) {
    let start = Instant::now();
    while metric(s, "augur_queue_depth ") > 0.0 {
        assert!(start.elapsed() < Duration::from_secs(30), "queue never drained");
        thread::sleep(Duration::from_millis(100));
    }
}

/// One way of abandoning `n` requests.
type Phase = fn(&Server, usize);

#[test]
fn load_disconnects_and_memory() {
    let mut s = Server::start(&["--queue", "3"], false);
    // Warm up so the baseline includes the compute buffers.
    let warm = "The quick brown fox jumps over the lazy dog. ".repeat(40);
    let t = time_to_first_content(&s, &chat_body(&warm, 4, true));
    eprintln!("warm-up: first token after {t:.2}s");
    let base = s.rss_kib();
    eprintln!("baseline RSS {} MiB", base / 1024);

    concurrent_streams(&s);
    disconnect_frees_worker(&s);
    let after_load = s.rss_kib();

    let phases: [(&str, Phase, usize); 3] = [
        ("in prefill", disconnect_in_prefill, 40),
        ("mid-stream", disconnect_mid_stream, 30),
        ("while queued", disconnect_while_queued, 30),
    ];
    for (name, phase, n) in phases {
        let start = Instant::now();
        phase(&s, n);
        wait_idle(&s);
        eprintln!("{n} disconnects {name}: {:?}", start.elapsed());
    }
    let t = time_to_first_content(&s, &short());
    assert!(t < PROMPT_START, "first token {t:.2}s after 100 disconnects");
    let r = s.post_json("/v1/chat/completions", &chat_body("Say OK.", 4, false));
    assert_eq!(r.status, 200, "{}", r.text());

    let end = s.rss_kib();
    eprintln!("RSS: baseline {} MiB, after load {} MiB, end {} MiB", base / 1024, after_load / 1024, end / 1024);
    let slack = 150 * 1024;
    assert!(after_load < base + slack, "RSS grew under load: {base} -> {after_load} KiB");
    assert!(end < base + slack, "RSS after disconnects: {base} -> {end} KiB");
    assert!(s.is_running());
    assert!(!s.log().contains("panicked"));
    assert!(s.stop().success());
}
