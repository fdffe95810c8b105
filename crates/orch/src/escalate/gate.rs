//! Gate commands: a role's executable check of an answer. A gate may be
//! anything (a test runner, a script a user wrote), so it runs in a process
//! group of its own under resource limits, its input is written and its
//! stderr read while it runs (a gate that ignores its input or writes a lot
//! never blocks augur), and at its end, timely or not, the whole group is
//! killed: nothing it started outlives it.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::process::{kill_process_group, prlimit, Pid, Resource, Rlimit, Signal};
use wait_timeout::ChildExt;

/// Longest a gate command may run before it counts as failed.
pub const GATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most of a gate's stderr kept for the failure message; the rest is read
/// and dropped.
const STDERR_KEPT: usize = 16 * 1024;

/// What a gate may use: address space, file size written, core dumps.
const LIMITS: [(Resource, u64); 3] = [(Resource::As, 8 << 30), (Resource::Fsize, 256 << 20), (Resource::Core, 0)];

/// Run `argv` with the answer on stdin; `Err` says why it failed.
pub fn run_gate(argv: &[String], answer: &str) -> Result<(), String> {
    run_gate_within(argv, answer, GATE_TIMEOUT)
}

/// [`run_gate`] with its own deadline.
pub fn run_gate_within(argv: &[String], answer: &str, timeout: Duration) -> Result<(), String> {
    let (cmd, args) = argv.split_first().ok_or("empty gate command")?;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    let group = Pid::from_child(&child);
    limit(group, timeout);
    let writer = child.stdin.take().map(|mut stdin| {
        let answer = answer.to_owned();
        // A gate that exits without reading its input is fine: ignore EPIPE.
        std::thread::spawn(move || drop(stdin.write_all(answer.as_bytes())))
    });
    let reader = child.stderr.take().map(|s| std::thread::spawn(move || read_bounded(s)));
    let waited = child.wait_timeout(timeout);
    // Whatever happened, nothing the gate started may outlive it; this also
    // closes the pipes its background processes held, ending the threads.
    let _ = kill_process_group(group, Signal::KILL);
    let status = finish(&mut child, waited);
    if let Some(w) = writer {
        let _ = w.join();
    }
    let err = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    match status {
        Ok(Some(s)) if s.success() => Ok(()),
        Ok(Some(s)) => Err(format!("{cmd} exited with {s}: {}", excerpt(&err))),
        Ok(None) => Err(format!("{cmd} ran longer than {} s", timeout.as_secs_f64())),
        Err(e) => Err(format!("waiting for {cmd}: {e}")),
    }
}

/// The exit status, reaping the child if it was killed at the deadline.
fn finish(
    child: &mut Child,
    waited: std::io::Result<Option<std::process::ExitStatus>>,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    match waited {
        Ok(Some(s)) => Ok(Some(s)),
        Ok(None) => {
            let _ = child.wait();
            Ok(None)
        }
        Err(e) => {
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Applied right after spawning (the gate has barely started); a limit the
/// system refuses leaves the deadline and the group kill in force.
fn limit(pid: Pid, timeout: Duration) {
    let cpu = timeout.as_secs() + 1;
    for (resource, max) in LIMITS.into_iter().chain([(Resource::Cpu, cpu)]) {
        let _ = prlimit(Some(pid), resource, Rlimit { current: Some(max), maximum: Some(max) });
    }
}

fn read_bounded(mut r: impl Read) -> String {
    let mut kept = Vec::with_capacity(1024);
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

fn excerpt(err: &str) -> String {
    err.trim().chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".to_string(), "-c".to_string(), script.to_string()]
    }

    #[test]
    fn gate_exit_status_decides() {
        assert!(run_gate(&sh("grep -q hello"), "say hello").is_ok());
        let e = run_gate(&sh("grep -q hello || { echo no greeting >&2; exit 3; }"), "bye").unwrap_err();
        assert!(e.contains("no greeting"), "{e}");
        assert!(run_gate(&["/nonexistent/gate".to_string()], "x").is_err());
    }

    /// A gate that leaves a background process behind, whether it exits
    /// in time or is stopped at its deadline, leaves nothing running: the
    /// background process never gets to write its file.
    #[test]
    fn a_gate_leaves_no_process_behind() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [("exits", "exit 0", 5.0), ("times-out", "sleep 30", 0.3)];
        let mut flags = Vec::new();
        for (name, rest, timeout) in cases {
            let flag = dir.path().join(name);
            let script = format!("(sleep 1; touch {}) & {rest}", flag.display());
            let started = Instant::now();
            let r = run_gate_within(&sh(&script), "", Duration::from_secs_f64(timeout));
            assert_eq!(r.is_ok(), name == "exits", "{r:?}");
            assert!(started.elapsed() < Duration::from_secs(1), "{name}: waited for the background process");
            flags.push(flag);
        }
        std::thread::sleep(Duration::from_millis(1500));
        for flag in flags {
            assert!(!flag.exists(), "{}: a background process outlived its gate", flag.display());
        }
    }

    /// A gate that writes more than a pipe holds to stderr, and one that
    /// never reads a large answer, finish instead of hanging to the deadline.
    #[test]
    fn a_chatty_or_deaf_gate_does_not_hang() {
        let started = Instant::now();
        let e = run_gate_within(&sh("head -c 1000000 /dev/zero | tr '\\0' x >&2; exit 1"), "", Duration::from_secs(20))
            .unwrap_err();
        assert!(e.contains("exited with"), "{e}");
        // Never reads, never ends: stopped at its deadline, not blocked
        // writing its input.
        let big = "y".repeat(4 << 20);
        let e = run_gate_within(&sh("sleep 30"), &big, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("ran longer"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }
}
