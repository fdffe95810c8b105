//! `augur check`: load a model once in a short-lived child process, so a
//! file that makes llama.cpp abort cannot take a long-running server down.
//! A passed check is remembered by the file's SHA-256.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use augur_bench::TargetConfig;
use augur_gguf::MetaOverride;
use augur_runtime::{ChatMessage, ModelParams, Scorer, WorkerConfig};
use augur_store::Store;
use clap::Args;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Model: catalogue name, name in the store, or path to a .gguf file.
    pub model: String,
    /// Metadata overrides to check with the model, KEY=TYPE:VALUE.
    #[arg(long = "override-kv", value_name = "KEY=TYPE:VALUE")]
    pub overrides: Vec<String>,
    /// Check again even if this file passed before.
    #[arg(long)]
    pub force: bool,
}

/// The child's side, run as `augur check-child PATH [OVERRIDE...]`.
#[derive(Args, Debug)]
pub struct ChildArgs {
    pub path: PathBuf,
    pub overrides: Vec<String>,
}

const CHILD_TIMEOUT: Duration = Duration::from_secs(300);
/// Address-space cap for the child, in KiB: a hostile file must not take
/// the machine's memory with it.
const CHILD_MEMORY_KIB: u64 = 64 << 20;

pub fn check(a: CheckArgs) -> Result<()> {
    let store = Store::open_default()?;
    let path = store.ensure(&a.model, true)?;
    let overrides = parse_overrides(&a.overrides)?;
    let (_, sha) = augur_store::sha256_file(&path)?;
    let marker = marker_path(&store, &sha, &a.overrides);
    if !a.force && marker.as_deref().is_some_and(Path::exists) {
        println!("{}: ok (checked before, sha256 {sha})", path.display());
        return Ok(());
    }
    augur_engine::check_file(&path, &overrides)?;
    run_child(&path, &a.overrides)?;
    if let Some(m) = marker {
        remember(&m)?;
    }
    println!("{}: ok (loads and generates; sha256 {sha})", path.display());
    Ok(())
}

/// Make sure `path` passed a check before this process loads it: a file
/// never seen before is loaded once in a child process, so that if
/// llama.cpp aborts on it, only the child dies. The file's SHA-256 is the
/// record; a second marker keyed by its path, size, inode and modification
/// time spares hashing a file that has not changed.
pub fn ensure_checked(store: &Store, path: &Path, overrides: &[String]) -> Result<()> {
    let quick = stat_marker(store, path, overrides);
    if quick.as_deref().is_some_and(Path::exists) {
        return Ok(());
    }
    let (_, sha) = augur_store::sha256_file(path)?;
    let marker = marker_path(store, &sha, overrides);
    if !marker.as_deref().is_some_and(Path::exists) {
        augur_engine::check_file(path, &parse_overrides(overrides)?)?;
        run_child(path, overrides)?;
        if let Some(m) = marker {
            remember(&m)?;
        }
    }
    if let Some(q) = quick {
        remember(&q)?;
    }
    Ok(())
}

/// The model a worker loads and its draft model, each checked before the
/// worker spawns (`overrides` are the model's own, as given by the user).
pub fn ensure_loadable(cfg: &WorkerConfig, overrides: &[String]) -> Result<()> {
    let store = Store::open_default()?;
    ensure_checked(&store, &cfg.path, overrides)?;
    if let Some(d) = &cfg.draft {
        ensure_checked(&store, &d.path, &[])?;
    }
    Ok(())
}

/// A marker named by what `stat` says of the file (and the overrides).
fn stat_marker(store: &Store, path: &Path, overrides: &[String]) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let canonical = std::fs::canonicalize(path).ok()?;
    let m = std::fs::metadata(&canonical).ok()?;
    let key = format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}.{}\u{1f}{}",
        canonical.display(),
        m.len(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        overrides.join("\u{1f}")
    );
    store.root().parent().map(|p| p.join("checked").join(format!("stat-{:016x}", augur_persist::fnv1a(key.as_bytes()))))
}

