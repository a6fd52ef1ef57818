//! What apply needs of a machine, behind two traits: a [`Host`] reads its facts, runs
//! the typed [`Command`]s apply is made of, uploads batches of files and holds a lock;
//! a [`Fleet`] is the cloud's hosts (the undercloud and the nodes), which can connect
//! to more nodes and bring nodes up through their BMCs. The SSH implementation
//! ([`ssh`]) runs each command as one shell script (the scripts are in [`script`]); an
//! in-memory fake ([`fake`]) runs the same commands against a model of a host, for tests
//! of the stage engine that need no machine.

pub mod bringup;
pub mod fake;
pub mod lock;
pub mod script;
pub mod sessions;
pub mod ssh;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::baremetal::record::ProvisionedNode;
use crate::change::ContainerOp;
use crate::facts::{ActualHost, ReadFacts};
use crate::model::Bmc;
use crate::report::Reporter;
use crate::state::{ContainerDef, DesiredDir, HostState, Plane, TaskDef};
use crate::transport::{ExecOutput, TransportError, UploadFile};
use lock::LockError;

/// A boxed future, so that hosts can be used as `dyn Host`.
pub type HostFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One container of a deploy step and what to do with it.
#[derive(Debug, Clone, Copy)]
pub struct StepContainer<'a> {
    pub def: &'a ContainerDef,
    pub op: &'a ContainerOp,
}

/// What apply runs on a host. Each is one round trip; its output follows the protocol
/// of [`script`] (`A`, `E`, `H`, `L` lines for containers), parsed by apply.
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    /// Stops and removes managed containers, with their configuration folder,
    /// definition and unit (their logs stay).
    RemoveContainers { names: &'a [String], plane: Plane },
    /// Creates directories or fixes their mode and owner, stopping at the first failure.
    FixDirectories { dirs: &'a [&'a DesiredDir] },
    /// Removes files (of folders that hold only their desired files).
    RemoveFiles { paths: &'a [String] },
    /// `systemctl daemon-reload`, then enables these units.
    EnableUnits { units: &'a [String] },
    /// A deploy step's containers, all at once, then their healthchecks polled until
    /// they pass or `health_timeout` ends.
    RunStep {
        step: u8,
        containers: &'a [StepContainer<'a>],
        health_timeout: Duration,
    },
    /// A one-shot task: its container run to completion (removed after), its output's
    /// last lines reported if it fails.
    RunTask { task: &'a TaskDef },
    /// Records the running containers (name, id, config hash) for the next read.
    WriteStamp { plane: Plane },
    /// Prints a file (nothing when it is missing).
    ReadFile { path: &'a str },
    /// The undercloud's readiness checks ([`crate::apply::undercloud`]).
    CheckUndercloud { script: &'a str },
}

impl Command<'_> {
    /// A short description for errors: `removing 2 containers`, `step 3 containers`.
    pub fn describe(&self) -> String {
        match self {
            Command::RemoveContainers { names, .. } => {
                format!(
                    "removing {}",
                    crate::change::plural(names.len(), "container")
                )
            }
            Command::FixDirectories { .. } => "creating directories".into(),
            Command::EnableUnits { .. } => "enabling container units".into(),
            Command::RemoveFiles { paths } => {
                format!("removing {}", crate::change::plural(paths.len(), "file"))
            }
            Command::RunStep { .. } => "running the step's containers".into(),
            Command::RunTask { task } => format!("running task {}", task.id),
            Command::WriteStamp { .. } => "recording the running containers".into(),
            Command::ReadFile { path } => format!("reading {path}"),
            Command::CheckUndercloud { .. } => "checking the undercloud".into(),
        }
    }
}

/// A lock held on a host until released (or the connection drops).
pub trait HeldLock: Send {
    fn release(self: Box<Self>) -> HostFuture<'static, ()>;
}

/// One machine apply works on.
pub trait Host: Send + Sync {
    /// Its name in the inventory.
    fn name(&self) -> &str;

    /// Reads what it has of what `desired` manages.
    fn read_facts<'a>(
        &'a self,
        desired: &'a HostState,
        how: ReadFacts,
        timeout: Duration,
    ) -> HostFuture<'a, Result<ActualHost, TransportError>>;

    /// Runs a command; a non-zero exit is in the output, not an error.
    fn run<'a>(
        &'a self,
        command: &'a Command<'a>,
        timeout: Duration,
    ) -> HostFuture<'a, Result<ExecOutput, TransportError>>;

    /// Writes files atomically, all or none.
    fn upload_batch<'a>(
        &'a self,
        files: &'a [UploadFile<'a>],
        timeout: Duration,
    ) -> HostFuture<'a, Result<(), TransportError>>;

    /// Takes the apply lock of `cloud` ([`crate::host::lock::lock_path`]), recording
    /// `holder`; refused if another holds it.
    fn lock<'a>(
        &'a self,
        cloud: &'a str,
        holder: &'a str,
    ) -> HostFuture<'a, Result<Box<dyn HeldLock>, LockError>>;
}

