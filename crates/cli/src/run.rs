//! `augur run`: one prompt, one model, streamed to stdout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use augur_engine::{ChatMessage, ContextParams, ModelParams};
use augur_gguf::MetaOverride;
use augur_grammar::GrammarSource;
use augur_runtime::{
    Backend, Completion, DraftConfig, Event, GenerateRequest, ModelWorker, PrefixReuse, Prompt, SpecMode, SpecSettings,
    SuffixTuning, WorkerConfig,
};
use augur_sampling::SamplingParams;
use augur_store::Store;
use clap::Args;
use serde_json::json;

pub const DEFAULT_MODEL: &str = "qwen2.5-coder-1.5b";

#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Model: catalogue name, name in the store, or path to a .gguf file.
    #[arg(short = 'm', long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// CPU threads (default: all available).
    #[arg(short = 't', long)]
    pub threads: Option<i32>,
    /// Context size in tokens.
    #[arg(short = 'c', long, default_value_t = 4096)]
    pub ctx_size: u32,
    /// Largest number of tokens decoded in one call: the prefill chunk, and
    /// the granularity of prefix reuse.
    #[arg(short = 'b', long, default_value_t = augur_engine::DEFAULT_BATCH)]
    pub batch_size: u32,
    /// Metadata override KEY=TYPE:VALUE (int, float, bool, str), repeatable,
    /// e.g. qwen2moe.expert_used_count=int:4.
    #[arg(long = "override-kv", value_name = "KEY=TYPE:VALUE")]
    pub overrides: Vec<String>,
    /// Keep weights in their file layout instead of llama.cpp's repacked CPU
    /// layout. Repacked kernels decode faster but are batch-invariant only up
    /// to 3 tokens here, which caps the verify chunk (measured at load).
    #[arg(long)]
    pub no_repack: bool,
    /// Speculation: off, lookup (prompt n-grams), draft (a draft model),
    /// suffix, or auto (the cost model picks among all sources each step).
    /// Default: off for `run`, auto for `serve`.
    #[arg(long, value_enum)]
    pub spec: Option<SpecArg>,
    /// Draft model (same tokenizer as the target). Default with --spec
    /// draft/auto: qwen2.5-coder-0.5b when the target is a Qwen2.5 coder.
    #[arg(long)]
    pub draft_model: Option<String>,
    /// Longest draft per step.
    #[arg(long, default_value_t = 16)]
    pub spec_max: usize,
    /// Verify suffix drafts as trees where they fork, when the cost model
    /// expects that to pay (it rarely does where verifying k tokens costs
    /// nearly k times one). Runs the target with flash attention and a q8_0
    /// value cache: the attention layout in which tree rows stay exact.
    #[arg(long)]
    pub spec_tree: bool,
    /// Suffix drafts stop where their estimated probability (the product of
    /// the tree's count ratios) falls below P. Default 0.3.
    #[arg(long, value_name = "P")]
    pub suffix_min_prob: Option<f32>,
    /// A suffix draft may run to F times the length of its match. Default 4.
    #[arg(long, value_name = "F")]
    pub suffix_factor: Option<f32>,
    /// KV kept between requests: off; prompt (the last prompt, in the
    /// grains this machine reuses exactly); conversation (also the last answer, prefilled while idle, so
    /// the next turn prefills only its new message). Reuse never changes an
    /// output: only KV a cold prefill would compute identically is reused.
    #[arg(long, value_enum, default_value = "conversation")]
    pub prefix_cache: PrefixArg,
    /// Positions of earlier prompt prefixes kept in memory besides the live
    /// one, and restored when a later request shares more of one (several
    /// conversations or roles on one model). Default: 4 contexts' worth; 0
    /// keeps none.
    #[arg(long, value_name = "POSITIONS")]
    pub prefix_store: Option<usize>,
    /// The file the global suffix tree (earlier answers) is kept in: read at
    /// start, merged and saved after each request that drafted from suffix
    /// trees. Default: suffix/MODEL.bin beside the model store.
    #[arg(long, value_name = "FILE")]
    pub suffix_store: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixArg {
    Off,
    Prompt,
    Conversation,
}

