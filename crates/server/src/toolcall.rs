//! Reading tool calls out of the generated text, incrementally.
//!
//! The model writes calls in the Hermes format the call grammar enforces:
//! `<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>`. The
//! parser turns text into content, call starts (id and name) and argument
//! fragments as they arrive, so streamed calls look like OpenAI's: the name
//! first, then the arguments in pieces. The arguments object is tracked
//! brace by brace (strings included), so its end is known exactly; text that
//! might still become an opening tag is held back until it is decided. Non-streamed responses run the same parser
//! over the whole text, so both agree.
//!
//! Small models often skip the tags and answer with the bare call object
//! (`{"name": "f", "arguments": {...}}`), sometimes in a Markdown code
//! fence. As a best effort, an output that starts with such an object
//! naming one of the request's tools is read as a call too; the call
//! grammar does not constrain it, because `auto` switches the grammar on
//! only at the opening tag.

use serde_json::Value;

use crate::structured::CALL_CLOSE;

const OPEN: &str = "<tool_call>";

/// What the parser recognised in the text.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Content(String),
    /// A call opens: its position, a fresh id, and the function name.
    CallStart {
        index: usize,
        id: String,
        name: String,
    },
    /// More of the call's arguments (JSON text).
    Args {
        index: usize,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Ordinary text.
    Content,
    /// The output opened with `{` or a code fence: maybe a bare call.
    Bare,
    /// Inside a call, before `"arguments": ` has been read.
    Header,
    /// Streaming the arguments object.
    Args,
    /// After the arguments: skipping the call object's `}` (and the closing
    /// tag, for a tagged call).
    After,
    /// A call not in the expected layout: read whole at its end.
    Raw,
}

#[derive(Debug)]
pub struct CallParser {
    state: State,
    /// Text received but not yet emitted.
    buf: String,
    /// Some content went out already (leading whitespace is dropped).
    started: bool,
    calls: usize,
    /// Tool names a bare call object may use.
    tools: Vec<String>,
    /// Where the arguments object is (reset per call).
    scan: JsonScan,
    /// The current call came without tags.
    bare: bool,
    /// ... and inside a code fence.
    fenced: bool,
    /// How much of a bare call's closing (`}`, then a fence) was read.
    tail: usize,
}

/// Where a Markdown code fence opening a text ends.
#[derive(Debug, PartialEq)]
enum Fence {
    None,
    Incomplete,
    /// The fence line's length, newline included.
    Open(usize),
}

/// A bare call's remaining text after its arguments, whitespace aside.
const BARE_TAIL: &[u8] = b"}";
const FENCED_TAIL: &[u8] = b"}```";

