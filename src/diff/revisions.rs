//! Evaluating the cloud at a git revision (or the working tree) for `provision diff`.

use std::path::{Path, PathBuf};

use super::RevisionInfo;
use crate::evaluate::{evaluate, Evaluation};
use crate::git::{GitError, Repo, WorkTree};
use crate::model::LoadOptions;
use crate::source::SourceTree;

#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{path} does not exist at {side} revision {rev}; check the path, or the revision")]
    InventoryMissing {
        path: PathBuf,
        side: &'static str,
        rev: String,
    },
    #[error("the cloud does not evaluate at {side} revision {rev}:\n\n{report}")]
    Invalid {
        side: &'static str,
        rev: String,
        report: String,
    },
}

/// Which tree a side reads.
pub enum Source {
    Commit(crate::git::Revision),
    WorkingTree,
}

impl Source {
    pub fn info(&self) -> RevisionInfo {
        match self {
            Source::Commit(r) => RevisionInfo {
                rev: r.name.clone(),
                commit: Some(r.commit.clone()),
            },
            Source::WorkingTree => RevisionInfo {
                rev: "working tree".into(),
                commit: None,
            },
        }
    }
}

/// Evaluates `inventory` (relative to the repository root) at `source`.
pub fn evaluate_at(
    repo: &Repo,
    inventory: &Path,
    source: &Source,
    side: &'static str,
    opts: &LoadOptions,
) -> Result<Evaluation, RevisionError> {
    let work = WorkTree {
        root: repo.root.clone(),
    };
    let git_tree;
    let tree: &dyn SourceTree = match source {
        Source::Commit(rev) => {
            git_tree = repo.tree(rev)?;
            &git_tree
        }
        Source::WorkingTree => &work,
    };
    let rev = source.info().rev;
    if !tree.exists(inventory) {
        return Err(RevisionError::InventoryMissing {
            path: inventory.to_path_buf(),
            side,
            rev,
        });
    }
    let mut opts = opts.clone();
    opts.secrets_fallback = Some(repo.root.clone());
    evaluate(inventory, tree, &opts).map_err(|f| RevisionError::Invalid {
        side,
        rev,
        report: f.render(),
    })
}
