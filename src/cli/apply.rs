//! `provision apply INVENTORY|PLAN`: [`Apply::begin`] (lock, undercloud checks, the
//! survey and its plan), the plan shown and confirmed, [`Apply::execute`], then the
//! outcome printed in the plan's words.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use provision::apply::{self, Apply, RunInfo};
use provision::change::plural;
use provision::diff::format;
use provision::evaluate::Evaluation;
use provision::plan::{report, saved::SavedPlan, NodeAction};
use provision::report::events::{self, EventLog};
use provision::report::progress::Progress;
use provision::report::{default_run_dir, write_plan, Reporter, PLAN_FILE};

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
    /// Show the plan with every file's diff, not its summary.
    pub diff: bool,
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
        interrupt: Default::default(),
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
        let signals = super::signals::Signals::watch(opts.interrupt.clone());
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
        let run_dir = self.run_dir(&info.run_id);
        if let Err(code) = self.review(&applying, started, &run_dir) {
            applying.release().await;
            return code;
        }
        let reporter = self.reporter(&info.run_id, &run_dir, applying.evaluation());
        if let Some(s) = &signals {
            s.changing(reporter.clone());
        }
        let outcome = applying.execute(&info, reporter.clone()).await;
        super::outcome::print_outcome(&outcome, started);
        if let Some(p) = reporter.log_path() {
            println!("Event log: {}", p.display());
        }
        if outcome.interrupted.is_some() {
            ExitCode::from(super::signals::EXIT_INTERRUPTED)
        } else if outcome.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// Shows the plan and asks; `Ok` to go on, else the exit code. The plan is shown
    /// in short (grouped by hosts, with counts), or in full with `--diff`; in full it
    /// is always written to the run directory (`plan.txt`) first, and its path said. A
    /// saved plan is checked for drift instead of shown; no changes (and every host
    /// read) ends the run successfully.
    fn review(
        &self,
        applying: &Apply<'_>,
        started: Instant,
        run_dir: &Path,
    ) -> Result<(), ExitCode> {
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
        if changes {
            let written = write_plan(run_dir, &format::text(&report));
            if self.saved.is_none() {
                print!("{}", shown_plan(&report, self.a.diff));
            }
            match written {
                Ok(p) => println!("{}", where_the_plan_is(&p, self.a.diff)),
                Err(e) => eprintln!(
                    "warning: cannot write the full plan to {}: {e}",
                    run_dir.join(PLAN_FILE).display()
                ),
            }
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
                "\nNo changes. The undercloud and the {} match the inventory ({:.2} s).",
                plural(nodes, "host"),
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

    /// The run's directory: `--run-dir`, or `.provision/runs/<run id>`.
    fn run_dir(&self, run_id: &str) -> PathBuf {
        self.a
            .run_dir
            .clone()
            .unwrap_or_else(|| default_run_dir(Path::new(".provision"), run_id))
    }

    fn reporter(&self, run_id: &str, run_dir: &Path, ev: &Evaluation) -> Arc<Reporter> {
        let log = match EventLog::create(run_dir, run_id) {
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
        let (are, they, them) = if kept.len() == 1 {
            ("is", "it is", "it")
        } else {
            ("are", "they are", "them")
        };
        println!(
            "{} {are} no longer in the inventory ({}): left as {they}; `apply --power-off-removed` powers {them} off.",
            plural(kept.len(), "provisioned node"),
            kept.join(", ")
        );
    }
}

/// The plan as apply shows it: in short ([`format::summary`]: grouped by hosts, with
/// counts, each file's path and lines added and removed, no diff line), or with every
/// file's diff (`--diff`: [`format::text`], as `provision plan` shows it).
fn shown_plan(report: &provision::diff::Report, full: bool) -> String {
    if full {
        format::text(report)
    } else {
        format::summary(report)
    }
}

/// Where the full plan was written, said after the plan.
fn where_the_plan_is(path: &Path, full: bool) -> String {
    if full {
        format!("The full plan is also in {}.", path.display())
    } else {
        format!(
            "The full plan, with every file's diff: {} (`apply --diff` shows it here).",
            path.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use provision::facts::ActualHost;
    use provision::model::LoadOptions;
    use provision::plan::Plan;
    use provision::source::FsTree;

    /// The plan of a first apply of the production example (every host empty), offline.
    fn first_apply() -> provision::diff::Report {
        let inv = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/example-production.toml");
        let ev = provision::evaluate::evaluate(&inv, &FsTree, &LoadOptions::default())
            .unwrap_or_else(|f| panic!("{}", f.render()));
        let facts: BTreeMap<String, ActualHost> = ev
            .state
            .hosts
            .keys()
            .map(|h| (h.clone(), ActualHost::default()))
            .collect();
        let plan = Plan::decide(&ev.state, &facts, Vec::new());
        report::report("example", &plan, &ev.state, &facts, &ev.cloud.secrets)
    }

    /// A line of a unified diff: a hunk header, or a line added or removed (a summary's
    /// `  + /path  +12` names a path).
    fn is_diff_line(l: &str) -> bool {
        let t = l.trim_start();
        t.starts_with("@@")
            || t.strip_prefix(['+', '-'])
                .is_some_and(|rest| !rest.starts_with(" /") && !rest.starts_with(" host "))
    }

    #[test]
    fn apply_shows_the_summary_unless_diff_is_asked_for() {
        let r = first_apply();
        let short = shown_plan(&r, false);
        assert!(!short.lines().any(is_diff_line), "{short}");
        assert!(short
            .contains("\nCompute (20 hosts: overcloud-novacompute-[0-19]): 560 files to write,"));
        assert!(short.contains("\n  + /etc/overcloud/nova_compute/nova.conf  +"));
        let full = shown_plan(&r, true);
        assert_eq!(full, format::text(&r));
        assert!(full.lines().filter(|l| is_diff_line(l)).count() > 10_000);

        // The full text in the run dir, and where it is said.
        let dir = tempfile::tempdir().unwrap();
        let p = write_plan(dir.path(), &format::text(&r)).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), full);
        assert_eq!(
            where_the_plan_is(&p, false),
            format!(
                "The full plan, with every file's diff: {}/plan.txt (`apply --diff` shows it here).",
                dir.path().display()
            )
        );
        assert_eq!(
            where_the_plan_is(&p, true),
            format!(
                "The full plan is also in {}/plan.txt.",
                dir.path().display()
            )
        );
    }
}
