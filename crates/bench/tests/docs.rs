//! docs/BENCHMARKS.md is made from docs/BENCHMARKS.in.md and the runs in
//! bench/results: stale or hand-edited docs fail here.

use std::path::{Path, PathBuf};

use augur_bench::template;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const REGENERATE: &str =
    "augur bench report --template docs/BENCHMARKS.in.md --runs bench/results --out docs/BENCHMARKS.md";

#[test]
fn benchmarks_md_is_rendered_from_the_stored_runs() {
    let root = root();
    let rendered = template::render_file(&root.join("docs/BENCHMARKS.in.md"), &root.join("bench/results"))
        .unwrap_or_else(|e| panic!("the template does not render: {e}"));
    let committed = std::fs::read_to_string(root.join("docs/BENCHMARKS.md")).expect("docs/BENCHMARKS.md");
    if rendered != committed {
        let line = rendered.lines().zip(committed.lines()).position(|(a, b)| a != b);
        panic!(
            "docs/BENCHMARKS.md is stale (first difference at line {}): run `{REGENERATE}`",
            line.map_or_else(|| "end".into(), |l| (l + 1).to_string())
        );
    }
}

#[test]
fn the_template_prose_has_no_hand_typed_measurements() {
    let text = std::fs::read_to_string(root().join("docs/BENCHMARKS.in.md")).expect("template");
    let found = template::hand_typed(&text).expect("the template parses");
    let shown: Vec<String> = found.iter().map(|f| format!("line {}: {}", f.line, f.word)).collect();
    assert!(shown.is_empty(), "numbers typed by hand (take them from a directive): {shown:?}");
}

#[test]
fn the_committed_results_stay_small() {
    let mut total = 0u64;
    let mut stack = vec![root().join("bench/results")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("bench/results").flatten() {
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.len();
            }
        }
    }
    assert!(total < 512 * 1024, "bench/results holds {total} bytes: store hashes, not texts (--hash-only)");
}
