//! What a run was measured on and how.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::TargetConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub run_id: String,
    pub created: String,
    pub command: String,
    pub git_commit: Option<String>,
    pub augur_version: String,
    pub llama_cpp_version: String,
    pub system_info: String,
    pub machine: Machine,
    pub configs: Vec<TargetConfig>,
    pub baseline: String,
    pub suites: Vec<SuiteRef>,
    pub iterations: u32,
    pub warmup: u32,
    pub temperature: f32,
    #[serde(default)]
    pub judge: Option<TargetConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteRef {
    pub name: String,
    pub version: u32,
    pub prompts: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_bytes: u64,
    /// The SIMD extensions llama.cpp's kernels care about.
    pub isa_flags: Vec<String>,
}

const ISA: &[&str] = &[
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "sve",
    "sve2",
    "i8mm",
    "bf16",
];

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let flags = field("flags").or_else(|| field("Features")).unwrap_or_default();
        let have: Vec<&str> = flags.split_whitespace().collect();
        Machine {
            cpu_model: field("model name").unwrap_or_else(|| std::env::consts::ARCH.into()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: mem_total(),
            isa_flags: ISA.iter().filter(|f| have.contains(f)).map(|f| f.to_string()).collect(),
        }
    }
}

fn mem_total() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The commit of the current directory's checkout, else of the source tree
/// this harness was built from.
pub fn git_commit() -> Option<String> {
    commit_in(".").or_else(|| commit_in(env!("CARGO_MANIFEST_DIR")))
}

fn commit_in(dir: &str) -> Option<String> {
    let out = std::process::Command::new("git").args(["-C", dir, "rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `YYYY-MM-DDTHH:MM:SSZ` and a sortable run id from the same instant.
pub fn now_stamps() -> (String, String) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (y, m, d) = augur_store::civil_from_days((secs / 86_400) as i64);
    let (hh, mm, ss) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let created = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z");
    // The suffix keeps two runs started in the same second apart.
    let tag = (now.subsec_nanos() ^ std::process::id()) & 0xffff;
    let id = format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}-{tag:04x}");
    (created, id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(augur_store::civil_from_days(0), (1970, 1, 1));
        assert_eq!(augur_store::civil_from_days(20_416), (2025, 11, 24));
    }
}
