//! Helpers shared by the integration tests: a hand-built GGUF and fake wheels.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_kv_str(out: &mut Vec<u8>, key: &str, value: &str) {
    put_str(out, key);
    out.extend_from_slice(&8u32.to_le_bytes()); // GGUF string type
    put_str(out, value);
}

/// A minimal GGUF v3: two string KVs and one F32 tensor of `n` elements.
pub fn tiny_gguf(n: u64) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&1u64.to_le_bytes()); // tensors
    out.extend_from_slice(&2u64.to_le_bytes()); // kvs
    put_kv_str(&mut out, "general.architecture", "llama");
    put_kv_str(&mut out, "general.name", "tiny");
    put_str(&mut out, "w");
    out.extend_from_slice(&1u32.to_le_bytes()); // n_dims
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // F32
    out.extend_from_slice(&0u64.to_le_bytes()); // offset within data
    out.resize(out.len().next_multiple_of(32), 0);
    for i in 0..n {
        out.extend_from_slice(&(i as f32).to_le_bytes());
    }
    out
}

pub fn write_tiny_gguf(dir: &Path, file: &str, n: u64) -> PathBuf {
    let path = dir.join(file);
    fs::write(&path, tiny_gguf(n)).unwrap();
    path
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a wheel named like pip would, holding `member` with `data`.
pub fn write_wheel(dir: &Path, module: &str, version: &str, member: &str, data: &[u8]) {
    let path = dir.join(format!("{module}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file(format!("{module}/__init__.py"), opts).unwrap();
    zip.start_file(member, opts).unwrap();
    zip.write_all(data).unwrap();
    zip.finish().unwrap();
}

/// Everything in `dir` that is neither a finished model nor its sidecar
/// nor a lock file: i.e. what a failed pull must not leave behind.
pub fn stray_files(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !(n.starts_with('.') && n.ends_with(".lock")))
        .collect()
}
