//! Located error messages, in the style of rustc and cargo.
//!
//! Every problem found in the input is a [`Diagnostic`]: what is wrong, where (file, line,
//! column), and what to do about it. Validation collects all of them before reporting.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::source::SourceMap;

/// Where a diagnostic points.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    #[default]
    Error,
    Warning,
}

/// One problem in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        if !self.items.contains(&d) {
            self.items.push(d);
        }
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
            (
                &a.location.file,
                a.location.span.as_ref().map(|s| s.start),
                &a.message,
            )
                .cmp(&(
                    &b.location.file,
                    b.location.span.as_ref().map(|s| s.start),
                    &b.message,
                ))
        });
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
            let (line, col) = line_col(&src.text, span.start);
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
        .map(|(span, src)| line_col(&src.text, span.start).0.to_string().len())
        .unwrap_or(1);
    let _ = writeln!(out, "{:gutter$}--> {}", "", describe(&d.location, sources));
    if let Some((span, src)) = quoted {
        {
            let (line, col) = line_col(&src.text, span.start);
            if let Some(text) = src.text.lines().nth(line - 1) {
                let width = {
                    let end = span.end.min(src.text.len()).max(span.start);
                    let piece = &src.text[floor_char_boundary(&src.text, span.start)
                        ..floor_char_boundary(&src.text, end)];
                    let first_line = piece.split('\n').next().unwrap_or("");
                    first_line.chars().count().max(1)
                };
                let _ = writeln!(out, "{:gutter$} |", "");
                let _ = writeln!(out, "{line} | {text}");
                let _ = writeln!(
                    out,
                    "{:gutter$} | {}{}",
                    "",
                    " ".repeat(col - 1),
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
