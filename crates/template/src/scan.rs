//! A cheap, non-recursive pre-scan of template source.
//!
//! minijinja's parser and code generator recurse once per nesting level, so
//! a hostile template nested thousands deep could overflow the native stack
//! before any limit inside the engine is reached. This scanner runs in
//! constant stack space and rejects such sources before they are parsed.

use crate::{Limits, TemplateError};

const BLOCK_OPENERS: &[&str] = &["if", "for", "macro", "call", "filter", "with", "block", "autoescape", "raw"];

/// Rejects sources whose nesting or per-tag size exceeds the limits.
pub(crate) fn check_structure(src: &str, limits: &Limits) -> Result<(), TemplateError> {
    let bytes = src.as_bytes();
    let mut blocks = 0usize;
    let mut pos = 0usize;
    while let Some(open) = find_tag_open(bytes, pos) {
        let kind = bytes[open + 1];
        if kind == b'#' {
            pos = find(bytes, open + 2, b"#}").map_or(bytes.len(), |end| end + 2);
            continue;
        }
        let close: &[u8] = if kind == b'%' { b"%}" } else { b"}}" };
        let tag = scan_tag(bytes, open + 2, close);
        if kind == b'%' {
            blocks = apply_statement(&src[open + 2..tag.end], blocks);
        }
        let depth = blocks.saturating_add(tag.max_brackets);
        if depth > limits.max_nesting {
            return Err(TemplateError::over("max_nesting", depth, limits.max_nesting));
        }
        if tag.tokens > limits.max_expression_tokens {
            return Err(TemplateError::over("max_expression_tokens", tag.tokens, limits.max_expression_tokens));
        }
        pos = tag.end.saturating_add(2).min(bytes.len());
        if kind == b'%' && first_word(&src[open + 2..tag.end]) == "raw" {
            pos = skip_raw(src, pos);
        }
    }
    Ok(())
}

struct TagScan {
    end: usize,
    tokens: usize,
    max_brackets: usize,
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let hay = bytes.get(from..)?;
    hay.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

fn find_tag_open(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let brace = at + bytes.get(at..)?.iter().position(|&b| b == b'{')?;
        if matches!(bytes.get(brace + 1), Some(b'{' | b'%' | b'#')) {
            return Some(brace);
        }
        at = brace + 1;
    }
}

/// Walks one tag body, skipping string literals, up to its closing delimiter.
fn scan_tag(bytes: &[u8], start: usize, close: &[u8]) -> TagScan {
    let mut scan = TagScan { end: bytes.len(), tokens: 0, max_brackets: 0 };
    let mut brackets = 0usize;
    let mut in_word = false;
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        if brackets == 0 && bytes[i..].starts_with(close) {
            scan.end = i;
            return scan;
        }
        let word_char = b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
        if word_char && !in_word {
            scan.tokens += 1;
        }
        in_word = word_char;
        match b {
            b'\'' | b'"' => {
                scan.tokens += 1;
                i = skip_string(bytes, i);
                continue;
            }
            b'(' | b'[' | b'{' => {
                brackets += 1;
                scan.max_brackets = scan.max_brackets.max(brackets);
            }
            b')' | b']' | b'}' => brackets = brackets.saturating_sub(1),
            _ => {}
        }
        if !word_char && !b.is_ascii_whitespace() {
            scan.tokens += 1;
        }
        i += 1;
    }
    scan
}

/// Returns the index just past the string literal starting at `start`.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn first_word(body: &str) -> &str {
    let body = body.trim_start_matches(['-', '+']).trim_start();
    let end = body.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(body.len());
    &body[..end]
}

fn apply_statement(body: &str, blocks: usize) -> usize {
    let word = first_word(body);
    if word.starts_with("end") {
        return blocks.saturating_sub(1);
    }
    // `{% set x %}...{% endset %}` opens a block; `{% set x = 1 %}` does not.
    let opens = BLOCK_OPENERS.contains(&word) || (word == "set" && !body.contains('='));
    if opens {
        blocks.saturating_add(1)
    } else {
        blocks
    }
}

fn skip_raw(src: &str, from: usize) -> usize {
    let bytes = src.as_bytes();
    let mut at = from;
    while let Some(open) = find(bytes, at, b"{%") {
        let end = find(bytes, open + 2, b"%}").unwrap_or(bytes.len());
        if first_word(&src[open + 2..end]) == "endraw" {
            return open;
        }
        at = open + 2;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, max_nesting: usize) -> Result<(), TemplateError> {
        let limits = Limits { max_nesting, ..Limits::default() };
        check_structure(src, &limits)
    }

    #[test]
    fn counts_blocks_and_brackets_together() {
        let src = "{% for m in x %}{% if a %}{{ f((1)) }}{% endif %}{% endfor %}";
        assert!(check(src, 4).is_ok());
        assert!(check(src, 3).is_err());
    }

    #[test]
    fn closed_blocks_do_not_accumulate() {
        let src = "{% if a %}x{% endif %}".repeat(1000);
        assert!(check(&src, 1).is_ok());
    }

    #[test]
    fn ignores_delimiters_in_strings_comments_and_raw() {
        assert!(check("{{ '%} {% if ((( ' }}", 0).is_ok());
        assert!(check("{# {% if a %}{% if b %} #}", 0).is_ok());
        assert!(check("{% raw %}{% if a %}{% if b %}{% endraw %}", 1).is_ok());
    }

    #[test]
    fn set_blocks_nest_but_assignments_do_not() {
        assert!(check("{% set x = 1 %}{% set y = 2 %}", 0).is_ok());
        assert!(check("{% set x %}{% set y %}a{% endset %}{% endset %}", 1).is_err());
    }
}
