//! Sampling settings as data, and allocation-free greedy and seeded sampling
//! over logits.
//!
//! # Filter order
//!
//! For [`SamplingParams::Sample`] the final distribution is built as:
//!
//! 1. **temperature** scales logits (`l / T`);
//! 2. **top-k** keeps the `k` highest logits;
//! 3. **top-p** keeps the smallest prefix (by descending probability of the
//!    tempered, top-k-restricted distribution) whose mass reaches `top_p`;
//! 4. **min-p** keeps tokens whose probability is at least `min_p` times the
//!    most likely token's probability;
//!
//! then renormalises. Ties are broken by lowest token id everywhere, so the
//! result is a pure function of the logits and the parameters.
//!
//! NaN logits are treated as `-inf`. If no logit is finite-and-largest (all
//! `-inf`/NaN, or some `+inf`), the distribution degenerates to a one-hot on
//! the greedy argmax rather than failing.
//!
//! The verifier in `augur-spec` needs the *final* distribution `p`, not just a
//! sample: [`DistBuilder::build`] / [`Sampler::probs`] expose it as a [`Dist`],
//! which can be queried ([`Dist::prob`]), sampled ([`Dist::sample`]) and
//! sampled from its residual against a draft distribution
//! ([`Dist::sample_residual`]).

#![forbid(unsafe_code)]

use std::cmp::Ordering;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

/// A token id, as llama.cpp's `llama_token`.
pub type Token = i32;

/// The per-request random generator. Seeded from [`SamplingParams`] so a
/// request is reproducible.
pub type SamplerRng = ChaCha20Rng;

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    #[error("temperature must be a finite number >= 0, got {0}")]
    InvalidTemperature(f32),
    #[error("top_k must be >= 1 (omit it to disable top-k), got {0}")]
    InvalidTopK(u32),
    #[error("top_p must be in (0, 1], got {0}")]
    InvalidTopP(f32),
    #[error("min_p must be in [0, 1], got {0}")]
    InvalidMinP(f32),
    #[error("vocabulary size must be in 1..={max}, got {got}")]
    InvalidVocab { got: usize, max: usize },
    #[error("expected {expected} logits (the vocabulary size), got {got}")]
    LogitsLength { expected: usize, got: usize },
    #[error("probabilities must be finite, non-negative, and sum to a positive value")]
    InvalidProbs,
}

/// How to pick the next token. Temperature 0 means greedy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum SamplingParams {
    /// Argmax, ties broken by lowest id.
    #[default]
    Greedy,
    /// Seeded sampling from the filtered distribution (see crate docs for
    /// the filter order).
    Sample {
        temperature: f32,
        #[serde(default)]
        top_k: Option<u32>,
        #[serde(default)]
        top_p: Option<f32>,
        #[serde(default)]
        min_p: Option<f32>,
        #[serde(default)]
        seed: u64,
    },
}

impl SamplingParams {
    /// Refuses values that would make the distribution meaningless.
    pub fn validate(&self) -> Result<(), SamplingError> {
        let Self::Sample { temperature, top_k, top_p, min_p, .. } = *self else {
            return Ok(());
        };
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(SamplingError::InvalidTemperature(temperature));
        }
        if let Some(k) = top_k.filter(|&k| k == 0) {
            return Err(SamplingError::InvalidTopK(k));
        }
        if let Some(p) = top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Err(SamplingError::InvalidTopP(p));
        }
        if let Some(p) = min_p.filter(|p| !(*p >= 0.0 && *p <= 1.0)) {
            return Err(SamplingError::InvalidMinP(p));
        }
        Ok(())
    }

    /// True for `Greedy` and for `Sample` with temperature 0.
    pub fn is_greedy(&self) -> bool {
        match self {
            Self::Greedy => true,
            Self::Sample { temperature, .. } => *temperature == 0.0,
        }
    }

    /// The RNG seed (0 for greedy, which never draws).
    pub fn seed(&self) -> u64 {
        match self {
            Self::Greedy => 0,
            Self::Sample { seed, .. } => *seed,
        }
    }
}

/// Index of the largest logit, ties broken by lowest id; NaN never wins.
/// `None` only for an empty slice.
pub fn argmax(logits: &[f32]) -> Option<Token> {
    if logits.is_empty() {
        return None;
    }
    // Two passes: the max-fold vectorises, the search stops early; both beat
    // a single branchy loop on 150k-entry vocabularies.
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let idx = logits.iter().position(|&v| v == max).unwrap_or(0);
    Token::try_from(idx).ok()
}

