//! The bare-metal stage of apply: every node not yet provisioned is brought up through
//! its BMC, from the undercloud (the BMC network is reachable only from there): a
//! one-time PXE boot, power on, then its SSH is waited for (backoff, bounded), the
//! machine is checked to be the expected one (one of its NICs has the inventory's MAC),
//! its host name set, its hardware introspected and checked against its role's
//! requirements, and it is recorded as provisioned on the undercloud
//! (`/var/lib/provision/<cloud>.nodes.json`). A provisioned node's BMC is not called
//! again: a second apply touches no BMC.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::lock::STATE_DIR;
use crate::baremetal::introspect::{self, Inventory};
use crate::baremetal::{BmcTarget, PowerState};
use crate::inventory::spec::BmcDriver;
use crate::model::Cloud;
use crate::report::events::{Event, Level, Outcome};
use crate::report::Reporter;
use crate::transport::{shell_quote, Fleet, Session};

/// The record of provisioned nodes, on the undercloud.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodesRecord {
    pub format: u32,
    pub nodes: BTreeMap<String, ProvisionedNode>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProvisionedNode {
    /// RFC 3339, UTC.
    pub time: String,
    pub run_id: String,
    /// How it came up: `powered on` (PXE once, power on) or `adopted` (it answered
    /// already, or has no BMC).
    pub how: String,
    /// The inventory MAC found on one of its NICs.
    pub mac: String,
    pub cpus: u32,
    pub memory_mb: u64,
    pub disks: Vec<(String, u64)>,
    pub nics: BTreeMap<String, String>,
    /// Its BMC (the password secret's name only), to power it off once it leaves the
    /// inventory.
    #[serde(default)]
    pub bmc: Option<crate::model::Bmc>,
    #[serde(default)]
    pub role: String,
}

pub fn record_path(cloud: &str) -> String {
    format!("{STATE_DIR}/{cloud}.nodes.json")
}

/// Reads the record (empty when there is none yet).
pub async fn read_record(undercloud: &Session, cloud: &str) -> Result<NodesRecord, String> {
    let out = undercloud
        .exec(
            &format!(
                "cat {} 2>/dev/null || true",
                shell_quote(&record_path(cloud))
            ),
            None,
            Duration::from_secs(60),
        )
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
            "{} on {} is not a nodes record ({e}); move it away to start over",
            record_path(cloud),
            undercloud.target.name
        )
    })
}

async fn write_record(
    undercloud: &Session,
    cloud: &str,
    rec: &NodesRecord,
    user: &str,
) -> Result<(), String> {
    let text = serde_json::to_string_pretty(rec).map_err(|e| e.to_string())? + "\n";
    undercloud
        .upload(
            &record_path(cloud),
            text.as_bytes(),
            0o600,
            user,
            user,
            Duration::from_secs(60),
        )
        .await
        .map_err(|e| e.to_string())
}

/// The nodes of `names` the stage would provision: not in the record.
pub fn pending<'a>(names: impl Iterator<Item = &'a String>, rec: &NodesRecord) -> Vec<String> {
    names
        .filter(|n| !rec.nodes.contains_key(*n))
        .cloned()
        .collect()
}

/// What the plan says the stage does for a node.
pub fn describe(cloud: &Cloud, node: &str) -> String {
    match cloud.host(node).map(|h| &h.bmc) {
        Some(b) if b.driver != BmcDriver::None => format!(
            "{} BMC {}{}: one-time PXE boot and power on if off, wait for SSH, check its MAC, introspect",
            b.driver,
            b.address.as_deref().unwrap_or("?"),
            b.system_id.as_deref().map(|s| format!(" system {s}")).unwrap_or_default()
        ),
        _ => "no BMC (pre-provisioned): wait for SSH, check its MAC, introspect".into(),
    }
}

/// How the stage runs.
#[derive(Debug, Clone)]
pub struct StageOptions {
    pub parallel: usize,
    /// Longest to wait for a powered-on node to answer SSH.
    pub boot_timeout: Duration,
    pub run_id: String,
    pub time: String,
}

