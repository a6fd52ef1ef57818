//! The survey: the read half of apply, shared by `provision plan`. It reads which
//! nodes are provisioned (the record on the undercloud), connects to those, reads every
//! host's facts at once (one command each, two when files differ and their contents
//! are wanted), and decides the plan. Nothing is changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::record::TasksRecord;
use crate::baremetal::record::{self, NodesRecord};
use crate::evaluate::Evaluation;
use crate::facts::{ActualHost, ReadFacts};
use crate::host::join_all;
use crate::host::{Command, Fleet, Host};
use crate::keys;
use crate::plan::{NodeAction, NodePlan, Plan};
use crate::state::DesiredState;

/// How a survey reads.
#[derive(Debug, Clone, Copy)]
pub struct SurveyOptions {
    pub read: ReadFacts,
    /// Hosts connected to and read at a time.
    pub parallel: usize,
    /// Longest one command may take.
    pub timeout: Duration,
    /// Whether apply powers off the provisioned nodes no longer in the inventory.
    pub power_off_removed: bool,
}

/// A host that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreachable {
    pub host: String,
    pub error: String,
    /// What to do first when running again cannot help by itself (a changed host key).
    pub remedy: Option<String>,
}

/// What the survey found and decided.
#[derive(Debug, Clone)]
pub struct Survey {
    pub plan: Plan,
    /// The facts of every host that was read.
    pub facts: BTreeMap<String, ActualHost>,
    /// The record of provisioned nodes, as read.
    pub nodes: NodesRecord,
    /// The record of tasks that succeeded, as read (in `facts` too, per host).
    pub tasks: TasksRecord,
    /// Hosts that could not be connected to or read: not in the plan.
    pub unreachable: Vec<Unreachable>,
}

/// The undercloud's records a survey starts from: the provisioned nodes and the tasks
/// that succeeded.
pub struct Records {
    pub nodes: NodesRecord,
    pub tasks: TasksRecord,
}

/// Reads both records of the undercloud at once (one round trip, two channels).
pub async fn read_records(undercloud: &dyn Host, cloud: &str) -> Result<Records, String> {
    let (nodes, tasks) = tokio::join!(
        super::baremetal::read_nodes(undercloud, cloud),
        super::record::read_tasks(undercloud, cloud)
    );
    Ok(Records {
        nodes: nodes?,
        tasks: tasks?,
    })
}

/// Surveys every host of the evaluation's desired state through `fleet`.
pub async fn survey(
    ev: &Evaluation,
    fleet: &mut dyn Fleet,
    opts: &SurveyOptions,
) -> Result<Survey, String> {
    let records = read_records(fleet.undercloud().as_ref(), &ev.cloud.name).await?;
    survey_from(ev, fleet, opts, records).await
}

/// [`survey`] from records already read (apply and plan read them while they read
/// the keys).
pub async fn survey_from(
    ev: &Evaluation,
    fleet: &mut dyn Fleet,
    opts: &SurveyOptions,
    records: Records,
) -> Result<Survey, String> {
    let cloud = &ev.cloud;
    let Records { nodes, tasks } = records;
    let names = ev.state.hosts.keys().filter(|n| cloud.host(n).is_some());
    let pending = record::pending(names, &nodes);
    let connect: Vec<String> = ev
        .state
        .hosts
        .keys()
        .filter(|n| cloud.host(n).is_some() && !pending.contains(n) && fleet.node(n).is_none())
        .cloned()
        .collect();
    fleet.connect(&connect, opts.parallel).await;
    let (mut facts, unreachable) = read_all(&ev.state, fleet, &pending, opts).await;
    let empty = ActualHost::default();
    for n in &pending {
        facts.insert(n.clone(), empty.clone());
    }
    // A node to provision is planned as an empty machine: none of its tasks has run
    // (a PXE boot installs it anew: its earlier life's records do not count).
    for (host, f) in facts.iter_mut().filter(|(h, _)| !pending.contains(h)) {
        f.tasks = tasks.hosts.get(host).cloned().unwrap_or_default();
    }
    let mut node_plans: Vec<NodePlan> = pending
        .iter()
        .map(|n| NodePlan {
            node: n.clone(),
            role: ev
                .state
                .hosts
                .get(n)
                .map(|h| h.role.clone())
                .unwrap_or_default(),
            action: NodeAction::Provision {
                how: record::describe(cloud, n),
            },
        })
        .collect();
    for n in record::removed(cloud, &nodes) {
        node_plans.push(NodePlan {
            role: nodes.nodes[&n].role.clone(),
            node: n,
            action: NodeAction::Remove {
                power_off: opts.power_off_removed,
            },
        });
    }
    let plan = Plan::decide(&ev.state, &facts, node_plans);
    for n in &pending {
        facts.remove(n);
    }
    Ok(Survey {
        plan,
        facts,
        nodes,
        tasks,
        unreachable,
    })
}

