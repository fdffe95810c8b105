//! Helpers for driving the `augur` binary in tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Outcome {
    /// A clean refusal: non-zero exit code (not a signal), a message, no panic.
    pub fn assert_clean_error(&self, what: &str) {
        assert!(!self.timed_out, "{what}: timed out");
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "{what}: expected an error exit, got {:?}\n{}",
            self.code,
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{what}: panicked\n{}", self.stderr);
        assert!(self.stderr.contains("augur: error:"), "{what}: no clear message\n{}", self.stderr);
    }
}

/// Run augur with a time limit and an address-space cap (KiB), in `home` as AUGUR_HOME.
pub fn augur(args: &[&str], home: &Path, timeout: Duration, mem_kib: u64) -> Outcome {
    let bin = env!("CARGO_BIN_EXE_augur");
    let mut script = format!("ulimit -v {mem_kib}; exec \"$0\"");
    for i in 0..args.len() {
        script.push_str(&format!(" \"${{{}}}\"", i + 1));
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(bin)
        .args(args)
        .env("AUGUR_HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn augur");
    let start = Instant::now();
    let mut timed_out = false;
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        timed_out,
    }
}

/// The shared model cache, where the test script pulled the catalogue models.
pub fn cached_model(name: &str) -> std::path::PathBuf {
    augur_store::Store::open_default().unwrap().ensure(name, false).unwrap()
}

/// Files in a store directory that are not finished models or their sidecars.
pub fn stray_files(models_dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(models_dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !(n.ends_with(".gguf") || n.ends_with(".json") || n.starts_with('.') && n.ends_with(".lock")))
        .collect()
}
