//! Grouping per-host changes into a [`Report`](super::Report): the same change on many hosts is one
//! entry listing them, hosts with the same set of changes form one group, and the
//! summary counts per host. Fed by [`super::compare`] (two revisions) and by
//! [`crate::plan::report`] (a plan): both show changes the same way.

use std::collections::{BTreeMap, BTreeSet};

use similar::{ChangeTag, TextDiff};

use super::{
    natural_key, ContainerAction, ContainerChange, DirChange, FileAction, FileChange, HostGroup,
    Summary, TaskChange, UnitChange,
};

/// One change to one file on one host.
#[derive(Debug, Clone)]
pub struct FileItem {
    pub host: String,
    pub path: String,
    pub service: String,
    pub action: FileAction,
    /// The content before and after, as shown (secrets already redacted).
    pub before: String,
    pub after: String,
    pub secret_changed: bool,
    pub mode: Option<[String; 2]>,
    pub owner: Option<[String; 2]>,
    /// Why the file changes when its shown content does not (a container definition
    /// whose config hash alone changed).
    pub note: Option<String>,
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

/// A directory change's grouping key: path, action, before and after.
type DirKey = (String, FileAction, Option<String>, Option<String>);

/// The grouped changes, ready for a [`super::Report`].
#[derive(Debug, Default)]
pub struct Grouped {
    pub files: Vec<FileChange>,
    pub directories: Vec<DirChange>,
    pub containers: Vec<ContainerChange>,
    pub units: Vec<UnitChange>,
    pub tasks: Vec<TaskChange>,
    pub host_groups: Vec<HostGroup>,
    pub summary: Summary,
}

/// Collects changes host by host, then groups them.
#[derive(Default)]
pub struct Grouper {
    files: BTreeMap<ChangeKey, FileChange>,
    containers: BTreeMap<(String, ContainerAction), Vec<String>>,
    dirs: BTreeMap<DirKey, Vec<String>>,
    units: BTreeMap<String, Vec<String>>,
    tasks: BTreeMap<(String, String), Vec<String>>,
    per_host: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
    summary: Summary,
}

impl Grouper {
    /// A file change. One whose shown content, mode and owner are all the same (a
    /// secret not known by value, say) is not a change and is left out.
    pub fn file(&mut self, item: FileItem) {
        let same = item.before == item.after;
        if same
            && !item.secret_changed
            && item.mode.is_none()
            && item.owner.is_none()
            && item.note.is_none()
            && item.action == FileAction::Modify
        {
            return;
        }
        self.summary.file_changes += 1;
        if item.secret_changed {
            self.summary.secrets_changed += 1;
        }
        // The lines compared once; the unified diff made only for the first host of a
        // change (the others share it) or where it is the key (a file created or
        // deleted).
        let lines = (!same).then(|| TextDiff::from_lines(&item.before, &item.after));
        let unified_text = |d: &TextDiff<'_, '_, str>| {
            d.unified_diff()
                .context_radius(3)
                .header(&format!("a{}", item.path), &format!("b{}", item.path))
                .to_string()
        };
        let (changed_lines, diff) = match (&lines, item.action) {
            (None, _) => (String::new(), Some(String::new())),
            (Some(d), FileAction::Modify) => (changed(d), None),
            (Some(d), _) => {
                let text = unified_text(d);
                (text.clone(), Some(text))
            }
        };
        let key = ChangeKey {
            path: item.path.clone(),
            action: item.action,
            changed_lines,
            secret_changed: item.secret_changed,
            mode: item.mode.clone(),
            owner: item.owner.clone(),
        };
        self.files
            .entry(key)
            .or_insert_with(|| FileChange {
                path: item.path.clone(),
                service: item.service,
                action: item.action,
                hosts: Vec::new(),
                diff: diff.unwrap_or_else(|| lines.as_ref().map(unified_text).unwrap_or_default()),
                secret_changed: item.secret_changed,
                mode: item.mode,
                owner: item.owner,
                note: item.note,
            })
            .hosts
            .push(item.host.clone());
        self.per_host
            .entry(item.host)
            .or_default()
            .0
            .insert(item.path);
    }

