//! Helpers for the `augur serve` end-to-end tests: start a real server on a
//! free loopback port, talk raw HTTP/1.1 to it with std only, stop it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MODEL: &str = "qwen2.5-coder-0.5b";
pub const KEY: &str = "sk-augur-test-key-0123456789";
pub const OTHER_KEY: &str = "sk-second";

/// The test model's file in the store (AUGUR_HOME).
pub fn model_path() -> PathBuf {
    catalogue_model(MODEL)
}

/// A catalogue model's file in the store (AUGUR_HOME).
pub fn catalogue_model(name: &str) -> PathBuf {
    augur_store::Store::open_default().expect("store").ensure(name, false).expect("model in the store")
}

pub struct Server {
    child: Child,
    pub port: u16,
    pub key: Option<String>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    /// Start `augur serve` on the test model with `extra` flags; with
    /// `keys`, an API key file holding KEY and OTHER_KEY.
    pub fn start(extra: &[&str], keys: bool) -> Server {
        Self::start_model(MODEL, extra, keys)
    }

    /// Start `augur serve` on the catalogue model `name`, served as `name`.
    pub fn start_model(name: &str, extra: &[&str], keys: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let port = free_port();
        let model = catalogue_model(name);
        let mut args: Vec<String> = vec!["serve".into(), "-m".into(), model.to_string_lossy().into_owned()];
        args.extend(["--alias", name, "--port", &port.to_string()].map(String::from));
        if keys {
            let kf = dir.path().join("keys");
            std::fs::write(&kf, format!("# test keys\n{KEY}\n\n{OTHER_KEY}\n")).unwrap();
            args.extend(["--api-key-file".to_string(), kf.to_string_lossy().into_owned()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(env!("CARGO_BIN_EXE_augur"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn augur serve");
        let mut s = Server { child, port, key: keys.then(|| KEY.to_string()), log, _dir: dir };
        s.wait_ready(Duration::from_secs(180));
        s
    }

    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("server exited early ({status}):\n{}", self.log());
            }
            if let Ok(r) = try_request(self.port, "GET", "/health", &[], b"") {
                if r.status == 200 {
                    return;
                }
                assert_eq!(r.status, 503, "health while loading: {}", r.text());
                assert_eq!(r.json()["status"], "loading");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("server not ready in {limit:?}:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn auth(&self) -> Vec<(String, String)> {
        self.key.iter().map(|k| ("Authorization".to_string(), format!("Bearer {k}"))).collect()
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], b"")
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Resp {
        self.send("POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes())
    }

    /// A request with the server's key (if any) plus `headers`.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let auth = self.auth();
        let mut all: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(headers);
        try_request(self.port, method, path, &all, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Open a streamed chat completion and return the socket after the
    /// request is sent, for tests that read part of it and hang up.
    pub fn open_stream(&self, body: &serde_json::Value) -> TcpStream {
        let auth = self.auth();
        let mut headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        headers.push(("Content-Type", "application/json"));
        let mut s = connect(self.port).unwrap();
        write_request(&mut s, "POST", "/v1/chat/completions", &headers, body.to_string().as_bytes()).unwrap();
        s
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        unsafe_kill(self.pid(), "TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not stop on SIGTERM:\n{}", self.log());
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a command with a time limit: (exit code, stdout, stderr).
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), s(&out.stdout), s(&out.stderr))
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// An OpenAI error object with the given status; returns it.
    pub fn assert_error(&self, status: u16, what: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "{what}: {}", self.text());
        let v = self.json();
        let e = &v["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: no message: {v}");
        assert!(e["type"].is_string(), "{what}: no type: {v}");
        assert!(e.get("param").is_some() && e.get("code").is_some(), "{what}: {v}");
        e.clone()
    }

    /// `data:` payloads of an SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        sse_events(&self.text())
    }
}

pub fn sse_events(text: &str) -> Vec<String> {
    text.split("\n\n").filter_map(|ev| ev.strip_prefix("data: ")).map(str::to_string).collect()
}

pub fn connect(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    s.set_write_timeout(Some(Duration::from_secs(60)))?;
    Ok(s)
}

pub fn write_request(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes())?;
    s.write_all(body)
}

/// One request on a fresh connection; the whole response.
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = connect(port)?;
    write_request(&mut s, method, path, headers, body)?;
    read_response(s)
}

/// Status line and headers of a response.
pub fn read_head(r: &mut impl BufRead) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

pub fn read_response(s: TcpStream) -> std::io::Result<Resp> {
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r)?;
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        read_chunked(&mut r, &mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Resp { status, headers, body })
}

fn read_chunked(r: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let n = usize::from_str_radix(line.trim(), 16).map_err(|e| std::io::Error::other(e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        let start = out.len();
        out.resize(start + n, 0);
        r.read_exact(&mut out[start..])?;
        line.clear();
        r.read_line(&mut line)?;
    }
}

/// Read a streamed response until `pred` holds on the body so far.
pub fn read_until(s: &TcpStream, pred: impl Fn(&str) -> bool) -> std::io::Result<String> {
    let mut r = BufReader::new(s.try_clone()?);
    let (status, _) = read_head(&mut r)?;
    if status != 200 {
        let mut rest = String::new();
        let _ = r.read_to_string(&mut rest);
        return Err(std::io::Error::other(format!("status {status}: {rest}")));
    }
    let mut body = String::new();
    let mut buf = [0u8; 4096];
    while !pred(&body) {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    Ok(body)
}

/// Hang up, as a client that gives up does.
pub fn hang_up(s: TcpStream) {
    let _ = s.shutdown(Shutdown::Both);
}

pub fn chat_body(content: &str, max_tokens: u32, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    })
}

/// Seconds until the first content token of a streamed request.
pub fn time_to_first_content(server: &Server, body: &serde_json::Value) -> f64 {
    let start = Instant::now();
    let s = server.open_stream(body);
    read_until(&s, |b| b.contains("\"content\":\"") && b.matches("data: ").count() >= 2).expect("stream");
    let t = start.elapsed().as_secs_f64();
    hang_up(s);
    t
}
