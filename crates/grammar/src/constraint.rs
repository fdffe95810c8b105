//! One request's grammar state, advanced one accepted token at a time.
//!
//! The driver only ever commits tokens the target chose, so the state
//! always matches the accepted output: a rejected draft needs no rollback.

use std::time::{Duration, Instant};

use llguidance::Matcher;
use toktrie::{SimpleVob, TokEnv};

use crate::GrammarError;

/// Token id, as the runtime spells it.
pub type Token = i32;

/// Work the constraint did for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConstraintStats {
    /// Full token masks computed.
    pub masks: u64,
    /// Single-token checks (the cheap path when the target's choice is allowed).
    pub checks: u64,
    /// Time spent in masks, checks and commits.
    pub time: Duration,
}

/// Waiting for the model to open a tool call (`tool_choice: auto`).
struct Trigger {
    pattern: Vec<u8>,
    /// The last bytes of the output, at most `pattern.len()`.
    tail: Vec<u8>,
}

impl Trigger {
    /// Feed `bytes`; true when the output now ends with the pattern.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        let n = self.pattern.len();
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > n {
            self.tail.drain(..self.tail.len() - n);
        }
        self.tail == self.pattern
    }
}

/// What an `auto` tool-call constraint starts with.
pub(crate) struct AutoStart {
    pub trigger: Vec<u8>,
    /// Grammar of a bare call object as the whole answer.
    pub bare: Matcher,
}

/// Per-request constraint.
pub struct Constraint {
    matcher: Matcher,
    env: Option<TokEnv>,
    trigger: Option<Trigger>,
    bare: Option<Matcher>,
    /// Nothing has been committed yet.
    at_start: bool,
    active: bool,
    finished: bool,
    eos: u32,
    mask: SimpleVob,
    ff: Vec<u32>,
    scratch: Vec<u32>,
    /// Bytes replayed by `prefix_before_trigger` (reused).
    probe: Vec<u8>,
    stats: ConstraintStats,
}

impl Constraint {
    pub(crate) fn new(matcher: Matcher, auto: Option<AutoStart>, eos: u32) -> Self {
        let active = auto.is_none();
        let (trigger, bare) = match auto {
            Some(a) => {
                (Some(Trigger { tail: Vec::with_capacity(a.trigger.len() * 2), pattern: a.trigger }), Some(a.bare))
            }
            None => (None, None),
        };
        Self {
            bare,
            at_start: true,
            env: matcher.tok_env().ok(),
            matcher,
            trigger,
            active,
            finished: false,
            eos,
            mask: SimpleVob::new(),
            ff: Vec::new(),
            scratch: Vec::new(),
            probe: Vec::new(),
            stats: ConstraintStats::default(),
        }
    }

