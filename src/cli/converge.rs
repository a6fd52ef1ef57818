//! `provision plan` and `provision apply`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use provision::apply::{self, baremetal, lock, record, RunOutcome};
use provision::diff::format;
use provision::evaluate::Evaluation;
use provision::plan::saved::SavedPlan;
use provision::plan::{self, Gathered};
use provision::report::events::{self, EventLog};
use provision::report::progress::Progress;
use provision::report::{default_run_dir, Reporter};
use provision::transport::Fleet;

use crate::OutputFormat;

/// Longest a single remote command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

pub struct PlanArgs<'a> {
    pub inventory: &'a Path,
    pub ev: Evaluation,
    pub limit: Option<&'a str>,
    pub fmt: OutputFormat,
    pub detailed_exitcode: bool,
    pub accept_new: bool,
    pub parallel: usize,
    pub out: Option<&'a Path>,
}

pub fn plan(a: PlanArgs<'_>) -> ExitCode {
    let mut ev = a.ev;
    let runtime =
        match crate::apply_limit(a.inventory, &mut ev, a.limit).and_then(|()| crate::runtime()) {
            Ok(r) => r,
            Err(code) => return code,
        };
    runtime.block_on(async {
        let (fleet, record, pending) = match connect_cloud(&ev, a.accept_new, a.parallel).await {
            Ok(c) => c,
            Err(code) => return code,
        };
        let mut g = plan::gather_all(&ev.state, &fleet, COMMAND_TIMEOUT, true, true).await;
        let report = plan_report(
            &a.inventory.display().to_string(),
            &ev,
            &mut g,
            &pending,
            &record,
        );
        print!("{}", a.fmt.render(&report));
        for u in &g.unreachable {
            eprintln!("error: {}", u.error);
        }
        if !g.unreachable.is_empty() {
            eprintln!(
                "error: {} host(s) could not be read; the plan covers the others{}",
                g.unreachable.len(),
                if a.out.is_some() {
                    " and is not saved"
                } else {
                    ""
                }
            );
            return ExitCode::FAILURE;
        }
        if let Some(out) = a.out {
            let inventory =
                std::fs::canonicalize(a.inventory).unwrap_or_else(|_| a.inventory.to_path_buf());
            let saved = SavedPlan::new(
                inventory,
                a.limit.map(str::to_string),
                events::rfc3339_millis(SystemTime::now()),
                report.summary.clone(),
                &ev.state,
                &g.actual,
            );
            let text = serde_json::to_string_pretty(&saved).unwrap_or_default() + "\n";
            if let Err(e) = std::fs::write(out, text) {
                eprintln!("error: cannot write the plan to {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
            eprintln!(
                "Saved the plan to {}. To apply exactly this plan: provision apply {}",
                out.display(),
                out.display()
            );
        }
        if a.detailed_exitcode && report.has_changes() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        }
    })
}

pub struct ApplyArgs<'a> {
    pub target: &'a Path,
    pub limit: Option<&'a str>,
    pub parallel: usize,
    pub yes: bool,
    pub accept_new: bool,
    pub health_timeout: Duration,
    pub boot_timeout: Duration,
    pub power_off_removed: bool,
    pub run_dir: Option<PathBuf>,
}

