//! One phase of one host: the plan's changes of that phase executed, each reported as
//! an event, counted as the plan counts them. Host preparation removes containers no
//! longer desired, fixes directories, writes files (one atomic batch) and enables
//! units; a deploy step runs its containers and waits for their healthchecks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::change::plural;
use crate::host::script::parse_report;
use crate::host::{Command, Host, StepContainer};
use crate::plan::{Change, Counts, HostPlan};
use crate::report::{Event, Outcome, Reporter};
use crate::state::{DesiredDir, DesiredFile, HostState};
use crate::transport::UploadFile;

use super::outcome::{Failure, Phase};
use super::Options;

/// What a phase of one host works on.
pub struct HostWork<'a> {
    pub host: Arc<dyn Host>,
    pub desired: &'a HostState,
    pub plan: &'a HostPlan,
}

impl HostWork<'_> {
    /// Whether the host has anything to do in `phase`.
    pub fn has_work(&self, phase: Phase) -> bool {
        self.plan.changes.iter().any(|c| match phase {
            Phase::Preparation => c.step().is_none(),
            Phase::Step(s) => c.step() == Some(s),
            _ => false,
        })
    }
}

/// How a host's phase ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Everything of the phase was done.
    Done,
    /// Interrupted before it started on this host: nothing of it was done.
    NotStarted,
    /// Interrupted midway: what was in flight finished; `left` (`task
    /// nova/db-sync`, `the step's containers`) and what follows were not started.
    Interrupted { left: String },
}

/// Reports events of one host's phase, and turns errors into [`Failure`]s.
struct Report<'a> {
    work: &'a HostWork<'a>,
    phase: Phase,
    reporter: &'a Reporter,
}

impl Report<'_> {
    fn event(&self, action: &str) -> Event {
        let step = match self.phase {
            Phase::Step(s) => Some(s),
            _ => None,
        };
        Event::new(
            self.work.desired.plane.stage(),
            Some(&self.work.plan.host),
            action,
        )
        .step(step)
    }

    fn changed(&self, action: &str, target: &str, took: Duration, message: String) {
        self.reporter.event(
            self.event(action)
                .target(target)
                .took(took)
                .outcome(Outcome::Changed, message),
        );
    }

    /// Shows what the host is doing now; returns when it started.
    fn doing(&self, what: &str) -> Instant {
        self.reporter
            .progress()
            .host_action(&self.work.plan.host, what);
        Instant::now()
    }

    /// Records the failure of `action` (on `target`) as an event and returns it.
    fn fail(&self, action: &str, target: Option<&str>, message: String) -> Failure {
        let message = self.reporter.redact(&message);
        let mut e = self.event(action);
        if let Some(t) = target {
            e = e.target(t);
        }
        self.reporter
            .event(e.outcome(Outcome::Failed, message.clone()));
        Failure {
            remedy: None,
            phase: self.phase,
            action: action.to_string(),
            message,
        }
    }

    /// Runs a command whose non-zero exit is a failure of `action`.
    async fn checked(
        &self,
        cmd: &Command<'_>,
        opts: &Options,
        action: &str,
    ) -> Result<(), Failure> {
        let out = self
            .work
            .host
            .run(cmd, opts.timeout)
            .await
            .map_err(|e| self.fail(action, None, e.to_string()))?;
        if out.success() {
            Ok(())
        } else {
            Err(self.fail(action, None, out.stderr_text().trim().to_string()))
        }
    }
}

/// Host preparation: removals, directories, files, units. What was done before a
/// failure is counted in `done`.
pub async fn prepare(
    work: &HostWork<'_>,
    opts: &Options,
    reporter: &Reporter,
    done: &mut Counts,
) -> Result<Ended, Failure> {
    let r = Report {
        work,
        phase: Phase::Preparation,
        reporter,
    };
    let (mut removals, mut dirs, mut files, mut units) = (vec![], vec![], vec![], vec![]);
    let mut stray: Vec<String> = Vec::new();
    for c in &work.plan.changes {
        match c {
            Change::RemoveContainer { container } => removals.push(container.clone()),
            Change::Directory { path, .. } => {
                dirs.extend(work.desired.directories.iter().find(|d| &d.path == path))
            }
            Change::WriteFile { path, .. } => files.extend(work.desired.files.get(path)),
            Change::RemoveFile { path } => stray.push(path.clone()),
            Change::EnableUnit { unit, .. } => units.push(unit.clone()),
            Change::Container { .. } | Change::Task { .. } => {}
        }
    }
    if !removals.is_empty() {
        done.containers_removed = remove_containers(&r, &removals, opts).await?;
    }
    if !dirs.is_empty() {
        done.directories_fixed = fix_directories(&r, &dirs, opts).await?;
    }
    if !files.is_empty() {
        done.files_written = write_files(&r, &files, opts).await?;
    }
    if !stray.is_empty() {
        let t = r.doing(&format!("removing {}", plural(stray.len(), "file")));
        r.checked(
            &Command::RemoveFiles { paths: &stray },
            opts,
            "removing files",
        )
        .await?;
        for p in &stray {
            r.changed(
                "remove file",
                p,
                t.elapsed(),
                "no longer desired in its folder".into(),
            );
        }
        done.files_removed = stray.len();
    }
    if !units.is_empty() {
        let t = r.doing(&format!("enabling {}", plural(units.len(), "unit")));
        r.checked(
            &Command::EnableUnits { units: &units },
            opts,
            "enabling container units",
        )
        .await?;
        for u in &units {
            r.changed("enable unit", u, t.elapsed(), "systemctl enable".into());
        }
        done.units_enabled = units.len();
    }
    // Not interrupted midway: a unit file written is enabled in the same phase (the
    // next plan would not see the unit to enable once its file is current).
    Ok(Ended::Done)
}

