//! What a run was measured on and how.

use std::collections::BTreeMap;
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
    /// A name templates refer to the run by; the latest run wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Other command lines the measurement depended on (servers started
    /// for it, prompt generators), in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// Versions of the other programs measured (llama.cpp's tools, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peers: BTreeMap<String, String>,
}

/// How a run describes itself to the documents made from it; the same for
/// every kind of run (`bench run`, `bench import`, `bench load`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// The exact command line that made the measurements.
    pub command: String,
    /// Other command lines it depended on (servers started for it, prompt
    /// generators), in the order given.
    pub commands: Vec<String>,
    /// Versions of the other programs measured (llama.cpp's tools, ...).
    pub peers: BTreeMap<String, String>,
    /// The name documents refer to the run by; the latest run wins.
    pub label: Option<String>,
}

impl Record {
    /// This process's own command line, nothing else.
    pub fn here() -> Record {
        Record { command: command_line(), ..Record::default() }
    }
}

impl Meta {
    /// A new run's metadata, stamped now on this machine and checkout.
    /// Callers fill in what their kind of run knows (suites, iterations, ...).
    pub fn now(record: &Record, configs: Vec<TargetConfig>, baseline: String) -> Meta {
        let (created, run_id) = now_stamps();
        Meta {
            run_id,
            created,
            command: record.command.clone(),
            git_commit: git_commit(),
            augur_version: env!("CARGO_PKG_VERSION").into(),
            llama_cpp_version: augur_runtime::LLAMA_CPP_CRATE_VERSION.into(),
            system_info: augur_runtime::system_info(),
            machine: Machine::detect(),
            configs,
            baseline,
            suites: Vec::new(),
            iterations: 1,
            warmup: 0,
            temperature: 0.0,
            judge: None,
            label: record.label.clone(),
            commands: record.commands.clone(),
            peers: record.peers.clone(),
        }
    }
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

/// This process's command line, each argument shell-quoted where needed,
/// so the stored line can be pasted back into a shell.
pub fn command_line() -> String {
    std::env::args().map(|a| shell_quote(&a)).collect::<Vec<_>>().join(" ")
}

pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
    if plain {
        arg.into()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The commit of the current directory's checkout, else of the source tree
/// this harness was built from; `+dirty` when tracked files other than
/// stored runs and documents differ from it (the measured build is then not
/// that commit).
pub fn git_commit() -> Option<String> {
    commit_in(".").or_else(|| commit_in(env!("CARGO_MANIFEST_DIR")))
}

fn commit_in(dir: &str) -> Option<String> {
    let git = |args: &[&str]| std::process::Command::new("git").arg("-C").arg(dir).args(args).output().ok();
    let out = git(&["rev-parse", "HEAD"])?;
    if !out.status.success() {
        return None;
    }
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let clean = git(&["diff", "--quiet", "HEAD", "--", ".", ":(exclude)bench/results", ":(exclude)docs"])
        .is_none_or(|o| o.status.code() != Some(1));
    Some(if clean { commit } else { format!("{commit}+dirty") })
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
    fn shell_quoting_round_trips_through_sh() {
        assert_eq!(super::shell_quote("name=a,model=b"), "name=a,model=b");
        assert_eq!(super::shell_quote("a b"), "'a b'");
        assert_eq!(super::shell_quote(""), "''");
        assert_eq!(super::shell_quote("it's"), r"'it'\''s'");
    }

    /// A build measured from uncommitted source is marked, so a stored run
    /// never claims a commit it was not built from; runs and docs are not
    /// source.
    #[test]
    fn uncommitted_source_marks_the_commit_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git").arg("-C").arg(d).args(args).output().unwrap().status.success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::create_dir_all(dir.path().join("docs")).unwrap();
        std::fs::write(dir.path().join("src.rs"), "fn a() {}").unwrap();
        std::fs::write(dir.path().join("docs/B.md"), "x").unwrap();
        git(&["add", "."]);
        git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]);
        let clean = super::commit_in(d).unwrap();
        assert!(clean.len() == 40 && clean.bytes().all(|b| b.is_ascii_hexdigit()), "{clean}");
        std::fs::write(dir.path().join("docs/B.md"), "y").unwrap();
        assert_eq!(super::commit_in(d).unwrap(), clean);
        std::fs::write(dir.path().join("src.rs"), "fn b() {}").unwrap();
        assert_eq!(super::commit_in(d).unwrap(), format!("{clean}+dirty"));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(augur_store::civil_from_days(0), (1970, 1, 1));
        assert_eq!(augur_store::civil_from_days(20_416), (2025, 11, 24));
    }
}
