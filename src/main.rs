//! The `provision` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use provision::evaluate::{evaluate, Evaluation};
use provision::model::LoadOptions;
use provision::render::output;
use provision::source::FsTree;

/// Declarative, TripleO-style undercloud/overcloud provisioner.
#[derive(Parser)]
#[command(name = "provision", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check an inventory, its roles, catalogue, templates and secrets; report every problem.
    Validate {
        /// The inventory TOML file.
        inventory: PathBuf,
    },
    /// Render every host's desired state (files and containers) into a folder, offline.
    Render {
        /// The inventory TOML file.
        inventory: PathBuf,
        /// Output folder: <DIR>/<host>/<absolute path>, plus <DIR>/manifest.json.
        #[arg(long, short)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { inventory } => match load(&inventory) {
            Ok(ev) => {
                let files: usize = ev.state.hosts.values().map(|h| h.files.len()).sum();
                let containers: usize = ev.state.hosts.values().map(|h| h.containers.len()).sum();
                let roles: Vec<String> = ev
                    .cloud
                    .roles
                    .keys()
                    .map(|r| format!("{r} {}", ev.cloud.hosts.iter().filter(|h| &h.role == r).count()))
                    .collect();
                println!(
                    "{}: valid. Cloud `{}`: undercloud `{}`, {} nodes ({}), {} files and {} containers rendered.",
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
            Err(code) => code,
        },
        Command::Render { inventory, out } => match load(&inventory) {
            Ok(ev) => match output::write(&out, &ev.cloud.name, &ev.state, &ev.cloud.secrets) {
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
            },
            Err(code) => code,
        },
    }
}

/// Evaluates an inventory, printing warnings and errors to stderr.
fn load(inventory: &std::path::Path) -> Result<Evaluation, ExitCode> {
    match evaluate(inventory, &FsTree, &LoadOptions::from_process_env()) {
        Ok(ev) => {
            if !ev.cloud.ssh.strict_host_key_checking {
                eprintln!(
                    "warning: strict host-key checking is OFF in {} ([ssh] strict_host_key_checking = false): any machine answering at a host's address will be trusted with its secrets",
                    inventory.display()
                );
            }
            Ok(ev)
        }
        Err(failure) => {
            eprint!("{}", failure.render());
            let n = failure.diags.len();
            eprintln!(
                "\nerror: {} is not valid: {n} error{} found",
                inventory.display(),
                if n == 1 { "" } else { "s" }
            );
            Err(ExitCode::FAILURE)
        }
    }
}
