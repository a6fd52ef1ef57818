//! The one decider: from a host's desired state and the facts read from it, the list of
//! changes that make it match. `plan` shows this list, `apply` executes it, `status`
//! counts it: nothing else compares desired with actual. Pure.

use crate::facts::{ActualHost, ActualPath, Health};
use crate::state::{safe_container_name, DesiredDir, DesiredFile, FileKind, HostState};
use std::collections::{BTreeMap, BTreeSet};

use crate::change::{Change, ContainerOp, DirFix, FileFix, TaskWhy};

/// Every change that makes the host of `facts` match `desired`, in the order apply
/// makes them: containers no longer desired removed, directories, files, units, then
/// the containers by deploy step and name.
pub fn decide(desired: &HostState, facts: &ActualHost) -> Vec<Change> {
    let mut changes = Vec::new();
    // Managed containers the host runs that are no longer desired there. A name that
    // is not safe as a path component is left alone (provision never makes one).
    for name in facts.containers.keys() {
        if !desired.containers.contains_key(name) && safe_container_name(name) {
            changes.push(Change::RemoveContainer {
                container: name.clone(),
            });
        }
    }
    for d in &desired.directories {
        if let Some(fix) = dir_fix(d, facts.paths.get(&d.path)) {
            changes.push(Change::Directory {
                path: d.path.clone(),
                fix,
            });
        }
    }
    let mut units = Vec::new();
    for f in desired.files.values() {
        if let Some(fix) = file_fix(f, facts.paths.get(&f.path)) {
            if let FileKind::Unit { container } = &f.kind {
                if safe_container_name(container) {
                    units.push(Change::EnableUnit {
                        unit: crate::state::unit_name(container),
                        container: container.clone(),
                    });
                }
            }
            changes.push(Change::WriteFile {
                path: f.path.clone(),
                fix,
            });
        }
    }
    changes.extend(units);
    for path in &facts.listed {
        let in_exact = desired.exact_dirs.iter().any(|d| {
            path.strip_prefix(d.as_str())
                .map(|r| r.starts_with('/') && !r[1..].contains('/'))
                .unwrap_or(false)
        });
        if in_exact && !desired.files.contains_key(path) {
            changes.push(Change::RemoveFile { path: path.clone() });
        }
    }
    changes.extend(tasks(desired, facts));
    let mut containers: Vec<(u8, &String, ContainerOp)> = Vec::new();
    for (name, def) in &desired.containers {
        let want = def.labels.get("provision.config_hash");
        let op = match facts.containers.get(name) {
            None => ContainerOp::Create,
            Some(a) if Some(&a.config_hash) != want => ContainerOp::Recreate {
                found_hash: a.config_hash.clone(),
            },
            Some(a) if a.state != "running" => ContainerOp::Start {
                found_state: a.state.clone(),
            },
            // Health is part of convergence: a running container whose healthcheck
            // fails, or has not passed since it started, is not in sync.
            Some(a) if def.healthcheck.is_some() => match a.health() {
                Health::Unhealthy => ContainerOp::Recover {
                    found_health: Health::Unhealthy.word().into(),
                },
                Health::Starting => ContainerOp::AwaitHealth {
                    found_health: Health::Starting.word().into(),
                },
                Health::Healthy | Health::Unknown => continue,
            },
            Some(_) => continue,
        };
        containers.push((def.step, name, op));
    }
    containers.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    changes.extend(
        containers
            .into_iter()
            .map(|(step, name, op)| Change::Container {
                container: name.clone(),
                step,
                op,
            }),
    );
    changes
}

