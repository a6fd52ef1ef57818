//! Located error messages, in the style of rustc and cargo.
//!
//! Every problem found in the input is a [`Diagnostic`]: what is wrong, where (file, line,
//! column), and what to do about it. Validation collects all of them before reporting.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::source::SourceMap;

/// Where a diagnostic points.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: PathBuf,
    /// Byte range in the file; `None` when only the file is known.
    pub span: Option<Range<usize>>,
}

impl Location {
    pub fn new(file: &Path, span: Option<Range<usize>>) -> Self {
        Self {
            file: file.to_path_buf(),
            span,
        }
    }
    pub fn file(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            span: None,
        }
    }
}

/// How bad a diagnostic is: an error fails the run, a warning is shown and the run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Severity {
    #[default]
    Error,
    Warning,
}

/// One problem in the input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub location: Location,
    /// What to do about it.
    pub help: Option<String>,
    /// Further places involved (e.g. the first definition of a duplicate).
    pub notes: Vec<(String, Location)>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, location: Location) -> Self {
        Self {
            severity: Severity::Error,
            message: message.into(),
            location,
            help: None,
            notes: Vec::new(),
        }
    }
    /// A warning: shown, and the run goes on.
    pub fn warning(message: impl Into<String>, location: Location) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::new(message, location)
        }
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn note(mut self, text: impl Into<String>, location: Location) -> Self {
        self.notes.push((text.into(), location));
        self
    }
}

/// Diagnostics collected during one run.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
    /// Where in `items` the diagnostics of each hash are: a diagnostic found twice is
    /// kept once, found with a hash lookup rather than a scan of every earlier one
    /// (which made an inventory with an error on each of N nodes take N² comparisons).
    seen: HashMap<u64, Vec<usize>>,
}

fn hash_of(d: &Diagnostic) -> u64 {
    let mut h = DefaultHasher::new();
    d.hash(&mut h);
    h.finish()
}

impl Diagnostics {
    /// Adds `d` unless the same diagnostic is there already.
    pub fn push(&mut self, d: Diagnostic) {
        let at = self.seen.entry(hash_of(&d)).or_default();
        if at.iter().any(|&i| self.items.get(i) == Some(&d)) {
            return;
        }
        at.push(self.items.len());
        self.items.push(d);
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn extend(&mut self, other: Diagnostics) {
        for d in other.items {
            self.push(d);
        }
    }
    /// Sorts by file and position, so reports are stable.
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            // Paths compare by components (slow); most diagnostics share one file,
            // whose bytes compare equal at once.
            let (fa, fb) = (&a.location.file, &b.location.file);
            let files = if fa.as_os_str() == fb.as_os_str() {
                std::cmp::Ordering::Equal
            } else {
                fa.cmp(fb)
            };
            files.then_with(|| {
                (a.location.span.as_ref().map(|s| s.start), &a.message)
                    .cmp(&(b.location.span.as_ref().map(|s| s.start), &b.message))
            })
        });
        self.seen.clear();
        for (i, d) in self.items.iter().enumerate() {
            self.seen.entry(hash_of(d)).or_default().push(i);
        }
    }

    /// How many are errors and how many warnings.
    pub fn counts(&self) -> (usize, usize) {
        let errors = self
            .items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        (errors, self.items.len() - errors)
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `file:line:col` of a location, or just the file.
pub fn describe(location: &Location, sources: &SourceMap) -> String {
    let file = location.file.display();
    match (&location.span, sources.get(&location.file)) {
        (Some(span), Some(src)) => {
            let (line, col) = src.line_col(span.start);
            format!("{file}:{line}:{col}")
        }
        _ => format!("{file}"),
    }
}

/// Renders a diagnostic for a terminal or a log, quoting the source line unless the
/// file holds secrets.
pub fn render(d: &Diagnostic, sources: &SourceMap) -> String {
    let mut out = String::new();
    let level = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let _ = writeln!(out, "{level}: {}", d.message);
    let quoted = match (&d.location.span, sources.get(&d.location.file)) {
        (Some(span), Some(src)) if !src.secret => Some((span.clone(), src)),
        _ => None,
    };
    let gutter = quoted
        .as_ref()
        .map(|(span, src)| src.line_col(span.start).0.to_string().len())
        .unwrap_or(1);
    let _ = writeln!(out, "{:gutter$}--> {}", "", describe(&d.location, sources));
    if let Some((span, src)) = quoted {
        {
            let (line, col) = src.line_col(span.start);
            if let Some(text) = src.line(line) {
                let width = {
                    let len = src.text.len();
                    let end = span.end.min(len).max(span.start.min(len));
                    let piece = &src.text[floor_char_boundary(&src.text, span.start.min(len))
                        ..floor_char_boundary(&src.text, end)];
                    let first_line = piece.split('\n').next().unwrap_or("");
                    first_line.chars().count().max(1)
                };
                let (text, caret, width) = window(text, col - 1, width);
                let _ = writeln!(out, "{:gutter$} |", "");
                let _ = writeln!(out, "{line} | {text}");
                let _ = writeln!(
                    out,
                    "{:gutter$} | {}{}",
                    "",
                    " ".repeat(caret),
                    "^".repeat(width)
                );
            }
        }
    }
    for (text, loc) in &d.notes {
        let _ = writeln!(
            out,
            "{:gutter$} = note: {text} ({})",
            "",
            describe(loc, sources)
        );
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "{:gutter$} = help: {help}", "");
    }
    out
}

