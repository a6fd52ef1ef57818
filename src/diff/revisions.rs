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

/// `provision diff`: the desired state of `inventory` (a path in the working tree of
/// the repository around `cwd`) at `base` compared with `head` (a revision, or the
/// working tree with its uncommitted changes). Both sides are evaluated at once.
pub fn diff_revisions(
    cwd: &Path,
    inventory: &Path,
    base: &str,
    head: Option<&str>,
) -> Result<super::Report, String> {
    let repo = Repo::discover(cwd).map_err(|e| e.to_string())?;
    let rel = repo.relative(cwd, inventory).map_err(|e| e.to_string())?;
    let base_src = Source::Commit(repo.resolve(base).map_err(|e| e.to_string())?);
    let head_src = match head {
        Some(h) => Source::Commit(repo.resolve(h).map_err(|e| e.to_string())?),
        None => Source::WorkingTree,
    };
    let opts = LoadOptions::from_process_env();
    let (b, h) = std::thread::scope(|s| {
        let b = s.spawn(|| evaluate_at(&repo, &rel, &base_src, "base", &opts));
        let h = evaluate_at(&repo, &rel, &head_src, "head", &opts);
        (b.join(), h)
    });
    let b = b
        .map_err(|_| "evaluating the base revision failed unexpectedly".to_string())?
        .map_err(|e| e.to_string())?;
    let h = h.map_err(|e| e.to_string())?;
    let label = rel.display().to_string();
    Ok(super::compare(
        &label,
        &super::Side {
            label: base_src.info(),
            state: &b.state,
            secrets: &b.cloud.secrets,
        },
        &super::Side {
            label: head_src.info(),
            state: &h.state,
            secrets: &h.cloud.secrets,
        },
    ))
}
