//! A stage's hosts converged phase by phase: host preparation, then deploy steps 1..N
//! (TripleO's steps). Inside a phase, hosts run in parallel (at most `parallel` at a
//! time), each host's work one command; a step starts on any host only once the
//! previous phase has finished on all of them. A host that fails is left out of the
//! later phases and the others finish the phase; after each phase, a role whose failed
//! hosts exceed its `max_fail_percentage` stops the run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::change::Counts;
use crate::host::join_all;
use crate::model::Role;
use crate::report::{Event, Outcome, Reporter, Stage};
use crate::state::Plane;

use super::host_phase::{self, Ended, HostWork};
use super::outcome::{over_tolerance, Phase, RunOutcome};
use super::Options;

/// Runs `hosts` through every phase, recording in `out` (which has an entry for each).
/// Returns `false` when a role's failures stopped the run.
pub async fn run(
    plane: Plane,
    hosts: &[HostWork<'_>],
    roles: &BTreeMap<String, Role>,
    opts: &Options,
    reporter: &Arc<Reporter>,
    out: &mut RunOutcome,
) -> bool {
    let max_step = hosts
        .iter()
        .flat_map(|w| {
            let tasks = w.desired.tasks.values().map(|t| t.step);
            w.desired.containers.values().map(|c| c.step).chain(tasks)
        })
        .max()
        .unwrap_or(0);
    let mut steps: Vec<u8> = hosts.iter().flat_map(|w| w.plan.steps()).collect();
    steps.sort();
    steps.dedup();
    let mut phases = vec![Phase::Preparation];
    phases.extend(steps.into_iter().map(Phase::Step));
    for (i, &phase) in phases.iter().enumerate() {
        if opts.interrupt.requested() {
            // Nothing new starts: every host with work left is not finished.
            for w in hosts {
                if let Some(p) = phases[i..].iter().find(|p| w.has_work(**p)) {
                    out.not_started(&w.plan.host, &p.to_string());
                }
            }
            break;
        }
        let todo: Vec<&HostWork> = hosts
            .iter()
            .filter(|w| out.hosts[&w.plan.host].failure.is_none() && w.has_work(phase))
            .collect();
        // The hosts are said by the progress (`... on 3 hosts`, `... started: 1 host`).
        let title = match phase {
            Phase::Step(s) => format!("step {s}/{max_step}: containers"),
            _ => "host preparation: files and directories".to_string(),
        };
        let title = match plane {
            Plane::Undercloud => format!("undercloud {title}"),
            Plane::Overcloud => title,
        };
        reporter.progress().phase(&title, todo.len());
        run_phase(phase, &todo, opts, reporter, out).await;
        if let Some(why) = over_tolerance(out, roles, plane) {
            let stop = format!("{why}; stopped after {phase}");
            let step = match phase {
                Phase::Step(s) => Some(s),
                _ => None,
            };
            reporter.event(tolerance_stop(plane.stage(), step, &stop));
            out.stopped = Some(stop);
            reporter.progress().finish();
            return false;
        }
    }
    reporter.progress().finish();
    true
}

/// One phase on `todo`, in parallel.
async fn run_phase(
    phase: Phase,
    todo: &[&HostWork<'_>],
    opts: &Options,
    reporter: &Arc<Reporter>,
    out: &mut RunOutcome,
) {
    let limit = Arc::new(Semaphore::new(opts.parallel.max(1)));
    let runs = todo.iter().map(|w| {
        let limit = limit.clone();
        async move {
            let _permit = limit.acquire_owned().await;
            let t = Instant::now();
            let mut done = Counts::default();
            let mut tasks = Vec::new();
            if opts.interrupt.requested() {
                return (
                    w.plan.host.clone(),
                    done,
                    tasks,
                    Ok(Ended::NotStarted),
                    t.elapsed(),
                );
            }
            let r = match phase {
                Phase::Step(s) => {
                    host_phase::step(w, s, opts, reporter, &mut done, &mut tasks).await
                }
                _ => host_phase::prepare(w, opts, reporter, &mut done).await,
            };
            (w.plan.host.clone(), done, tasks, r, t.elapsed())
        }
    });
    for (name, done, tasks, r, took) in join_all(runs.collect()).await {
        let Some(h) = out.hosts.get_mut(&name) else {
            continue;
        };
        h.seconds += took.as_secs_f64();
        h.done.merge(&done);
        h.tasks_ran.extend(tasks);
        match r {
            Ok(Ended::Done) => {
                let summary = done.brief(crate::change::Tense::Done);
                reporter
                    .progress()
                    .host_done(&name, &format!("{phase}: {summary}"), true);
            }
            Ok(Ended::NotStarted) => {
                reporter.progress().host_done(
                    &name,
                    &format!("{phase}: not started (interrupted)"),
                    false,
                );
                out.not_started(&name, &phase.to_string());
            }
            Ok(Ended::Interrupted { left }) => {
                let summary = done.brief(crate::change::Tense::Done);
                reporter.progress().host_done(
                    &name,
                    &format!("{phase}: {summary}; interrupted before {left}"),
                    false,
                );
                if let Some(h) = out.hosts.get_mut(&name) {
                    h.unfinished = Some(format!("{phase}: {left} and later not started"));
                }
            }
            Err(f) => {
                reporter.progress().host_done(
                    &name,
                    &format!("{phase}: FAILED {}", f.action),
                    false,
                );
                h.failure = Some(f);
            }
        }
    }
}

/// The event of a run stopped by a role's max fail percentage.
pub fn tolerance_stop(stage: Stage, step: Option<u8>, message: &str) -> Event {
    let mut e = Event::new(stage, None, "max fail percentage").outcome(Outcome::Failed, message);
    e.step = step;
    e
}
