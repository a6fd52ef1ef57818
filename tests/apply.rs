//! `provision apply` against the lab (real sshd hosts, real podman), through the real
//! binary: from empty hosts to the rendered state (every file's content, mode and owner;
//! every container running with its labels and mounts); a second apply changes nothing;
//! a role variable changes only that role's files and containers; failures, tolerated
//! failure percentages, the lock, saved plans and drift, the event log.
//!
//! The tests share the lab and its apply lock: they run one at a time (`serial`).

mod common;
use common::repo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use provision::evaluate::{evaluate, Evaluation};
use provision::model::LoadOptions;
use provision::source::FsTree;
use provision::transport::{Credentials, Fleet, Session, SshOptions};

static LAB: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    LAB.lock().unwrap_or_else(|e| e.into_inner())
}

const T: Duration = Duration::from_secs(120);

/// A copy of inventories/lab.toml in a temporary folder (with links to the repository's
/// templates, roles and lab keys), with `extra` appended: a variant of the lab to apply.
struct LabCopy {
    dir: tempfile::TempDir,
}

impl LabCopy {
    fn new(extra: &str) -> LabCopy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("inventories")).unwrap();
        for link in ["templates", "roles", "lab"] {
            std::os::unix::fs::symlink(repo().join(link), dir.path().join(link)).unwrap();
        }
        for f in ["lab.toml", "lab.secrets.toml"] {
            std::fs::copy(
                repo().join("inventories").join(f),
                dir.path().join("inventories").join(f),
            )
            .unwrap();
        }
        let inv = dir.path().join("inventories/lab.toml");
        let mut text = std::fs::read_to_string(&inv).unwrap();
        text.push_str(extra);
        std::fs::write(&inv, text).unwrap();
        LabCopy { dir }
    }
    fn inventory(&self) -> PathBuf {
        self.dir.path().join("inventories/lab.toml")
    }
    /// Replaces `from` (once) in the inventory.
    fn edit(&self, from: &str, to: &str) {
        let inv = self.inventory();
        let text = std::fs::read_to_string(&inv).unwrap();
        assert_eq!(text.matches(from).count(), 1, "{from}");
        std::fs::write(&inv, text.replacen(from, to, 1)).unwrap();
    }
}

fn load(inventory: &Path) -> Evaluation {
    assert!(
        repo().join("lab/state/known_hosts").is_file(),
        "the lab is not running: start it with lab/lab.sh up (scripts/test.sh does)"
    );
    match evaluate(inventory, &FsTree, &LoadOptions::default()) {
        Ok(ev) => ev,
        Err(f) => panic!("{}", f.render()),
    }
}

/// Runs the provision binary (no terminal: plain progress lines).
fn provision(args: &[&str]) -> (Output, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    (o, out, err)
}

async fn fleet(ev: &Evaluation) -> Fleet {
    let mut opts = SshOptions::from_cloud(&ev.cloud, false);
    opts.use_agent = false;
    let creds = Credentials::load(&opts).unwrap();
    let names: Vec<String> = ev.state.hosts.keys().cloned().collect();
    Fleet::connect(&ev.cloud, &names, &opts, &creds, 16)
        .await
        .unwrap()
}

fn node<'a>(f: &'a Fleet, name: &str) -> &'a Session {
    f.nodes[name].as_ref().unwrap()
}

async fn sh(s: &Session, cmd: &str) -> String {
    let o = s.exec(cmd, None, T).await.unwrap();
    assert!(
        o.success(),
        "`{cmd}` on {}: {}",
        s.target.name,
        o.stderr_text()
    );
    o.stdout_text()
}

/// Empties every node: no managed container, no managed file.
async fn wipe(f: &Fleet) {
    for s in f.nodes.values() {
        sh(
            s.as_ref().unwrap(),
            "podman ps -aq --filter label=managed_by=provision | xargs -r podman rm -f -t 0 >/dev/null; \
             rm -rf /etc/overcloud/* /var/lib/overcloud/* /var/log/overcloud/*",
        )
        .await;
    }
}