pub fn apply(a: ApplyArgs<'_>) -> ExitCode {
    let saved = match SavedPlan::read(a.target) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (inventory, limit) = match &saved {
        Some(p) => {
            if a.limit.is_some() {
                eprintln!("error: --limit cannot be given with a saved plan: the plan's own limit ({}) applies", p.limit.as_deref().unwrap_or("none"));
                return ExitCode::FAILURE;
            }
            (p.inventory.clone(), p.limit.clone())
        }
        None => (a.target.to_path_buf(), a.limit.map(str::to_string)),
    };
    let mut ev = match crate::load(&inventory) {
        Ok(ev) => ev,
        Err(code) => return code,
    };
    let runtime = match crate::apply_limit(&inventory, &mut ev, limit.as_deref())
        .and_then(|()| crate::runtime())
    {
        Ok(r) => r,
        Err(code) => return code,
    };
    if let Some(p) = &saved {
        if let Err(e) = p.check_desired(&ev.state) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    runtime.block_on(async {
        let started = Instant::now();
        let mut fleet = match crate::open_fleet(&ev.cloud, &[], a.accept_new, a.parallel).await {
            Ok(f) => f,
            Err(code) => return code,
        };
        let run_id = events::new_run_id();
        let holder = format!(
            "{}@{} pid {} run {run_id} since {}",
            operator_name(),
            events::local_hostname(),
            std::process::id(),
            events::rfc3339_millis(SystemTime::now())
        );
        let held = match lock::acquire(&fleet.undercloud, &ev.cloud.name, &holder).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let code = converge(
            &a,
            &inventory,
            &ev,
            &mut fleet,
            saved.as_ref(),
            &run_id,
            started,
        )
        .await;
        held.release().await;
        code
    })
}

/// Everything apply does while it holds the lock.
async fn converge(
    a: &ApplyArgs<'_>,
    inventory: &Path,
    ev: &Evaluation,
    fleet: &mut Fleet,
    saved: Option<&SavedPlan>,
    run_id: &str,
    started: Instant,
) -> ExitCode {
    let label = inventory.display().to_string();
    // The undercloud stage: its checks, before any node or BMC is touched.
    match apply::undercloud::check(&ev.cloud, &fleet.undercloud).await {
        Ok(c) if c.problems.is_empty() => {}
        Ok(c) => {
            eprintln!(
                "error: the undercloud {} is not ready; nothing was changed:",
                ev.cloud.undercloud.name
            );
            for p in &c.problems {
                eprintln!("  - {p}");
            }
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: cannot check the undercloud: {e}");
            return ExitCode::FAILURE;
        }
    }
    let (record, pending) = match connect_provisioned(ev, fleet, a.parallel).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut g = plan::gather_all(&ev.state, fleet, COMMAND_TIMEOUT, saved.is_none(), true).await;
    let report = plan_report(&label, ev, &mut g, &pending, &record);
    let removed = baremetal::removed(&ev.cloud, &record);
    if let Some(p) = saved {
        if let Err(e) = p.check_actual(&g.actual) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let Gathered {
        mut actual,
        unreachable,
    } = g;
    if saved.is_none() && report.has_changes() {
        print!("{}", format::text(&report));
    }
    for u in &unreachable {
        eprintln!("error: {}", u.error);
    }
    if !report.has_changes() && unreachable.is_empty() {
        let nodes = actual.keys().filter(|h| ev.cloud.host(h).is_some()).count();
        println!(
            "\nNo changes. The undercloud and the {nodes} hosts match the inventory ({:.2} s).",
            started.elapsed().as_secs_f64()
        );
        return ExitCode::SUCCESS;
    }
    if saved.is_none() && !a.yes && report.has_changes() {
        if !std::io::stdin().is_terminal() {
            eprintln!("error: not applying without confirmation: pass --yes (standard input is not a terminal)");
            return ExitCode::FAILURE;
        }
        print!("\nApply these changes? Only 'yes' is accepted: ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() || answer.trim() != "yes" {
            eprintln!("Apply cancelled.");
            return ExitCode::FAILURE;
        }
    }
    let run_dir = a
        .run_dir
        .clone()
        .unwrap_or_else(|| default_run_dir(Path::new(".provision"), run_id));
    let log = match EventLog::create(&run_dir, run_id) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!(
                "warning: cannot create the event log in {}: {e}; applying without it",
                run_dir.display()
            );
            None
        }
    };
    let secrets = ev.cloud.secrets.clone();
    let reporter = Arc::new(Reporter::new(
        Progress::new(std::io::stderr().is_terminal()),
        log,
        Box::new(move |t: &str| secrets.redact(t)),
    ));
    let opts = apply::Options {
        parallel: a.parallel,
        timeout: COMMAND_TIMEOUT,
        health_timeout: a.health_timeout,
    };
    let mut failed_before: Vec<(String, apply::Failure)> = unreachable
        .iter()
        .map(|u| {
            (
                u.host.clone(),
                apply::Failure {
                    phase: "gather".into(),
                    action: "reading the actual state".into(),
                    message: u.error.to_string(),
                },
            )
        })
        .collect();
    // The undercloud stage, after its checks: its own services (DHCP/PXE and DNS, the
    // log receiver, the registry settings), which the nodes need to boot and to log.
    let (undercloud_state, overcloud_state) = split_planes(&ev.state);
    let uc_outcome = apply::run(
        &undercloud_state,
        &actual,
        &failed_before,
        &[],
        &ev.cloud.roles,
        fleet,
        &opts,
        reporter.clone(),
    )
    .await;
    if !uc_outcome.ok() {
        print_outcome(&uc_outcome, started);
        println!("\nThe undercloud stage failed: the bare-metal and overcloud stages did not run.");
        if let Err(e) = save_record(fleet, ev, &uc_outcome, run_id, &label).await {
            eprintln!("warning: cannot record this apply on the undercloud: {e}");
        }
        return ExitCode::FAILURE;
    }
    // The bare-metal stage: the nodes not yet provisioned, through their BMCs.
    let mut brought_up = Vec::new();
    if !pending.is_empty() {
        let stage_opts = baremetal::StageOptions {
            parallel: a.parallel,
            boot_timeout: a.boot_timeout,
            run_id: run_id.to_string(),
            time: events::rfc3339_millis(SystemTime::now()),
        };
        let results = baremetal::stage(
            &ev.cloud,
            fleet,
            &pending,
            record.clone(),
            &stage_opts,
            reporter.clone(),
        )
        .await;
        for r in results {
            match (r.session, r.failure) {
                (Some(s), None) => {
                    fleet.nodes.insert(r.node.clone(), Ok(s));
                    brought_up.push(r.node);
                }
                (_, failure) => {
                    let (action, message) = failure.unwrap_or_default();
                    failed_before.push((
                        r.node,
                        apply::Failure {
                            phase: "bare metal".into(),
                            action,
                            message,
                        },
                    ));
                }
            }
        }
        // What the new nodes hold (nothing of ours, unless adopted): read, not assumed.
        let new_state = provision::state::DesiredState {
            hosts: ev
                .state
                .hosts
                .iter()
                .filter(|(n, _)| brought_up.contains(n))
                .map(|(n, h)| (n.clone(), h.clone()))
                .collect(),
        };
        let g2 = plan::gather_all(&new_state, fleet, COMMAND_TIMEOUT, false, false).await;
        actual.extend(g2.actual);
        for u in g2.unreachable {
            failed_before.push((
                u.host.clone(),
                apply::Failure {
                    phase: "gather".into(),
                    action: "reading the actual state".into(),
                    message: u.error.to_string(),
                },
            ));
        }
    }
    let mut outcome = apply::run(
        &overcloud_state,
        &actual,
        &failed_before,
        &brought_up,
        &ev.cloud.roles,
        fleet,
        &opts,
        reporter.clone(),
    )
    .await;
    outcome.hosts.extend(uc_outcome.hosts);
    outcome.seconds += uc_outcome.seconds;
    print_outcome(&outcome, started);
    let mut removal_failed = false;
    if !removed.is_empty() {
        if a.power_off_removed {
            let failed = baremetal::power_off_removed(&ev.cloud, fleet, &removed, &reporter).await;
            for (n, e) in &failed {
                println!("  {n}: NOT powered off: {e}");
            }
            removal_failed = !failed.is_empty();
            println!(
                "Powered off and forgot {} node(s) removed from the inventory.",
                removed.len() - failed.len()
            );
        } else {
            println!(
                "{} provisioned node(s) are no longer in the inventory ({}): left as they are; `apply --power-off-removed` powers them off.",
                removed.len(),
                removed.join(", ")
            );
        }
    }
    if let Some(p) = reporter.log_path() {
        println!("Event log: {}", p.display());
    }
    if let Err(e) = save_record(fleet, ev, &outcome, run_id, &label).await {
        eprintln!(
            "warning: cannot record this apply on the undercloud ({}): {e}",
            record::record_path(&ev.cloud.name)
        );
    }
    if outcome.ok() && !removal_failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Connects to the undercloud, reads which nodes are provisioned, and connects to
/// those; the others are left to the bare-metal stage.
async fn connect_cloud(
    ev: &Evaluation,
    accept_new: bool,
    parallel: usize,
) -> Result<(Fleet, baremetal::NodesRecord, Vec<String>), ExitCode> {
    let mut fleet = crate::open_fleet(&ev.cloud, &[], accept_new, parallel).await?;
    let (record, pending) = connect_provisioned(ev, &mut fleet, parallel).await?;
    Ok((fleet, record, pending))
}

/// Reads which nodes are provisioned and connects to those of this run; the others
/// (returned) are left to the bare-metal stage.
async fn connect_provisioned(
    ev: &Evaluation,
    fleet: &mut Fleet,
    parallel: usize,
) -> Result<(baremetal::NodesRecord, Vec<String>), ExitCode> {
    let (record, pending) = read_nodes(ev, fleet).await?;
    let provisioned: Vec<String> = ev
        .state
        .hosts
        .keys()
        .filter(|n| !pending.contains(n))
        .cloned()
        .collect();
    fleet.connect_nodes(&ev.cloud, &provisioned, parallel).await;
    Ok((record, pending))
}

/// The record of provisioned nodes, and the nodes of this run not in it.
async fn read_nodes(
    ev: &Evaluation,
    fleet: &Fleet,
) -> Result<(baremetal::NodesRecord, Vec<String>), ExitCode> {
    let record = baremetal::read_record(&fleet.undercloud, &ev.cloud.name)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })?;
    let nodes = ev.state.hosts.keys().filter(|n| ev.cloud.host(n).is_some());
    let pending = baremetal::pending(nodes, &record);
    Ok((record, pending))
}

