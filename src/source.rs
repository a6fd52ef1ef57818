//! Where input files come from.
//!
//! Everything `provision` reads (the inventory, its secrets file, roles, the service
//! catalogue) goes through a [`SourceTree`], so the same evaluation code runs on the
//! working tree and, for `provision diff`, on a git revision without a checkout.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An error reading an input file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: file not found")]
    NotFound { path: PathBuf },
    #[error("{path}: {message}")]
    Unreadable { path: PathBuf, message: String },
}

/// A read-only tree of files addressed by normalized paths.
pub trait SourceTree: Send + Sync {
    /// Reads a file as UTF-8 text.
    fn read(&self, path: &Path) -> Result<String, SourceError>;
    /// Lists the entries (file or folder names) directly inside a folder, sorted.
    fn list(&self, dir: &Path) -> Result<Vec<String>, SourceError>;
    /// Whether a file exists.
    fn exists(&self, path: &Path) -> bool;
}

/// The local filesystem.
#[derive(Debug, Default, Clone)]
pub struct FsTree;

impl SourceTree for FsTree {
    fn read(&self, path: &Path) -> Result<String, SourceError> {
        match std::fs::read(path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| SourceError::Unreadable {
                path: path.to_path_buf(),
                message: "not valid UTF-8 text".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SourceError::NotFound {
                path: path.to_path_buf(),
            }),
            Err(e) => Err(SourceError::Unreadable {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        }
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>, SourceError> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SourceError::NotFound {
                    path: dir.to_path_buf(),
                }
            } else {
                SourceError::Unreadable {
                    path: dir.to_path_buf(),
                    message: e.to_string(),
                }
            }
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        path.is_file()
    }
}

/// An in-memory tree, used by tests and by git revisions read in full.
#[derive(Debug, Default, Clone)]
pub struct MemoryTree {
    files: BTreeMap<PathBuf, String>,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&mut self, path: impl Into<PathBuf>, text: impl Into<String>) {
        self.files.insert(normalize(&path.into()), text.into());
    }
}

impl SourceTree for MemoryTree {
    fn read(&self, path: &Path) -> Result<String, SourceError> {
        self.files
            .get(&normalize(path))
            .cloned()
            .ok_or_else(|| SourceError::NotFound {
                path: path.to_path_buf(),
            })
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>, SourceError> {
        let dir = normalize(dir);
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|p| p.strip_prefix(&dir).ok())
            .filter_map(|rest| rest.components().next())
            .filter_map(|c| c.as_os_str().to_str().map(str::to_string))
            .collect();
        names.dedup();
        if names.is_empty() {
            return Err(SourceError::NotFound { path: dir });
        }
        Ok(names)
    }
    fn exists(&self, path: &Path) -> bool {
        self.files.contains_key(&normalize(path))
    }
}

/// Removes `.` and resolves `..` lexically (no filesystem access, no symlinks).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Keeps every file read, so diagnostics can quote the source of any of them.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    inner: Arc<Mutex<BTreeMap<PathBuf, SourceFile>>>,
}

/// A file kept for diagnostics.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub text: Arc<str>,
    /// Secret files are never quoted in diagnostics.
    pub secret: bool,
    /// The byte offset where each line starts (the first is 0), built once when the
    /// file is added: a location's line is a binary search, not a scan from the start
    /// (which made thousands of diagnostics in one file quadratic).
    line_starts: Arc<[usize]>,
}

impl SourceFile {
    pub fn new(text: &str, secret: bool) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            text: Arc::from(text),
            secret,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset; an offset past the
    /// end is the end, one inside a character is that character, and one on the `\n`
    /// of a `\r\n` is the end of its line (the column after the line's last
    /// character, as on a line ending in `\n` alone).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let text = &*self.text;
        let mut offset = offset.min(text.len());
        while offset > 0 && !text.is_char_boundary(offset) {
            offset -= 1;
        }
        // line_starts[0] == 0 <= offset, so the partition point is at least 1.
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let bytes = text.as_bytes();
        let end =
            if offset > start && bytes.get(offset) == Some(&b'\n') && bytes[offset - 1] == b'\r' {
                offset - 1
            } else {
                offset
            };
        let col = text.get(start..end).map_or(0, |s| s.chars().count()) + 1;
        (line, col)
    }

    /// The text of 1-based line `line` without its line ending, as [`str::lines`]
    /// gives it; `None` past the last line.
    pub fn line(&self, line: usize) -> Option<&str> {
        let text = &*self.text;
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        if start >= text.len() {
            return None;
        }
        let end = self.line_starts.get(line).copied().unwrap_or(text.len());
        let piece = text.get(start..end)?;
        Some(match piece.strip_suffix('\n') {
            Some(l) => l.strip_suffix('\r').unwrap_or(l),
            None => piece,
        })
    }
}

impl SourceMap {
    pub fn add(&self, path: &Path, text: &str, secret: bool) {
        if let Ok(mut map) = self.inner.lock() {
            map.insert(path.to_path_buf(), SourceFile::new(text, secret));
        }
    }
    pub fn get(&self, path: &Path) -> Option<SourceFile> {
        self.inner.lock().ok().and_then(|m| m.get(path).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index gives what a scan from the start of the text gives, at every offset
    /// (inside a character and past the end too), but on the `\n` of a `\r\n`, where
    /// it gives the end of the line; and the same lines as `str::lines`.
    #[test]
    fn line_index_agrees_with_a_scan() {
        for text in [
            "",
            "\n",
            "a = 1\nbb = 2\n",
            "a\r\nb\r\n\r\nc",
            "x = \"é€😀\"\n\ny = 2",
            "no newline",
            "a\r",
            "abc = \"x\r\ny = 1\r\n",
        ] {
            let f = SourceFile::new(text, false);
            for offset in 0..text.len() + 3 {
                let clamped = offset.min(text.len());
                let mut b = clamped;
                while !text.is_char_boundary(b) {
                    b -= 1;
                }
                let before = &text[..b];
                let line = before.matches('\n').count() + 1;
                let start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
                let mut col = before[start..].chars().count() + 1;
                if text[b..].starts_with('\n') && before[start..].ends_with('\r') {
                    col -= 1;
                }
                assert_eq!(f.line_col(offset), (line, col), "{text:?} at {offset}");
                assert_eq!(
                    f.line(line),
                    text.lines().nth(line - 1),
                    "{text:?} line {line}"
                );
            }
            assert_eq!(f.line(0), None);
        }
        // The column of the end of a CRLF line is just after its last character.
        let f = SourceFile::new("ab\r\nc", false);
        assert_eq!(f.line_col(3), (1, 3));
        assert_eq!(f.line(1), Some("ab"));
    }
}
