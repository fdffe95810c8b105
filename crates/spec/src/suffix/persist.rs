//! On-disk store of a global tree: the sequences it is rebuilt from.
//!
//! Layout, little-endian: magic `AUGSUFX\0` (8 bytes), format version
//! (u32), sequence count (u64), then per sequence its length (u32) and its
//! tokens (i32 each), then a SHA-256 of everything before it.
//!
//! Sharing between processes: every load and save holds an exclusive
//! advisory lock (`flock`) on the sibling file `<path>.lock`. A save
//! re-reads the store under that lock and merges in sequences written by
//! others since this tree last read or wrote the file (recognised by content
//! hash; ones this tree evicted itself stay evicted), appends them as the
//! newest, applies the budget, and replaces the file atomically (temp file
//! in the same directory, fsync, rename, fsync of the directory). So
//! concurrent savers never lose each other's outputs short of the budget,
//! and a crash leaves either the old file or the new one.

use std::fs::{File, OpenOptions};

use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use sha2::{Digest, Sha256};

use super::global::{content_hash, GlobalSuffixTree};
use super::SuffixError;
use crate::Token;

/// Store format version this build writes and reads.
pub const SUFFIX_STORE_VERSION: u32 = 1;

const MAGIC: [u8; 8] = *b"AUGSUFX\0";
const HEADER: usize = 8 + 4 + 8;
const DIGEST: usize = 32;

/// Serialises sequences in the store layout.
fn encode<'a>(seqs: impl Iterator<Item = &'a [Token]>, count: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER + DIGEST);
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&SUFFIX_STORE_VERSION.to_le_bytes());
    buf.extend_from_slice(&(count as u64).to_le_bytes());
    for s in seqs {
        buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
        s.iter().for_each(|t| buf.extend_from_slice(&t.to_le_bytes()));
    }
    let digest = Sha256::digest(&buf);
    buf.extend_from_slice(&digest);
    buf
}

/// Reads little-endian fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SuffixError> {
        if n > self.0.len() {
            return Err(SuffixError::Corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SuffixError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

/// Parses a store image. The version is checked before the checksum so a
/// newer file is reported as such; lengths are checked against the bytes
/// actually present before anything is allocated from them.
fn decode(bytes: &[u8]) -> Result<Vec<Vec<Token>>, SuffixError> {
    let mut r = Reader(bytes);
    if r.array::<8>()? != MAGIC {
        return Err(SuffixError::Corrupt("bad magic"));
    }
    let version = u32::from_le_bytes(r.array()?);
    if version != SUFFIX_STORE_VERSION {
        let expected = SUFFIX_STORE_VERSION;
        return Err(SuffixError::Version { found: version, expected });
    }
    let body_len = bytes.len().checked_sub(DIGEST).filter(|&n| n >= HEADER);
    let body_len = body_len.ok_or(SuffixError::Corrupt("truncated"))?;
    if Sha256::digest(&bytes[..body_len])[..] != bytes[body_len..] {
        return Err(SuffixError::Checksum);
    }
    let mut r = Reader(&bytes[12..body_len]);
    let count = u64::from_le_bytes(r.array()?);
    // Each sequence needs at least its 4-byte length.
    if count > (r.0.len() / 4) as u64 {
        return Err(SuffixError::Corrupt("sequence count exceeds file size"));
    }
    let mut seqs = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = u32::from_le_bytes(r.array()?) as usize;
        let raw = r.take(len.checked_mul(4).ok_or(SuffixError::Corrupt("length"))?)?;
        let toks = raw.chunks_exact(4).map(|c| {
            let mut a = [0u8; 4];
            a.copy_from_slice(c);
            Token::from_le_bytes(a)
        });
        seqs.push(toks.collect());
    }
    if !r.0.is_empty() {
        return Err(SuffixError::Corrupt("trailing bytes"));
    }
    Ok(seqs)
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> SuffixError + '_ {
    move |source| SuffixError::Io { path: path.to_path_buf(), source }
}

/// Holds the store's exclusive lock until dropped (closing the file
/// releases a `flock`).
fn lock(path: &Path) -> Result<File, SuffixError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let io = io_err(&lock_path);
    let file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&lock_path).map_err(&io)?;
    FileExt::lock_exclusive(&file).map_err(&io)?;
    Ok(file)
}

