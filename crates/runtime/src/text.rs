//! A model's vocabulary and chat template, as callers above the runtime
//! use them: tokenise, render a chat (with tools), detokenise.

use std::sync::Arc;

use augur_engine::{ChatMessage, EngineError, Model};
use augur_sampling::Token;
use serde_json::Value;

use crate::request::{GenerateRequest, Prompt};
use crate::RuntimeError;

/// Cheap to clone: it shares the loaded model.
#[derive(Clone)]
pub struct Tokenizer {
    model: Arc<Model>,
}

impl Tokenizer {
    pub(crate) fn new(model: Arc<Model>) -> Self {
        Tokenizer { model }
    }

    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<Token>, RuntimeError> {
        Ok(self.model.tokenize(text, add_special, parse_special)?)
    }

    /// Text of `tokens`, each checked against the vocabulary.
    pub fn detokenize(&self, tokens: &[Token]) -> Result<String, RuntimeError> {
        self.check(tokens)?;
        Ok(self.model.detokenize(tokens))
    }

    pub fn n_vocab(&self) -> i32 {
        self.model.n_vocab()
    }

    pub fn bos(&self) -> Option<Token> {
        self.model.bos()
    }

    /// Refuse the first token id outside the vocabulary.
    pub fn check(&self, tokens: &[Token]) -> Result<(), RuntimeError> {
        match tokens.iter().find(|&&t| !self.model.contains(t)) {
            Some(&token) => Err(EngineError::TokenOutOfRange { token, n_vocab: self.model.n_vocab() }.into()),
            None => Ok(()),
        }
    }

    /// Whether the chat template itself writes a tool list it is given.
    pub fn template_reads_tools(&self) -> bool {
        self.model.chat_renderer().knows_tools()
    }

    /// Render a conversation (tools in OpenAI's shape go to the template
    /// as `tools`) with the generation prompt appended.
    pub fn render_chat(&self, messages: &[ChatMessage], tools: Option<&Value>) -> Result<String, RuntimeError> {
        Ok(self.model.render_chat_with_tools(messages, tools, true)?)
    }

    /// Render and tokenise a conversation for generation.
    pub fn tokenize_chat(&self, messages: &[ChatMessage], tools: Option<&Value>) -> Result<Vec<Token>, RuntimeError> {
        Ok(self.model.tokenize_chat(messages, tools)?)
    }

    /// The prompt's tokens, checked to fit the context with its completion.
    pub fn prepare(&self, n_ctx: u32, req: &GenerateRequest) -> Result<Vec<Token>, RuntimeError> {
        let tokens = match &req.prompt {
            Prompt::Text(t) => self.tokenize(t, true, true)?,
            Prompt::Chat(msgs) => self.tokenize_chat(msgs, None)?,
            Prompt::Tokens(t) => {
                self.check(t)?;
                t.clone()
            }
        };
        if tokens.is_empty() {
            return Err(RuntimeError::EmptyPrompt);
        }
        if tokens.len() + req.max_tokens as usize > n_ctx as usize {
            return Err(RuntimeError::ContextOverflow { prompt: tokens.len(), max_tokens: req.max_tokens, n_ctx });
        }
        Ok(tokens)
    }
}
