//! `provision apply`: converging the overcloud hosts, phase by phase.
//!
//! The actual state of every host has been read before (one command per host, by
//! [`crate::plan::gather_all`]); apply works from it and reads nothing again:
//!
//! - **host preparation** (step 0): per host, containers no longer desired are removed
//!   with their configuration, directories are created or fixed, and every file whose
//!   content, mode or owner differs is written in one atomic batch;
//! - **deploy steps 1..N** (TripleO's steps): per host, the containers of that step whose
//!   config hash changed are recreated, new ones created, stopped ones started, then
//!   their healthchecks are waited for. A step starts on any host only once the
//!   previous one has finished on all hosts.
//!
//! Inside a phase, hosts run in parallel (at most `parallel` at a time), each host's
//! work one command. A host that fails is left out of the later phases; the others
//! finish the phase. After each phase, a role whose failed hosts exceed its
//! `max_fail_percentage` stops the run.

pub mod baremetal;
pub mod containers;
pub mod files;
pub mod lock;
pub mod record;
pub mod undercloud;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::model::Role;
use crate::plan::gather::ActualHost;
use crate::report::events::{Event, Level, Outcome};
use crate::report::Reporter;
use crate::state::{DesiredState, FileKind, HostState, Plane};
use crate::transport::{Fleet, Session, UploadFile};
use containers::{ContainerOp, ContainerTask};

/// How apply runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts worked on at a time inside a phase.
    pub parallel: usize,
    /// Longest a single remote command may take.
    pub timeout: Duration,
    /// Longest to wait for the healthchecks of a step's containers on a host.
    pub health_timeout: Duration,
}

/// Why a host failed, and where.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failure {
    /// `connect`, `gather`, `host preparation` or `step N`.
    pub phase: String,
    /// What was being done, e.g. `writing 12 files`, `recreate container keystone`.
    pub action: String,
    /// The remote error output or the transport's error (secrets redacted).
    pub message: String,
}

/// What apply did on one host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostOutcome {
    pub host: String,
    pub role: String,
    pub files_written: usize,
    pub directories_fixed: usize,
    pub containers_created: usize,
    pub containers_recreated: usize,
    pub containers_started: usize,
    pub containers_removed: usize,
    /// Brought up by the bare-metal stage in this run.
    pub provisioned: bool,
    pub seconds: f64,
    pub failure: Option<Failure>,
}

impl HostOutcome {
    pub fn changes(&self) -> usize {
        self.files_written
            + self.directories_fixed
            + self.containers_created
            + self.containers_recreated
            + self.containers_started
            + self.containers_removed
            + usize::from(self.provisioned)
    }
}

/// What a whole apply did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunOutcome {
    pub hosts: BTreeMap<String, HostOutcome>,
    /// Set when a role's failures went over its tolerated percentage: what stopped the
    /// run, after which phase.
    pub stopped: Option<String>,
    pub seconds: f64,
}

impl RunOutcome {
    pub fn failed(&self) -> Vec<&HostOutcome> {
        self.hosts
            .values()
            .filter(|h| h.failure.is_some())
            .collect()
    }
    pub fn changes(&self) -> usize {
        self.hosts.values().map(HostOutcome::changes).sum()
    }
    pub fn ok(&self) -> bool {
        self.stopped.is_none() && self.failed().is_empty()
    }
}

/// One host's inputs for a phase.
struct HostWork {
    name: String,
    session: Arc<Session>,
    desired: Arc<HostState>,
    actual: Arc<ActualHost>,
}

/// What one host did in one phase.
#[derive(Default)]
struct PhaseResult {
    files: usize,
    dirs: usize,
    created: usize,
    recreated: usize,
    started: usize,
    removed: usize,
    summary: Vec<String>,
}