/// The undercloud's desired state and the overcloud's, apart: they are applied in
/// their own stages.
fn split_planes(
    state: &provision::state::DesiredState,
) -> (
    provision::state::DesiredState,
    provision::state::DesiredState,
) {
    let (uc, oc): (Vec<_>, Vec<_>) = state
        .hosts
        .iter()
        .map(|(n, h)| (n.clone(), h.clone()))
        .partition(|(_, h)| h.plane == provision::state::Plane::Undercloud);
    (
        provision::state::DesiredState {
            hosts: uc.into_iter().collect(),
        },
        provision::state::DesiredState {
            hosts: oc.into_iter().collect(),
        },
    )
}

/// The plan: nodes to provision first (their hosts compared with an empty one), then
/// every host's changes.
fn plan_report(
    label: &str,
    ev: &Evaluation,
    g: &mut Gathered,
    pending: &[String],
    record: &baremetal::NodesRecord,
) -> provision::diff::Report {
    for n in pending {
        g.actual.entry(n.clone()).or_default();
    }
    let mut report = plan::compare(label, &ev.state, &g.actual, &ev.cloud.secrets);
    report.nodes = pending
        .iter()
        .map(|n| provision::diff::NodeChange {
            node: n.clone(),
            role: ev
                .state
                .hosts
                .get(n)
                .map(|h| h.role.clone())
                .unwrap_or_default(),
            change: "provision".into(),
            action: baremetal::describe(&ev.cloud, n),
        })
        .collect();
    for n in baremetal::removed(&ev.cloud, record) {
        report.nodes.push(provision::diff::NodeChange {
            role: record.nodes[&n].role.clone(),
            node: n,
            change: "remove".into(),
            action: "provisioned, no longer in the inventory: `apply --power-off-removed` powers it off through its BMC and forgets it".into(),
        });
    }
    report.summary.nodes_to_provision = pending.len();
    report
}