/// Nesting of a JSON value read byte by byte.
#[derive(Debug, Default, Clone, Copy)]
struct JsonScan {
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl JsonScan {
    /// Read `s`; the index just past the end of the value, if it ends in `s`.
    fn feed(&mut self, s: &[u8]) -> Option<usize> {
        for (i, &b) in s.iter().enumerate() {
            if self.in_string {
                match b {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// How far the start of a call object has been read.
#[derive(Debug, PartialEq)]
enum Header {
    Incomplete,
    Mismatch,
    /// The name, and where the arguments value begins.
    Matched(String, usize),
}

impl CallParser {
    /// A parser for a request offering `tools` (their names).
    pub fn new(tools: Vec<String>) -> Self {
        CallParser {
            state: State::Content,
            buf: String::new(),
            started: false,
            calls: 0,
            tools,
            scan: JsonScan::default(),
            bare: false,
            fenced: false,
            tail: 0,
        }
    }

    /// Calls recognised so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    pub fn push(&mut self, text: &str, out: &mut Vec<Piece>) {
        self.buf.push_str(text);
        while self.step(out) {}
    }

    /// The text has ended: emit everything held back.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        let buf = std::mem::take(&mut self.buf);
        match self.state {
            State::Content | State::Bare => self.content(buf.trim_end(), out),
            State::Header | State::Raw => self.whole_call(&buf, false, out),
            State::Args => {
                self.args(&buf, out);
                self.calls += 1;
            }
            State::After => {}
        }
        self.state = State::Content;
    }

    /// One transition; true if another may follow.
    fn step(&mut self, out: &mut Vec<Piece>) -> bool {
        match self.state {
            State::Content => self.content_step(out),
            State::Bare => self.bare_step(out),
            State::Header => self.header_step(out),
            State::Args => self.args_step(out),
            State::After => self.after_step(),
            State::Raw => self.raw_step(out),
        }
    }

    fn content_step(&mut self, out: &mut Vec<Piece>) -> bool {
        let head = self.buf.trim_start();
        if !self.started && self.calls == 0 && (head.starts_with('{') || head.starts_with('`')) {
            // Leading whitespace is never emitted anyway.
            self.buf.drain(..self.buf.len() - head.len());
            self.state = State::Bare;
            return true;
        }
        if let Some(at) = self.buf.find(OPEN) {
            let before = cut(&mut self.buf, at, OPEN.len());
            self.content(before.trim_end(), out);
            self.state = State::Header;
            return true;
        }
        // Whitespace before a call is dropped, so it waits for what follows.
        let undecided = partial_suffix(&self.buf, OPEN);
        let end = self.buf[..self.buf.len() - undecided].trim_end().len();
        if end > 0 {
            let text: String = self.buf.drain(..end).collect();
            self.content(&text, out);
        }
        false
    }

    /// Decide whether an output opening with `{` is a bare call.
    fn bare_step(&mut self, out: &mut Vec<Piece>) -> bool {
        let (skip, header) = match fence(&self.buf) {
            Fence::Incomplete => return false,
            Fence::None => (0, scan_header(&self.buf)),
            Fence::Open(n) => (n, scan_header(&self.buf[n..])),
        };
        match header {
            Header::Incomplete => false,
            Header::Matched(name, end) if self.tools.contains(&name) => {
                self.open_args(name, skip + end, true, out);
                self.fenced = skip > 0;
                true
            }
            Header::Matched(..) | Header::Mismatch => {
                // Ordinary content (which may still hold tagged calls);
                // never look for a bare call again.
                self.started = true;
                self.state = State::Content;
                true
            }
        }
    }

    fn header_step(&mut self, out: &mut Vec<Piece>) -> bool {
        match scan_header(&self.buf) {
            Header::Matched(name, end) => {
                self.open_args(name, end, false, out);
                true
            }
            Header::Mismatch => {
                self.state = State::Raw;
                true
            }
            Header::Incomplete if self.buf.contains(CALL_CLOSE) => {
                self.state = State::Raw;
                true
            }
            Header::Incomplete => false,
        }
    }

    /// A call's name is known and its arguments start at `buf[end..]`.
    fn open_args(&mut self, name: String, end: usize, bare: bool, out: &mut Vec<Piece>) {
        out.push(Piece::CallStart { index: self.calls, id: call_id(), name });
        self.buf.drain(..end);
        self.scan = JsonScan::default();
        self.bare = bare;
        self.tail = 0;
        self.state = State::Args;
    }

    fn args_step(&mut self, out: &mut Vec<Piece>) -> bool {
        match self.scan.feed(self.buf.as_bytes()) {
            Some(end) => {
                let args = cut(&mut self.buf, end, 0);
                self.args(&args, out);
                self.calls += 1;
                self.state = State::After;
                true
            }
            None => {
                let args = std::mem::take(&mut self.buf);
                self.args(&args, out);
                false
            }
        }
    }

    /// Skip the call object's closing brace, and for a tagged call whatever
    /// comes before the closing tag (only whitespace in the grammar's layout).
    fn after_step(&mut self) -> bool {
        if !self.bare {
            let Some(at) = self.buf.find(CALL_CLOSE) else { return false };
            self.buf.drain(..at + CALL_CLOSE.len());
            self.state = State::Content;
            return true;
        }
        let tail = if self.fenced { FENCED_TAIL } else { BARE_TAIL };
        let mut i = 0;
        while let Some(&want) = tail.get(self.tail) {
            match self.buf.as_bytes().get(i) {
                None => {
                    self.buf.drain(..i);
                    return false;
                }
                Some(b) if b.is_ascii_whitespace() => i += 1,
                Some(&b) if b == want => {
                    self.tail += 1;
                    i += 1;
                }
                // Something else: it is content.
                Some(_) => break,
            }
        }
        self.buf.drain(..i);
        self.state = State::Content;
        true
    }

    fn raw_step(&mut self, out: &mut Vec<Piece>) -> bool {
        let Some(at) = self.buf.find(CALL_CLOSE) else { return false };
        let body = cut(&mut self.buf, at, CALL_CLOSE.len());
        self.whole_call(&body, true, out);
        self.state = State::Content;
        true
    }

    /// A call read in one piece: emitted as a call if it is a JSON object
    /// with a name, else given back as text.
    fn whole_call(&mut self, body: &str, closed: bool, out: &mut Vec<Piece>) {
        match parse_call(body) {
            Some((name, args)) => {
                out.push(Piece::CallStart { index: self.calls, id: call_id(), name });
                self.args(&args, out);
                self.calls += 1;
            }
            None => {
                let close = if closed { CALL_CLOSE } else { "" };
                let text = format!("{OPEN}{body}{close}");
                self.content(text.trim_end(), out);
            }
        }
    }

    fn content(&mut self, text: &str, out: &mut Vec<Piece>) {
        let text = if self.started { text } else { text.trim_start() };
        if !text.is_empty() {
            self.started = true;
            out.push(Piece::Content(text.to_string()));
        }
    }

    fn args(&self, text: &str, out: &mut Vec<Piece>) {
        if !text.is_empty() {
            out.push(Piece::Args { index: self.calls, text: text.to_string() });
        }
    }
}

/// Remove `buf[..at + skip]` and return `buf[..at]`.
fn cut(buf: &mut String, at: usize, skip: usize) -> String {
    let head = buf[..at].to_string();
    buf.drain(..at + skip);
    head
}

/// Length of the longest proper prefix of `tag` that `s` ends with. `tag`
/// is ASCII, so the cut is always on a character boundary.
fn partial_suffix(s: &str, tag: &str) -> usize {
    (1..tag.len()).rev().find(|&k| s.ends_with(&tag[..k])).unwrap_or(0)
}

fn parse_call(body: &str) -> Option<(String, String)> {
    let v: Value = serde_json::from_str(body.trim()).ok()?;
    let name = v.get("name")?.as_str()?.to_string();
    let args = match v.get("arguments")? {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some((name, args))
}

/// A code fence line (```` ``` ```` or ```` ```json ````) at the start of `s`.
fn fence(s: &str) -> Fence {
    const TICKS: &str = "```";
    if !s.starts_with(TICKS) {
        return if TICKS.starts_with(s) { Fence::Incomplete } else { Fence::None };
    }
    match s.find('\n') {
        Some(n) if matches!(s[TICKS.len()..n].trim(), "" | "json") => Fence::Open(n + 1),
        Some(_) => Fence::None,
        None if s.len() < 16 => Fence::Incomplete,
        None => Fence::None,
    }
}

fn scan_header(s: &str) -> Header {
    match header(s.as_bytes()) {
        Ok((name, end)) => Header::Matched(name, end),
        Err(h) => h,
    }
}

/// `{"name": "<name>", "arguments": ` with any JSON whitespace, followed
/// by the `{` of the arguments object.
fn header(s: &[u8]) -> Result<(String, usize), Header> {
    let mut i = lit(s, skip_ws(s, 0), b"{")?;
    i = lit(s, skip_ws(s, i), b"\"name\"")?;
    i = lit(s, skip_ws(s, i), b":")?;
    let (name, j) = string(s, skip_ws(s, i))?;
    i = lit(s, skip_ws(s, j), b",")?;
    i = lit(s, skip_ws(s, i), b"\"arguments\"")?;
    i = lit(s, skip_ws(s, i), b":")?;
    let i = skip_ws(s, i);
    match s.get(i) {
        None => Err(Header::Incomplete),
        Some(b'{') => Ok((name, i)),
        Some(_) => Err(Header::Mismatch),
    }
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

fn lit(s: &[u8], i: usize, pat: &[u8]) -> Result<usize, Header> {
    let rest = &s[i.min(s.len())..];
    if rest.starts_with(pat) {
        Ok(i + pat.len())
    } else if pat.starts_with(rest) {
        Err(Header::Incomplete)
    } else {
        Err(Header::Mismatch)
    }
}

/// A JSON string starting at `i`, decoded, and the index after it.
fn string(s: &[u8], i: usize) -> Result<(String, usize), Header> {
    match s.get(i) {
        None => return Err(Header::Incomplete),
        Some(b'"') => {}
        Some(_) => return Err(Header::Mismatch),
    }
    let mut j = i + 1;
    while let Some(&b) = s.get(j) {
        match b {
            b'\\' => j += 2,
            b'"' => {
                let name = serde_json::from_slice(&s[i..=j]).map_err(|_| Header::Mismatch)?;
                return Ok((name, j + 1));
            }
            _ => j += 1,
        }
    }
    Err(Header::Incomplete)
}

/// A call id in OpenAI's style: `call_` and 24 random hex digits.
pub fn call_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut a = state.build_hasher();
    a.write_u8(0);
    let mut b = state.build_hasher();
    b.write_u8(1);
    format!("call_{:016x}{:08x}", a.finish(), b.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Content, and each call's name and arguments, from the pieces.
    fn gather(pieces: &[Piece]) -> (String, Vec<(String, String)>) {
        let mut content = String::new();
        let mut calls: Vec<(String, String)> = Vec::new();
        for p in pieces {
            match p {
                Piece::Content(t) => content.push_str(t),
                Piece::CallStart { index, name, id } => {
                    assert_eq!(*index, calls.len());
                    assert!(id.starts_with("call_") && id.len() == 29, "{id}");
                    calls.push((name.clone(), String::new()));
                }
                Piece::Args { index, text } => calls[*index].1.push_str(text),
            }
        }
        (content, calls)
    }

    /// Parse `text` fed in pieces of `step` bytes (on char boundaries).
    fn parse_in_steps(text: &str, step: usize) -> (Vec<Piece>, usize) {
        let mut p = CallParser::new(vec!["f".into(), "get_weather".into()]);
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let mut cut = step.min(rest.len());
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            p.push(&rest[..cut], &mut out);
            rest = &rest[cut..];
        }
        p.finish(&mut out);
        (out, p.calls())
    }

    fn check(text: &str, content: &str, calls: &[(&str, &str)]) {
        for step in [1, 2, 3, 7, 1000] {
            let (pieces, n) = parse_in_steps(text, step);
            let (c, got) = gather(&pieces);
            assert_eq!(c, content, "content, step {step}: {text:?}");
            let want: Vec<(String, String)> = calls.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
            assert_eq!(got, want, "calls, step {step}: {text:?}");
            assert_eq!(n, calls.len());
        }
    }

    #[test]
    fn plain_text_passes_through() {
        check("Hello, world!", "Hello, world!", &[]);
        check("  a < b and c <tool", "a < b and c <tool", &[]);
        check("x}</tool_call>", "x}</tool_call>", &[]);
    }

    #[test]
    fn one_call() {
        let t = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
        check(t, "", &[("get_weather", "{\"city\": \"Paris\"}")]);
    }

    #[test]
    fn content_then_calls() {
        let t =
            "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": {\"y\": [1, 2]}}}\n</tool_call>\n\
                 <tool_call>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_call>\n";
        check(t, "Let me check.", &[("a", "{\"x\": {\"y\": [1, 2]}}"), ("b", "{}")]);
        let t = "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"s\": \"}</tool\"}}\n</tool_call>\nDone.";
        check(t, "Done.", &[("a", "{\"s\": \"}</tool\"}")]);
    }

    #[test]
    fn other_layouts_are_read_whole_or_given_back() {
        let t = "<tool_call>{\"arguments\": {\"q\": 1}, \"name\": \"s\"}</tool_call>";
        check(t, "", &[("s", "{\"q\":1}")]);
        let t = "<tool_call>{\"name\": \"s\", \"arguments\": \"{\\\"q\\\": 1}\"}</tool_call>";
        check(t, "", &[("s", "{\"q\": 1}")]);
        check("<tool_call>not json</tool_call> ok", "<tool_call>not json</tool_call> ok", &[]);
    }

    #[test]
    fn cut_off_calls() {
        // Stopped at the closing tag (parallel_tool_calls false).
        check("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n", "", &[("f", "{\"a\": 1}")]);
        // Cut by max_tokens: what there is.
        check("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": ", "", &[("f", "{\"a\": ")]);
        check("<tool_call>\n{\"name\": \"f", "<tool_call>\n{\"name\": \"f", &[]);
    }

    #[test]
    fn bare_call_objects_of_known_tools() {
        check("{\"name\": \"f\", \"arguments\": {\"a\": [1]}}\n", "", &[("f", "{\"a\": [1]}")]);
        check("{\"name\": \"f\", \"arguments\": {\"a\": \"}\"}}\n{\"b\": 1}", "{\"b\": 1}", &[("f", "{\"a\": \"}\"}")]);
        check(" {\"name\": \"g\", \"arguments\": {}}", "{\"name\": \"g\", \"arguments\": {}}", &[]);
        check("{\"answer\": 42}", "{\"answer\": 42}", &[]);
        let fenced = "```json\n{\n  \"name\": \"f\",\n  \"arguments\": {\n    \"a\": 1\n  }\n}\n```";
        check(fenced, "", &[("f", "{\n    \"a\": 1\n  }")]);
        check("```json\n{\"name\": \"f\", \"arguments\": {}}\n```\nDone.", "Done.", &[("f", "{}")]);
        check("```python\nprint(1)\n```", "```python\nprint(1)\n```", &[]);
        check("`x` is 1", "`x` is 1", &[]);
        let t = "```\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>";
        check(t, "```", &[("f", "{}")]);
        check("{\"name\": \"f\"", "{\"name\": \"f\"", &[]);
        check("Text {\"name\": \"f\", \"arguments\": {}}", "Text {\"name\": \"f\", \"arguments\": {}}", &[]);
    }

    #[test]
    fn names_are_decoded() {
        let t = "<tool_call>\n{\"name\": \"a\\u0062\", \"arguments\": {}}\n</tool_call>";
        check(t, "", &[("ab", "{}")]);
    }
}
