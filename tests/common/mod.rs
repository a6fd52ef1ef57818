//! Shared test helpers: the repository's real inventories, roles and templates loaded
//! into memory, so a test can break one file and evaluate the rest unchanged.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use provision::evaluate::{evaluate, Evaluation, Failure};
use provision::model::LoadOptions;
use provision::source::MemoryTree;

pub mod lab;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// inventories/, roles/ and templates/ of the repository, by relative path.
pub fn repo_tree() -> MemoryTree {
    let mut tree = MemoryTree::new();
    for top in ["inventories", "roles", "templates"] {
        add_dir(&mut tree, &repo(), Path::new(top));
    }
    tree
}

fn add_dir(tree: &mut MemoryTree, root: &Path, rel: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
        return;
    };
    for e in entries.flatten() {
        let child = rel.join(e.file_name());
        if e.path().is_dir() {
            add_dir(tree, root, &child);
        } else if let Ok(text) = std::fs::read_to_string(e.path()) {
            tree.insert(child, text);
        }
    }
}

/// Reads a file of the tree.
pub fn read(tree: &MemoryTree, path: &str) -> String {
    use provision::source::SourceTree;
    tree.read(Path::new(path)).expect(path)
}

/// Replaces exactly one occurrence of `from` in a file of the tree.
pub fn edit(tree: &mut MemoryTree, path: &str, from: &str, to: &str) {
    let text = read(tree, path);
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` must occur once in {path}"
    );
    tree.insert(path, text.replacen(from, to, 1));
}

pub fn eval(tree: &MemoryTree, inventory: &str) -> Result<Evaluation, Failure> {
    evaluate(Path::new(inventory), tree, &LoadOptions::default())
}

/// The rendered errors of an evaluation that must fail.
pub fn errors(tree: &MemoryTree, inventory: &str) -> (usize, String) {
    match eval(tree, inventory) {
        Ok(_) => panic!("{inventory} was expected to be invalid"),
        Err(f) => (f.diags.len(), f.render()),
    }
}

/// `path:line:col` of the first occurrence of `needle` in a file of the tree
/// (column counted in characters, 1-based).
pub fn at(tree: &MemoryTree, path: &str, needle: &str) -> String {
    at_nth(tree, path, needle, 0)
}

pub fn at_nth(tree: &MemoryTree, path: &str, needle: &str, nth: usize) -> String {
    let text = read(tree, path);
    let offset = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` not in {path}"))
        .0;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map(|i| i + 1).unwrap_or(0)..]
        .chars()
        .count()
        + 1;
    format!("{path}:{line}:{col}")
}

/// The shell command that empties a lab node of everything provision manages: its
/// managed containers and their volumes (mariadb's data), /etc|/var/lib|/var/log/overcloud,
/// the registries and logrotate drop-ins.
pub const EMPTY_NODE: &str =
    "podman ps -aq --filter label=managed_by=provision | xargs -r podman rm -f -t 0 >/dev/null; \
     podman volume rm --all --force >/dev/null; \
     rm -rf /etc/overcloud/* /var/lib/overcloud/* /var/lib/overcloud/.provision-running \
            /var/lib/overcloud/.provision-files /var/log/overcloud/* \
            /etc/containers/registries.conf.d/50-provision.conf /etc/logrotate.d/provision";

/// The same for the undercloud's own services (its lock and records stay).
pub const EMPTY_UNDERCLOUD: &str =
    "podman ps -aq --filter label=managed_by=provision | xargs -r podman rm -f -t 0 >/dev/null; \
     rm -rf /etc/undercloud/* /var/lib/undercloud/* /var/log/undercloud/* \
            /etc/containers/registries.conf.d/50-provision.conf /etc/logrotate.d/provision";
