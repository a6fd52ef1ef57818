//! The bare-metal stage of apply: the plan's nodes to provision are brought up through
//! the fleet (their BMCs, from the undercloud: [`crate::host::bringup`]) and
//! recorded as provisioned; what they hold is then read, not assumed, and decided
//! again by the same decider (a node that was not empty gets only what it needs, and
//! the run says so). At the end of a run, removed nodes are powered off when asked.
//! A provisioned node's BMC is not called again: a second apply touches no BMC.

use std::time::Duration;

use crate::baremetal::record::{self, NodesRecord};
use crate::evaluate::Evaluation;
use crate::facts::ReadFacts;
use crate::host::{BringUp, Command, Fleet, Host};
use crate::plan::{HostPlan, NodeAction, Plan, Tense};
use crate::report::{Event, Outcome, Reporter, Stage};
use crate::state::DesiredState;

use super::outcome::{Failure, Phase, RunOutcome};
use super::survey::{self, SurveyOptions};
use super::Run;

/// Brings up the plan's nodes to provision, records them, and re-decides their plans
/// from what they hold. Failures are recorded in `out`.
pub async fn provision(
    run: &Run<'_>,
    fleet: &mut dyn Fleet,
    plan: &mut Plan,
    nodes: &mut NodesRecord,
    how: &BringUp,
    out: &mut RunOutcome,
) {
    let (ev, reporter) = (run.ev, run.reporter);
    let pending: Vec<String> = plan
        .nodes
        .iter()
        .filter(|n| matches!(n.action, NodeAction::Provision { .. }))
        .map(|n| n.node.clone())
        .collect();
    if pending.is_empty() {
        return;
    }
    reporter.progress().phase(
        "bare metal (power on, wait for SSH, introspect)",
        pending.len(),
    );
    let results = fleet.bring_up(&pending, how, reporter).await;
    reporter.progress().finish();
    let mut up = Vec::new();
    for r in results {
        let Some(h) = out.hosts.get_mut(&r.node) else {
            continue;
        };
        match r.result {
            Ok(rec) => {
                h.done.nodes_provisioned += 1;
                nodes.nodes.insert(r.node.clone(), rec);
                up.push(r.node);
            }
            Err(f) if f.action == crate::host::bringup::NOT_STARTED => {
                h.unfinished = Some("the bare-metal stage and later not started".into());
            }
            Err(f) => {
                h.failure = Some(Failure {
                    remedy: None,
                    phase: Phase::BareMetal,
                    action: f.action,
                    message: f.message,
                })
            }
        }
    }
    if !up.is_empty() {
        nodes.format = 1;
        let uc = fleet.undercloud();
        if let Err(e) = write_nodes(uc.as_ref(), &ev.cloud.name, nodes, &ev.cloud.ssh.user).await {
            reporter.progress().println(&format!(
                "warning: cannot record the provisioned nodes in {} on {}: {e}",
                record::record_path(&ev.cloud.name),
                uc.name()
            ));
        }
    }
    redecide(run, fleet, plan, &up, out).await;
}

/// Reads what the nodes brought up hold and decides their plans again.
async fn redecide(
    run: &Run<'_>,
    fleet: &dyn Fleet,
    plan: &mut Plan,
    up: &[String],
    out: &mut RunOutcome,
) {
    let (ev, opts, reporter) = (run.ev, run.opts, run.reporter);
    let new_state = DesiredState {
        hosts: ev
            .state
            .hosts
            .iter()
            .filter(|(n, _)| up.contains(n))
            .map(|(n, h)| (n.clone(), h.clone()))
            .collect(),
    };
    let read = SurveyOptions {
        read: ReadFacts {
            contents: false,
            trust_stamp: false,
            quick_check: false,
            record_files: false,
        },
        parallel: opts.parallel,
        timeout: opts.timeout,
        power_off_removed: opts.power_off_removed,
    };
    // Installed anew: none of their tasks has run (their records are of an earlier life).
    let (facts, unreachable) = survey::read_all(&new_state, fleet, &[], &read).await;
    for u in unreachable {
        if let Some(h) = out.hosts.get_mut(&u.host) {
            h.failure = Some(Failure {
                remedy: None,
                phase: Phase::Gather,
                action: "reading the actual state".into(),
                message: u.error,
            });
        }
    }
    for (name, found) in &facts {
        let Some(hs) = ev.state.hosts.get(name) else {
            continue;
        };
        let fresh = HostPlan::decide(hs, found, false);
        if let Some(planned) = plan.hosts.get(name) {
            if planned.changes != fresh.changes {
                let note = format!(
                    "{name} was not empty (the plan assumed it was): it needs {} (the plan said {})",
                    fresh.counts().phrase(Tense::Planned),
                    planned.counts().phrase(Tense::Planned)
                );
                reporter.progress().println(&format!("note: {note}"));
                reporter.event(
                    Event::new(Stage::Baremetal, Some(name), "decide again")
                        .outcome(Outcome::Ok, note.clone()),
                );
                out.notes.push(note);
            }
        }
        plan.hosts.insert(name.clone(), fresh);
    }
}

/// Powers off the plan's removed nodes (when the plan says so) through their recorded
/// BMCs and forgets them.
pub async fn power_off_removed(
    ev: &Evaluation,
    fleet: &dyn Fleet,
    plan: &Plan,
    nodes: &mut NodesRecord,
    reporter: &Reporter,
    out: &mut RunOutcome,
) {
    let mut targets = Vec::new();
    for n in &plan.nodes {
        if n.action != (NodeAction::Remove { power_off: true }) {
            continue;
        }
        match nodes.nodes.get(&n.node).and_then(|r| r.bmc.clone()) {
            Some(bmc) => targets.push((n.node.clone(), bmc)),
            None => out
                .power_off_failures
                .push((n.node.clone(), "no BMC recorded for it".into())),
        }
    }
    if targets.is_empty() && out.power_off_failures.is_empty() {
        return;
    }
    for (node, r) in fleet.power_off(&targets).await {
        let e = Event::new(
            Stage::Baremetal,
            Some(&node),
            "power off (removed from the inventory)",
        );
        match r {
            Ok(()) => {
                reporter.event(e.outcome(Outcome::Changed, "ForceOff"));
                nodes.nodes.remove(&node);
                out.nodes_powered_off.push(node);
            }
            Err(msg) => {
                let msg = reporter.redact(&msg);
                reporter.event(e.outcome(Outcome::Failed, msg.clone()));
                out.power_off_failures.push((node, msg));
            }
        }
    }
    let uc = fleet.undercloud();
    if let Err(e) = write_nodes(uc.as_ref(), &ev.cloud.name, nodes, &ev.cloud.ssh.user).await {
        out.power_off_failures.push(("(record)".into(), e));
    }
}

/// Reads the record of provisioned nodes (empty when there is none yet).
pub async fn read_nodes(undercloud: &dyn Host, cloud: &str) -> Result<NodesRecord, String> {
    let path = record::record_path(cloud);
    let out = undercloud
        .run(&Command::ReadFile { path: &path }, Duration::from_secs(60))
        .await
        .map_err(|e| e.to_string())?;
    if out.stdout.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(NodesRecord {
            format: 1,
            ..Default::default()
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{path} on {} is not a nodes record ({e}); move it away to start over",
            undercloud.name()
        )
    })
}

/// Writes the record of provisioned nodes (atomically, 0600, owned by the SSH user).
pub async fn write_nodes(
    undercloud: &dyn Host,
    cloud: &str,
    rec: &NodesRecord,
    user: &str,
) -> Result<(), String> {
    super::record::write_json(undercloud, &record::record_path(cloud), rec, user).await
}
