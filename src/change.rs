//! The changes apply makes: one typed value per thing it does to a host, decided once
//! by [`crate::plan::decide()`] and then shown by `plan` and executed by `apply`. Their counts
//! ([`Counts`]) are printed by both in the same words, so the plan's closing line and
//! apply's summary can be compared number for number.

use std::fmt;

use serde::Serialize;

/// One change to one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A managed container no longer desired on the host: stopped and removed, with
    /// its configuration folder, its definition and its unit (its logs stay).
    RemoveContainer { container: String },
    /// A directory to create, or whose mode or owner to fix.
    Directory { path: String, fix: DirFix },
    /// A file to write (create, or replace its content, mode or owner).
    WriteFile { path: String, fix: FileFix },
    /// A file in a folder that holds only its desired files, no longer desired there
    /// (a retired key).
    RemoveFile { path: String },
    /// A container unit written: systemd reads the units again and enables it.
    EnableUnit { unit: String, container: String },
    /// A one-shot task to run, in its deploy step, before the step's containers.
    Task {
        task: String,
        step: u8,
        order: u16,
        why: TaskWhy,
    },
    /// A container to create, recreate or start, in its deploy step.
    Container {
        container: String,
        step: u8,
        op: ContainerOp,
    },
}

/// Why a task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "because", rename_all = "snake_case")]
pub enum TaskWhy {
    /// It never succeeded on this host.
    NeverRun,
    /// Its command, user, environment or mounts changed.
    DefinitionChanged,
    /// A file it mounts changed.
    FilesChanged,
    /// Its image (tag) changed: an upgrade runs it again.
    ImageChanged { from: String, to: String },
    /// The hosts of a service it depends on changed (`rerun_on_hosts_of`).
    HostsChanged {
        services: Vec<String>,
        added: Vec<String>,
        removed: Vec<String>,
    },
}

impl fmt::Display for TaskWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskWhy::NeverRun => f.write_str("never run"),
            TaskWhy::DefinitionChanged => f.write_str("its definition changed"),
            TaskWhy::FilesChanged => f.write_str("a file it mounts changed"),
            TaskWhy::ImageChanged { from, to } => {
                let tag = |s: &str| {
                    s.rsplit_once(':')
                        .map(|(_, t)| t.to_string())
                        .unwrap_or_else(|| s.to_string())
                };
                write!(f, "image tag changed ({} -> {})", tag(from), tag(to))
            }
            TaskWhy::HostsChanged {
                services,
                added,
                removed,
            } => {
                write!(f, "the hosts of {} changed", services.join(", "))?;
                let mut parts = Vec::new();
                if !added.is_empty() {
                    parts.push(format!("+{}", added.join(" +")));
                }
                if !removed.is_empty() {
                    parts.push(format!("-{}", removed.join(" -")));
                }
                if !parts.is_empty() {
                    write!(f, " ({})", parts.join(" "))?;
                }
                Ok(())
            }
        }
    }
}

/// What is wrong with a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileFix {
    /// What the host has at the path: `None` when nothing, else `stat`'s kind.
    pub found: Option<String>,
    /// Its content differs (or it is not a regular file).
    pub content: bool,
    /// `[found, desired]` modes, when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<[u32; 2]>,
    /// `[found, desired]` as `owner:group`, when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<[String; 2]>,
}

impl FileFix {
    pub fn creates(&self) -> bool {
        self.found.is_none()
    }
}

/// What is wrong with a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirFix {
    /// What the host has at the path: `None` when nothing, else `stat`'s kind.
    pub found: Option<String>,
    /// `[found, desired]` modes (octal, as written), when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<[String; 2]>,
    /// `[found, desired]` as `owner:group`, when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<[String; 2]>,
}

impl DirFix {
    pub fn creates(&self) -> bool {
        self.found.is_none()
    }
}

/// What apply does to a desired container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ContainerOp {
    /// Not on the host: `podman run`.
    Create,
    /// Its config hash differs (its files, image or definition changed): removed and
    /// run again.
    Recreate { found_hash: String },
    /// Same config hash, but not running (a reboot, a crash): `podman start`.
    Start { found_state: String },
    /// Same config hash and running, but its healthcheck fails (`unhealthy`): removed
    /// and run again, and its healthcheck waited for.
    Recover { found_health: String },
    /// Same config hash and running, but its healthcheck has not passed since it
    /// started (`starting`: an apply that ended before waiting for it): its
    /// healthcheck waited for.
    AwaitHealth { found_health: String },
}

