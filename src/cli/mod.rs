//! The command line's drivers: each maps its arguments to the library, prints what the
//! library returns (in the format asked for) and chooses the exit code. The work itself
//! is the library's: [`provision::apply`], [`provision::plan`], [`provision::diff`].

pub mod apply;
pub mod credentials;
pub mod nodes;
pub mod offline;
pub mod outcome;
pub mod ping;
pub mod plan;
pub mod signals;
pub mod status;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use provision::diagnostics::{count, LISTED};
use provision::diff::{self, format};
use provision::evaluate::{evaluate, Evaluation};
use provision::host::ssh::SshFleet;
use provision::model::{Cloud, LoadOptions};
use provision::source::FsTree;

/// Longest a single remote command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// How a report is printed.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Markdown,
    Json,
}

impl OutputFormat {
    pub fn render(self, report: &diff::Report) -> String {
        match self {
            OutputFormat::Text => format::text(report),
            OutputFormat::Markdown => format::markdown(report),
            OutputFormat::Json => format::json(report),
        }
    }
}

/// Evaluates an inventory, printing warnings and errors to stderr.
pub fn load(inventory: &Path) -> Result<Evaluation, ExitCode> {
    load_release(inventory, None)
}

/// Evaluates an inventory, its oslo.config files checked against the option catalogue
/// of `release` (`None`: the catalogue's own); warnings are printed on stderr.
pub fn load_release(inventory: &Path, release: Option<&str>) -> Result<Evaluation, ExitCode> {
    load_listing(inventory, release, Listing::First)
}

/// How many of an inventory's errors and warnings are printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The first [`LISTED`] of each, then one line counting the rest.
    First,
    /// Every one (`validate --all-errors`).
    All,
    /// The first [`LISTED`]; the line counting the rest points to `--all-errors` as an
    /// option of this command (`validate`).
    FirstHere,
}

/// Evaluates an inventory as [`load_release`] does; the errors and warnings are printed
/// on stderr as `listing` says, the count of each always whole. This is where every
/// command that reads an inventory prints its diagnostics.
pub fn load_listing(
    inventory: &Path,
    release: Option<&str>,
    listing: Listing,
) -> Result<Evaluation, ExitCode> {
    let opts = LoadOptions {
        release: release.map(str::to_string),
        ..LoadOptions::from_process_env()
    };
    let limit = (listing != Listing::All).then_some(LISTED);
    let list_all = match listing {
        Listing::FirstHere => "pass --all-errors to list every one".to_string(),
        _ => format!(
            "run `provision validate --all-errors {}` to list every one",
            inventory.display()
        ),
    };
    match evaluate(inventory, &FsTree, &opts) {
        Ok(ev) => {
            if !ev.warnings.is_empty() {
                eprint!("{}", ev.render_warnings_listed(limit, &list_all));
                eprintln!(
                    "\nwarning: {}: {}\n",
                    inventory.display(),
                    count(ev.warnings.len(), "warning")
                );
            }
            if !ev.cloud.ssh.strict_host_key_checking {
                eprintln!(
                    "warning: strict host-key checking is OFF in {} ([ssh] strict_host_key_checking = false): any machine answering at a host's address will be trusted with its secrets",
                    inventory.display()
                );
            }
            Ok(ev)
        }
        Err(failure) => {
            let fix_first = format!("fix these first, or {list_all}");
            eprint!("{}", failure.render_listed(limit, &fix_first, &list_all));
            eprintln!(
                "\nerror: {} is not valid: {} found",
                inventory.display(),
                count(failure.diags.len(), "error")
            );
            Err(ExitCode::FAILURE)
        }
    }
}

/// Evaluates an inventory and keeps the hosts of `--limit`.
pub fn load_limited(inventory: &Path, limit: Option<&str>) -> Result<Evaluation, ExitCode> {
    let mut ev = load(inventory)?;
    if let Some(limit) = limit {
        ev.limit(limit).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })?;
    }
    Ok(ev)
}

pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

/// Connects to the undercloud and the named nodes, printing why it could not.
pub async fn open_fleet<'c>(
    cloud: &'c Cloud,
    nodes: &[String],
    accept_new: bool,
    parallel: usize,
) -> Result<SshFleet<'c>, ExitCode> {
    SshFleet::open(cloud, nodes, accept_new, parallel)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })
}

/// Who runs this: $USER or $LOGNAME, else the uid.
pub fn operator_name() -> String {
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
