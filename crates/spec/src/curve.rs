//! Measured verify-cost curves and their on-disk cache.
//!
//! File format (JSON): `{"version": 2, "sha256": "<hex>", "payload": "<JSON
//! of CostCurve>"}`. The payload is kept as a string so the checksum covers
//! exactly the bytes written, independent of float formatting on re-encode.
//! Any failure to load is an error the caller answers by re-measuring.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::SpecError;

/// Format version this build writes and reads.
/// Version 2: passes interleaved over the batch sizes, minimum kept.
pub const COST_CURVE_VERSION: u32 = 2;

/// Verify cost per batch size on one machine for one model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostCurve {
    pub model_id: String,
    pub machine_id: String,
    pub threads: u32,
    /// `costs[k-1]` = seconds to verify a batch of `k` tokens (raw
    /// measurements; see [`CostCurve::monotone_envelope`]).
    pub costs: Vec<f64>,
    /// Largest batch whose logits are bit-identical to decoding each token
    /// alone; verification is split into chunks of at most this size.
    #[serde(default = "one")]
    pub invariant_batch: usize,
}

fn one() -> usize {
    1
}

fn sealed_error(e: augur_persist::sealed::SealError) -> SpecError {
    use augur_persist::sealed::SealError;
    match e {
        SealError::Corrupt(why) => SpecError::Corrupt(why),
        SealError::Version { found, expected } => SpecError::Version { found, expected },
        SealError::Checksum => SpecError::Checksum,
    }
}

impl CostCurve {
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.costs.is_empty() || !self.costs.iter().all(|c| c.is_finite() && *c > 0.0) {
            return Err(SpecError::InvalidCost("costs must be non-empty, finite and positive"));
        }
        Ok(())
    }

    /// Piecewise-linear fill of `c(1..=max_k)` from measured `(k, seconds)`
    /// points (sorted by k, starting at k = 1). Beyond the last point the
    /// last segment's slope is extended, never decreasing. Only tests fill
    /// curves from sparse points: calibration times every chunk size.
    #[cfg(test)]
    pub fn interpolate(points: &[(usize, f64)], max_k: usize) -> Result<Vec<f64>, SpecError> {
        let ok_points = points.first().is_some_and(|p| p.0 == 1)
            && points.windows(2).all(|w| w[0].0 < w[1].0)
            && points.iter().all(|p| p.1.is_finite() && p.1 > 0.0);
        if !ok_points || max_k == 0 {
            return Err(SpecError::InvalidCost("points must start at k = 1, increase in k, and be positive"));
        }
        Ok((1..=max_k).map(|k| interpolate_at(points, k)).collect())
    }

    /// Running maximum of the raw costs: a batch never really costs less
    /// than a smaller one, so dips are measurement noise. Raising them is the
    /// conservative fix (it can only shorten planned drafts).
    pub fn monotone_envelope(&self) -> Vec<f64> {
        let mut max = 0.0f64;
        self.costs
            .iter()
            .map(|&c| {
                max = max.max(c);
                max
            })
            .collect()
    }

    pub fn to_json(&self) -> Result<String, SpecError> {
        self.validate()?;
        augur_persist::sealed::seal(COST_CURVE_VERSION, self).map_err(sealed_error)
    }

    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let curve: Self = augur_persist::sealed::open(text, COST_CURVE_VERSION).map_err(sealed_error)?;
        curve.validate()?;
        Ok(curve)
    }

    /// Writes atomically and durably (`augur_persist::write_atomic`): a
    /// crash leaves the old file or the new one.
    pub fn save(&self, path: &Path) -> Result<(), SpecError> {
        let json = self.to_json()?;
        augur_persist::write_atomic(path, json.as_bytes())
            .map_err(|source| SpecError::Io { path: path.to_path_buf(), source })
    }

    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::InvalidData => SpecError::Corrupt("not UTF-8".into()),
            _ => SpecError::Io { path: path.to_path_buf(), source },
        })?;
        Self::from_json(&text)
    }
}