/// name -> (state, config hash, id) of the managed containers on a host.
async fn containers(s: &Session) -> BTreeMap<String, (String, String, String)> {
    let json = sh(
        s,
        "podman ps -a --filter label=managed_by=provision --format json",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["Names"][0].as_str().unwrap().to_string(),
                (
                    c["State"].as_str().unwrap().to_string(),
                    c["Labels"]["provision.config_hash"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    c["Id"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// Every host's container ids, by host then container.
async fn all_ids(f: &Fleet) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, s) in &f.nodes {
        let c = containers(s.as_ref().unwrap()).await;
        out.insert(
            name.clone(),
            c.into_iter().map(|(n, (_, _, id))| (n, id)).collect(),
        );
    }
    out
}

fn id(v: &str) -> String {
    if v == "root" {
        "0".into()
    } else {
        v.into()
    }
}

/// Checks a host's files, directories and containers against the desired state.
async fn check_host(ev: &Evaluation, f: &Fleet, host: &str) {
    let s = node(f, host);
    let desired = &ev.state.hosts[host];
    let paths: Vec<String> = desired.files.keys().cloned().collect();
    let out = sh(
        s,
        &format!(
            "for f in {}; do printf '%s %s %s\\n' \"$f\" \"$(stat -c '%a %u %g' \"$f\")\" \"$(sha256sum < \"$f\" | cut -c1-64)\"; done",
            paths.join(" ")
        ),
    )
    .await;
    for file in desired.files.values() {
        let line = format!(
            "{} {:o} {} {} {}",
            file.path,
            file.mode,
            id(&file.owner),
            id(&file.group),
            file.sha256()
        );
        assert!(
            out.lines().any(|l| l == line),
            "{host}: {} differs from the render: want `{line}`",
            file.path
        );
    }
    for d in &desired.directories {
        let got = sh(s, &format!("stat -c '%a %u %g' {}", d.path)).await;
        assert_eq!(
            got.trim(),
            format!(
                "{} {} {}",
                d.mode.trim_start_matches('0'),
                id(&d.owner),
                id(&d.group)
            ),
            "{host}: {}",
            d.path
        );
    }
    let running = containers(s).await;
    let want: BTreeMap<String, (String, String)> = desired
        .containers
        .iter()
        .map(|(n, c)| {
            (
                n.clone(),
                (
                    "running".to_string(),
                    c.labels["provision.config_hash"].clone(),
                ),
            )
        })
        .collect();
    let got: BTreeMap<String, (String, String)> = running
        .into_iter()
        .map(|(n, (st, h, _))| (n, (st, h)))
        .collect();
    assert_eq!(got, want, "{host}: containers");
    // Labels, mounts (configuration read-only, logs read-write), user, network.
    for (name, c) in &desired.containers {
        let info = sh(
            s,
            &format!(
                "podman inspect {name} --format '{{{{.Config.Labels}}}}|{{{{range .Mounts}}}}{{{{.Source}}}}>{{{{.Destination}}}}:{{{{.RW}}}} {{{{end}}}}|{{{{.Config.User}}}}|{{{{.HostConfig.NetworkMode}}}}'"
            ),
        )
        .await;
        for (k, v) in &c.labels {
            assert!(
                info.contains(&format!("{k}:{v}")),
                "{host}/{name}: label {k}={v} missing: {info}"
            );
        }
        for v in &c.volumes {
            let parts: Vec<&str> = v.split(':').collect();
            let rw = parts
                .get(2)
                .map(|o| !o.split(',').any(|x| x == "ro"))
                .unwrap_or(true);
            // A named volume's source is podman's own data folder: check its destination.
            let mount = if parts[0].starts_with('/') {
                format!("{}>{}:{rw}", parts[0], parts[1])
            } else {
                format!(">{}:{rw}", parts[1])
            };
            assert!(
                info.contains(&mount),
                "{host}/{name}: mount {mount} missing: {info}"
            );
        }
        if let Some(u) = &c.user {
            assert!(
                info.contains(&format!("|{u}|")),
                "{host}/{name}: user {u}: {info}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_converges_the_lab_then_changes_only_what_changed() {
    let _g = serial();
    let lab = LabCopy::new("");
    let ev = load(&lab.inventory());
    let f = fleet(&ev).await;
    wipe(&f).await;
    let runs = tempfile::tempdir().unwrap();
    let inv = lab.inventory();
    let inv = inv.to_str().unwrap();

    // 1. From empty hosts.
    let run1 = runs.path().join("run1");
    let (o, out, err) = provision(&["apply", inv, "--yes", "--run-dir", run1.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("Apply complete:"), "{out}");
    assert!(
        !err.contains('\r') && !err.contains('\x1b'),
        "plain progress off a terminal: {err:?}"
    );
    assert!(
        err.contains("step 1/") && err.contains("lab-controller-0"),
        "{err}"
    );
    for host in ev.state.hosts.keys() {
        check_host(&ev, &f, host).await;
    }
    // The event log: one JSON object per line, oslo.log's keys, one event per file.
    let log = std::fs::read_to_string(run1.join("events.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let files: usize = ev.state.hosts.values().map(|h| h.files.len()).sum();
    let writes = events
        .iter()
        .filter(|e| e["extra"]["action"] == "write file")
        .count();
    assert_eq!(writes, files);
    let creates = events
        .iter()
        .filter(|e| e["extra"]["action"] == "create container")
        .count();
    let containers_total: usize = ev.state.hosts.values().map(|h| h.containers.len()).sum();
    assert_eq!(creates, containers_total);
    let e = events
        .iter()
        .find(|e| e["extra"]["target"] == "keystone")
        .unwrap();
    assert_eq!(
        (
            e["levelname"].as_str(),
            e["hostname"].as_str(),
            e["extra"]["step"].as_u64(),
            e["extra"]["result"].as_str()
        ),
        (
            Some("INFO"),
            Some("lab-controller-0"),
            Some(2),
            Some("changed")
        )
    );
    assert!(
        e["asctime"].as_str().unwrap().ends_with("+0000")
            && e["context"]["request_id"]
                .as_str()
                .unwrap()
                .starts_with("req-")
    );
    assert!(
        !ev.cloud.secrets.appears_in(&log),
        "a secret reached the event log"
    );
    assert!(!ev.cloud.secrets.appears_in(&out) && !ev.cloud.secrets.appears_in(&err));

    // 2. Again: nothing changes, no container is touched.
    let before = all_ids(&f).await;
    let (o, out, err) = provision(&[
        "apply",
        inv,
        "--yes",
        "--run-dir",
        runs.path().join("run2").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains("No changes. The 6 hosts match the inventory"),
        "{out}"
    );
    assert_eq!(
        all_ids(&f).await,
        before,
        "a no-op apply restarted containers"
    );

    // 3. One role variable: only the computes' nova.conf and nova_compute change.
    lab.edit(
        "[roles.Compute]\ncount = 3\n",
        "[roles.Compute]\ncount = 3\nvars = { cpu_allocation_ratio = 3.0 }\n",
    );
    let (o, out, err) = provision(&["plan", inv, "--format", "json", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let computes = [
        "lab-novacompute-0",
        "lab-novacompute-1",
        "lab-novacompute-2",
    ];
    let changed: Vec<(String, Vec<String>)> = plan["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["hosts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let paths: Vec<&str> = changed.iter().map(|(p, _)| p.as_str()).collect();
    // (nova_compute.json changes only in its config hash: shown as the restart below.)
    assert_eq!(
        paths,
        vec!["/etc/overcloud/nova_compute/nova.conf"],
        "{out}"
    );
    for (_, hosts) in &changed {
        assert_eq!(hosts, &computes, "{out}");
    }
    let restarts: Vec<(String, String, Vec<String>)> = plan["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["container"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
                c["hosts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        restarts,
        vec![(
            "nova_compute".to_string(),
            "restart".to_string(),
            computes.iter().map(|s| s.to_string()).collect()
        )]
    );

    let (o, out, err) = provision(&[
        "apply",
        inv,
        "--yes",
        "--run-dir",
        runs.path().join("run3").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains("Apply complete: 6 files written, 0 directories fixed, 3 containers recreated on 3 of 6 hosts"),
        "{out}"
    );
    let after = all_ids(&f).await;
    let ev2 = load(&lab.inventory());
    for (host, ids) in &after {
        for (c, id) in ids {
            let was = &before[host][c];
            if computes.contains(&host.as_str()) && c == "nova_compute" {
                assert_ne!(id, was, "{host}/{c} was not recreated");
            } else {
                assert_eq!(
                    id, was,
                    "{host}/{c} was restarted, but nothing of it changed"
                );
            }
        }
    }
    for host in computes {
        check_host(&ev2, &f, host).await;
    }
    let (o, out, _) = provision(&["plan", inv, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "converged: {out}");
}
