//! The `provision` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod cli;

use provision::diff::{self, format, revisions};
use provision::evaluate::{evaluate, Evaluation};
use provision::git::Repo;
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
        /// Save the plan to FILE, for `provision apply FILE` (no contents, no secrets).
        #[arg(long)]
        out: Option<PathBuf>,
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
        /// Where to keep this run's event log; default: .provision/runs/<run id>.
        #[arg(long)]
        run_dir: Option<PathBuf>,
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
    /// `power on|off|status`: press the power button, or read it, on every node (or
    /// --limit).
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

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum StatusFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Markdown,
    Json,
}

impl OutputFormat {
    fn render(self, report: &diff::Report) -> String {
        match self {
            OutputFormat::Text => format::text(report),
            OutputFormat::Markdown => format::markdown(report),
            OutputFormat::Json => format::json(report),
        }
    }
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
                    .map(|r| {
                        format!(
                            "{r} {}",
                            ev.cloud.hosts.iter().filter(|h| &h.role == r).count()
                        )
                    })
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
        Command::Plan {
            inventory,
            limit,
            format: fmt,
            detailed_exitcode,
            accept_new_host_keys,
            parallel,
            out,
        } => match load(&inventory) {
            Ok(ev) => cli::converge::plan(cli::converge::PlanArgs {
                inventory: &inventory,
                ev,
                limit: limit.as_deref(),
                fmt,
                detailed_exitcode,
                accept_new: accept_new_host_keys,
                parallel,
                out: out.as_deref(),
            }),
            Err(code) => code,
        },
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
        } => cli::converge::apply(cli::converge::ApplyArgs {
            target: &target,
            limit: limit.as_deref(),
            parallel,
            yes,
            accept_new: accept_new_host_keys,
            health_timeout: std::time::Duration::from_secs(health_timeout),
            boot_timeout: std::time::Duration::from_secs(boot_timeout),
            power_off_removed,
            run_dir,
        }),
        Command::Nodes {
            inventory,
            command:
                NodesCommand::Power {
                    action,
                    limit,
                    accept_new_host_keys,
                },
        } => match load(&inventory) {
            Ok(mut ev) => match apply_limit(&inventory, &mut ev, limit.as_deref()) {
                Ok(()) => cli::nodes::power(&ev, action, accept_new_host_keys),
                Err(code) => code,
            },
            Err(code) => code,
        },
        Command::Status {
            inventory,
            accept_new_host_keys,
            parallel,
            format,
        } => match load(&inventory) {
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
        } => match load(&inventory) {
            Ok(ev) => ping(&ev.cloud, accept_new_host_keys, parallel),
            Err(code) => code,
        },
        Command::Diff {
            inventory,
            base,
            head,
            format: fmt,
            detailed_exitcode,
        } => match run_diff(&inventory, &base, head.as_deref()) {
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
        },
    }
}

fn run_diff(
    inventory: &std::path::Path,
    base: &str,
    head: Option<&str>,
) -> Result<diff::Report, String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let repo = Repo::discover(&cwd).map_err(|e| e.to_string())?;
    let rel = repo.relative(&cwd, inventory).map_err(|e| e.to_string())?;
    let base_src = revisions::Source::Commit(repo.resolve(base).map_err(|e| e.to_string())?);
    let head_src = match head {
        Some(h) => revisions::Source::Commit(repo.resolve(h).map_err(|e| e.to_string())?),
        None => revisions::Source::WorkingTree,
    };
    let opts = LoadOptions::from_process_env();
    let (b, h) = std::thread::scope(|s| {
        let b = s.spawn(|| revisions::evaluate_at(&repo, &rel, &base_src, "base", &opts));
        let h = revisions::evaluate_at(&repo, &rel, &head_src, "head", &opts);
        (b.join(), h)
    });
    let b = b
        .map_err(|_| "evaluating the base revision failed unexpectedly".to_string())?
        .map_err(|e| e.to_string())?;
    let h = h.map_err(|e| e.to_string())?;
    let label = rel.display().to_string();
    Ok(diff::compare(
        &label,
        &diff::Side {
            label: base_src.info(),
            state: &b.state,
            secrets: &b.cloud.secrets,
        },
        &diff::Side {
            label: head_src.info(),
            state: &h.state,
            secrets: &h.cloud.secrets,
        },
    ))
}

