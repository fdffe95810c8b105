//! `bench import` into a store, then templates rendered from it: each
//! directive's output, and clear errors for bad templates.

use std::path::{Path, PathBuf};

use augur_bench::import::{import, ImportPlan};
use augur_bench::meta::Record;
use augur_bench::{store, template, BenchError};

const ROWS: &str = r#"
{"suite": "spec", "prompt": "edit", "config": "off", "command": "augur run --spec off -f PROMPT", "metrics": {"decode_tps": 30.0}, "output_sha256": "1111111111111111111111111111111111111111111111111111111111111111"}
{"suite": "spec", "prompt": "edit", "config": "off", "command": "augur run --spec off -f PROMPT", "metrics": {"decode_tps": 32.0}, "output_sha256": "1111111111111111111111111111111111111111111111111111111111111111"}
{"suite": "spec", "prompt": "edit", "config": "lookup", "metrics": {"decode_tps": 45.0}, "output_sha256": "1111111111111111111111111111111111111111111111111111111111111111"}
{"suite": "spec", "prompt": "edit", "config": "peer", "command": "llama-lookup -f PROMPT", "metrics": {"decode_tps": 62.0}}
{"suite": "spec", "prompt": "chat", "config": "off", "metrics": {"decode_tps": 40.0}, "output_sha256": "2222222222222222222222222222222222222222222222222222222222222222"}
{"suite": "spec", "prompt": "chat", "config": "lookup", "metrics": {"decode_tps": 36.0}, "output_sha256": "3333333333333333333333333333333333333333333333333333333333333333"}
{"suite": "spec", "prompt": "chat", "config": "peer", "metrics": {"decode_tps": 20.0}}
{"suite": "curve", "prompt": "k=1", "config": "off", "metrics": {"verify_s": 0.027}}
{"suite": "curve", "prompt": "k=2", "config": "off", "metrics": {"verify_s": 0.050}}
"#;

fn plan(dir: &Path, file: PathBuf, label: &str) -> ImportPlan {
    ImportPlan {
        file,
        runs_dir: dir.to_path_buf(),
        record: Record {
            command: "scripts/bench-spec.sh 2 128".into(),
            commands: vec!["python3 scripts/spec_prompts.py DIR".into()],
            peers: [("llama.cpp".to_string(), "b1".to_string())].into(),
            label: Some(label.into()),
        },
        baseline: Some("off".into()),
        identity: Vec::new(),
        temperature: 0.0,
        warmup: 0,
    }
}

/// A store holding ROWS imported under the label `spec`.
fn store_with_spec() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rows.jsonl");
    std::fs::write(&file, ROWS).expect("write rows");
    let done = import(&plan(dir.path(), file, "spec")).expect("import");
    (dir, done.run_id)
}

fn render(dir: &Path, text: &str) -> Result<String, BenchError> {
    template::render(text, Path::new("T.md"), dir)
}

#[test]
fn import_stores_rows_commands_and_identity() {
    let (dir, id) = store_with_spec();
    let run = store::resolve(dir.path(), "spec").expect("by label");
    assert_eq!(run.id(), id);
    assert_eq!(run.rows.len(), 9);
    assert_eq!(run.meta.baseline, "off");
    assert_eq!(run.meta.iterations, 2);
    assert_eq!(run.meta.label.as_deref(), Some("spec"));
    assert_eq!(run.meta.peers["llama.cpp"], "b1");
    let names: Vec<&str> = run.configs().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["off", "lookup", "peer"]);
    assert_eq!(run.configs()[0].commands, ["augur run --spec off -f PROMPT"]);
    assert_eq!(run.rows[1].iteration, 1);
    // lookup matches off on `edit`, differs on `chat`; the peer is unchecked.
    let ident: Vec<Option<bool>> = run.rows.iter().map(|r| r.identical).collect();
    assert_eq!(ident[..7], [Some(true), Some(true), Some(true), None, Some(true), Some(false), None]);
    let index = store::read_index(dir.path()).expect("index");
    assert_eq!((index.len(), index[0].mismatches), (1, 1));
}

