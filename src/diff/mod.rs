//! Comparing two desired states: what a change to the inventory, roles or templates does
//! to every host, with identical changes on many hosts grouped into one, and secrets
//! redacted. Pure: `provision diff` feeds it two evaluations (two git revisions).

pub mod format;
pub mod revisions;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use similar::{ChangeTag, TextDiff};

use crate::inventory::secrets::forms_of;
use crate::inventory::Secrets;
use crate::state::{DesiredFile, DesiredState, FileKind};

/// Version of the JSON format (docs/diff.md).
pub const FORMAT: u32 = 1;

/// One side of the comparison.
pub struct Side<'a> {
    pub label: RevisionInfo,
    pub state: &'a DesiredState,
    pub secrets: &'a Secrets,
}

/// Which revision a side is.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RevisionInfo {
    /// As given on the command line, or `"working tree"`.
    pub rev: String,
    /// The commit, or `None` for the working tree.
    pub commit: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    Create,
    Modify,
    Delete,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ContainerAction {
    Create,
    Restart,
    Remove,
}

/// A host added or removed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostRef {
    pub name: String,
    pub role: String,
    pub files: usize,
    pub containers: usize,
}

/// One change to one path, the same on every host listed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileChange {
    pub path: String,
    pub service: String,
    pub action: FileAction,
    pub hosts: Vec<String>,
    /// Unified diff with secrets shown as `(secret)`; its context lines are those of the
    /// first host. Empty when only a secret, the mode or the owner changed.
    pub diff: String,
    /// A secret's value in this file changed (never shown).
    pub secret_changed: bool,
    /// `[before, after]` octal modes, when the mode changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<[String; 2]>,
    /// `[before, after]` as `owner:group`, when ownership changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<[String; 2]>,
}

/// One container action, the same on every host listed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContainerChange {
    pub container: String,
    pub action: ContainerAction,
    pub hosts: Vec<String>,
}

/// One change to a managed directory, the same on every host listed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DirChange {
    pub path: String,
    pub action: FileAction,
    pub hosts: Vec<String>,
    /// The desired `mode owner:group` (before it, for a change: the other side's).
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Hosts whose whole set of changes is the same.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostGroup {
    pub hosts: Vec<String>,
    pub files: Vec<String>,
    pub restarts: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Summary {
    pub hosts_added: usize,
    pub hosts_removed: usize,
    /// Existing hosts with at least one change.
    pub hosts_changed: usize,
    /// File changes, counted per host.
    pub file_changes: usize,
    /// Files whose secret changed, counted per host.
    pub secrets_changed: usize,
    /// Directory changes, counted per host.
    pub directory_changes: usize,
    /// Containers to restart (recreate), counted per host.
    pub restarts: usize,
    pub containers_created: usize,
    pub containers_removed: usize,
    /// Nodes the bare-metal stage would bring up (plan only).
    #[serde(default)]
    pub nodes_to_provision: usize,
}

/// A node the bare-metal stage would bring up (plan only).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeChange {
    pub node: String,
    pub role: String,
    /// `provision` or `remove` (provisioned, no longer in the inventory).
    pub change: String,
    /// What it takes, e.g. `redfish BMC 127.0.10.1 system lab-node-12: one-time PXE
    /// boot and power on if off, wait for SSH, check its MAC, introspect`.
    pub action: String,
}

/// What a report compares.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Two revisions (`provision diff`).
    Diff,
    /// The hosts' actual state and the desired one (`provision plan`).
    Plan,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub format: u32,
    pub kind: ReportKind,
    pub inventory: String,
    pub base: RevisionInfo,
    pub head: RevisionInfo,
    pub hosts_added: Vec<HostRef>,
    pub hosts_removed: Vec<HostRef>,
    pub files: Vec<FileChange>,
    pub directories: Vec<DirChange>,
    pub containers: Vec<ContainerChange>,
    pub host_groups: Vec<HostGroup>,
    /// Nodes to provision first (plan only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeChange>,
    pub summary: Summary,
    /// The undercloud's host name, where its services are compared too (their paths
    /// are under `/etc/undercloud`, not `/etc/overcloud`).
    #[serde(skip)]
    pub undercloud: Option<String>,
}

impl Report {
    pub fn has_changes(&self) -> bool {
        !(self.hosts_added.is_empty()
            && self.hosts_removed.is_empty()
            && self.files.is_empty()
            && self.directories.is_empty()
            && self.containers.is_empty()
            && self.nodes.is_empty())
    }
}