/// An action that failed on a host, and why (secrets already redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionFailed {
    /// What was being done, e.g. `waiting for SSH`, `writing 12 files`.
    pub action: String,
    pub message: String,
}

/// A node the bare-metal stage tried to bring up.
pub struct BroughtUp {
    pub node: String,
    /// What was recorded of it when it came up (it is then in the fleet), or what
    /// failed.
    pub result: Result<ProvisionedNode, ActionFailed>,
}

/// How the bare-metal stage brings nodes up.
#[derive(Debug, Clone)]
pub struct BringUp {
    pub parallel: usize,
    /// Longest to wait for a powered-on node to answer SSH.
    pub boot_timeout: Duration,
    pub run_id: String,
    /// RFC 3339, UTC: when, in the record.
    pub time: String,
    /// Once requested, no node not yet started is brought up.
    pub interrupt: crate::interrupt::Interrupt,
}

/// Why a host could not be connected to.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreached {
    /// The transport's error (it names the host).
    pub message: String,
    /// What to do first when running again cannot help by itself (a changed host
    /// key): [`crate::transport::TransportError::remedy`].
    pub remedy: Option<String>,
}

impl Unreached {
    /// A fault that may pass: running again is the remedy.
    pub fn transient(message: impl Into<String>) -> Unreached {
        Unreached {
            message: message.into(),
            remedy: None,
        }
    }
}

impl std::fmt::Display for Unreached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The cloud's machines.
pub trait Fleet: Send + Sync {
    /// The undercloud (its own services, the lock and the records).
    fn undercloud(&self) -> Arc<dyn Host>;

    /// A node's host, or why it could not be reached; `None` if never connected.
    fn node(&self, name: &str) -> Option<Result<Arc<dyn Host>, Unreached>>;

    /// The host of a name of the desired state: the undercloud or a node.
    fn host(&self, name: &str) -> Option<Result<Arc<dyn Host>, Unreached>> {
        let uc = self.undercloud();
        if uc.name() == name {
            return Some(Ok(uc));
        }
        self.node(name)
    }

    /// Connects to provisioned nodes (at most `parallel` at a time); a node that
    /// cannot be reached is kept with its error.
    fn connect<'a>(&'a mut self, nodes: &'a [String], parallel: usize) -> HostFuture<'a, ()>;

    /// Brings nodes up through their BMCs (the bare-metal stage) and adds those that
    /// came up.
    fn bring_up<'a>(
        &'a mut self,
        nodes: &'a [String],
        how: &'a BringUp,
        reporter: &'a Arc<Reporter>,
    ) -> HostFuture<'a, Vec<BroughtUp>>;

    /// Powers nodes off through their (recorded) BMCs: per node, the result.
    fn power_off<'a>(
        &'a self,
        nodes: &'a [(String, Bmc)],
    ) -> HostFuture<'a, Vec<(String, Result<(), String>)>>;
}

/// Runs futures concurrently in the calling task and collects their outputs in order
/// (for futures that borrow, which `tokio::spawn` cannot take): many hosts' commands at
/// once.
pub async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