#[test]
fn directives_expand_into_tables_and_values() {
    let (dir, _) = store_with_spec();
    let t = "\
# Title

{{ grid run=spec suite=spec metric=decode_tps identity=yes configs=lookup,peer }}

Lookup runs at {{ ratio run=spec metric=decode_tps config=lookup baseline=off prompt=edit }} on edits, \
{{ ratio run=spec metric=decode_tps config=lookup baseline=off stat=min suite=spec }} at worst; off decodes \
{{ value run=spec config=off metric=decode_tps prompt=edit digits=1 }} t/s. {{ count run=spec what=mismatches }} mismatch.
c(k) = {{ series run=spec config=off metric=verify_ms suite=curve }} ms.
";
    let md = render(dir.path(), t).expect("render");
    let want = "\
# Title

| prompt | `off` decode t/s | `lookup` | `peer` | identical to `off` |
|---|---:|---:|---:|---:|
| edit | 31.00 | 45.00 (1.45×) | 62.00 (2.00×) | yes |
| chat | 40.00 | 36.00 (0.90×) | 20.00 (0.50×) | NO (lookup) |
| minimum | | 0.90× | 0.50× | |
| geometric mean | | 1.14× | 1.00× | |

Lookup runs at 1.45× on edits, 0.90× at worst; off decodes 31.0 t/s. 1 mismatch.
c(k) = 27, 50 ms.
";
    assert_eq!(md, want);
}

#[test]
fn rows_suite_and_command_blocks() {
    let (dir, _) = store_with_spec();
    let t = "\
{{ rows run=spec suite=spec columns=prompt,config,decode_tps labels=\"prompt,tool,speed\" ratio=decode_tps baseline=off }}

{{ suite run=spec suite=spec columns=prompts,decode_tps,mismatches }}

{{ command run=spec }}
";
    let md = render(dir.path(), t).expect("render");
    let want = "\
| prompt | tool | speed | vs `off` |
|---|---|---:|---:|
| edit | `off` | 31.00 | 1.00× |
| edit | `lookup` | 45.00 | 1.45× |
| edit | `peer` | 62.00 | 2.00× |
| chat | `off` | 40.00 | 1.00× |
| chat | `lookup` | 36.00 | 0.90× |
| chat | `peer` | 20.00 | 0.50× |

| config | prompts | decode t/s | mismatches |
|---|---:|---:|---:|
| `off` | 2 | 35.50 | 0 |
| `lookup` | 2 | 40.50 | 1 |
| `peer` | 2 | 41.00 | 0 |

```
scripts/bench-spec.sh 2 128
python3 scripts/spec_prompts.py DIR
augur run --spec off -f PROMPT
llama-lookup -f PROMPT
```
";
    assert_eq!(md, want);
}

#[test]
fn runs_combine_with_plus_and_the_latest_label_wins() {
    let (dir, first) = store_with_spec();
    let other = dir.path().join("other.jsonl");
    std::fs::write(
        &other,
        r#"{"suite": "spec", "prompt": "edit", "config": "server", "metrics": {"decode_tps": 10.0}}"#,
    )
    .expect("write");
    let mut p = plan(dir.path(), other.clone(), "server");
    p.baseline = None;
    import(&p).expect("import");
    let md = render(dir.path(), "{{ ratio run=spec+server metric=decode_tps config=server baseline=off prompt=edit }}")
        .expect("render");
    assert_eq!(md, "0.32×");
    // A newer run with the same label replaces the older one in documents.
    std::fs::write(
        &other,
        r#"{"suite": "spec", "prompt": "edit", "config": "server", "metrics": {"decode_tps": 20.0}}"#,
    )
    .expect("write");
    import(&p).expect("import again");
    let v = render(dir.path(), "{{ value run=server config=server metric=decode_tps }}").expect("render");
    assert_eq!(v, "20.00");
    // The old run is still reachable by id.
    assert_eq!(render(dir.path(), &format!("{{{{ count run={first} what=rows }}}}")).expect("render"), "9");
}

#[test]
fn counts_narrow_to_a_suite_and_a_configuration() {
    let (dir, _) = store_with_spec();
    let count = |args: &str| render(dir.path(), &format!("{{{{ count run=spec {args} }}}}")).expect("render");
    assert_eq!(count("what=prompts"), "4");
    assert_eq!(count("what=prompts suite=spec"), "2");
    assert_eq!(count("what=rows suite=curve"), "2");
    assert_eq!(count("what=rows suite=spec config=off"), "3");
    assert_eq!(count("what=mismatches suite=spec"), "1");
    assert!(template_err(dir.path(), "{{ count run=spec what=rows suite=nope }}").1.contains("nope"));
}

