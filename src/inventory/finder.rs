//! Finding every occurrence of many strings (the forms of the secret values) in a text,
//! overlapping ones included, fast when the text holds few: every rendered file is
//! scanned so (`Secrets::found_in`), and every file a report shows (the redaction of
//! `provision diff` and `plan`).
//!
//! An Aho-Corasick automaton finds every occurrence, but with more than a few patterns
//! its prefilter looks only for their first bytes: secrets that begin with a common
//! letter (`e`, `a`) make it step through the automaton at nearly every word of every
//! file, though most files hold no secret at all. A SIMD searcher (Teddy) of the same
//! patterns skips such text at several bytes a cycle, but reports leftmost matches
//! only, none within or overlapping another. Both are used: the SIMD searcher finds
//! where values are, and the automaton looks again only around each of its matches.
//!
//! Why that finds every occurrence: the leftmost search resumes where its last match
//! ended, and reports the leftmost occurrence from there; so an occurrence it does not
//! report starts within the span of one it does. Each match `[start, end)` is therefore
//! searched again from `start` to `end - 1 + longest pattern`, where every occurrence
//! starting within it ends.

use aho_corasick::{packed, AhoCorasick, AhoCorasickKind};

/// The longest pattern the automaton is a DFA for; past it, a contiguous NFA: a DFA
/// takes time quadratic in a repetitive pattern's length to build (a 12,000-character
/// secret of one letter took 10 s), the NFA linear time, and scans nearly as fast.
const DFA_PATTERN_BYTES: usize = 1024;

/// Many patterns, ready to find in many texts.
#[derive(Clone)]
pub struct Finder {
    /// Every occurrence, overlapping ones included.
    all: AhoCorasick,
    /// Leftmost matches, fast; `None` where it cannot be built (too many patterns, or
    /// a CPU without the SIMD instructions): then `all` scans the whole text.
    first: Option<packed::Searcher>,
    /// The longest pattern's length, in bytes.
    longest: usize,
}

/// Shows no pattern: they are secret values.
impl std::fmt::Debug for Finder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Finder(..)")
    }
}

impl Finder {
    /// A finder of `patterns`, or `None` if none is non-empty or the automaton cannot
    /// be built.
    pub fn new<P: AsRef<[u8]>>(patterns: &[P]) -> Option<Finder> {
        // An empty pattern would match everywhere; the caller's patterns (forms of
        // non-empty values) have none, but a leftmost search could not cover one.
        if patterns.is_empty() || patterns.iter().any(|p| p.as_ref().is_empty()) {
            return None;
        }
        let longest = patterns.iter().map(|p| p.as_ref().len()).max().unwrap_or(0);
        let kind = if longest <= DFA_PATTERN_BYTES {
            None
        } else {
            Some(AhoCorasickKind::ContiguousNFA)
        };
        let all = AhoCorasick::builder().kind(kind).build(patterns).ok()?;
        let first = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(patterns)
            .build();
        Some(Finder {
            all,
            first,
            longest,
        })
    }

    /// Calls `each` with every occurrence in `text`, as (pattern index, start, end):
    /// overlapping ones included, in no particular order, and some possibly more than
    /// once (the places searched again may overlap).
    pub fn each(&self, text: &str, mut each: impl FnMut(usize, usize, usize)) {
        let hay = text.as_bytes();
        let Some(first) = &self.first else {
            for m in self.all.find_overlapping_iter(hay) {
                each(m.pattern().as_usize(), m.start(), m.end());
            }
            return;
        };
        // The places to search again, merged where they overlap: each byte is searched
        // again at most once, however many short matches a long pattern's reach covers.
        let mut again: Option<(usize, usize)> = None;
        for m in first.find_iter(hay) {
            let (from, to) = (m.start(), (m.end() - 1 + self.longest).min(hay.len()));
            again = match again {
                Some((start, end)) if from <= end => Some((start, end.max(to))),
                Some(done) => {
                    self.search_again(hay, done, &mut each);
                    Some((from, to))
                }
                None => Some((from, to)),
            };
        }
        if let Some(done) = again {
            self.search_again(hay, done, &mut each);
        }
    }

    /// Every occurrence within `hay[from..to]`.
    fn search_again(
        &self,
        hay: &[u8],
        (from, to): (usize, usize),
        each: &mut impl FnMut(usize, usize, usize),
    ) {
        for o in self.all.find_overlapping_iter(&hay[from..to]) {
            each(o.pattern().as_usize(), from + o.start(), from + o.end());
        }
    }

    /// Whether `text` holds any of the patterns.
    pub fn is_in(&self, text: &str) -> bool {
        match &self.first {
            Some(first) => first.find(text.as_bytes()).is_some(),
            None => self.all.is_match(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every occurrence, found the slow way: each pattern at each place.
    fn naive(patterns: &[&str], text: &str) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            for start in 0..text.len() {
                if text.as_bytes()[start..].starts_with(p.as_bytes()) {
                    out.push((i, start, start + p.len()));
                }
            }
        }
        out.sort_unstable();
        out
    }

    fn found(f: &Finder, text: &str) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        f.each(text, |p, s, e| out.push((p, s, e)));
        out.sort_unstable();
        out.dedup();
        out
    }

    #[test]
    fn finds_every_occurrence_within_and_across_leftmost_ones() {
        let patterns = [
            "example-db-password",
            "db-pass",
            "password-rabbit",
            "word",
            "exam",
            "ple-d",
            "aaaa",
        ];
        let f = Finder::new(&patterns).expect("a finder");
        let filler = "some text without any value of them, long enough for SIMD ".repeat(3);
        for text in [
            format!("{filler}x=example-db-password-rabbit y=db-pass {filler}"),
            format!("exam{filler}ple-d aaaaaaa word"),
            "example-db-password".to_string(),
            "aaaaa".to_string(),
            filler.clone(),
            String::new(),
        ] {
            assert_eq!(found(&f, &text), naive(&patterns, &text), "in {text:?}");
            assert_eq!(f.is_in(&text), !naive(&patterns, &text).is_empty());
        }
    }

    #[test]
    fn no_finder_without_patterns_or_with_an_empty_one() {
        assert!(Finder::new::<&str>(&[]).is_none());
        assert!(Finder::new(&["a", ""]).is_none());
    }
}
