//! An in-memory FAKE host and fleet, for tests of the stage engine (step order and
//! barriers, tolerated failures, resume, removals, the lock and the records) that run
//! in milliseconds with no machine. It is a stand-in, not a simulation of Linux: a
//! host is a map of files, directories and containers that the typed [`Command`]s
//! change, answering in the same line protocol as the real scripts ([`super::script`]),
//! so apply's parsing runs too. Faults make chosen actions fail. Every command run is
//! appended to a journal shared by the fleet's hosts, in order, so tests can check that
//! no step began anywhere before the previous one ended everywhere.
//!
//! The real path (SSH, shell, podman) is tested against the lab.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{ActionFailed, BringUp, BroughtUp, Command, HeldLock, Host, HostFuture, StepContainer};
use crate::baremetal::record::ProvisionedNode;
use crate::change::ContainerOp;
use crate::facts::{ActualContainer, ActualHost, ActualPath, ReadFacts};
use crate::host::lock::LockError;
use crate::model::Bmc;
use crate::report::Reporter;
use crate::state::{safe_container_name, HostState};
use crate::transport::{ExecOutput, TransportError, UploadFile};

/// A file on a fake host.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeFile {
    pub content: Vec<u8>,
    pub mode: u32,
    pub owner: String,
    pub group: String,
}

/// A container on a fake host.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeContainer {
    pub config_hash: String,
    /// `running` or `exited`.
    pub state: String,
    /// Changes every time it is created.
    pub id: u64,
    /// What its healthcheck last said, as podman shows it in the status line
    /// (`healthy`, `unhealthy`, `starting`), or empty (none ran).
    pub health: String,
}

/// What a fake host holds.
#[derive(Debug, Clone, Default)]
pub struct FakeState {
    pub files: BTreeMap<String, FakeFile>,
    /// Mode, owner, group.
    pub dirs: BTreeMap<String, (u32, String, String)>,
    pub containers: BTreeMap<String, FakeContainer>,
    pub units_enabled: BTreeSet<String>,
    /// Whether the running stamp was written.
    pub stamp: bool,
}

/// What fails on a fake host.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Reading its facts fails (it cannot be reached).
    pub unreachable: bool,
    /// Creating directories fails with this message.
    pub directories: Option<String>,
    /// Uploads fail with this message.
    pub upload: Option<String>,
    /// `podman run` of these containers fails with the message.
    pub container: BTreeMap<String, String>,
    /// These containers start but never pass their healthcheck.
    pub unhealthy: BTreeSet<String>,
    /// The bare-metal stage cannot bring it up (the message).
    pub bring_up: Option<String>,
    /// These tasks fail, with these output lines.
    pub task: BTreeMap<String, String>,
    /// While it runs this deploy step's containers, the run is interrupted (an
    /// operator's Ctrl-C arriving then).
    pub interrupt_in_step: Option<(u8, crate::interrupt::Interrupt)>,
}

/// One entry of the journal: the host and what it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub host: String,
    /// `facts`, `remove a,b`, `dirs 3`, `upload 5`, `units 1`, `step 2: create x`,
    /// `stamp`, `read /path`, `check`, `lock`, `unlock`.
    pub what: String,
}

/// The journal shared by a fleet's hosts.
pub type Journal = Arc<Mutex<Vec<Entry>>>;

/// A fake host.
pub struct FakeHost {
    name: String,
    pub state: Mutex<FakeState>,
    pub faults: Mutex<Faults>,
    journal: Journal,
    next_id: Arc<Mutex<u64>>,
    locks: Arc<Mutex<BTreeMap<String, String>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn sha256(b: &[u8]) -> String {
    crate::state::hex(&Sha256::digest(b))
}

impl FakeHost {
    fn new(name: &str, journal: Journal, next_id: Arc<Mutex<u64>>) -> FakeHost {
        FakeHost {
            name: name.to_string(),
            state: Mutex::new(FakeState::default()),
            faults: Mutex::new(Faults::default()),
            journal,
            next_id,
            locks: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// A copy of what it holds.
    pub fn snapshot(&self) -> FakeState {
        lock(&self.state).clone()
    }

    /// Changes what it holds (a container killed, a file edited by hand).
    pub fn with_state(&self, f: impl FnOnce(&mut FakeState)) {
        f(&mut lock(&self.state));
    }

    /// Changes its faults.
    pub fn set_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut lock(&self.faults));
    }