impl ContainerOp {
    /// `create`, `recreate` or `start`: the verb of events and messages.
    pub fn verb(&self) -> &'static str {
        match self {
            ContainerOp::Create => "create",
            ContainerOp::Recreate { .. } => "recreate",
            ContainerOp::Start { .. } => "start",
            ContainerOp::Recover { .. } => "recreate",
            ContainerOp::AwaitHealth { .. } => "check health of",
        }
    }
}

impl Change {
    /// The deploy step the change runs in: `None` for host preparation (before the
    /// steps: removals, directories, files, units).
    pub fn step(&self) -> Option<u8> {
        match self {
            Change::Container { step, .. } | Change::Task { step, .. } => Some(*step),
            _ => None,
        }
    }

    /// What it acts on: a path, a container or a unit.
    pub fn target(&self) -> &str {
        match self {
            Change::RemoveContainer { container } => container,
            Change::Directory { path, .. }
            | Change::WriteFile { path, .. }
            | Change::RemoveFile { path } => path,
            Change::EnableUnit { unit, .. } => unit,
            Change::Task { task, .. } => task,
            Change::Container { container, .. } => container,
        }
    }
}

/// How many changes of each kind: what a plan will do, or what an apply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    pub nodes_provisioned: usize,
    pub files_written: usize,
    #[serde(default)]
    pub files_removed: usize,
    pub directories_fixed: usize,
    #[serde(default)]
    pub tasks_run: usize,
    pub containers_created: usize,
    pub containers_recreated: usize,
    pub containers_started: usize,
    pub containers_removed: usize,
    pub units_enabled: usize,
    pub nodes_powered_off: usize,
    /// Running containers whose healthcheck had not passed: waited for.
    #[serde(default)]
    pub health_awaited: usize,
}

/// Whether [`Counts`] are said of what will happen or of what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tense {
    /// `3 files to write` (a plan).
    Planned,
    /// `3 files written` (an apply).
    Done,
}

impl Counts {
    /// The counts of `changes`.
    pub fn of<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Counts {
        let mut c = Counts::default();
        for ch in changes {
            c.add(ch);
        }
        c
    }

    /// Counts one change.
    pub fn add(&mut self, change: &Change) {
        match change {
            Change::RemoveContainer { .. } => self.containers_removed += 1,
            Change::Directory { .. } => self.directories_fixed += 1,
            Change::WriteFile { .. } => self.files_written += 1,
            Change::RemoveFile { .. } => self.files_removed += 1,
            Change::EnableUnit { .. } => self.units_enabled += 1,
            Change::Task { .. } => self.tasks_run += 1,
            Change::Container { op, .. } => match op {
                ContainerOp::Create => self.containers_created += 1,
                ContainerOp::Recreate { .. } => self.containers_recreated += 1,
                ContainerOp::Start { .. } => self.containers_started += 1,
                ContainerOp::Recover { .. } => self.containers_recreated += 1,
                ContainerOp::AwaitHealth { .. } => self.health_awaited += 1,
            },
        }
    }

    /// Adds `other`.
    pub fn merge(&mut self, other: &Counts) {
        self.nodes_provisioned += other.nodes_provisioned;
        self.files_written += other.files_written;
        self.files_removed += other.files_removed;
        self.directories_fixed += other.directories_fixed;
        self.tasks_run += other.tasks_run;
        self.containers_created += other.containers_created;
        self.containers_recreated += other.containers_recreated;
        self.containers_started += other.containers_started;
        self.containers_removed += other.containers_removed;
        self.units_enabled += other.units_enabled;
        self.nodes_powered_off += other.nodes_powered_off;
        self.health_awaited += other.health_awaited;
    }

    pub fn total(&self) -> usize {
        self.nodes_provisioned
            + self.files_written
            + self.files_removed
            + self.directories_fixed
            + self.tasks_run
            + self.containers_created
            + self.containers_recreated
            + self.containers_started
            + self.containers_removed
            + self.units_enabled
            + self.nodes_powered_off
            + self.health_awaited
    }

    /// The counts in words, in one fixed order, the same for a plan and an apply:
    /// `2 nodes to provision, 6 files to write, 0 directories to fix, 3 containers to
    /// recreate, 1 to start` or `... 6 files written, 0 directories fixed, ...`. Files
    /// and directories are always said; the others when not zero.
    pub fn phrase(&self, tense: Tense) -> String {
        self.words(tense, true)
    }

    /// As [`Counts::phrase`], but only what is not zero (`no change` for nothing): the
    /// summary of one host's phase.
    pub fn brief(&self, tense: Tense) -> String {
        if self.total() == 0 {
            return "no change".into();
        }
        self.words(tense, false)
    }

