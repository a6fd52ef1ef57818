//! `provision status`: every host's reachability, last apply, files in sync, and each
//! container's state, health and whether its config hash is the desired one. Reads
//! only: one command per host (the same as plan's), one on the undercloud.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use provision::apply::record;
use provision::apply::survey::{read_all, SurveyOptions};
use provision::evaluate::Evaluation;
use provision::facts::{ActualHost, ReadFacts};
use provision::host::join_all;
use provision::host::ssh::SshFleet;
use provision::host::Fleet;
use provision::plan::{decide, Change, ContainerOp};
use provision::state::HostState;

#[derive(Serialize)]
struct ContainerStatus {
    name: String,
    /// running, exited, ... or `missing`.
    state: String,
    /// healthy, unhealthy, starting, or none.
    health: String,
    /// Whether its config hash is the desired one (`null` if it should not be there).
    config_current: Option<bool>,
    desired: bool,
    /// What apply would do to it (the plan's decision), `null` when it is in sync.
    apply: Option<String>,
}

#[derive(Serialize)]
struct HostStatus {
    host: String,
    role: String,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Power state from the BMC (through the undercloud), or why it is unknown.
    power: Option<String>,
    /// Whether the bare-metal stage recorded it as provisioned, and when.
    provisioned: Option<String>,
    last_apply: Option<record::HostRecord>,
    files_total: usize,
    files_differing: usize,
    /// Every change the plan would make on it (files, containers, tasks, ...): the host
    /// is in sync when there are none.
    changes: usize,
    containers: Vec<ContainerStatus>,
}

pub fn status(ev: &Evaluation, accept_new: bool, parallel: usize, json: bool) -> ExitCode {
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let names: Vec<String> = ev.state.hosts.keys().cloned().collect();
        let fleet = match super::open_fleet(&ev.cloud, &names, accept_new, parallel).await {
            Ok(f) => f,
            Err(code) => return code,
        };
        // The keys as the undercloud keeps them: a key file is compared like any other.
        let ev = match provision::apply::survey::with_keys(ev, &fleet).await {
            Ok(ev) => ev,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (rec, hosts) = read_status(&ev, &fleet, parallel).await;
        // In sync is what plan decides: no change on any host (a container that is
        // not running, unhealthy or not yet healthy is a change).
        let healthy = hosts.iter().all(|h| h.reachable && h.changes == 0);
        if json {
            let v = serde_json::json!({
                "cloud": ev.cloud.name,
                "last_apply": rec.as_ref().map(|r| serde_json::json!({
                    "run_id": r.run_id, "time": r.time, "operator": r.operator,
                    "inventory": r.inventory, "ok": r.ok, "stopped": r.stopped,
                    "interrupted": r.interrupted,
                })),
                "in_sync": healthy,
                "hosts": hosts,
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        } else {
            print_text(&ev, rec.as_ref(), &hosts, healthy);
        }
        if healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        }
    })
}

/// Reads the last-apply record, every host's facts and every node's power state.
async fn read_status(
    ev: &Evaluation,
    fleet: &SshFleet<'_>,
    parallel: usize,
) -> (Option<record::ApplyRecord>, Vec<HostStatus>) {
    let uc = Fleet::undercloud(fleet);
    let rec = record::read(uc.as_ref(), &ev.cloud.name).await;
    let opts = SurveyOptions {
        read: ReadFacts::default(),
        parallel,
        timeout: Duration::from_secs(120),
        power_off_removed: false,
    };
    let (mut facts, unreachable) = read_all(&ev.state, fleet, &[], &opts).await;
    // The tasks that succeeded, as the survey reads them: a task to run is a change.
    let tasks = record::read_tasks(uc.as_ref(), &ev.cloud.name)
        .await
        .unwrap_or_default();
    for (host, f) in facts.iter_mut() {
        f.tasks = tasks.hosts.get(host).cloned().unwrap_or_default();
    }
    let nodes = provision::apply::baremetal::read_nodes(uc.as_ref(), &ev.cloud.name)
        .await
        .unwrap_or_default();
    let runner: &dyn provision::baremetal::Runner = fleet.sessions.undercloud.as_ref();
    let powers: BTreeMap<String, String> = join_all(
        ev.cloud
            .hosts
            .iter()
            .filter(|h| ev.state.hosts.contains_key(&h.name))
            .map(|h| async move {
                let state = match provision::baremetal::BmcTarget::for_host(h, &ev.cloud.secrets) {
                    Ok(b) => match b.power_state(runner).await {
                        Ok(s) => s.to_string(),
                        Err(e) => format!("unknown: {e}"),
                    },
                    Err(e) => format!("unknown: {e}"),
                };
                (h.name.clone(), state)
            })
            .collect(),
    )
    .await
    .into_iter()
    .collect();
    let errors: BTreeMap<&str, &str> = unreachable
        .iter()
        .map(|u| (u.host.as_str(), u.error.as_str()))
        .collect();
    let hosts = ev
        .state
        .hosts
        .iter()
        .map(|(name, hs)| {
            let actual = facts.get(name);
            let changes = actual.map(|a| decide(hs, a)).unwrap_or_default();
            HostStatus {
                host: name.clone(),
                role: hs.role.clone(),
                reachable: actual.is_some(),
                error: errors.get(name.as_str()).map(|e| e.to_string()),
                power: powers.get(name).cloned(),
                provisioned: nodes
                    .nodes
                    .get(name)
                    .map(|n| format!("{} ({})", n.time, n.how)),
                last_apply: rec.as_ref().and_then(|r| r.hosts.get(name).cloned()),
                files_total: hs.files.len(),
                files_differing: changes
                    .iter()
                    .filter(|c| matches!(c, Change::WriteFile { .. }))
                    .count(),
                changes: changes.len(),
                containers: actual
                    .map(|a| containers_of(hs, a, &changes))
                    .unwrap_or_default(),
            }
        })
        .collect();
    (rec, hosts)
}

