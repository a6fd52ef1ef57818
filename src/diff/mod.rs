//! Comparing two desired states: what a change to the inventory, roles or templates does
//! to every host, with identical changes on many hosts grouped into one, and secrets
//! redacted. Pure: `provision diff` feeds it two evaluations (two git revisions).

pub mod format;
pub mod group;
pub mod redact;
pub mod revisions;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::change::Counts;
use crate::inventory::finder::Finder;
use crate::inventory::secrets::forms_of;
use crate::inventory::Secrets;
use crate::state::{DesiredFile, DesiredState, FileKind, HostState};
pub use group::{FileItem, Grouper};

/// Version of the JSON format (docs/diff.md).
pub const FORMAT: u32 = 1;

/// The old side of a diff, as a hidden line names it.
pub const BASE_FILE: &str = "the base revision's file";

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
    /// Recreated: its configuration changed.
    Restart,
    /// Started: the same configuration, but not running (plans only).
    Start,
    /// Recreated: the same configuration, but running unhealthy (plans only).
    Recover,
    /// Its healthcheck waited for: running, the same configuration, but its
    /// healthcheck has not passed since it started (plans only).
    AwaitHealth,
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
    /// Why it changes when no line shown does (plans: a container definition whose
    /// config hash alone changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One container action, the same on every host listed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContainerChange {
    pub container: String,
    pub action: ContainerAction,
    pub hosts: Vec<String>,
}

/// A container unit to enable, the same on every host listed (plans only).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnitChange {
    pub unit: String,
    pub hosts: Vec<String>,
}

/// A task to run, for the same reason on every host listed (plans only).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskChange {
    /// `<service>/<task>`.
    pub task: String,
    /// Why it runs: `never run`, `image tag changed (a -> b)`, ...
    pub why: String,
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
    /// Stopped containers to start (plans only), counted per host.
    #[serde(default)]
    pub starts: usize,
    /// Running containers whose healthcheck to wait for (plans only), counted per host.
    #[serde(default)]
    pub health_waits: usize,
    /// Container units to enable (plans only), counted per host.
    #[serde(default)]
    pub units_enabled: usize,
    /// Tasks to run (plans only), counted per host.
    #[serde(default)]
    pub tasks_to_run: usize,
    pub containers_created: usize,
    pub containers_removed: usize,
    /// Nodes the bare-metal stage would bring up (plan only).
    #[serde(default)]
    pub nodes_to_provision: usize,
    /// Hosts the plan covers (plan only).
    #[serde(default)]
    pub hosts_total: usize,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<UnitChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskChange>,
    pub host_groups: Vec<HostGroup>,
    /// Nodes to provision first (plan only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeChange>,
    pub summary: Summary,
    /// What apply will do, counted as its summary counts what it did (plans only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Counts>,
    /// The undercloud's host name, where its services are compared too (their paths
    /// are under `/etc/undercloud`, not `/etc/overcloud`).
    #[serde(skip)]
    pub undercloud: Option<String>,
    /// Every host's role, for the summary's groups.
    #[serde(skip)]
    pub roles: BTreeMap<String, String>,
    /// What apply will do on each host (plans only), for the summary's groups.
    #[serde(skip)]
    pub host_counts: BTreeMap<String, Counts>,
}