/// What happened to one node.
pub struct NodeResult {
    pub node: String,
    /// Its new session, when it came up.
    pub session: Option<Arc<Session>>,
    /// The failing action and the message.
    pub failure: Option<(String, String)>,
    pub powered_on: bool,
}

fn ev(node: &str, action: &str, outcome: Outcome, d: Duration, message: String) -> Event {
    Event {
        level: if outcome == Outcome::Failed {
            Level::Error
        } else {
            Level::Info
        },
        host: Some(node.to_string()),
        stage: "baremetal".into(),
        step: None,
        action: action.into(),
        target: None,
        outcome,
        duration: d,
        message,
    }
}

/// Provisions `nodes` (all at once, at most `parallel` at a time) and records those
/// that came up. Returns one result per node.
pub async fn stage(
    cloud: &Cloud,
    fleet: &Fleet,
    nodes: &[String],
    mut record: NodesRecord,
    opts: &StageOptions,
    reporter: Arc<Reporter>,
) -> Vec<NodeResult> {
    reporter.progress().phase(
        "bare metal (power on, wait for SSH, introspect)",
        nodes.len(),
    );
    let limit = Arc::new(Semaphore::new(opts.parallel.max(1)));
    let mut results = Vec::new();
    // The tasks borrow the cloud and fleet: run them in this task, joined.
    let mut futs = Vec::new();
    for node in nodes {
        let (limit, reporter) = (limit.clone(), reporter.clone());
        futs.push(async move {
            let _permit = limit.acquire_owned().await;
            let t = Instant::now();
            let r = provision_node(cloud, fleet, node, opts, &reporter).await;
            let took = t.elapsed();
            match &r {
                Ok((_, _, powered)) => reporter.progress().host_done(
                    node,
                    &format!(
                        "bare metal: {} ({:.1} s)",
                        if *powered {
                            "powered on, up, introspected"
                        } else {
                            "adopted, introspected"
                        },
                        took.as_secs_f64()
                    ),
                    true,
                ),
                Err((action, _)) => reporter.progress().host_done(
                    node,
                    &format!("bare metal: FAILED {action}"),
                    false,
                ),
            }
            (node.clone(), r)
        });
    }
    let done = join_all(futs).await;
    for (node, r) in done {
        match r {
            Ok((session, prov, powered)) => {
                record.nodes.insert(node.clone(), prov);
                results.push(NodeResult {
                    node,
                    session: Some(session),
                    failure: None,
                    powered_on: powered,
                });
            }
            Err(failure) => results.push(NodeResult {
                node,
                session: None,
                failure: Some(failure),
                powered_on: false,
            }),
        }
    }
    if results.iter().any(|r| r.failure.is_none()) {
        record.format = 1;
        if let Err(e) = write_record(&fleet.undercloud, &cloud.name, &record, &cloud.ssh.user).await
        {
            reporter.progress().println(&format!(
                "warning: cannot record the provisioned nodes in {} on {}: {e}",
                record_path(&cloud.name),
                cloud.undercloud.name
            ));
        }
    }
    results
}

/// Runs futures concurrently in the calling task and collects their outputs in order
/// (for futures that borrow, which `tokio::spawn` cannot take).
pub async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
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

type Provisioned = (Arc<Session>, ProvisionedNode, bool);

