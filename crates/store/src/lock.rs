//! Per-model advisory locks, so two processes pulling the same model take
//! turns instead of racing on the same destination file.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

use crate::error::{Result, StoreError};

/// Held for the duration of a pull; the OS drops the lock when the file
/// closes, including when the process dies.
#[derive(Debug)]
pub(crate) struct ModelLock {
    _file: File,
}

fn lock_path(root: &Path, name: &str) -> PathBuf {
    root.join(format!(".{name}.lock"))
}

fn open(root: &Path, name: &str) -> Result<File> {
    let path = lock_path(root, name);
    // The lock file is never deleted: removing it while another process
    // waits on it would let a third lock a fresh inode alongside it.
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(StoreError::io(format!("opening lock {}", path.display())))
}

/// Blocks until this process is the only one working on `name`.
pub(crate) fn acquire(root: &Path, name: &str) -> Result<ModelLock> {
    let file = open(root, name)?;
    if FileExt::try_lock_exclusive(&file).unwrap_or(false) {
        return Ok(ModelLock { _file: file });
    }
    tracing::info!("waiting for another process pulling '{name}'");
    FileExt::lock_exclusive(&file).map_err(StoreError::io(format!("locking {}", lock_path(root, name).display())))?;
    Ok(ModelLock { _file: file })
}

/// The lock if nobody else holds it; `None` when busy or unavailable.
pub(crate) fn try_acquire(root: &Path, name: &str) -> Option<ModelLock> {
    let file = open(root, name).ok()?;
    match FileExt::try_lock_exclusive(&file) {
        Ok(true) => Some(ModelLock { _file: file }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_release() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "m").unwrap();
        assert!(try_acquire(dir.path(), "m").is_none());
        assert!(try_acquire(dir.path(), "other").is_some());
        drop(first);
        assert!(try_acquire(dir.path(), "m").is_some());
    }
}
