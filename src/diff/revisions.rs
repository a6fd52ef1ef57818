//! Evaluating the cloud at a git revision (or the working tree) for `provision diff`.

use std::path::{Path, PathBuf};

use std::sync::{mpsc, Arc};

use super::{Comparison, RevisionInfo};
use crate::evaluate::{evaluate_each_paired, Evaluated, Exchange, Rendered};
use crate::git::{GitError, Repo, WorkTree};
use crate::inventory::Secrets;
use crate::model::LoadOptions;
use crate::render::cache::RenderCache;
use crate::render::skip::{skipped_all, HostKeys};
use crate::source::SourceTree;
use crate::state::HostState;

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

/// Evaluates `inventory` (relative to the repository root) at `source`, handing each
/// host's desired state to `each` as it renders ([`evaluate_each`]).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_at(
    repo: &Repo,
    inventory: &Path,
    source: &Source,
    side: &'static str,
    opts: &LoadOptions,
    cache: &Arc<RenderCache>,
    exchange: Exchange<'_>,
    each: impl FnMut(Rendered<'_>),
) -> Result<Evaluated, RevisionError> {
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
    evaluate_each_paired(
        inventory,
        tree,
        &opts,
        Some(Arc::clone(cache)),
        Some(exchange),
        each,
    )
    .map_err(|f| RevisionError::Invalid {
        side,
        rev,
        report: f.render(),
    })
}

/// What the head side's thread sends the comparing one: its secrets first, then its
/// hosts in name order.
enum FromHead {
    Secrets(Secrets),
    Host(HostState),
}

/// Hosts the head side may render ahead of the comparison: the memory of a few hosts,
/// whatever the cloud's size.
const HEAD_AHEAD: usize = 16;

/// `provision diff`: the desired state of `inventory` (a path in the working tree of
/// the repository around `cwd`) at `base` compared with `head` (a revision, or the
/// working tree with its uncommitted changes).
///
/// Both sides render at once, host by host, and each host is compared as soon as both
/// of its sides are: the head renders on its own thread, at most [`HEAD_AHEAD`] hosts
/// ahead, and the base on this one, which compares. Neither whole desired state is
/// ever held, so memory stays that of a few hosts and the report.
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
    // One cache for both sides: a service the change does not touch renders once.
    let cache = RenderCache::new();
    let (to_base, from_head) = mpsc::sync_channel::<FromHead>(HEAD_AHEAD);
    // The first pass's keys, each side's to the other ([`crate::render::skip`]).
    let (head_keys_out, head_keys_in) = mpsc::channel::<Arc<Vec<HostKeys>>>();
    let (base_keys_out, base_keys_in) = mpsc::channel::<Arc<Vec<HostKeys>>>();
    let (b, h, comparison) = std::thread::scope(|s| {
        let (repo, rel, head_src, opts, cache) = (&repo, &rel, &head_src, &opts, &cache);
        let h = s.spawn(move || {
            // A send fails only once the base side has stopped listening (it failed):
            // this side still renders every host, for its own diagnostics.
            let exchange = swap(head_keys_out, base_keys_in);
            evaluate_at(repo, rel, head_src, "head", opts, cache, exchange, |r| {
                let _ = to_base.send(match r {
                    Rendered::Cloud(c) => FromHead::Secrets(c.secrets.clone()),
                    Rendered::Host(hs) => FromHead::Host(hs),
                });
            })
            // `to_base` is dropped here: the base side sees the end of the head's hosts.
        });
        let mut merge = Merge {
            from_head: &from_head,
            comparison: None,
            next_head: None,
            head_gone: false,
        };
        let exchange = swap(base_keys_out, head_keys_in);
        let b = evaluate_at(
            repo,
            rel,
            &base_src,
            "base",
            opts,
            cache,
            exchange,
            |r| match r {
                Rendered::Cloud(c) => merge.start(&c.secrets),
                Rendered::Host(hs) => merge.base_host(hs),
            },
        );
        merge.rest_of_head();
        let comparison = merge.comparison.take();
        drop(from_head);
        (b, h.join(), comparison)
    });
    b.map_err(|e| e.to_string())?;
    h.map_err(|_| "evaluating the head revision failed unexpectedly".to_string())?
        .map_err(|e| e.to_string())?;
    let comparison = comparison.ok_or("the head revision gave no desired state to compare")?;
    Ok(comparison.finish(&rel.display().to_string(), base_src.info(), head_src.info()))
}

/// One side's end of the keys' swap: its own keys sent, the other side's received, and
/// the services skipped on each of its hosts worked out from both (none if the other
/// side failed before its first pass).
fn swap<'a>(
    out: mpsc::Sender<Arc<Vec<HostKeys>>>,
    theirs: mpsc::Receiver<Arc<Vec<HostKeys>>>,
) -> Exchange<'a> {
    Box::new(move |mine: Arc<Vec<HostKeys>>| {
        let _ = out.send(Arc::clone(&mine));
        drop(out);
        match theirs.recv() {
            Ok(theirs) => skipped_all(&mine, &theirs),
            Err(_) => Vec::new(),
        }
    })
}

/// The base side's end of the comparison: a merge of the two sides' hosts, both in
/// name order.
struct Merge<'a> {
    from_head: &'a mpsc::Receiver<FromHead>,
    /// Once both sides' secrets are known.
    comparison: Option<Comparison>,
    /// A head host received but not yet compared: its name is past the base's so far.
    next_head: Option<HostState>,
    /// The head side has sent its last host.
    head_gone: bool,
}

impl Merge<'_> {
    fn start(&mut self, base_secrets: &Secrets) {
        if let Ok(FromHead::Secrets(head_secrets)) = self.from_head.recv() {
            self.comparison = Some(Comparison::new(base_secrets, &head_secrets));
        } else {
            // The head failed before rendering: nothing to compare with; its error is
            // reported once the base side is done.
            self.head_gone = true;
        }
    }

    /// The next head host, in name order.
    fn head_host(&mut self) -> Option<HostState> {
        if let Some(h) = self.next_head.take() {
            return Some(h);
        }
        if self.head_gone {
            return None;
        }
        match self.from_head.recv() {
            Ok(FromHead::Host(h)) => Some(h),
            Ok(FromHead::Secrets(_)) | Err(_) => {
                self.head_gone = true;
                None
            }
        }
    }

    fn base_host(&mut self, b: HostState) {
        if self.comparison.is_none() {
            return;
        }
        loop {
            let h = self.head_host();
            let Some(c) = self.comparison.as_mut() else {
                return;
            };
            match h {
                Some(h) if h.name < b.name => c.host(None, Some(&h)),
                Some(h) if h.name == b.name => return c.host(Some(&b), Some(&h)),
                Some(h) => {
                    self.next_head = Some(h);
                    return c.host(Some(&b), None);
                }
                None => return c.host(Some(&b), None),
            }
        }
    }

    /// The head's hosts past the base's last: added ones.
    fn rest_of_head(&mut self) {
        if self.comparison.is_none() {
            return;
        }
        while let Some(h) = self.head_host() {
            if let Some(c) = self.comparison.as_mut() {
                c.host(None, Some(&h));
            }
        }
    }
}
