//! The narrow interface the CLI, the server, the bench and the team drive,
//! and the token stream a generation answers with.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use augur_grammar::GrammarCompiler;
use tokio::sync::mpsc;

use crate::probe::Scorer;
use crate::request::{Event, GenerateRequest};
use crate::text::Tokenizer;
use crate::RuntimeError;

/// A model that serves generations: a local worker or a remote server.
/// Callers never see the engine: what they need of the model (tokens,
/// templates, grammars, logits) comes through these methods.
pub trait Backend: Send + Sync {
    fn model_name(&self) -> &str;
    /// The context size, where this backend knows it (a remote server
    /// does not say).
    fn n_ctx(&self) -> Option<u32>;
    /// Queue a generation. Fails at once with `QueueFull` rather than block.
    fn submit(&self, req: GenerateRequest) -> Result<TokenStream, RuntimeError>;
    /// Requests waiting for the worker.
    fn queue_depth(&self) -> usize;
    /// The model's vocabulary and chat template, where the model runs here;
    /// a remote backend takes text and tokenises for itself.
    fn tokenizer(&self) -> Option<&Tokenizer> {
        None
    }
    /// The grammar compiler for this model's vocabulary (built on first use).
    fn grammar(&self) -> Result<Arc<GrammarCompiler>, RuntimeError> {
        Err(RuntimeError::GrammarUnavailable(format!("{} has no local vocabulary", self.model_name())))
    }
    /// A small context of its own on this model's weights, for scoring
    /// prompts (the team's classifier) without waiting behind generations.
    fn scorer(&self, n_ctx: u32, threads: Option<i32>) -> Result<Scorer, RuntimeError> {
        let _ = (n_ctx, threads);
        Err(RuntimeError::InvalidRequest(format!("{} runs elsewhere: it cannot score prompts here", self.model_name())))
    }
}

/// Events of one generation. Dropping it cancels the generation, even in
/// the middle of a prefill.
pub struct TokenStream {
    rx: mpsc::Receiver<Event>,
    cancel: Arc<AtomicBool>,
}

impl TokenStream {
    /// A stream whose events come from `rx`. Dropping it sets `cancel`,
    /// which the producer polls.
    pub fn from_channel(rx: mpsc::Receiver<Event>, cancel: Arc<AtomicBool>) -> Self {
        TokenStream { rx, cancel }
    }

    /// Next event, blocking (for the CLI and other sync callers).
    pub fn blocking_next(&mut self) -> Option<Event> {
        self.rx.blocking_recv()
    }

    /// Next event, for async callers.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Drop for TokenStream {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}