/// The models in-process targets load, each checked in a child process the
/// first time this machine sees the file (cold targets' own `augur run`
/// checks them; endpoints load nothing here).
pub fn bench_models(targets: &[TargetConfig]) -> Result<()> {
    for t in targets.iter().filter(|t| t.endpoint.is_none() && t.cold.is_none() && t.commands.is_empty()) {
        // The same resolution the in-process target makes (its draft model
        // included); the context size does not change which files load.
        ensure_loadable(&augur_bench::target::worker_config(t, 0)?, &[])?;
    }
    Ok(())
}

fn parse_overrides(raw: &[String]) -> Result<Vec<MetaOverride>> {
    raw.iter().map(|o| MetaOverride::parse(o).with_context(|| format!("--override-kv {o:?}"))).collect()
}

fn marker_path(store: &Store, sha: &str, overrides: &[String]) -> Option<PathBuf> {
    let salt = overrides.join("\u{1f}");
    let id =
        if salt.is_empty() { sha.to_string() } else { format!("{sha}-{:016x}", augur_persist::fnv1a(salt.as_bytes())) };
    store.root().parent().map(|p| p.join("checked").join(id))
}

fn remember(marker: &Path) -> Result<()> {
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // An empty marker: its name is the fact, so a torn write cannot lie.
    std::fs::write(marker, b"")?;
    Ok(())
}

/// Run the child under a memory cap and a timeout; turn a crash into an error.
fn run_child(path: &Path, overrides: &[String]) -> Result<()> {
    let exe = std::env::current_exe().context("locating the augur binary")?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -v {CHILD_MEMORY_KIB} 2>/dev/null; exec \"$0\" check-child \"$@\""))
        .arg(&exe)
        .arg(path)
        .args(overrides)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("starting the check process")?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{}: loading did not finish within {}s", path.display(), CHILD_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    if status.success() {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    tracing::info!("llama.cpp's output while loading {}:\n{}", path.display(), stderr.trim_end());
    let reason = child_reason(&stderr);
    match status.signal() {
        Some(sig) => bail!(
            "{}: llama.cpp aborted loading this model (signal {sig}){reason}; it is not safe to load (--verbose shows llama.cpp's output)",
            path.display()
        ),
        None => bail!("{}: the model failed its load check{reason} (--verbose shows llama.cpp's output)", path.display()),
    }
}

/// One readable line from what the child printed: a C++ exception's
/// message, else augur's own error line, else nothing.
fn child_reason(stderr: &str) -> String {
    let lines = || stderr.lines().map(str::trim);
    if let Some(what) = lines().find_map(|l| l.strip_prefix("what():")) {
        return format!(": llama.cpp could not load it: {}", what.trim());
    }
    lines().rev().find_map(|l| l.strip_prefix("augur: error:")).map(|e| format!(": {}", e.trim())).unwrap_or_default()
}

/// In the child: load, render the chat template, decode a few tokens.
pub fn child(a: ChildArgs) -> Result<()> {
    const PROMPT_MAX: usize = 200;
    let overrides = parse_overrides(&a.overrides)?;
    let params = ModelParams { overrides, ..ModelParams::default() };
    let mut scorer = Scorer::load(&a.path, &params, 256, None)?;
    let tok = scorer.tokenizer().clone();
    let prompt = tok.render_chat(&[ChatMessage::new("user", "Say hi.")], None)?;
    let mut tokens = tok.tokenize(&prompt, true, true)?;
    tokens.truncate(PROMPT_MAX);
    let filler = tok.bos().unwrap_or(0);
    if tokens.is_empty() {
        tokens.push(filler);
    }
    scorer.feed(&tokens, 0)?;
    for i in 0..4 {
        let logits = scorer.feed(&[filler], tokens.len() + i)?;
        if logits.iter().all(|l| !l.is_finite()) {
            bail!("the model produced no finite logits");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::child_reason;

    #[test]
    fn a_crashed_child_is_reported_in_one_line() {
        let cpp = "llama_model_loader: loaded meta data\nterminate called after throwing an instance of 'std::out_of_range'\n  what():  unordered_map::at\n";
        assert_eq!(child_reason(cpp), ": llama.cpp could not load it: unordered_map::at");
        let ours = "some log\naugur: error: the model produced no finite logits\n";
        assert_eq!(child_reason(ours), ": the model produced no finite logits");
        assert_eq!(child_reason("Segmentation fault\n"), "");
    }
}