/// The longest source line quoted whole; of a longer one (a generated or minified
/// file), [`window`] quotes the part around the column.
pub const QUOTED_LINE: usize = 200;

/// The part of `line` to quote for a caret at character `col` (0-based) `width`
/// characters wide: the whole line up to [`QUOTED_LINE`] characters, else 60
/// characters before the column and up to 140 from it, `…` where it is cut. Returns
/// the text, the caret's column in it and its width.
fn window(line: &str, col: usize, width: usize) -> (std::borrow::Cow<'_, str>, usize, usize) {
    let len = line.chars().count();
    if len <= QUOTED_LINE {
        return (line.into(), col, width);
    }
    let start = col.min(len).saturating_sub(60);
    let end = (col + 140).min(len).max(start);
    let mut text = String::new();
    if start > 0 {
        text.push('…');
    }
    text.extend(line.chars().skip(start).take(end - start));
    if end < len {
        text.push('…');
    }
    let caret = col - start + usize::from(start > 0);
    let width = width.min(end.saturating_sub(col)).max(1);
    (text.into(), caret, width)
}

/// How many diagnostics of each severity a report lists before it only counts the
/// rest: the first ones are what to fix first, and a hundred thousand more lines help
/// no one.
pub const LISTED: usize = 50;

/// `n` with its thousands grouped: 199950 -> "199,950".
pub fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n thing` or `n things`, `n` grouped.
pub fn count(n: usize, thing: &str) -> String {
    format!("{} {thing}{}", grouped(n), if n == 1 { "" } else { "s" })
}

/// Renders the diagnostics (each as [`render`], a blank line between them), listing at
/// most `limit` of each severity (`None`: every one); past it, one line counts the
/// rest and says what to do: `advice` (e.g. "pass --all-errors to list every one").
pub fn render_listed(
    diags: &Diagnostics,
    sources: &SourceMap,
    limit: Option<usize>,
    advice: &str,
) -> String {
    let limit = limit.unwrap_or(usize::MAX);
    let (mut errors, mut warnings) = (0usize, 0usize);
    let (mut hidden_errors, mut hidden_warnings) = (0usize, 0usize);
    let mut blocks = Vec::new();
    for d in &diags.items {
        let (listed, hidden) = match d.severity {
            Severity::Error => (&mut errors, &mut hidden_errors),
            Severity::Warning => (&mut warnings, &mut hidden_warnings),
        };
        if *listed < limit {
            *listed += 1;
            blocks.push(render(d, sources));
        } else {
            *hidden += 1;
        }
    }
    let mut out = blocks.join("\n");
    let more: Vec<String> = [(hidden_errors, "error"), (hidden_warnings, "warning")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| count(n, &format!("more {what}")))
        .collect();
    if !more.is_empty() {
        let _ = writeln!(
            out,
            "\n... and {} (not shown); {advice}",
            more.join(" and ")
        );
    }
    out
}

/// The Levenshtein distance of `a` and `b` if it is at most `limit` (the
/// rows stop early past it): what "did you mean" suggestions are made of.
pub fn edit_distance(a: &str, b: &str, limit: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min > limit {
            return None;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    (prev[b.len()] <= limit).then_some(prev[b.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_is_bounded() {
        assert_eq!(
            edit_distance("cpu_alocation_ratio", "cpu_allocation_ratio", 3),
            Some(1)
        );
        assert_eq!(edit_distance("abc", "abc", 1), Some(0));
        assert_eq!(edit_distance("debug", "verbose", 2), None);
    }

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 11), (2, 6));
    }

    #[test]
    fn a_diagnostic_found_twice_is_kept_once() {
        let path = Path::new("inv.toml");
        let mut diags = Diagnostics::default();
        for i in 0..3 {
            diags.push(Diagnostic::new("bad", Location::new(path, Some(i..i + 1))));
        }
        diags.push(Diagnostic::new("bad", Location::new(path, Some(1..2))));
        diags.push(Diagnostic::warning("bad", Location::new(path, Some(1..2))));
        assert_eq!(diags.len(), 4);
        diags.sort();
        diags.push(Diagnostic::new("bad", Location::new(path, Some(0..1))));
        assert_eq!(diags.len(), 4, "the index follows the sort");
        assert_eq!(diags.counts(), (3, 1));
    }

    #[test]
    fn listing_stops_at_the_limit_and_counts_the_rest() {
        let sources = SourceMap::default();
        let path = Path::new("inv.toml");
        sources.add(path, "a = 1\n", false);
        let mut diags = Diagnostics::default();
        for i in 0..5 {
            diags.push(Diagnostic::new(
                format!("bad {i}"),
                Location::new(path, Some(0..1)),
            ));
        }
        diags.push(Diagnostic::warning("odd", Location::new(path, Some(0..1))));
        let text = render_listed(&diags, &sources, Some(2), "pass --all-errors");
        assert_eq!(text.matches("error: ").count(), 2, "{text}");
        assert_eq!(text.matches("warning: ").count(), 1, "{text}");
        assert!(
            text.ends_with("\n... and 3 more errors (not shown); pass --all-errors\n"),
            "{text}"
        );
        let all = render_listed(&diags, &sources, None, "unused");
        assert_eq!(all.matches("error: ").count(), 5, "{all}");
        assert!(!all.contains("more"), "{all}");
        assert_eq!(grouped(199_950), "199,950");
        assert_eq!(grouped(999), "999");
        assert_eq!(count(1, "error"), "1 error");
        assert_eq!(count(1_000_000, "error"), "1,000,000 errors");
    }

    #[test]
    fn a_long_line_is_quoted_around_the_column() {
        let sources = SourceMap::default();
        let path = Path::new("one-line.toml");
        let line = format!(
            "a = [{}\"bad\"{}]",
            "1, ".repeat(5_000),
            ", 2".repeat(5_000)
        );
        sources.add(path, &line, false);
        let at = line.find("\"bad\"").unwrap();
        let d = Diagnostic::new("bad", Location::new(path, Some(at..at + 5)));
        let text = render(&d, &sources);
        assert!(text.len() < 1_000, "{} bytes quoted", text.len());
        let quoted: Vec<&str> = text.lines().filter(|l| l.contains(" | ")).collect();
        assert_eq!(quoted.len(), 2, "{text}");
        let (src, carets) = (quoted[0], quoted[1]);
        assert!(
            src.starts_with("1 | …1, 1, ") && src.ends_with(", 2…"),
            "{src}"
        );
        // The caret under `"bad"`, in characters.
        let under = src.chars().position(|c| c == '"').unwrap();
        assert_eq!(carets.chars().position(|c| c == '^'), Some(under), "{text}");
        assert!(carets.ends_with(" ^^^^^"), "{text}");
        assert!(
            text.contains(&format!("one-line.toml:1:{}", at + 1)),
            "{text}"
        );
        // A line up to the limit is quoted whole, as before.
        assert_eq!(window("short", 2, 1), ("short".into(), 2, 1));
        let edge = "x".repeat(QUOTED_LINE);
        assert_eq!(window(&edge, 0, 3).0, edge);
    }

    #[test]
    fn secret_files_are_never_quoted() {
        let sources = SourceMap::default();
        let path = Path::new("secrets.toml");
        sources.add(path, "bmc = 12345\n", true);
        let d = Diagnostic::new("bad", Location::new(path, Some(6..11)));
        let text = render(&d, &sources);
        assert!(text.contains("secrets.toml:1:7"), "{text}");
        assert!(!text.contains("12345"), "{text}");
    }
}
