//! The draft-source interface.

use serde::{Deserialize, Serialize};

#[cfg(test)]
use crate::verify::DraftProbs;
use crate::{SpecError, Token};

/// Which kind of source produced a draft; keys per-source statistics and
/// draft costs.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftSourceId {
    Lookup,
    DraftModel,
    Suffix,
    Grammar,
}

impl DraftSourceId {
    /// Every source, in [`Self::index`] order. Adding a variant means adding
    /// it here; per-source tables are sized by [`Self::COUNT`].
    pub const ALL: [Self; 4] = [Self::Lookup, Self::DraftModel, Self::Suffix, Self::Grammar];
    pub const COUNT: usize = Self::ALL.len();

    /// Dense index into per-source tables.
    pub fn index(self) -> usize {
        match self {
            Self::Lookup => 0,
            Self::DraftModel => 1,
            Self::Suffix => 2,
            Self::Grammar => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Lookup => "lookup",
            Self::DraftModel => "draft_model",
            Self::Suffix => "suffix",
            Self::Grammar => "grammar",
        }
    }
}

/// A proposed continuation, with buffers reused across steps.
///
/// Deterministic drafters push bare tokens (q is one-hot on each). Model
/// drafters push each token with its full draft distribution row, so the
/// verifier can use the stochastic acceptance rule.
#[derive(Clone, Debug, Default)]
pub struct Draft {
    tokens: Vec<Token>,
    /// Row-major `[len × n_vocab]`; empty for deterministic drafts.
    q: Vec<f32>,
    n_vocab: usize,
}

impl Draft {
    /// Reserves room for `max_len` deterministic tokens.
    pub fn with_capacity(max_len: usize) -> Self {
        Self { tokens: Vec::with_capacity(max_len), q: Vec::new(), n_vocab: 0 }
    }

    /// Empties the draft, keeping its buffers.
    pub fn clear(&mut self) {
        self.tokens.clear();
        self.q.clear();
        self.n_vocab = 0;
    }

    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// True when every token came without a distribution (q one-hot).
    pub fn is_deterministic(&self) -> bool {
        self.n_vocab == 0
    }

    /// Appends a deterministic token. Mixing with [`Self::push_with_probs`]
    /// in one draft is refused.
    pub fn push(&mut self, t: Token) -> Result<(), SpecError> {
        if !self.is_deterministic() {
            return Err(SpecError::DraftRowLength { expected: self.n_vocab, got: 0 });
        }
        self.tokens.push(t);
        Ok(())
    }

    /// Appends `t` sampled from the draft distribution `q_row`.
    pub fn push_with_probs(&mut self, t: Token, q_row: &[f32]) -> Result<(), SpecError> {
        let mixing = self.is_deterministic() && !self.tokens.is_empty();
        let wrong_len = !self.is_deterministic() && q_row.len() != self.n_vocab;
        if mixing || wrong_len || q_row.is_empty() {
            return Err(SpecError::DraftRowLength { expected: self.n_vocab, got: q_row.len() });
        }
        self.n_vocab = q_row.len();
        self.tokens.push(t);
        self.q.extend_from_slice(q_row);
        Ok(())
    }

    /// Keeps the first `n` tokens (and their rows).
    pub fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
        self.q.truncate(n.saturating_mul(self.n_vocab));
    }
}

#[cfg(test)]
impl DraftProbs for Draft {
    fn q(&self, pos: usize, token: Token) -> Option<f32> {
        if self.is_deterministic() {
            return None;
        }
        let t = usize::try_from(token).ok().filter(|&t| t < self.n_vocab)?;
        self.q.get(pos.checked_mul(self.n_vocab)?.checked_add(t)?).copied()
    }
}

/// A draft source. Object-safe so the runtime can hold several behind
/// `Box<dyn Drafter>`.
///
/// Contract: within one request `context` (prompt + emitted tokens) only
/// grows; call [`Drafter::reset`] before a new request. A source that has
/// nothing to offer leaves the draft empty; drafting never fails a request.
pub trait Drafter {
    fn source(&self) -> DraftSourceId;

