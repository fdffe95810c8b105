//! `<name>.json` next to each model: where it came from and what it hashes to,
//! so listing and re-pulls need not re-hash gigabytes.

use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

use crate::error::{Result, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sidecar {
    /// What was pulled: a catalogue name, a path or an `hf:` spec.
    pub source: String,
    pub sha256: String,
    pub size: u64,
    /// RFC 3339 UTC time of the pull.
    pub pulled_at: String,
}

impl Sidecar {
    pub fn new(source: impl Into<String>, sha256: String, size: u64) -> Sidecar {
        Sidecar { source: source.into(), sha256, size, pulled_at: rfc3339_utc(SystemTime::now()) }
    }

    /// Reads a sidecar; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Sidecar>> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(format!("reading {}", path.display()))(e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|source| StoreError::Sidecar { path: path.to_path_buf(), source })
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(self)
            .map_err(|source| StoreError::Sidecar { path: path.to_path_buf(), source })?;
        json.push(b'\n');
        write_atomic(path, &json)
    }
}

/// Writes so readers see either the old or the new content, never a torn
/// one, even across a crash (`augur_persist::write_atomic`).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    augur_persist::write_atomic(path, bytes).map_err(StoreError::io(format!("writing {}", path.display())))
}

/// A hidden temp file in `dir` named after `target` (for streamed writes).
pub(crate) fn temp_in(dir: &Path, target: &Path) -> Result<NamedTempFile> {
    augur_persist::temp_in(dir, target).map_err(StoreError::io(format!("creating a temp file in {}", dir.display())))
}

pub(crate) fn persist(tmp: NamedTempFile, dest: &Path) -> Result<()> {
    tmp.persist(dest).map(drop).map_err(|e| StoreError::io(format!("renaming into {}", dest.display()))(e.error))
}

/// Makes a rename durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    augur_persist::sync_dir(dir).map_err(StoreError::io(format!("syncing {}", dir.display())))
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` without pulling in a date crate.
pub(crate) fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = augur_persist::civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        assert_eq!(rfc3339_utc(t), "2024-02-29T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_utc(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn round_trips_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        assert_eq!(Sidecar::read(&path).unwrap(), None);
        let s = Sidecar::new("m", "ab".repeat(32), 7);
        s.write(&path).unwrap();
        assert_eq!(Sidecar::read(&path).unwrap(), Some(s));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn garbage_sidecar_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        fs::write(&path, "{not json").unwrap();
        assert!(matches!(Sidecar::read(&path), Err(StoreError::Sidecar { .. })));
    }
}
