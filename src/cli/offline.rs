//! The commands that contact no host: `validate`, `render` and `diff`.

use std::path::Path;
use std::process::ExitCode;

use provision::diff::revisions::diff_revisions;
use provision::render::output;

use super::OutputFormat;

/// `provision validate`: every error and warning of the inventory (the first
/// [`provision::diagnostics::LISTED`] of each unless `all_errors`, then how many more),
/// or a summary of the valid cloud.
pub fn validate(inventory: &Path, release: Option<&str>, all_errors: bool) -> ExitCode {
    let listing = if all_errors {
        super::Listing::All
    } else {
        super::Listing::FirstHere
    };
    let ev = match super::load_listing(inventory, release, listing) {
        Ok(ev) => ev,
        Err(code) => return code,
    };
    let files: usize = ev.state.hosts.values().map(|h| h.files.len()).sum();
    let containers: usize = ev.state.hosts.values().map(|h| h.containers.len()).sum();
    let roles: Vec<String> = ev
        .cloud
        .roles
        .keys()
        .map(|r| {
            format!(
                "{r} {}",
                ev.cloud.hosts.iter().filter(|h| &h.role == r).count()
            )
        })
        .collect();
    let checked = match &ev.cloud.catalogue.options {
        Some(o) => {
            let w = ev.warnings.len();
            format!(
                " Every oslo.config option checked against {}{}.",
                o.release,
                match w {
                    0 => String::new(),
                    1 => ": 1 warning".to_string(),
                    n => format!(": {n} warnings"),
                }
            )
        }
        None => " No option catalogue: the oslo.config options were not checked.".to_string(),
    };
    println!(
        "{}: valid. Cloud `{}`: undercloud `{}`, {} nodes ({}), {} files and {} containers rendered.{checked}",
        inventory.display(),
        ev.cloud.name,
        ev.cloud.undercloud.name,
        ev.cloud.hosts.len(),
        roles.join(", "),
        files,
        containers
    );
    ExitCode::SUCCESS
}

pub fn render(inventory: &Path, out: &Path) -> ExitCode {
    let ev = match super::load(inventory) {
        Ok(ev) => ev,
        Err(code) => return code,
    };
    match output::write(out, &ev.cloud.name, &ev.state, &ev.cloud.secrets) {
        Ok(n) => {
            println!(
                "Rendered {n} files for {} hosts into {} (manifest: {}).",
                ev.state.hosts.len(),
                out.display(),
                out.join(output::MANIFEST).display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn diff(
    inventory: &Path,
    base: &str,
    head: Option<&str>,
    fmt: OutputFormat,
    detailed_exitcode: bool,
) -> ExitCode {
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read the current directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    match diff_revisions(&cwd, inventory, base, head) {
        Ok(report) => {
            print!("{}", fmt.render(&report));
            if detailed_exitcode && report.has_changes() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