/// The store's sequences; `Ok(None)` if there is no file.
fn read_store(path: &Path) -> Result<Option<Vec<Vec<Token>>>, SuffixError> {
    match std::fs::read(path) {
        Ok(bytes) => decode(&bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SuffixError> {
    augur_persist::write_atomic(path, bytes).map_err(io_err(path))
}

impl GlobalSuffixTree {
    /// Merges the store into this tree and writes the result back; see the
    /// module docs. Takes `&mut self` because the merge is kept: this tree
    /// learns the other processes' outputs. A store written by a newer
    /// format is left alone (`Version` error); an unreadable one is
    /// overwritten.
    pub fn save(&mut self, path: &Path) -> Result<(), SuffixError> {
        let _lock = lock(path)?;
        match read_store(path) {
            Ok(Some(seqs)) => self.merge_foreign(seqs)?,
            Ok(None) | Err(SuffixError::Corrupt(_) | SuffixError::Checksum) => {}
            Err(e) => return Err(e),
        }
        let bytes = encode(self.sequences(), self.sequence_count());
        write_atomic(path, &bytes)?;
        self.file_view = self.order.iter().map(|e| e.hash).collect();
        Ok(())
    }

    /// Adds sequences from the file that neither we hold nor had seen there.
    fn merge_foreign(&mut self, seqs: Vec<Vec<Token>>) -> Result<(), SuffixError> {
        let ours: std::collections::HashSet<u64> = self.order.iter().map(|e| e.hash).collect();
        for s in seqs {
            let h = content_hash(&s);
            if !ours.contains(&h) && !self.file_view.contains(&h) {
                self.add_hashed(&s[s.len().saturating_sub(self.budget())..], h)?;
            }
        }
        Ok(())
    }

    /// Rebuilds a tree from the store, oldest sequences first, under the
    /// budget. A missing file is an `Io` error of kind `NotFound`.
    pub fn load(path: &Path, budget: usize, max_depth: usize) -> Result<Self, SuffixError> {
        let seqs = {
            let _lock = lock(path)?;
            let bytes = std::fs::read(path).map_err(io_err(path))?;
            decode(&bytes)?
        };
        let mut g = Self::new(budget, max_depth);
        for s in &seqs {
            let h = content_hash(s);
            g.file_view.insert(h);
            g.add_hashed(&s[s.len().saturating_sub(budget)..], h)?;
        }
        Ok(g)
    }

    /// [`Self::load`], falling back to an empty tree: silently when there is
    /// no store yet, with a warning to log when it cannot be used.
    pub fn load_or_fresh(path: &Path, budget: usize, max_depth: usize) -> (Self, Option<String>) {
        match Self::load(path, budget, max_depth) {
            Ok(g) => (g, None),
            Err(SuffixError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                (Self::new(budget, max_depth), None)
            }
            Err(e) => {
                let warning = format!("ignoring suffix store {}: {e}; starting empty", path.display());
                (Self::new(budget, max_depth), Some(warning))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode() {
        let seqs: Vec<Vec<Token>> = vec![vec![1, -2, i32::MAX], vec![], vec![7]];
        let bytes = encode(seqs.iter().map(Vec::as_slice), seqs.len());
        assert_eq!(bytes.len(), HEADER + 3 * 4 + 4 * 4 + DIGEST);
        assert_eq!(decode(&bytes).unwrap(), seqs);
    }

    #[test]
    fn huge_count_is_refused_before_allocating() {
        let mut bytes = encode(std::iter::empty(), 0);
        bytes.truncate(HEADER - 8);
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        let digest = Sha256::digest(&bytes);
        bytes.extend_from_slice(&digest);
        assert!(matches!(decode(&bytes), Err(SuffixError::Corrupt(_))));
    }
}