/// Every container desired or found on a host, and how it stands.
fn containers_of(hs: &HostState, a: &ActualHost, changes: &[Change]) -> Vec<ContainerStatus> {
    let mut all: Vec<&String> = hs.containers.keys().chain(a.containers.keys()).collect();
    all.sort();
    all.dedup();
    all.into_iter()
        .map(|c| {
            let want = hs
                .containers
                .get(c)
                .and_then(|d| d.labels.get("provision.config_hash"));
            let found = a.containers.get(c);
            ContainerStatus {
                name: c.clone(),
                state: found
                    .map(|f| f.state.clone())
                    .unwrap_or_else(|| "missing".into()),
                health: found
                    .map(|f| f.health().word().to_string())
                    .unwrap_or_else(|| "none".into()),
                apply: changes.iter().find_map(|ch| match ch {
                    Change::Container { container, op, .. } if container == c => Some(match op {
                        ContainerOp::Create => "apply creates it".to_string(),
                        ContainerOp::Recreate { .. } => {
                            "CONFIG CHANGED (apply recreates it)".to_string()
                        }
                        ContainerOp::Start { found_state } => {
                            format!("{} (apply starts it)", found_state.to_uppercase())
                        }
                        ContainerOp::Recover { .. } => {
                            "UNHEALTHY (apply recreates it and waits for its healthcheck)"
                                .to_string()
                        }
                        ContainerOp::AwaitHealth { .. } => {
                            "NOT YET HEALTHY (apply waits for its healthcheck)".to_string()
                        }
                    }),
                    Change::RemoveContainer { container } if container == c => {
                        Some("NOT DESIRED here (apply removes it)".to_string())
                    }
                    _ => None,
                }),
                config_current: match (want, found) {
                    (Some(w), Some(f)) => Some(*w == f.config_hash),
                    (Some(_), None) => Some(false),
                    _ => None,
                },
                desired: want.is_some(),
            }
        })
        .collect()
}

fn print_text(
    ev: &Evaluation,
    rec: Option<&record::ApplyRecord>,
    hosts: &[HostStatus],
    healthy: bool,
) {
    match rec {
        Some(r) => println!(
            "Cloud {}: last apply {} by {} ({}), run {}{}.",
            ev.cloud.name,
            r.time,
            r.operator,
            match (&r.interrupted, r.ok) {
                (Some(why), _) => format!("INTERRUPTED by {why}"),
                (None, true) => "ok".to_string(),
                (None, false) => "FAILED".to_string(),
            },
            r.run_id,
            r.stopped
                .as_ref()
                .map(|s| format!(", stopped: {s}"))
                .unwrap_or_default()
        ),
        None => println!(
            "Cloud {}: never applied (no record on {}).",
            ev.cloud.name, ev.cloud.undercloud.name
        ),
    }
    for h in hosts {
        let last = h
            .last_apply
            .as_ref()
            .map(|l| match &l.unfinished {
                Some(u) => format!("last apply {} {} ({u})", l.time, l.result),
                None => format!("last apply {} {}", l.time, l.result),
            })
            .unwrap_or_else(|| "never applied".into());
        let power = h.power.as_deref().unwrap_or("not read");
        let provisioned = match &h.provisioned {
            Some(p) => format!("provisioned {p}"),
            None => "not provisioned".into(),
        };
        // The undercloud is prepared by the operator: no BMC, not provisioned.
        let (power, provisioned) = if h.role == provision::model::UNDERCLOUD_ROLE {
            (
                "n/a (the undercloud)",
                "prepared by the operator".to_string(),
            )
        } else {
            (power, provisioned)
        };
        if !h.reachable {
            println!(
                "\n{} ({}): UNREACHABLE, power {power}, {provisioned}, {last}: {}",
                h.host,
                h.role,
                h.error.as_deref().unwrap_or("")
            );
            continue;
        }
        let pending = match h.changes {
            0 => String::new(),
            n => format!(", {} to apply", provision::change::plural(n, "change")),
        };
        println!(
            "\n{} ({}): reachable, power {power}, {provisioned}, {last}, files {}/{} in sync{pending}",
            h.host,
            h.role,
            h.files_total - h.files_differing,
            h.files_total
        );
        for c in &h.containers {
            let config = match &c.apply {
                Some(what) => what.as_str(),
                None if c.desired => "in sync",
                // Not desired, but not removed by apply (a name it never makes).
                None => "not managed by this inventory",
            };
            println!("  {:<28} {:<9} {:<10} {config}", c.name, c.state, c.health);
        }
    }
    println!(
        "\n{}",
        if healthy {
            "In sync: every host is reachable, its files and containers are the desired ones, nothing is unhealthy."
        } else {
            "NOT in sync: see the hosts above; `provision plan` shows what apply would change."
        }
    );
}
