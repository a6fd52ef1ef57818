//! What an apply did: per host, the changes made (counted as the plan counts them) or
//! where and why it failed; for the run, whether a role's tolerated failures stopped
//! it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::change::Counts;
use crate::model::Role;
use crate::state::Plane;

/// Where in a run a host failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Connecting to it.
    Connect,
    /// Reading its facts.
    Gather,
    /// Bringing it up through its BMC.
    BareMetal,
    /// Removals, directories, files and units, before the deploy steps.
    Preparation,
    /// A deploy step's containers.
    Step(u8),
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Connect => f.write_str("connect"),
            Phase::Gather => f.write_str("survey"),
            Phase::BareMetal => f.write_str("bare metal"),
            Phase::Preparation => f.write_str("host preparation"),
            Phase::Step(s) => write!(f, "step {s}"),
        }
    }
}

/// Why a host failed, and where.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failure {
    pub phase: Phase,
    /// What was being done, e.g. `writing 12 files`, `recreate container keystone`.
    pub action: String,
    /// The remote error output or the transport's error (secrets redacted).
    pub message: String,
    /// What to do first when running again cannot help by itself (a changed host
    /// key); `None` when running again resumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.phase, self.action, self.message)
    }
}

/// What apply did on one host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostOutcome {
    pub host: String,
    pub role: String,
    /// The changes made, counted as the plan counts them (a node brought up in this run
    /// counts one `nodes_provisioned`).
    pub done: Counts,
    /// The tasks that succeeded on it, by id (recorded on the undercloud).
    pub tasks_ran: Vec<String>,
    pub seconds: f64,
    pub failure: Option<Failure>,
    /// What the run did not start on it because it was interrupted (`step 3 and
    /// later`); `None` when it finished or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<String>,
}

impl HostOutcome {
    pub fn changes(&self) -> usize {
        self.done.total()
    }
}

/// What a whole apply did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunOutcome {
    pub hosts: BTreeMap<String, HostOutcome>,
    /// Removed nodes powered off (not hosts of this run).
    pub nodes_powered_off: Vec<String>,
    /// Removed nodes that could not be powered off, and why.
    pub power_off_failures: Vec<(String, String)>,
    /// Set when a role's failures went over its tolerated percentage: what stopped
    /// the run, after which phase.
    pub stopped: Option<String>,
    /// The undercloud's stage failed: the bare-metal and overcloud stages did not run.
    pub undercloud_failed: bool,
    /// Where apply did other than the plan said, and why (a node brought up that was
    /// not empty, as the plan assumed).
    pub notes: Vec<String>,
    pub seconds: f64,
    /// Set when the operator interrupted the run (`SIGINT`, `SIGTERM`): what was in
    /// flight finished, nothing new started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
}

impl RunOutcome {
    pub fn failed(&self) -> Vec<&HostOutcome> {
        self.hosts
            .values()
            .filter(|h| h.failure.is_some())
            .collect()
    }

    /// Every change made, counted as the plan counts them.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for h in self.hosts.values() {
            c.merge(&h.done);
        }
        c.nodes_powered_off += self.nodes_powered_off.len();
        c
    }

    pub fn changes(&self) -> usize {
        self.counts().total()
    }

    pub fn ok(&self) -> bool {
        self.interrupted.is_none()
            && self.stopped.is_none()
            && !self.undercloud_failed
            && self.failed().is_empty()
            && self.power_off_failures.is_empty()
    }

    /// The hosts the interrupted run did not finish, with what it did not start.
    pub fn unfinished(&self) -> Vec<&HostOutcome> {
        self.hosts
            .values()
            .filter(|h| h.unfinished.is_some())
            .collect()
    }

    /// Marks `host` as not finished from `from` on (`step 3`), unless it failed or is
    /// marked already.
    pub fn not_started(&mut self, host: &str, from: &str) {
        if let Some(h) = self.hosts.get_mut(host) {
            if h.failure.is_none() && h.unfinished.is_none() {
                h.unfinished = Some(format!("{from} and later not started"));
            }
        }
    }

    /// The hosts with at least one change.
    pub fn hosts_changed(&self) -> usize {
        self.hosts.values().filter(|h| h.changes() > 0).count()
    }
}

/// The first role of `plane` whose failed hosts are more than its
/// `max_fail_percentage` of its hosts in this run.
pub fn over_tolerance(
    out: &RunOutcome,
    roles: &BTreeMap<String, Role>,
    plane: Plane,
) -> Option<String> {
    let mut per_role: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for h in out
        .hosts
        .values()
        .filter(|h| Plane::of_role(&h.role) == plane)
    {
        let e = per_role.entry(h.role.as_str()).or_default();
        e.0 += 1;
        if h.failure.is_some() {
            e.1 += 1;
        }
    }
    for (role, (total, failed)) in per_role {
        if failed == 0 {
            continue;
        }
        let max = roles.get(role).map(|r| r.max_fail_percentage).unwrap_or(0);
        if failed * 100 > usize::from(max) * total {
            return Some(format!(
                "{failed} of {} failed ({}%), more than its max_fail_percentage of {max}%",
                crate::change::plural(total, &format!("{role} host")),
                failed * 100 / total
            ));
        }
    }
    None
}
