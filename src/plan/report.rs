//! A plan as a person or a bot reads it: the same [`Report`] as `provision diff` (one
//! entry per change, grouped across hosts, secrets redacted), built from the plan's own
//! changes, so that what it lists and counts is exactly what apply does.

use std::collections::BTreeMap;

use crate::diff::redact::{Redactor, Version};
use crate::diff::{
    self, ContainerAction, FileAction, FileItem, Grouper, NodeChange, Report, ReportKind,
    RevisionInfo,
};
use crate::facts::ActualHost;
use crate::inventory::Secrets;
use crate::state::{DesiredFile, DesiredState, FileKind};

use super::{Change, ContainerOp, DirFix, FileFix, NodeAction, Plan};

/// The report of `plan`: every change of every host, with the diff of each file from
/// the host's content (fetched by the survey) to the desired one.
pub fn report(
    inventory: &str,
    plan: &Plan,
    desired: &DesiredState,
    facts: &BTreeMap<String, ActualHost>,
    secrets: &Secrets,
) -> Report {
    let mut grouper = Grouper::default();
    let known = Redactor::new(secrets);
    let empty = ActualHost::default();
    for (name, hp) in &plan.hosts {
        let Some(hs) = desired.hosts.get(name) else {
            continue;
        };
        let found = facts.get(name).unwrap_or(&empty);
        for change in &hp.changes {
            match change {
                Change::WriteFile { path, fix } => {
                    if let Some(f) = hs.files.get(path) {
                        grouper.file(file_item(name, f, fix, found, &known));
                    }
                }
                Change::Directory { path, fix } => {
                    let after = hs
                        .directories
                        .iter()
                        .find(|d| &d.path == path)
                        .map(|d| format!("{} {}:{}", d.mode, d.owner, d.group));
                    let (action, before) = dir_before(fix, found.paths.get(path));
                    grouper.dir(name, path, action, before, after);
                }
                Change::RemoveFile { path } => grouper.file(FileItem {
                    host: name.clone(),
                    path: path.clone(),
                    service: "(no longer desired here)".into(),
                    action: FileAction::Delete,
                    before: "(its content is not shown)\n".into(),
                    after: String::new(),
                    secret_changed: false,
                    mode: None,
                    owner: None,
                    note: Some("no longer desired in its folder: removed".into()),
                }),
                Change::EnableUnit { unit, .. } => grouper.unit(name, unit),
                Change::Task { task, why, .. } => grouper.task(name, task, &why.to_string()),
                Change::RemoveContainer { container } => {
                    grouper.container(name, container, ContainerAction::Remove)
                }
                Change::Container { container, op, .. } => {
                    let action = match op {
                        ContainerOp::Create => ContainerAction::Create,
                        ContainerOp::Recreate { .. } => ContainerAction::Restart,
                        ContainerOp::Start { .. } => ContainerAction::Start,
                        ContainerOp::Recover { .. } => ContainerAction::Recover,
                        ContainerOp::AwaitHealth { .. } => ContainerAction::AwaitHealth,
                    };
                    grouper.container(name, container, action);
                }
            }
        }
    }
    let mut g = grouper.finish();
    g.summary.nodes_to_provision = plan
        .nodes
        .iter()
        .filter(|n| matches!(n.action, NodeAction::Provision { .. }))
        .count();
    let mut host_counts: BTreeMap<String, crate::change::Counts> = plan
        .hosts
        .values()
        .map(|h| (h.host.clone(), h.counts()))
        .collect();
    for n in &plan.nodes {
        if matches!(n.action, NodeAction::Provision { .. }) {
            host_counts
                .entry(n.node.clone())
                .or_default()
                .nodes_provisioned += 1;
        }
    }
    // As apply counts them: its hosts with a change (a node to provision is one).
    g.summary.hosts_changed = plan.hosts_changed();
    g.summary.hosts_total = plan.hosts.len();
    Report {
        format: diff::FORMAT,
        kind: ReportKind::Plan,
        inventory: inventory.to_string(),
        base: RevisionInfo {
            rev: "actual state".into(),
            commit: None,
        },
        head: RevisionInfo {
            rev: "desired state".into(),
            commit: None,
        },
        hosts_added: Vec::new(),
        hosts_removed: Vec::new(),
        files: g.files,
        directories: g.directories,
        containers: g.containers,
        units: g.units,
        tasks: g.tasks,
        host_groups: g.host_groups,
        nodes: plan.nodes.iter().map(node_change).collect(),
        summary: g.summary,
        changes: Some(plan.counts()),
        undercloud: desired
            .hosts
            .values()
            .find(|h| h.plane == crate::state::Plane::Undercloud)
            .map(|h| h.name.clone()),
        roles: plan
            .hosts
            .values()
            .map(|h| (h.host.clone(), h.role.clone()))
            .collect(),
        host_counts,
    }
}

