//! `provision apply` against the lab (real sshd hosts, real podman), through the real
//! binary: from empty hosts to the rendered state (every file's content, mode and owner;
//! every container running with its labels and mounts); a second apply changes nothing;
//! a role variable changes only that role's files and containers; failures, tolerated
//! failure percentages, the lock, saved plans and drift, the event log.
//!
//! The tests share the lab and its apply lock: they run one at a time (`serial`).

mod common;
use common::lab::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use provision::evaluate::Evaluation;
use provision::host::sessions::Sessions;
use provision::transport::Session;

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
async fn all_ids(f: &Sessions) -> BTreeMap<String, BTreeMap<String, String>> {
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
async fn check_host(ev: &Evaluation, f: &Sessions, host: &str) {
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
    let _g = serial().await;
    let lab = LabCopy::new("");
    let ev = load(&lab.inventory());
    let f = fleet(&ev).await;
    wipe(&f).await;
    let runs = tempfile::tempdir().unwrap();
    let inv = lab.inventory();
    let inv = inv.to_str().unwrap();

    // 1. From empty hosts: apply does what the plan says.
    let (o, planned, err) = provision(&["plan", inv]);
    assert!(o.status.success(), "{planned}\n{err}");
    // The keys' store on the undercloud stays across tests (wipe keeps the records):
    // written by this apply only if it is new.
    let store = provision::keys::store_path(&ev.cloud.name);
    let had_store = sh(
        &f.undercloud,
        &format!("test -f {store} && echo yes || true"),
    )
    .await;
    let run1 = runs.path().join("run1");
    let (o, out, err) = provision(&["apply", inv, "--yes", "--run-dir", run1.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("Apply complete:"), "{out}");
    assert_plan_is_apply(&planned, &out);
    assert!(
        !err.contains('\r') && !err.contains('\x1b'),
        "plain progress off a terminal: {err:?}"
    );
    assert!(
        err.contains("step 1/") && err.contains("lab-controller-0"),
        "{err}"
    );
    let ev = with_keys(&ev, &f).await;
    for host in ev.state.hosts.keys() {
        check_host(&ev, &f, host).await;
    }
    // The event log: one JSON object per line, oslo.log's keys, one event per file.
    let log = std::fs::read_to_string(run1.join("events.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let files: usize = ev
        .state
        .hosts
        .values()
        .map(|h| h.files.len())
        .sum::<usize>()
        - usize::from(had_store.trim() == "yes");
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
        out.contains("No changes. The undercloud and the 6 hosts match the inventory"),
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
    // nova.conf, and nova_compute's definition, whose config hash alone changes (it is
    // written by apply: the plan lists every file apply writes).
    assert_eq!(
        paths,
        vec![
            "/etc/overcloud/nova_compute/nova.conf",
            "/var/lib/overcloud/containers/nova_compute.json"
        ],
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

    let (o, planned, _) = provision(&["plan", inv]);
    assert!(o.status.success(), "{planned}");
    let (o, out, err) = provision(&[
        "apply",
        inv,
        "--yes",
        "--run-dir",
        runs.path().join("run3").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert_plan_is_apply(&planned, &out);
    assert!(
        out.contains("Apply complete: 6 files written, 0 directories fixed, 3 containers recreated on 3 of 7 hosts"),
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

/// `provision apply` of `lab` with `--yes` and a run directory in `runs`.
fn apply(lab: &LabCopy, runs: &Path, name: &str, extra: &[&str]) -> (Output, String, String) {
    let run = runs.join(name);
    let (inv, run) = (lab.inv(), run.to_str().unwrap().to_string());
    let mut args = vec!["apply", inv.as_str(), "--yes", "--run-dir", run.as_str()];
    args.extend_from_slice(extra);
    provision(&args)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_host_is_reported_the_others_finish_and_a_rerun_converges() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    // Computes tolerate 50% here (1 of 3 failing is 33%).
    let lab = LabCopy::new("");
    lab.edit(
        "[roles.Compute]\ncount = 3\n",
        "[roles.Compute]\ncount = 3\nmax_fail_percentage = 50\n",
    );
    let ev = load(&lab.inventory());
    let f = fleet(&ev).await;
    wipe(&f).await;
    // A file where nova_compute's log directory must be: its host fails in preparation.
    let broken = node(&f, "lab-novacompute-1");
    sh(broken, "touch /var/log/overcloud/nova_compute").await;

    let (o, out, err) = apply(&lab, runs.path(), "tolerated", &[]);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(out.contains("1 host failed:\n  lab-novacompute-1 (Compute), in the overcloud stage: host preparation: creating directories"), "{out}");
    assert!(
        out.contains("File exists"),
        "the remote stderr is shown: {out}"
    );
    assert!(!out.contains("The run stopped"), "{out}");
    assert!(
        err.contains("lab-novacompute-1: FAILED creating directories"),
        "{err}"
    );
    // The others went through every step.
    for host in [
        "lab-controller-0",
        "lab-novacompute-0",
        "lab-novacompute-2",
        "lab-networker-0",
    ] {
        check_host(&ev, &f, host).await;
    }
    assert!(
        containers(broken).await.is_empty(),
        "the failed host was left out of the steps"
    );

    // Fixed by hand: re-running converges, touching only that host.
    sh(broken, "rm /var/log/overcloud/nova_compute").await;
    let before = all_ids(&f).await;
    let (o, out, err) = apply(&lab, runs.path(), "resume", &[]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains(" on 1 of 7 hosts"), "{out}");
    check_host(&ev, &f, "lab-novacompute-1").await;
    let after = all_ids(&f).await;
    for (host, ids) in &before {
        if host != "lab-novacompute-1" {
            assert_eq!(&after[host], ids, "{host} was touched");
        }
    }

    // With the role's own 20%, the same failure stops the run after that phase: every
    // other host got its files, no host got a container.
    let strict = LabCopy::new("");
    wipe(&f).await;
    sh(broken, "touch /var/log/overcloud/nova_compute").await;
    let (o, out, err) = apply(&strict, runs.path(), "stopped", &[]);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("The run stopped: 1 of 3 Compute hosts failed (33%), more than its max_fail_percentage of 20%; stopped after host preparation."),
        "{out}"
    );
    for (name, s) in &f.nodes {
        assert!(
            containers(s.as_ref().unwrap()).await.is_empty(),
            "{name} got containers after the stop"
        );
    }
    let files = sh(node(&f, "lab-controller-0"), "ls /etc/overcloud/keystone").await;
    assert!(files.contains("keystone.conf"), "{files}");
    sh(broken, "rm /var/log/overcloud/nova_compute").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lock_keeps_a_second_apply_out_and_a_dead_holder_releases_it() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    let lab = LabCopy::new("");
    let ev = load(&lab.inventory());
    let f = fleet(&ev).await;
    let held = provision::host::lock::acquire(&f.undercloud, "lab", "tester@ci pid 1 run test")
        .await
        .unwrap();
    let (o, out, err) = apply(&lab, runs.path(), "locked", &[]);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains("another apply of cloud `lab` is running: it holds the lock /var/lib/provision/lab.lock on lab-undercloud (tester@ci pid 1 run test)"),
        "{err}"
    );
    held.release().await;

    // A holder whose connection dies (a crashed apply) releases the lock.
    let f2 = fleet(&ev).await;
    let _orphan = provision::host::lock::acquire(&f2.undercloud, "lab", "crashing apply")
        .await
        .unwrap();
    f2.undercloud.close().await;
    let mut taken = None;
    for _ in 0..50 {
        if let Ok(l) = provision::host::lock::acquire(&f.undercloud, "lab", "next").await {
            taken = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    taken
        .expect("the lock of a dead connection was not released within 5 s")
        .release()
        .await;

    // And apply records its result for `provision status`.
    let (o, out, err) = apply(&lab, runs.path(), "recorded", &[]);
    assert!(o.status.success(), "{out}\n{err}");
    let (o, out, err) = provision(&["status", &lab.inv(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["in_sync"], true);
    let ctl = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "lab-controller-0")
        .unwrap();
    assert_eq!(ctl["reachable"], true);
    assert!(ctl["last_apply"]["time"].as_str().is_some(), "{ctl}");
    let keystone = ctl["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "keystone")
        .unwrap();
    assert_eq!(
        (
            keystone["state"].as_str(),
            keystone["health"].as_str(),
            keystone["config_current"].as_bool()
        ),
        (Some("running"), Some("healthy"), Some(true))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_is_applied_exactly_or_refused_on_drift() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    let lab = LabCopy::new("");
    let ev = load(&lab.inventory());
    let f = fleet(&ev).await;
    let (o, out, err) = apply(&lab, runs.path(), "base", &[]);
    assert!(o.status.success(), "{out}\n{err}");
    lab.edit(
        "[roles.Compute]\ncount = 3\n",
        "[roles.Compute]\ncount = 3\nvars = { ram_allocation_ratio = 1.25 }\n",
    );
    let plan = runs.path().join("plan.json");
    let (o, out, err) = provision(&["plan", &lab.inv(), "--out", plan.to_str().unwrap()]);
    assert!(o.status.success(), "{out}\n{err}");
    let saved = std::fs::read_to_string(&plan).unwrap();
    assert!(
        !ev.cloud.secrets.appears_in(&saved),
        "a secret in the saved plan"
    );
    assert!(
        !saved.contains("ram_allocation_ratio"),
        "no contents in the saved plan"
    );
    let nova = "/etc/overcloud/nova_compute/nova.conf";
    let old = sh(node(&f, "lab-novacompute-0"), &format!("sha256sum {nova}")).await;

    // Drift on one host after the plan: refused, nothing applied anywhere.
    sh(
        node(&f, "lab-controller-0"),
        "echo '# hand edit' >> /etc/overcloud/keystone/keystone.conf",
    )
    .await;
    let (o, out, err) = provision(&["apply", plan.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains("host lab-controller-0 changed since the plan was saved"),
        "{err}"
    );
    assert_eq!(
        sh(node(&f, "lab-novacompute-0"), &format!("sha256sum {nova}")).await,
        old
    );

    // The inventory edited after the plan: refused too.
    let (o, _, _) = provision(&["plan", &lab.inv(), "--out", plan.to_str().unwrap()]);
    assert!(o.status.success());
    lab.edit("ram_allocation_ratio = 1.25", "ram_allocation_ratio = 1.5");
    let (o, out, err) = provision(&["apply", plan.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("the desired state of hosts lab-novacompute-0, lab-novacompute-1, lab-novacompute-2 changed since the plan was saved"), "{err}");

    // A fresh plan applies, without a question, and converges.
    let (o, _, _) = provision(&["plan", &lab.inv(), "--out", plan.to_str().unwrap()]);
    assert!(o.status.success());
    let (o, out, err) = provision(&[
        "apply",
        plan.to_str().unwrap(),
        "--run-dir",
        runs.path().join("saved").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("Apply complete:"), "{out}");
    let (o, out, _) = provision(&["plan", &lab.inv(), "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_without_a_terminal_needs_yes() {
    let _g = serial().await;
    let lab = LabCopy::new("");
    let ev = load(&lab.inventory());
    let f = fleet(&ev).await;
    let s = node(&f, "lab-novacompute-1");
    sh(s, "rm -rf /etc/overcloud/*").await;
    let (o, out, err) = provision(&["apply", &lab.inv(), "--limit", "lab-novacompute-1"]);
    assert!(
        out.contains("+ /etc/overcloud/nova_compute/nova.conf"),
        "the plan is shown first: {out}"
    );
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("not applying without confirmation: pass --yes"),
        "{err}"
    );
    assert_eq!(
        sh(s, "find /etc/overcloud -type f | wc -l").await.trim(),
        "0",
        "apply wrote without confirmation"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unhealthy_container_fails_its_step_with_its_logs() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    let lab = LabCopy::new("\n[lab.healthchecks]\nkeystone = \"stand-in-healthcheck && false\"\n");
    let ev = load(&lab.inventory());
    let f = fleet(&ev).await;
    wipe(&f).await;
    let (o, out, err) = apply(&lab, runs.path(), "unhealthy", &["--health-timeout", "3"]);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("lab-controller-0 (Controller), in the overcloud stage: step 2: healthcheck of keystone"),
        "{out}"
    );
    assert!(out.contains("unhealthy after"), "{out}");
    assert!(
        out.contains("stand-in: read /etc/keystone/keystone.conf"),
        "its logs are in the message: {out}"
    );
    // Controllers tolerate no failure: the run stops after step 2.
    assert!(out.contains("stopped after step 2"), "{out}");
    let ctl = containers(node(&f, "lab-controller-0")).await;
    assert!(
        ctl.contains_key("keystone") && !ctl.contains_key("nova_api"),
        "{ctl:?}"
    );
    // The healthy lab again: keystone (its healthcheck changed) is recreated, the rest created.
    let good = LabCopy::new("");
    let (o, out, err) = apply(&good, runs.path(), "healthy", &[]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    check_host(&load(&good.inventory()), &f, "lab-controller-0").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_undercloud_service_stops_the_run_before_any_node() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    let lab = LabCopy::new("\n[lab.healthchecks]\ndnsmasq = \"stand-in-healthcheck && false\"\n");
    let ev = load(&lab.inventory());
    let f = fleet(&ev).await;
    wipe(&f).await;
    let (o, out, err) = apply(&lab, runs.path(), "broken", &["--health-timeout", "3"]);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains(
            "lab-undercloud (undercloud), in the undercloud stage: step 1: healthcheck of dnsmasq"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "The undercloud stage failed: the bare-metal and overcloud stages did not run."
        ),
        "{out}"
    );
    // No node was touched: no file, no container, no overcloud event.
    for (name, s) in &f.nodes {
        let s = s.as_ref().unwrap();
        assert_eq!(
            sh(s, "find /etc/overcloud -type f | wc -l").await.trim(),
            "0",
            "{name} was written to"
        );
        assert!(containers(s).await.is_empty(), "{name} has containers");
    }
    let stages: std::collections::BTreeSet<String> = events(&runs.path().join("broken"))
        .iter()
        .filter_map(|e| e["extra"]["stage"].as_str().map(str::to_string))
        .collect();
    assert!(
        !stages.contains("overcloud") && stages.contains("undercloud"),
        "{stages:?}"
    );
    // The healthy lab: the undercloud's services, then every node.
    let good = LabCopy::new("");
    let (o, out, err) = apply(&good, runs.path(), "healthy", &[]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let ev = load(&good.inventory());
    check_host(&ev, &f, "lab-undercloud").await;
    check_host(&ev, &f, "lab-networker-0").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_taken_out_of_a_role_is_removed_with_its_files() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    let full = LabCopy::new("");
    let f = fleet(&load(&full.inventory())).await;
    let (o, out, err) = apply(&full, runs.path(), "full", &[]);
    assert!(o.status.success(), "{out}\n{err}");
    let lab = LabCopy::new("");
    lab.edit_file("roles/Compute.toml", ", \"neutron_ovs_agent\"]", "]");
    let (o, out, _) = provision(&["plan", &lab.inv()]);
    assert!(o.status.success(), "{out}");
    let planned = out.clone();
    assert!(out.contains("- remove  neutron_ovs_agent"), "{out}");
    assert!(
        out.contains("stopped and removed with /etc/overcloud/neutron_ovs_agent/, /var/lib/overcloud/containers/neutron_ovs_agent.json and its unit; /var/log/overcloud/neutron_ovs_agent/ stays"),
        "{out}"
    );
    let before = all_ids(&f).await;
    let (o, out, err) = apply(&lab, runs.path(), "removed", &[]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("3 containers removed"), "{out}");
    assert_plan_is_apply(&planned, &out);
    let after = all_ids(&f).await;
    for (host, ids) in &before {
        for (c, id) in ids {
            if host.starts_with("lab-novacompute") && c == "neutron_ovs_agent" {
                assert!(!after[host].contains_key(c), "{host}/{c} still there");
            } else {
                assert_eq!(after[host].get(c), Some(id), "{host}/{c} was touched");
            }
        }
    }
    let s = node(&f, "lab-novacompute-0");
    let left = sh(s, "ls -d /etc/overcloud/neutron_ovs_agent /var/lib/overcloud/containers/neutron_ovs_agent.json /var/log/overcloud/neutron_ovs_agent 2>/dev/null; true").await;
    assert_eq!(
        left.trim(),
        "/var/log/overcloud/neutron_ovs_agent",
        "configuration removed, logs kept"
    );
    let (o, out, err) = apply(&full, runs.path(), "restored", &[]);
    assert!(o.status.success(), "{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebooted_host_gets_its_stopped_containers_started_not_recreated() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    let lab = LabCopy::new("");
    let ev = load(&lab.inventory());
    let (o, out, err) = apply(&lab, runs.path(), "before", &[]);
    assert!(o.status.success(), "{out}\n{err}");
    let host = "lab-novacompute-2";
    let before = containers(node(&fleet(&ev).await, host)).await;
    // The power button, through the BMC: the host's sshd and containers die with it.
    power(&ev, "lab-node-14", "ForceOff");
    wait_ssh(host, false);
    power(&ev, "lab-node-14", "On");
    wait_ssh(host, true);
    let f = fleet(&ev).await;
    let after_boot = containers(node(&f, host)).await;
    assert!(
        after_boot.values().all(|(state, _, _)| state != "running"),
        "{after_boot:?}"
    );
    // The plan shows them to restart; apply starts them: same containers, running.
    let (o, out, _) = provision(&["plan", &lab.inv(), "--limit", host]);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("~ restart nova_compute"), "{out}");
    let (o, out, err) = apply(&lab, runs.path(), "after", &[]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "{} containers started on 1 of 7 hosts",
            before.len()
        )),
        "{out}"
    );
    let now = containers(node(&f, host)).await;
    for (name, (_, hash, id)) in &before {
        assert_eq!(
            &now[name],
            &("running".to_string(), hash.clone(), id.clone()),
            "{name}"
        );
    }
}

/// (host, action) of a run's bare-metal events.
fn bare_metal(run: &Path) -> Vec<(String, String)> {
    events(run)
        .iter()
        .filter(|e| e["extra"]["stage"] == "baremetal")
        .map(|e| {
            (
                e["hostname"].as_str().unwrap().to_string(),
                e["extra"]["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bare_metal_powers_nodes_on_through_redfish_and_a_bad_node_fails_alone() {
    let _g = serial().await;
    // Every node starts powered off: nothing answers but the undercloud and the BMCs.
    power_everything_off().await;
    let runs = tempfile::tempdir().unwrap();
    // The networker's BMC gets a wrong password; lab-novacompute-2 is given an address
    // where nothing will ever answer (its BMC powers on the machine at .14), so it never
    // comes up. Every role tolerates failures here: the other nodes must complete.
    let lab = LabCopy::new("");
    lab.edit(
        "system_id = \"lab-node-16\", username = \"admin\", password = { secret = \"lab_bmc_password\" }",
        "system_id = \"lab-node-16\", username = \"admin\", password = { secret = \"lab_bmc_wrong\" }",
    );
    lab.edit(
        "ctlplane_ip = \"127.0.10.14\"",
        "ctlplane_ip = \"127.0.10.99\"",
    );
    lab.edit_file(
        "inventories/lab.secrets.toml",
        "lab_bmc_password = ",
        "lab_bmc_wrong = \"not-the-password\"\nlab_bmc_password = ",
    );
    for role in ["Controller", "Compute", "CephStorage", "Networker"] {
        lab.edit(
            &format!("[roles.{role}]\n"),
            &format!("[roles.{role}]\nmax_fail_percentage = 100\n"),
        );
    }
    let (o, out, err) = provision(&["plan", &lab.inv()]);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("+ provision lab-controller-0 (Controller): redfish BMC 127.0.10.1 system lab-node-11: one-time PXE boot"), "{out}");
    assert!(out.contains("Plan: 6 nodes to provision,"), "{out}");

    let run1 = runs.path().join("first");
    let (o, out, err) = apply(&lab, runs.path(), "first", &["--boot-timeout", "25"]);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(out.contains("2 hosts failed:"), "{out}");
    assert!(
        out.contains("lab-networker-0 (Networker), in the bare-metal stage: bare metal: reading the power state"),
        "{out}"
    );
    assert!(
        out.contains("lab-networker-0: the BMC redfish http://127.0.10.1:8000 system lab-node-16 refused the credentials (HTTP 401); check the BMC `username` and the value of the password secret `lab_bmc_wrong`"),
        "{out}"
    );
    assert!(
        out.contains(
            "lab-novacompute-2 (Compute), in the bare-metal stage: bare metal: waiting for SSH"
        ),
        "{out}"
    );
    assert!(
        out.contains("did not answer SSH within 25 s after power-on"),
        "{out}"
    );
    assert!(!ev_secret_in(&lab, &out), "a secret in the output");
    // The four good nodes: one-time PXE boot, power on, up, introspected, deployed.
    let bm = bare_metal(&run1);
    for node in [
        "lab-controller-0",
        "lab-novacompute-0",
        "lab-novacompute-1",
        "lab-cephstorage-0",
    ] {
        for action in [
            "power state",
            "pxe boot once",
            "power on",
            "ssh up",
            "introspect",
        ] {
            assert!(
                bm.contains(&(node.to_string(), action.to_string())),
                "{node} {action}: {bm:?}"
            );
        }
    }
    let ev = load(&lab.inventory());
    let f = fleet(&ev).await;
    for node in [
        "lab-controller-0",
        "lab-novacompute-0",
        "lab-novacompute-1",
        "lab-cephstorage-0",
    ] {
        check_host(&ev, &f, node).await;
    }

    // Fixed inventory: only the two failed nodes go through the bare-metal stage.
    let good = LabCopy::new("");
    let run2 = runs.path().join("second");
    let (o, planned, _) = provision(&["plan", &good.inv()]);
    assert!(o.status.success(), "{planned}");
    let (o, out, err) = apply(&good, runs.path(), "second", &["--boot-timeout", "60"]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    // Two nodes from power-off to deployed: exactly what the plan said.
    assert_plan_is_apply(&planned, &out);
    let mut hosts: Vec<String> = bare_metal(&run2).into_iter().map(|(h, _)| h).collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(
        hosts,
        vec![
            "lab-networker-0".to_string(),
            "lab-novacompute-2".to_string()
        ]
    );
    // And then no BMC is called at all.
    let run3 = runs.path().join("third");
    let (o, out, err) = apply(&good, runs.path(), "third", &[]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("No changes."), "{out}");
    assert!(bare_metal(&run3).is_empty());
    let (o, out, _) = provision(&["nodes", &good.inv(), "power", "status"]);
    assert!(o.status.success(), "{out}");
    assert_eq!(out.matches(" power on ").count(), 6, "{out}");
}

fn ev_secret_in(lab: &LabCopy, text: &str) -> bool {
    load(&lab.inventory()).cloud.secrets.appears_in(text) || text.contains("not-the-password")
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_in_powers_the_node_off_and_scale_out_provisions_only_it() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    let full = LabCopy::new("");
    let ev_full = load(&full.inventory());
    let (o, out, err) = apply(&full, runs.path(), "full", &[]);
    assert!(o.status.success(), "{out}\n{err}");
    // The same cloud without lab-novacompute-2 (.14), the last compute.
    let small = LabCopy::new("");
    small.edit(
        "[roles.Compute]\ncount = 3\n",
        "[roles.Compute]\ncount = 2\n",
    );
    let text = std::fs::read_to_string(small.inventory()).unwrap();
    let start = text
        .find("[[nodes]]\nrole = \"Compute\"\nctlplane_ip = \"127.0.10.14\"")
        .unwrap();
    let end = text[start..].find("\n\n").map(|e| start + e + 2).unwrap();
    std::fs::write(
        small.inventory(),
        format!("{}{}", &text[..start], &text[end..]),
    )
    .unwrap();
    // the undercloud and 5 nodes
    assert_eq!(load(&small.inventory()).state.hosts.len(), 6);

    // Scale in: shown by plan, left alone without the flag, powered off with it.
    let (o, out, _) = provision(&["plan", &small.inv()]);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(
            "- remove lab-novacompute-2 (Compute): provisioned, no longer in the inventory"
        ),
        "{out}"
    );
    // ... and its DHCP entry goes from the undercloud's dnsmasq.
    assert!(
        out.contains("-dhcp-host=52:54:00:0a:00:0e,127.0.10.14,lab-novacompute-2,12h"),
        "{out}"
    );
    let (o, out, err) = apply(&small, runs.path(), "kept", &[]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains(
            "1 provisioned node is no longer in the inventory (lab-novacompute-2): left as it is"
        ),
        "{out}"
    );
    let (o, planned, _) = provision(&["plan", &small.inv(), "--power-off-removed"]);
    assert!(o.status.success(), "{planned}");
    assert!(planned.contains("1 removed node to power off"), "{planned}");
    let (o, out, err) = apply(&small, runs.path(), "in", &["--power-off-removed"]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert_plan_is_apply(&planned, &out);
    assert!(
        out.contains("Powered off and forgot 1 node removed from the inventory."),
        "{out}"
    );
    wait_ssh("lab-novacompute-2", false);
    let f = fleet(&load(&small.inventory())).await;
    let before = all_ids(&f).await;

    // Scale out: the plan is that node's provisioning and its own files only; apply
    // powers it on through Redfish and touches no other host.
    let (o, out, _) = provision(&["plan", &full.inv(), "--format", "json"]);
    assert!(o.status.success(), "{out}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let nodes: Vec<&str> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, vec!["lab-novacompute-2"]);
    assert!(!plan["files"].as_array().unwrap().is_empty());
    // Its own files; on the undercloud, its DHCP entry and DNS names (and the dnsmasq
    // restart that loads them, with its definition's new config hash); on the
    // controller, only the inputs of nova's compute sync (the tasks that map the new
    // compute to its cell: they run again, no container changes); nothing on any other
    // node.
    let mut undercloud_files = Vec::new();
    let mut controller_files = Vec::new();
    for f in plan["files"].as_array().unwrap() {
        if f["hosts"] == serde_json::json!(["lab-undercloud"]) {
            undercloud_files.push(f["path"].as_str().unwrap().to_string());
            continue;
        }
        if f["hosts"] == serde_json::json!(["lab-controller-0"]) {
            controller_files.push(f["path"].as_str().unwrap().to_string());
            continue;
        }
        assert_eq!(f["hosts"], serde_json::json!(["lab-novacompute-2"]), "{f}");
    }
    controller_files.sort();
    assert_eq!(
        controller_files,
        [
            "/etc/overcloud/nova_conductor/tasks/discover_hosts/discover-hosts.sh",
            "/etc/overcloud/nova_conductor/tasks/forget_computes.env"
        ]
    );
    let mut tasks: Vec<&str> = plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task"].as_str().unwrap())
        .collect();
    tasks.sort();
    assert_eq!(
        tasks,
        [
            "nova_conductor/discover_hosts",
            "nova_conductor/forget_computes"
        ],
        "{out}"
    );
    undercloud_files.sort();
    assert_eq!(
        undercloud_files,
        [
            "/etc/undercloud/dnsmasq/dnsmasq.conf",
            "/etc/undercloud/dnsmasq/hosts",
            "/var/lib/undercloud/containers/dnsmasq.json"
        ]
    );
    let dhcp = plan["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/undercloud/dnsmasq/dnsmasq.conf")
        .unwrap();
    let added: Vec<&str> = dhcp["diff"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .collect();
    assert_eq!(
        added,
        ["+dhcp-host=52:54:00:0a:00:0e,127.0.10.14,lab-novacompute-2,12h"]
    );
    let restarts: Vec<(&str, &serde_json::Value)> = plan["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "restart")
        .map(|c| (c["container"].as_str().unwrap(), &c["hosts"]))
        .collect();
    assert_eq!(
        restarts,
        [("dnsmasq", &serde_json::json!(["lab-undercloud"]))]
    );
    let (o, out, err) = apply(&full, runs.path(), "out", &["--boot-timeout", "60"]);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let bm = bare_metal(&runs.path().join("out"));
    for action in ["pxe boot once", "power on", "ssh up", "introspect"] {
        assert!(
            bm.contains(&("lab-novacompute-2".to_string(), action.to_string())),
            "{action}: {bm:?}"
        );
    }
    assert!(bm.iter().all(|(h, _)| h == "lab-novacompute-2"), "{bm:?}");
    assert_eq!(
        all_ids(&f).await,
        before,
        "the other hosts' containers were touched"
    );
    check_host(&ev_full, &fleet(&ev_full).await, "lab-novacompute-2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undercloud_that_is_not_ready_stops_apply_before_anything_changes() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    // An IPMI node needs ipmitool on the undercloud, which the lab's does not have.
    let lab = LabCopy::new("");
    lab.edit(
        "bmc = { driver = \"redfish\", scheme = \"http\", address = \"127.0.10.1\", port = 8000, system_id = \"lab-node-16\",",
        "bmc = { driver = \"ipmi\", address = \"127.0.10.1\", port = 6230, system_id = \"lab-node-16\",",
    );
    let ev = load(&lab.inventory());
    let f = fleet(&ev).await;
    let s = node(&f, "lab-networker-0");
    sh(s, "rm -f /etc/overcloud/rsyslog/rsyslog.conf").await;
    let (o, out, err) = apply(&lab, runs.path(), "not-ready", &[]);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains("error: the undercloud lab-undercloud is not ready; nothing was changed:"),
        "{err}"
    );
    assert!(
        err.contains("lab-undercloud lacks the command ipmitool: install it"),
        "{err}"
    );
    assert_eq!(
        sh(s, "ls /etc/overcloud/rsyslog/").await.trim(),
        "",
        "something was written"
    );
}

/// Issue 19's quick check, against real hosts: apply's survey records every managed
/// file's stat and hash in the files stamp; a plan trusts a recorded hash only while the
/// file's size, inode, mtime and ctime are unchanged. A hash planted in the stamp shows
/// through (the proof that it is trusted), `--full-check` sees past it, and an edit made
/// behind provision's back is seen with its mtime put back or not.
#[tokio::test(flavor = "multi_thread")]
async fn plan_trusts_the_files_stamp_only_while_a_files_stat_is_unchanged() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    let lab = LabCopy::new("");
    let ev = load(&lab.inventory());
    let f = fleet(&ev).await;
    let (o, out, err) = apply(&lab, runs.path(), "base", &[]);
    assert!(o.status.success(), "{out}\n{err}");
    // Files written within the last second are not recorded (racy): let them age, then
    // a no-op apply's survey records them all.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (o, out, err) = apply(&lab, runs.path(), "noop", &[]);
    assert!(o.status.success(), "{out}\n{err}");
    let host = "lab-controller-0";
    let s = node(&f, host);
    let stamp = sh(s, "cat /var/lib/overcloud/.provision-files").await;
    let recorded: BTreeMap<&str, (&str, &str)> = stamp
        .lines()
        .filter_map(|l| {
            let v: Vec<&str> = l.split('\t').collect();
            (v.len() == 3).then(|| (v[0], (v[1], v[2])))
        })
        .collect();
    for (path, file) in &ev.state.hosts[host].files {
        let (stat, sha) = recorded
            .get(path.as_str())
            .unwrap_or_else(|| panic!("{path} is not in the files stamp:\n{stamp}"));
        assert_eq!(*sha, file.sha256(), "{path}: recorded hash");
        let real = sh(s, &format!("stat -c '%s:%i:%.9Y:%.9Z' {path}")).await;
        assert_eq!(*stat, real.trim(), "{path}: recorded stat");
    }
    let conf = "/etc/overcloud/keystone/keystone.conf";
    let (o, out, _) = provision(&["plan", &lab.inv(), "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{out}");

    // A wrong hash planted in the stamp for an unchanged file is believed by the quick
    // check (so the stamp is what is read) and not by --full-check.
    let good = file_sha(&ev, host, conf);
    sh(
        s,
        &format!(
            "cp /var/lib/overcloud/.provision-files /tmp/stamp.saved && \
             sed -i 's/{good}/{}/' /var/lib/overcloud/.provision-files",
            "0".repeat(64)
        ),
    )
    .await;
    let (o, out, _) = provision(&["plan", &lab.inv(), "--detailed-exitcode"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "the planted hash was not read: {out}"
    );
    // The plan shows the file and why, though no line differs.
    assert!(
        out.contains(&format!("~ {conf}")) && out.contains("in the hash the files stamp recorded"),
        "{out}"
    );
    let (o, out, _) = provision(&["plan", &lab.inv(), "--detailed-exitcode", "--full-check"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "--full-check believed the stamp: {out}"
    );
    sh(s, "cp /tmp/stamp.saved /var/lib/overcloud/.provision-files").await;
    let (o, out, _) = provision(&["plan", &lab.inv(), "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{out}");

    // An edit in place that keeps the size, the inode and (put back) the mtime: the
    // ctime moved, so the file is hashed and the drift is seen, with its diff.
    // (The first byte is replaced by another one: the rendered file starts with a `#`
    // comment, so writing `#` there would change nothing.)
    let before = sh(s, &format!("stat -c '%s %i %Y' {conf}")).await;
    let sha_before = sh(s, &format!("sha256sum {conf}")).await;
    sh(
        s,
        &format!(
            "touch -r {conf} /tmp/conf.ref && \
             if [ \"$(head -c 1 {conf})\" = '#' ]; then c=';'; else c='#'; fi && \
             printf '%s' \"$c\" | dd of={conf} bs=1 seek=0 conv=notrunc status=none && \
             touch -r /tmp/conf.ref {conf}"
        ),
    )
    .await;
    assert_eq!(sh(s, &format!("stat -c '%s %i %Y' {conf}")).await, before);
    assert_ne!(
        sh(s, &format!("sha256sum {conf}")).await,
        sha_before,
        "the edit changed nothing"
    );
    let (o, out, _) = provision(&["plan", &lab.inv(), "--detailed-exitcode"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an in-place edit was missed: {out}"
    );
    assert!(out.contains(&format!("~ {conf}")), "{out}");
    // An append (mtime not put back) is seen too.
    sh(s, &format!("echo '# hand edit' >> {conf}")).await;
    let (o, out, _) = provision(&["plan", &lab.inv(), "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("-# hand edit"), "{out}");
    // apply puts it back; the plan is empty again.
    let (o, out, err) = apply(&lab, runs.path(), "repair", &[]);
    assert!(o.status.success(), "{out}\n{err}");
    let (o, out, _) = provision(&["plan", &lab.inv(), "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{out}");
}

fn file_sha(ev: &Evaluation, host: &str, path: &str) -> String {
    ev.state.hosts[host].files[path].sha256().to_string()
}