impl From<PrefixArg> for PrefixReuse {
    fn from(a: PrefixArg) -> Self {
        match a {
            PrefixArg::Off => PrefixReuse::Off,
            PrefixArg::Prompt => PrefixReuse::Prompt,
            PrefixArg::Conversation => PrefixReuse::Conversation,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecArg {
    Off,
    Lookup,
    Draft,
    Suffix,
    Auto,
}

impl From<SpecArg> for SpecMode {
    fn from(a: SpecArg) -> Self {
        match a {
            SpecArg::Off => SpecMode::Off,
            SpecArg::Lookup => SpecMode::Lookup,
            SpecArg::Draft => SpecMode::Draft,
            SpecArg::Suffix => SpecMode::Suffix,
            SpecArg::Auto => SpecMode::Auto,
        }
    }
}

/// The catalogue's draft for a target, when there is one.
pub fn default_draft_for(target: &str) -> Option<&'static str> {
    target.starts_with("qwen2.5-coder").then_some("qwen2.5-coder-0.5b").filter(|d| *d != target)
}

impl ModelArgs {
    pub fn worker_config(&self, name: &str, path: PathBuf) -> Result<WorkerConfig> {
        let overrides = self
            .overrides
            .iter()
            .map(|o| MetaOverride::parse(o).with_context(|| format!("--override-kv {o:?}")))
            .collect::<Result<Vec<_>>>()?;
        let mut context = ContextParams { n_ctx: self.ctx_size, n_batch: self.batch_size, ..ContextParams::default() };
        context.n_ubatch = self.batch_size;
        if let Some(t) = self.threads {
            context.threads = t;
            context.threads_batch = t;
        }
        let store = Store::open_default()?;
        let mode = SpecMode::from(self.spec.unwrap_or(SpecArg::Off));
        let draft = self.draft_path(&store, mode)?.map(|p| DraftConfig {
            path: p,
            model: ModelParams { mmap: true, repack: !self.no_repack, overrides: Vec::new() },
            context: context.clone(),
        });
        if mode == SpecMode::Draft && draft.is_none() {
            bail!("--spec draft needs --draft-model (no default draft for {name})");
        }
        if !(1..=64).contains(&self.spec_max) {
            bail!("--spec-max must be in 1..=64, got {}", self.spec_max);
        }
        let suffix = SuffixTuning::with_overrides(self.suffix_min_prob, self.suffix_factor);
        if let Err(e) = suffix.check() {
            bail!("--suffix-min-prob / --suffix-factor: {e}");
        }
        let spec =
            SpecSettings { mode, spec_max: self.spec_max, tree: self.spec_tree, suffix, ..SpecSettings::default() };
        let stem = path.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
        Ok(WorkerConfig {
            model: ModelParams { mmap: true, repack: !self.no_repack, overrides },
            context,
            spec,
            draft,
            calibration_dir: store.root().parent().map(|p| p.join("calibration")),
            suffix_store: self
                .suffix_store
                .clone()
                .or_else(|| store.root().parent().map(|p| p.join("suffix").join(format!("{stem}.bin")))),
            prefix_cache: self.prefix_cache.into(),
            prefix_store: self.prefix_store,
            ..WorkerConfig::new(name, path)
        })
    }

    /// The draft model: the one given, else the catalogue default when the
    /// mode can use one.
    fn draft_path(&self, store: &Store, mode: SpecMode) -> Result<Option<PathBuf>> {
        let name = match (&self.draft_model, mode) {
            (Some(d), _) => d.as_str(),
            (None, SpecMode::Draft | SpecMode::Auto) => match default_draft_for(&self.model) {
                Some(d) => d,
                None => return Ok(None),
            },
            (None, _) => return Ok(None),
        };
        Ok(Some(store.ensure(name, true)?))
    }

    /// Find the model, pulling a catalogue model on first use.
    pub fn resolve(&self) -> Result<PathBuf> {
        let store = Store::open_default()?;
        Ok(store.ensure(&self.model, true)?)
    }
}

#[derive(Args, Debug)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temp: f32,
    #[arg(long)]
    pub top_k: Option<u32>,
    #[arg(long)]
    pub top_p: Option<f32>,
    #[arg(long)]
    pub min_p: Option<f32>,
    /// Seed for sampling at temperature > 0.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn params(&self) -> Result<SamplingParams> {
        let p = if self.temp == 0.0 {
            SamplingParams::Greedy
        } else {
            SamplingParams::Sample {
                temperature: self.temp,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                seed: self.seed,
            }
        };
        p.validate()?;
        Ok(p)
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt text.
    #[arg(short = 'p', long, conflicts_with = "file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Read a whole conversation from a file: a JSON array of
    /// {"role": ..., "content": ...} messages, rendered with the chat
    /// template.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt", "file", "system", "chat"])]
    pub messages: Option<PathBuf>,
    /// Treat the prompt as a user message and apply the chat template.
    #[arg(long)]
    pub chat: bool,
    /// System message (implies --chat).
    #[arg(long)]
    pub system: Option<String>,
    #[arg(short = 'n', long, default_value_t = 256)]
    pub max_tokens: u32,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print one JSON object at the end instead of streaming.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub constraint: ConstraintArgs,
}

/// An output constraint; at most one.
#[derive(Args, Debug, Default)]
#[group(multiple = false)]
pub struct ConstraintArgs {
    /// The output is JSON valid against the JSON schema in FILE.
    #[arg(long, value_name = "FILE")]
    pub json_schema: Option<PathBuf>,
    /// With --json-schema: refuse schema keywords the constraint cannot
    /// enforce instead of ignoring them.
    #[arg(long, requires = "json_schema")]
    pub strict: bool,
    /// The output follows the grammar in FILE: Lark (llguidance's dialect),
    /// or a regular expression if FILE ends in `.regex`.
    #[arg(long, value_name = "FILE")]
    pub grammar: Option<PathBuf>,
    /// The whole output matches this regular expression.
    #[arg(long, value_name = "PATTERN")]
    pub regex: Option<String>,
}

impl ConstraintArgs {
    /// The constraint the flags ask for, read from its file.
    pub fn spec(&self) -> Result<Option<GrammarSource>> {
        let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
        if let Some(path) = &self.json_schema {
            let schema =
                serde_json::from_str(&read(path)?).with_context(|| format!("{} is not valid JSON", path.display()))?;
            return Ok(Some(GrammarSource::JsonSchema { schema, strict: self.strict }));
        }
        if let Some(path) = &self.grammar {
            let text = read(path)?;
            let is_regex = path.extension().is_some_and(|e| e == "regex");
            return Ok(Some(if is_regex {
                GrammarSource::Regex { pattern: text.trim_end_matches(['\n', '\r']).to_string() }
            } else {
                GrammarSource::Lark { grammar: text }
            }));
        }
        Ok(self.regex.clone().map(|pattern| GrammarSource::Regex { pattern }))
    }
}

pub fn run(a: RunArgs) -> Result<()> {
    if a.max_tokens == 0 {
        bail!("--max-tokens must be at least 1");
    }
    let prompt = prompt(&a)?;
    let sampling = a.sampling.params()?;
    let constraint = a.constraint.spec()?;
    let path = a.model.resolve()?;
    let cfg = a.model.worker_config(&a.model.model, path)?;
    crate::check::ensure_loadable(&cfg, &a.model.overrides)?;
    let worker = ModelWorker::spawn(cfg)?;
    let constraint = match constraint {
        Some(spec) => Some(worker.grammar()?.compile(&spec).context("the output constraint")?),
        None => None,
    };
    let req = GenerateRequest { sampling, constraint, ..GenerateRequest::new(prompt, a.max_tokens) };
    let (text, done) = drive(&worker, req, !a.json)?;
    if a.json {
        println!("{}", serde_json::to_string(&json_report(&a.model.model, &text, &done))?);
    } else {
        println!();
        let u = &done.usage;
        eprintln!(
            "augur: prompt {} tokens, {:.2} t/s | decode {} tokens, {:.2} t/s | finish {}",
            u.prompt_tokens,
            u.prompt_tps(),
            u.completion_tokens,
            u.decode_tps(),
            done.finish_reason.as_str()
        );
        let s = &done.spec;
        if s.drafted > 0 || a.model.spec.is_some_and(|m| m != SpecArg::Off) {
            eprintln!(
                "augur: spec {:?} | steps {} | drafted {} | accepted {} ({:.0}%) | lookup {}/{} | draft {}/{} | mean accepted length {:.2}",
                a.model.spec.unwrap_or(SpecArg::Off),
                s.steps,
                s.drafted,
                s.accepted,
                100.0 * s.acceptance(),
                s.lookup.accepted,
                s.lookup.drafted,
                s.draft.accepted,
                s.draft.drafted,
                s.mean_accepted_length()
            );
        }
    }
    Ok(())
}

/// The prompt the flags give: a conversation file, or text (from the flag
/// or a file), sent raw or as a user message.
fn prompt(a: &RunArgs) -> Result<Prompt> {
    if let Some(f) = &a.messages {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading messages file {}", f.display()))?;
        let msgs: Vec<MessageArg> = serde_json::from_str(&text)
            .with_context(|| format!("{}: expected a JSON array of {{\"role\", \"content\"}} objects", f.display()))?;
        if msgs.is_empty() {
            bail!("{}: the conversation has no messages", f.display());
        }
        return Ok(Prompt::Chat(msgs.into_iter().map(|m| ChatMessage::new(&m.role, &m.content)).collect()));
    }
    let text = match (&a.prompt, &a.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading prompt file {}", f.display()))?
        }
        (None, None) => bail!("give a prompt with -p TEXT, -f FILE or --messages FILE"),
    };
    if !(a.chat || a.system.is_some()) {
        return Ok(Prompt::Text(text));
    }
    let mut msgs = Vec::new();
    if let Some(s) = &a.system {
        msgs.push(ChatMessage::new("system", s));
    }
    msgs.push(ChatMessage::new("user", &text));
    Ok(Prompt::Chat(msgs))
}

