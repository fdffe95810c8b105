//! Compiling grammars for one vocabulary: bounded in size, fuel and time,
//! and cached by a hash of the request's constraint.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llguidance::api::{ParserLimits, TopLevelGrammar};
use llguidance::{Matcher, ParserFactory};
use sha2::{Digest, Sha256};

use crate::constraint::{AutoStart, Constraint};
use crate::vocab::{tok_env, Vocabulary};
use crate::{GrammarError, GrammarSource};

/// Bounds on what one constraint may cost.
#[derive(Debug, Clone)]
pub struct GrammarLimits {
    /// Wall time for compiling one grammar.
    pub compile_timeout: Duration,
    /// Size of the serialised constraint (schema, pattern or grammar).
    pub max_spec_bytes: usize,
    /// Symbols in the compiled grammar's productions.
    pub max_grammar_size: usize,
    /// Lexer states (each costs 1-2 KB).
    pub max_lexer_states: usize,
    /// Lexer work for building the grammar's regexes (about 50k per ms).
    pub initial_lexer_fuel: u64,
    /// Lexer work for one token mask (about 14k per ms).
    pub step_lexer_fuel: u64,
    /// Parser items for one token mask (about 20k per ms).
    pub step_max_items: usize,
    /// Compiled grammars kept for reuse.
    pub cache_entries: usize,
    /// `$ref`s in one JSON schema (each can add a level of compiler recursion).
    pub max_refs: usize,
}

impl Default for GrammarLimits {
    fn default() -> Self {
        Self {
            compile_timeout: Duration::from_secs(3),
            max_spec_bytes: 1 << 20,
            max_grammar_size: 200_000,
            max_lexer_states: 50_000,
            initial_lexer_fuel: 1_000_000,
            step_lexer_fuel: 200_000,
            step_max_items: 50_000,
            cache_entries: 64,
            max_refs: 1_000,
        }
    }
}

/// Stack of the compiler thread.
const COMPILE_STACK: usize = 256 << 20;

/// A compiled constraint, ready to start any number of requests.
pub struct CompiledGrammar {
    /// Fresh parser with warmed lexer caches; each request deep-clones it.
    proto: Mutex<Matcher>,
    auto: Option<AutoProto>,
    eos: u32,
}

/// `auto` tool calling: the opener text, and the grammar of a bare call.
struct AutoProto {
    trigger: Vec<u8>,
    bare: Mutex<Matcher>,
}

impl std::fmt::Debug for CompiledGrammar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledGrammar").field("auto", &self.auto.is_some()).finish_non_exhaustive()
    }
}

impl CompiledGrammar {
    /// Per-request state.
    pub fn start(&self) -> Result<Constraint, GrammarError> {
        let m = clone_of(&self.proto)?;
        let auto = match &self.auto {
            Some(a) => Some(AutoStart { trigger: a.trigger.clone(), bare: clone_of(&a.bare)? }),
            None => None,
        };
        Ok(Constraint::new(m, auto, self.eos))
    }
}

fn clone_of(m: &Mutex<Matcher>) -> Result<Matcher, GrammarError> {
    Ok(m.lock().map_err(|_| GrammarError::Internal("grammar lock poisoned".into()))?.deep_clone())
}

struct Cached {
    grammar: Arc<CompiledGrammar>,
    last_used: u64,
}

/// Grammar compiler for one model's vocabulary.
pub struct GrammarCompiler {
    factory: Arc<ParserFactory>,
    limits: GrammarLimits,
    eos: u32,
    cache: Mutex<(u64, HashMap<[u8; 32], Cached>)>,
}

