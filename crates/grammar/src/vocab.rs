//! The model's vocabulary as llguidance sees it: a token trie over each
//! token's bytes, plus the model's own tokenizer for forced text.

use std::sync::Arc;

use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

use crate::GrammarError;

/// Marks a control token's name in the trie, so grammar text never matches it.
const SPECIAL: u8 = 0xff;

/// Tokenizes bytes with the model's own tokenizer (no BOS, no special
/// parsing). `None` when the bytes cannot be tokenized (not UTF-8).
pub type TokenizeFn = dyn Fn(&[u8]) -> Option<Vec<u32>> + Send + Sync;

/// What the grammar engine needs from a model.
pub struct Vocabulary {
    /// Each token's bytes; control tokens are given as `None` with their name.
    pub tokens: Vec<VocabToken>,
    /// The token that ends a constrained answer (the chat end-of-turn).
    pub eos: u32,
    pub tokenize: Arc<TokenizeFn>,
}

/// One vocabulary entry.
pub enum VocabToken {
    /// Text the token detokenizes to.
    Text(Vec<u8>),
    /// A control token (`<|im_end|>`): never produced by grammar text.
    Control(String),
}

impl VocabToken {
    /// The bytes the trie stores for this token.
    fn trie_word(&self) -> Vec<u8> {
        match self {
            VocabToken::Text(b) => b.clone(),
            VocabToken::Control(name) => [&[SPECIAL][..], name.as_bytes()].concat(),
        }
    }
}

struct Env {
    trie: TokTrie,
    tokenize: Arc<TokenizeFn>,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        match (self.tokenize)(s) {
            Some(t) => t,
            // Not UTF-8 (a partial character): the greedy trie walk is the
            // best llguidance can get, and it only steers fast-forward.
            None => self.trie.greedy_tokenize(s),
        }
    }
}

/// Build llguidance's tokenizer environment.
pub(crate) fn tok_env(vocab: Vocabulary) -> Result<TokEnv, GrammarError> {
    let n = u32::try_from(vocab.tokens.len()).map_err(|_| GrammarError::Vocabulary("vocabulary too large".into()))?;
    if n == 0 || vocab.eos >= n {
        return Err(GrammarError::Vocabulary(format!("end token {} outside a vocabulary of {n}", vocab.eos)));
    }
    let words: Vec<Vec<u8>> = vocab.tokens.iter().map(VocabToken::trie_word).collect();
    let mut info = TokRxInfo::new(n, vocab.eos);
    info.tok_end_of_turn = Some(vocab.eos);
    let trie = TokTrie::from(&info, &words);
    Ok(Arc::new(Env { trie, tokenize: vocab.tokenize }))
}

/// Small vocabularies for tests without a model.
pub mod test_vocab {
    use super::*;

    /// A byte-level vocabulary (one token per byte) plus a few multi-byte
    /// words and an end token, tokenized greedily: enough to exercise
    /// grammars without a model.
    pub fn small() -> Vocabulary {
        let mut tokens: Vec<VocabToken> = (0u8..=255).map(|b| VocabToken::Text(vec![b])).collect();
        for w in ["{\"", "\":", " \"", "\",", "name", "arguments", "true", "false", "null", "<tool_call>", "\n"] {
            tokens.push(VocabToken::Text(w.as_bytes().to_vec()));
        }
        tokens.push(VocabToken::Control("<|end|>".into()));
        let eos = (tokens.len() - 1) as u32;
        let words: Vec<Vec<u8>> = tokens.iter().map(VocabToken::trie_word).collect();
        let trie = TokTrie::from(&TokRxInfo::new(words.len() as u32, eos), &words);
        let tokenize: Arc<TokenizeFn> = Arc::new(move |s: &[u8]| Some(trie.greedy_tokenize(s)));
        Vocabulary { tokens, eos, tokenize }
    }
}
