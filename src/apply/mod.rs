//! `provision apply` as a library: [`Apply::begin`] takes the lock on the undercloud,
//! checks it, and surveys every host into a [`Plan`](crate::plan::Plan) (the same survey and decision as
//! `provision plan`); the caller shows the plan and confirms; [`Apply::execute`] then
//! runs exactly that plan, stage by stage, and records the run:
//!
//! 1. **undercloud**: its own services (DHCP/PXE and DNS, the log receiver, the registry
//!    settings), which the nodes need to boot and to log; if it fails, nothing else
//!    runs;
//! 2. **bare metal**: the nodes not yet provisioned, through their BMCs
//!    ([`baremetal`]); what they hold is read and decided again; then the removed nodes
//!    powered off (with `--power-off-removed`), so that the overcloud converges without
//!    them (nova's compute sync forgets their services);
//! 3. **overcloud**: every node, phase by phase ([`stage`]): host preparation
//!    (removals, directories, files, units), then deploy steps 1..N (containers and
//!    their healthchecks), with per-role tolerated failures;
//! 4. the running stamps, the last-apply record ([`record`]), and the lock released.
//!
//! Hosts are reached through the [`Fleet`] and [`crate::host::Host`] traits: SSH in
//! production, an in-memory fake in the engine's tests.

pub mod baremetal;
pub mod host_phase;
pub mod outcome;
pub mod record;
pub mod rotate;
pub mod stage;
pub mod survey;
pub mod undercloud;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::evaluate::Evaluation;
use crate::facts::ReadFacts;
use crate::host::lock::LockError;
use crate::host::{BringUp, Command, Fleet, HeldLock, Unreached};
use crate::interrupt::Interrupt;
use crate::report::{Event, Outcome, Reporter, Stage};
use crate::state::{HostState, Plane};
use host_phase::HostWork;
pub use outcome::{Failure, HostOutcome, Phase, RunOutcome};
pub use survey::{Survey, SurveyOptions, Unreachable};

/// How apply runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts worked on (and connected to) at a time inside a phase.
    pub parallel: usize,
    /// Longest a single remote command may take.
    pub timeout: Duration,
    /// Longest to wait for the healthchecks of a step's containers on a host.
    pub health_timeout: Duration,
    /// Longest to wait for a node powered on by the bare-metal stage to answer SSH.
    pub boot_timeout: Duration,
    /// Power off (through their BMCs) the provisioned nodes no longer in the
    /// inventory, and forget them.
    pub power_off_removed: bool,
    /// Fetch the contents of the files that differ during the survey, to show diffs.
    pub read_contents: bool,
    /// Set when the operator asks the run to stop: nothing new starts.
    pub interrupt: Interrupt,
}

impl Options {
    /// The survey of this run.
    pub fn survey(&self) -> SurveyOptions {
        SurveyOptions {
            read: ReadFacts {
                contents: self.read_contents,
                trust_stamp: true,
                quick_check: true,
                record_files: true,
            },
            parallel: self.parallel,
            timeout: self.timeout,
            power_off_removed: self.power_off_removed,
        }
    }
}

/// What the stages of one run read.
pub struct Run<'a> {
    pub ev: &'a Evaluation,
    pub opts: &'a Options,
    pub reporter: &'a Arc<Reporter>,
}

/// Who runs this apply, for the record and the lock.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    /// `user@machine`.
    pub operator: String,
    /// The inventory as given.
    pub inventory: String,
    /// RFC 3339, UTC: when the run started.
    pub time: String,
}

/// Why an apply could not begin. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot check the undercloud: {0}")]
    Check(String),
    #[error("the undercloud {undercloud} is not ready; nothing was changed:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    NotReady {
        undercloud: String,
        problems: Vec<String>,
    },
    #[error("{0}")]
    Survey(String),
}

/// An apply that holds the lock and has its plan, ready to execute.
pub struct Apply<'a> {
    /// The evaluation of this run: the inventory's, with the cloud's keys.
    ev: Evaluation,
    fleet: &'a mut dyn Fleet,
    lock: Option<Box<dyn HeldLock>>,
    opts: Options,
    survey: Survey,
}

