//! `provision plan`: what an apply would change on each host. The actual state is read
//! from every host (one batched command each, plus one to fetch the files that differ),
//! turned into the same shape as a rendered state, and compared with the desired state
//! by the same code as `provision diff`: same grouping, same redaction, same summary.

pub mod gather;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::diff::{self, Report, RevisionInfo, Side};
use crate::inventory::Secrets;
use crate::render::{ContainerDef, DesiredFile, DesiredState, HostState};
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
            hs.directories.push(crate::render::DesiredDir {
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
        def.labels
            .insert("provision.config_hash".into(), c.config_hash.clone());
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

/// Reads every host of `desired` through `fleet` (in parallel) and compares.
pub async fn plan(
    inventory: &str,
    desired: &DesiredState,
    secrets: &Secrets,
    fleet: &Fleet,
    timeout: Duration,
) -> (Report, Vec<Unreachable>) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut failed = Vec::new();
    for (name, hs) in &desired.hosts {
        match fleet.nodes.get(name) {
            Some(Ok(session)) => {
                let (session, hs) = (session.clone(), hs.clone());
                tasks.spawn(async move {
                    let actual = gather::gather(&session, &hs, timeout).await;
                    (hs.name.clone(), actual.map(|a| as_state(&hs, &a)))
                });
            }
            Some(Err(_)) | None => {}
        }
    }
    let mut actual = DesiredState {
        hosts: BTreeMap::new(),
    };
    while let Some(done) = tasks.join_next().await {
        if let Ok((name, result)) = done {
            match result {
                Ok(hs) => {
                    actual.hosts.insert(name, hs);
                }
                Err(error) => failed.push(Unreachable { host: name, error }),
            }
        }
    }
    for (name, r) in &fleet.nodes {
        if let Err(e) = r {
            failed.push(Unreachable {
                host: name.clone(),
                error: TransportError::Ssh {
                    host: name.clone(),
                    during: "connecting".into(),
                    message: e.to_string(),
                },
            });
        }
    }
    // Compare only the hosts that were read.
    let reached = DesiredState {
        hosts: desired
            .hosts
            .iter()
            .filter(|(n, _)| actual.hosts.contains_key(*n))
            .map(|(n, h)| (n.clone(), h.clone()))
            .collect(),
    };
    let mut report = diff::compare(
        inventory,
        &Side {
            label: RevisionInfo {
                rev: "actual state".into(),
                commit: None,
            },
            state: &actual,
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
    failed.sort_by(|a, b| a.host.cmp(&b.host));
    (report, failed)
}
