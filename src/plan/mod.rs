//! Plans: what an apply will change, decided once. [`decide()`] turns each host's desired
//! state and the facts read from it into typed [`Change`]s; a [`Plan`] holds them for
//! every host, with the bare-metal changes (nodes to provision, removed nodes to power
//! off). `provision plan` shows a plan ([`report`]), `provision apply` executes the same
//! plan, and both count it with [`Counts`]. Pure: the facts are read by
//! [`crate::apply::survey`].

pub mod decide;
pub mod report;
pub mod saved;

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::change::{Change, ContainerOp, Counts, DirFix, FileFix, TaskWhy, Tense};
pub use decide::decide;

use crate::facts::ActualHost;
use crate::state::{DesiredState, HostState, Plane};

/// The changes of one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostPlan {
    pub host: String,
    pub role: String,
    pub plane: Plane,
    /// Decided against an empty host: a node to provision, whose facts are read only
    /// once it is up (apply decides again then, and says so if the two differ).
    pub assumed_empty: bool,
    pub changes: Vec<Change>,
}

impl HostPlan {
    /// Decides the changes of `desired` against `facts`.
    pub fn decide(desired: &HostState, facts: &ActualHost, assumed_empty: bool) -> HostPlan {
        HostPlan {
            host: desired.name.clone(),
            role: desired.role.clone(),
            plane: desired.plane,
            assumed_empty,
            changes: decide(desired, facts),
        }
    }

    pub fn counts(&self) -> Counts {
        Counts::of(&self.changes)
    }

    /// The deploy steps with containers to act on, in order.
    pub fn steps(&self) -> Vec<u8> {
        let s: std::collections::BTreeSet<u8> =
            self.changes.iter().filter_map(Change::step).collect();
        s.into_iter().collect()
    }
}

/// What the bare-metal stage does to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum NodeAction {
    /// Not yet provisioned: brought up through its BMC (or adopted), then converged.
    Provision { how: String },
    /// Provisioned, no longer in the inventory: powered off through its BMC and
    /// forgotten, when apply is given `--power-off-removed`; else left as it is.
    Remove { power_off: bool },
}

/// One bare-metal change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodePlan {
    pub node: String,
    pub role: String,
    pub action: NodeAction,
}

/// Every change of a run: per host, and the bare-metal ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub hosts: BTreeMap<String, HostPlan>,
    pub nodes: Vec<NodePlan>,
}

impl Plan {
    /// Decides every host of `desired` whose facts are in `facts` (a node to provision
    /// has empty facts: see [`HostPlan::assumed_empty`]), with the bare-metal changes
    /// `nodes`.
    pub fn decide(
        desired: &DesiredState,
        facts: &BTreeMap<String, ActualHost>,
        nodes: Vec<NodePlan>,
    ) -> Plan {
        let provisioning: Vec<&str> = nodes
            .iter()
            .filter(|n| matches!(n.action, NodeAction::Provision { .. }))
            .map(|n| n.node.as_str())
            .collect();
        let empty = ActualHost::default();
        let mut hosts = BTreeMap::new();
        for (name, hs) in &desired.hosts {
            let pending = provisioning.contains(&name.as_str());
            let Some(f) = facts.get(name).or(pending.then_some(&empty)) else {
                continue;
            };
            hosts.insert(name.clone(), HostPlan::decide(hs, f, pending));
        }
        Plan { hosts, nodes }
    }

    /// Every change counted, bare metal included.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for h in self.hosts.values() {
            c.merge(&h.counts());
        }
        for n in &self.nodes {
            match n.action {
                NodeAction::Provision { .. } => c.nodes_provisioned += 1,
                NodeAction::Remove { power_off: true } => c.nodes_powered_off += 1,
                NodeAction::Remove { power_off: false } => {}
            }
        }
        c
    }

    /// Whether apply would change anything (a removed node left alone is no change).
    pub fn has_changes(&self) -> bool {
        self.counts().total() > 0
    }

    /// The hosts with at least one change.
    pub fn hosts_changed(&self) -> usize {
        self.hosts
            .values()
            .filter(|h| !h.changes.is_empty())
            .count()
    }
}