fn template_err(dir: &Path, text: &str) -> (usize, String) {
    match render(dir, text) {
        Err(BenchError::Template { line, message, .. }) => (line, message),
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn bad_references_are_clear_errors_naming_the_line() {
    let (dir, _) = store_with_spec();
    let d = dir.path();
    let (line, m) = template_err(d, "ok\n{{ value run=nope config=off metric=decode_tps }}\n");
    assert_eq!(line, 2);
    assert!(m.contains("unknown run \"nope\""), "{m}");
    assert!(template_err(d, "{{ value run=spec config=of metric=decode_tps suite=spec }}")
        .1
        .contains("no configuration \"of\""));
    assert!(template_err(d, "{{ value run=spec config=off metric=decode_tps }}").1.contains("give suite="));
    assert!(template_err(d, "{{ value run=spec config=off metric=ttft_s suite=spec }}").1.contains("no \"ttft_s\""));
    assert!(template_err(d, "{{ value run=spec config=off metric=decode_tps suite=x }}").1.contains("no suite \"x\""));
    assert!(template_err(d, "{{ ratio run=spec metric=decode_tps config=off baseline=off stat=mode suite=spec }}")
        .1
        .contains("stat=mode"));
    assert!(template_err(d, "{{ rows run=spec columns=config labels=a,b }}").1.contains("2 labels for 1 columns"));
    assert!(template_err(d, "{{ grid run=spec metric=decode_tps suite=spec identity=maybe }}")
        .1
        .contains("identity=maybe"));
    assert!(template_err(d, "{{ value run=spec config=off metric=decode_tps suite=spec digits=two }}")
        .1
        .contains("digits=two"));
    assert!(template_err(d, "{{ count run=spec what=everything }}").1.contains("what=everything"));
    assert!(template_err(d, "{{ value run=spec+spec config=off metric=decode_tps }}").1.contains("both have"));
}

#[test]
fn hand_typed_numbers_in_prose_fail_the_render() {
    let (dir, _) = store_with_spec();
    let path = dir.path().join("T.md");
    std::fs::write(&path, "fine {{ count run=spec what=rows }}\nit ran at 33.8 t/s\n").expect("write");
    match template::render_file(&path, dir.path()) {
        Err(BenchError::Template { line: 2, message, .. }) => assert!(message.contains("33.8"), "{message}"),
        other => panic!("expected a lint error on line 2, got {other:?}"),
    }
}

#[test]
fn bad_import_lines_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rows.jsonl");
    let cases = [
        ("{\"suite\": \"s\", \"prompt\": \"p\", \"config\": \"c\"}", "needs metrics"),
        ("{\"suite\": \"s\", \"prompt\": \"p\", \"config\": \"c\", \"metrics\": {}, \"colour\": 1}", "unknown field"),
        ("{\"suite\": \"s\", \"prompt\": \"p\", \"config\": \"c\", \"metrics\": {\"x\": 1}, \"output_sha256\": \"abc\"}", "64 hex"),
        ("not json", "expected"),
    ];
    for (line, want) in cases {
        std::fs::write(&file, format!("\n{line}\n")).expect("write");
        let err = import(&plan(dir.path(), file.clone(), "x")).expect_err(line).to_string();
        assert!(err.contains("line 2") && err.contains(want), "{line}: {err}");
    }
    std::fs::write(&file, "").expect("write");
    assert!(import(&plan(dir.path(), file.clone(), "x")).expect_err("empty").to_string().contains("no rows"));
    std::fs::write(&file, "{\"suite\": \"s\", \"prompt\": \"p\", \"config\": \"c\", \"metrics\": {\"x\": 1}}")
        .expect("write");
    assert!(import(&plan(dir.path(), file, "x")).expect_err("baseline").to_string().contains("baseline \"off\""));
    assert!(store::read_index(dir.path()).expect("index").is_empty());
}

/// A configuration that loads the model differently is checked against its
/// own plain run, and a pair naming a configuration without rows is refused.
#[test]
fn identity_pairs_check_a_configuration_against_its_own_base() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rows.jsonl");
    let hash = |c: char| c.to_string().repeat(64);
    let rows: Vec<String> = [("off", '1'), ("off-tree", '2'), ("auto-tree", '2'), ("auto", '3')]
        .map(|(config, c)| {
            format!(
                r#"{{"suite": "s", "prompt": "p", "config": "{config}", "metrics": {{"decode_tps": 1.0}}, "output_sha256": "{}"}}"#,
                hash(c)
            )
        })
        .into();
    std::fs::write(&file, rows.join("\n")).expect("write rows");
    let mut p = plan(dir.path(), file, "t");
    p.identity = vec![("off-tree".into(), "off-tree".into()), ("auto-tree".into(), "off-tree".into())];
    let done = import(&p).expect("import");
    // Only `auto` differs from its base (`off`).
    assert_eq!(done.mismatches, 1);
    let run = store::resolve(dir.path(), "t").expect("by label");
    let ident: Vec<(&str, Option<bool>)> = run.rows.iter().map(|r| (r.config.as_str(), r.identical)).collect();
    assert_eq!(
        ident,
        [("off", Some(true)), ("off-tree", Some(true)), ("auto-tree", Some(true)), ("auto", Some(false))]
    );
    p.identity = vec![("auto-tree".into(), "nowhere".into())];
    let err = import(&p).expect_err("unknown base");
    assert!(err.to_string().contains("nowhere"), "{err}");
}