/// Applies `desired` to the hosts whose actual state is in `actual`. `failed_before`:
/// hosts that failed earlier (could not be read, or failed the bare-metal stage);
/// `provisioned`: hosts the bare-metal stage brought up in this run.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    desired: &DesiredState,
    actual: &BTreeMap<String, ActualHost>,
    failed_before: &[(String, Failure)],
    provisioned: &[String],
    roles: &BTreeMap<String, Role>,
    fleet: &Fleet,
    opts: &Options,
    reporter: Arc<Reporter>,
) -> RunOutcome {
    let started = Instant::now();
    let mut out = RunOutcome::default();
    let mut work: Vec<HostWork> = Vec::new();
    for (name, hs) in &desired.hosts {
        out.hosts.insert(
            name.clone(),
            HostOutcome {
                host: name.clone(),
                role: hs.role.clone(),
                ..Default::default()
            },
        );
        if let (Some(a), Some(Ok(session))) = (actual.get(name), fleet.session(name)) {
            work.push(HostWork {
                name: name.clone(),
                session: session.clone(),
                desired: Arc::new(hs.clone()),
                actual: Arc::new(a.clone()),
            });
        }
    }
    for (host, f) in failed_before {
        if let Some(h) = out.hosts.get_mut(host) {
            h.failure = Some(Failure {
                message: reporter.redact(&f.message),
                ..f.clone()
            });
        }
    }
    for host in provisioned {
        if let Some(h) = out.hosts.get_mut(host) {
            h.provisioned = true;
        }
    }
    // Failures before the overcloud stage (bare metal) may already be too many.
    if let Some(why) = over_tolerance(&out, roles) {
        let stop = format!("{why}; stopped after the bare-metal stage");
        reporter.event(tolerance_stop("baremetal", None, &stop));
        out.stopped = Some(stop);
        out.seconds = started.elapsed().as_secs_f64();
        return out;
    }
    let max_step = desired
        .hosts
        .values()
        .flat_map(|h| h.containers.values().map(|c| c.step))
        .max()
        .unwrap_or(0);

    // The undercloud stage applies the undercloud alone; any other run is the overcloud's.
    let undercloud_only =
        !desired.hosts.is_empty() && desired.hosts.values().all(|h| h.plane == Plane::Undercloud);
    let plane = if undercloud_only {
        Plane::Undercloud
    } else {
        Plane::Overcloud
    };
    let mut phases: Vec<Option<u8>> = vec![None];
    phases.extend((1..=max_step).map(Some));
    for step in phases {
        let phase_name = match step {
            None => "host preparation".to_string(),
            Some(s) => format!("step {s}"),
        };
        // The hosts with something to do in this phase, and not failed before.
        let todo: Vec<&HostWork> = work
            .iter()
            .filter(|w| out.hosts[&w.name].failure.is_none())
            .filter(|w| match step {
                None => true,
                Some(s) => {
                    containers::step_tasks(&w.desired, &w.actual.containers).contains_key(&s)
                }
            })
            .collect();
        let title = match step {
            None => format!(
                "host preparation: files and directories on {} hosts",
                todo.len()
            ),
            Some(s) => format!("step {s}/{max_step}: containers on {} hosts", todo.len()),
        };
        let title = match plane {
            Plane::Undercloud => format!("undercloud {title}"),
            Plane::Overcloud => title,
        };
        reporter.progress().phase(&title, todo.len());
        let limit = Arc::new(Semaphore::new(opts.parallel.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for w in todo {
            let (name, session, desired, actual) = (
                w.name.clone(),
                w.session.clone(),
                w.desired.clone(),
                w.actual.clone(),
            );
            let (limit, reporter, opts) = (limit.clone(), reporter.clone(), opts.clone());
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let t = Instant::now();
                let r = match step {
                    None => prepare_host(&session, &desired, &actual, &opts, &reporter).await,
                    Some(s) => run_step(&session, &desired, &actual, s, &opts, &reporter).await,
                };
                (name, r, t.elapsed())
            });
        }
        while let Some(done) = tasks.join_next().await {
            let Ok((name, r, took)) = done else { continue };
            let Some(h) = out.hosts.get_mut(&name) else {
                continue;
            };
            h.seconds += took.as_secs_f64();
            match r {
                Ok(p) => {
                    h.files_written += p.files;
                    h.directories_fixed += p.dirs;
                    h.containers_created += p.created;
                    h.containers_recreated += p.recreated;
                    h.containers_started += p.started;
                    h.containers_removed += p.removed;
                    let summary = if p.summary.is_empty() {
                        "no change".to_string()
                    } else {
                        p.summary.join(", ")
                    };
                    reporter
                        .progress()
                        .host_done(&name, &format!("{phase_name}: {summary}"), true);
                }
                Err((action, message)) => {
                    reporter.progress().host_done(
                        &name,
                        &format!("{phase_name}: FAILED {action}"),
                        false,
                    );
                    h.failure = Some(Failure {
                        phase: phase_name.clone(),
                        action,
                        message,
                    });
                }
            }
        }
        if let Some(why) = over_tolerance(&out, roles) {
            let stop = format!("{why}; stopped after {phase_name}");
            reporter.event(tolerance_stop(plane.stage(), step, &stop));
            out.stopped = Some(stop);
            break;
        }
    }
    // The stamp of running containers, for the next plan (see Plane::running_stamp): on every
    // host that converged and whose containers changed or were read from podman.
    let mut stamps = tokio::task::JoinSet::new();
    for w in &work {
        let h = &out.hosts[&w.name];
        let touched = h.containers_created
            + h.containers_recreated
            + h.containers_started
            + h.containers_removed
            > 0;
        if h.failure.is_none()
            && out.stopped.is_none()
            && (touched || !w.actual.from_stamp)
            && !w.desired.containers.is_empty()
        {
            let (session, timeout, plane) = (w.session.clone(), opts.timeout, w.desired.plane);
            stamps.spawn(async move {
                let _ = session
                    .exec(&crate::plan::gather::stamp_command(plane), None, timeout)
                    .await;
            });
        }
    }
    while stamps.join_next().await.is_some() {}
    reporter.progress().finish();
    out.seconds = started.elapsed().as_secs_f64();
    out
}