fn print_outcome(o: &RunOutcome, started: Instant) {
    let sum = |f: fn(&apply::HostOutcome) -> usize| o.hosts.values().map(f).sum::<usize>();
    let changed = o.hosts.values().filter(|h| h.changes() > 0).count();
    let failed = o.failed();
    let mut parts = vec![
        apply::count(sum(|h| h.files_written), "file", "written"),
        apply::count(sum(|h| h.directories_fixed), "directory", "fixed"),
    ];
    for (what, n) in [
        ("created", sum(|h| h.containers_created)),
        ("recreated", sum(|h| h.containers_recreated)),
        ("started", sum(|h| h.containers_started)),
        ("removed", sum(|h| h.containers_removed)),
    ] {
        if n > 0 {
            parts.push(apply::count(n, "container", what));
        }
    }
    let verdict = if o.ok() {
        "Apply complete"
    } else {
        "Apply FAILED"
    };
    println!(
        "\n{verdict}: {} on {changed} of {} hosts, in {:.2} s.",
        parts.join(", "),
        o.hosts.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        println!("\n{} host(s) failed:", failed.len());
        for h in failed {
            if let Some(f) = &h.failure {
                println!("  {} ({}): {}: {}", h.host, h.role, f.phase, f.action);
                for line in f.message.lines().take(30) {
                    println!("      {line}");
                }
            }
        }
        println!("Re-run apply to resume: it reads every host again and does only what is left.");
    }
    if let Some(why) = &o.stopped {
        println!("\nThe run stopped: {why}.");
    }
}

/// Updates the last-apply record on the undercloud (read, merge, atomic write).
async fn save_record(
    fleet: &Fleet,
    ev: &Evaluation,
    outcome: &RunOutcome,
    run_id: &str,
    inventory: &str,
) -> Result<(), String> {
    let path = record::record_path(&ev.cloud.name);
    let prev = fleet
        .undercloud
        .exec(
            &format!(
                "cat {} 2>/dev/null || true",
                provision::transport::shell_quote(&path)
            ),
            None,
            COMMAND_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())?;
    let previous: Option<record::ApplyRecord> = serde_json::from_slice(&prev.stdout).ok();
    let operator = format!("{}@{}", operator_name(), events::local_hostname());
    let rec = record::updated(
        previous,
        outcome,
        &ev.state,
        run_id,
        &events::rfc3339_millis(SystemTime::now()),
        &operator,
        inventory,
    );
    let text = serde_json::to_string_pretty(&rec).map_err(|e| e.to_string())? + "\n";
    fleet
        .undercloud
        .upload(
            &path,
            text.as_bytes(),
            0o600,
            &ev.cloud.ssh.user,
            &ev.cloud.ssh.user,
            COMMAND_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())
}

/// Who runs this: $USER or $LOGNAME, else the uid.
fn operator_name() -> String {
    use std::os::unix::fs::MetadataExt;
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            std::fs::metadata("/proc/self")
                .map(|m| format!("uid {}", m.uid()))
                .unwrap_or_else(|_| "unknown".into())
        })
}
