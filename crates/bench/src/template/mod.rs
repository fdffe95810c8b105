//! Documents rendered from stored runs (`augur bench report --template`).
//!
//! A template is Markdown whose prose is kept verbatim and whose
//! directives, `{{ KIND key=value ... }}` on one line, expand into tables
//! and numbers computed from the runs in a results store. Run names are run
//! ids or labels (the latest run with that label); `A+B` reads several runs
//! as one. The syntax is documented at the top of `docs/BENCHMARKS.in.md`.
//! The prose may not hold numbers that look like measurements (see
//! [`lint`]): those come from directives, so the document cannot drift from
//! the runs it is made from.

pub mod format;
pub mod lint;
pub mod parse;
mod render;
pub mod tables;
pub(crate) mod values;

use std::path::Path;

use crate::error::{BenchError, Result};

pub use lint::Finding;
pub use render::render;

/// Render a template file against a results store.
pub fn render_file(template: &Path, runs_dir: &Path) -> Result<String> {
    let text = std::fs::read_to_string(template).map_err(BenchError::io(format!("reading {}", template.display())))?;
    let findings = hand_typed(&text).map_err(|(line, message)| BenchError::Template {
        path: template.to_path_buf(),
        line,
        message,
    })?;
    if let Some(f) = findings.first() {
        return Err(BenchError::Template {
            path: template.to_path_buf(),
            line: f.line,
            message: format!("{:?} looks like a hand-typed measurement: take it from a directive", f.word),
        });
    }
    render(&text, template, runs_dir)
}

/// Words of the template's prose (directives and the template comment
/// left out) that look like measurements.
pub fn hand_typed(text: &str) -> Result<Vec<Finding>, (usize, String)> {
    let lines = parse::parse(text)?;
    let prose = lines.into_iter().map(|l| {
        let text: Vec<&str> = l
            .pieces
            .iter()
            .map(|p| match p {
                parse::Piece::Text(t) => *t,
                // A word of its own: `-fa 0`, {{ value }} t/s` has no `0 t/s`.
                parse::Piece::Directive(_) => " ⟨directive⟩ ",
            })
            .collect();
        (l.number, text.concat())
    });
    Ok(lint::findings(prose))
}