/// The first role whose failed hosts are more than its `max_fail_percentage` of its
/// hosts in this run.
pub fn over_tolerance(out: &RunOutcome, roles: &BTreeMap<String, Role>) -> Option<String> {
    let mut per_role: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for h in out.hosts.values() {
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
                "{failed} of {total} {role} hosts failed ({}%), more than its max_fail_percentage of {max}%",
                failed * 100 / total
            ));
        }
    }
    None
}

/// The event of a run stopped by a role's max fail percentage.
fn tolerance_stop(stage: &str, step: Option<u8>, message: &str) -> Event {
    Event {
        level: Level::Error,
        host: None,
        stage: stage.into(),
        step,
        action: "max fail percentage".into(),
        target: None,
        outcome: Outcome::Failed,
        duration: Duration::ZERO,
        message: message.to_string(),
    }
}

fn event(
    stage: &str,
    host: &str,
    step: Option<u8>,
    action: &str,
    target: Option<&str>,
    outcome: Outcome,
    duration: Duration,
    message: String,
) -> Event {
    Event {
        level: match outcome {
            Outcome::Failed => Level::Error,
            _ => Level::Info,
        },
        host: Some(host.to_string()),
        stage: stage.into(),
        step: Some(step.unwrap_or(0)),
        action: action.into(),
        target: target.map(str::to_string),
        outcome,
        duration,
        message,
    }
}

