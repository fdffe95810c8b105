//! What speculation did during one request, as reported to the caller. A
//! leaf module (on settings only), so `request` can name it.

use std::time::Duration;

use augur_grammar::ConstraintStats;
use augur_spec::DraftSourceId;
use serde::Serialize;

use super::settings::SpecMode;
use crate::draft::DraftTimes;

/// Per-source counters of one request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStats {
    pub steps: u64,
    pub drafted: u64,
    pub accepted: u64,
}

/// What speculation did during one request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpecStats {
    pub mode: Option<SpecMode>,
    /// Verify steps (target decodes after the prefill).
    pub steps: u64,
    pub drafted: u64,
    pub accepted: u64,
    pub lookup: SourceStats,
    pub draft: SourceStats,
    pub suffix: SourceStats,
    /// The suffix steps that verified a branching tree (drafted = nodes).
    pub tree: SourceStats,
    /// Tokens the grammar forced (fast-forward), verified like drafts.
    pub grammar: SourceStats,
    /// Accepted drafts per draft position (index 0 = first drafted token).
    pub accepted_at: Vec<u64>,
    /// Work of the output constraint, when the request had one.
    pub constraint: Option<ConstraintReport>,
    /// Where the decode time went.
    pub time: StepTimes,
}

/// Where one request's decode time went, in milliseconds. What the four
/// leave of the decode time is the loop's own bookkeeping (emitting text,
/// stop sequences, learning).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StepTimes {
    /// Choosing each step's draft: lookups, suffix matches, the cost model
    /// (and the grammar's forced tokens).
    pub planning_ms: f64,
    /// The draft model decoding its draft tokens.
    pub drafting_ms: f64,
    /// The draft model decoding committed tokens it had not seen.
    pub catch_up_ms: f64,
    /// Target decodes: verifying drafts, and the plain steps.
    pub verifying_ms: f64,
}

impl StepTimes {
    /// Totals of proposing and verifying, with the draft model's share of
    /// proposing (`draft`) split out.
    pub(crate) fn from_parts(propose: Duration, verify: Duration, draft: DraftTimes) -> Self {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let planning = propose.saturating_sub(draft.catch_up + draft.drafting);
        Self {
            planning_ms: ms(planning),
            drafting_ms: ms(draft.drafting),
            catch_up_ms: ms(draft.catch_up),
            verifying_ms: ms(verify),
        }
    }
}

/// What the output constraint cost during one request.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ConstraintReport {
    /// Full token masks computed.
    pub masks: u64,
    /// Single-token checks (the target's own choice was allowed).
    pub checks: u64,
    /// Milliseconds spent in the grammar (masks, checks, forced tokens).
    pub time_ms: f64,
}

impl From<ConstraintStats> for ConstraintReport {
    fn from(s: ConstraintStats) -> Self {
        Self { masks: s.masks, checks: s.checks, time_ms: s.time.as_secs_f64() * 1e3 }
    }
}

impl SpecStats {
    pub fn acceptance(&self) -> f64 {
        ratio(self.accepted, self.drafted)
    }

    /// Tokens produced per target decode.
    pub fn mean_accepted_length(&self) -> f64 {
        ratio(self.steps + self.accepted, self.steps)
    }

    /// One verify step; `tree` when it verified a branching draft.
    pub(crate) fn record(&mut self, source: Option<DraftSourceId>, drafted: usize, accepted: usize, tree: bool) {
        self.record_path(source, drafted, accepted);
        if tree {
            self.tree.steps += 1;
            self.tree.drafted += drafted as u64;
            self.tree.accepted += accepted as u64;
        }
    }

    fn record_path(&mut self, source: Option<DraftSourceId>, drafted: usize, accepted: usize) {
        self.steps += 1;
        self.drafted += drafted as u64;
        self.accepted += accepted as u64;
        let s = match source {
            Some(DraftSourceId::Lookup) => &mut self.lookup,
            Some(DraftSourceId::DraftModel) => &mut self.draft,
            Some(DraftSourceId::Suffix) => &mut self.suffix,
            Some(DraftSourceId::Grammar) => &mut self.grammar,
            _ => return,
        };
        s.steps += 1;
        s.drafted += drafted as u64;
        s.accepted += accepted as u64;
        if self.accepted_at.len() < accepted {
            self.accepted_at.resize(accepted, 0);
        }
        for a in &mut self.accepted_at[..accepted] {
            *a += 1;
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}
