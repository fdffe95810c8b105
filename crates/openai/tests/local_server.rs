//! The client against a tiny HTTP server on 127.0.0.1 that answers each
//! connection with a canned response.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use augur_openai::{Client, Message, OpenAiError, Request, StreamEvent};

/// What the server saw of the one request it took.
struct Seen {
    head: String,
    body: serde_json::Value,
}

/// Serve one connection: read the request, then write `parts` in order,
/// `pause` apart, and close. Returns the base URL and what was received.
fn serve(parts: Vec<String>, pause: Duration) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let (mut head, mut len) = (String::new(), 0usize);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).expect("body");
        let _ = tx.send(Seen { head, body: serde_json::from_slice(&body).expect("json body") });
        let mut out = stream;
        for p in parts {
            if out.write_all(p.as_bytes()).and_then(|()| out.flush()).is_err() {
                return;
            }
            thread::sleep(pause);
        }
    });
    (url, rx)
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";

fn data(v: serde_json::Value) -> String {
    format!("data: {v}\n\n")
}

fn delta(text: &str) -> String {
    data(serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}))
}

fn finish(reason: &str) -> String {
    data(serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}))
}

fn refusal(status: &str, extra: &str, body: &str) -> Vec<String> {
    vec![format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )]
}

fn chat() -> Request {
    Request::chat("m", vec![Message::new("user", "hi")], 8)
}

fn client(url: &str) -> Client {
    Client::new(url, Duration::from_secs(5))
}

fn events(c: &Client) -> Vec<Result<StreamEvent, OpenAiError>> {
    c.stream(&chat()).expect("stream starts").collect()
}

#[test]
fn a_normal_stream_gives_text_then_finish() {
    let parts = vec![SSE_HEAD.into(), delta("hel"), delta("lo"), finish("stop"), "data: [DONE]\n\n".into()];
    let (url, seen) = serve(parts, Duration::from_millis(1));
    let c = client(&format!("{url}/v1")).with_api_key(Some("k".into()));
    let got: Vec<StreamEvent> = events(&c).into_iter().collect::<Result<_, _>>().expect("no error");
    let want = [StreamEvent::Text("hel".into()), StreamEvent::Text("lo".into()), StreamEvent::Finish("stop".into())];
    assert_eq!(got, want);
    let seen = seen.recv().expect("request");
    assert!(seen.head.starts_with("POST /v1/chat/completions "), "{}", seen.head);
    assert!(seen.head.contains("Authorization: Bearer k"), "{}", seen.head);
    assert_eq!(seen.body["stream"], true);
    assert_eq!(seen.body["stream_options"]["include_usage"], true);
    assert_eq!(seen.body["messages"][0]["content"], "hi");
}

#[test]
fn a_usage_chunk_carries_counts_and_augur_fields() {
    let usage = serde_json::json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 1,
        "prompt_tokens_details": {"cached_tokens": 8},
        "augur": {"time_to_first_token_seconds": 0.25, "spec": {"steps": 1, "drafted": 4, "accepted": 3}}}});
    let parts = vec![SSE_HEAD.into(), delta("x"), finish("length"), data(usage), "data: [DONE]\n\n".into()];
    let (url, _seen) = serve(parts, Duration::ZERO);
    let got = events(&client(&url));
    let Some(Ok(StreamEvent::Usage(u))) = got.last() else { panic!("{got:?}") };
    assert_eq!((u.prompt_tokens, u.completion_tokens, u.cached_tokens()), (11, 1, 8));
    let a = u.augur.as_ref().expect("augur usage");
    assert_eq!(a.time_to_first_token_seconds, Some(0.25));
    assert_eq!(a.spec.as_ref().map(|s| (s.drafted, s.accepted)), Some((4, 3)));
    assert_eq!(got.len(), 3);
}

#[test]
fn a_400_is_rejected_with_the_openai_message() {
    let body = r#"{"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}"#;
    let (url, _seen) = serve(refusal("400 Bad Request", "", body), Duration::ZERO);
    match client(&url).stream(&chat()) {
        Err(OpenAiError::Rejected { status, message, url: u }) => {
            assert_eq!((status, message.as_str()), (400, "max_tokens is too large"));
            assert_eq!(u, format!("{url}/v1/chat/completions"));
        }
        other => panic!("expected Rejected, got {:?}", other.err()),
    }
}

#[test]
fn a_500_is_a_remote_failure() {
    let (url, _seen) =
        serve(refusal("500 Internal Server Error", "", r#"{"error": {"message": "boom"}}"#), Duration::ZERO);
    match client(&url).stream(&chat()) {
        Err(OpenAiError::Failed { status: Some(500), message, .. }) => assert!(message.contains("boom"), "{message}"),
        other => panic!("expected Failed, got {:?}", other.err()),
    }
}

#[test]
fn a_429_is_rate_limited_with_its_retry_after() {
    let (url, _seen) = serve(refusal("429 Too Many Requests", "Retry-After: 7\r\n", "{}"), Duration::ZERO);
    match client(&url).stream(&chat()) {
        Err(OpenAiError::RateLimited { retry_after, .. }) => assert_eq!(retry_after, Some(Duration::from_secs(7))),
        other => panic!("expected RateLimited, got {:?}", other.err()),
    }
}

#[test]
fn a_truncated_stream_fails_after_its_text() {
    let parts = vec![SSE_HEAD.into(), delta("par"), "data: {\"choices\": [{\"delta\": {\"cont".into()];
    let (url, _seen) = serve(parts, Duration::ZERO);
    let got = events(&client(&url));
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(matches!(&got[0], Ok(StreamEvent::Text(t)) if t == "par"));
    assert!(matches!(&got[1], Err(OpenAiError::Failed { status: None, .. })), "{got:?}");
}

#[test]
fn a_closed_port_is_unreachable() {
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    match client(&format!("http://127.0.0.1:{port}")).stream(&chat()) {
        Err(OpenAiError::Unreachable { .. }) => {}
        other => panic!("expected Unreachable, got {:?}", other.err()),
    }
}

#[test]
fn a_stalled_stream_times_out() {
    // The first chunk comes with the headers; the next one two seconds later.
    let parts = vec![format!("{SSE_HEAD}{}", delta("a")), finish("stop")];
    let (url, _seen) = serve(parts, Duration::from_secs(2));
    let c = Client::new(&url, Duration::from_millis(300));
    let got: Vec<_> = c.stream(&chat()).expect("headers came").collect();
    assert!(matches!(&got[0], Ok(StreamEvent::Text(t)) if t == "a"), "{got:?}");
    assert!(matches!(got.last(), Some(Err(OpenAiError::Timeout { .. }))), "{got:?}");
}

#[test]
fn a_bad_url_is_the_callers_mistake() {
    match client("ftp://127.0.0.1:1").stream(&chat()) {
        Err(OpenAiError::BadUrl { .. }) => {}
        other => panic!("expected BadUrl, got {:?}", other.err()),
    }
}