/// Step 0 on one host: remove what is no longer desired, fix directories, write files.
async fn prepare_host(
    session: &Session,
    desired: &HostState,
    actual: &ActualHost,
    opts: &Options,
    reporter: &Reporter,
) -> Result<PhaseResult, (String, String)> {
    let host = desired.name.as_str();
    let stage = desired.plane.stage();
    let mut r = PhaseResult::default();
    let p = reporter.progress();
    let removals = containers::removals(desired, &actual.containers);
    let dirs = files::dirs_to_fix(desired, actual);
    if !removals.is_empty() {
        p.host_action(host, &format!("removing {} containers", removals.len()));
        let t = Instant::now();
        let script = containers::removal_script(&removals, desired.plane);
        let out = session
            .exec(&script, None, opts.timeout)
            .await
            .map_err(|e| {
                fail(
                    reporter,
                    stage,
                    host,
                    None,
                    "removing containers",
                    None,
                    e.to_string(),
                )
            })?;
        let reports = containers::parse_report(&out.stdout_text());
        for t_ in &removals {
            let rep = reports.get(&t_.name).cloned().unwrap_or_default();
            if rep.ok() && !rep.actions.is_empty() {
                r.removed += 1;
                reporter.event(event(
                    stage,
                    host,
                    None,
                    "remove container",
                    Some(&t_.name),
                    Outcome::Changed,
                    t.elapsed(),
                    "stopped and removed, with its configuration (its logs stay)".into(),
                ));
            } else {
                let msg = if rep.errors.is_empty() {
                    "the removal did not run".to_string()
                } else {
                    rep.errors.join("\n")
                };
                return Err(fail(
                    reporter,
                    stage,
                    host,
                    None,
                    &format!("remove container {}", t_.name),
                    Some(&t_.name),
                    msg,
                ));
            }
        }
        r.summary.push(count(r.removed, "container", "removed"));
    }
    if !dirs.is_empty() {
        p.host_action(host, &format!("fixing {} directories", dirs.len()));
        let t = Instant::now();
        checked(
            session,
            &files::dirs_script(&dirs),
            opts,
            reporter,
            stage,
            host,
            "creating directories",
        )
        .await?;
        for d in &dirs {
            reporter.event(event(
                stage,
                host,
                None,
                "directory",
                Some(&d.path),
                Outcome::Changed,
                t.elapsed(),
                format!("{} {}:{}", d.mode, d.owner, d.group),
            ));
        }
        r.dirs = dirs.len();
        r.summary.push(count(dirs.len(), "directory", "fixed"));
    }
    let to_write = files::files_to_write(desired, actual);
    if !to_write.is_empty() {
        p.host_action(host, &format!("writing {} files", to_write.len()));
        let t = Instant::now();
        let batch: Vec<UploadFile> = to_write
            .iter()
            .map(|f| UploadFile {
                path: &f.path,
                content: f.content.as_bytes(),
                mode: f.mode,
                owner: &f.owner,
                group: &f.group,
            })
            .collect();
        session
            .upload_batch(&batch, opts.timeout)
            .await
            .map_err(|e| {
                fail(
                    reporter,
                    stage,
                    host,
                    None,
                    &format!("writing {} files", batch.len()),
                    None,
                    e.to_string(),
                )
            })?;
        for f in &to_write {
            let what = if actual.paths.contains_key(&f.path) {
                "changed"
            } else {
                "created"
            };
            reporter.event(event(
                stage,
                host,
                None,
                "write file",
                Some(&f.path),
                Outcome::Changed,
                t.elapsed(),
                format!(
                    "{what}, mode {:04o} {}:{} (one batch of {})",
                    f.mode,
                    f.owner,
                    f.group,
                    to_write.len()
                ),
            ));
        }
        r.files = to_write.len();
        r.summary.push(count(to_write.len(), "file", "written"));
        // Units written: systemd reads them again, and starts those containers at boot.
        let units: Vec<String> = to_write
            .iter()
            .filter_map(|f| match &f.kind {
                FileKind::Unit { container } if containers::safe_name(container) => {
                    Some(crate::state::unit_name(container))
                }
                _ => None,
            })
            .collect();
        if !units.is_empty() {
            p.host_action(host, &format!("enabling {} units", units.len()));
            let t = Instant::now();
            let cmd = format!(
                "systemctl daemon-reload && systemctl enable {}",
                units.join(" ")
            );
            checked(
                session,
                &cmd,
                opts,
                reporter,
                stage,
                host,
                "enabling container units",
            )
            .await?;
            for u in &units {
                reporter.event(event(
                    stage,
                    host,
                    None,
                    "enable unit",
                    Some(u),
                    Outcome::Changed,
                    t.elapsed(),
                    "systemctl enable".into(),
                ));
            }
        }
    }
    Ok(r)
}