async fn provision_node(
    cloud: &Cloud,
    fleet: &Fleet,
    node: &str,
    opts: &StageOptions,
    reporter: &Reporter,
) -> Result<Provisioned, (String, String)> {
    let p = reporter.progress();
    let fail = |action: &str, message: String, d: Duration| {
        let message = reporter.redact(&message);
        reporter.event(ev(node, action, Outcome::Failed, d, message.clone()));
        (action.to_string(), message)
    };
    let Some(host) = cloud.host(node) else {
        return Err(fail(
            "finding the node",
            "not in the inventory".into(),
            Duration::ZERO,
        ));
    };
    let runner: &dyn crate::baremetal::Runner = fleet.undercloud.as_ref();
    let mut powered = false;
    if host.bmc.driver != BmcDriver::None {
        let t = Instant::now();
        let bmc = BmcTarget::for_host(host, &cloud.secrets)
            .map_err(|e| fail("reading its BMC settings", e.to_string(), t.elapsed()))?;
        p.host_action(node, "reading power state");
        let state = bmc
            .power_state(runner)
            .await
            .map_err(|e| fail("reading the power state", e.to_string(), t.elapsed()))?;
        reporter.event(ev(
            node,
            "power state",
            Outcome::Ok,
            t.elapsed(),
            format!("{state} ({})", bmc.endpoint()),
        ));
        if state != PowerState::On {
            let t = Instant::now();
            p.host_action(node, "one-time PXE boot");
            bmc.set_pxe_once(runner)
                .await
                .map_err(|e| fail("setting a one-time PXE boot", e.to_string(), t.elapsed()))?;
            reporter.event(ev(
                node,
                "pxe boot once",
                Outcome::Changed,
                t.elapsed(),
                "boot override Pxe, Once".into(),
            ));
            let t = Instant::now();
            p.host_action(node, "powering on");
            bmc.power_on(runner)
                .await
                .map_err(|e| fail("powering on", e.to_string(), t.elapsed()))?;
            reporter.event(ev(
                node,
                "power on",
                Outcome::Changed,
                t.elapsed(),
                "ResetType On".into(),
            ));
            powered = true;
        }
    }
    // Its SSH, through the undercloud: backoff from 0.5 s to 5 s, until the timeout.
    p.host_action(node, "waiting for SSH");
    let t = Instant::now();
    let mut wait = Duration::from_millis(500);
    let mut tries = 0;
    let session = loop {
        tries += 1;
        let left = opts.boot_timeout.saturating_sub(t.elapsed());
        match fleet
            .connect_node(cloud, node, left.max(Duration::from_secs(1)))
            .await
        {
            Ok(s) => break s,
            Err(e) => {
                if t.elapsed() + wait >= opts.boot_timeout || tries >= 1000 {
                    return Err(fail(
                        "waiting for SSH",
                        format!(
                            "{node} ({}) did not answer SSH within {:.0} s after power-on ({tries} tries; last: {e}); check its console through the BMC, its PXE/DHCP entry, or raise --boot-timeout",
                            host.ctlplane_ip,
                            opts.boot_timeout.as_secs_f64()
                        ),
                        t.elapsed(),
                    ));
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 3 / 2).min(Duration::from_secs(5));
            }
        }
    };
    reporter.event(ev(
        node,
        "ssh up",
        Outcome::Ok,
        t.elapsed(),
        format!("answered after {tries} tries"),
    ));
    // The expected machine, its hardware, its name.
    p.host_action(node, "introspecting");
    let t = Instant::now();
    let inv: Inventory = introspect::introspect(session.as_ref())
        .await
        .map_err(|e| fail("introspecting", e.to_string(), t.elapsed()))?;
    let role = cloud.roles.get(&host.role);
    let problems = match role {
        Some(r) => introspect::check_role(&inv, &r.name, &r.requirements, &host.macs),
        None => Vec::new(),
    };
    if !problems.is_empty() {
        return Err(fail(
            "checking its hardware",
            format!("{node} is not deployed: {}", problems.join("; ")),
            t.elapsed(),
        ));
    }
    let mac = host
        .macs
        .iter()
        .find(|m| inv.nics.values().any(|n| n.eq_ignore_ascii_case(m)))
        .cloned()
        .unwrap_or_default();
    reporter.event(ev(
        node,
        "introspect",
        Outcome::Ok,
        t.elapsed(),
        format!(
            "{} CPUs, {} MB, {} disks, MAC {mac}",
            inv.cpus,
            inv.memory_mb,
            inv.disks.len()
        ),
    ));
    if inv.hostname != host.name {
        let t = Instant::now();
        let n = shell_quote(&host.name);
        let out = session
            .exec(
                &format!("hostname {n} && echo {n} > /etc/hostname"),
                None,
                Duration::from_secs(60),
            )
            .await
            .map_err(|e| fail("setting its host name", e.to_string(), t.elapsed()))?;
        if !out.success() {
            return Err(fail(
                "setting its host name",
                out.stderr_text().trim().to_string(),
                t.elapsed(),
            ));
        }
        reporter.event(ev(
            node,
            "hostname",
            Outcome::Changed,
            t.elapsed(),
            host.name.clone(),
        ));
    }
    Ok((
        session,
        ProvisionedNode {
            time: opts.time.clone(),
            run_id: opts.run_id.clone(),
            how: if powered {
                "powered on".into()
            } else {
                "adopted".into()
            },
            mac,
            cpus: inv.cpus,
            memory_mb: inv.memory_mb,
            disks: inv.disks.clone(),
            nics: inv.nics.clone(),
            bmc: Some(host.bmc.clone()),
            role: host.role.clone(),
        },
        powered,
    ))
}

