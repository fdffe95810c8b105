//! `hf:OWNER/REPO/FILE.gguf` downloads through the Hugging Face hub client.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use hf_hub::api::sync::{Api, ApiBuilder};
use hf_hub::Cache;

use crate::error::{Result, StoreError};

/// A parsed `hf:` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfSource {
    /// `OWNER/REPO`.
    pub repo: String,
    /// Path of the file inside the repository.
    pub file: String,
}

impl HfSource {
    /// Parses the part after `hf:`.
    pub fn parse(spec: &str) -> Result<HfSource> {
        let bad = || StoreError::BadHfSource { spec: format!("hf:{spec}") };
        let mut it = spec.splitn(3, '/');
        let (owner, repo, file) = (it.next(), it.next(), it.next());
        let (Some(owner), Some(repo), Some(file)) = (owner, repo, file) else {
            return Err(bad());
        };
        let parts_ok =
            [owner, repo].iter().all(|s| !s.is_empty()) && file.split('/').all(|s| !s.is_empty() && s != "..");
        if !parts_ok || !file.ends_with(".gguf") {
            return Err(bad());
        }
        Ok(HfSource { repo: format!("{owner}/{repo}"), file: file.to_string() })
    }
}

/// The client has no request timeout of its own, so reachability is probed
/// on a thread with a deadline; an unreachable hub then fails fast instead of
/// hanging the pull.
fn probe_timeout() -> Duration {
    let secs = std::env::var("AUGUR_HF_TIMEOUT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    Duration::from_secs(secs)
}

/// Downloads (or finds in the local hub cache) the file and returns its path.
pub(crate) fn fetch(spec: &HfSource, progress: bool) -> Result<PathBuf> {
    let failed = |detail: String| StoreError::Hub { spec: format!("hf:{}/{}", spec.repo, spec.file), detail };
    if let Some(path) = Cache::from_env().model(spec.repo.clone()).get(&spec.file) {
        return Ok(path);
    }
    let api = ApiBuilder::from_env()
        .with_progress(progress && std::io::stderr().is_terminal())
        .build()
        .map_err(|e| failed(e.to_string()))?;
    probe(&api, &spec.repo, probe_timeout()).map_err(failed)?;
    api.model(spec.repo.clone()).get(&spec.file).map_err(|e| failed(e.to_string()))
}

fn probe(api: &Api, repo: &str, timeout: Duration) -> std::result::Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let repo = api.model(repo.to_string());
    std::thread::spawn(move || {
        // The receiver may have given up already; nothing to report then.
        let _ = tx.send(repo.info().map(drop).map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer from the hub within {}s (set AUGUR_HF_TIMEOUT_SECS to wait longer)",
            timeout.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_files() {
        let s = HfSource::parse("Qwen/Qwen2.5-0.5B-GGUF/sub/q4.gguf").unwrap();
        assert_eq!(s.repo, "Qwen/Qwen2.5-0.5B-GGUF");
        assert_eq!(s.file, "sub/q4.gguf");
    }

    #[test]
    fn rejects_malformed_specs() {
        for bad in ["", "a", "a/b", "a/b/", "/b/c.gguf", "a//c.gguf", "a/b/c.bin", "a/b/../c.gguf"] {
            assert!(matches!(HfSource::parse(bad), Err(StoreError::BadHfSource { .. })), "{bad}");
        }
    }
}
