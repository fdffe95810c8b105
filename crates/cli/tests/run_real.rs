//! `augur run` on a real model: streaming and --json agree, fields present.

mod common;

use std::time::Duration;

use common::{augur, cached_model};

#[test]
fn json_and_streamed_output_agree() {
    let home = tempfile::tempdir().unwrap();
    let m = cached_model("qwen2.5-coder-0.5b");
    let m = m.to_str().unwrap();
    let args = ["run", "-m", m, "--chat", "-p", "Name three prime numbers.", "-n", "24"];
    let t = Duration::from_secs(300);
    let mem = 16 << 20;
    let streamed = augur(&args, home.path(), t, mem);
    assert_eq!(streamed.code, Some(0), "{}", streamed.stderr);
    assert!(streamed.stderr.contains("decode"), "{}", streamed.stderr);
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let j = augur(&json_args, home.path(), t, mem);
    assert_eq!(j.code, Some(0), "{}", j.stderr);
    let v: serde_json::Value = serde_json::from_str(j.stdout.trim()).expect("one JSON object");
    for key in ["text", "prompt_tokens", "completion_tokens", "prompt_tps", "decode_tps", "finish_reason", "model"] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert!(v["decode_tps"].as_f64().unwrap() > 0.0);
    assert_eq!(streamed.stdout.trim_end_matches('\n'), v["text"].as_str().unwrap());
}
