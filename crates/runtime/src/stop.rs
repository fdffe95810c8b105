//! Stop strings over streamed text.

/// Holds back just enough streamed text to tell whether a stop string is
/// starting, so the client never sees text that a stop string later claims.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What `StopMatcher::push` decided.
#[derive(Debug, PartialEq, Eq)]
pub enum StopState {
    /// Keep generating.
    Continue,
    /// A stop string matched; the text before it has been released.
    Stopped,
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        let stops = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        Self { stops, held: String::new() }
    }

    /// Feed new text; append what is safe to emit to `out`.
    pub fn push(&mut self, text: &str, out: &mut String) -> StopState {
        if self.stops.is_empty() {
            out.push_str(text);
            return StopState::Continue;
        }
        self.held.push_str(text);
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            out.push_str(&self.held[..at]);
            self.held.clear();
            return StopState::Stopped;
        }
        let keep = self.partial_suffix();
        let cut = self.held.len() - keep;
        out.push_str(&self.held[..cut]);
        self.held.drain(..cut);
        StopState::Continue
    }

    /// End of generation without a stop: release what was held.
    pub fn flush(&mut self, out: &mut String) {
        out.push_str(&self.held);
        self.held.clear();
    }

    /// Length of the longest suffix of `held` that is a proper prefix of a
    /// stop string, at a char boundary.
    fn partial_suffix(&self) -> usize {
        let h = &self.held;
        let mut best = 0;
        for s in &self.stops {
            let max = (s.len() - 1).min(h.len());
            for len in (best + 1..=max).rev() {
                let start = h.len() - len;
                if h.is_char_boundary(start) && s.starts_with(&h[start..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], chunks: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for c in chunks {
            if m.push(c, &mut out) == StopState::Stopped {
                return (out, true);
            }
        }
        m.flush(&mut out);
        (out, false)
    }

    #[test]
    fn stop_split_across_chunks() {
        assert_eq!(run(&["END"], &["abc E", "N", "D tail"]), ("abc ".into(), true));
        assert_eq!(run(&["END"], &["abc EN", "x"]), ("abc ENx".into(), false));
        assert_eq!(run(&["\n\n", "```"], &["a\n", "``", "`"]), ("a\n".into(), true));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&["é!"], &["aé", "é!"]), ("aé".into(), true));
    }

    #[test]
    fn streamed_text_equals_reference_cut() {
        // Brute force: whatever the chunking, output equals the text cut at the
        // earliest stop occurrence.
        let text = "the quick brown fox jumps over the lazy dog";
        let stops = ["fox j", "lazy", "zzz"];
        let reference = &text[..text.find("fox j").unwrap()];
        for size in 1..8 {
            let chunks: Vec<String> =
                text.as_bytes().chunks(size).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
            let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
            assert_eq!(run(&stops, &refs), (reference.to_string(), true));
        }
    }
}