/// Linear interpolation at `k` over validated points.
#[cfg(test)]
fn interpolate_at(points: &[(usize, f64)], k: usize) -> f64 {
    let seg = points.windows(2).find(|w| k <= w[1].0);
    let (a, b) = match (seg, points) {
        (Some(w), _) => (w[0], w[1]),
        (None, [.., a, b]) => (*a, *b),
        (None, [only]) => return only.1,
        (None, []) => return f64::INFINITY,
    };
    let t = (k as f64 - a.0 as f64) / (b.0 as f64 - a.0 as f64);
    let v = a.1 + t * (b.1 - a.1);
    // Extrapolating a falling last segment must not invent cheap batches.
    if k > b.0 {
        v.max(b.1)
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve() -> CostCurve {
        CostCurve {
            model_id: "qwen2.5-1.5b-q4".into(),
            machine_id: "box-1".into(),
            threads: 2,
            costs: vec![0.055, 0.095, 0.1545, 0.214],
            invariant_batch: 4,
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.json");
        curve().save(&path).unwrap();
        assert_eq!(CostCurve::load(&path).unwrap(), curve());
        // Overwrite in place.
        let mut c2 = curve();
        c2.threads = 4;
        c2.save(&path).unwrap();
        assert_eq!(CostCurve::load(&path).unwrap(), c2);
    }

    #[test]
    fn damaged_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.json");
        curve().save(&path).unwrap();
        let good = std::fs::read(&path).unwrap();

        for cut in [0, 1, good.len() / 2, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(CostCurve::load(&path).is_err(), "truncated at {cut}");
        }
        // Flip every byte in turn: never a panic, never a silently different
        // curve.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            if let Ok(c) = CostCurve::load(&path) {
                assert_eq!(c, curve(), "byte {i} flipped but accepted");
            }
        }
        let payload_byte = good.windows(8).position(|w| w == b"model_id").unwrap();
        let mut bad = good.clone();
        bad[payload_byte] = b'M';
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(CostCurve::load(&path), Err(SpecError::Checksum)));
        assert!(matches!(CostCurve::load(&dir.path().join("missing.json")), Err(SpecError::Io { .. })));
        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        assert!(CostCurve::load(&path).is_err());
    }

    #[test]
    fn newer_version_is_reported() {
        let found = COST_CURVE_VERSION + 1;
        let newer = format!(r#"{{"version": {found}, "layout": "something else"}}"#);
        assert!(matches!(
            CostCurve::from_json(&newer),
            Err(SpecError::Version { found: f, expected: COST_CURVE_VERSION }) if f == found
        ));
    }

    #[test]
    fn invalid_curves_refused() {
        let mut c = curve();
        c.costs = vec![];
        assert!(c.to_json().is_err());
        c.costs = vec![0.1, f64::NAN];
        assert!(c.to_json().is_err());
    }

    #[test]
    fn interpolation_and_envelope() {
        let pts = [(1, 1.0), (2, 2.0), (4, 3.0), (8, 2.5)];
        let c = CostCurve::interpolate(&pts, 10).unwrap();
        assert_eq!(&c[..4], &[1.0, 2.0, 2.5, 3.0]);
        assert!((c[5] - 2.75).abs() < 1e-12);
        assert_eq!(c[8], 2.5); // falling extrapolation clamped at last value
        assert!(CostCurve::interpolate(&[(2, 1.0)], 4).is_err());
        assert!(CostCurve::interpolate(&[(1, 1.0), (1, 2.0)], 4).is_err());
        assert!(CostCurve::interpolate(&[(1, 1.0)], 0).is_err());
        assert_eq!(CostCurve::interpolate(&[(1, 1.0)], 3).unwrap(), vec![1.0; 3]);
        let mut cc = curve();
        cc.costs = c;
        let env = cc.monotone_envelope();
        assert!(env.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(env[7], 3.0);
    }
}