/// Reads the facts of every host of `desired` the fleet has (but `skip`), at most
/// `parallel` at a time.
pub async fn read_all(
    desired: &DesiredState,
    fleet: &dyn Fleet,
    skip: &[String],
    opts: &SurveyOptions,
) -> (BTreeMap<String, ActualHost>, Vec<Unreachable>) {
    let limit = Arc::new(Semaphore::new(opts.parallel.max(1)));
    let mut unreachable = Vec::new();
    let mut reads = Vec::new();
    for (name, hs) in &desired.hosts {
        if skip.contains(name) {
            continue;
        }
        match fleet.host(name) {
            Some(Ok(host)) => {
                let limit = limit.clone();
                reads.push(async move {
                    let _permit = limit.acquire_owned().await;
                    let r = host.read_facts(hs, opts.read, opts.timeout).await;
                    (name.clone(), r)
                });
            }
            Some(Err(e)) => unreachable.push(Unreachable {
                host: name.clone(),
                error: e.message,
                remedy: e.remedy,
            }),
            None => {}
        }
    }
    let mut facts = BTreeMap::new();
    for (name, r) in join_all(reads).await {
        match r {
            Ok(a) => {
                facts.insert(name, a);
            }
            Err(e) => unreachable.push(Unreachable {
                host: name,
                error: e.to_string(),
                remedy: e.remedy(),
            }),
        }
    }
    unreachable.sort_by(|a, b| a.host.cmp(&b.host));
    (facts, unreachable)
}

/// The evaluation of a run: `ev` with the cloud's keys, read from the undercloud's key
/// store, and generated where a repository is missing (stored by apply, with the
/// undercloud's files: see [`crate::keys`]).
pub async fn with_keys(ev: &Evaluation, fleet: &dyn Fleet) -> Result<Evaluation, String> {
    let repos = keys::repositories(&ev.cloud);
    let mut run = ev.clone();
    if repos.is_empty() {
        return Ok(run);
    }
    let path = keys::store_path(&ev.cloud.name);
    let out = fleet
        .undercloud()
        .run(&Command::ReadFile { path: &path }, Duration::from_secs(60))
        .await
        .map_err(|e| e.to_string())?;
    let mut store = keys::parse(&path, &out.stdout)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    keys::ensure(&mut store, &repos).map_err(|e| e.to_string())?;
    keys::add_to(&mut run.cloud, &mut run.state, &store);
    Ok(run)
}

/// `provision plan`: the survey, and its plan as a report (`label` names the inventory
/// in it). The plan command and the tests of plans go through here.
pub async fn plan(
    ev: &Evaluation,
    fleet: &mut dyn Fleet,
    opts: &SurveyOptions,
    label: &str,
) -> Result<(Survey, crate::diff::Report, Evaluation), String> {
    let uc = fleet.undercloud();
    let (keyed, records) = tokio::join!(
        with_keys(ev, &*fleet),
        read_records(uc.as_ref(), &ev.cloud.name)
    );
    let ev = keyed?;
    let s = survey_from(&ev, fleet, opts, records?).await?;
    let report =
        crate::plan::report::report(label, &s.plan, &ev.state, &s.facts, &ev.cloud.secrets);
    Ok((s, report, ev))
}
