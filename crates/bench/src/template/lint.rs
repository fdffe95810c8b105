//! Hand-typed measurements in a template's prose: every number a reader
//! could take for a measurement must come from a directive.
//!
//! A word (whitespace-separated, surrounding punctuation stripped) is a
//! hand-typed measurement when it holds a decimal number (`33.8`), a ratio
//! (`1.2×`, `1.2x`), a percentage (`12%`), a spread (`±3`), a fraction
//! (`23/24`) or a number with thousands separators (`5,030`), or when a
//! number is followed by a unit word (`t/s`, `ms`, `s`, `×`, `%`).
//! Allowed: words that start with a letter (`qwen2.5-coder-1.5b`,
//! `py0.3.36`), dotted versions (`0.3.36`), model sizes (`1.5B`, `270M`),
//! and thresholds written after `≥`, `≤`, `>=`, `<=` (goals, not results).

/// A word of prose that looks like a measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub line: usize,
    pub word: String,
}

const UNITS: &[&str] = &["t/s", "tok/s", "tokens/s", "ms", "s", "×", "x", "%"];
const THRESHOLDS: &[&str] = &["≥", "≤", ">=", "<="];

/// Findings in prose (directives already removed), numbered by line.
pub fn findings<'a>(lines: impl IntoIterator<Item = (usize, String)> + 'a) -> Vec<Finding> {
    let mut out = Vec::new();
    for (line, text) in lines {
        let words: Vec<&str> = text.split_whitespace().collect();
        for (i, raw) in words.iter().enumerate() {
            let prev = i.checked_sub(1).map(|j| words[j]);
            let next = words.get(i + 1).map(|w| strip(w));
            if is_measurement(raw, prev, next) {
                out.push(Finding { line, word: raw.to_string() });
            }
        }
    }
    out
}

fn strip(w: &str) -> &str {
    w.trim_start_matches(['(', '[', '{', '`', '*', '_', '"', '\'', '~'])
        .trim_end_matches([')', ']', '}', '`', '*', '_', ',', '.', ';', ':', '!', '?', '"', '\'', '~'])
}

fn is_measurement(raw: &str, prev: Option<&str>, next: Option<&str>) -> bool {
    let w = strip(raw);
    if prev.is_some_and(|p| THRESHOLDS.contains(&strip(p))) || THRESHOLDS.iter().any(|t| w.starts_with(t)) {
        return false;
    }
    if w.contains('±') && w.chars().any(|c| c.is_ascii_digit()) {
        return true;
    }
    let Some(first) = w.chars().next() else { return false };
    if first.is_alphabetic() || !first.is_ascii_digit() && !w.starts_with(['-', '+', '.']) {
        return false;
    }
    let body = w.trim_start_matches(['-', '+']);
    if is_version(body) || is_model_size(body) {
        return false;
    }
    has_decimal(body)
        || has_unit_suffix(body)
        || is_fraction(body)
        || is_thousands(body)
        || (is_number(body) && next.is_some_and(|n| UNITS.contains(&n)))
}

fn is_number(w: &str) -> bool {
    !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '.') && w.chars().any(|c| c.is_ascii_digit())
}

/// `0.3.36`: three or more dotted parts.
fn is_version(w: &str) -> bool {
    let parts: Vec<&str> = w.split('.').collect();
    parts.len() >= 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// `1.5B`, `270M`.
fn is_model_size(w: &str) -> bool {
    w.strip_suffix(['B', 'M']).is_some_and(is_number)
}

fn has_decimal(w: &str) -> bool {
    let b = w.as_bytes();
    (1..b.len().saturating_sub(1)).any(|i| b[i] == b'.' && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit())
}

/// `1.2×`, `3x`, `12%`, `27ms`.
fn has_unit_suffix(w: &str) -> bool {
    ["×", "x", "%", "ms", "t/s"].iter().any(|u| w.strip_suffix(u).is_some_and(is_number))
}

fn is_fraction(w: &str) -> bool {
    w.split_once('/').is_some_and(|(a, b)| is_number(a) && is_number(b))
}

fn is_thousands(w: &str) -> bool {
    let parts: Vec<&str> = w.split(',').collect();
    parts.len() >= 2
        && parts[0].len() <= 3
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && parts[1..].iter().all(|p| p.len() == 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        findings([(1, text.to_string())]).into_iter().map(|f| f.word).collect()
    }

    #[test]
    fn measurements_are_found() {
        for text in [
            "decodes at 33.83 on the 1.5B",
            "that is 1.01× faster",
            "or 1.2x",
            "about ±10% noise",
            "a 26% gain",
            "23/24 valid",
            "c(1..3) = 27, 50, 71 ms",
            "35 t/s",
            "35t/s",
            "5,030 drafted tokens",
            "(0.91x)",
            "3 × faster",
        ] {
            assert!(!words(text).is_empty(), "{text:?} should be flagged");
        }
        assert_eq!(words("it ran 33.83 and 2 threads"), ["33.83"]);
    }

    #[test]
    fn names_versions_and_settings_are_allowed() {
        for text in [
            "qwen2.5-coder-1.5b and the 0.5B draft, gemma-3-270m",
            "llama-cpp-python 0.3.36 from `/root/.cache/augur-peers/llama.cpp-py0.3.36/build/bin`",
            "`llama-bench --repack 1 -fa 0 -p 64 -n 64`, 2 threads, 3 iterations, `-np 4`",
            "the goal of ≥ 0.97× holds; at least >= 1.5× on edits",
            "c(1..8) is the verify cost for k = 1..8",
            "on 2025-11-24, `--sweep experts=8,4,2,1`, `augur.constrain=false`",
            "a 22-prompt identity test",
        ] {
            assert_eq!(words(text), Vec::<String>::new(), "{text:?} should pass");
        }
    }
}
