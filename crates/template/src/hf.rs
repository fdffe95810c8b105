//! The extras Hugging Face transformers adds to its jinja environment.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, State};
use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

use crate::guard::budget;
use crate::TemplateError;

pub(crate) fn install(env: &mut Environment<'static>) {
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
}

fn raise_exception(state: &State, message: Option<Value>) -> Result<Value, Error> {
    let text = message.map(|m| m.to_string()).unwrap_or_default();
    Err(budget(state)?.trip(TemplateError::Raised(text)))
}

/// `json.dumps(x, ensure_ascii=False, indent=indent)` as HF's `tojson` does.
fn tojson(state: &State, value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let budget = budget(state)?;
    let cap = budget.limits().max_string_bytes;
    let mut out = BoundedBytes { buf: Vec::new(), cap };
    let written = match indent {
        Some(n) => {
            let pad = vec![b' '; n.min(cap)];
            value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, PrettyFormatter::with_indent(&pad)))
        }
        None => value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, PyCompact)),
    };
    if written.is_err() && out.buf.len() >= cap {
        return Err(budget.trip(TemplateError::over("max_string_bytes", cap.saturating_add(1), cap)));
    }
    written.map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("tojson failed: {e}")))?;
    String::from_utf8(out.buf)
        .map(Value::from)
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "tojson produced invalid UTF-8"))
}

struct BoundedBytes {
    buf: Vec<u8>,
    cap: usize,
}

impl io::Write for BoundedBytes {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.cap {
            self.buf.resize(self.cap, 0);
            return Err(io::Error::other("output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Python's default separators are `", "` and `": "`.
struct PyCompact;

impl Formatter for PyCompact {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.begin_array_value(w, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// `datetime.now().strftime(fmt)` for the common directives, in UTC.
fn strftime_now(format: &str) -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    strftime(format, secs)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

pub(crate) fn strftime(format: &str, unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (year, month, day) = augur_persist::civil_from_days(days as i64);
    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
    let weekday = ((days + 3) % 7) as usize;
    let month_name = MONTHS[(month as usize - 1) % 12];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('-') if chars.clone().next() == Some('d') => {
                chars.next();
                out.push_str(&day.to_string());
            }
            Some('B') => out.push_str(month_name),
            Some('b') => out.push_str(&month_name[..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('H') => out.push_str(&format!("{:02}", secs / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", secs % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strftime;

    #[test]
    fn strftime_formats_common_directives() {
        // 2024-07-26 13:05:09 UTC, a Friday.
        let t = 1_721_952_000 + 13 * 3600 + 5 * 60 + 9;
        assert_eq!(strftime("%d %b %Y", t), "26 Jul 2024");
        assert_eq!(strftime("%A %B %-d, %y %H:%M:%S %%", t), "Friday July 26, 24 13:05:09 %");
        assert_eq!(strftime("%Y-%m-%d", 951_782_400), "2000-02-29");
    }
}
