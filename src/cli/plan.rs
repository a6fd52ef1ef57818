//! `provision plan`: the survey apply makes, and the plan it decides, shown; nothing
//! is changed. `--out` saves it for `provision apply FILE`.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use provision::apply::survey::{self, SurveyOptions};
use provision::facts::ReadFacts;
use provision::plan::saved::SavedPlan;
use provision::report::events;

use super::{OutputFormat, COMMAND_TIMEOUT};

pub struct PlanArgs<'a> {
    pub inventory: &'a Path,
    pub limit: Option<&'a str>,
    pub fmt: OutputFormat,
    pub detailed_exitcode: bool,
    pub accept_new: bool,
    pub parallel: usize,
    pub power_off_removed: bool,
    pub out: Option<&'a Path>,
    /// Text in short (`format::summary`), as apply shows a plan.
    pub summary: bool,
    /// Hash every file, trusting no recorded hash (`--full-check`).
    pub full_check: bool,
}

pub fn plan(a: PlanArgs<'_>) -> ExitCode {
    if a.summary && !matches!(a.fmt, OutputFormat::Text) {
        eprintln!("error: --summary is a text form: leave out --format, or give --format text");
        return ExitCode::FAILURE;
    }
    let ev = match super::load_limited(a.inventory, a.limit) {
        Ok(ev) => ev,
        Err(code) => return code,
    };
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let mut fleet = match super::open_fleet(&ev.cloud, &[], a.accept_new, a.parallel).await {
            Ok(f) => f,
            Err(code) => return code,
        };
        let opts = SurveyOptions {
            read: ReadFacts {
                contents: true,
                trust_stamp: true,
                quick_check: !a.full_check,
                record_files: false,
            },
            parallel: a.parallel,
            timeout: COMMAND_TIMEOUT,
            power_off_removed: a.power_off_removed,
        };
        let label = a.inventory.display().to_string();
        let (s, report, run_ev) = match survey::plan(&ev, &mut fleet, &opts, &label).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        if a.summary {
            print!("{}", provision::diff::format::summary(&report));
        } else {
            print!("{}", a.fmt.render(&report));
        }
        for u in &s.unreachable {
            eprintln!("error: {}", u.error);
        }
        if !s.unreachable.is_empty() {
            eprintln!(
                "error: {} could not be read; the plan covers the others{}",
                provision::change::plural(s.unreachable.len(), "host"),
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
                a.power_off_removed,
                events::rfc3339_millis(SystemTime::now()),
                &s.plan,
                &run_ev.state,
                &s.facts,
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
