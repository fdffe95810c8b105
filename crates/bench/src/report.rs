//! Markdown for docs/BENCHMARKS.md, regenerated from stored runs.

use std::fmt::Write;

use crate::stats;
use crate::store::Run;

fn opt(x: Option<f64>, pct: bool) -> String {
    match x {
        Some(v) if pct => format!("{:.0}%", v * 100.0),
        Some(v) => format!("{v:.2}"),
        None => "-".into(),
    }
}

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
    let _ = writeln!(s, "```\n{}\n```\n", m.command);
    let _ = writeln!(
        s,
        "Machine: {} ({} cores, {:.1} GiB, {}). augur {} on {}, commit `{}`. {} iteration(s) after {} warm-up, temperature {}; baseline `{}`.\n",
        m.machine.cpu_model,
        m.machine.cores,
        m.machine.memory_bytes as f64 / (1u64 << 30) as f64,
        m.machine.isa_flags.join(" "),
        m.augur_version,
        m.llama_cpp_version,
        m.git_commit.as_deref().unwrap_or("unknown"),
        m.iterations,
        m.warmup,
        m.temperature,
        m.baseline
    );
    for suite in stats::suites(&run.rows) {
        let _ = writeln!(s, "#### {suite}\n");
        let _ = writeln!(
            s,
            "| config | prompts | decode t/s | end-to-end t/s | TTFT ms | acceptance | quality | judge 0-3 | mismatches | errors |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for c in run.configs() {
            let st = stats::suite_stats(&run.rows, &c.name, &suite);
            let _ = writeln!(
                s,
                "| `{}` | {} | {:.2} | {:.2} | {:.0} | {} | {} | {} | {} | {} |",
                c.name,
                st.prompts,
                st.decode_tps,
                st.e2e_tps,
                st.ttft_s * 1000.0,
                opt(st.acceptance, true),
                opt(st.score, false),
                opt(st.judge, false),
                st.mismatches,
                st.errors
            );
        }
        s.push('\n');
    }
}