/// A probability distribution over the vocabulary: dense for O(1) lookup,
/// plus the list of tokens with non-zero probability for sampling.
///
/// Invariant: the support is never empty and its probabilities sum to ~1.
#[derive(Clone, Debug)]
pub struct Dist {
    probs: Vec<f32>,
    support: Vec<Token>,
    /// `probs` of `support`, contiguous so sampling is a linear scan.
    support_p: Vec<f32>,
    /// Sum of the stored f32 probabilities, so sampling needs one pass.
    total: f64,
}

impl Dist {
    fn one_hot_new(n_vocab: usize) -> Self {
        let mut d = Self {
            probs: vec![0.0; n_vocab],
            support: Vec::with_capacity(n_vocab),
            support_p: Vec::with_capacity(n_vocab),
            total: 0.0,
        };
        d.set_one_hot(0);
        d
    }

    /// Builds a distribution from (not necessarily normalised) weights.
    /// Allocates; meant for tests, tools and synthetic drafters.
    pub fn from_probs(weights: &[f32]) -> Result<Self, SamplingError> {
        let mut d = Self { probs: Vec::new(), support: Vec::new(), support_p: Vec::new(), total: 0.0 };
        d.set_probs(weights)?;
        Ok(d)
    }

    /// Replaces the contents with normalised `weights`, reusing buffers.
    pub fn set_probs(&mut self, weights: &[f32]) -> Result<(), SamplingError> {
        let sum: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        let valid = weights.iter().all(|w| w.is_finite() && *w >= 0.0)
            && sum.is_finite()
            && sum > 0.0
            && Token::try_from(weights.len()).is_ok();
        if !valid {
            return Err(SamplingError::InvalidProbs);
        }
        self.probs.clear();
        self.probs.resize(weights.len(), 0.0);
        self.support.clear();
        self.support_p.clear();
        self.total = 0.0;
        for (i, &w) in weights.iter().enumerate() {
            let p = (f64::from(w) / sum) as f32;
            if p > 0.0 {
                self.push(i as Token, p);
            }
        }
        Ok(())
    }

    /// Probability of `t`; 0 for ids outside the vocabulary.
    pub fn prob(&self, t: Token) -> f32 {
        usize::try_from(t).ok().and_then(|i| self.probs.get(i)).copied().unwrap_or(0.0)
    }

    /// Tokens with non-zero probability (unordered).
    pub fn support(&self) -> &[Token] {
        &self.support
    }

    /// Vocabulary size.
    pub fn n_vocab(&self) -> usize {
        self.probs.len()
    }

    /// Draws a token from this distribution (one uniform draw).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Token {
        let target = rng.gen::<f64>() * self.total;
        self.walk(target, |_, p| p)
    }

    /// Draws from `norm(max(0, p - q))`, the residual used after a rejected
    /// draft token. `q` need only be meaningful on this distribution's
    /// support (outside it the residual is 0 anyway). If the residual has no
    /// mass (p <= q everywhere, i.e. p == q up to rounding, where rejection
    /// cannot really happen) this falls back to sampling from p.
    /// Only `augur_spec`'s reference verifier (a test) needs it.
    #[cfg(any(test, feature = "reference"))]
    pub fn sample_residual<R, Q>(&self, q: Q, rng: &mut R) -> Token
    where
        R: Rng + ?Sized,
        Q: Fn(Token) -> f32,
    {
        let residual = |t: Token, p: f64| (p - f64::from(q(t))).max(0.0);
        let mass: f64 = self.entries().map(|(t, p)| residual(t, p)).sum();
        if !(mass > 0.0 && mass.is_finite()) {
            return self.sample(rng);
        }
        let target = rng.gen::<f64>() * mass;
        self.walk(target, residual)
    }

    /// First support token whose cumulative weight exceeds `target`; the
    /// last positive-weight token if rounding runs past the end.
    fn walk(&self, target: f64, weight: impl Fn(Token, f64) -> f64) -> Token {
        let mut cum = 0.0;
        let mut last = self.support.first().copied().unwrap_or(0);
        for (t, p) in self.entries() {
            let w = weight(t, p);
            if w <= 0.0 {
                continue;
            }
            cum += w;
            last = t;
            if target < cum {
                return t;
            }
        }
        last
    }

    fn clear(&mut self) {
        for &t in &self.support {
            if let Some(p) = self.probs.get_mut(t as usize) {
                *p = 0.0;
            }
        }
        self.support.clear();
        self.support_p.clear();
        self.total = 0.0;
    }

    fn entries(&self) -> impl Iterator<Item = (Token, f64)> + '_ {
        self.support.iter().zip(&self.support_p).map(|(&t, &p)| (t, f64::from(p)))
    }

    fn push(&mut self, t: Token, p: f32) {
        if let Some(slot) = self.probs.get_mut(t as usize) {
            *slot = p;
            self.support.push(t);
            self.support_p.push(p);
            self.total += f64::from(p);
        }
    }

    fn set_one_hot(&mut self, t: Token) {
        self.clear();
        self.push(t, 1.0);
    }
}

