//! Bringing a node up through the undercloud (the SSH edge of the bare-metal stage):
//! one-time PXE boot and power on through its BMC, its SSH waited for, the machine
//! checked (its MAC, its hardware against its role) and named. Powering removed nodes
//! off. The stage's bookkeeping (what to bring up, the record) is
//! [`crate::apply::baremetal`]'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sessions::Sessions;
use super::{ActionFailed, BringUp};
use crate::baremetal::introspect::{self, Inventory};
use crate::baremetal::record::ProvisionedNode;
use crate::baremetal::{BmcTarget, PowerState, Runner};
use crate::inventory::spec::BmcDriver;
use crate::model::{Bmc, Cloud};
use crate::report::{Event, Outcome, Reporter, Stage};
use crate::transport::{shell_quote, Session};

fn ev(node: &str, action: &str, outcome: Outcome, d: Duration, message: String) -> Event {
    Event::new(Stage::Baremetal, Some(node), action)
        .took(d)
        .outcome(outcome, message)
}

/// Brings one node up: reads its power state through its BMC, and if it is off sets a
/// one-time PXE boot and powers it on; waits for its SSH (through the undercloud, with
/// backoff, until `boot_timeout`); checks it is the expected machine and meets its
/// role's requirements (introspection); sets its host name. Returns its session and
/// The action of a node the interrupted run did not start bringing up.
pub const NOT_STARTED: &str = "bringing it up: not started (the run was interrupted)";

/// The result of a node the interrupted run did not start bringing up.
pub fn not_started() -> ActionFailed {
    ActionFailed {
        action: NOT_STARTED.into(),
        message: String::new(),
    }
}

/// what to record of it.
pub async fn bring_up(
    cloud: &Cloud,
    fleet: &Sessions,
    node: &str,
    opts: &BringUp,
    reporter: &Reporter,
) -> Result<(Arc<Session>, ProvisionedNode), ActionFailed> {
    let fail = Fail { node, reporter };
    let Some(host) = cloud.host(node) else {
        return Err(fail.at(
            "finding the node",
            "not in the inventory".into(),
            Duration::ZERO,
        ));
    };
    let powered = if host.bmc.driver == BmcDriver::None {
        false
    } else {
        power_on_if_off(cloud, host, fleet.undercloud.as_ref(), &fail).await?
    };
    let session = wait_for_ssh(cloud, fleet, host, opts, &fail).await?;
    let (inv, mac) = identify(cloud, host, &session, &fail).await?;
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
    ))
}

/// Records a failed action of the node as an event, and returns it.
struct Fail<'a> {
    node: &'a str,
    reporter: &'a Reporter,
}

impl Fail<'_> {
    fn at(&self, action: &str, message: String, d: Duration) -> ActionFailed {
        let message = self.reporter.redact(&message);
        self.reporter
            .event(ev(self.node, action, Outcome::Failed, d, message.clone()));
        ActionFailed {
            action: action.to_string(),
            message,
        }
    }
}

/// Reads the node's power state through its BMC; if it is not on, sets a one-time PXE
/// boot and powers it on. Returns whether it powered it on.
async fn power_on_if_off(
    cloud: &Cloud,
    host: &crate::model::Host,
    runner: &dyn Runner,
    fail: &Fail<'_>,
) -> Result<bool, ActionFailed> {
    let (node, reporter) = (fail.node, fail.reporter);
    let p = reporter.progress();
    let t = Instant::now();
    let bmc = BmcTarget::for_host(host, &cloud.secrets)
        .map_err(|e| fail.at("reading its BMC settings", e.to_string(), t.elapsed()))?;
    p.host_action(node, "reading power state");
    let state = bmc
        .power_state(runner)
        .await
        .map_err(|e| fail.at("reading the power state", e.to_string(), t.elapsed()))?;
    reporter.event(ev(
        node,
        "power state",
        Outcome::Ok,
        t.elapsed(),
        format!("{state} ({})", bmc.endpoint()),
    ));
    if state == PowerState::On {
        return Ok(false);
    }
    let t = Instant::now();
    p.host_action(node, "one-time PXE boot");
    bmc.set_pxe_once(runner)
        .await
        .map_err(|e| fail.at("setting a one-time PXE boot", e.to_string(), t.elapsed()))?;
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
        .map_err(|e| fail.at("powering on", e.to_string(), t.elapsed()))?;
    reporter.event(ev(
        node,
        "power on",
        Outcome::Changed,
        t.elapsed(),
        "ResetType On".into(),
    ));
    Ok(true)
}

/// Waits for the node's SSH, through the undercloud: backoff from 0.5 s to 5 s, until
/// the boot timeout (at most 1000 tries).
async fn wait_for_ssh(
    cloud: &Cloud,
    fleet: &Sessions,
    host: &crate::model::Host,
    opts: &BringUp,
    fail: &Fail<'_>,
) -> Result<Arc<Session>, ActionFailed> {
    let node = fail.node;
    fail.reporter
        .progress()
        .host_action(node, "waiting for SSH");
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
                    return Err(fail.at(
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
    fail.reporter.event(ev(
        node,
        "ssh up",
        Outcome::Ok,
        t.elapsed(),
        format!("answered after {tries} tries"),
    ));
    Ok(session)
}

/// Introspects the node, checks its hardware against its role and that it has one of
/// its MACs, and sets its host name. Returns what was found and the MAC.
async fn identify(
    cloud: &Cloud,
    host: &crate::model::Host,
    session: &Session,
    fail: &Fail<'_>,
) -> Result<(Inventory, String), ActionFailed> {
    let (node, reporter) = (fail.node, fail.reporter);
    let p = reporter.progress();
    p.host_action(node, "introspecting");
    let t = Instant::now();
    let inv: Inventory = introspect::introspect(session)
        .await
        .map_err(|e| fail.at("introspecting", e.to_string(), t.elapsed()))?;
    let role = cloud.roles.get(&host.role);
    let problems = match role {
        Some(r) => introspect::check_role(&inv, &r.name, &r.requirements, &host.macs),
        None => Vec::new(),
    };
    if !problems.is_empty() {
        return Err(fail.at(
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
            .map_err(|e| fail.at("setting its host name", e.to_string(), t.elapsed()))?;
        if !out.success() {
            return Err(fail.at(
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
    Ok((inv, mac))
}

/// Powers `nodes` off through their BMCs (their recorded settings), all at once.
pub async fn power_off(
    cloud: &Cloud,
    undercloud: &Session,
    nodes: &[(String, Bmc)],
) -> Vec<(String, Result<(), String>)> {
    let runner: &dyn Runner = undercloud;
    let calls = nodes.iter().map(|(n, bmc)| async move {
        let r = match BmcTarget::for_bmc(n, bmc, &cloud.secrets) {
            Ok(target) => target.power_off(runner).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        (n.clone(), r)
    });
    super::join_all(calls.collect()).await
}
