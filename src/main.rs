//! The `provision` command line: its arguments (clap) and the dispatch to the drivers
//! in [`cli`], which call the library and choose the exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

mod cli;

/// mimalloc, not glibc's malloc: rendering allocates and frees many small strings, and
/// `provision diff` frees on one thread what another allocated (the head side's hosts).
/// glibc spent a third of a 5,000-host diff in malloc, free and their consolidation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cli::OutputFormat;

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
        /// Check the oslo.config options against the option catalogue of this release
        /// (templates/_common/oslo/schema/<NAME>.json), e.g. before an upgrade; default:
        /// the release the catalogue is written for.
        #[arg(long, value_name = "NAME")]
        release: Option<String>,
        /// List every error and warning (default: the first 50 of each, then how many more).
        #[arg(long)]
        all_errors: bool,
    },
    /// Render every host's desired state (files and containers) into a folder, offline.
    Render {
        /// The inventory TOML file.
        inventory: PathBuf,
        /// Output folder: <DIR>/<host>/<absolute path>, plus <DIR>/manifest.json.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Show what a change does to every host: the desired state at two git revisions
    /// compared, offline, with no checkout and no machine touched.
    Diff {
        /// The inventory TOML file (a path in the working tree; it is read from each revision).
        inventory: PathBuf,
        /// The revision to compare from (a commit, branch or tag).
        #[arg(long)]
        base: String,
        /// The revision to compare to; default: the working tree, uncommitted changes included.
        #[arg(long)]
        head: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Exit 0 when nothing changes, 2 when something does, 1 on error (as Terraform).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Show what an apply would change on each host: files to create or change (with
    /// diffs, secrets redacted), containers to create, restart or remove. Changes nothing.
    Plan {
        /// The inventory TOML file.
        inventory: PathBuf,
        /// Only these hosts or roles (comma-separated names); the undercloud is always included.
        #[arg(long)]
        limit: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Exit 0 when nothing would change, 2 when something would, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Record the keys of hosts not yet in known_hosts (first contact).
        #[arg(long)]
        accept_new_host_keys: bool,
        /// Hosts connected to at a time.
        #[arg(long, default_value_t = 64)]
        parallel: usize,
        /// Plan to power off (through their BMCs) the provisioned nodes no longer in the
        /// inventory, as `apply --power-off-removed` does.
        #[arg(long)]
        power_off_removed: bool,
        /// Save the plan to FILE, for `provision apply FILE` (no contents, no secrets).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Show the plan in short, as apply does: grouped by hosts, with counts and each
        /// file's lines added and removed, no diff (text only).
        #[arg(long)]
        summary: bool,
        /// Hash every managed file, even those whose size, inode, mtime and ctime are
        /// what the last apply recorded (by default their recorded hash is trusted).
        #[arg(long)]
        full_check: bool,
    },
    /// Make the hosts match the inventory: shows the plan, asks for confirmation (or
    /// --yes), then writes only the files that differ and (re)creates only the
    /// containers whose config hash changed, deploy step by deploy step.
    Apply {
        /// The inventory TOML file, or a plan saved by `provision plan --out` (applied
        /// without asking, and refused if a host drifted since).
        target: PathBuf,
        /// Only these hosts or roles (comma-separated names); the undercloud is always included.
        #[arg(long)]
        limit: Option<String>,
        /// Hosts worked on at a time inside a step.
        #[arg(long, default_value_t = 64)]
        parallel: usize,
        /// Apply without asking.
        #[arg(long)]
        yes: bool,
        /// Record the keys of hosts not yet in known_hosts (first contact).
        #[arg(long)]
        accept_new_host_keys: bool,
        /// Seconds to wait for a step's containers to pass their healthchecks on a host.
        #[arg(long, default_value_t = 120)]
        health_timeout: u64,
        /// Seconds to wait for a node powered on by the bare-metal stage to answer SSH.
        #[arg(long, default_value_t = 900)]
        boot_timeout: u64,
        /// Power off (through their BMCs) the provisioned nodes no longer in the
        /// inventory, and forget them.
        #[arg(long)]
        power_off_removed: bool,
        /// Where to keep this run's event log and its full plan (plan.txt); default:
        /// .provision/runs/<run id>.
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Show the plan with every file's diff (default: grouped by hosts, with counts;
        /// the full plan is always written to the run directory as plan.txt).
        #[arg(long)]
        diff: bool,
    },
    /// Print a clouds.yaml for the cloud's admin (auth on the public VIP) to stdout: the
    /// only command that shows the admin password.
    Credentials {
        /// The inventory TOML file.
        inventory: PathBuf,
    },
    /// The cloud's generated keys (keystone's Fernet and credential keys), kept on the
    /// undercloud.
    Keys {
        /// The inventory TOML file.
        inventory: PathBuf,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Power operations on the nodes, through their BMCs from the undercloud.
    Nodes {
        /// The inventory TOML file.
        inventory: PathBuf,
        #[command(subcommand)]
        command: NodesCommand,
    },
    /// Show every host's state: reachable or not, the last apply's result, and each
    /// container's state, health and whether its config hash is the desired one.
    Status {
        /// The inventory TOML file.
        inventory: PathBuf,
        /// Record the keys of hosts not yet in known_hosts (first contact).
        #[arg(long)]
        accept_new_host_keys: bool,
        /// Hosts connected to at a time.
        #[arg(long, default_value_t = 64)]
        parallel: usize,
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
    },
    /// Connect to the undercloud and every node (through it), run `true`, and report
    /// each host's reachability and round trip.
    Ping {
        /// The inventory TOML file.
        inventory: PathBuf,
        /// Record the keys of hosts not yet in known_hosts (first contact). A changed key
        /// is still refused.
        #[arg(long)]
        accept_new_host_keys: bool,
        /// Handshakes at a time.
        #[arg(long, default_value_t = 64)]
        parallel: usize,
    },
}

#[derive(Subcommand)]
enum NodesCommand {
    /// `power on|off|status|cycle`: power on the nodes that are off, cut the power, read
    /// it, or restart the nodes that are on, on every node (or --limit).
    Power {
        action: cli::nodes::PowerAction,
        /// Only these hosts or roles (comma-separated names).
        #[arg(long)]
        limit: Option<String>,
        /// Record the undercloud's key if it is not yet in known_hosts (first contact).
        #[arg(long)]
        accept_new_host_keys: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Rotate a key repository (keystone's staged-key scheme: the staged key becomes
    /// the primary, a new key is staged, the oldest beyond max_active is retired); the
    /// next `provision apply` writes it to every host of the service.
    Rotate {
        /// The repository: `keystone/fernet` or `keystone/credential`.
        repository: String,
        /// Record the undercloud's key if it is not yet in known_hosts (first contact).
        #[arg(long)]
        accept_new_host_keys: bool,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum StatusFormat {
    Text,
    Json,
}

/// No transparent huge pages for this process. mimalloc asks the kernel for them
/// (`madvise(MADV_HUGEPAGE)`), and a fault in such a region zeroes 2 MiB at once: on a
/// 5,000-host `provision diff`, which allocates and frees host after host, the kernel
/// spent 1.3 s of 3.7 s zeroing pages (`clear_page_erms`), against 0.15 s with 4 KiB
/// pages, for the same peak memory. Faults after this call take small pages; a
/// failure (a kernel without the flag) leaves things as they were.
fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and no pointer; it changes only
    // how this process's future page faults are served.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    match Cli::parse().command {
        Command::Validate {
            inventory,
            release,
            all_errors,
        } => cli::offline::validate(&inventory, release.as_deref(), all_errors),
        Command::Render { inventory, out } => cli::offline::render(&inventory, &out),
        Command::Diff {
            inventory,
            base,
            head,
            format,
            detailed_exitcode,
        } => cli::offline::diff(
            &inventory,
            &base,
            head.as_deref(),
            format,
            detailed_exitcode,
        ),
        Command::Plan {
            inventory,
            limit,
            format: fmt,
            detailed_exitcode,
            accept_new_host_keys,
            parallel,
            power_off_removed,
            out,
            summary,
            full_check,
        } => cli::plan::plan(cli::plan::PlanArgs {
            inventory: &inventory,
            limit: limit.as_deref(),
            fmt,
            detailed_exitcode,
            accept_new: accept_new_host_keys,
            parallel,
            power_off_removed,
            out: out.as_deref(),
            summary,
            full_check,
        }),
        Command::Apply {
            target,
            limit,
            parallel,
            yes,
            accept_new_host_keys,
            health_timeout,
            boot_timeout,
            power_off_removed,
            run_dir,
            diff,
        } => cli::apply::apply(cli::apply::ApplyArgs {
            target: &target,
            limit: limit.as_deref(),
            parallel,
            yes,
            accept_new: accept_new_host_keys,
            health_timeout: Duration::from_secs(health_timeout),
            boot_timeout: Duration::from_secs(boot_timeout),
            power_off_removed,
            run_dir,
            diff,
        }),
        Command::Credentials { inventory } => match cli::load(&inventory) {
            Ok(ev) => cli::credentials::print(&ev),
            Err(code) => code,
        },
        Command::Keys {
            inventory,
            command:
                KeysCommand::Rotate {
                    repository,
                    accept_new_host_keys,
                },
        } => match cli::load(&inventory) {
            Ok(ev) => cli::credentials::rotate(&ev, &repository, accept_new_host_keys),
            Err(code) => code,
        },
        Command::Nodes {
            inventory,
            command:
                NodesCommand::Power {
                    action,
                    limit,
                    accept_new_host_keys,
                },
        } => match cli::load_limited(&inventory, limit.as_deref()) {
            Ok(ev) => cli::nodes::power(&ev, &inventory, action, accept_new_host_keys),
            Err(code) => code,
        },
        Command::Status {
            inventory,
            accept_new_host_keys,
            parallel,
            format,
        } => match cli::load(&inventory) {
            Ok(ev) => cli::status::status(
                &ev,
                accept_new_host_keys,
                parallel,
                format == StatusFormat::Json,
            ),
            Err(code) => code,
        },
        Command::Ping {
            inventory,
            accept_new_host_keys,
            parallel,
        } => match cli::load(&inventory) {
            Ok(ev) => cli::ping::ping(&ev.cloud, accept_new_host_keys, parallel),
            Err(code) => code,
        },
    }
}