async fn remove_containers(
    r: &Report<'_>,
    names: &[String],
    opts: &Options,
) -> Result<usize, Failure> {
    let t = r.doing(&format!("removing {}", plural(names.len(), "container")));
    let cmd = Command::RemoveContainers {
        names,
        plane: r.work.desired.plane,
    };
    let out = r
        .work
        .host
        .run(&cmd, opts.timeout)
        .await
        .map_err(|e| r.fail("removing containers", None, e.to_string()))?;
    let reports = parse_report(&out.stdout_text());
    for name in names {
        let rep = reports.get(name).cloned().unwrap_or_default();
        if !rep.ok() || rep.actions.is_empty() {
            let msg = if rep.errors.is_empty() {
                "the removal did not run".to_string()
            } else {
                rep.errors.join("\n")
            };
            return Err(r.fail(&format!("remove container {name}"), Some(name), msg));
        }
        r.changed(
            "remove container",
            name,
            t.elapsed(),
            "stopped and removed, with its configuration (its logs stay)".into(),
        );
    }
    Ok(names.len())
}

async fn fix_directories(
    r: &Report<'_>,
    dirs: &[&DesiredDir],
    opts: &Options,
) -> Result<usize, Failure> {
    let t = r.doing(&format!("fixing {}", plural(dirs.len(), "directory")));
    r.checked(
        &Command::FixDirectories { dirs },
        opts,
        "creating directories",
    )
    .await?;
    for d in dirs {
        r.changed(
            "directory",
            &d.path,
            t.elapsed(),
            format!("{} {}:{}", d.mode, d.owner, d.group),
        );
    }
    Ok(dirs.len())
}

async fn write_files(
    r: &Report<'_>,
    files: &[&DesiredFile],
    opts: &Options,
) -> Result<usize, Failure> {
    let t = r.doing(&format!("writing {}", plural(files.len(), "file")));
    let batch: Vec<UploadFile> = files
        .iter()
        .map(|f| UploadFile {
            path: &f.path,
            content: f.content.as_bytes(),
            mode: f.mode,
            owner: &f.owner,
            group: &f.group,
        })
        .collect();
    let action = format!("writing {}", plural(batch.len(), "file"));
    r.work
        .host
        .upload_batch(&batch, opts.timeout)
        .await
        .map_err(|e| r.fail(&action, None, e.to_string()))?;
    for f in files {
        let created = r.work.plan.changes.iter().any(
            |c| matches!(c, Change::WriteFile { path, fix } if *path == f.path && fix.creates()),
        );
        r.changed(
            "write file",
            &f.path,
            t.elapsed(),
            format!(
                "{}, mode {:04o} {}:{} (one batch of {})",
                if created { "created" } else { "changed" },
                f.mode,
                f.owner,
                f.group,
                files.len()
            ),
        );
    }
    Ok(files.len())
}

