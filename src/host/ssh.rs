//! The SSH host and fleet: a [`Session`] is a [`Host`] (each command one shell script
//! over one channel, facts in one or two round trips), and [`SshFleet`] is the cloud's
//! sessions: the undercloud, the nodes through it, the bare-metal bring-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::sessions::Sessions;
use super::{BringUp, BroughtUp, Command, HeldLock, Host, HostFuture};
use crate::facts::{self, ActualHost, ReadFacts};
use crate::host::bringup;
use crate::host::lock::{self, ApplyLock, LockError};
use crate::model::{Bmc, Cloud};
use crate::report::Reporter;
use crate::state::HostState;
use crate::transport::{Credentials, ExecOutput, Session, SshOptions, TransportError, UploadFile};

impl Host for Session {
    fn name(&self) -> &str {
        &self.target.name
    }

    fn read_facts<'a>(
        &'a self,
        desired: &'a HostState,
        how: ReadFacts,
        timeout: Duration,
    ) -> HostFuture<'a, Result<ActualHost, TransportError>> {
        Box::pin(async move {
            let out = self
                .exec(&facts::host_command(desired, how), None, timeout)
                .await?;
            let mut actual = facts::parse_gather(&out.stdout_text());
            // Second round trip, only for files whose content differs: for the diffs.
            let differing = facts::differing_files(desired, &actual);
            if how.contents && !differing.is_empty() {
                let out = self
                    .exec(&facts::contents_command(&differing), None, timeout)
                    .await?;
                facts::parse_contents(&mut actual, &differing, &out.stdout);
            }
            Ok(actual)
        })
    }

    fn run<'a>(
        &'a self,
        command: &'a Command<'a>,
        timeout: Duration,
    ) -> HostFuture<'a, Result<ExecOutput, TransportError>> {
        Box::pin(async move { self.exec(&command.script(), None, timeout).await })
    }

    fn upload_batch<'a>(
        &'a self,
        files: &'a [UploadFile<'a>],
        timeout: Duration,
    ) -> HostFuture<'a, Result<(), TransportError>> {
        Box::pin(Session::upload_batch(self, files, timeout))
    }

    fn lock<'a>(
        &'a self,
        cloud: &'a str,
        holder: &'a str,
    ) -> HostFuture<'a, Result<Box<dyn HeldLock>, LockError>> {
        Box::pin(async move {
            let held = lock::acquire(self, cloud, holder).await?;
            Ok(Box::new(held) as Box<dyn HeldLock>)
        })
    }
}

impl HeldLock for ApplyLock {
    fn release(self: Box<Self>) -> HostFuture<'static, ()> {
        Box::pin(ApplyLock::release(*self))
    }
}

/// The cloud's SSH sessions.
pub struct SshFleet<'c> {
    pub cloud: &'c Cloud,
    pub sessions: Sessions,
}

impl<'c> SshFleet<'c> {
    pub fn new(cloud: &'c Cloud, sessions: Sessions) -> SshFleet<'c> {
        SshFleet { cloud, sessions }
    }

    /// Connects to the undercloud and the named nodes with the inventory's SSH
    /// settings (`accept_new`: record the keys of hosts not yet in known_hosts), at
    /// most `parallel` handshakes at a time.
    pub async fn open(
        cloud: &'c Cloud,
        nodes: &[String],
        accept_new: bool,
        parallel: usize,
    ) -> Result<SshFleet<'c>, TransportError> {
        let opts = SshOptions::from_cloud(cloud, accept_new);
        let creds = Credentials::load(&opts)?;
        let sessions = Sessions::connect(cloud, nodes, &opts, &creds, parallel).await?;
        Ok(SshFleet { cloud, sessions })
    }
}

impl super::Fleet for SshFleet<'_> {
    fn undercloud(&self) -> Arc<dyn Host> {
        self.sessions.undercloud.clone()
    }

    fn node(&self, name: &str) -> Option<Result<Arc<dyn Host>, super::Unreached>> {
        self.sessions.nodes.get(name).map(|r| match r {
            Ok(s) => Ok(s.clone() as Arc<dyn Host>),
            Err(e) => Err(super::Unreached {
                message: e.to_string(),
                remedy: e.remedy(),
            }),
        })
    }

    fn connect<'a>(&'a mut self, nodes: &'a [String], parallel: usize) -> HostFuture<'a, ()> {
        Box::pin(async move {
            self.sessions
                .connect_nodes(self.cloud, nodes, parallel)
                .await
        })
    }

    fn bring_up<'a>(
        &'a mut self,
        nodes: &'a [String],
        how: &'a BringUp,
        reporter: &'a Arc<Reporter>,
    ) -> HostFuture<'a, Vec<BroughtUp>> {
        Box::pin(async move {
            let (cloud, sessions) = (self.cloud, &self.sessions);
            let limit = Arc::new(Semaphore::new(how.parallel.max(1)));
            let futs = nodes.iter().map(|node| {
                let limit = limit.clone();
                async move {
                    let _permit = limit.acquire_owned().await;
                    let t = Instant::now();
                    let r = if how.interrupt.requested() {
                        Err(bringup::not_started())
                    } else {
                        bringup::bring_up(cloud, sessions, node, how, reporter).await
                    };
                    let p = reporter.progress();
                    match &r {
                        Ok((_, rec)) => p.host_done(
                            node,
                            &format!(
                                "bare metal: {} ({:.1} s)",
                                if rec.how == "powered on" {
                                    "powered on, up, introspected"
                                } else {
                                    "adopted, introspected"
                                },
                                t.elapsed().as_secs_f64()
                            ),
                            true,
                        ),
                        Err(f) => {
                            p.host_done(node, &format!("bare metal: FAILED {}", f.action), false)
                        }
                    }
                    (node.clone(), r)
                }
            });
            let done = crate::host::join_all(futs.collect()).await;
            let mut out = Vec::new();
            let mut up: BTreeMap<String, Arc<Session>> = BTreeMap::new();
            for (node, r) in done {
                let result = match r {
                    Ok((session, rec)) => {
                        up.insert(node.clone(), session);
                        Ok(rec)
                    }
                    Err(f) => Err(f),
                };
                out.push(BroughtUp { node, result });
            }
            for (node, session) in up {
                self.sessions.nodes.insert(node, Ok(session));
            }
            out
        })
    }

    fn power_off<'a>(
        &'a self,
        nodes: &'a [(String, Bmc)],
    ) -> HostFuture<'a, Vec<(String, Result<(), String>)>> {
        Box::pin(bringup::power_off(
            self.cloud,
            self.sessions.undercloud.as_ref(),
            nodes,
        ))
    }
}