/// Deploy step `step` on one host: its containers, then their healthchecks.
async fn run_step(
    session: &Session,
    desired: &HostState,
    actual: &ActualHost,
    step: u8,
    opts: &Options,
    reporter: &Reporter,
) -> Result<PhaseResult, (String, String)> {
    let host = desired.name.as_str();
    let stage = desired.plane.stage();
    let all = containers::step_tasks(desired, &actual.containers);
    let tasks: &[ContainerTask] = all.get(&step).map(Vec::as_slice).unwrap_or_default();
    let mut r = PhaseResult::default();
    if tasks.is_empty() {
        return Ok(r);
    }
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    reporter
        .progress()
        .host_action(host, &format!("step {step}: {}", names.join(", ")));
    let script = containers::step_script(tasks, opts.health_timeout);
    let out = session
        .exec(&script, None, opts.timeout + opts.health_timeout)
        .await
        .map_err(|e| {
            fail(
                reporter,
                stage,
                host,
                Some(step),
                "running the step's containers",
                None,
                e.to_string(),
            )
        })?;
    let reports = containers::parse_report(&out.stdout_text());
    let mut failures = Vec::new();
    for t in tasks {
        let rep = reports.get(&t.name).cloned().unwrap_or_default();
        let ms: u64 = rep.actions.iter().map(|a| a.2).sum();
        let failed_action = rep.actions.iter().find(|a| a.1 != 0);
        if rep.actions.is_empty() || failed_action.is_some() {
            let what = failed_action
                .map(|a| a.0.clone())
                .unwrap_or_else(|| t.op.verb().into());
            let msg = if rep.errors.is_empty() {
                format!("podman {what} did not run: {}", out.stderr_text().trim())
            } else {
                rep.errors.join("\n")
            };
            reporter.event(event(
                stage,
                host,
                Some(step),
                &format!("{what} container"),
                Some(&t.name),
                Outcome::Failed,
                Duration::from_millis(ms),
                msg.clone(),
            ));
            failures.push((format!("{what} container {}", t.name), msg));
            continue;
        }
        match t.op {
            ContainerOp::Create => r.created += 1,
            ContainerOp::Recreate => r.recreated += 1,
            ContainerOp::Start => r.started += 1,
            ContainerOp::Remove => r.removed += 1,
        }
        reporter.event(event(
            stage,
            host,
            Some(step),
            &format!("{} container", t.op.verb()),
            Some(&t.name),
            Outcome::Changed,
            Duration::from_millis(ms),
            format!("image {}", t.def.map(|d| d.image.as_str()).unwrap_or("")),
        ));
        match rep.healthy {
            Some((true, waited)) => reporter.event(event(
                stage,
                host,
                Some(step),
                "health",
                Some(&t.name),
                Outcome::Ok,
                Duration::from_millis(waited),
                "healthy".into(),
            )),
            Some((false, waited)) => {
                let msg = format!(
                    "unhealthy after {:.1} s; its last log lines:\n{}",
                    waited as f64 / 1000.0,
                    rep.logs.join("\n")
                );
                reporter.event(event(
                    stage,
                    host,
                    Some(step),
                    "health",
                    Some(&t.name),
                    Outcome::Failed,
                    Duration::from_millis(waited),
                    msg.clone(),
                ));
                failures.push((format!("healthcheck of {}", t.name), msg));
            }
            None => {}
        }
    }
    for (verb, n) in [
        ("created", r.created),
        ("recreated", r.recreated),
        ("started", r.started),
    ] {
        if n > 0 {
            r.summary.push(count(n, "container", verb));
        }
    }
    if let Some((action, _)) = failures.first() {
        let message = failures
            .iter()
            .map(|(a, m)| format!("{a}: {m}"))
            .collect::<Vec<_>>()
            .join("\n");
        return Err((action.clone(), reporter.redact(&message)));
    }
    Ok(r)
}

/// `1 file written`, `2 files written`, `3 directories fixed`.
pub fn count(n: usize, noun: &str, verb: &str) -> String {
    let plural = if n == 1 {
        noun.to_string()
    } else if let Some(stem) = noun.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{noun}s")
    };
    format!("{n} {plural} {verb}")
}

/// Runs a host-preparation command; a transport error or a non-zero status (with its
/// stderr) is recorded as the failure of `action`.
async fn checked(
    session: &Session,
    cmd: &str,
    opts: &Options,
    reporter: &Reporter,
    stage: &str,
    host: &str,
    action: &str,
) -> Result<(), (String, String)> {
    let out = session
        .exec(cmd, None, opts.timeout)
        .await
        .map_err(|e| fail(reporter, stage, host, None, action, None, e.to_string()))?;
    if out.success() {
        Ok(())
    } else {
        Err(fail(
            reporter,
            stage,
            host,
            None,
            action,
            None,
            out.stderr_text().trim().to_string(),
        ))
    }
}

/// Records a failure event and returns it as (action, message).
fn fail(
    reporter: &Reporter,
    stage: &str,
    host: &str,
    step: Option<u8>,
    action: &str,
    target: Option<&str>,
    message: String,
) -> (String, String) {
    let message = reporter.redact(&message);
    reporter.event(event(
        stage,
        host,
        step,
        action,
        target,
        Outcome::Failed,
        Duration::ZERO,
        message.clone(),
    ));
    (action.to_string(), message)
}
