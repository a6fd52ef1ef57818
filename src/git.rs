//! Reading a cloud's files at a git revision, without a checkout: `git ls-tree` lists
//! the revision's files and one `git cat-file --batch` reads them all. Used by
//! `provision diff`; runs only local git commands, no network.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::source::{normalize, MemoryTree, SourceError, SourceTree};

/// Files larger than this are not read (a cloud's inputs are small text files).
const MAX_FILE: u64 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("not inside a git repository ({0}); run provision diff from a clone of the cloud's repository")]
    NotARepository(String),
    #[error("unknown revision `{rev}`: {message}")]
    UnknownRevision { rev: String, message: String },
    #[error("git {args} failed: {message}")]
    Failed { args: String, message: String },
    #[error("cannot run git: {0}; install git")]
    Spawn(std::io::Error),
    #[error("{path} is outside the repository {root}")]
    Outside { path: PathBuf, root: PathBuf },
}

/// A git repository, found from a folder inside it.
#[derive(Debug, Clone)]
pub struct Repo {
    pub root: PathBuf,
}

/// A resolved revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// As the user wrote it.
    pub name: String,
    pub commit: String,
}

impl Revision {
    pub fn short(&self) -> &str {
        &self.commit[..self.commit.len().min(10)]
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::Spawn)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(GitError::Failed {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl Repo {
    /// The repository containing `dir`.
    pub fn discover(dir: &Path) -> Result<Repo, GitError> {
        let out = git(dir, &["rev-parse", "--show-toplevel"]).map_err(|e| match e {
            GitError::Failed { message, .. } => GitError::NotARepository(message),
            other => other,
        })?;
        let root = PathBuf::from(String::from_utf8_lossy(&out).trim());
        Ok(Repo {
            root: root.canonicalize().unwrap_or(root),
        })
    }

    /// Resolves a revision to its commit.
    pub fn resolve(&self, rev: &str) -> Result<Revision, GitError> {
        let spec = format!("{rev}^{{commit}}");
        match git(&self.root, &["rev-parse", "--verify", "--quiet", &spec]) {
            Ok(out) => Ok(Revision {
                name: rev.to_string(),
                commit: String::from_utf8_lossy(&out).trim().to_string(),
            }),
            Err(GitError::Failed { message, .. }) => Err(GitError::UnknownRevision {
                rev: rev.to_string(),
                message: if message.is_empty() {
                    "no such commit, branch or tag in this repository".into()
                } else {
                    message
                },
            }),
            Err(e) => Err(e),
        }
    }

    /// A path given on the command line (relative to `cwd`), relative to the repository root.
    pub fn relative(&self, cwd: &Path, path: &Path) -> Result<PathBuf, GitError> {
        let cwd = cwd.canonicalize().unwrap_or(cwd.to_path_buf());
        let abs = normalize(&cwd.join(path));
        // Resolve symlinks of the folder part when it exists (the file may not, at head).
        let abs = match (
            abs.parent().and_then(|p| p.canonicalize().ok()),
            abs.file_name(),
        ) {
            (Some(dir), Some(name)) => dir.join(name),
            _ => abs,
        };
        abs.strip_prefix(&self.root)
            .map(Path::to_path_buf)
            .map_err(|_| GitError::Outside {
                path: path.to_path_buf(),
                root: self.root.clone(),
            })
    }

    /// Every file of a revision, by path relative to the repository root.
    pub fn tree(&self, rev: &Revision) -> Result<MemoryTree, GitError> {
        let listing = git(
            &self.root,
            &["ls-tree", "-r", "-z", "-l", "--full-tree", &rev.commit],
        )?;
        let mut wanted: Vec<(String, String)> = Vec::new();
        for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            let fields: Vec<&str> = meta.split_whitespace().collect();
            if fields.len() == 4
                && fields[1] == "blob"
                && fields[3]
                    .parse::<u64>()
                    .map(|s| s <= MAX_FILE)
                    .unwrap_or(false)
            {
                wanted.push((fields[2].to_string(), path.to_string()));
            }
        }
        let mut child = Command::new("git")
            .args(["cat-file", "--batch"])
            .current_dir(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(GitError::Spawn)?;
        let mut stdin = child.stdin.take().ok_or_else(|| GitError::Failed {
            args: "cat-file".into(),
            message: "no stdin".into(),
        })?;
        let oids: Vec<String> = wanted.iter().map(|(o, _)| o.clone()).collect();
        let writer = std::thread::spawn(move || {
            for oid in oids {
                if writeln!(stdin, "{oid}").is_err() {
                    break;
                }
            }
        });
        let stdout = child.stdout.take().ok_or_else(|| GitError::Failed {
            args: "cat-file".into(),
            message: "no stdout".into(),
        })?;
        let mut reader = BufReader::new(stdout);
        let mut tree = MemoryTree::new();
        for (_, path) in &wanted {
            let mut header = String::new();
            reader
                .read_line(&mut header)
                .map_err(|e| GitError::Failed {
                    args: "cat-file".into(),
                    message: e.to_string(),
                })?;
            let size: usize = header
                .split_whitespace()
                .nth(2)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let mut content = vec![0u8; size + 1];
            reader
                .read_exact(&mut content)
                .map_err(|e| GitError::Failed {
                    args: "cat-file".into(),
                    message: e.to_string(),
                })?;
            content.pop();
            if let Ok(text) = String::from_utf8(content) {
                tree.insert(path.clone(), text);
            }
        }
        let _ = writer.join();
        let _ = child.wait();
        Ok(tree)
    }
}

/// The working tree of a repository, addressed by paths relative to its root.
#[derive(Debug, Clone)]
pub struct WorkTree {
    pub root: PathBuf,
}

impl SourceTree for WorkTree {
    fn read(&self, path: &Path) -> Result<String, SourceError> {
        crate::source::FsTree
            .read(&self.root.join(path))
            .map_err(|e| match e {
                SourceError::NotFound { .. } => SourceError::NotFound {
                    path: path.to_path_buf(),
                },
                SourceError::Unreadable { message, .. } => SourceError::Unreadable {
                    path: path.to_path_buf(),
                    message,
                },
            })
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>, SourceError> {
        crate::source::FsTree
            .list(&self.root.join(dir))
            .map_err(|_| SourceError::NotFound {
                path: dir.to_path_buf(),
            })
    }
    fn exists(&self, path: &Path) -> bool {
        crate::source::FsTree.exists(&self.root.join(path))
    }
}
