//! The model's vocabulary for the grammar engine, built once per model.

use std::sync::{Arc, OnceLock};

use augur_engine::Model;
use augur_grammar::{GrammarCompiler, GrammarLimits, TokenizeFn, VocabToken, Vocabulary};

use crate::RuntimeError;

/// Each token's bytes; control tokens (which detokenise to nothing) by name,
/// so grammar text can never produce them.
pub fn vocabulary(model: &Arc<Model>) -> Vocabulary {
    let tokens = (0..model.n_vocab())
        .map(|t| {
            let piece = model.piece(t);
            if piece.is_empty() {
                VocabToken::Control(model.token_text(t))
            } else {
                VocabToken::Text(piece.to_vec())
            }
        })
        .collect();
    let m = model.clone();
    let tokenize: Arc<TokenizeFn> = Arc::new(move |bytes: &[u8]| {
        let text = std::str::from_utf8(bytes).ok()?;
        let toks = m.tokenize(text, false, false).ok()?;
        toks.into_iter().map(|t| u32::try_from(t).ok()).collect()
    });
    let eos = model.eos().and_then(|t| u32::try_from(t).ok()).unwrap_or(0);
    Vocabulary { tokens, eos, tokenize }
}

/// A lazily built grammar engine (the token trie takes a moment on a 150k
/// vocabulary, and most requests never need it).
#[derive(Default)]
pub struct LazyGrammar(OnceLock<Result<Arc<GrammarCompiler>, String>>);

impl LazyGrammar {
    pub fn get(&self, model: &Arc<Model>) -> Result<Arc<GrammarCompiler>, RuntimeError> {
        self.0
            .get_or_init(|| {
                GrammarCompiler::new(vocabulary(model), GrammarLimits::default())
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(RuntimeError::GrammarUnavailable)
    }
}
