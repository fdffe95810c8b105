//! A remote role's failures keep their class: a remote server that fails
//! is an upstream failure, one that refuses the request passes the refusal
//! on, and neither is mistaken for a model that failed to load.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use augur_orch::resolve::RemoteDef;
use augur_orch::RemoteBackend;
use augur_runtime::{ChatMessage, Event, GenerateRequest, Prompt, RuntimeError};

/// A server on 127.0.0.1 that answers every request with `response`.
fn server(response: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("header");
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().expect("length");
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            reader.read_exact(&mut vec![0; len]).expect("body");
            let _ = (&stream).write_all(response.as_bytes());
        }
    });
    url
}

fn json_response(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The error the remote role's stream ends with.
fn outcome(url: &str) -> Result<String, RuntimeError> {
    let spec = RemoteDef { base_url: url.into(), model: "m".into(), api_key: None, timeout: Duration::from_secs(5) };
    let backend = RemoteBackend::new(spec, 1);
    let req = GenerateRequest::new(Prompt::Chat(vec![ChatMessage::new("user", "hi")]), 4);
    let mut events = backend.submit(req)?;
    let mut text = String::new();
    while let Some(ev) = events.blocking_next() {
        match ev {
            Event::Text { text: t, .. } => text.push_str(&t),
            Event::Done(_) => return Ok(text),
            Event::Error(e) => return Err(e),
            Event::Started { .. } => {}
        }
    }
    panic!("the stream ended without Done or Error")
}

#[test]
fn a_remote_500_is_an_upstream_failure() {
    let url = server(json_response("500 Internal Server Error", r#"{"error": {"message": "out of memory"}}"#));
    match outcome(&url) {
        Err(RuntimeError::UpstreamFailed { url: u, message }) => {
            assert!(u.ends_with("/v1/chat/completions"), "{u}");
            assert!(message.contains("500") && message.contains("out of memory"), "{message}");
        }
        other => panic!("expected UpstreamFailed, got {other:?}"),
    }
}

#[test]
fn a_remote_4xx_is_passed_on_as_rejected() {
    let url = server(json_response("422 Unprocessable Entity", r#"{"error": {"message": "bad stop"}}"#));
    match outcome(&url) {
        Err(RuntimeError::UpstreamRejected { status, message, .. }) => {
            assert_eq!((status, message.as_str()), (422, "bad stop"));
        }
        other => panic!("expected UpstreamRejected, got {other:?}"),
    }
}

#[test]
fn a_remote_429_is_busy_and_a_closed_port_unreachable() {
    let url = server(json_response("429 Too Many Requests", "{}"));
    assert!(matches!(outcome(&url), Err(RuntimeError::QueueFull { capacity: 0 })));
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let closed = outcome(&format!("http://127.0.0.1:{port}"));
    assert!(matches!(closed, Err(RuntimeError::UpstreamUnreachable { .. })), "{closed:?}");
}

#[test]
fn a_remote_stream_comes_through() {
    let sse = concat!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"hel\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    assert_eq!(outcome(&server(sse.into())).expect("generation"), "hello");
}