impl Report {
    /// Whether anything changes. For a plan: whether apply would change anything (a
    /// removed node left as it is is shown, but is no change).
    pub fn has_changes(&self) -> bool {
        if let Some(c) = &self.changes {
            return c.total() > 0;
        }
        !(self.hosts_added.is_empty()
            && self.hosts_removed.is_empty()
            && self.files.is_empty()
            && self.directories.is_empty()
            && self.containers.is_empty()
            && self.units.is_empty()
            && self.tasks.is_empty()
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

fn owner_of(f: &DesiredFile) -> String {
    format!("{}:{}", f.owner, f.group)
}

fn host_ref(hs: &HostState) -> HostRef {
    HostRef {
        name: hs.name.clone(),
        role: hs.role.clone(),
        files: hs.files.len(),
        containers: hs.containers.len(),
    }
}

/// Compares `base` with `head`.
pub fn compare(inventory: &str, base: &Side, head: &Side) -> Report {
    let mut c = Comparison::new(base.secrets, head.secrets);
    let names: BTreeSet<&String> = base
        .state
        .hosts
        .keys()
        .chain(head.state.hosts.keys())
        .collect();
    for name in names {
        c.host(base.state.hosts.get(name), head.state.hosts.get(name));
    }
    c.finish(inventory, base.label.clone(), head.label.clone())
}

/// A comparison fed host by host (each host's two sides together, in any order), so
/// that no side's whole desired state need be held: what [`compare`] does for two
/// whole states, and `provision diff` as both revisions render.
pub struct Comparison {
    known: (redact::Redactor, redact::Redactor),
    /// Secret values that differ between the sides: (base value, head value).
    changed_secrets: Vec<(Vec<String>, Vec<String>)>,
    /// The forms of secret values that one side knows and the other does not.
    one_sided: OneSided,
    grouper: Grouper,
    hosts_added: Vec<HostRef>,
    hosts_removed: Vec<HostRef>,
    undercloud: [Option<String>; 2],
    roles: BTreeMap<String, String>,
}

impl Comparison {
    pub fn new(base: &Secrets, head: &Secrets) -> Comparison {
        Comparison {
            known: (redact::Redactor::new(base), redact::Redactor::new(head)),
            changed_secrets: secret_changes(base, head),
            one_sided: OneSided::of(base, head),
            grouper: Grouper::default(),
            hosts_added: Vec::new(),
            hosts_removed: Vec::new(),
            undercloud: [None, None],
            roles: BTreeMap::new(),
        }
    }

    /// One host: its state at the base revision and at the head (at least one).
    pub fn host(&mut self, base: Option<&HostState>, head: Option<&HostState>) {
        for (i, hs) in [base, head].into_iter().enumerate() {
            if let Some(hs) = hs {
                if hs.plane == crate::state::Plane::Undercloud {
                    self.undercloud[i].get_or_insert_with(|| hs.name.clone());
                }
                // The head's role where both have one.
                self.roles.insert(hs.name.clone(), hs.role.clone());
            }
        }
        match (base, head) {
            (Some(b), Some(h)) => {
                let sides = Compared {
                    known: &self.known,
                    changed_secrets: &self.changed_secrets,
                    one_sided: &self.one_sided,
                };
                compare_host(&b.name, b, h, &sides, &mut self.grouper);
            }
            (None, Some(h)) => self.hosts_added.push(host_ref(h)),
            (Some(b), None) => self.hosts_removed.push(host_ref(b)),
            (None, None) => {}
        }
    }

    /// The report of every host fed.
    pub fn finish(self, inventory: &str, base: RevisionInfo, head: RevisionInfo) -> Report {
        let Comparison {
            mut hosts_added,
            mut hosts_removed,
            grouper,
            undercloud: [uc_base, uc_head],
            roles,
            ..
        } = self;
        hosts_added.sort_by_key(|h| natural_key(&h.name));
        hosts_removed.sort_by_key(|h| natural_key(&h.name));
        let mut g = grouper.finish();
        g.summary.hosts_added = hosts_added.len();
        g.summary.hosts_removed = hosts_removed.len();
        Report {
            format: FORMAT,
            kind: ReportKind::Diff,
            inventory: inventory.to_string(),
            base,
            head,
            hosts_added,
            hosts_removed,
            files: g.files,
            directories: g.directories,
            containers: g.containers,
            units: g.units,
            tasks: g.tasks,
            host_groups: g.host_groups,
            nodes: Vec::new(),
            summary: g.summary,
            changes: None,
            undercloud: uc_head.or(uc_base),
            roles,
            host_counts: BTreeMap::new(),
        }
    }
}

/// What [`compare_host`] compares with: the two sides' secrets ready to redact, and
/// the forms of the secret values that differ between them.
struct Compared<'a> {
    known: &'a (redact::Redactor, redact::Redactor),
    changed_secrets: &'a [(Vec<String>, Vec<String>)],
    /// The forms only one side redacts.
    one_sided: &'a OneSided,
}

impl Compared<'_> {
    /// Whether a file modified, whose secrets, mode and owner are the same, shows the
    /// same on both sides, so that it is no change to report (a container definition
    /// whose config hash alone changed: its restart is reported with the containers).
    /// Its shown content is the same, and holds no value only one side would redact:
    /// both sides then find the same values at the same places, and every old line,
    /// equal to a new one, is shown as it is. Saves redacting both sides to find so.
    fn shows_the_same(&self, kind: &FileKind, before: &str, after: &str) -> bool {
        let text = shown(kind, before);
        text == shown(kind, after) && !self.one_sided.is_in(&text)
    }
}

/// The changes of one host present at both revisions.
fn compare_host(name: &str, b: &HostState, h: &HostState, c: &Compared, grouper: &mut Grouper) {
    let changed_secrets = c.changed_secrets;
    let paths: BTreeSet<&String> = b.files.keys().chain(h.files.keys()).collect();
    for path in paths {
        let (bf, hf) = (b.files.get(path), h.files.get(path));
        let action = match (bf, hf) {
            (Some(x), Some(y))
                if x.content == y.content
                    && x.mode == y.mode
                    && x.owner == y.owner
                    && x.group == y.group =>
            {
                continue
            }
            (Some(_), Some(_)) => FileAction::Modify,
            (None, Some(_)) => FileAction::Create,
            (Some(_), None) => FileAction::Delete,
            (None, None) => continue,
        };
        let secret_changed = action == FileAction::Modify
            && changed_secrets.iter().any(|(bv, hv)| {
                bf.map(|f| bv.iter().any(|form| f.content.contains(form.as_str())))
                    .unwrap_or(false)
                    || hf
                        .map(|f| hv.iter().any(|form| f.content.contains(form.as_str())))
                        .unwrap_or(false)
            });
        let pair = |get: fn(&DesiredFile) -> String| match (bf, hf) {
            (Some(x), Some(y)) => {
                let (a, b) = (get(x), get(y));
                (a != b).then_some([a, b])
            }
            _ => None,
        };
        let Some(kind) = hf.or(bf).map(|f| &f.kind) else {
            continue;
        };
        let (mode, owner) = (pair(|f| format!("{:04o}", f.mode)), pair(owner_of));
        if let (Some(x), Some(y)) = (bf, hf) {
            // What the grouper leaves out: nothing shown changes.
            if !secret_changed
                && mode.is_none()
                && owner.is_none()
                && c.shows_the_same(kind, &x.content, &y.content)
            {
                continue;
            }
        }
        // The same redaction as a plan's, by line: the base's lines that may hold a
        // secret the head has under the same key are hidden.
        let (before, after) = redact::file(
            kind,
            bf.map(|f| redact::Version {
                content: &f.content,
                secrets: &c.known.0,
            }),
            hf.map(|f| redact::Version {
                content: &f.content,
                secrets: &c.known.1,
            }),
            BASE_FILE,
        );
        grouper.file(FileItem {
            host: name.to_string(),
            path: path.clone(),
            service: hf.or(bf).map(|f| f.service.clone()).unwrap_or_default(),
            action,
            before,
            after,
            secret_changed,
            mode,
            owner,
            note: None,
        });
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
        grouper.dir(name, path, action, before.cloned(), after.cloned());
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
        grouper.container(name, c, action);
    }
}

/// A file's content as diffs show it: a container definition without its config
/// hash, which changes whenever any of its files does and is reported as a restart.
pub fn shown<'a>(kind: &FileKind, content: &'a str) -> std::borrow::Cow<'a, str> {
    match kind {
        FileKind::Container { .. } => {
            let mut out = String::with_capacity(content.len());
            for l in content
                .lines()
                .filter(|l| !l.contains("\"provision.config_hash\""))
            {
                out.push_str(l);
                out.push('\n');
            }
            out.into()
        }
        _ => content.into(),
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

/// The forms of secret values that one side has and the other does not (a secret
/// added, removed or changed).
struct OneSided {
    forms: Vec<String>,
    /// `None` without forms, or if it could not be built: each is looked for in turn.
    finder: Option<Finder>,
}

impl OneSided {
    fn of(base: &Secrets, head: &Secrets) -> OneSided {
        let (b, h) = (base.all_forms(), head.all_forms());
        let forms: Vec<String> = b
            .iter()
            .filter(|f| !h.contains(f))
            .chain(h.iter().filter(|f| !b.contains(f)))
            .cloned()
            .collect();
        let finder = Finder::new(&forms);
        OneSided { forms, finder }
    }

    /// Whether `text` holds any of them.
    fn is_in(&self, text: &str) -> bool {
        match &self.finder {
            Some(f) => f.is_in(text),
            None => self.forms.iter().any(|f| text.contains(f.as_str())),
        }
    }
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
    use super::group::sort_hosts;
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
    fn a_file_shows_the_same_without_a_value_only_one_side_redacts() {
        let secrets = |v: &str| {
            let m = BTreeMap::from([("db".to_string(), v.to_string())]);
            Secrets::default().with_generated(&m)
        };
        let (base, head) = (secrets("old-pass-1"), secrets("new-pass-2"));
        let known = (redact::Redactor::new(&base), redact::Redactor::new(&head));
        let one_sided = OneSided::of(&base, &head);
        let c = Compared {
            known: &known,
            changed_secrets: &[],
            one_sided: &one_sided,
        };
        let kind = FileKind::Container {
            container: "nova_compute".into(),
        };
        let def = |hash: &str, env: &str| {
            format!("{{\n  \"provision.config_hash\": \"{hash}\",\n  \"env\": \"{env}\"\n}}\n")
        };
        // The config hash alone changed: nothing shown does.
        assert!(c.shows_the_same(&kind, &def("a", "x"), &def("b", "x")));
        assert!(!c.shows_the_same(&kind, &def("a", "x"), &def("b", "y")));
        // The base redacts the old value, the head does not: shown differently.
        assert!(!c.shows_the_same(&kind, &def("a", "old-pass-1"), &def("b", "old-pass-1")));
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