/// A candidate token during filtering. The logit is kept (NaN mapped to
/// -inf) so ordering never depends on rounded weights.
#[derive(Clone, Copy, Debug)]
struct Cand {
    id: u32,
    logit: f32,
    w: f32,
}

fn sanitize(logit: f32) -> f32 {
    if logit.is_nan() {
        f32::NEG_INFINITY
    } else {
        logit
    }
}

/// `exp((l - max) / T)`: 1 for the max, in (0, 1] or 0 (underflow) below.
fn weight(logit: f32, max: f32, inv_temp: f32) -> f32 {
    ((logit - max) * inv_temp).exp()
}

/// Descending by logit, then ascending id: a total order, so selections
/// and sorts are deterministic.
fn desc(a: &Cand, b: &Cand) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Greedy,
    Sample {
        inv_temp: f32,
        top_k: Option<usize>,
        /// 1.0 disables.
        top_p: f32,
        /// 0.0 disables.
        min_p: f32,
    },
}

impl Mode {
    fn from_params(params: &SamplingParams) -> Self {
        match *params {
            SamplingParams::Sample {
                temperature,
                top_k,
                top_p,
                min_p,
                ..
            // A temperature so small that 1/T overflows is greedy in effect.
            } if temperature > 0.0 && (1.0 / temperature).is_finite() => Self::Sample {
                inv_temp: 1.0 / temperature,
                top_k: top_k.map(|k| k as usize),
                top_p: top_p.unwrap_or(1.0),
                min_p: min_p.unwrap_or(0.0),
            },
            _ => Self::Greedy,
        }
    }
}

/// Turns logits into the final distribution, reusing its buffers.
#[derive(Clone, Debug)]
pub struct DistBuilder {
    mode: Mode,
    cand: Vec<Cand>,
    /// Per-bucket probability mass for top-p.
    mass: Vec<f64>,
    dist: Dist,
}

/// Weight buckets for top-p, spanning `exp(0)` down to f32 underflow
/// (`exp(-104)`) in steps of ~0.1 nats.
const TOP_P_BUCKETS: usize = 1024;
const TOP_P_SCALE: f32 = TOP_P_BUCKETS as f32 / 104.0;

/// Bucket of a candidate: non-decreasing as the logit falls, so buckets
/// never reorder candidates.
fn top_p_bucket(logit: f32, max: f32, inv_temp: f32) -> usize {
    let nats = (max - logit) * inv_temp;
    // `as` saturates (NaN -> 0), so any input maps into range.
    ((nats * TOP_P_SCALE) as usize).min(TOP_P_BUCKETS - 1)
}

/// First bucket at which the running mass reaches `target`, and the mass
/// of all earlier buckets. The last bucket if rounding never gets there.
fn crossing_bucket(mass: &[f64], target: f64) -> (usize, f64) {
    let mut before = 0.0;
    for (b, &m) in mass.iter().enumerate() {
        if before + m >= target {
            return (b, before);
        }
        before += m;
    }
    let last = mass.len().saturating_sub(1);
    (last, before - mass.get(last).copied().unwrap_or(0.0))
}

/// Moves items matching `pred` to the front (unordered); returns how many.
fn partition_front(v: &mut [Cand], pred: impl Fn(&Cand) -> bool) -> usize {
    let mut split = 0;
    for i in 0..v.len() {
        if pred(&v[i]) {
            v.swap(split, i);
            split += 1;
        }
    }
    split
}