/// The tasks to run, by step, order and id: those that never succeeded on the host,
/// and those whose definition, files or (if it counts) image changed since.
fn tasks(desired: &HostState, facts: &ActualHost) -> Vec<Change> {
    let mut out: Vec<(u8, u16, &String, TaskWhy)> = Vec::new();
    for (id, t) in &desired.tasks {
        let why = match facts.tasks.get(id) {
            None => TaskWhy::NeverRun,
            Some(r) if r.definition_hash != t.definition_hash => TaskWhy::DefinitionChanged,
            Some(r) if r.hosts_of != t.hosts_of => hosts_changed(&r.hosts_of, &t.hosts_of),
            Some(r) if r.files_hash != t.files_hash => TaskWhy::FilesChanged,
            Some(r) if t.rerun_on_image_change && r.image != t.image => TaskWhy::ImageChanged {
                from: r.image.clone(),
                to: t.image.clone(),
            },
            Some(_) => continue,
        };
        out.push((t.step, t.order, id, why));
    }
    out.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    out.into_iter()
        .map(|(step, order, id, why)| Change::Task {
            task: id.clone(),
            step,
            order,
            why,
        })
        .collect()
}

/// How the hosts of a task's `rerun_on_hosts_of` services changed since it last ran.
fn hosts_changed(
    then: &BTreeMap<String, Vec<String>>,
    now: &BTreeMap<String, Vec<String>>,
) -> TaskWhy {
    let all = |m: &BTreeMap<String, Vec<String>>| -> BTreeSet<(String, String)> {
        m.iter()
            .flat_map(|(s, hs)| hs.iter().map(move |h| (s.clone(), h.clone())))
            .collect()
    };
    let (a, b) = (all(then), all(now));
    let names = |d: std::collections::btree_set::Difference<(String, String)>| {
        let mut v: Vec<String> = d.map(|(_, h)| h.clone()).collect();
        v.dedup();
        v
    };
    let services: BTreeSet<String> = a
        .symmetric_difference(&b)
        .map(|(s, _)| s.clone())
        .chain(
            then.keys()
                .chain(now.keys())
                .filter(|k| then.get(*k).is_none() != now.get(*k).is_none())
                .cloned(),
        )
        .collect();
    TaskWhy::HostsChanged {
        services: services.into_iter().collect(),
        added: names(b.difference(&a)),
        removed: names(a.difference(&b)),
    }
}

/// What must change about a file, if anything.
pub fn file_fix(f: &DesiredFile, found: Option<&ActualPath>) -> Option<FileFix> {
    let Some(a) = found else {
        return Some(FileFix {
            found: None,
            content: true,
            mode: None,
            owner: None,
        });
    };
    let content = a.sha256.as_deref() != Some(f.sha256().as_str());
    let mode = (a.mode != f.mode).then_some([a.mode, f.mode]);
    let owner = (!a.owned_by(&f.owner, &f.group)).then(|| {
        [
            format!("{}:{}", a.user, a.group),
            format!("{}:{}", f.owner, f.group),
        ]
    });
    (content || mode.is_some() || owner.is_some()).then(|| FileFix {
        found: Some(a.kind.clone()),
        content,
        mode,
        owner,
    })
}