    /// Whether the grammar restricts the next token (false while `auto`
    /// tool calling waits for the model to open a call).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The grammar is complete and the end token was committed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn stats(&self) -> ConstraintStats {
        self.stats
    }

    /// Is `t` allowed next?
    pub fn allows(&mut self, t: Token) -> Result<bool, GrammarError> {
        if !self.active {
            return Ok(true);
        }
        let start = Instant::now();
        self.stats.checks += 1;
        let ok = match u32::try_from(t) {
            Err(_) => false,
            Ok(t) if t == self.eos => self.can_end(),
            Ok(_) if self.matcher.is_stopped() => false,
            Ok(t) => self.matcher.validate_tokens(&[t]).map_err(stuck)? == 1,
        };
        self.stats.time += start.elapsed();
        Ok(ok)
    }

    fn can_end(&mut self) -> bool {
        self.matcher.is_stopped() || self.matcher.is_accepting().unwrap_or(false)
    }

    /// The allowed tokens, or `None` when unconstrained at this point.
    pub fn mask(&mut self) -> Result<Option<&SimpleVob>, GrammarError> {
        if !self.active {
            return Ok(None);
        }
        let start = Instant::now();
        self.stats.masks += 1;
        self.mask = self.matcher.compute_mask_or_eos().map_err(stuck)?;
        if self.can_end() {
            self.mask.allow_token(self.eos);
        }
        self.stats.time += start.elapsed();
        if self.mask.is_zero() {
            return Err(GrammarError::Stuck("no token is allowed".into()));
        }
        Ok(Some(&self.mask))
    }

    /// Called before the target's free choice `t` is taken while waiting
    /// for an `auto` call: an answer that starts with `{` is a bare call,
    /// so the call grammar switches on (true) and the choice is made again
    /// under it.
    pub fn opens_call(&mut self, t: Token) -> bool {
        if self.active || !self.at_start {
            return false;
        }
        let starts_object = match (u32::try_from(t), self.env.as_ref()) {
            (Ok(t), Some(env)) => env.tok_trie().token(t).first() == Some(&b'{'),
            _ => false,
        };
        if !starts_object {
            return false;
        }
        let Some(bare) = self.bare.take() else { return false };
        self.matcher = bare;
        // A bare call is the whole answer: no waiting for another opener.
        self.trigger = None;
        self.active = true;
        true
    }

    /// Advance past `t`, which the target chose.
    pub fn commit(&mut self, t: Token) -> Result<(), GrammarError> {
        let Ok(tok) = u32::try_from(t) else {
            return Err(GrammarError::Stuck(format!("token {t} is outside the vocabulary")));
        };
        self.at_start = false;
        if !self.active {
            self.watch(tok);
            return Ok(());
        }
        if tok == self.eos {
            self.finished = true;
            return Ok(());
        }
        let start = Instant::now();
        self.matcher.consume_token(tok).map_err(stuck)?;
        if self.matcher.is_stopped() && self.trigger.is_some() {
            // One call is complete; wait for the model to open another.
            self.matcher.reset().map_err(stuck)?;
            self.active = false;
        }
        self.stats.time += start.elapsed();
        Ok(())
    }

    fn watch(&mut self, tok: u32) {
        let (Some(trigger), Some(env)) = (self.trigger.as_mut(), self.env.as_ref()) else { return };
        let fired = trigger.feed(env.tok_trie().token(tok));
        if fired {
            trigger.tail.clear();
            self.active = true;
        }
    }

    /// Tokens the grammar forces next (a key name, a closing brace): free
    /// drafts. Empty when nothing is forced or the grammar is inactive.
    pub fn forced(&mut self) -> &[u32] {
        self.ff.clear();
        if self.active && !self.matcher.is_stopped() {
            let start = Instant::now();
            self.ff = self.matcher.compute_ff_tokens();
            self.stats.time += start.elapsed();
        }
        &self.ff
    }

    /// How many leading tokens of `draft` the grammar allows. Drafts past
    /// an `auto` trigger are cut after it (the call grammar is not running
    /// yet), which only shortens the draft.
    pub fn valid_prefix(&mut self, draft: &[Token]) -> usize {
        if !self.active {
            return self.prefix_before_trigger(draft);
        }
        self.scratch.clear();
        for &t in draft {
            match u32::try_from(t) {
                Ok(t) if t != self.eos => self.scratch.push(t),
                _ => break,
            }
        }
        let start = Instant::now();
        let n = self.matcher.validate_tokens(&self.scratch).unwrap_or(0);
        self.stats.time += start.elapsed();
        n
    }

    fn prefix_before_trigger(&mut self, draft: &[Token]) -> usize {
        let (Some(trigger), Some(env)) = (self.trigger.as_ref(), self.env.as_ref()) else { return draft.len() };
        // Replays the drafted bytes after the current tail in a reused
        // buffer: this runs every step while waiting for a call.
        let probe = &mut self.probe;
        probe.clear();
        probe.extend_from_slice(&trigger.tail);
        for (i, &t) in draft.iter().enumerate() {
            let Ok(t) = u32::try_from(t) else { return i };
            probe.extend_from_slice(env.tok_trie().token(t));
            if probe.ends_with(&trigger.pattern) {
                return i + 1;
            }
        }
        draft.len()
    }
}

fn stuck(e: impl std::fmt::Display) -> GrammarError {
    GrammarError::Stuck(e.to_string())
}
