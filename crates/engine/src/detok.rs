//! Incremental, UTF-8-safe detokenisation for streaming.

/// Turns token pieces into text as they arrive. A multi-byte character split
/// across tokens is held back until it is complete; bytes that can never form
/// valid UTF-8 become U+FFFD, as `String::from_utf8_lossy` would give for the
/// whole output, so the streamed text always equals the final text.
#[derive(Debug, Default)]
pub struct Detokenizer {
    pending: Vec<u8>,
}

impl Detokenizer {
    pub fn new() -> Self {
        Self { pending: Vec::with_capacity(8) }
    }

    /// Add one token's bytes; appends whatever is now complete text to `out`.
    pub fn push(&mut self, piece: &[u8], out: &mut String) {
        self.pending.extend_from_slice(piece);
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // SAFETY-free: from_utf8 just told us this range is valid.
                    out.push_str(std::str::from_utf8(&self.pending[start..valid]).unwrap_or_default());
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start = valid + bad;
                        }
                        None => {
                            start = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
    }

    /// End of stream: an incomplete character left over becomes U+FFFD.
    pub fn finish(&mut self, out: &mut String) {
        if !self.pending.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }

    /// Bytes held back waiting for the rest of a character.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(pieces: &[&[u8]]) -> String {
        let mut d = Detokenizer::new();
        let mut out = String::new();
        for p in pieces {
            d.push(p, &mut out);
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn split_multibyte_characters_are_held_back() {
        let s = "héllo 世界 🦀";
        let bytes = s.as_bytes();
        let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(stream(&pieces), s);
        let mut d = Detokenizer::new();
        let mut out = String::new();
        d.push(&"世".as_bytes()[..2], &mut out);
        assert_eq!(out, "");
        assert_eq!(d.pending(), 2);
        d.push(&"世".as_bytes()[2..], &mut out);
        assert_eq!(out, "世");
    }

    #[test]
    fn invalid_bytes_match_lossy_decoding() {
        let cases: [&[u8]; 4] = [b"\xff", b"a\xc3(b", b"\xe4\xb8", b"ok\xf0\x9f\xa6"];
        for c in cases {
            for chunk in 1..=c.len() {
                let pieces: Vec<&[u8]> = c.chunks(chunk).collect();
                assert_eq!(stream(&pieces), String::from_utf8_lossy(c), "{c:?} in chunks of {chunk}");
            }
        }
    }
}