/// Provisioned nodes that are no longer in the inventory.
pub fn removed(cloud: &Cloud, rec: &NodesRecord) -> Vec<String> {
    rec.nodes
        .keys()
        .filter(|n| cloud.host(n).is_none())
        .cloned()
        .collect()
}

/// Powers off the nodes removed from the inventory through their recorded BMCs, and
/// drops them from the record. Returns (node, error) for those that failed.
pub async fn power_off_removed(
    cloud: &Cloud,
    fleet: &Fleet,
    nodes: &[String],
    reporter: &Reporter,
) -> Vec<(String, String)> {
    let mut record = match read_record(&fleet.undercloud, &cloud.name).await {
        Ok(r) => r,
        Err(e) => return nodes.iter().map(|n| (n.clone(), e.clone())).collect(),
    };
    let runner: &dyn crate::baremetal::Runner = fleet.undercloud.as_ref();
    let calls = nodes.iter().map(|n| {
        let rec = record.nodes.get(n).cloned();
        async move {
            let t = Instant::now();
            let Some(bmc) = rec.and_then(|r| r.bmc) else {
                return (
                    n.clone(),
                    Err("no BMC recorded for it".to_string()),
                    t.elapsed(),
                );
            };
            let target = match BmcTarget::for_bmc(n, &bmc, &cloud.secrets) {
                Ok(target) => target,
                Err(e) => return (n.clone(), Err(e.to_string()), t.elapsed()),
            };
            let r = target.power_off(runner).await.map_err(|e| e.to_string());
            (n.clone(), r, t.elapsed())
        }
    });
    let mut failed = Vec::new();
    for (n, r, d) in join_all(calls.collect()).await {
        match r {
            Ok(()) => {
                reporter.event(ev(
                    &n,
                    "power off (removed from the inventory)",
                    Outcome::Changed,
                    d,
                    "ForceOff".into(),
                ));
                record.nodes.remove(&n);
            }
            Err(e) => {
                reporter.event(ev(
                    &n,
                    "power off (removed from the inventory)",
                    Outcome::Failed,
                    d,
                    e.clone(),
                ));
                failed.push((n, e));
            }
        }
    }
    if let Err(e) = write_record(&fleet.undercloud, &cloud.name, &record, &cloud.ssh.user).await {
        failed.push(("(record)".into(), e));
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unrecorded_nodes_are_pending() {
        let mut rec = NodesRecord::default();
        rec.nodes.insert("a".into(), ProvisionedNode::default());
        let names = ["a".to_string(), "b".to_string()];
        assert_eq!(pending(names.iter(), &rec), vec!["b".to_string()]);
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<NodesRecord>(&json).unwrap(), rec);
    }
}