    /// Proposes up to `max_len` tokens to follow `context` into `out`
    /// (cleared first).
    fn propose(&mut self, context: &[Token], max_len: usize, out: &mut Draft);

    /// Tells the source the context grew (accepted draft tokens plus the
    /// target's own token, possibly many at once). Sources that index the
    /// context catch up here; `propose` also catches up, so calling this is
    /// optional.
    fn observe(&mut self, context: &[Token]);

    /// Feedback on the last proposal: `accepted` of `proposed` tokens
    /// survived verification. Default: ignored.
    fn feedback(&mut self, _proposed: usize, _accepted: usize) {}

    /// Forgets all per-request state.
    fn reset(&mut self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_indices_are_dense_and_unique() {
        for (i, s) in DraftSourceId::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
            assert!(!s.name().is_empty());
        }
    }

    #[test]
    fn draft_probs_lookup() {
        let mut d = Draft::with_capacity(4);
        d.push(3).unwrap();
        assert_eq!(d.q(0, 3), None);
        assert!(d.push_with_probs(1, &[0.5, 0.5]).is_err());
        d.clear();
        d.push_with_probs(1, &[0.25, 0.75]).unwrap();
        d.push_with_probs(0, &[0.6, 0.4]).unwrap();
        assert!(d.push_with_probs(0, &[1.0]).is_err());
        assert!(d.push(0).is_err());
        assert_eq!(d.q(0, 1), Some(0.75));
        assert_eq!(d.q(1, 0), Some(0.6));
        assert_eq!(d.q(2, 0), None);
        assert_eq!(d.q(0, 2), None);
        assert_eq!(d.q(0, -1), None);
        d.truncate(1);
        assert_eq!(d.tokens(), &[1]);
        assert_eq!(d.q(1, 0), None);
    }
}

#[cfg(test)]
mod integration_tests {
    use super::*;
    use crate::lookup::{LookupConfig, PromptLookup};
    use crate::verify::{accept_greedy, verify_stochastic, Deterministic};
    use augur_sampling::{Dist, SamplerRng};
    use rand::SeedableRng;

    /// A lookup draft checked by both verifiers through `dyn Drafter`.
    #[test]
    fn lookup_draft_through_verifiers() {
        let mut drafters: Vec<Box<dyn Drafter>> = vec![Box::new(PromptLookup::new(LookupConfig::default()).unwrap())];
        let context = [5, 6, 7, 8, 9, 5, 6];
        let mut draft = Draft::with_capacity(64);
        let d = &mut drafters[0];
        assert_eq!(d.source(), DraftSourceId::Lookup);
        d.propose(&context, 4, &mut draft);
        assert_eq!(draft.tokens(), &[7, 8, 9, 5]);
        // Target agrees on the first two, then wants 1.
        let v = accept_greedy(draft.tokens(), &[7, 8, 1, 0, 0]).unwrap();
        assert_eq!((v.accepted, v.next), (2, 1));
        d.feedback(draft.len(), v.accepted);
        // A one-hot target equal to the same argmaxes gives the same verdict.
        let mut target: Vec<Dist> = [7, 8, 1, 0, 0]
            .iter()
            .map(|&t| {
                let mut w = [0.0f32; 10];
                w[t as usize] = 1.0;
                Dist::from_probs(&w).unwrap()
            })
            .collect();
        let mut rng = SamplerRng::seed_from_u64(0);
        let sv = verify_stochastic(draft.tokens(), target.as_mut_slice(), &draft, &mut rng);
        assert_eq!(sv.unwrap(), v);
        let sv = verify_stochastic(draft.tokens(), target.as_mut_slice(), &Deterministic, &mut rng);
        assert_eq!(sv.unwrap(), v);
        d.observe(&[5, 6, 7, 8, 9, 5, 6, 7, 8, 1]);
        d.reset();
    }
}