/// Evaluates an inventory, printing warnings and errors to stderr.
pub(crate) fn load(inventory: &std::path::Path) -> Result<Evaluation, ExitCode> {
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

fn ping(cloud: &provision::model::Cloud, accept_new: bool, parallel: usize) -> ExitCode {
    use std::time::{Duration, Instant};
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let names: Vec<String> = cloud.hosts.iter().map(|h| h.name.clone()).collect();
        let start = Instant::now();
        let fleet = match open_fleet(cloud, &names, accept_new, parallel).await {
            Ok(f) => f,
            Err(code) => return code,
        };
        let mut failed = 0;
        let mut report = |name: &str, role: &str, r: Result<Duration, String>| match r {
            Ok(d) => println!(
                "ok    {name:<28} {role:<12} {:>7.1} ms",
                d.as_secs_f64() * 1000.0
            ),
            Err(e) => {
                failed += 1;
                println!("FAIL  {name:<28} {role:<12} {e}");
            }
        };
        let t = Instant::now();
        let uc = fleet
            .undercloud
            .exec("true", None, Duration::from_secs(30))
            .await
            .map(|_| t.elapsed())
            .map_err(|e| e.to_string());
        report(&cloud.undercloud.name, "undercloud", uc);
        for h in &cloud.hosts {
            let r = match fleet.nodes.get(&h.name) {
                Some(Ok(s)) => {
                    let t = Instant::now();
                    s.exec("true", None, Duration::from_secs(30))
                        .await
                        .map(|_| t.elapsed())
                        .map_err(|e| e.to_string())
                }
                Some(Err(e)) => Err(e.to_string()),
                None => Err("not attempted".into()),
            };
            report(&h.name, &h.role, r);
        }
        println!(
            "\n{} of {} hosts answered in {:.2} s.",
            cloud.hosts.len() + 1 - failed,
            cloud.hosts.len() + 1,
            start.elapsed().as_secs_f64()
        );
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}

/// Keeps only the hosts named by `--limit` (host or role names), and the undercloud.
pub(crate) fn apply_limit(
    inventory: &std::path::Path,
    ev: &mut Evaluation,
    limit: Option<&str>,
) -> Result<(), ExitCode> {
    let Some(limit) = limit else { return Ok(()) };
    let wanted: Vec<&str> = limit
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let undercloud = [
        ev.cloud.undercloud.name.as_str(),
        provision::model::UNDERCLOUD_ROLE,
    ];
    let known: Vec<&str> = ev
        .cloud
        .hosts
        .iter()
        .flat_map(|h| [h.name.as_str(), h.role.as_str()])
        .chain(undercloud)
        .collect();
    if let Some(bad) = wanted.iter().find(|w| !known.contains(w)) {
        eprintln!(
            "error: --limit names `{bad}`, which is neither a host nor a role of {}",
            inventory.display()
        );
        return Err(ExitCode::FAILURE);
    }
    // The undercloud is always kept: the nodes' DHCP, DNS and log receiver are its
    // services (a node added with --limit needs its DHCP entry).
    let uc_name = ev.cloud.undercloud.name.clone();
    let roles: std::collections::BTreeMap<String, String> = ev
        .cloud
        .hosts
        .iter()
        .map(|h| (h.name.clone(), h.role.clone()))
        .collect();
    ev.state.hosts.retain(|name, _| {
        *name == uc_name
            || wanted.contains(&name.as_str())
            || roles
                .get(name)
                .map(|r| wanted.contains(&r.as_str()))
                .unwrap_or(false)
    });
    Ok(())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

/// Connects to the undercloud and the named nodes, printing why it could not.
pub(crate) async fn open_fleet(
    cloud: &provision::model::Cloud,
    names: &[String],
    accept_new: bool,
    parallel: usize,
) -> Result<provision::transport::Fleet, ExitCode> {
    use provision::transport::{Credentials, Fleet, SshOptions};
    let opts = SshOptions::from_cloud(cloud, accept_new);
    let creds = Credentials::load(&opts).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })?;
    Fleet::connect(cloud, names, &opts, &creds, parallel)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })
}
