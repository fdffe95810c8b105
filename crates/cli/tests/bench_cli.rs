//! `augur bench import`, `report --template` and `load` from the command
//! line: a document is rendered, checked for staleness, and bad input is a
//! clean error naming the file and line.

mod common;

use std::time::Duration;

use common::augur;

const T: Duration = Duration::from_secs(60);
const MEM: u64 = 8 * 1024 * 1024;

const ROW: &str =
    r#"{"suite": "decode", "prompt": "m", "config": "peer", "command": "peer -n 8", "metrics": {"decode_tps": 12.5}}"#;

#[test]
fn import_then_render_and_check_a_document() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let rows = h.join("rows.jsonl");
    std::fs::write(&rows, format!("{ROW}\n")).unwrap();
    let store = h.join("results");
    let s = store.to_str().unwrap();
    let o = augur(
        &["bench", "import", rows.to_str().unwrap(), "--out", s, "--label", "decode", "--command", "x.sh 8"],
        h,
        T,
        MEM,
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stdout.contains("| m | `peer` | 12.50 |"), "{}", o.stdout);

    let template = h.join("doc.in.md");
    std::fs::write(
        &template,
        "Peer: {{ value run=decode config=peer metric=decode_tps }} t/s.\n\n{{ command run=decode }}\n",
    )
    .unwrap();
    let doc = h.join("doc.md");
    let (t, d) = (template.to_str().unwrap(), doc.to_str().unwrap());
    let o = augur(&["bench", "report", "--template", t, "--runs", s, "--out", d], h, T, MEM);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(&doc).unwrap(), "Peer: 12.50 t/s.\n\n```\nx.sh 8\npeer -n 8\n```\n");
    let check = ["bench", "report", "--template", t, "--runs", s, "--out", d, "--check"];
    assert_eq!(augur(&check, h, T, MEM).code, Some(0));
    std::fs::write(&doc, "edited by hand\n").unwrap();
    let o = augur(&check, h, T, MEM);
    o.assert_clean_error("stale doc");
    assert!(o.stderr.contains("is stale"), "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(&doc).unwrap(), "edited by hand\n", "--check writes nothing");
}

#[test]
fn bad_rows_templates_and_load_plans_are_clean_errors() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let store = h.join("results");
    let s = store.to_str().unwrap();
    let rows = h.join("rows.jsonl");
    std::fs::write(&rows, format!("{ROW}\n{{\"suite\": \"decode\"}}\n")).unwrap();
    let o = augur(&["bench", "import", rows.to_str().unwrap(), "--out", s], h, T, MEM);
    o.assert_clean_error("bad row");
    assert!(o.stderr.contains("line 2"), "{}", o.stderr);

    let template = h.join("doc.in.md");
    std::fs::write(&template, "fine\n{{ value run=nope config=a metric=b }}\n").unwrap();
    let o = augur(&["bench", "report", "--template", template.to_str().unwrap(), "--runs", s], h, T, MEM);
    o.assert_clean_error("unknown run");
    assert!(o.stderr.contains("doc.in.md:2: unknown run \"nope\""), "{}", o.stderr);

    let o = augur(&["bench", "load", "--suite", "code_editing", "--target", "name=x,model=m", "--out", s], h, T, MEM);
    o.assert_clean_error("load without endpoint");
    assert!(o.stderr.contains("no endpoint"), "{}", o.stderr);
}