    /// Changes what it holds (drift, a reboot).
    pub fn alter(&self, f: impl FnOnce(&mut FakeState)) {
        f(&mut lock(&self.state));
    }

    fn note(&self, what: String) {
        lock(&self.journal).push(Entry {
            host: self.name.clone(),
            what,
        });
    }

    fn facts(&self, desired: &HostState, how: ReadFacts) -> ActualHost {
        let st = lock(&self.state);
        let mut a = ActualHost::default();
        let path =
            |kind: &str, mode: u32, owner: &str, group: &str, sha: Option<String>| ActualPath {
                kind: kind.into(),
                mode,
                uid: owner.into(),
                gid: group.into(),
                user: owner.into(),
                group: group.into(),
                sha256: sha,
            };
        for p in desired.files.keys() {
            if let Some(f) = st.files.get(p) {
                let sha = sha256(&f.content);
                let differs = desired.files[p].sha256() != sha;
                a.paths.insert(
                    p.clone(),
                    path("regular file", f.mode, &f.owner, &f.group, Some(sha)),
                );
                if how.contents && differs {
                    a.contents.insert(p.clone(), f.content.clone());
                }
            } else if let Some((m, o, g)) = st.dirs.get(p) {
                a.paths.insert(p.clone(), path("directory", *m, o, g, None));
            }
        }
        for d in &desired.directories {
            if let Some((m, o, g)) = st.dirs.get(&d.path) {
                a.paths
                    .insert(d.path.clone(), path("directory", *m, o, g, None));
            } else if let Some(f) = st.files.get(&d.path) {
                a.paths.insert(
                    d.path.clone(),
                    path("regular file", f.mode, &f.owner, &f.group, None),
                );
            }
        }
        for (n, c) in &st.containers {
            a.containers.insert(
                n.clone(),
                ActualContainer {
                    state: c.state.clone(),
                    config_hash: c.config_hash.clone(),
                    status: if c.health.is_empty() {
                        "Up".into()
                    } else {
                        format!("Up ({})", c.health)
                    },
                },
            );
        }
        a.from_stamp = how.trust_stamp && st.stamp;
        for d in &desired.exact_dirs {
            for p in st.files.keys() {
                if p.strip_prefix(d.as_str())
                    .map(|r| r.starts_with('/'))
                    .unwrap_or(false)
                {
                    a.listed.push(p.clone());
                }
            }
        }
        a
    }

