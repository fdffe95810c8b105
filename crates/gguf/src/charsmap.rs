//! The UGM (T5) `tokenizer.ggml.precompiled_charsmap`: a u32 size, an XOR
//! compressed compact double array (XCDA) of that many bytes, then
//! NUL-terminated replacement strings. llama.cpp checks the header when it
//! loads the vocabulary (llama_vocab::impl::load) but walks the XCDA for
//! every prompt (llm_tokenizer_ugm_session::normalize_prefix), throwing on an
//! index past either array; in augur that exception aborts the process. So
//! every node any input can reach is checked here, once.

use std::collections::HashSet;

/// Why `bytes` would make llama.cpp throw, or `None` for a usable charsmap.
pub(crate) fn problem(bytes: &[u8]) -> Option<String> {
    let Some(head) = bytes.get(..4) else {
        return Some(format!("{} bytes are too few for the 4-byte XCDA size", bytes.len()));
    };
    let blob = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
    if blob + 4 >= bytes.len() as u64 {
        return Some(format!("the XCDA size {blob} leaves no room for replacement strings"));
    }
    // Both fit in usize: blob is below bytes.len().
    let units: Vec<u32> = bytes[4..4 + blob as usize / 4 * 4]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let replacements = &bytes[4 + blob as usize..];
    if units.is_empty() {
        return None;
    }
    walk(&Xcda { units: &units }, replacements).err()
}

struct Xcda<'a> {
    units: &'a [u32],
}

impl Xcda<'_> {
    fn node(&self, index: u32) -> Result<u32, String> {
        let n = self.units.len();
        usize::try_from(index)
            .ok()
            .and_then(|i| self.units.get(i).copied())
            .ok_or_else(|| format!("XCDA node {index} is past its {n} entries"))
    }

    fn base(&self, index: u32) -> Result<u32, String> {
        let p = self.node(index)?;
        Ok((p >> 10) << ((p & (1 << 9)) >> 6))
    }
}

/// Follows every transition normalize_prefix can take: from each reachable
/// node base, each input byte 1..=255 (a NUL stops the walk).
fn walk(x: &Xcda, replacements: &[u8]) -> Result<(), String> {
    let root = x.base(0)?;
    let mut seen = HashSet::from([root]);
    let mut todo = vec![root];
    while let Some(base) = todo.pop() {
        for c in 1..=255u32 {
            let index = base ^ c;
            let unit = x.node(index)?;
            if unit & ((1 << 31) | 0xff) != c {
                continue;
            }
            let next = index ^ x.base(index)?;
            if (unit >> 8) & 1 == 1 {
                check_replacement(x.node(next)? & 0x7fff_ffff, replacements)?;
            }
            if seen.insert(next) {
                todo.push(next);
            }
        }
    }
    Ok(())
}

fn check_replacement(offset: u32, replacements: &[u8]) -> Result<(), String> {
    let n = replacements.len();
    let rest = usize::try_from(offset).ok().and_then(|o| replacements.get(o..)).filter(|r| !r.is_empty());
    match rest {
        None => Err(format!("replacement offset {offset} is past the {n} bytes of replacement strings")),
        Some(r) if !r.contains(&0) => Err(format!("the replacement string at offset {offset} has no NUL terminator")),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::problem;

    fn charsmap(units: &[u32], replacements: &[u8]) -> Vec<u8> {
        let mut out = ((units.len() * 4) as u32).to_le_bytes().to_vec();
        for u in units {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out.extend_from_slice(replacements);
        out
    }

    /// Root at 256: bytes reach nodes 257..=511; 'a' is a leaf whose
    /// replacement index is stored at node 1.
    fn units() -> Vec<u32> {
        let mut u = vec![0u32; 512];
        u[0] = 256 << 10;
        u[0x161] = (0x160 << 10) | (1 << 8) | 0x61;
        u
    }

    #[test]
    fn a_well_formed_charsmap_passes() {
        assert_eq!(problem(&charsmap(&units(), b"b\0")), None);
        // An empty XCDA is never walked.
        assert_eq!(problem(&charsmap(&[], b"\0")), None);
    }

    #[test]
    fn a_short_header_or_oversized_xcda_is_refused() {
        assert!(problem(&[1, 0, 0]).unwrap().contains("4-byte"));
        assert!(problem(&charsmap(&units(), b"")).unwrap().contains("no room"));
    }

    #[test]
    fn a_root_whose_children_leave_the_array_is_refused() {
        let mut u = units();
        u[0] = 0x300 << 10;
        assert!(problem(&charsmap(&u, b"b\0")).unwrap().contains("past its 512 entries"));
    }

    #[test]
    fn a_deep_node_that_leaves_the_array_is_refused() {
        let mut u = units();
        // After 'a' the walk continues from node 1 ^ base; point it far away.
        u[0x161] = (0x4000 << 10) | (1 << 8) | 0x61;
        assert!(problem(&charsmap(&u, b"b\0")).unwrap().contains("XCDA node"));
    }

    #[test]
    fn bad_replacement_offsets_and_unterminated_strings_are_refused() {
        let mut u = units();
        u[1] = 7;
        assert!(problem(&charsmap(&u, b"b\0")).unwrap().contains("offset 7"));
        assert!(problem(&charsmap(&units(), b"bc")).unwrap().contains("NUL"));
    }
}
