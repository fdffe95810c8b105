//! Directive syntax: `{{ KIND key=value key="value with spaces" }}` on one
//! line. Block kinds (tables, command lines) stand alone on their line;
//! inline kinds (single values) go anywhere in prose.

/// What a directive expands into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One row per configuration, columns aggregated over a suite's prompts.
    Suite,
    /// One row per prompt, one column per configuration, ratios to a baseline.
    Grid,
    /// One row per (prompt, configuration), chosen columns.
    Rows,
    /// The command lines stored with the run, as a code block.
    Command,
    /// One number.
    Value,
    /// One configuration's metric over another's, as `N.NN×`.
    Ratio,
    /// How many rows, prompts, mismatches or errors.
    Count,
    /// One configuration's metric over its prompts, comma-separated.
    Series,
    /// What the run was measured on.
    Machine,
}

const KINDS: &[(&str, Kind)] = &[
    ("suite", Kind::Suite),
    ("grid", Kind::Grid),
    ("rows", Kind::Rows),
    ("command", Kind::Command),
    ("value", Kind::Value),
    ("ratio", Kind::Ratio),
    ("count", Kind::Count),
    ("series", Kind::Series),
    ("machine", Kind::Machine),
];

impl Kind {
    fn named(name: &str) -> Option<Kind> {
        KINDS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    pub fn name(self) -> &'static str {
        KINDS.iter().find(|(_, k)| *k == self).map_or("?", |(n, _)| n)
    }

    pub fn is_block(self) -> bool {
        matches!(self, Kind::Suite | Kind::Grid | Kind::Rows | Kind::Command)
    }

    /// (required keys, optional keys)
    fn keys(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Kind::Suite => (&["run"], &["suite", "configs", "columns", "labels", "digits"]),
            Kind::Grid => (&["run", "metric"], &["baseline", "configs", "suite", "identity", "digits"]),
            Kind::Rows => {
                (&["run", "columns"], &["labels", "suite", "configs", "prompts", "ratio", "baseline", "digits"])
            }
            Kind::Command => (&["run"], &[]),
            Kind::Value => (&["run", "config", "metric"], &["suite", "prompt", "digits"]),
            Kind::Ratio => (&["run", "metric", "config", "baseline"], &["suite", "prompt", "stat", "digits"]),
            Kind::Count => (&["run", "what"], &["config", "suite"]),
            Kind::Series => (&["run", "config", "metric"], &["suite", "digits"]),
            Kind::Machine => (&["run"], &[]),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    pub kind: Kind,
    args: Vec<(String, String)>,
}

impl Directive {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.args.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A key the kind requires (checked at parse time).
    pub fn req(&self, key: &str) -> &str {
        self.get(key).unwrap_or_default()
    }

    /// A comma-separated list.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Piece<'a> {
    Text(&'a str),
    Directive(Directive),
}

/// One template line, split into prose and directives.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    pub number: usize,
    pub pieces: Vec<Piece<'a>>,
}

/// The template's own documentation: a block from a line starting with
/// `<!-- template` to the next line holding `-->`, dropped from the output.
const COMMENT_OPEN: &str = "<!-- template";
const COMMENT_CLOSE: &str = "-->";

/// The lines that render, numbered as in the file. Errors carry the line.
pub fn parse(template: &str) -> Result<Vec<Line<'_>>, (usize, String)> {
    let mut out = Vec::new();
    let mut in_comment = false;
    for (i, text) in template.lines().enumerate() {
        let number = i + 1;
        if in_comment || text.trim_start().starts_with(COMMENT_OPEN) {
            in_comment = !text.contains(COMMENT_CLOSE);
            continue;
        }
        let pieces = parse_line(text).map_err(|m| (number, m))?;
        check_blocks(&pieces).map_err(|m| (number, m))?;
        out.push(Line { number, pieces });
    }
    if in_comment {
        return Err((template.lines().count(), format!("unclosed `{COMMENT_OPEN}` comment")));
    }
    Ok(out)
}