    fn run_command(&self, command: &Command<'_>) -> ExecOutput {
        let mut out = ExecOutput {
            status: Some(0),
            ..Default::default()
        };
        let mut stdout = String::new();
        match command {
            Command::RemoveContainers { names, plane } => {
                self.note(format!("remove {}", names.join(",")));
                let mut st = lock(&self.state);
                for n in names.iter().filter(|n| safe_container_name(n)) {
                    st.containers.remove(n);
                    let config = format!("{}/{n}/", plane.config_root());
                    let def = format!("{}/{n}.json", plane.container_defs());
                    st.files.retain(|p, _| !p.starts_with(&config) && *p != def);
                    stdout.push_str(&format!("A\t{n}\tremove\t0\t1\n"));
                }
            }
            Command::FixDirectories { dirs } => {
                self.note(format!("dirs {}", dirs.len()));
                if let Some(msg) = lock(&self.faults).directories.clone() {
                    out.status = Some(1);
                    out.stderr = msg.into_bytes();
                    return out;
                }
                let mut st = lock(&self.state);
                for d in dirs.iter() {
                    let mode = u32::from_str_radix(&d.mode, 8).unwrap_or(0o755);
                    st.dirs
                        .insert(d.path.clone(), (mode, d.owner.clone(), d.group.clone()));
                }
            }
            Command::RemoveFiles { paths } => {
                self.note(format!("rm {}", paths.len()));
                let mut st = lock(&self.state);
                for p in paths.iter() {
                    st.files.remove(p);
                }
            }
            Command::EnableUnits { units } => {
                self.note(format!("units {}", units.len()));
                lock(&self.state)
                    .units_enabled
                    .extend(units.iter().cloned());
            }
            Command::RunStep {
                step, containers, ..
            } => {
                if let Some((s, i)) = &lock(&self.faults).interrupt_in_step {
                    if s == step {
                        i.request("SIGINT");
                    }
                }
                stdout = self.run_step(*step, containers)
            }
            Command::RunTask { task } => {
                self.note(format!("step {}: task {}", task.step, task.id));
                match lock(&self.faults).task.get(&task.id) {
                    Some(msg) => {
                        stdout = format!("A\t{}\ttask\t1\t1\n", task.id);
                        for l in msg.lines() {
                            stdout.push_str(&format!("E\t{}\t{l}\n", task.id));
                        }
                        out.status = Some(1);
                    }
                    None => stdout = format!("A\t{}\ttask\t0\t1\n", task.id),
                }
            }
            Command::WriteStamp { .. } => {
                self.note("stamp".into());
                lock(&self.state).stamp = true;
            }
            Command::ReadFile { path } => {
                self.note(format!("read {path}"));
                if let Some(f) = lock(&self.state).files.get(*path) {
                    out.stdout = f.content.clone();
                }
            }
            Command::CheckUndercloud { .. } => {
                self.note("check".into());
                stdout = "os debian 12\ncpus 4\nmemory_kb 16000000\nfree_kb 90000000\n\
                          route local 127.0.10.1 dev lo\n"
                    .into();
            }
        }
        if !stdout.is_empty() {
            out.stdout = stdout.into_bytes();
        }
        out
    }

