//! What a caller asks for and what it gets back.

use std::sync::Arc;
use std::time::Duration;

use augur_grammar::CompiledGrammar;

use augur_engine::ChatMessage;
use augur_sampling::{SamplingParams, Token};
use serde::{Deserialize, Serialize};

pub use crate::speculate::settings::SpecMode;
use crate::speculate::stats::SpecStats;

/// The input of a generation.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Raw text, tokenised with special tokens parsed.
    Text(String),
    /// A conversation, rendered with the model's chat template.
    Chat(Vec<ChatMessage>),
    /// Pre-tokenised input.
    Tokens(Vec<Token>),
}

/// Per-request speculation settings; `None` takes the worker's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecOptions {
    pub mode: Option<SpecMode>,
    /// Longest draft per step.
    pub max: Option<usize>,
    /// Put the tokens a grammar forces into the next verify batch
    /// (default on; needs the worker's calibrated cost curve).
    pub fast_forward: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub prompt: Prompt,
    pub max_tokens: u32,
    pub sampling: SamplingParams,
    /// Generation stops before the first occurrence of any of these.
    pub stop: Vec<String>,
    pub spec: SpecOptions,
    /// Output constraint (JSON schema, regex, grammar, tool calls), compiled
    /// with [`crate::Backend::grammar`].
    pub constraint: Option<Arc<CompiledGrammar>>,
}

impl GenerateRequest {
    pub fn new(prompt: Prompt, max_tokens: u32) -> Self {
        Self {
            prompt,
            max_tokens,
            sampling: SamplingParams::Greedy,
            stop: Vec::new(),
            spec: SpecOptions::default(),
            constraint: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-generation token or hit a stop string.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The consumer went away.
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// Totals for one finished generation.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens whose KV was reused rather than recomputed.
    pub cached_tokens: usize,
    #[serde(with = "secs")]
    pub prefill_time: Duration,
    /// From the first generated token to the last.
    #[serde(with = "secs")]
    pub decode_time: Duration,
    #[serde(with = "secs")]
    pub time_to_first_token: Duration,
}

impl Usage {
    /// Prompt tokens per second of prefill.
    pub fn prompt_tps(&self) -> f64 {
        tokens_per_sec(self.prompt_tokens.saturating_sub(self.cached_tokens), self.prefill_time)
    }

    /// Tokens per second after the first one (which the prefill produces).
    pub fn decode_tps(&self) -> f64 {
        tokens_per_sec(self.completion_tokens.saturating_sub(1), self.decode_time)
    }
}

/// `n` tokens over `t`, or 0 for an empty interval.
pub fn tokens_per_sec(n: usize, t: Duration) -> f64 {
    if t.is_zero() {
        0.0
    } else {
        n as f64 / t.as_secs_f64()
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// The result of a generation, sent last on its stream.
#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// Generated token ids (up to a stop string, if one matched).
    #[serde(skip)]
    pub tokens: Vec<Token>,
    /// What speculation did.
    pub spec: SpecStats,
}

/// What a token stream carries.
#[derive(Debug)]
pub enum Event {
    /// The prompt was accepted: its size, and how much KV was reused.
    Started {
        prompt_tokens: usize,
        cached_tokens: usize,
    },
    /// New text (may be empty while a multi-byte character or a possible stop
    /// string is held back) and the tokens it came from. Inline up to 24
    /// bytes, so the usual step costs no allocation.
    Text {
        text: compact_str::CompactString,
        tokens: usize,
    },
    /// Boxed: the report is large and sent once per request.
    Done(Box<Completion>),
    Error(crate::RuntimeError),
}