    /// A directory change: `before` and `after` as `mode owner:group`.
    pub fn dir(
        &mut self,
        host: &str,
        path: &str,
        action: FileAction,
        before: Option<String>,
        after: Option<String>,
    ) {
        self.summary.directory_changes += 1;
        self.dirs
            .entry((path.to_string(), action, before, after))
            .or_default()
            .push(host.to_string());
        self.per_host
            .entry(host.to_string())
            .or_default()
            .0
            .insert(format!("{path}/"));
    }

    /// A container change.
    pub fn container(&mut self, host: &str, name: &str, action: ContainerAction) {
        match action {
            ContainerAction::Restart | ContainerAction::Recover => self.summary.restarts += 1,
            ContainerAction::AwaitHealth => self.summary.health_waits += 1,
            ContainerAction::Start => self.summary.starts += 1,
            ContainerAction::Create => self.summary.containers_created += 1,
            ContainerAction::Remove => self.summary.containers_removed += 1,
        }
        self.containers
            .entry((name.to_string(), action))
            .or_default()
            .push(host.to_string());
        let label = match action {
            ContainerAction::Restart
            | ContainerAction::Start
            | ContainerAction::Recover
            | ContainerAction::AwaitHealth => name.to_string(),
            ContainerAction::Create => format!("+{name}"),
            ContainerAction::Remove => format!("-{name}"),
        };
        self.per_host
            .entry(host.to_string())
            .or_default()
            .1
            .insert(label);
    }

    /// A container unit to enable.
    pub fn unit(&mut self, host: &str, unit: &str) {
        self.summary.units_enabled += 1;
        self.units
            .entry(unit.to_string())
            .or_default()
            .push(host.to_string());
        self.per_host.entry(host.to_string()).or_default();
    }

    /// A task to run, and why.
    pub fn task(&mut self, host: &str, task: &str, why: &str) {
        self.summary.tasks_to_run += 1;
        self.tasks
            .entry((task.to_string(), why.to_string()))
            .or_default()
            .push(host.to_string());
        self.per_host
            .entry(host.to_string())
            .or_default()
            .1
            .insert(format!(">{task}"));
    }

    /// Groups what was collected.
    pub fn finish(self) -> Grouped {
        let mut summary = self.summary;
        summary.hosts_changed = self.per_host.len();
        let mut files: Vec<FileChange> = self.files.into_values().collect();
        for f in &mut files {
            sort_hosts(&mut f.hosts);
        }
        files.sort_by(|a, b| {
            (&a.path, natural_key(&a.hosts[0])).cmp(&(&b.path, natural_key(&b.hosts[0])))
        });
        let directories = self
            .dirs
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
        let mut containers: Vec<ContainerChange> = self
            .containers
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
        let units = self
            .units
            .into_iter()
            .map(|(unit, mut hosts)| {
                sort_hosts(&mut hosts);
                UnitChange { unit, hosts }
            })
            .collect();
        let tasks = self
            .tasks
            .into_iter()
            .map(|((task, why), mut hosts)| {
                sort_hosts(&mut hosts);
                TaskChange { task, why, hosts }
            })
            .collect();
        let mut by_set: BTreeMap<(Vec<String>, Vec<String>), Vec<String>> = BTreeMap::new();
        for (host, (paths, restarts)) in self.per_host {
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
        Grouped {
            files,
            directories,
            containers,
            units,
            tasks,
            host_groups,
            summary,
        }
    }
}

pub(super) fn sort_hosts(hosts: &mut [String]) {
    hosts.sort_by_key(|h| natural_key(h));
}

/// The changed lines alone of a diff: `-` before each line removed, `+` before each added.
fn changed(diff: &TextDiff<'_, '_, str>) -> String {
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
    changed
}
