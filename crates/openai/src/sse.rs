//! The server-sent events line protocol (WHATWG HTML, "event stream
//! interpretation") over a blocking reader. The maintained SSE crates are
//! async-only; this is the small synchronous part a blocking client needs.

use std::io::{self, BufRead};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when none was given.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` seen so far on the stream, if any.
    pub id: Option<String>,
}

pub struct SseReader<R> {
    inner: R,
    /// Lines split out of one read (a lone `\r` ends a line too).
    pending: std::collections::VecDeque<String>,
    started: bool,
    last_id: Option<String>,
}

impl<R: BufRead> SseReader<R> {
    pub fn new(inner: R) -> Self {
        SseReader { inner, pending: Default::default(), started: false, last_id: None }
    }

    /// The next event, or `None` at the end of the stream. An event not
    /// closed by a blank line before the end is dropped, as the spec says.
    pub fn next_event(&mut self) -> io::Result<Option<SseEvent>> {
        let mut event = String::new();
        let mut data = String::new();
        let mut has_data = false;
        while let Some(line) = self.next_line()? {
            if line.is_empty() {
                if has_data {
                    let event = if event.is_empty() { "message".into() } else { event };
                    return Ok(Some(SseEvent { event, data, id: self.last_id.clone() }));
                }
                event.clear();
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match field {
                // A line starting with ':' is a comment (field name "").
                "" => {}
                "event" => event = value.into(),
                "data" => {
                    if has_data {
                        data.push('\n');
                    }
                    data.push_str(value);
                    has_data = true;
                }
                "id" if !value.contains('\0') => self.last_id = Some(value.into()),
                _ => {}
            }
        }
        Ok(None)
    }

    fn next_line(&mut self) -> io::Result<Option<String>> {
        if let Some(l) = self.pending.pop_front() {
            return Ok(Some(l));
        }
        let mut buf = Vec::new();
        if self.inner.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        let mut text = String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if !self.started {
            self.started = true;
            if let Some(rest) = text.strip_prefix('\u{feff}') {
                text = rest.into();
            }
        }
        let body = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
        self.pending.extend(body.split('\r').map(str::to_string));
        Ok(self.pending.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(input: &str) -> Vec<(String, String)> {
        let mut r = SseReader::new(input.as_bytes());
        let mut out = Vec::new();
        while let Some(e) = r.next_event().expect("read") {
            out.push((e.event, e.data));
        }
        out
    }

    fn msg(data: &str) -> (String, String) {
        ("message".into(), data.into())
    }

    #[test]
    fn data_lines_make_events_at_blank_lines() {
        assert_eq!(events("data: a\n\ndata:b\n\n"), [msg("a"), msg("b")]);
        assert_eq!(events("data: one\ndata:  two\n\n"), [msg("one\n two")]);
    }

    #[test]
    fn every_line_ending_counts() {
        assert_eq!(events("data: a\r\n\r\ndata: b\r\rdata: c\n\n"), [msg("a"), msg("b"), msg("c")]);
    }

    #[test]
    fn comments_unknown_fields_and_empty_events_are_skipped() {
        let got = events(": keep-alive\n\nretry: 10\nfoo: bar\n\nevent: ping\n\ndata\n\n");
        assert_eq!(got, [msg("")]);
    }

    #[test]
    fn event_types_and_ids_are_kept() {
        let mut r = SseReader::new("\u{feff}id: 7\nevent: error\ndata: x\n\ndata: y\n\n".as_bytes());
        let e = r.next_event().expect("read").expect("event");
        assert_eq!((e.event.as_str(), e.data.as_str(), e.id.as_deref()), ("error", "x", Some("7")));
        let e = r.next_event().expect("read").expect("event");
        assert_eq!((e.event.as_str(), e.id.as_deref()), ("message", Some("7")));
    }

    #[test]
    fn an_unfinished_event_at_the_end_is_dropped() {
        assert_eq!(events("data: a\n\ndata: cut"), [msg("a")]);
        assert_eq!(events("data: a\n\ndata: cut\n"), [msg("a")]);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut r = SseReader::new(&b"data: \xff\n\n"[..]);
        assert_eq!(r.next_event().expect_err("bad utf-8").kind(), io::ErrorKind::InvalidData);
    }
}
