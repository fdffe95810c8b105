//! Cold targets: each request in a fresh `augur run` process, as a user of
//! the CLI (or a freshly started server, a new role instance, a reloaded
//! model) meets speculation: no statistics or trusts learnt in memory, and
//! a suffix store that starts empty or holds only earlier prompts' answers.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use augur_runtime::SpecMode;
use serde::Deserialize;
use serde_json::json;

use crate::config::{ColdStore, TargetConfig};
use crate::error::{BenchError, Result};
use crate::target::{Generation, Request, Target};

/// Runs `augur run --json` once per request.
pub struct ColdProcess {
    cfg: TargetConfig,
    ctx: u32,
    exe: PathBuf,
    dir: tempfile::TempDir,
    store: RefCell<StoreState>,
}

/// The suffix store each process starts from. Under `sequence`, `base`
/// holds the answers of the prompts before the current one; a run that
/// drafted from suffix trees leaves `base` plus its own answer, which
/// becomes the next prompt's base (its answer equals every other mode's,
/// greedy output being identical).
#[derive(Default)]
struct StoreState {
    prompt: Option<String>,
    base: Option<PathBuf>,
    candidate: Option<PathBuf>,
    runs: u32,
}

/// The fields of `augur run --json` a row needs.
#[derive(Deserialize)]
struct RunReport {
    text: String,
    finish_reason: String,
    prompt_tokens: usize,
    completion_tokens: usize,
    time_to_first_token: f64,
    decode_time: f64,
    spec: SpecReport,
}

#[derive(Deserialize)]
struct SpecReport {
    drafted: u64,
    accepted: u64,
}

impl ColdProcess {
    /// `exe` is the augur binary (the running one, for `bench run`).
    pub fn new(cfg: &TargetConfig, min_ctx: u32, exe: PathBuf) -> Result<ColdProcess> {
        if cfg.experts.is_some() || cfg.endpoint.is_some() {
            let message = "cold runs take neither experts= nor endpoint=".into();
            return Err(BenchError::Target { spec: cfg.name.clone(), message });
        }
        let dir = tempfile::tempdir().map_err(BenchError::io("a directory for cold runs"))?;
        let ctx = cfg.ctx_size.unwrap_or(min_ctx.max(4096));
        Ok(ColdProcess { cfg: cfg.clone(), ctx, exe, dir, store: RefCell::new(StoreState::default()) })
    }

    fn command(&self, req: &Request, mode: SpecMode, messages: &Path, store: &Path) -> Command {
        let mut c = Command::new(&self.exe);
        c.arg("run").arg("--json").arg("--messages").arg(messages);
        c.args(["-m", &self.cfg.model, "-c", &self.ctx.to_string(), "-n", &req.max_tokens.to_string()]);
        c.args(["--spec", mode_arg(mode), "--spec-max", &self.cfg.spec_max.to_string()]);
        c.args(["--temp", &req.temperature.to_string(), "--seed", &req.seed.to_string()]);
        c.arg("--suffix-store").arg(store);
        if let Some(t) = self.cfg.threads {
            c.args(["-t", &t.to_string()]);
        }
        if let Some(d) = &self.cfg.draft_model {
            c.args(["--draft-model", d]);
        }
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// The store this run starts from: a private copy of the base (the
    /// process may write to it), or a path where none exists yet.
    fn prepare_store(&self, key: &str, uses_suffix: bool) -> Result<PathBuf> {
        let mut st = self.store.borrow_mut();
        if st.prompt.as_deref() != Some(key) {
            if self.cfg.cold == Some(ColdStore::Sequence) {
                if let Some(c) = st.candidate.take() {
                    let base = self.dir.path().join("base.bin");
                    std::fs::rename(&c, &base).map_err(BenchError::io("keeping the suffix store"))?;
                    st.base = Some(base);
                }
            }
            st.prompt = Some(key.to_string());
            st.candidate = None;
        }
        st.runs += 1;
        let path = self.dir.path().join(format!("run-{}.bin", st.runs));
        if let Some(base) = &st.base {
            std::fs::copy(base, &path).map_err(BenchError::io("copying the suffix store"))?;
        }
        if uses_suffix {
            st.candidate = Some(path.clone());
        }
        Ok(path)
    }

    fn finish_store(&self, path: &Path) {
        let st = self.store.borrow();
        if st.candidate.as_deref() != Some(path) {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn mode_arg(mode: SpecMode) -> &'static str {
    match mode {
        SpecMode::Off => "off",
        SpecMode::Lookup => "lookup",
        SpecMode::Draft => "draft",
        SpecMode::Suffix => "suffix",
        SpecMode::Auto => "auto",
    }
}

impl Target for ColdProcess {
    fn generate(&self, req: &Request) -> Result<Generation> {
        let mode = req.spec.map_or(self.cfg.spec, |s| s.mode);
        let messages: Vec<_> = req.messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect();
        let key = serde_json::to_string(&messages).map_err(|e| process_err("the messages", e.to_string()))?;
        let file = self.dir.path().join("messages.json");
        std::fs::write(&file, &key).map_err(BenchError::io("writing the messages file"))?;
        let store = self.prepare_store(&key, matches!(mode, SpecMode::Suffix | SpecMode::Auto))?;
        let started = Instant::now();
        let out = self.command(req, mode, &file, &store).output();
        let total = started.elapsed();
        let out = out.map_err(BenchError::io(format!("starting {}", self.exe.display())))?;
        self.finish_store(&store);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().last().unwrap_or("").to_string();
            return Err(process_err(
                &format!("augur run --spec {}", mode_arg(mode)),
                format!("{}: {last}", out.status),
            ));
        }
        let r: RunReport = serde_json::from_slice(&out.stdout)
            .map_err(|e| process_err("augur run --json", format!("unreadable report: {e}")))?;
        Ok(Generation {
            text: r.text,
            ttft: secs(r.time_to_first_token),
            total,
            decode: secs(r.decode_time),
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            finish_reason: r.finish_reason,
            drafted: Some(r.spec.drafted),
            accepted: Some(r.spec.accepted),
        })
    }

    /// A cold process never sees a prompt before it is measured.
    fn warms_prompts(&self) -> bool {
        false
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

fn process_err(what: &str, message: String) -> BenchError {
    BenchError::Process { what: what.into(), message }
}