/// Sort key putting `node-2` before `node-10`.
pub fn natural_key(name: &str) -> (String, u64, String) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (prefix, num) = name.split_at(name.len() - digits);
    (
        prefix.to_string(),
        num.parse().unwrap_or(0),
        name.to_string(),
    )
}

fn sort_hosts(hosts: &mut [String]) {
    hosts.sort_by_key(|h| natural_key(h));
}

/// Grouping key of a file change: the changed lines, not their context, so the same
/// edit on hosts whose files differ elsewhere (their own addresses) is one change.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct ChangeKey {
    path: String,
    action: FileAction,
    changed_lines: String,
    secret_changed: bool,
    mode: Option<[String; 2]>,
    owner: Option<[String; 2]>,
}

fn owner_of(f: &DesiredFile) -> String {
    format!("{}:{}", f.owner, f.group)
}

/// Compares `base` with `head`.
pub fn compare(inventory: &str, base: &Side, head: &Side) -> Report {
    let mut summary = Summary::default();
    let host_ref = |name: &str, side: &Side| {
        let hs = &side.state.hosts[name];
        HostRef {
            name: name.to_string(),
            role: hs.role.clone(),
            files: hs.files.len(),
            containers: hs.containers.len(),
        }
    };
    let mut hosts_added: Vec<HostRef> = head
        .state
        .hosts
        .keys()
        .filter(|h| !base.state.hosts.contains_key(*h))
        .map(|h| host_ref(h, head))
        .collect();
    let mut hosts_removed: Vec<HostRef> = base
        .state
        .hosts
        .keys()
        .filter(|h| !head.state.hosts.contains_key(*h))
        .map(|h| host_ref(h, base))
        .collect();
    hosts_added.sort_by_key(|h| natural_key(&h.name));
    hosts_removed.sort_by_key(|h| natural_key(&h.name));
    summary.hosts_added = hosts_added.len();
    summary.hosts_removed = hosts_removed.len();

    // Secret values that differ between the sides: (base value, head value).
    let changed_secrets: Vec<(Vec<String>, Vec<String>)> =
        secret_changes(base.secrets, head.secrets);

    let mut groups: BTreeMap<ChangeKey, FileChange> = BTreeMap::new();
    let mut containers: BTreeMap<(String, ContainerAction), Vec<String>> = BTreeMap::new();
    let mut dirs: BTreeMap<(String, FileAction, Option<String>, Option<String>), Vec<String>> =
        BTreeMap::new();
    let mut per_host: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for (name, b) in &base.state.hosts {
        let Some(h) = head.state.hosts.get(name) else {
            continue;
        };
        let paths: BTreeSet<&String> = b.files.keys().chain(h.files.keys()).collect();
        for path in paths {
            let (bf, hf) = (b.files.get(path), h.files.get(path));
            let (action, before, after) = match (bf, hf) {
                (Some(x), Some(y))
                    if x.content == y.content && x.mode == y.mode && owner_of(x) == owner_of(y) =>
                {
                    continue
                }
                (Some(x), Some(y)) => (FileAction::Modify, Some(x), Some(y)),
                (None, Some(y)) => (FileAction::Create, None, Some(y)),
                (Some(x), None) => (FileAction::Delete, Some(x), None),
                (None, None) => continue,
            };
            let before_text = before
                .map(|f| base.secrets.redact(&shown(f)))
                .unwrap_or_default();
            let after_text = after
                .map(|f| head.secrets.redact(&shown(f)))
                .unwrap_or_default();
            let secret_changed = matches!(action, FileAction::Modify)
                && changed_secrets.iter().any(|(bv, hv)| {
                    before
                        .map(|f| bv.iter().any(|form| f.content.contains(form.as_str())))
                        .unwrap_or(false)
                        || after
                            .map(|f| hv.iter().any(|form| f.content.contains(form.as_str())))
                            .unwrap_or(false)
                });
            let (diff, changed_lines) = if before_text == after_text {
                (String::new(), String::new())
            } else {
                unified(path, &before_text, &after_text)
            };
            let mode = match (before, after) {
                (Some(x), Some(y)) if x.mode != y.mode => {
                    Some([format!("{:04o}", x.mode), format!("{:04o}", y.mode)])
                }
                _ => None,
            };
            let owner = match (before, after) {
                (Some(x), Some(y)) if owner_of(x) != owner_of(y) => {
                    Some([owner_of(x), owner_of(y)])
                }
                _ => None,
            };
            if diff.is_empty()
                && !secret_changed
                && mode.is_none()
                && owner.is_none()
                && action == FileAction::Modify
            {
                // Only the config hash of a container definition changed (the restart
                // says so), or a secret we do not know by value (a removed secret).
                continue;
            }
            summary.file_changes += 1;
            if secret_changed {
                summary.secrets_changed += 1;
            }
            let service = after
                .or(before)
                .map(|f| f.service.clone())
                .unwrap_or_default();
            let key = ChangeKey {
                path: path.clone(),
                action,
                changed_lines: if action == FileAction::Modify {
                    changed_lines
                } else {
                    diff.clone()
                },
                secret_changed,
                mode: mode.clone(),
                owner: owner.clone(),
            };
            groups
                .entry(key)
                .or_insert_with(|| FileChange {
                    path: path.clone(),
                    service,
                    action,
                    hosts: Vec::new(),
                    diff,
                    secret_changed,
                    mode,
                    owner,
                })
                .hosts
                .push(name.clone());
            per_host
                .entry(name.clone())
                .or_default()
                .0
                .insert(path.clone());
        }
        let describe = |d: &crate::state::DesiredDir| format!("{} {}:{}", d.mode, d.owner, d.group);
        let bdirs: BTreeMap<&str, String> = b
            .directories
            .iter()
            .map(|d| (d.path.as_str(), describe(d)))
            .collect();
        let hdirs: BTreeMap<&str, String> = h
            .directories
            .iter()
            .map(|d| (d.path.as_str(), describe(d)))
            .collect();
        let dir_paths: BTreeSet<&str> = bdirs.keys().chain(hdirs.keys()).copied().collect();
        for path in dir_paths {
            let (before, after) = (bdirs.get(path), hdirs.get(path));
            let action = match (before, after) {
                (Some(x), Some(y)) if x == y => continue,
                (Some(_), Some(_)) => FileAction::Modify,
                (None, Some(_)) => FileAction::Create,
                (Some(_), None) => FileAction::Delete,
                (None, None) => continue,
            };
            summary.directory_changes += 1;
            dirs.entry((path.to_string(), action, before.cloned(), after.cloned()))
                .or_default()
                .push(name.clone());
            per_host
                .entry(name.clone())
                .or_default()
                .0
                .insert(format!("{path}/"));
        }
        let names: BTreeSet<&String> = b.containers.keys().chain(h.containers.keys()).collect();
        for c in names {
            let action = match (b.containers.get(c), h.containers.get(c)) {
                (Some(x), Some(y))
                    if x.labels.get("provision.config_hash")
                        == y.labels.get("provision.config_hash") =>
                {
                    continue
                }
                (Some(_), Some(_)) => ContainerAction::Restart,
                (None, Some(_)) => ContainerAction::Create,
                (Some(_), None) => ContainerAction::Remove,
                (None, None) => continue,
            };
            match action {
                ContainerAction::Restart => summary.restarts += 1,
                ContainerAction::Create => summary.containers_created += 1,
                ContainerAction::Remove => summary.containers_removed += 1,
            }
            containers
                .entry((c.clone(), action))
                .or_default()
                .push(name.clone());
            let label = match action {
                ContainerAction::Restart => c.clone(),
                ContainerAction::Create => format!("+{c}"),
                ContainerAction::Remove => format!("-{c}"),
            };
            per_host.entry(name.clone()).or_default().1.insert(label);
        }
    }
    summary.hosts_changed = per_host.len();

    let mut files: Vec<FileChange> = groups.into_values().collect();
    for f in &mut files {
        sort_hosts(&mut f.hosts);
    }
    files.sort_by(|a, b| {
        (&a.path, natural_key(&a.hosts[0])).cmp(&(&b.path, natural_key(&b.hosts[0])))
    });
    let directories: Vec<DirChange> = dirs
        .into_iter()
        .map(|((path, action, before, after), mut hosts)| {
            sort_hosts(&mut hosts);
            DirChange {
                path,
                action,
                hosts,
                before,
                after,
            }
        })
        .collect();
    let mut containers: Vec<ContainerChange> = containers
        .into_iter()
        .map(|((container, action), mut hosts)| {
            sort_hosts(&mut hosts);
            ContainerChange {
                container,
                action,
                hosts,
            }
        })
        .collect();
    containers.sort_by(|a, b| (a.action, &a.container).cmp(&(b.action, &b.container)));

    let mut by_set: BTreeMap<(Vec<String>, Vec<String>), Vec<String>> = BTreeMap::new();
    for (host, (paths, restarts)) in per_host {
        by_set
            .entry((paths.into_iter().collect(), restarts.into_iter().collect()))
            .or_default()
            .push(host);
    }
    let mut host_groups: Vec<HostGroup> = by_set
        .into_iter()
        .map(|((files, restarts), mut hosts)| {
            sort_hosts(&mut hosts);
            HostGroup {
                hosts,
                files,
                restarts,
            }
        })
        .collect();
    host_groups.sort_by_key(|g| natural_key(&g.hosts[0]));

    Report {
        format: FORMAT,
        kind: ReportKind::Diff,
        inventory: inventory.to_string(),
        base: base.label.clone(),
        head: head.label.clone(),
        hosts_added,
        hosts_removed,
        files,
        directories,
        containers,
        host_groups,
        nodes: Vec::new(),
        summary,
        undercloud: head
            .state
            .hosts
            .values()
            .chain(base.state.hosts.values())
            .find(|h| h.plane == crate::state::Plane::Undercloud)
            .map(|h| h.name.clone()),
    }
}

