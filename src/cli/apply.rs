//! `provision apply INVENTORY|PLAN`: [`Apply::begin`] (lock, undercloud checks, the
//! survey and its plan), the plan shown and confirmed, [`Apply::execute`], then the
//! outcome printed in the plan's words.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use provision::apply::{self, Apply, RunInfo, RunOutcome};
use provision::diff::format;
use provision::evaluate::Evaluation;
use provision::plan::{report, saved::SavedPlan, NodeAction, Tense};
use provision::report::events::{self, EventLog};
use provision::report::progress::Progress;
use provision::report::{default_run_dir, Reporter};

use super::COMMAND_TIMEOUT;

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
    let (inventory, limit, power_off_removed) = match &saved {
        Some(p) => {
            if a.limit.is_some() {
                eprintln!("error: --limit cannot be given with a saved plan: the plan's own limit ({}) applies", p.limit.as_deref().unwrap_or("none"));
                return ExitCode::FAILURE;
            }
            (p.inventory.clone(), p.limit.clone(), p.power_off_removed)
        }
        None => (
            a.target.to_path_buf(),
            a.limit.map(str::to_string),
            a.power_off_removed,
        ),
    };
    let ev = match super::load_limited(&inventory, limit.as_deref()) {
        Ok(ev) => ev,
        Err(code) => return code,
    };
    if let Some(p) = &saved {
        if let Err(e) = p.check_desired(&ev.state) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let opts = apply::Options {
        parallel: a.parallel,
        timeout: COMMAND_TIMEOUT,
        health_timeout: a.health_timeout,
        boot_timeout: a.boot_timeout,
        power_off_removed,
        read_contents: saved.is_none(),
    };
    let run = Run {
        a: &a,
        inventory: &inventory,
        ev: &ev,
        saved: saved.as_ref(),
    };
    runtime.block_on(run.run(opts))
}

/// One apply of the command line.
struct Run<'a> {
    a: &'a ApplyArgs<'a>,
    inventory: &'a Path,
    ev: &'a Evaluation,
    saved: Option<&'a SavedPlan>,
}

impl Run<'_> {
    async fn run(&self, opts: apply::Options) -> ExitCode {
        let started = Instant::now();
        let ev = self.ev;
        let mut fleet =
            match super::open_fleet(&ev.cloud, &[], self.a.accept_new, self.a.parallel).await {
                Ok(f) => f,
                Err(code) => return code,
            };
        let info = RunInfo {
            run_id: events::new_run_id(),
            operator: format!("{}@{}", super::operator_name(), events::local_hostname()),
            inventory: self.inventory.display().to_string(),
            time: events::rfc3339_millis(SystemTime::now()),
        };
        let holder = format!(
            "{} pid {} run {} since {}",
            info.operator,
            std::process::id(),
            info.run_id,
            info.time
        );
        let applying = match Apply::begin(ev, &mut fleet, opts, &holder).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(code) = self.review(&applying, started) {
            applying.release().await;
            return code;
        }
        let reporter = self.reporter(&info.run_id, applying.evaluation());
        let outcome = applying.execute(&info, reporter.clone()).await;
        print_outcome(&outcome, started);
        if let Some(p) = reporter.log_path() {
            println!("Event log: {}", p.display());
        }
        if outcome.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// Shows the plan and asks; `Ok` to go on, else the exit code. A saved plan is
    /// checked for drift instead of shown; no changes (and every host read) ends the
    /// run successfully.
    fn review(&self, applying: &Apply<'_>, started: Instant) -> Result<(), ExitCode> {
        // With the cloud's keys (their values are secrets to redact).
        let ev = applying.evaluation();
        let s = applying.survey();
        if let Some(p) = self.saved {
            if let Err(e) = p.check_actual(&s.facts) {
                eprintln!("error: {e}");
                return Err(ExitCode::FAILURE);
            }
        }
        let label = self.inventory.display().to_string();
        let report = report::report(&label, &s.plan, &ev.state, &s.facts, &ev.cloud.secrets);
        let changes = s.plan.has_changes();
        if self.saved.is_none() && changes {
            print!("{}", format::text(&report));
        }
        for u in &s.unreachable {
            eprintln!("error: {}", u.error);
        }
        left_alone(s);
        if !changes && s.unreachable.is_empty() {
            let nodes = s
                .facts
                .keys()
                .filter(|h| ev.cloud.host(h).is_some())
                .count();
            println!(
                "\nNo changes. The undercloud and the {nodes} hosts match the inventory ({:.2} s).",
                started.elapsed().as_secs_f64()
            );
            return Err(ExitCode::SUCCESS);
        }
        if self.saved.is_some() || self.a.yes || !changes {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() {
            eprintln!("error: not applying without confirmation: pass --yes (standard input is not a terminal)");
            return Err(ExitCode::FAILURE);
        }
        print!("\nApply these changes? Only 'yes' is accepted: ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() || answer.trim() != "yes" {
            eprintln!("Apply cancelled.");
            return Err(ExitCode::FAILURE);
        }
        Ok(())
    }

    fn reporter(&self, run_id: &str, ev: &Evaluation) -> Arc<Reporter> {
        let run_dir = self
            .a
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
        Arc::new(Reporter::new(
            Progress::new(std::io::stderr().is_terminal()),
            log,
            Box::new(move |t: &str| secrets.redact(t)),
        ))
    }
}

/// Says which removed nodes are left as they are.
fn left_alone(s: &apply::Survey) {
    let kept: Vec<&str> = s
        .plan
        .nodes
        .iter()
        .filter(|n| n.action == (NodeAction::Remove { power_off: false }))
        .map(|n| n.node.as_str())
        .collect();
    if !kept.is_empty() {
        println!(
            "{} provisioned node(s) are no longer in the inventory ({}): left as they are; `apply --power-off-removed` powers them off.",
            kept.len(),
            kept.join(", ")
        );
    }
}

fn print_outcome(o: &RunOutcome, started: Instant) {
    let failed = o.failed();
    let verdict = if o.ok() {
        "Apply complete"
    } else {
        "Apply FAILED"
    };
    for note in &o.notes {
        println!("note: {note}");
    }
    println!(
        "\n{verdict}: {} on {} of {} hosts, in {:.2} s.",
        o.counts().phrase(Tense::Done),
        o.hosts_changed(),
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
    if !o.nodes_powered_off.is_empty() {
        println!(
            "Powered off and forgot {} node(s) removed from the inventory.",
            o.nodes_powered_off.len()
        );
    }
    for (n, e) in &o.power_off_failures {
        println!("  {n}: NOT powered off: {e}");
    }
    if let Some(why) = &o.stopped {
        println!("\nThe run stopped: {why}.");
    }
    if o.undercloud_failed {
        println!("\nThe undercloud stage failed: the bare-metal and overcloud stages did not run.");
    }
}