/// The tasks of `step`, in order; the first that fails is the step's failure, with
/// its last output lines.
async fn run_tasks(
    r: &Report<'_>,
    step: u8,
    opts: &Options,
    done: &mut Counts,
    tasks_ran: &mut Vec<String>,
) -> Result<Ended, Failure> {
    for c in &r.work.plan.changes {
        let Change::Task {
            task: id,
            step: s,
            why,
            ..
        } = c
        else {
            continue;
        };
        let Some(task) = r.work.desired.tasks.get(id).filter(|_| *s == step) else {
            continue;
        };
        if opts.interrupt.requested() {
            return Ok(Ended::Interrupted {
                left: format!("task {id}"),
            });
        }
        let t = r.doing(&format!("step {step}: task {id}"));
        let cmd = Command::RunTask { task };
        let timeout = Duration::from_secs(task.timeout_secs + 60).max(opts.timeout);
        let out = r
            .work
            .host
            .run(&cmd, timeout)
            .await
            .map_err(|e| r.fail(&format!("task {id}"), Some(id), e.to_string()))?;
        let rep = parse_report(&out.stdout_text())
            .remove(id)
            .unwrap_or_default();
        if !rep.ok() || rep.actions.is_empty() {
            let lines = if rep.errors.is_empty() {
                out.stderr_text().trim().to_string()
            } else {
                rep.errors.join("\n")
            };
            return Err(r.fail(
                &format!("task {id}"),
                Some(id),
                format!("it failed; its last output lines:\n{lines}"),
            ));
        }
        done.tasks_run += 1;
        tasks_ran.push(id.clone());
        r.changed(
            "run task",
            id,
            t.elapsed(),
            format!("{} ({why})", task.image),
        );
    }
    Ok(Ended::Done)
}

/// Deploy step `step` on one host: its tasks, one after the other in order (the first
/// that fails fails the step), then its containers and their healthchecks. What was
/// done is counted in `done`, even when something fails; the tasks that succeeded are
/// in `tasks_ran`.
pub async fn step(
    work: &HostWork<'_>,
    step: u8,
    opts: &Options,
    reporter: &Reporter,
    done: &mut Counts,
    tasks_ran: &mut Vec<String>,
) -> Result<Ended, Failure> {
    let r = Report {
        work,
        phase: Phase::Step(step),
        reporter,
    };
    let tasks = run_tasks(&r, step, opts, done, tasks_ran).await?;
    if tasks != Ended::Done {
        return Ok(tasks);
    }
    let containers: Vec<StepContainer> = work
        .plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Container {
                container,
                op,
                step: s,
                ..
            } if *s == step => work
                .desired
                .containers
                .get(container)
                .map(|def| StepContainer { def, op }),
            _ => None,
        })
        .collect();
    if containers.is_empty() {
        return Ok(Ended::Done);
    }
    if opts.interrupt.requested() {
        return Ok(Ended::Interrupted {
            left: "the step's containers".into(),
        });
    }
    let names: Vec<&str> = containers.iter().map(|c| c.def.name.as_str()).collect();
    r.doing(&format!("step {step}: {}", names.join(", ")));
    let cmd = Command::RunStep {
        step,
        containers: &containers,
        health_timeout: opts.health_timeout,
    };
    let out = work
        .host
        .run(&cmd, opts.timeout + opts.health_timeout)
        .await
        .map_err(|e| r.fail("running the step's containers", None, e.to_string()))?;
    let reports = parse_report(&out.stdout_text());
    let mut failures: Vec<(String, String)> = Vec::new();
    for c in &containers {
        let name = &c.def.name;
        let rep = reports.get(name).cloned().unwrap_or_default();
        let ms: u64 = rep.actions.iter().map(|a| a.2).sum();
        let failed_action = rep.actions.iter().find(|a| a.1 != 0);
        if rep.actions.is_empty() || failed_action.is_some() {
            let what = failed_action
                .map(|a| a.0.clone())
                .unwrap_or_else(|| c.op.verb().into());
            let msg = if rep.errors.is_empty() {
                format!("podman {what} did not run: {}", out.stderr_text().trim())
            } else {
                rep.errors.join("\n")
            };
            let f = r.fail(&format!("{what} container"), Some(name), msg);
            failures.push((format!("{what} container {name}"), f.message));
            continue;
        }
        done.add(&Change::Container {
            container: name.clone(),
            step,
            op: c.op.clone(),
        });
        r.changed(
            &format!("{} container", c.op.verb()),
            name,
            Duration::from_millis(ms),
            format!("image {}", c.def.image),
        );
        match rep.healthy {
            Some((true, waited)) => reporter.event(
                r.event("health")
                    .target(name)
                    .took(Duration::from_millis(waited))
                    .outcome(Outcome::Ok, "healthy"),
            ),
            Some((false, waited)) => {
                let msg = format!(
                    "unhealthy after {:.1} s; its last log lines:\n{}",
                    waited as f64 / 1000.0,
                    rep.logs.join("\n")
                );
                let f = r.fail("health", Some(name), msg);
                failures.push((format!("healthcheck of {name}"), f.message));
            }
            None => {}
        }
    }
    if let Some((action, _)) = failures.first() {
        let message = failures
            .iter()
            .map(|(a, m)| format!("{a}: {m}"))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Failure {
            remedy: None,
            phase: Phase::Step(step),
            action: action.clone(),
            message,
        });
    }
    Ok(Ended::Done)
}
