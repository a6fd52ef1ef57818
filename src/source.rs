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
}

impl SourceMap {
    pub fn add(&self, path: &Path, text: &str, secret: bool) {
        if let Ok(mut map) = self.inner.lock() {
            map.insert(
                path.to_path_buf(),
                SourceFile {
                    text: Arc::from(text),
                    secret,
                },
            );
        }
    }
    pub fn get(&self, path: &Path) -> Option<SourceFile> {
        self.inner.lock().ok().and_then(|m| m.get(path).cloned())
    }
}
