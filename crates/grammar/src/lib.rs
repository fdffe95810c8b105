//! Constrained decoding for augur: JSON schemas, regular expressions, Lark
//! grammars and tool calls, compiled by llguidance into token masks over
//! the model's own vocabulary.
//!
//! [`GrammarCompiler`] compiles (bounded, cached); [`CompiledGrammar::start`]
//! gives each request a [`Constraint`], which the generation loop asks
//! which tokens are allowed and tells which one was chosen.

#![forbid(unsafe_code)]

mod compiler;
mod constraint;
mod schema;
mod source;
mod vocab;

pub use compiler::{CompiledGrammar, GrammarCompiler, GrammarLimits};
pub use constraint::{Constraint, ConstraintStats, Token};
pub use schema::check_recursion;
pub use source::{GrammarSource, ToolChoice, ToolDef, ToolFormat};
pub use toktrie::SimpleVob;
pub use vocab::{test_vocab, TokenizeFn, VocabToken, Vocabulary};

use std::time::Duration;

/// Why a constraint could not be compiled or followed.
#[derive(Debug, thiserror::Error)]
pub enum GrammarError {
    /// The schema, pattern or grammar is malformed or uses what is not supported.
    #[error("invalid grammar: {0}")]
    Invalid(String),
    /// No output can satisfy it (for example `minItems` above `maxItems`).
    #[error("the constraint admits no output")]
    Unsatisfiable,
    #[error("the constraint is {bytes} bytes; the limit is {limit}")]
    TooLarge { bytes: usize, limit: usize },
    #[error("the schema has {refs} `$ref`s; the limit is {limit}")]
    TooManyRefs { refs: usize, limit: usize },
    /// A part of the schema must contain itself, so no finite value matches.
    #[error("the schema at `{pointer}` must contain itself (through `$ref`, `allOf` or required parts), so no finite value matches it")]
    Recursive { pointer: String },
    #[error("compiling the constraint took longer than {0:?}")]
    Timeout(Duration),
    /// The vocabulary could not be turned into a token trie.
    #[error("vocabulary: {0}")]
    Vocabulary(String),
    /// During decoding the grammar reached a state it cannot leave (a lexer
    /// or parser limit, or an internal error).
    #[error("constrained decoding stopped: {0}")]
    Stuck(String),
    #[error("internal grammar error: {0}")]
    Internal(String),
}

impl GrammarError {
    /// Errors caused by the request rather than the server.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_)
                | Self::Unsatisfiable
                | Self::TooLarge { .. }
                | Self::TooManyRefs { .. }
                | Self::Recursive { .. }
                | Self::Timeout(_)
        )
    }
}

#[cfg(test)]
mod tests;