    fn run_step(&self, step: u8, containers: &[StepContainer<'_>]) -> String {
        let faults = lock(&self.faults).clone();
        let mut st = lock(&self.state);
        let mut out = String::new();
        for c in containers {
            let name = &c.def.name;
            self.note(format!("step {step}: {} {name}", c.op.verb()));
            if let ContainerOp::Start { .. } = c.op {
                if let Some(x) = st.containers.get_mut(name) {
                    x.state = "running".into();
                }
                out.push_str(&format!("A\t{name}\tstart\t0\t1\n"));
            } else if let ContainerOp::AwaitHealth { .. } = c.op {
                out.push_str(&format!("A\t{name}\tcheck\t0\t1\n"));
            } else {
                let verb = c.op.verb();
                if let ContainerOp::Recreate { .. } | ContainerOp::Recover { .. } = c.op {
                    st.containers.remove(name);
                    out.push_str(&format!("A\t{name}\tremove\t0\t1\n"));
                }
                if let Some(msg) = faults.container.get(name) {
                    out.push_str(&format!("A\t{name}\t{verb}\t125\t1\nE\t{name}\t{msg}\n"));
                    continue;
                }
                let id = {
                    let mut n = lock(&self.next_id);
                    *n += 1;
                    *n
                };
                let hash = c
                    .def
                    .labels
                    .get("provision.config_hash")
                    .cloned()
                    .unwrap_or_default();
                st.containers.insert(
                    name.clone(),
                    FakeContainer {
                        config_hash: hash,
                        state: "running".into(),
                        id,
                        health: if c.def.healthcheck.is_some() {
                            "starting".into()
                        } else {
                            String::new()
                        },
                    },
                );
                out.push_str(&format!("A\t{name}\t{verb}\t0\t1\n"));
            }
            if c.def.healthcheck.is_some() {
                let health = if faults.unhealthy.contains(name) {
                    "unhealthy"
                } else {
                    "healthy"
                };
                if let Some(x) = st.containers.get_mut(name) {
                    x.health = health.into();
                }
                if faults.unhealthy.contains(name) {
                    out.push_str(&format!(
                        "H\t{name}\tunhealthy\t1000\nL\t{name}\tfake: {name} never became healthy\n"
                    ));
                } else {
                    out.push_str(&format!("H\t{name}\thealthy\t1\n"));
                }
            }
        }
        out
    }
}

impl Host for FakeHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn read_facts<'a>(
        &'a self,
        desired: &'a HostState,
        how: ReadFacts,
        _timeout: Duration,
    ) -> HostFuture<'a, Result<ActualHost, TransportError>> {
        Box::pin(async move {
            self.note("facts".into());
            if lock(&self.faults).unreachable {
                return Err(TransportError::Disconnected {
                    host: self.name.clone(),
                    during: "reading facts".into(),
                    message: "fake: unreachable".into(),
                });
            }
            Ok(self.facts(desired, how))
        })
    }

    fn run<'a>(
        &'a self,
        command: &'a Command<'a>,
        _timeout: Duration,
    ) -> HostFuture<'a, Result<ExecOutput, TransportError>> {
        Box::pin(async move { Ok(self.run_command(command)) })
    }

    fn upload_batch<'a>(
        &'a self,
        files: &'a [UploadFile<'a>],
        _timeout: Duration,
    ) -> HostFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            self.note(format!("upload {}", files.len()));
            if let Some(msg) = lock(&self.faults).upload.clone() {
                return Err(TransportError::Upload {
                    host: self.name.clone(),
                    path: format!("{} files", files.len()),
                    message: msg,
                });
            }
            let mut st = lock(&self.state);
            for f in files {
                st.files.insert(
                    f.path.to_string(),
                    FakeFile {
                        content: f.content.to_vec(),
                        mode: f.mode,
                        owner: f.owner.to_string(),
                        group: f.group.to_string(),
                    },
                );
            }
            Ok(())
        })
    }

    fn lock<'a>(
        &'a self,
        cloud: &'a str,
        holder: &'a str,
    ) -> HostFuture<'a, Result<Box<dyn HeldLock>, LockError>> {
        Box::pin(async move {
            self.note("lock".into());
            let path = crate::host::lock::lock_path(cloud);
            let mut locks = lock(&self.locks);
            if let Some(h) = locks.get(&path) {
                return Err(LockError::Busy {
                    cloud: cloud.to_string(),
                    undercloud: self.name.clone(),
                    path: path.clone(),
                    holder: h.clone(),
                });
            }
            locks.insert(path.clone(), holder.to_string());
            Ok(Box::new(FakeLock {
                path,
                locks: self.locks.clone(),
                journal: self.journal.clone(),
                host: self.name.clone(),
            }) as Box<dyn HeldLock>)
        })
    }
}

/// A lock held on a fake host.
struct FakeLock {
    path: String,
    locks: Arc<Mutex<BTreeMap<String, String>>>,
    journal: Journal,
    host: String,
}

impl HeldLock for FakeLock {
    fn release(self: Box<Self>) -> HostFuture<'static, ()> {
        Box::pin(async move {
            lock(&self.locks).remove(&self.path);
            lock(&self.journal).push(Entry {
                host: self.host.clone(),
                what: "unlock".into(),
            });
        })
    }
}

/// A fake cloud: the undercloud and every node, each powered on or off; a node is
/// reachable once connected while on.
pub struct FakeFleet {
    pub undercloud: Arc<FakeHost>,
    /// Every node that exists, by name.
    pub machines: BTreeMap<String, Arc<FakeHost>>,
    /// Nodes powered on.
    pub powered: Mutex<BTreeSet<String>>,
    connected: BTreeMap<String, Result<Arc<FakeHost>, String>>,
    pub journal: Journal,
}