impl DistBuilder {
    /// Validates `params` and allocates buffers for `n_vocab` tokens.
    pub fn new(params: &SamplingParams, n_vocab: usize) -> Result<Self, SamplingError> {
        params.validate()?;
        let max = Token::MAX as usize;
        if n_vocab == 0 || n_vocab > max {
            return Err(SamplingError::InvalidVocab { got: n_vocab, max });
        }
        let mode = Mode::from_params(params);
        let cand_cap = if matches!(mode, Mode::Greedy) { 0 } else { n_vocab };
        Ok(Self {
            mode,
            cand: Vec::with_capacity(cand_cap),
            mass: vec![0.0; TOP_P_BUCKETS],
            dist: Dist::one_hot_new(n_vocab),
        })
    }

    /// Vocabulary size this builder expects.
    pub fn n_vocab(&self) -> usize {
        self.dist.n_vocab()
    }

    /// The final filtered, renormalised distribution for `logits`.
    pub fn build(&mut self, logits: &[f32]) -> Result<&Dist, SamplingError> {
        self.check_len(logits)?;
        match self.filter(logits) {
            Filtered::OneHot(t) => self.dist.set_one_hot(t),
            Filtered::Candidates => self.publish(),
        }
        Ok(&self.dist)
    }

    /// Draws from the same distribution [`Self::build`] would return,
    /// without materialising it (saves passes over large supports). Greedy
    /// never touches `rng`.
    pub fn sample<R: Rng + ?Sized>(&mut self, logits: &[f32], rng: &mut R) -> Result<Token, SamplingError> {
        self.check_len(logits)?;
        Ok(match self.filter(logits) {
            Filtered::OneHot(t) => t,
            Filtered::Candidates => draw_candidate(&self.cand, rng),
        })
    }

    fn filter(&mut self, logits: &[f32]) -> Filtered {
        match self.mode {
            Mode::Greedy => Filtered::OneHot(argmax(logits).unwrap_or(0)),
            Mode::Sample { inv_temp, top_k, top_p, min_p } => {
                self.filter_sampled(logits, inv_temp, top_k, top_p, min_p)
            }
        }
    }

    fn check_len(&self, logits: &[f32]) -> Result<(), SamplingError> {
        if logits.len() != self.n_vocab() {
            return Err(SamplingError::LogitsLength { expected: self.n_vocab(), got: logits.len() });
        }
        Ok(())
    }

    /// Leaves the surviving candidates (with weights) in `self.cand`, or
    /// returns a one-hot when the logits admit no proper distribution.
    fn filter_sampled(
        &mut self,
        logits: &[f32],
        inv_temp: f32,
        top_k: Option<usize>,
        top_p: f32,
        min_p: f32,
    ) -> Filtered {
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        if !max.is_finite() {
            return Filtered::OneHot(argmax(logits).unwrap_or(0));
        }
        match top_k.filter(|&k| k < logits.len()) {
            None => self.fill_weighted(logits, max, inv_temp),
            Some(k) => {
                self.fill_candidates(logits);
                self.cand.select_nth_unstable_by(k.saturating_sub(1), desc);
                self.cand.truncate(k.max(1));
                self.weigh(max, inv_temp);
            }
        }
        if top_p < 1.0 {
            self.apply_top_p(top_p, max, inv_temp);
        }
        if min_p > 0.0 {
            // The max token has weight exp(0) = 1, so the threshold is min_p.
            self.cand.retain(|c| c.w >= min_p);
        }
        Filtered::Candidates
    }

    fn fill_candidates(&mut self, logits: &[f32]) {
        self.cand.clear();
        self.cand.extend(logits.iter().enumerate().map(|(i, &l)| Cand { id: i as u32, logit: sanitize(l), w: 0.0 }));
    }

    /// Tempered weights relative to the max; underflowed weights have
    /// probability 0, so they leave the support.
    fn weigh(&mut self, max: f32, inv_temp: f32) {
        for c in &mut self.cand {
            c.w = weight(c.logit, max, inv_temp);
        }
        self.cand.retain(|c| c.w > 0.0);
    }