impl<'a> Apply<'a> {
    /// Takes the apply lock on the undercloud (`holder` says who, to a second apply),
    /// checks the undercloud, and surveys every host. On error the lock is released.
    pub async fn begin(
        ev: &'a Evaluation,
        fleet: &'a mut dyn Fleet,
        opts: Options,
        holder: &str,
    ) -> Result<Apply<'a>, BeginError> {
        let uc = fleet.undercloud();
        let held = uc.lock(&ev.cloud.name, holder).await?;
        // Under the lock, the undercloud's readiness, the cloud's keys and the records
        // at once: channels of the one connection, one round trip instead of four.
        let (checked, keyed, records) = tokio::join!(
            undercloud::check(&ev.cloud, uc.as_ref()),
            survey::with_keys(ev, &*fleet),
            survey::read_records(uc.as_ref(), &ev.cloud.name)
        );
        let problem = match checked {
            Ok(c) if c.problems.is_empty() => None,
            Ok(c) => Some(BeginError::NotReady {
                undercloud: ev.cloud.undercloud.name.clone(),
                problems: c.problems,
            }),
            Err(e) => Some(BeginError::Check(e.to_string())),
        };
        if let Some(e) = problem {
            held.release().await;
            return Err(e);
        }
        let ev = match keyed {
            Ok(ev) => ev,
            Err(e) => {
                held.release().await;
                return Err(BeginError::Survey(e));
            }
        };
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                held.release().await;
                return Err(BeginError::Survey(e));
            }
        };
        match survey::survey_from(&ev, fleet, &opts.survey(), records).await {
            Ok(survey) => Ok(Apply {
                ev,
                fleet,
                lock: Some(held),
                opts,
                survey,
            }),
            Err(e) => {
                held.release().await;
                Err(BeginError::Survey(e))
            }
        }
    }

    /// The evaluation this run applies: the inventory's, with the cloud's keys (their
    /// values are among its secrets: redact with them).
    pub fn evaluation(&self) -> &Evaluation {
        &self.ev
    }

    /// What the survey found and the plan it decided.
    pub fn survey(&self) -> &Survey {
        &self.survey
    }

    /// Ends without changing anything: releases the lock.
    pub async fn release(mut self) {
        if let Some(l) = self.lock.take() {
            l.release().await;
        }
    }

    /// Executes the plan, stage by stage, records the run on the undercloud and
    /// releases the lock.
    pub async fn execute(mut self, info: &RunInfo, reporter: Arc<Reporter>) -> RunOutcome {
        let started = Instant::now();
        let mut out = self.outcome_skeleton(&reporter);
        self.converge(info, &reporter, &mut out).await;
        if let Some(why) = self.opts.interrupt.why() {
            reporter.event(
                Event::new(Stage::Run, None, "interrupted").outcome(
                    Outcome::Failed,
                    format!(
                        "{why}: what was in flight finished, nothing new started; {} of {} not finished",
                        out.unfinished().len(),
                        crate::change::plural(out.hosts.len(), "host")
                    ),
                ),
            );
            out.interrupted = Some(why);
        }
        // The stamps only after a whole run: a host left midway is read from podman.
        let stamps = out.stopped.is_none() && !out.undercloud_failed && out.interrupted.is_none();
        out.seconds = started.elapsed().as_secs_f64();
        // The stamps (on the hosts) and the two records (two files of the undercloud) at
        // once: none reads what another writes. Then the lock is released.
        let uc = self.fleet.undercloud();
        let (_, _, saved) = tokio::join!(
            async {
                if stamps {
                    self.write_stamps(&out).await;
                }
            },
            self.record_tasks(&out, info, &reporter),
            record::save(uc.as_ref(), &self.ev, &out, info)
        );
        if let Err(e) = saved {
            reporter.progress().println(&format!(
                "warning: cannot record this apply on the undercloud ({}): {e}",
                record::record_path(&self.ev.cloud.name)
            ));
        }
        self.release().await;
        out
    }

    /// Adds the tasks that succeeded to the tasks record on the undercloud.
    async fn record_tasks(&self, out: &RunOutcome, info: &RunInfo, reporter: &Reporter) {
        if out
            .hosts
            .values()
            .all(|h| h.tasks_ran.is_empty() && h.done.nodes_provisioned == 0)
        {
            return;
        }
        let rec = record::with_tasks(self.survey.tasks.clone(), out, &self.ev.state, info);
        let path = record::tasks_path(&self.ev.cloud.name);
        let uc = self.fleet.undercloud();
        if let Err(e) = record::write_json(uc.as_ref(), &path, &rec, &self.ev.cloud.ssh.user).await
        {
            reporter.progress().println(&format!(
                "warning: cannot record the tasks that ran in {path} on {}: {e}; they run again next time",
                uc.name()
            ));
        }
    }

    /// Every host of the run, the unreachable ones failed already.
    fn outcome_skeleton(&self, reporter: &Reporter) -> RunOutcome {
        let mut out = RunOutcome::default();
        for (name, hs) in &self.ev.state.hosts {
            out.hosts.insert(
                name.clone(),
                HostOutcome {
                    host: name.clone(),
                    role: hs.role.clone(),
                    ..Default::default()
                },
            );
        }
        for u in &self.survey.unreachable {
            if let Some(h) = out.hosts.get_mut(&u.host) {
                h.failure = Some(Failure {
                    remedy: u.remedy.clone(),
                    phase: Phase::Gather,
                    action: "connecting and reading its state, before any change".into(),
                    message: reporter.redact(&u.error),
                });
            }
        }
        out
    }

    /// The stages, in order; stops at the first that stops the run.
    async fn converge(&mut self, info: &RunInfo, reporter: &Arc<Reporter>, out: &mut RunOutcome) {
        let roles = &self.ev.cloud.roles;
        // 1. The undercloud: its failure stops everything.
        let finished = self.run_plane(Plane::Undercloud, reporter, out).await;
        if self.interrupted(Stage::Baremetal, out) {
            return;
        }
        out.undercloud_failed = !finished
            || out
                .hosts
                .values()
                .any(|h| h.role == crate::model::UNDERCLOUD_ROLE && h.failure.is_some());
        if out.undercloud_failed {
            return;
        }
        // 2. Bare metal, then what is already too many failures.
        let how = BringUp {
            parallel: self.opts.parallel,
            boot_timeout: self.opts.boot_timeout,
            run_id: info.run_id.clone(),
            time: info.time.clone(),
            interrupt: self.opts.interrupt.clone(),
        };
        let mut plan = std::mem::take(&mut self.survey.plan);
        let mut nodes = std::mem::take(&mut self.survey.nodes);
        let run = Run {
            ev: &self.ev,
            opts: &self.opts,
            reporter,
        };
        baremetal::provision(&run, &mut *self.fleet, &mut plan, &mut nodes, &how, out).await;
        self.survey.plan = plan;
        if let Some(why) = outcome::over_tolerance(out, roles, Plane::Overcloud) {
            // Say which stage did not run, and where the failures were: a host that
            // could not be reached before any change failed in the survey, not in
            // the bare-metal stage.
            let stop = format!(
                "{why} ({}); the overcloud stage did not run",
                failed_where(out, Plane::Overcloud)
            );
            reporter.event(stage::tolerance_stop(Stage::Baremetal, None, &stop));
            out.stopped = Some(stop);
            self.survey.nodes = nodes;
            return;
        }
        // 3. Removed nodes leave first (with `--power-off-removed`), as TripleO's scale-down
        // deletes the node before the overcloud is updated: the overcloud's tasks (nova's
        // sync of its computes) then find them gone. 4. The overcloud.
        baremetal::power_off_removed(
            &self.ev,
            &*self.fleet,
            &self.survey.plan,
            &mut nodes,
            reporter,
            out,
        )
        .await;
        self.survey.nodes = nodes;
        if self.interrupted(Stage::Overcloud, out) {
            return;
        }
        self.run_plane(Plane::Overcloud, reporter, out).await;
    }

    /// When the run was interrupted before `next`: every host of it not done yet is
    /// marked as such. `true` if interrupted.
    fn interrupted(&self, next: Stage, out: &mut RunOutcome) -> bool {
        if !self.opts.interrupt.requested() {
            return false;
        }
        let from = match next {
            Stage::Baremetal => "the bare-metal stage",
            _ => "the overcloud stage",
        };
        for (name, hp) in &self.survey.plan.hosts {
            let plane = self.ev.state.hosts.get(name).map(|h| h.plane);
            let node_pending = self.survey.plan.nodes.iter().any(|n| {
                &n.node == name && matches!(n.action, crate::plan::NodeAction::Provision { .. })
            });
            if plane == Some(Plane::Overcloud) && (!hp.changes.is_empty() || node_pending) {
                out.not_started(name, from);
            }
        }
        true
    }

    /// The hosts of `plane` in the plan, through every phase. `false` if stopped.
    async fn run_plane(
        &self,
        plane: Plane,
        reporter: &Arc<Reporter>,
        out: &mut RunOutcome,
    ) -> bool {
        let mut work = Vec::new();
        for (name, hp) in &self.survey.plan.hosts {
            let Some(hs) = self.ev.state.hosts.get(name).filter(|h| h.plane == plane) else {
                continue;
            };
            if out
                .hosts
                .get(name)
                .map(|h| h.failure.is_some())
                .unwrap_or(true)
            {
                continue;
            }
            match self.fleet.host(name) {
                Some(Ok(host)) => work.push(HostWork {
                    host,
                    desired: hs,
                    plan: hp,
                }),
                Some(Err(e)) => fail_connect(out, name, e),
                None => fail_connect(out, name, Unreached::transient("not connected")),
            }
        }
        let any_host = self.ev.state.hosts.values().any(|h| h.plane == plane);
        if !any_host {
            return true;
        }
        stage::run(
            plane,
            &work,
            &self.ev.cloud.roles,
            &self.opts,
            reporter,
            out,
        )
        .await
    }

    /// The stamp of running containers, for the next survey (see
    /// [`Plane::running_stamp`]): on every host that converged and whose containers
    /// changed or were read from podman.
    async fn write_stamps(&self, out: &RunOutcome) {
        let mut writes = Vec::new();
        for (name, hs) in &self.ev.state.hosts {
            let Some(h) = out.hosts.get(name) else {
                continue;
            };
            let d = &h.done;
            let touched = d.containers_created
                + d.containers_recreated
                + d.containers_started
                + d.containers_removed
                > 0;
            let from_stamp = self
                .survey
                .facts
                .get(name)
                .map(|f| f.from_stamp)
                .unwrap_or(false);
            if h.failure.is_some() || (!touched && from_stamp) || !has_containers(hs) {
                continue;
            }
            if let Some(Ok(host)) = self.fleet.host(name) {
                let timeout = self.opts.timeout;
                let plane = hs.plane;
                writes.push(async move {
                    let _ = host.run(&Command::WriteStamp { plane }, timeout).await;
                });
            }
        }
        crate::host::join_all(writes).await;
    }
}

/// `lab-networker-0 in the survey, lab-novacompute-0 in the bare-metal stage`: where
/// the failed hosts of `plane` failed.
fn failed_where(out: &RunOutcome, plane: Plane) -> String {
    out.hosts
        .values()
        .filter(|h| Plane::of_role(&h.role) == plane)
        .filter_map(|h| {
            h.failure.as_ref().map(|f| {
                let stage = match f.phase {
                    Phase::Gather => "in the survey, before any change".to_string(),
                    Phase::BareMetal => "in the bare-metal stage".to_string(),
                    Phase::Connect => "connecting".to_string(),
                    p => format!("in {p}"),
                };
                format!("{} {stage}", h.host)
            })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn has_containers(hs: &HostState) -> bool {
    !hs.containers.is_empty()
}

fn fail_connect(out: &mut RunOutcome, name: &str, e: Unreached) {
    if let Some(h) = out.hosts.get_mut(name) {
        h.failure = Some(Failure {
            remedy: e.remedy,
            phase: Phase::Connect,
            action: "connecting".into(),
            message: e.message,
        });
    }
}