impl GrammarCompiler {
    pub fn new(vocab: Vocabulary, limits: GrammarLimits) -> Result<Self, GrammarError> {
        let eos = vocab.eos;
        let env = tok_env(vocab)?;
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| GrammarError::Vocabulary(e.to_string()))?;
        factory.quiet();
        *factory.limits_mut() = ParserLimits {
            max_items_in_row: 2000,
            initial_lexer_fuel: limits.initial_lexer_fuel,
            step_lexer_fuel: limits.step_lexer_fuel,
            step_max_items: limits.step_max_items,
            max_lexer_states: limits.max_lexer_states,
            max_grammar_size: limits.max_grammar_size,
            precompute_large_lexemes: true,
            verbose_errors: false,
        };
        Ok(Self { factory: Arc::new(factory), limits, eos, cache: Mutex::new((0, HashMap::new())) })
    }

    pub fn limits(&self) -> &GrammarLimits {
        &self.limits
    }

    /// Compile `spec`, or return the cached compilation of an identical one.
    pub fn compile(&self, spec: &GrammarSource) -> Result<Arc<CompiledGrammar>, GrammarError> {
        let text = serde_json::to_vec(spec).map_err(|e| GrammarError::Invalid(e.to_string()))?;
        if text.len() > self.limits.max_spec_bytes {
            return Err(GrammarError::TooLarge { bytes: text.len(), limit: self.limits.max_spec_bytes });
        }
        let refs = count_refs(spec);
        if refs > self.limits.max_refs {
            return Err(GrammarError::TooManyRefs { refs, limit: self.limits.max_refs });
        }
        for_each_schema(spec, crate::check_recursion)?;
        let key: [u8; 32] = Sha256::digest(&text).into();
        if let Some(g) = self.cached(&key) {
            return Ok(g);
        }
        let plan = spec.to_grammar()?;
        let matcher = self.build(plan.main)?;
        let auto = match plan.auto {
            Some(a) => Some(AutoProto { trigger: a.trigger, bare: Mutex::new(self.build(a.bare)?) }),
            None => None,
        };
        let compiled = Arc::new(CompiledGrammar { proto: Mutex::new(matcher), auto, eos: self.eos });
        self.remember(key, compiled.clone());
        Ok(compiled)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Arc<CompiledGrammar>> {
        let mut guard = self.cache.lock().ok()?;
        let (clock, map) = &mut *guard;
        *clock += 1;
        let entry = map.get_mut(key)?;
        entry.last_used = *clock;
        Some(entry.grammar.clone())
    }

    fn remember(&self, key: [u8; 32], grammar: Arc<CompiledGrammar>) {
        let Ok(mut guard) = self.cache.lock() else { return };
        let (clock, map) = &mut *guard;
        *clock += 1;
        if map.len() >= self.limits.cache_entries {
            if let Some(old) = map.iter().min_by_key(|(_, c)| c.last_used).map(|(k, _)| *k) {
                map.remove(&old);
            }
        }
        map.insert(key, Cached { grammar, last_used: *clock });
    }

    /// Compile on a helper thread so a pathological grammar costs the
    /// caller at most the timeout; the fuel limits bound the thread itself.
    fn build(&self, grammar: TopLevelGrammar) -> Result<Matcher, GrammarError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let factory = self.factory.clone();
        std::thread::Builder::new()
            .name("grammar-compile".into())
            // The schema compiler recurses along `$ref` chains and nesting;
            // only touched pages cost memory, and `max_refs` bounds depth.
            .stack_size(COMPILE_STACK)
            .spawn(move || {
                let r = catch_unwind(AssertUnwindSafe(|| compile_and_probe(&factory, grammar)));
                let _ =
                    tx.send(r.unwrap_or_else(|_| Err(GrammarError::Internal("the grammar compiler panicked".into()))));
            })
            .map_err(|e| GrammarError::Internal(format!("cannot start the compiler thread: {e}")))?;
        match rx.recv_timeout(self.limits.compile_timeout) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(GrammarError::Timeout(self.limits.compile_timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(GrammarError::Internal("the grammar compiler died".into()))
            }
        }
    }
}

/// Build the parser and compute the first mask: an unsatisfiable grammar
/// shows up here as an error or an empty mask, before any decoding.
fn compile_and_probe(factory: &ParserFactory, grammar: TopLevelGrammar) -> Result<Matcher, GrammarError> {
    let parser = factory.create_parser(grammar).map_err(|e| GrammarError::Invalid(clean(&e.to_string())))?;
    let mut m = Matcher::new(Ok(parser));
    if let Some(e) = m.get_error() {
        return Err(GrammarError::Invalid(clean(&e)));
    }
    let mask = m.compute_mask().map_err(|e| GrammarError::Invalid(clean(&e.to_string())))?;
    let accepting = m.is_accepting().unwrap_or(false);
    if mask.is_zero() && !accepting {
        return Err(GrammarError::Unsatisfiable);
    }
    Ok(m)
}

/// llguidance errors can be long; keep the first lines, bounded.
fn clean(msg: &str) -> String {
    let mut s: String = msg.lines().take(4).collect::<Vec<_>>().join("; ");
    if s.len() > 600 {
        s.truncate(augur_persist::floor_char_boundary(&s, 600));
        s.push('…');
    }
    s
}

/// Run `check` on each of the constraint's JSON schemas.
fn for_each_schema(
    spec: &GrammarSource,
    check: impl Fn(&serde_json::Value) -> Result<(), GrammarError>,
) -> Result<(), GrammarError> {
    match spec {
        GrammarSource::JsonSchema { schema, .. } => check(schema),
        GrammarSource::ToolCalls { tools, .. } => tools.iter().try_for_each(|t| check(&t.parameters)),
        GrammarSource::JsonObject | GrammarSource::Regex { .. } | GrammarSource::Lark { .. } => Ok(()),
    }
}

/// `$ref` keys anywhere in the constraint's schemas.
fn count_refs(spec: &GrammarSource) -> usize {
    fn walk(v: &serde_json::Value, n: &mut usize) {
        match v {
            serde_json::Value::Object(m) => {
                *n += usize::from(m.contains_key("$ref"));
                m.values().for_each(|x| walk(x, n));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, n)),
            _ => {}
        }
    }
    let mut n = 0;
    match spec {
        GrammarSource::JsonSchema { schema, .. } => walk(schema, &mut n),
        GrammarSource::ToolCalls { tools, .. } => tools.iter().for_each(|t| walk(&t.parameters, &mut n)),
        GrammarSource::JsonObject | GrammarSource::Regex { .. } | GrammarSource::Lark { .. } => {}
    }
    n
}