/// A file's content as the diff shows it: a container definition without its config
/// hash, which changes whenever any of its files does and is reported as a restart.
fn shown(f: &DesiredFile) -> std::borrow::Cow<'_, str> {
    match f.kind {
        FileKind::Container { .. } => f
            .content
            .lines()
            .filter(|l| !l.contains("\"provision.config_hash\""))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into(),
        _ => f.content.as_str().into(),
    }
}

/// The forms of every secret value that differs between the sides: (base, head).
fn secret_changes(base: &Secrets, head: &Secrets) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    for name in base.names() {
        if let (Some(b), Some(h)) = (base.get(name), head.get(name)) {
            if b != h {
                out.push((forms_of(b.expose()), forms_of(h.expose())));
            }
        }
    }
    out
}

/// A unified diff (3 lines of context) and the changed lines alone.
fn unified(path: &str, before: &str, after: &str) -> (String, String) {
    let diff = TextDiff::from_lines(before, after);
    let mut changed = String::new();
    for change in diff.iter_all_changes() {
        match change.tag() {
            ChangeTag::Delete => {
                changed.push('-');
                changed.push_str(change.value());
            }
            ChangeTag::Insert => {
                changed.push('+');
                changed.push_str(change.value());
            }
            ChangeTag::Equal => {}
        }
    }
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("a{path}"), &format!("b{path}"))
        .to_string();
    (text, changed)
}

