//! How numbers and column names are written.

/// How one metric is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Fixed(usize),
    Int,
    /// A fraction written as a percentage with this many decimals.
    Pct(usize),
}

/// Counts are integers, shares and rates percentages, milliseconds whole,
/// the rest two decimals; `digits` forces fixed decimals.
pub fn format_of(metric: &str, digits: Option<usize>) -> Format {
    const COUNTS: &[&str] = &[
        "prompts",
        "mismatches",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "drafted",
        "accepted",
        "clients",
        "requests",
        "completed",
        "valid",
        "retries_429",
        "forced_drafted",
        "forced_accepted",
        "invariant_batch",
    ];
    match (metric, digits) {
        (m, _) if COUNTS.contains(&m) => Format::Int,
        (_, Some(d)) => Format::Fixed(d),
        (m, None) => default_format(m),
    }
}

fn default_format(metric: &str) -> Format {
    match metric {
        "acceptance" => Format::Pct(0),
        m if m.ends_with("_share") => Format::Pct(2),
        m if m.ends_with("_rate") => Format::Pct(0),
        m if m.ends_with("_ms") => Format::Fixed(0),
        _ => Format::Fixed(2),
    }
}

pub fn number(v: f64, f: Format) -> String {
    match f {
        Format::Fixed(d) => format!("{v:.d$}"),
        Format::Int => format!("{v:.0}"),
        Format::Pct(d) => format!("{:.d$}%", v * 100.0),
    }
}

pub fn cell(v: Option<f64>, f: Format) -> String {
    v.map_or_else(|| "-".into(), |v| number(v, f))
}

pub fn ratio(v: f64, digits: usize) -> String {
    format!("{v:.digits$}×")
}

/// A column heading for a metric: `decode_tps` is "decode t/s",
/// `ttft_p95_ms` "TTFT p95 ms".
pub fn label(metric: &str) -> String {
    match metric {
        "score" => return "quality".into(),
        "judge" => return "judge 0-3".into(),
        "e2e_tps" => return "end-to-end t/s".into(),
        _ => {}
    }
    let words: Vec<String> = metric
        .split('_')
        .map(|w| match w {
            "tps" => "t/s".to_string(),
            "ttft" | "itl" => w.to_uppercase(),
            w => w.to_string(),
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_have_formats_and_labels() {
        assert_eq!(number(33.834, format_of("decode_tps", None)), "33.83");
        assert_eq!(number(1104.4, format_of("ttft_ms", None)), "1104");
        assert_eq!(number(0.0013, format_of("grammar_share", None)), "0.13%");
        assert_eq!(number(0.62, format_of("acceptance", None)), "62%");
        assert_eq!(number(859.0, format_of("completion_tokens", None)), "859");
        assert_eq!(number(2.0, format_of("decode_tps", Some(0))), "2");
        assert_eq!(cell(None, Format::Int), "-");
        assert_eq!(ratio(1.0149, 2), "1.01×");
        assert_eq!(label("decode_tps"), "decode t/s");
        assert_eq!(label("ttft_p95_ms"), "TTFT p95 ms");
        assert_eq!(label("score"), "quality");
    }
}
