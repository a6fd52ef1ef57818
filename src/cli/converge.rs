//! `provision plan` and `provision apply`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use provision::apply::{self, lock, record, RunOutcome};
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
        let names: Vec<String> = ev.state.hosts.keys().cloned().collect();
        let fleet = match crate::open_fleet(&ev.cloud, &names, a.accept_new, a.parallel).await {
            Ok(f) => f,
            Err(code) => return code,
        };
        let g = plan::gather_all(&ev.state, &fleet, COMMAND_TIMEOUT, true).await;
        let report = plan::compare(
            &a.inventory.display().to_string(),
            &ev.state,
            &g.actual,
            &ev.cloud.secrets,
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
        let names: Vec<String> = ev.state.hosts.keys().cloned().collect();
        let fleet = match crate::open_fleet(&ev.cloud, &names, a.accept_new, a.parallel).await {
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
            &fleet,
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
    fleet: &Fleet,
    saved: Option<&SavedPlan>,
    run_id: &str,
    started: Instant,
) -> ExitCode {
    let label = inventory.display().to_string();
    let Gathered {
        actual,
        unreachable,
    } = plan::gather_all(&ev.state, fleet, COMMAND_TIMEOUT, saved.is_none()).await;
    if let Some(p) = saved {
        if let Err(e) = p.check_actual(&actual) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let report = plan::compare(&label, &ev.state, &actual, &ev.cloud.secrets);
    if saved.is_none() && report.has_changes() {
        print!("{}", format::text(&report));
    }
    for u in &unreachable {
        eprintln!("error: {}", u.error);
    }
    if !report.has_changes() && unreachable.is_empty() {
        println!(
            "\nNo changes. The {} hosts match the inventory ({:.2} s).",
            actual.len(),
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
    let unreachable: Vec<(String, String)> = unreachable
        .iter()
        .map(|u| (u.host.clone(), u.error.to_string()))
        .collect();
    let outcome = apply::run(
        &ev.state,
        &actual,
        &unreachable,
        &ev.cloud.roles,
        fleet,
        &opts,
        reporter.clone(),
    )
    .await;
    print_outcome(&outcome, started);
    if let Some(p) = reporter.log_path() {
        println!("Event log: {}", p.display());
    }
    if let Err(e) = save_record(fleet, ev, &outcome, run_id, &label).await {
        eprintln!(
            "warning: cannot record this apply on the undercloud ({}): {e}",
            record::record_path(&ev.cloud.name)
        );
    }
    if outcome.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
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