/// Compacts host names: `c-0, c-1, c-2, c-5, x` -> `c-[0-2,5], x`.
pub fn compact_hosts(hosts: &[String]) -> String {
    let mut by_prefix: Vec<(String, Vec<u64>)> = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    for h in hosts {
        let (prefix, num, _) = natural_key(h);
        if prefix.len() == h.len()
            || h[prefix.len()..].starts_with('0') && h.len() - prefix.len() > 1
        {
            plain.push(h.clone());
            continue;
        }
        match by_prefix.iter_mut().find(|(p, _)| *p == prefix) {
            Some((_, nums)) => nums.push(num),
            None => by_prefix.push((prefix, vec![num])),
        }
    }
    let mut parts = Vec::new();
    for (prefix, mut nums) in by_prefix {
        nums.sort();
        if nums.len() == 1 {
            parts.push(format!("{prefix}{}", nums[0]));
            continue;
        }
        let mut ranges = Vec::new();
        let mut start = nums[0];
        let mut prev = nums[0];
        for &n in &nums[1..] {
            if n != prev + 1 {
                ranges.push(if start == prev {
                    start.to_string()
                } else {
                    format!("{start}-{prev}")
                });
                start = n;
            }
            prev = n;
        }
        ranges.push(if start == prev {
            start.to_string()
        } else {
            format!("{start}-{prev}")
        });
        parts.push(format!("{prefix}[{}]", ranges.join(",")));
    }
    parts.extend(plain);
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_numbered_hosts() {
        let hosts: Vec<String> = ["c-0", "c-1", "c-2", "c-5", "c-10", "c-11", "uc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(compact_hosts(&hosts), "c-[0-2,5,10-11], uc");
        assert_eq!(compact_hosts(&["c-3".to_string()]), "c-3");
    }

    #[test]
    fn natural_order() {
        let mut v: Vec<String> = ["n-10", "n-2", "n-1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_hosts(&mut v);
        assert_eq!(v, ["n-1", "n-2", "n-10"]);
    }
}
