//! Reference acceptance maths for speculative decoding, compiled for tests
//! only: the runtime verifies with its own chunked loop (greedy, or seeded
//! sampling of the target's token, which is this scheme with a one-hot `q`),
//! and these functions are the general rules it is checked against.
//!
//! Greedy verification keeps the longest draft prefix equal to the target's
//! argmax. Stochastic verification is the rejection scheme of Leviathan et
//! al. 2023 / Chen et al. 2023: accept drafted `x ~ q` with probability
//! `min(1, p(x)/q(x))`, otherwise emit a draw from `norm(max(0, p - q))`; if
//! every draft token survives, emit a bonus draw from the next `p`. Each
//! emitted token is then distributed exactly as `p`.
//!
//! [`verify_position`] is the single-candidate step. A tree (multi-candidate)
//! verifier applies the same step to siblings in turn, replacing `p` with the
//! residual after each rejection; it can be built on the same pieces.

use augur_sampling::{Dist, DistBuilder};
use rand::Rng;

use crate::{SpecError, Token, Verdict};

/// Greedy verification. `target_argmax[i]` is the target's argmax after
/// `context + draft[..i]`, so it must have `draft.len() + 1` entries.
pub fn accept_greedy(draft: &[Token], target_argmax: &[Token]) -> Result<Verdict, SpecError> {
    if target_argmax.len() != draft.len() + 1 {
        return Err(SpecError::TargetLength { expected: draft.len() + 1, got: target_argmax.len() });
    }
    let accepted = draft.iter().zip(target_argmax).take_while(|(d, t)| d == t).count();
    Ok(Verdict { accepted, next: target_argmax[accepted] })
}

/// Supplies the target's final distribution `p` at each verify position
/// (`0..=draft.len()`).
pub trait TargetDists {
    fn dist(&mut self, pos: usize) -> Result<&Dist, SpecError>;
}

/// Supplies the draft distribution `q` at each draft position.
pub trait DraftProbs {
    /// `q_pos(token)`, or `None` when the proposal at `pos` was
    /// deterministic (q one-hot on the drafted token) — lookup drafters
    /// never materialise a vocabulary-sized vector.
    fn q(&self, pos: usize, token: Token) -> Option<f32>;
}

/// Every position deterministic (prompt lookup, suffix match, ...).
#[derive(Clone, Copy, Debug, Default)]
pub struct Deterministic;

impl DraftProbs for Deterministic {
    fn q(&self, _pos: usize, _token: Token) -> Option<f32> {
        None
    }
}

impl DraftProbs for [Dist] {
    fn q(&self, pos: usize, token: Token) -> Option<f32> {
        self.get(pos).map(|d| d.prob(token))
    }
}

impl TargetDists for [Dist] {
    fn dist(&mut self, pos: usize) -> Result<&Dist, SpecError> {
        self.get(pos).ok_or(SpecError::MissingPosition(pos))
    }
}

/// Target distributions computed on demand from a row-major
/// `[positions × n_vocab]` logits buffer, reusing one builder (so it applies
/// the request's own sampling parameters).
pub struct LogitRows<'a> {
    builder: &'a mut DistBuilder,
    logits: &'a [f32],
}

impl<'a> LogitRows<'a> {
    pub fn new(builder: &'a mut DistBuilder, logits: &'a [f32]) -> Self {
        Self { builder, logits }
    }
}

impl TargetDists for LogitRows<'_> {
    fn dist(&mut self, pos: usize) -> Result<&Dist, SpecError> {
        let n = self.builder.n_vocab();
        let row = pos
            .checked_mul(n)
            .and_then(|start| self.logits.get(start..start.checked_add(n)?))
            .ok_or(SpecError::MissingPosition(pos))?;
        Ok(self.builder.build(row)?)
    }
}

/// Result of checking one drafted token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Accepted,
    /// Rejected; the token drawn from the residual replaces it.
    Rejected(Token),
}

/// Accepts `x` with probability `min(1, p(x)/q(x))`, else draws from
/// `norm(max(0, p - q))`. A missing or non-positive `q(x)` is treated as a
/// deterministic proposal (q one-hot on `x`), which is the only reading that
/// keeps the output distributed as `p` whatever the drafter did.
pub fn verify_position<R, Q>(p: &Dist, x: Token, q: Q, rng: &mut R) -> Step
where
    R: Rng + ?Sized,
    Q: Fn(Token) -> Option<f32>,
{
    let px = f64::from(p.prob(x));
    let u: f64 = rng.gen();
    match q(x).filter(|v| v.is_finite() && *v > 0.0) {
        Some(qx) if u * f64::from(qx) < px => Step::Accepted,
        Some(_) => Step::Rejected(p.sample_residual(|t| q(t).unwrap_or(0.0), rng)),
        None if u < px => Step::Accepted,
        None => Step::Rejected(p.sample_residual(|t| f32::from(u8::from(t == x)), rng)),
    }
}

/// Stochastic verification of a whole draft. With a one-hot target (greedy
/// parameters) this reduces exactly to [`accept_greedy`].
pub fn verify_stochastic<T, Q, R>(draft: &[Token], target: &mut T, q: &Q, rng: &mut R) -> Result<Verdict, SpecError>
where
    T: TargetDists + ?Sized,
    Q: DraftProbs + ?Sized,
    R: Rng + ?Sized,
{
    for (i, &x) in draft.iter().enumerate() {
        let p = target.dist(i)?;
        if let Step::Rejected(next) = verify_position(p, x, |t| q.q(i, t), rng) {
            return Ok(Verdict { accepted: i, next });
        }
    }
    let next = target.dist(draft.len())?.sample(rng);
    Ok(Verdict { accepted: draft.len(), next })
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
