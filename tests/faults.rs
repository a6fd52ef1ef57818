//! Faults an operator meets at 3 a.m., on the lab (real sshd hosts, real podman),
//! through the real binary: a container killed or held unhealthy, Ctrl-C in the
//! middle of a deploy step (once: a graceful stop; twice: an abort), a changed host
//! key. Each test fails if its protection is removed (docs/reliability.md).
//!
//! The tests share the lab and its apply lock: they run one at a time (`serial`).

mod common;
use common::lab::*;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use provision::transport::Session;

/// `provision apply LAB --yes --run-dir RUNS/NAME`, started, not waited for.
fn spawn_apply(lab: &LabCopy, runs: &Path, name: &str) -> Child {
    let run = runs.join(name);
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["apply", &lab.inv(), "--yes", "--run-dir"])
        .arg(&run)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn apply(lab: &LabCopy, runs: &Path, name: &str) -> (Output, String, String) {
    let run = runs.join(name);
    provision(&[
        "apply",
        &lab.inv(),
        "--yes",
        "--run-dir",
        run.to_str().unwrap(),
    ])
}

/// Sends `signal` to the child we started, by its PID.
fn signal(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {}", child.id());
}

/// Waits (bounded) for the child to end: its exit code, stdout and stderr.
fn finish(mut child: Child, within: Duration) -> (Option<i32>, String, String) {
    let end = Instant::now() + within;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("apply did not end within {within:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), out, err)
}

/// `name`'s podman id on the host, `""` if it has none.
async fn container_id(s: &Session, name: &str) -> String {
    sh(
        s,
        &format!("podman inspect -f '{{{{.Id}}}}' {name} 2>/dev/null || true"),
    )
    .await
    .trim()
    .to_string()
}

/// Waits (bounded: 120 s, 0.2 s apart) until `name`'s id on the host is not `old`.
async fn wait_recreated(s: &Session, name: &str, old: &str) {
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let id = container_id(s, name).await;
        if !id.is_empty() && id != old {
            return;
        }
        assert!(
            Instant::now() < end,
            "{name} was not recreated within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Temporary files of provision's uploads left on a host.
async fn temp_files(s: &Session) -> String {
    sh(
        s,
        "ls -d /tmp/.provision-batch.* 2>/dev/null; find /etc/overcloud /var/lib/provision -name '.provision.*' 2>/dev/null; true",
    )
    .await
    .trim()
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_or_unhealthy_container_shows_in_plan_and_status_and_apply_recovers_it() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    let lab = LabCopy::new("");
    let ev = load(&lab.inventory());
    let (o, out, err) = apply(&lab, runs.path(), "converge");
    assert!(o.status.success(), "{out}\n{err}");
    // A second apply leaves the running stamp trusted: the unhealthy container must be
    // seen through it.
    let (o, out, err) = apply(&lab, runs.path(), "stamped");
    assert!(
        o.status.success() && out.contains("No changes"),
        "{out}\n{err}"
    );
    let f = fleet(&ev).await;
    let ctl = node(&f, "lab-controller-0");
    let (placement, haproxy) = (
        container_id(ctl, "placement_api").await,
        container_id(ctl, "haproxy").await,
    );
    // placement_api killed: exited. haproxy running, but its healthcheck failing (the
    // stand-in's ready file gone) three times, its retries: unhealthy.
    sh(ctl, "podman kill placement_api >/dev/null").await;
    // (haproxy: its start period is 10 s, during which failures do not count.)
    let health = sh(
        ctl,
        "for i in $(seq 1 60); do \
           up=$(( $(date +%s) - $(date -d \"$(podman inspect -f '{{.State.StartedAt}}' haproxy | cut -d' ' -f1,2)\" +%s) )); \
           [ $up -gt 11 ] && break; sleep 0.5; done; \
         podman exec haproxy rm -f /tmp/stand-in/ready; \
         for i in 1 2 3; do podman healthcheck run haproxy >/dev/null 2>&1; done; \
         podman ps -a --filter name=haproxy --format '{{.Status}}'",
    )
    .await;
    assert!(health.contains("(unhealthy)"), "{health}");

    let (o, out, err) = provision(&["plan", &lab.inv(), "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(out.contains("~ restart haproxy"), "{out}");
    assert!(
        out.contains("running UNHEALTHY, its configuration current"),
        "{out}"
    );
    assert!(out.contains("~ restart placement_api"), "{out}");
    assert!(out.contains("stopped, its configuration current"), "{out}");

    let (o, out, err) = provision(&["status", &lab.inv()]);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(out.contains("NOT in sync"), "{out}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("haproxy").contains("unhealthy"), "{out}");
    assert!(
        line("haproxy").contains("UNHEALTHY (apply recreates it"),
        "{out}"
    );
    assert!(
        line("placement_api").contains("EXITED (apply starts it)"),
        "{out}"
    );
    assert!(line("keystone").contains("in sync"), "{out}");

    let (o, out, err) = apply(&lab, runs.path(), "recover");
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("1 container recreated, 1 started on 1 of 7 hosts"),
        "{out}"
    );
    // placement_api started as it was; haproxy is a new container, healthy.
    assert_eq!(container_id(ctl, "placement_api").await, placement);
    assert_ne!(container_id(ctl, "haproxy").await, haproxy);
    let (o, out, _) = provision(&["status", &lab.inv()]);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("In sync"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_mid_step_stops_gracefully_is_recorded_and_a_second_signal_aborts() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    let base = LabCopy::new("");
    let ev = load(&base.inventory());
    let (o, out, err) = apply(&base, runs.path(), "converge");
    assert!(o.status.success(), "{out}\n{err}");
    let f = fleet(&ev).await;
    let ctl = node(&f, "lab-controller-0");

    // keystone (step 2) and glance_api (step 3) change; keystone's healthcheck takes
    // 3 s to pass, so its step is in flight when the signal comes.
    let lab = LabCopy::new(
        "\n[lab.healthchecks]\nkeystone = \"sleep 3; stand-in-healthcheck\"\nglance_api = \"stand-in-healthcheck && true\"\n",
    );
    let (keystone, glance) = (
        container_id(ctl, "keystone").await,
        container_id(ctl, "glance_api").await,
    );
    let child = spawn_apply(&lab, runs.path(), "interrupted");
    wait_recreated(ctl, "keystone", &keystone).await;
    signal(&child, "INT");
    let (code, out, err) = finish(child, Duration::from_secs(120));
    assert_eq!(code, Some(130), "{out}\n{err}");
    assert!(
        err.contains("SIGINT: stopping: what is in flight finishes"),
        "{err}"
    );
    assert!(out.contains("Apply INTERRUPTED (SIGINT)"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  lab-controller-0 (Controller): done: ")
                && l.ends_with("1 container recreated; step 3 and later not started")),
        "{out}"
    );
    // The step in flight finished (keystone recreated and healthy); step 3 did not
    // start (glance_api is the old container).
    assert_eq!(container_id(ctl, "glance_api").await, glance);
    let ks = sh(
        ctl,
        "podman ps --filter name=keystone --format '{{.Status}}'",
    )
    .await;
    assert!(ks.contains("(healthy)"), "{ks}");
    assert_eq!(temp_files(ctl).await, "");
    // Recorded as interrupted; status says so, and what is left.
    let (o, out, _) = provision(&["status", &lab.inv()]);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("INTERRUPTED by SIGINT"), "{out}");
    assert!(
        out.contains("interrupted (step 3 and later not started)"),
        "{out}"
    );
    assert!(out.contains("CONFIG CHANGED (apply recreates it)"), "{out}");

    // The lock is free: the next apply runs at once and does what is left.
    let (o, out, err) = apply(&lab, runs.path(), "resumed");
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("1 container recreated on 1 of 7 hosts"),
        "{out}"
    );
    let (o, out, _) = provision(&["plan", &lab.inv(), "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{out}");

    // Twice: the run aborts at once, mid-step (glance_api recreated, its healthcheck
    // not yet waited for). The next plan sees what is left, health included.
    let slow = LabCopy::new(
        "\n[lab.healthchecks]\nkeystone = \"sleep 3; stand-in-healthcheck\"\nglance_api = \"sleep 3; stand-in-healthcheck\"\n",
    );
    let glance = container_id(ctl, "glance_api").await;
    let child = spawn_apply(&slow, runs.path(), "aborted");
    wait_recreated(ctl, "glance_api", &glance).await;
    signal(&child, "INT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&child, "TERM");
    let (code, out, err) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(130), "{out}\n{err}");
    assert!(err.contains("SIGTERM again: aborting now"), "{err}");
    assert!(!out.contains("Apply complete"), "{out}");
    let (o, out, err) = provision(&["plan", &slow.inv(), "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(out.contains("glance_api"), "{out}");
    // The lock went with the connection; the next apply converges, health checked.
    let (o, out, err) = apply(&slow, runs.path(), "after-abort");
    assert!(o.status.success(), "{out}\n{err}");
    let (o, out, _) = provision(&["status", &slow.inv()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        out.lines()
            .filter(|l| !l.ends_with("in sync"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(temp_files(ctl).await, "");
    // The lab as the other tests expect it.
    let (o, out, err) = apply(&base, runs.path(), "restored");
    assert!(o.status.success(), "{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_host_key_names_the_host_the_stage_and_how_to_check_and_replace_it() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let real = std::fs::read_to_string(repo.join("lab/state/known_hosts")).unwrap();
    // The networker's entry with the controller's key: its key "changed".
    let key_of = |addr: &str| {
        real.lines()
            .find(|l| l.split_whitespace().next() == Some(addr))
            .unwrap_or_else(|| panic!("no known_hosts entry for {addr}: {real}"))
            .to_string()
    };
    let (ctl, net) = (key_of("127.0.10.11"), key_of("127.0.10.16"));
    let forged = ctl.replacen("127.0.10.11", "127.0.10.16", 1);
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, real.replacen(&net, &forged, 1)).unwrap();
    let lab = LabCopy::new("");
    lab.edit(
        "known_hosts = \"../lab/state/known_hosts\"",
        &format!("known_hosts = \"{}\"", known.display()),
    );
    let (o, out, err) = apply(&lab, runs.path(), "host-key");
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("Apply FAILED in the survey (before any change)"),
        "{out}"
    );
    assert!(
        out.contains(
            "lab-networker-0 (Networker), in the survey (before any change): survey: connecting"
        ),
        "{out}"
    );
    assert!(out.contains("HOST KEY CHANGED"), "{out}");
    assert!(out.contains("What to do: re-running cannot help"), "{out}");
    assert!(
        out.contains("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "ssh-keygen -R '127.0.10.16' -f {}",
            known.display()
        )),
        "{out}"
    );
    assert!(out.contains("--accept-new-host-keys"), "{out}");
    assert!(
        !out.contains("Run apply again"),
        "no advice that cannot help: {out}"
    );
    assert!(
        out.contains(
            "(lab-networker-0 in the survey, before any change); the overcloud stage did not run."
        ),
        "{out}"
    );
    assert!(!out.contains("after the bare-metal stage"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn power_on_leaves_an_on_node_alone_and_power_cycle_restarts_it_through_redfish() {
    let _g = serial().await;
    let runs = tempfile::tempdir().unwrap();
    let lab = LabCopy::new("");
    let (o, out, err) = apply(&lab, runs.path(), "converge");
    assert!(o.status.success(), "{out}\n{err}");
    let inv = lab.inv();
    let host = "lab-novacompute-2";
    // The lab's power-on of a node starts a new sshd listener: its PID is the boot.
    let pid_file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("lab/state/hosts")
        .join(host)
        .join("sshd.pid");
    let boot = || std::fs::read_to_string(&pid_file).unwrap_or_default();
    let before = boot();
    let (o, out, err) = provision(&["nodes", &inv, "power", "on", "--limit", host]);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("already on: nothing pressed"), "{out}");
    assert!(
        out.contains("power cycle --limit lab-novacompute-2"),
        "{out}"
    );
    assert!(
        out.contains("power on: 1 node already on (nothing pressed)"),
        "{out}"
    );
    let (o, out, err) = provision(&["nodes", &inv, "power", "cycle", "--limit", host]);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("was on: restart requested (ForceRestart)"),
        "{out}"
    );
    assert!(out.contains("power cycle: 1 node restarted"), "{out}");
    // The BMC applies it 1 to 11 s later; the node boots (bounded: 60 s): a new sshd
    // answers.
    let end = Instant::now() + Duration::from_secs(60);
    while boot() == before || boot().is_empty() || !ssh_ok(host, "true") {
        assert!(Instant::now() < end, "{host} did not restart within 60 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Its containers stopped with it: plan and apply start them.
    let (o, out, err) = apply(&lab, runs.path(), "after-cycle");
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("started on 1 of 7 hosts"), "{out}");
}