/// One message of `--messages`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageArg {
    role: String,
    content: String,
}

/// Run one request to completion, optionally streaming its text to stdout.
pub fn drive(backend: &dyn Backend, req: GenerateRequest, stream: bool) -> Result<(String, Completion)> {
    let mut events = backend.submit(req)?;
    let mut text = String::new();
    let mut stdout = std::io::stdout().lock();
    while let Some(ev) = events.blocking_next() {
        match ev {
            Event::Started { .. } => {}
            Event::Text { text: t, .. } => {
                if stream {
                    stdout.write_all(t.as_bytes())?;
                    stdout.flush()?;
                }
                text.push_str(&t);
            }
            Event::Done(done) => return Ok((text, *done)),
            Event::Error(e) => return Err(e.into()),
        }
    }
    bail!("the model worker stopped without finishing the request")
}

fn json_report(model: &str, text: &str, done: &Completion) -> serde_json::Value {
    let u = &done.usage;
    json!({
        "model": model,
        "text": text,
        "finish_reason": done.finish_reason.as_str(),
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "prompt_tps": u.prompt_tps(),
        "decode_tps": u.decode_tps(),
        "time_to_first_token": u.time_to_first_token.as_secs_f64(),
        "prefill_time": u.prefill_time.as_secs_f64(),
        "decode_time": u.decode_time.as_secs_f64(),
        "tokens": done.tokens,
        "spec": {
            "mode": done.spec.mode,
            "steps": done.spec.steps,
            "drafted": done.spec.drafted,
            "accepted": done.spec.accepted,
            "acceptance": done.spec.acceptance(),
            "mean_accepted_length": done.spec.mean_accepted_length(),
            "sources": {
                "lookup": done.spec.lookup,
                "draft": done.spec.draft,
                "suffix": done.spec.suffix,
                "grammar": done.spec.grammar,
            },
            // The suffix steps that verified a forking tree.
            "trees": done.spec.tree,
            "accepted_at": done.spec.accepted_at,
            // Where the decode time went.
            "time": done.spec.time,
        },
    })
}
