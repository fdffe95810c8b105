//! Durable file writes, shared by everything augur persists (cost curves,
//! the suffix store, model sidecars, benchmark runs).
//!
//! A reader sees the old contents or the new, never a torn file, even after
//! a crash: the bytes go to a hidden temp file in the same directory, which
//! is fsynced, renamed over the target, and then the directory is fsynced so
//! the rename itself is on disk.
//!
//! [`sealed`] wraps small JSON state in a version and a checksum.
//!
//! Being at the bottom of the workspace, it also holds a few tiny shared
//! helpers ([`civil_from_days`], [`fnv1a`], [`sha256_hex`], [`floor_char_boundary`]).

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

pub mod sealed;
mod small;
pub use small::{civil_from_days, floor_char_boundary, fnv1a, sha256_hex};

/// Write `bytes` to `path` atomically and durably (see the crate docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    let mut tmp = temp_in(&dir, path)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(&dir)
}

/// A temp file this old was left by a writer that died before its rename
/// (a live writer renames within seconds).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Most directory entries looked at per sweep, so a huge directory costs a
/// bounded amount of work per write.
const SWEEP_LIMIT: usize = 4096;

/// Remove `target`'s temp files (see `temp_in`) older than
/// `STALE_TEMP_AGE`, so killed writers do not leave them piling up.
/// Best effort: a file that cannot be read or removed is left alone.
fn sweep_stale_temps(dir: &Path, target: &Path) {
    let Some(stem) = target.file_name().map(|s| s.to_string_lossy().into_owned()) else { return };
    let prefix = format!(".{stem}.");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    for e in entries.flatten().take(SWEEP_LIMIT) {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(&prefix) && name.ends_with(".tmp")) {
            continue;
        }
        let age = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| now.duration_since(t).ok());
        if age.is_some_and(|a| a > STALE_TEMP_AGE) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A hidden temp file in `dir` named after `target` (`.NAME.XXXXXX.tmp`),
/// so a crash leaves an obviously stray file rather than one that looks
/// like the real thing. Mode 0644 like any data file (the umask applies),
/// not tempfile's 0600. Stale temps of the same target go first.
pub fn temp_in(dir: &Path, target: &Path) -> io::Result<NamedTempFile> {
    sweep_stale_temps(dir, target);
    let stem = target.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".{stem}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    builder.tempfile_in(dir)
}

/// Make a rename in `dir` durable: the new entry is on disk only once the
/// directory itself is synced.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// The directory a path's file lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_contents_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/state.json");
        assert!(write_atomic(&path, b"x").is_err());
        assert!(!dir.path().join("no").exists());
    }

    #[cfg(unix)]
    #[test]
    fn written_files_are_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        write_atomic(&path, b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o044, 0o044 & !umask(), "mode {mode:o}");
    }

    #[cfg(unix)]
    fn umask() -> u32 {
        // The process umask, read from /proc (0o022 if it cannot be read).
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Umask:").map(|v| v.trim().to_string())))
            .and_then(|v| u32::from_str_radix(&v, 8).ok())
            .unwrap_or(0o022)
    }

    /// Temp files a killed writer left behind go once they are old; a live
    /// writer's fresh one, and anything that is not this target's temp,
    /// stay.
    #[test]
    fn a_write_sweeps_stale_temp_files_of_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.bin");
        let make = |name: &str, age: Duration| {
            let f = File::create(dir.path().join(name)).unwrap();
            f.set_modified(SystemTime::now() - age).unwrap();
        };
        let old = STALE_TEMP_AGE + Duration::from_secs(60);
        make(".store.bin.dead01.tmp", old);
        make(".store.bin.live02.tmp", Duration::from_secs(5));
        make(".other.bin.dead03.tmp", old);
        make("store.bin.bak", old);
        write_atomic(&path, b"x").unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        assert_eq!(names, [".other.bin.dead03.tmp", ".store.bin.live02.tmp", "store.bin", "store.bin.bak"]);
    }

    #[test]
    fn bare_file_names_live_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("x.json")), PathBuf::from("."));
        assert_eq!(parent_dir(Path::new("a/x.json")), PathBuf::from("a"));
    }
}
