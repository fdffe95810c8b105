//! A Markdown section per stored run (`augur bench report RUN...`); for
//! whole documents rendered from runs, see [`crate::template`].

use std::fmt::Write;

use crate::stats;
use crate::store::Run;
use crate::template::tables::{self, SuiteTable};
use crate::template::values;

pub fn markdown(runs: &[Run]) -> String {
    let mut s = String::new();
    for run in runs {
        section(&mut s, run);
    }
    s
}

fn section(s: &mut String, run: &Run) {
    let m = &run.meta;
    let _ = writeln!(s, "### Run `{}` ({})\n", m.run_id, m.created);
    let _ = writeln!(s, "{}\n", tables::command(run));
    let _ = writeln!(
        s,
        "Machine: {}. {} iteration(s) after {} warm-up, temperature {}; baseline `{}`.\n",
        values::machine(run),
        m.iterations,
        m.warmup,
        m.temperature,
        m.baseline
    );
    for suite in stats::suites(&run.rows) {
        let _ = writeln!(s, "#### {suite}\n");
        let table = if run.rows.iter().any(|r| !r.metrics.is_empty()) {
            measured_table(run, &suite)
        } else {
            SuiteTable::all(run, &suite).render(run)
        };
        let _ = writeln!(s, "{table}\n");
    }
}

/// Rows of `bench import` and `bench load`: one line per prompt and
/// configuration, a column per metric the suite's rows carry.
fn measured_table(run: &Run, suite: &str) -> String {
    let mut metrics: Vec<&str> =
        run.rows.iter().filter(|r| r.suite == suite).flat_map(|r| r.metrics.keys().map(String::as_str)).collect();
    metrics.sort_unstable();
    metrics.dedup();
    tables::measured_rows(run, suite, &metrics)
}