/// What must change about a directory, if anything.
pub fn dir_fix(d: &DesiredDir, found: Option<&ActualPath>) -> Option<DirFix> {
    let Some(a) = found else {
        return Some(DirFix {
            found: None,
            mode: None,
            owner: None,
        });
    };
    if !a.is_dir() {
        return Some(DirFix {
            found: Some(a.kind.clone()),
            mode: None,
            owner: None,
        });
    }
    let want = u32::from_str_radix(&d.mode, 8).ok();
    let mode = (want != Some(a.mode)).then(|| [format!("{:04o}", a.mode), d.mode.clone()]);
    let owner = (!a.owned_by(&d.owner, &d.group)).then(|| {
        [
            format!("{}:{}", a.user, a.group),
            format!("{}:{}", d.owner, d.group),
        ]
    });
    (mode.is_some() || owner.is_some()).then(|| DirFix {
        found: Some(a.kind.clone()),
        mode,
        owner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::ActualContainer;
    use crate::state::ContainerDef;

    fn file(path: &str, content: &str) -> DesiredFile {
        DesiredFile {
            path: path.into(),
            content: content.into(),
            mode: 0o640,
            owner: "root".into(),
            group: "42425".into(),
            service: "keystone".into(),
            kind: FileKind::Template {
                template: "x.j2".into(),
            },
            secret: false,
        }
    }

    fn found(kind: &str, sha: Option<String>, mode: u32, owner: (&str, &str)) -> ActualPath {
        ActualPath {
            kind: kind.into(),
            mode,
            uid: "0".into(),
            gid: owner.1.into(),
            user: "root".into(),
            group: owner.0.into(),
            sha256: sha,
        }
    }

    fn container(name: &str, step: u8, hash: &str) -> ContainerDef {
        let mut d = ContainerDef::named(name);
        d.step = step;
        d.labels.insert("provision.config_hash".into(), hash.into());
        d
    }

    fn running(state: &str, hash: &str) -> ActualContainer {
        ActualContainer {
            state: state.into(),
            config_hash: hash.into(),
            status: String::new(),
        }
    }

    #[test]
    fn files_differ_by_content_mode_owner_or_absence() {
        let mut hs = HostState::default();
        for (p, c) in [
            ("/a", "same"),
            ("/b", "new"),
            ("/c", "mode"),
            ("/d", "owner"),
            ("/e", "missing"),
            ("/f", "a directory there"),
        ] {
            hs.files.insert(p.into(), file(p, c));
        }
        let sha = |p: &str| Some(hs.files[p].sha256());
        let mut facts = ActualHost::default();
        let f = "regular file";
        // The group is given by number in the catalogue: its name on the host matches.
        facts.paths.insert(
            "/a".into(),
            found(f, sha("/a"), 0o640, ("keystone", "42425")),
        );
        facts.paths.insert(
            "/b".into(),
            found(f, Some("00".into()), 0o640, ("keystone", "42425")),
        );
        facts.paths.insert(
            "/c".into(),
            found(f, sha("/c"), 0o644, ("keystone", "42425")),
        );
        facts
            .paths
            .insert("/d".into(), found(f, sha("/d"), 0o640, ("root", "0")));
        facts
            .paths
            .insert("/f".into(), found("directory", None, 0o755, ("root", "0")));
        let changes = decide(&hs, &facts);
        type Seen<'a> = (&'a str, Option<&'a str>, bool, Option<[u32; 2]>, bool);
        let got: Vec<Seen> = changes
            .iter()
            .map(|c| match c {
                Change::WriteFile { path, fix } => (
                    path.as_str(),
                    fix.found.as_deref(),
                    fix.content,
                    fix.mode,
                    fix.owner.is_some(),
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("/b", Some(f), true, None, false),
                ("/c", Some(f), false, Some([0o644, 0o640]), false),
                ("/d", Some(f), false, None, true),
                ("/e", None, true, None, false),
                ("/f", Some("directory"), true, Some([0o755, 0o640]), true),
            ]
        );
    }

    #[test]
    fn directories_compare_octal_modes_and_owners() {
        let dir = |path: &str, mode: &str| DesiredDir {
            path: path.into(),
            mode: mode.into(),
            owner: "42425".into(),
            group: "42425".into(),
        };
        let hs = HostState {
            directories: vec![
                dir("/ok", "0750"),
                dir("/mode", "0750"),
                dir("/missing", "0750"),
                dir("/file", "0750"),
                dir("/sticky", "2750"),
            ],
            ..Default::default()
        };
        let mut facts = ActualHost::default();
        let mut at = |p: &str, kind: &str, mode: u32| {
            let mut a = found(kind, None, mode, ("keystone", "42425"));
            a.uid = "42425".into();
            facts.paths.insert(p.into(), a);
        };
        at("/ok", "directory", 0o750);
        at("/mode", "directory", 0o755);
        at("/file", "regular file", 0o750);
        at("/sticky", "directory", 0o2750);
        let got: Vec<(String, DirFix)> = decide(&hs, &facts)
            .into_iter()
            .map(|c| match c {
                Change::Directory { path, fix } => (path, fix),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, "/mode");
        assert_eq!(
            got[0].1.mode,
            Some(["0755".to_string(), "0750".to_string()])
        );
        assert_eq!((got[1].0.as_str(), got[1].1.creates()), ("/missing", true));
        assert_eq!(got[2].1.found.as_deref(), Some("regular file"));
    }

    #[test]
    fn containers_follow_the_config_hash_and_state_in_step_order() {
        let mut hs = HostState::default();
        for (n, step, h) in [
            ("a", 1, "h1"),
            ("c", 2, "h3"),
            ("b", 2, "h2"),
            ("d", 3, "h4"),
        ] {
            hs.containers.insert(n.into(), container(n, step, h));
        }
        let mut facts = ActualHost::default();
        facts
            .containers
            .insert("a".into(), running("running", "h1")); // unchanged
        facts
            .containers
            .insert("b".into(), running("running", "old")); // changed
        facts.containers.insert("c".into(), running("exited", "h3")); // stopped
        facts
            .containers
            .insert("gone".into(), running("running", "x")); // not desired
        facts
            .containers
            .insert("../etc".into(), running("running", "x")); // unsafe
        let got: Vec<Change> = decide(&hs, &facts);
        assert_eq!(
            got,
            vec![
                Change::RemoveContainer {
                    container: "gone".into()
                },
                Change::Container {
                    container: "b".into(),
                    step: 2,
                    op: ContainerOp::Recreate {
                        found_hash: "old".into()
                    }
                },
                Change::Container {
                    container: "c".into(),
                    step: 2,
                    op: ContainerOp::Start {
                        found_state: "exited".into()
                    }
                },
                Change::Container {
                    container: "d".into(),
                    step: 3,
                    op: ContainerOp::Create
                },
            ]
        );
    }

    #[test]
    fn health_is_part_of_convergence() {
        let mut hs = HostState::default();
        let checked = |n: &str| {
            let mut d = container(n, 3, "h");
            d.healthcheck = Some(crate::catalogue::Healthcheck {
                test: "true".into(),
                interval: "30s".into(),
                timeout: "10s".into(),
                retries: 3,
                start_period: "5s".into(),
            });
            d
        };
        for n in ["healthy", "sick", "booting", "exited", "unknown"] {
            hs.containers.insert(n.into(), checked(n));
        }
        // Without a healthcheck, a status saying `(starting)` is not acted on.
        hs.containers
            .insert("plain".into(), container("plain", 3, "h"));
        let mut facts = ActualHost::default();
        for (n, state, status) in [
            ("healthy", "running", "Up 2 minutes (healthy)"),
            ("sick", "running", "Up 2 minutes (unhealthy)"),
            ("booting", "running", "Up 40 minutes (starting)"),
            ("exited", "exited", "Exited (137) 5 seconds ago"),
            ("unknown", "running", "Up 2 minutes"),
            ("plain", "running", "Up 2 minutes (starting)"),
        ] {
            let mut c = running(state, "h");
            c.status = status.into();
            facts.containers.insert(n.into(), c);
        }
        let got: Vec<(String, ContainerOp)> = decide(&hs, &facts)
            .into_iter()
            .map(|c| match c {
                Change::Container { container, op, .. } => (container, op),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "booting".to_string(),
                    ContainerOp::AwaitHealth {
                        found_health: "starting".into()
                    }
                ),
                (
                    "exited".to_string(),
                    ContainerOp::Start {
                        found_state: "exited".into()
                    }
                ),
                (
                    "sick".to_string(),
                    ContainerOp::Recover {
                        found_health: "unhealthy".into()
                    }
                ),
            ]
        );
        let counts = crate::change::Counts::of(&decide(&hs, &facts));
        assert_eq!(
            counts.brief(crate::change::Tense::Planned),
            "1 container to recreate, 1 to start, 1 healthcheck to wait for"
        );
    }

    #[test]
    fn a_unit_written_is_a_unit_enabled() {
        let mut hs = HostState::default();
        let mut u = file("/etc/systemd/system/provision-a.service", "[Unit]\n");
        u.kind = FileKind::Unit {
            container: "a".into(),
        };
        hs.files.insert(u.path.clone(), u);
        let got = decide(&hs, &ActualHost::default());
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1],
            Change::EnableUnit {
                unit: "provision-a.service".into(),
                container: "a".into()
            }
        );
    }
}
