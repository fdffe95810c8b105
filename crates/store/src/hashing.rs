//! Streaming copy that hashes and reports progress in the same pass, so a
//! multi-gigabyte model is read exactly once.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};

/// A writer that hashes and counts everything passing through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
    bar: ProgressBar,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W, bar: ProgressBar) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), written: 0, bar }
    }

    /// Flushes and returns the inner writer, byte count and hex digest.
    pub fn finish(mut self) -> io::Result<(W, u64, String)> {
        self.inner.flush()?;
        self.bar.finish_and_clear();
        Ok((self.inner, self.written, hex(&self.hasher.finalize())))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Hash only what the inner writer accepted, or a short write would
        // make the digest disagree with the file.
        let done = buf.get(..n).unwrap_or(buf);
        self.hasher.update(done);
        self.written += n as u64;
        self.bar.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A byte progress bar on stderr, or a hidden one when nobody is watching
/// (logs and CI output should not fill with redraws).
pub(crate) fn progress_bar(show: bool, total: Option<u64>, label: &str) -> ProgressBar {
    if !show || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{msg} {bytes} {bytes_per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    bar
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let ctx = || format!("hashing {}", path.display());
    let mut file = File::open(path).map_err(StoreError::io(ctx()))?;
    let mut w = HashingWriter::new(io::sink(), ProgressBar::hidden());
    copy_large(&mut file, &mut w).map_err(StoreError::io(ctx()))?;
    let (_, size, digest) = w.finish().map_err(StoreError::io(ctx()))?;
    Ok((size, digest))
}

/// `io::copy` with a 1 MiB buffer: the default 8 KiB makes hashing a
/// gigabyte file noticeably slower.
pub(crate) fn copy_large(r: &mut impl Read, w: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(buf.get(..n).unwrap_or_default())?;
        total += n as u64;
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_what_it_writes() {
        let mut w = HashingWriter::new(Vec::new(), ProgressBar::hidden());
        copy_large(&mut &b"abc"[..], &mut w).unwrap();
        let (out, n, digest) = w.finish().unwrap();
        assert_eq!(out, b"abc");
        assert_eq!(n, 3);
        assert_eq!(digest, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