fn node_change(n: &super::NodePlan) -> NodeChange {
    let (change, action) = match &n.action {
        NodeAction::Provision { how } => (
            "provision",
            format!("{how}; its changes below assume an empty machine, and are decided again from what it holds once it is up"),
        ),
        NodeAction::Remove { power_off: true } => (
            "remove",
            "provisioned, no longer in the inventory: powered off through its BMC and forgotten".into(),
        ),
        NodeAction::Remove { power_off: false } => (
            "remove",
            "provisioned, no longer in the inventory: left as it is (`apply --power-off-removed` powers it off through its BMC and forgets it)".into(),
        ),
    };
    NodeChange {
        node: n.node.clone(),
        role: n.role.clone(),
        change: change.into(),
        action,
    }
}

/// The old side of a plan, as a hidden line names it.
pub const HOST_FILE: &str = "the host's file";

/// One file change as the report shows it: the host's content as found and the desired
/// one, redacted by [`diff::redact::file`] as `provision diff` redacts (every known
/// secret value shown as `(secret)`; a line of the host's whose key carries a secret in
/// the desired file hidden, as it may hold an old value; every other line shown).
fn file_item(
    host: &str,
    f: &DesiredFile,
    fix: &FileFix,
    found: &ActualHost,
    known: &Redactor,
) -> FileItem {
    let desired = || Version {
        content: &f.content,
        secrets: known,
    };
    let found_text = found
        .contents
        .get(&f.path)
        .map(|bytes| String::from_utf8_lossy(bytes));
    let old = match &found_text {
        Some(text) if fix.content && !fix.creates() => Some(Version {
            content: text,
            secrets: known,
        }),
        _ => None,
    };
    let (shown_before, after) = diff::redact::file(&f.kind, old, Some(desired()), HOST_FILE);
    let before = if fix.creates() {
        String::new()
    } else if !fix.content {
        after.clone()
    } else if found_text.is_some() {
        shown_before
    } else {
        match &fix.found {
            Some(kind) if !kind.starts_with("regular") => {
                format!("(not a regular file: {kind})\n")
            }
            _ => "(the host's content was not read)\n".into(),
        }
    };
    // A definition whose config hash alone changed: written, and the container restarts.
    // Any other file whose hash differs though no line shown does is still a change the
    // plan must show: the difference is in what is not shown (a hidden secret's line), or
    // in the files stamp's recorded hash (the quick check), which --full-check reads anew.
    let note = (fix.content && before == after).then(|| {
        if matches!(f.kind, FileKind::Container { .. }) {
            "only its config hash changes (the container restarts)".to_string()
        } else {
            "its hash differs from the desired one but no line shown does: the difference is              in a hidden line, or in the hash the files stamp recorded (`plan --full-check`              hashes it anew); rewritten"
                .to_string()
        }
    });
    FileItem {
        host: host.to_string(),
        path: f.path.clone(),
        service: f.service.clone(),
        action: if fix.creates() {
            FileAction::Create
        } else {
            FileAction::Modify
        },
        before,
        after,
        secret_changed: false,
        mode: fix
            .mode
            .map(|[a, b]| [format!("{a:04o}"), format!("{b:04o}")]),
        owner: fix.owner.clone(),
        note,
    }
}

/// The action and the `mode owner:group` found of a directory change.
fn dir_before(
    fix: &DirFix,
    found: Option<&crate::facts::ActualPath>,
) -> (FileAction, Option<String>) {
    match (fix.creates(), found) {
        (true, _) | (false, None) => (FileAction::Create, None),
        (false, Some(a)) if !a.is_dir() => (FileAction::Modify, Some(format!("(a {})", a.kind))),
        (false, Some(a)) => (
            FileAction::Modify,
            Some(format!("{:04o} {}:{}", a.mode, a.user, a.group)),
        ),
    }
}