impl FakeFleet {
    /// An undercloud and `nodes`, all powered on, nothing connected yet.
    pub fn new(undercloud: &str, nodes: &[&str]) -> FakeFleet {
        let journal: Journal = Arc::new(Mutex::new(Vec::new()));
        let ids = Arc::new(Mutex::new(0));
        let machines: BTreeMap<String, Arc<FakeHost>> = nodes
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    Arc::new(FakeHost::new(n, journal.clone(), ids.clone())),
                )
            })
            .collect();
        FakeFleet {
            undercloud: Arc::new(FakeHost::new(undercloud, journal.clone(), ids)),
            powered: Mutex::new(machines.keys().cloned().collect()),
            machines,
            connected: BTreeMap::new(),
            journal,
        }
    }

    /// A node (or the undercloud) by name.
    pub fn machine(&self, name: &str) -> &Arc<FakeHost> {
        if name == self.undercloud.name {
            return &self.undercloud;
        }
        &self.machines[name]
    }

    /// The journal so far, and empties it.
    pub fn take_journal(&self) -> Vec<Entry> {
        std::mem::take(&mut *lock(&self.journal))
    }

    /// Forgets every connection (a new run of the command line).
    pub fn disconnect(&mut self) {
        self.connected.clear();
    }
}

impl super::Fleet for FakeFleet {
    fn undercloud(&self) -> Arc<dyn Host> {
        self.undercloud.clone()
    }

    fn node(&self, name: &str) -> Option<Result<Arc<dyn Host>, super::Unreached>> {
        self.connected.get(name).map(|r| match r {
            Ok(h) => Ok(h.clone() as Arc<dyn Host>),
            Err(e) => Err(super::Unreached::transient(e.clone())),
        })
    }

    fn connect<'a>(&'a mut self, nodes: &'a [String], _parallel: usize) -> HostFuture<'a, ()> {
        Box::pin(async move {
            for n in nodes {
                let r = match self.machines.get(n) {
                    Some(h) if lock(&self.powered).contains(n) => Ok(h.clone()),
                    Some(_) => Err(format!("{n}: connection refused (fake: powered off)")),
                    None => Err(format!("{n}: no such machine (fake)")),
                };
                self.connected.insert(n.clone(), r);
            }
        })
    }

    fn bring_up<'a>(
        &'a mut self,
        nodes: &'a [String],
        _how: &'a BringUp,
        _reporter: &'a Arc<Reporter>,
    ) -> HostFuture<'a, Vec<BroughtUp>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for n in nodes {
                let Some(h) = self.machines.get(n).cloned() else {
                    continue;
                };
                h.note("bring up".into());
                let fault = lock(&h.faults).bring_up.clone();
                let result = match fault {
                    Some(message) => Err(ActionFailed {
                        action: "waiting for SSH".into(),
                        message,
                    }),
                    None => {
                        lock(&self.powered).insert(n.clone());
                        self.connected.insert(n.clone(), Ok(h));
                        Ok(ProvisionedNode {
                            how: "powered on".into(),
                            bmc: Some(Bmc::none()),
                            ..Default::default()
                        })
                    }
                };
                out.push(BroughtUp {
                    node: n.clone(),
                    result,
                });
            }
            out
        })
    }

    fn power_off<'a>(
        &'a self,
        nodes: &'a [(String, Bmc)],
    ) -> HostFuture<'a, Vec<(String, Result<(), String>)>> {
        Box::pin(async move {
            nodes
                .iter()
                .map(|(n, _)| {
                    self.undercloud.note(format!("power off {n}"));
                    lock(&self.powered).remove(n);
                    (n.clone(), Ok(()))
                })
                .collect()
        })
    }
}
