//! Versioned prompt suites: YAML files under `bench/prompts/v1/`.

use std::path::{Path, PathBuf};

use augur_runtime::ChatMessage;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// One YAML file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub suite: String,
    pub version: u32,
    #[serde(default)]
    pub description: String,
    pub prompts: Vec<BenchPrompt>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BenchPrompt {
    pub id: String,
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    #[serde(default)]
    pub check: Option<crate::check::Check>,
    /// Deterministic long input substituted for `{{filler}}` in the messages,
    /// so long-context prompts stay small on disk.
    #[serde(default)]
    pub filler: Option<Filler>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// `template` repeated `count` times. Placeholders: `{i}` (1-based index),
/// `{rN}` (pseudo-random integer below N), `{words}` (ten pseudo-random
/// words). The generator is a fixed LCG seeded by `seed`: the same YAML
/// gives the same bytes on every machine and version.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Filler {
    pub template: String,
    pub count: usize,
    #[serde(default)]
    pub seed: u64,
}

const WORDS: &[&str] = &[
    "river", "ledger", "amber", "signal", "harbor", "copper", "meadow", "vector", "lantern", "quartz", "orbit",
    "granite", "willow", "cipher", "delta", "ember", "falcon", "glacier", "hollow", "island", "jasper", "kernel",
    "lattice", "marble", "nectar", "oasis", "prism", "quiver", "rafter", "saddle", "timber", "umber", "velvet",
    "wander", "yonder", "zephyr", "the", "a", "of", "and", "beneath", "across", "slowly", "bright", "quiet",
];

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}

impl Filler {
    pub fn expand(&self) -> String {
        let mut rng = Lcg(self.seed ^ 0x9E37_79B9_7F4A_7C15);
        let mut out = String::new();
        for i in 1..=self.count {
            expand_one(&self.template, i, &mut rng, &mut out);
        }
        out
    }
}

fn expand_one(template: &str, i: usize, rng: &mut Lcg, out: &mut String) {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return;
        };
        let key = &rest[start + 1..start + len];
        // A literal brace (code in a template): keep it, scan on after it.
        if key.contains('{') {
            out.push('{');
            rest = &rest[start + 1..];
            continue;
        }
        match placeholder(key, i, rng) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..=start + len]),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
}

fn placeholder(key: &str, i: usize, rng: &mut Lcg) -> Option<String> {
    if key == "i" {
        return Some(i.to_string());
    }
    if key == "words" {
        let w: Vec<&str> = (0..10).map(|_| WORDS[rng.next(WORDS.len() as u64) as usize]).collect();
        return Some(w.join(" "));
    }
    let n: u64 = key.strip_prefix('r')?.parse().ok()?;
    Some(rng.next(n).to_string())
}

impl BenchPrompt {
    /// The conversation with any filler substituted.
    pub fn chat(&self) -> Vec<ChatMessage> {
        let filler = self.filler.as_ref().map(Filler::expand);
        self.messages
            .iter()
            .map(|m| {
                let content = match &filler {
                    Some(f) => m.content.replace("{{filler}}", f),
                    None => m.content.clone(),
                };
                ChatMessage::new(m.role.clone(), content)
            })
            .collect()
    }

    /// A rough upper bound on prompt tokens, used to size the context
    /// before loading. Two bytes per token: English and code average three
    /// to four, but digit-heavy logs come close to two with Qwen's tokenizer.
    pub fn estimated_tokens(&self) -> usize {
        let chars: usize = self.chat().iter().map(|m| m.content.len() + 8).sum();
        chars / 2 + 64
    }
}

impl Suite {
    pub fn load(path: &Path) -> Result<Suite> {
        let text = std::fs::read_to_string(path).map_err(BenchError::io(format!("reading {}", path.display())))?;
        let suite: Suite = serde_norway::from_str(&text)
            .map_err(|e| BenchError::Suite { path: path.to_path_buf(), message: e.to_string() })?;
        suite.validate().map_err(|message| BenchError::Suite { path: path.to_path_buf(), message })?;
        Ok(suite)
    }

    fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        if self.prompts.is_empty() {
            return Err("a suite needs at least one prompt".into());
        }
        for p in &self.prompts {
            if !seen.insert(p.id.as_str()) {
                return Err(format!("duplicate prompt id {:?}", p.id));
            }
            if p.max_tokens == 0 || p.messages.is_empty() {
                return Err(format!("prompt {:?}: needs messages and max_tokens >= 1", p.id));
            }
        }
        Ok(())
    }
}

/// `bench/prompts/v1` under the workspace this crate was built in; the CLI
/// lets the user point elsewhere.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/prompts/v1")
}

/// Every suite in `dir`, sorted by name.
pub fn load_all(dir: &Path) -> Result<Vec<Suite>> {
    let entries = std::fs::read_dir(dir).map_err(BenchError::io(format!("listing {}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| Suite::load(p)).collect()
}

/// `names` may hold `all`; each other name must be a suite in `dir`.
pub fn select(dir: &Path, names: &[String]) -> Result<Vec<Suite>> {
    let all = load_all(dir)?;
    if names.iter().any(|n| n == "all") {
        return Ok(all);
    }
    names
        .iter()
        .map(|n| all.iter().find(|s| &s.suite == n).cloned().ok_or_else(|| BenchError::UnknownSuite(n.clone())))
        .collect()
}
