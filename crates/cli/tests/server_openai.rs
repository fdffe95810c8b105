//! `augur serve` driven by the official `openai` Python client, and greedy
//! output byte-identical to `augur run --json`.

mod server_support;

use std::process::Command;
use std::time::Duration;

use server_support::{model_path, run_bounded, Server, KEY, MODEL};

const PROMPT: &str = "Write a Python function that checks whether a number is prime.";
const MAX_TOKENS: &str = "32";

#[test]
fn official_client_and_identity_with_augur_run() {
    let python_ok = Command::new("python3").args(["-c", "import openai"]).status().is_ok_and(|s| s.success());
    assert!(python_ok, "python3 with the `openai` package is required");
    let server = Server::start(&["--queue", "4"], true);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/openai_client.py");
    let (code, stdout, stderr) = run_bounded(
        Command::new("python3").args([script, &server.base_url(), KEY, MODEL, PROMPT, MAX_TOKENS]),
        Duration::from_secs(240),
    );
    assert_eq!(code, Some(0), "python client failed:\n{stdout}\n{stderr}\nserver log:\n{}", server.log());
    let last = stdout.lines().last().expect("output");
    let served: serde_json::Value = serde_json::from_str(last).expect("JSON line");

    let model = model_path();
    let (code, out, err) = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_augur")).args([
            "run",
            "-m",
            model.to_str().unwrap(),
            "--chat",
            "-p",
            PROMPT,
            "-n",
            MAX_TOKENS,
            "--json",
        ]),
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(0), "augur run failed: {err}");
    let run: serde_json::Value = serde_json::from_str(out.trim()).expect("run --json");
    assert_eq!(served["greedy_text"], run["text"], "server and `augur run` differ");
    let status = server.stop();
    assert!(status.success(), "server exit on SIGTERM: {status}");
}