    fn words(&self, tense: Tense, files_always: bool) -> String {
        let done = tense == Tense::Done;
        let item = |n: usize, noun: &str, plan: &str, did: &str| {
            format!("{} {}", plural(n, noun), if done { did } else { plan })
        };
        let mut parts = Vec::new();
        if self.nodes_provisioned > 0 {
            parts.push(item(
                self.nodes_provisioned,
                "node",
                "to provision",
                "provisioned",
            ));
        }
        if files_always || self.files_written > 0 {
            parts.push(item(self.files_written, "file", "to write", "written"));
        }
        if self.files_removed > 0 {
            parts.push(item(self.files_removed, "file", "to remove", "removed"));
        }
        if files_always || self.directories_fixed > 0 {
            parts.push(item(self.directories_fixed, "directory", "to fix", "fixed"));
        }
        if self.tasks_run > 0 {
            parts.push(item(self.tasks_run, "task", "to run", "run"));
        }
        // Containers: the first kind said carries the noun, the others only the verb.
        let mut noun = true;
        for (n, plan, did) in [
            (self.containers_created, "to create", "created"),
            (self.containers_recreated, "to recreate", "recreated"),
            (self.containers_started, "to start", "started"),
            (self.containers_removed, "to remove", "removed"),
        ] {
            if n == 0 {
                continue;
            }
            let verb = if done { did } else { plan };
            parts.push(if noun {
                format!("{} {verb}", plural(n, "container"))
            } else {
                format!("{n} {verb}")
            });
            noun = false;
        }
        if self.health_awaited > 0 {
            parts.push(item(
                self.health_awaited,
                "healthcheck",
                "to wait for",
                "passed",
            ));
        }
        if self.units_enabled > 0 {
            parts.push(item(self.units_enabled, "unit", "to enable", "enabled"));
        }
        if self.nodes_powered_off > 0 {
            parts.push(item(
                self.nodes_powered_off,
                "removed node",
                "to power off",
                "powered off",
            ));
        }
        parts.join(", ")
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.phrase(Tense::Done))
    }
}

/// `1 file`, `2 files`, `3 directories`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if let Some(stem) = noun.strip_suffix('y') {
        format!("{n} {stem}ies")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_and_apply_say_the_same_counts() {
        let changes = vec![
            Change::WriteFile {
                path: "/a".into(),
                fix: FileFix {
                    found: None,
                    content: true,
                    mode: None,
                    owner: None,
                },
            },
            Change::Container {
                container: "a".into(),
                step: 2,
                op: ContainerOp::Recreate {
                    found_hash: "x".into(),
                },
            },
            Change::Container {
                container: "b".into(),
                step: 2,
                op: ContainerOp::Start {
                    found_state: "exited".into(),
                },
            },
            Change::RemoveContainer {
                container: "c".into(),
            },
        ];
        let c = Counts::of(&changes);
        assert_eq!(c.total(), 4);
        assert_eq!(
            c.phrase(Tense::Planned),
            "1 file to write, 0 directories to fix, 1 container to recreate, 1 to start, 1 to remove"
        );
        assert_eq!(
            c.phrase(Tense::Done),
            "1 file written, 0 directories fixed, 1 container recreated, 1 started, 1 removed"
        );
        assert_eq!(
            c.brief(Tense::Done),
            "1 file written, 1 container recreated, 1 started, 1 removed"
        );
        assert_eq!(Counts::default().brief(Tense::Done), "no change");
        let mut twice = c;
        twice.merge(&c);
        assert_eq!(twice.files_written, 2);
        assert_eq!(plural(3, "directory"), "3 directories");
    }

    #[test]
    fn one_and_many() {
        assert_eq!(plural(0, "host"), "0 hosts");
        assert_eq!(plural(1, "host"), "1 host");
        assert_eq!(plural(2, "host"), "2 hosts");
        assert_eq!(plural(1, "directory"), "1 directory");
        assert_eq!(plural(2, "file change"), "2 file changes");
        assert_eq!(plural(2, "provisioned node"), "2 provisioned nodes");
        let one = Counts {
            files_written: 1,
            directories_fixed: 1,
            tasks_run: 1,
            containers_started: 1,
            units_enabled: 1,
            health_awaited: 1,
            ..Counts::default()
        };
        assert_eq!(
            one.phrase(Tense::Planned),
            "1 file to write, 1 directory to fix, 1 task to run, 1 container to start, 1 healthcheck to wait for, 1 unit to enable"
        );
        let mut two = one;
        two.merge(&one);
        assert_eq!(
            two.phrase(Tense::Done),
            "2 files written, 2 directories fixed, 2 tasks run, 2 containers started, 2 healthchecks passed, 2 units enabled"
        );
        assert_eq!(
            Counts::default().phrase(Tense::Planned),
            "0 files to write, 0 directories to fix"
        );
    }
}
