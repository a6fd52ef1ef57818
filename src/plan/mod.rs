//! `provision plan`: what an apply would change on each host. The actual state is read
//! from every host (one batched command each, plus one to fetch the files that differ),
//! turned into the same shape as a rendered state, and compared with the desired state
//! by the same code as `provision diff`: same grouping, same redaction, same summary.

pub mod gather;
pub mod saved;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::diff::{self, Report, RevisionInfo, Side};
use crate::inventory::Secrets;
use crate::state::{ContainerDef, DesiredFile, DesiredState, HostState};
use crate::transport::{Fleet, TransportError};
use gather::ActualHost;

/// Whether an owner as the inventory writes it (name or number) is what the host has.
fn same_id(desired: &str, name: &str, number: &str) -> bool {
    desired == name || desired == number
}

/// The host's actual state in the shape of a rendered one, for comparison. Files whose
/// hash matches carry the desired content; files that differ carry the host's content,
/// except that in a file holding secrets every line of the host's that the desired
/// file does not have is hidden (it may hold an old secret value).
pub fn as_state(desired: &HostState, actual: &ActualHost) -> HostState {
    let mut hs = HostState {
        name: desired.name.clone(),
        role: desired.role.clone(),
        ..Default::default()
    };
    for f in desired.files.values() {
        let Some(a) = actual.paths.get(&f.path) else {
            continue;
        };
        let content = match &a.sha256 {
            Some(h) if *h == f.sha256() => f.content.clone(),
            Some(_) => {
                let text = String::from_utf8_lossy(
                    actual
                        .contents
                        .get(&f.path)
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                )
                .into_owned();
                if f.secret {
                    let known: std::collections::BTreeSet<&str> = f.content.lines().collect();
                    text.lines()
                        .enumerate()
                        .map(|(i, l)| if known.contains(l) { format!("{l}\n") } else { format!("(line {} of the host's file hidden: this file holds secrets)\n", i + 1) })
                        .collect()
                } else {
                    text
                }
            }
            None => format!("(not a regular file: {})\n", a.kind),
        };
        hs.files.insert(
            f.path.clone(),
            DesiredFile {
                path: f.path.clone(),
                content,
                mode: a.mode,
                owner: if same_id(&f.owner, &a.user, &a.uid) {
                    f.owner.clone()
                } else {
                    a.user.clone()
                },
                group: if same_id(&f.group, &a.group, &a.gid) {
                    f.group.clone()
                } else {
                    a.group.clone()
                },
                service: f.service.clone(),
                kind: f.kind.clone(),
                secret: f.secret,
            },
        );
    }
    for d in &desired.directories {
        if let Some(a) = actual.paths.get(&d.path).filter(|a| a.kind == "directory") {
            hs.directories.push(crate::state::DesiredDir {
                path: d.path.clone(),
                mode: format!("{:04o}", a.mode),
                owner: if same_id(&d.owner, &a.user, &a.uid) {
                    d.owner.clone()
                } else {
                    a.user.clone()
                },
                group: if same_id(&d.group, &a.group, &a.gid) {
                    d.group.clone()
                } else {
                    a.group.clone()
                },
            });
        }
    }
    for (name, c) in &actual.containers {
        let mut def = desired
            .containers
            .get(name)
            .cloned()
            .unwrap_or_else(|| ContainerDef::named(name));
        // A stopped container is started by apply: shown as a restart.
        let hash = if c.state == "running" {
            c.config_hash.clone()
        } else {
            format!("{} ({})", c.config_hash, c.state)
        };
        def.labels.insert("provision.config_hash".into(), hash);
        hs.containers.insert(name.clone(), def);
    }
    hs
}

/// A host that could not be read.
#[derive(Debug)]
pub struct Unreachable {
    pub host: String,
    pub error: TransportError,
}

/// The actual state of every host that could be read, and those that could not.
#[derive(Debug, Default)]
pub struct Gathered {
    pub actual: BTreeMap<String, ActualHost>,
    pub unreachable: Vec<Unreachable>,
}

/// Reads every host of `desired` through `fleet`, all at once: one command per host,
/// plus one to fetch the files that differ when `fetch_contents` (for the diffs).
pub async fn gather_all(
    desired: &DesiredState,
    fleet: &Fleet,
    timeout: Duration,
    fetch_contents: bool,
    trust_stamp: bool,
) -> Gathered {
    let mut tasks = tokio::task::JoinSet::new();
    let mut out = Gathered::default();
    for (name, hs) in &desired.hosts {
        match fleet.session(name) {
            Some(Ok(session)) => {
                let (session, hs) = (session.clone(), hs.clone());
                tasks.spawn(async move {
                    let actual =
                        gather::gather_with(&session, &hs, timeout, fetch_contents, trust_stamp)
                            .await;
                    (hs.name.clone(), actual)
                });
            }
            Some(Err(e)) => out.unreachable.push(Unreachable {
                host: name.clone(),
                error: TransportError::Ssh {
                    host: name.clone(),
                    during: "connecting".into(),
                    message: e.to_string(),
                },
            }),
            None => {}
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((name, result)) = done {
            match result {
                Ok(a) => {
                    out.actual.insert(name, a);
                }
                Err(error) => out.unreachable.push(Unreachable { host: name, error }),
            }
        }
    }
    out.unreachable.sort_by(|a, b| a.host.cmp(&b.host));
    out
}

/// Compares the desired state of the hosts that were read with their actual state.
pub fn compare(
    inventory: &str,
    desired: &DesiredState,
    actual: &BTreeMap<String, ActualHost>,
    secrets: &Secrets,
) -> Report {
    let mut as_found = DesiredState::default();
    let mut reached = DesiredState::default();
    for (name, hs) in &desired.hosts {
        if let Some(a) = actual.get(name) {
            as_found.hosts.insert(name.clone(), as_state(hs, a));
            reached.hosts.insert(name.clone(), hs.clone());
        }
    }
    let mut report = diff::compare(
        inventory,
        &Side {
            label: RevisionInfo {
                rev: "actual state".into(),
                commit: None,
            },
            state: &as_found,
            secrets,
        },
        &Side {
            label: RevisionInfo {
                rev: "desired state".into(),
                commit: None,
            },
            state: &reached,
            secrets,
        },
    );
    report.kind = diff::ReportKind::Plan;
    report
}

/// Reads every host of `desired` through `fleet` (in parallel) and compares.
pub async fn plan(
    inventory: &str,
    desired: &DesiredState,
    secrets: &Secrets,
    fleet: &Fleet,
    timeout: Duration,
) -> (Report, Vec<Unreachable>) {
    let g = gather_all(desired, fleet, timeout, true, false).await;
    (
        compare(inventory, desired, &g.actual, secrets),
        g.unreachable,
    )
}