    /// `fill_candidates` + `weigh` in one pass, for the no-top-k case.
    fn fill_weighted(&mut self, logits: &[f32], max: f32, inv_temp: f32) {
        self.cand.clear();
        self.cand.extend(logits.iter().enumerate().filter_map(|(i, &l)| {
            let logit = sanitize(l);
            let w = weight(logit, max, inv_temp);
            (w > 0.0).then_some(Cand { id: i as u32, logit, w })
        }));
    }

    /// Keeps the smallest descending-probability prefix reaching `top_p`.
    ///
    /// Avoids sorting the vocabulary: candidates are bucketed by weight
    /// (monotone in the logit), the bucket where the mass crosses `top_p`
    /// is found from per-bucket sums, and only that bucket is sorted.
    fn apply_top_p(&mut self, top_p: f32, max: f32, inv_temp: f32) {
        let bucket = |c: &Cand| top_p_bucket(c.logit, max, inv_temp);
        self.mass.fill(0.0);
        for c in &self.cand {
            if let Some(m) = self.mass.get_mut(bucket(c)) {
                *m += f64::from(c.w);
            }
        }
        let total: f64 = self.mass.iter().sum();
        let target = f64::from(top_p) * total;
        let (boundary, before) = crossing_bucket(&self.mass, target);
        self.cand.retain(|c| bucket(c) <= boundary);
        let split = partition_front(&mut self.cand, |c| bucket(c) < boundary);
        let tail = &mut self.cand[split..];
        tail.sort_unstable_by(desc);
        let keep = prefix_reaching(tail, target - before).unwrap_or(tail.len());
        self.cand.truncate(split + keep);
    }

    fn publish(&mut self) {
        let sum: f64 = self.cand.iter().map(|c| f64::from(c.w)).sum();
        self.dist.clear();
        if sum.is_nan() || sum <= 0.0 {
            // Unreachable in practice (the max token has weight 1), but never
            // leave the support empty.
            self.dist.push(0, 1.0);
            return;
        }
        for c in &self.cand {
            self.dist.push(c.id as Token, (f64::from(c.w) / sum) as f32);
        }
    }
}

/// Outcome of filtering.
enum Filtered {
    OneHot(Token),
    /// The survivors are in `DistBuilder::cand`.
    Candidates,
}

/// Draws a candidate with probability proportional to its weight.
fn draw_candidate<R: Rng + ?Sized>(cand: &[Cand], rng: &mut R) -> Token {
    let total: f64 = cand.iter().map(|c| f64::from(c.w)).sum();
    let target = rng.gen::<f64>() * total;
    let mut cum = 0.0;
    let mut last = cand.first().map_or(0, |c| c.id);
    for c in cand.iter().filter(|c| c.w > 0.0) {
        cum += f64::from(c.w);
        last = c.id;
        if target < cum {
            break;
        }
    }
    last as Token
}

/// Length of the shortest prefix whose weight reaches `target`.
fn prefix_reaching(sorted: &[Cand], target: f64) -> Option<usize> {
    let mut cum = 0.0;
    for (i, c) in sorted.iter().enumerate() {
        cum += f64::from(c.w);
        if cum >= target {
            return Some(i + 1);
        }
    }
    None
}

/// Per-request sampler: the distribution builder plus the seeded RNG.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplingParams,
    builder: DistBuilder,
    rng: SamplerRng,
}

impl Sampler {
    /// Validates `params` and allocates all buffers for `n_vocab` tokens.
    pub fn new(params: SamplingParams, n_vocab: usize) -> Result<Self, SamplingError> {
        let builder = DistBuilder::new(&params, n_vocab)?;
        let rng = SamplerRng::seed_from_u64(params.seed());
        Ok(Self { params, builder, rng })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token. Greedy never touches the RNG.
    pub fn sample(&mut self, logits: &[f32]) -> Result<Token, SamplingError> {
        self.builder.sample(logits, &mut self.rng)
    }

    /// The final distribution `p` for `logits` (one-hot when greedy).
    pub fn probs(&mut self, logits: &[f32]) -> Result<&Dist, SamplingError> {
        self.builder.build(logits)
    }

    /// The builder and RNG, borrowed separately so a verifier can hold a
    /// distribution while drawing.
    pub fn parts(&mut self) -> (&mut DistBuilder, &mut SamplerRng) {
        (&mut self.builder, &mut self.rng)
    }

    pub fn rng(&mut self) -> &mut SamplerRng {
        &mut self.rng
    }
}

#[cfg(test)]
mod tests;