fn parse_line(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            pieces.push(Piece::Text(&rest[..start]));
        }
        let body = &rest[start + 2..];
        let end = body.find("}}").ok_or("`{{` without `}}` on the same line")?;
        pieces.push(Piece::Directive(directive(&body[..end])?));
        rest = &body[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// A table or code block cannot sit inside a sentence.
fn check_blocks(pieces: &[Piece]) -> Result<(), String> {
    let blank = |p: &Piece| matches!(p, Piece::Text(t) if t.trim().is_empty());
    for p in pieces {
        if let Piece::Directive(d) = p {
            if d.kind.is_block() && pieces.iter().filter(|q| !blank(q)).count() > 1 {
                return Err(format!("`{}` makes a block: it must stand alone on its line", d.kind.name()));
            }
        }
    }
    Ok(())
}

fn directive(body: &str) -> Result<Directive, String> {
    let words = split_words(body)?;
    let (name, rest) = words.split_first().ok_or("empty directive `{{ }}`")?;
    let kind = Kind::named(name).ok_or_else(|| {
        let names: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
        format!("unknown directive {name:?} (known: {})", names.join(", "))
    })?;
    let (required, optional) = kind.keys();
    let mut args: Vec<(String, String)> = Vec::new();
    for w in rest {
        let (k, v) = w.split_once('=').ok_or_else(|| format!("`{name}`: {w:?} is not key=value"))?;
        if !required.contains(&k) && !optional.contains(&k) {
            let mut all: Vec<&str> = required.to_vec();
            all.extend(optional);
            return Err(format!("`{name}` takes no key {k:?} (keys: {})", all.join(", ")));
        }
        if args.iter().any(|(a, _)| a == k) {
            return Err(format!("`{name}`: {k:?} given twice"));
        }
        if v.is_empty() {
            return Err(format!("`{name}`: {k:?} is empty"));
        }
        args.push((k.into(), v.into()));
    }
    if let Some(missing) = required.iter().find(|k| !args.iter().any(|(a, _)| a == *k)) {
        return Err(format!("`{name}` needs {missing}=..."));
    }
    Ok(Directive { kind, args })
}

/// Whitespace-separated words; `key="a b"` keeps its spaces (no escapes).
fn split_words(body: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in body.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if quoted {
        return Err("unclosed `\"`".into());
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Directive {
        let lines = parse(text).expect("parses");
        match &lines[0].pieces[..] {
            [Piece::Directive(d)] => d.clone(),
            other => panic!("expected one directive, got {other:?}"),
        }
    }

    #[test]
    fn directives_and_prose_split() {
        let lines = parse("Speed {{ ratio run=a metric=decode_tps config=b baseline=c }} here.").expect("parses");
        assert_eq!(lines.len(), 1);
        assert!(matches!(lines[0].pieces[0], Piece::Text("Speed ")));
        assert!(matches!(&lines[0].pieces[1], Piece::Directive(d) if d.kind == Kind::Ratio && d.req("config") == "b"));
        assert!(matches!(lines[0].pieces[2], Piece::Text(" here.")));
    }

    #[test]
    fn quoted_values_keep_spaces_and_lists_split() {
        let d = one(r#"{{ rows run=x columns=prompt,config,decode_tps labels="model,tool,decode t/s" }}"#);
        assert_eq!(d.get("labels"), Some("model,tool,decode t/s"));
        assert_eq!(d.list("columns"), Some(vec!["prompt".into(), "config".into(), "decode_tps".into()]));
        let d = one(r#"{{ value run=x config="augur run --no-repack" metric=decode_tps }}"#);
        assert_eq!(d.req("config"), "augur run --no-repack");
    }

    #[test]
    fn closing_braces_alone_are_prose() {
        let lines = parse(r#"`{"spec": {"mode": "off"}}` stays"#).expect("parses");
        assert!(matches!(&lines[0].pieces[..], [Piece::Text(_)]));
    }

    #[test]
    fn the_template_comment_is_dropped() {
        let t = "<!-- template: docs\n{{ bogus }}\n-->\nkept\n";
        let lines = parse(t).expect("parses");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].number, 4);
    }

    fn err(text: &str) -> (usize, String) {
        parse(text).expect_err("must fail")
    }

    #[test]
    fn bad_directives_name_their_line() {
        let (line, m) = err("fine\n\nsee {{ valu run=a }}\n");
        assert_eq!(line, 3);
        assert!(m.contains("unknown directive \"valu\""), "{m}");
        assert!(err("{{ value run=a metric=x }}").1.contains("needs config="));
        assert!(err("{{ value run=a config=b metric=x colour=red }}").1.contains("no key \"colour\""));
        assert!(err("{{ value run=a config=b metric=x run=c }}").1.contains("given twice"));
        assert!(err("{{ value run=a config metric=x }}").1.contains("not key=value"));
        assert!(err("x {{ value run=a config=b metric=c").1.contains("without `}}`"));
        assert!(err(r#"{{ value run=a config="b metric=c }}"#).1.contains("unclosed"));
        assert!(err("{{ }}").1.contains("empty directive"));
        assert!(err("{{ value run= config=b metric=c }}").1.contains("is empty"));
        assert!(err("<!-- template\nnever closed\n").1.contains("unclosed"));
    }

    #[test]
    fn blocks_stand_alone() {
        let (line, m) = err("a\nTable: {{ suite run=a }}\n");
        assert_eq!(line, 2);
        assert!(m.contains("stand alone"), "{m}");
        assert!(parse("  {{ suite run=a }}  ").is_ok());
    }
}
