//! Tiny helpers several crates need, kept here (a bottom crate) so there is
//! one copy of each.

use std::hash::Hasher;

use sha2::{Digest, Sha256};

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar):
/// days since 1970-01-01 to (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// 64-bit FNV-1a of `bytes`. Cache and marker file names are built from it,
/// so its values must never change.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    // `write` directly: hashing a `str` through `Hash` would add a suffix byte.
    let mut h = fnv::FnvHasher::default();
    h.write(bytes);
    h.finish()
}

/// The largest char boundary of `s` at or below `index` (std's
/// `floor_char_boundary` is still unstable).
pub fn floor_char_boundary(s: &str, index: usize) -> usize {
    if index >= s.len() {
        return s.len();
    }
    (0..=index).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_416), (2025, 11, 24));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn fnv1a_matches_the_hand_written_fold_it_replaced() {
        let fold =
            |s: &str| s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
        for s in ["", "a", "foobar", "Intel(R) Xeon(R)|cores=2|threads=2|AVX = 1 | AVX2 = 1", "k=int:4\u{1f}é"] {
            assert_eq!(fnv1a(s.as_bytes()), fold(s), "{s:?}");
        }
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn floors_to_char_boundaries() {
        let s = "aé€"; // 1 + 2 + 3 bytes
        assert_eq!(floor_char_boundary(s, 0), 0);
        assert_eq!(floor_char_boundary(s, 2), 1);
        assert_eq!(floor_char_boundary(s, 3), 3);
        assert_eq!(floor_char_boundary(s, 5), 3);
        assert_eq!(floor_char_boundary(s, 6), 6);
        assert_eq!(floor_char_boundary(s, 100), 6);
    }
}
