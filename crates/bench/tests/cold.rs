//! Cold targets: one process per request, each on the suffix store its
//! kind promises. A stand-in for `augur run` records which earlier answers
//! the store it was given holds.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use augur_bench::cold::ColdProcess;
use augur_bench::{Request, RequestSpec, Target, TargetConfig};
use augur_runtime::{ChatMessage, SpecMode};

/// Answers with the store's contents, then (drafting from suffix trees)
/// appends this prompt to the store, as `augur run` adds its answer.
const FAKE_RUN: &str = r#"#!/bin/sh
store=""; spec=""; msgs=""
while [ $# -gt 0 ]; do
  case "$1" in
    --suffix-store) store="$2"; shift ;;
    --spec) spec="$2"; shift ;;
    --messages) msgs="$2"; shift ;;
  esac
  shift
done
seen=$(cat "$store" 2>/dev/null | tr '\n' ' ')
tag=$(sed 's/.*"content":"\([^"]*\)".*/\1/' "$msgs")
case "$spec" in suffix|auto) echo "$tag" >> "$store" ;; esac
printf '{"text":"%s","finish_reason":"stop","prompt_tokens":3,"completion_tokens":2,"time_to_first_token":0.1,"decode_time":0.2,"spec":{"drafted":0,"accepted":0}}\n' "$seen"
"#;

fn fake_exe(dir: &std::path::Path) -> PathBuf {
    let exe = dir.join("fake-augur");
    std::fs::write(&exe, FAKE_RUN).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    exe
}

fn ask(t: &ColdProcess, prompt: &str, mode: SpecMode) -> String {
    let messages = [ChatMessage::new("user", prompt)];
    let req = Request {
        messages: &messages,
        max_tokens: 4,
        temperature: 0.0,
        seed: 0,
        spec: Some(RequestSpec { mode, max: 8 }),
    };
    t.generate(&req).unwrap().text.trim().to_string()
}

#[test]
fn a_sequence_store_holds_the_earlier_prompts_answers_and_never_this_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TargetConfig::parse("model=m,cold=sequence").unwrap();
    let t = ColdProcess::new(&cfg, 512, fake_exe(dir.path())).unwrap();
    for mode in [SpecMode::Off, SpecMode::Auto, SpecMode::Suffix, SpecMode::Auto] {
        assert_eq!(ask(&t, "first", mode), "", "{mode:?}: nothing before the first prompt");
    }
    for mode in [SpecMode::Suffix, SpecMode::Off, SpecMode::Auto] {
        assert_eq!(ask(&t, "second", mode), "first", "{mode:?}");
    }
    assert_eq!(ask(&t, "third", SpecMode::Lookup), "first second");
}

#[test]
fn a_fresh_store_is_empty_for_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TargetConfig::parse("model=m,cold=fresh").unwrap();
    let t = ColdProcess::new(&cfg, 512, fake_exe(dir.path())).unwrap();
    for prompt in ["first", "first", "second", "third"] {
        assert_eq!(ask(&t, prompt, SpecMode::Auto), "");
    }
}

#[test]
fn a_failed_process_is_an_error_not_a_row_of_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("failing");
    std::fs::write(&exe, "#!/bin/sh\necho 'error: no such model' >&2\nexit 2\n").unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = ColdProcess::new(&TargetConfig::parse("model=m,cold=fresh").unwrap(), 512, exe).unwrap();
    let messages = [ChatMessage::new("user", "x")];
    let req = Request { messages: &messages, max_tokens: 4, temperature: 0.0, seed: 0, spec: None };
    let err = t.generate(&req).unwrap_err().to_string();
    assert!(err.contains("no such model"), "{err}");
}
