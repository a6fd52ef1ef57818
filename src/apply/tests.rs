//! The stage engine against the FAKE fleet ([`crate::host::fake`]): the real lab
//! inventory's desired state (7 hosts, their files, directories and containers in
//! deploy steps) applied to in-memory hosts. Checks what the engine decides and in
//! which order it acts; the real path (SSH, podman) is tested against the lab.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::baremetal::record::NodesRecord;
use crate::host::fake::{Entry, FakeFleet};
use crate::plan::{Change, ContainerOp, NodeAction, Plan};
use crate::report::Progress;

fn lab() -> Evaluation {
    let inv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/lab.toml");
    crate::evaluate::evaluate(&inv, &crate::source::FsTree, &Default::default())
        .unwrap_or_else(|f| panic!("{}", f.render()))
}

/// Sets a role's tolerated failure percentage.
fn tolerate(ev: &mut Evaluation, role: &str, percent: u8) {
    ev.cloud.roles.get_mut(role).unwrap().max_fail_percentage = percent;
}

fn fleet(ev: &Evaluation) -> FakeFleet {
    let nodes: Vec<&str> = ev.cloud.hosts.iter().map(|h| h.name.as_str()).collect();
    FakeFleet::new(&ev.cloud.undercloud.name, &nodes)
}

fn options() -> Options {
    Options {
        interrupt: Default::default(),
        parallel: 4,
        timeout: Duration::from_secs(5),
        health_timeout: Duration::from_secs(5),
        boot_timeout: Duration::from_secs(5),
        power_off_removed: true,
        read_contents: true,
    }
}

fn info() -> RunInfo {
    RunInfo {
        run_id: "test-run".into(),
        operator: "tester@here".into(),
        inventory: "inventories/lab.toml".into(),
        time: "2026-12-01T00:00:00.000Z".into(),
    }
}

fn reporter() -> Arc<Reporter> {
    Arc::new(Reporter::new(
        Progress::hidden(),
        None,
        Box::new(|s: &str| s.to_string()),
    ))
}

/// One apply: begin (lock, checks, survey), then execute. Returns the plan executed
/// and the outcome.
async fn apply(ev: &Evaluation, f: &mut FakeFleet) -> (Plan, RunOutcome) {
    apply_with(ev, f, options()).await
}

async fn apply_with(ev: &Evaluation, f: &mut FakeFleet, opts: Options) -> (Plan, RunOutcome) {
    f.disconnect();
    let a = Apply::begin(ev, f, opts, "tester").await.unwrap();
    let plan = a.survey().plan.clone();
    let out = a.execute(&info(), reporter()).await;
    (plan, out)
}

/// The plan a new survey decides now (with the cloud's keys, as apply's).
async fn replan(ev: &Evaluation, f: &mut FakeFleet) -> Plan {
    f.disconnect();
    let ev = survey::with_keys(ev, f).await.unwrap();
    survey::survey(&ev, f, &options().survey())
        .await
        .unwrap()
        .plan
}

/// The index of the first and last journal entry matching `what`.
fn span(j: &[Entry], what: impl Fn(&Entry) -> bool) -> Option<(usize, usize)> {
    let idx: Vec<usize> = j
        .iter()
        .enumerate()
        .filter(|(_, e)| what(e))
        .map(|(i, _)| i)
        .collect();
    Some((*idx.first()?, *idx.last()?))
}

/// Every host holds its desired files and runs its desired containers.
fn assert_converged(ev: &Evaluation, f: &FakeFleet, hosts: &[&str]) {
    for name in hosts {
        let hs = &ev.state.hosts[*name];
        let st = f.machine(name).snapshot();
        for (p, d) in &hs.files {
            let got = st
                .files
                .get(p)
                .unwrap_or_else(|| panic!("{name}: {p} missing"));
            assert_eq!(
                (got.content.as_slice(), got.mode, got.owner.as_str()),
                (d.content.as_bytes(), d.mode, d.owner.as_str()),
                "{name}: {p}"
            );
        }
        for d in &hs.directories {
            assert!(st.dirs.contains_key(&d.path), "{name}: {} missing", d.path);
        }
        for (c, def) in &hs.containers {
            let got = st
                .containers
                .get(c)
                .unwrap_or_else(|| panic!("{name}: {c} missing"));
            assert_eq!(got.state, "running");
            assert_eq!(
                Some(&got.config_hash),
                def.labels.get("provision.config_hash")
            );
        }
        assert_eq!(st.containers.len(), hs.containers.len(), "{name}");
    }
}

#[tokio::test]
async fn a_cold_apply_does_what_its_plan_says_step_by_step_and_a_second_does_nothing() {
    let ev = lab();
    let mut f = fleet(&ev);
    let (plan, out) = apply(&ev, &mut f).await;
    assert!(out.ok(), "{:?}", out.failed());
    // Every node was to be provisioned (nothing recorded yet): the plan counted them.
    assert_eq!(plan.counts().nodes_provisioned, 6);
    assert!(plan.hosts.values().filter(|h| h.assumed_empty).count() == 6);
    // Exactly what the plan counted was done.
    assert_eq!(out.counts(), plan.counts());
    // Every rendered file, the keys (two repositories of two keys on the controller)
    // and their store on the undercloud.
    let files: usize = ev.state.hosts.values().map(|h| h.files.len()).sum();
    assert_eq!(out.counts().files_written, files + 4 + 1);
    let all: Vec<&str> = ev.state.hosts.keys().map(String::as_str).collect();
    assert_converged(&ev, &f, &all);

    // Order: the lock first; the undercloud's stage before any node is touched; each
    // node's files before any container; step N everywhere before step N+1 anywhere.
    let j = f.take_journal();
    let uc = ev.cloud.undercloud.name.as_str();
    assert_eq!(
        j[0],
        Entry {
            host: uc.into(),
            what: "lock".into()
        }
    );
    assert_eq!(j.last().unwrap().what, "unlock");
    let (_, uc_last_step) = span(&j, |e| e.host == uc && e.what.starts_with("step")).unwrap();
    let (bring_up, _) = span(&j, |e| e.what == "bring up").unwrap();
    assert!(
        uc_last_step < bring_up,
        "the undercloud's services come first"
    );
    let (_, last_upload) = span(&j, |e| e.host != uc && e.what.starts_with("upload")).unwrap();
    let (first_step, _) = span(&j, |e| e.host != uc && e.what.starts_with("step")).unwrap();
    assert!(
        last_upload < first_step,
        "every host is prepared before step 1"
    );
    let steps: Vec<u8> = (1..=6).collect();
    for w in steps.windows(2) {
        let prev = span(&j, |e| {
            e.host != uc && e.what.starts_with(&format!("step {}:", w[0]))
        });
        let next = span(&j, |e| {
            e.host != uc && e.what.starts_with(&format!("step {}:", w[1]))
        });
        if let (Some((_, p_last)), Some((n_first, _))) = (prev, next) {
            assert!(
                p_last < n_first,
                "step {} began before step {} ended",
                w[1],
                w[0]
            );
        }
    }
    // The records on the undercloud.
    let st = f.undercloud.snapshot();
    let nodes: NodesRecord =
        serde_json::from_slice(&st.files["/var/lib/provision/lab.nodes.json"].content).unwrap();
    assert_eq!(nodes.nodes.len(), 6);
    let rec: record::ApplyRecord =
        serde_json::from_slice(&st.files["/var/lib/provision/lab.last-apply.json"].content)
            .unwrap();
    assert!(rec.ok);
    assert_eq!(rec.hosts.len(), 7);
    assert_eq!(rec.hosts["lab-controller-0"].result, "changed");

    // Again: nothing to do, nothing done; the stamps were written, so podman is not read.
    let plan = replan(&ev, &mut f).await;
    assert!(!plan.has_changes(), "{:#?}", plan.counts());
    let (plan, out) = apply(&ev, &mut f).await;
    assert_eq!((plan.counts().total(), out.counts().total()), (0, 0));
    // (The undercloud's one upload is the last-apply record.)
    assert!(f
        .take_journal()
        .iter()
        .filter(|e| e.host != uc)
        .all(|e| !e.what.starts_with("step") && !e.what.starts_with("upload")));
}

#[tokio::test]
async fn a_failed_host_is_left_out_of_later_steps_within_tolerance_and_a_rerun_resumes() {
    let mut ev = lab();
    tolerate(&mut ev, "Compute", 50);
    let mut f = fleet(&ev);
    let broken = "lab-novacompute-1";
    f.machine(broken)
        .set_faults(|x| x.directories = Some("mkdir: File exists".into()));
    let (plan, out) = apply(&ev, &mut f).await;
    let failed = out.hosts[broken].failure.clone().expect("it failed");
    assert_eq!(failed.phase, Phase::Preparation);
    assert_eq!(failed.action, "creating directories");
    assert!(failed.message.contains("File exists"));
    assert!(out.stopped.is_none(), "1 of 3 is within 50%");
    let others: Vec<&str> = ev
        .state
        .hosts
        .keys()
        .map(String::as_str)
        .filter(|h| *h != broken)
        .collect();
    assert_converged(&ev, &f, &others);
    let j = f.take_journal();
    assert!(
        !j.iter()
            .any(|e| e.host == broken && e.what.starts_with("step")),
        "the failed host was left out of the steps"
    );
    // Everything the plan said, but the failed host's containers and files, was done.
    let mut expected = plan.counts();
    let lost = plan.hosts[broken].counts();
    expected.files_written -= lost.files_written;
    expected.directories_fixed -= lost.directories_fixed;
    expected.containers_created -= lost.containers_created;
    assert_eq!(out.counts(), expected);

    // Fixed: the re-run plans only that host, and does exactly that.
    f.machine(broken).set_faults(|x| x.directories = None);
    let (plan, out) = apply(&ev, &mut f).await;
    assert!(out.ok(), "{:?}", out.failed());
    let changed: Vec<&str> = plan
        .hosts
        .values()
        .filter(|h| !h.changes.is_empty())
        .map(|h| h.host.as_str())
        .collect();
    assert_eq!(changed, vec![broken]);
    assert_eq!(out.counts(), plan.counts());
    assert_eq!(out.hosts_changed(), 1);
    assert_converged(&ev, &f, &[broken]);
    let j = f.take_journal();
    let uc = ev.cloud.undercloud.name.as_str();
    assert!(j
        .iter()
        .filter(|e| e.host != uc)
        .filter(|e| e.what.starts_with("step") || e.what.starts_with("upload"))
        .all(|e| e.host == broken));
}

#[tokio::test]
async fn failures_over_a_roles_tolerance_stop_the_run_after_that_phase() {
    let ev = lab();
    let mut f = fleet(&ev);
    f.machine("lab-novacompute-1")
        .set_faults(|x| x.directories = Some("mkdir: File exists".into()));
    let (_, out) = apply(&ev, &mut f).await;
    assert_eq!(
        out.stopped.as_deref(),
        Some("1 of 3 Compute hosts failed (33%), more than its max_fail_percentage of 20%; stopped after host preparation")
    );
    for h in ev.cloud.hosts.iter() {
        let st = f.machine(&h.name).snapshot();
        assert!(st.containers.is_empty(), "{} got containers", h.name);
    }
    assert!(f
        .machine("lab-controller-0")
        .snapshot()
        .files
        .contains_key("/etc/overcloud/keystone/keystone.conf"));
    // The record says so, and the lock is free again.
    let rec: record::ApplyRecord = serde_json::from_slice(
        &f.undercloud.snapshot().files["/var/lib/provision/lab.last-apply.json"].content,
    )
    .unwrap();
    assert!(!rec.ok && rec.stopped.is_some());
    assert_eq!(
        rec.hosts["lab-novacompute-1"].failure.as_deref(),
        Some("host preparation: creating directories: mkdir: File exists")
    );
}

#[tokio::test]
async fn an_unhealthy_container_fails_its_step_and_a_controller_stops_the_run() {
    let ev = lab();
    let mut f = fleet(&ev);
    f.machine("lab-controller-0").set_faults(|x| {
        x.unhealthy.insert("keystone".into());
    });
    let (_, out) = apply(&ev, &mut f).await;
    let failure = out.hosts["lab-controller-0"].failure.clone().unwrap();
    assert_eq!(failure.phase, Phase::Step(2));
    assert_eq!(failure.action, "healthcheck of keystone");
    assert!(
        failure.message.contains("never became healthy"),
        "{}",
        failure.message
    );
    assert!(out
        .stopped
        .as_deref()
        .unwrap()
        .ends_with("stopped after step 2"));
    // Counted: keystone was created (it is unhealthy, but it runs).
    assert!(out.hosts["lab-controller-0"].done.containers_created >= 1);
    let j = f.take_journal();
    assert!(
        !j.iter().any(|e| e.what.starts_with("step 3:")),
        "no step after the stop"
    );
}

#[tokio::test]
async fn the_lock_keeps_a_second_apply_out_until_released() {
    let ev = lab();
    let mut f1 = fleet(&ev);
    // A second apply from elsewhere, reaching the same undercloud.
    let mut f2 = fleet(&ev);
    f2.undercloud = f1.undercloud.clone();
    let a = Apply::begin(&ev, &mut f1, options(), "first apply pid 1")
        .await
        .unwrap();
    match Apply::begin(&ev, &mut f2, options(), "second").await {
        Err(BeginError::Lock(LockError::Busy { holder, path, .. })) => {
            assert_eq!(holder, "first apply pid 1");
            assert_eq!(path, "/var/lib/provision/lab.lock");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the second apply got the lock"),
    }
    a.release().await;
    let b = Apply::begin(&ev, &mut f2, options(), "second").await;
    assert!(b.is_ok(), "free after release");
}

#[tokio::test]
async fn removals_restarts_and_scale_in_are_planned_and_done_alike() {
    let mut ev = lab();
    let mut f = fleet(&ev);
    let (_, out) = apply(&ev, &mut f).await;
    assert!(out.ok());
    // A service out of the Compute role; a stopped container; a node out of the inventory.
    for h in ev.state.hosts.values_mut().filter(|h| h.role == "Compute") {
        h.containers.remove("neutron_ovs_agent");
        h.files.retain(|_, x| x.service != "neutron_ovs_agent");
    }
    f.machine("lab-networker-0").alter(|s| {
        for c in s.containers.values_mut() {
            c.state = "exited".into();
        }
    });
    let id_before = f.machine("lab-networker-0").snapshot().containers;
    ev.cloud.hosts.retain(|h| h.name != "lab-novacompute-2");
    ev.state.hosts.remove("lab-novacompute-2");
    let plan = replan(&ev, &mut f).await;
    let c = plan.counts();
    assert_eq!(c.containers_removed, 2, "{c:?}");
    assert_eq!(c.containers_started, id_before.len());
    assert_eq!(c.nodes_powered_off, 1);
    assert!(plan.nodes.iter().any(
        |n| n.node == "lab-novacompute-2" && n.action == NodeAction::Remove { power_off: true }
    ));
    assert!(plan.hosts["lab-networker-0"]
        .changes
        .iter()
        .all(|ch| matches!(
            ch,
            Change::Container {
                op: ContainerOp::Start { .. },
                ..
            }
        )));
    let (planned, out) = apply(&ev, &mut f).await;
    assert!(out.ok(), "{:?} {:?}", out.failed(), out.power_off_failures);
    assert_eq!(out.counts(), planned.counts());
    assert_eq!(planned.counts(), c);
    // Started, not recreated: the same ids.
    let after = f.machine("lab-networker-0").snapshot().containers;
    for (n, c) in &after {
        assert_eq!(
            (c.id, c.state.as_str()),
            (id_before[n].id, "running"),
            "{n}"
        );
    }
    for n in ["lab-novacompute-0", "lab-novacompute-1"] {
        let st = f.machine(n).snapshot();
        assert!(!st.containers.contains_key("neutron_ovs_agent"));
        assert!(!st
            .files
            .keys()
            .any(|p| p.starts_with("/etc/overcloud/neutron_ovs_agent/")));
    }
    let nodes: NodesRecord = serde_json::from_slice(
        &f.undercloud.snapshot().files["/var/lib/provision/lab.nodes.json"].content,
    )
    .unwrap();
    assert!(!nodes.nodes.contains_key("lab-novacompute-2"), "forgotten");
    assert!(!replan(&ev, &mut f).await.has_changes());
}

#[tokio::test]
async fn an_unreachable_host_fails_and_a_node_that_cannot_come_up_fails_alone() {
    let mut ev = lab();
    tolerate(&mut ev, "Compute", 50);
    let mut f = fleet(&ev);
    f.machine("lab-novacompute-0")
        .set_faults(|x| x.bring_up = Some("did not answer SSH within 5 s".into()));
    let (plan, out) = apply(&ev, &mut f).await;
    let fail = out.hosts["lab-novacompute-0"].failure.clone().unwrap();
    assert_eq!(
        (fail.phase, fail.action.as_str()),
        (Phase::BareMetal, "waiting for SSH")
    );
    assert!(out.stopped.is_none());
    assert_eq!(
        out.counts().nodes_provisioned,
        plan.counts().nodes_provisioned - 1
    );
    assert_converged(&ev, &f, &["lab-novacompute-1", "lab-controller-0"]);
    // Now it comes up, but the networker cannot be read: Networker tolerates 50%,
    // but one of one is 100%: the run stops before the overcloud.
    f.machine("lab-novacompute-0")
        .set_faults(|x| x.bring_up = None);
    f.machine("lab-networker-0")
        .set_faults(|x| x.unreachable = true);
    let (_, out) = apply(&ev, &mut f).await;
    assert_eq!(
        out.hosts["lab-networker-0"].failure.as_ref().unwrap().phase,
        Phase::Gather
    );
    assert!(
        out.stopped.as_deref().unwrap().contains(
            "(lab-networker-0 in the survey, before any change); the overcloud stage did not run"
        ),
        "{:?}",
        out.stopped
    );
    assert!(f
        .machine("lab-novacompute-0")
        .snapshot()
        .containers
        .is_empty());
}

#[tokio::test]
async fn tasks_run_once_before_their_steps_containers_and_again_only_when_their_inputs_change() {
    let mut ev = lab();
    let mut f = fleet(&ev);
    let (plan, out) = apply(&ev, &mut f).await;
    assert!(out.ok(), "{:?}", out.failed());
    let ctl = "lab-controller-0";
    let tasks = &ev.state.hosts[ctl].tasks;
    assert!(tasks.contains_key("keystone/db_sync") && tasks.contains_key("keystone/bootstrap"));
    assert_eq!(out.counts().tasks_run, plan.counts().tasks_run);
    assert_eq!(out.hosts[ctl].tasks_ran.len(), tasks.len());
    // In step 2: the database, then the schema, then the bootstrap, then keystone's
    // container; every task of a step before that step's containers.
    let j = f.take_journal();
    let at = |what: &str| {
        j.iter()
            .position(|e| e.host == ctl && e.what == what)
            .unwrap_or_else(|| panic!("{what} not in {j:?}"))
    };
    let order = [
        "step 2: task keystone/database",
        "step 2: task keystone/db_sync",
        "step 2: task keystone/bootstrap",
        "step 2: create keystone",
    ];
    let idx: Vec<usize> = order.iter().map(|w| at(w)).collect();
    assert!(idx.windows(2).all(|w| w[0] < w[1]), "{idx:?}");
    assert!(at("step 3: task glance_api/register") < at("step 3: create glance_api"));
    // Recorded on the undercloud: a second apply runs none.
    let rec: record::TasksRecord = serde_json::from_slice(
        &f.undercloud.snapshot().files["/var/lib/provision/lab.tasks.json"].content,
    )
    .unwrap();
    assert_eq!(rec.hosts[ctl].len(), tasks.len());
    let plan = replan(&ev, &mut f).await;
    assert_eq!(plan.counts().tasks_run, 0, "{:#?}", plan.counts());

    // A new keystone image: its schema sync runs again (the bootstrap does not: an image
    // upgrade does not re-run it), and its container is recreated.
    let hs = ev.state.hosts.get_mut(ctl).unwrap();
    for t in hs.tasks.values_mut().filter(|t| t.service == "keystone") {
        t.image = t.image.replace(":latest", ":v2");
    }
    let c = hs.containers.get_mut("keystone").unwrap();
    c.labels
        .insert("provision.config_hash".into(), "a-new-hash".into());
    let plan = replan(&ev, &mut f).await;
    let changes: Vec<&Change> = plan.hosts.values().flat_map(|h| h.changes.iter()).collect();
    assert_eq!(changes.len(), 2, "{changes:#?}");
    assert!(
        matches!(changes[0], Change::Task { task, why: crate::plan::TaskWhy::ImageChanged { .. }, .. } if task == "keystone/db_sync")
    );
    assert!(matches!(changes[1], Change::Container { container, .. } if container == "keystone"));
    let (plan, out) = apply(&ev, &mut f).await;
    assert_eq!(out.counts(), plan.counts());
    assert!(!replan(&ev, &mut f).await.has_changes());
}

#[tokio::test]
async fn a_node_provisioned_anew_runs_its_tasks_again() {
    let ev = lab();
    let mut f = fleet(&ev);
    let (_, out) = apply(&ev, &mut f).await;
    assert!(out.ok(), "{:?}", out.failed());
    let ctl = "lab-controller-0";
    let n = ev.state.hosts[ctl].tasks.len();
    assert!(n > 0);
    assert_eq!(replan(&ev, &mut f).await.counts().tasks_run, 0);
    // Powered off and out of the record of provisioned nodes (as a node to install
    // anew): the plan provisions it as an empty machine, every task included.
    f.powered.lock().unwrap().remove(ctl);
    f.undercloud.alter(|s| {
        let path = "/var/lib/provision/lab.nodes.json";
        let mut rec: serde_json::Value = serde_json::from_slice(&s.files[path].content).unwrap();
        rec["nodes"].as_object_mut().unwrap().remove(ctl).unwrap();
        s.files.get_mut(path).unwrap().content = rec.to_string().into_bytes();
    });
    let (plan, out) = apply(&ev, &mut f).await;
    assert!(out.ok(), "{:?}", out.failed());
    assert_eq!(plan.counts().tasks_run, n, "{:#?}", plan.counts());
    assert_eq!(out.hosts[ctl].tasks_ran.len(), n);
    assert_eq!(replan(&ev, &mut f).await.counts().tasks_run, 0);
}

#[tokio::test]
async fn a_failed_task_fails_its_hosts_step_with_its_output_and_a_rerun_converges() {
    let ev = lab();
    let mut f = fleet(&ev);
    let ctl = "lab-controller-0";
    f.machine(ctl).set_faults(|x| {
        x.task.insert(
            "keystone/database".into(),
            "ERROR 1045 (28000): Access denied for user 'root'@'127.0.11.11'".into(),
        );
    });
    let (_, out) = apply(&ev, &mut f).await;
    let fail = out.hosts[ctl].failure.clone().unwrap();
    assert_eq!(
        (fail.phase, fail.action.as_str()),
        (Phase::Step(2), "task keystone/database")
    );
    assert!(
        fail.message.contains("Access denied for user 'root'"),
        "{}",
        fail.message
    );
    // Controllers tolerate no failure: nothing after step 2 anywhere, keystone never started.
    assert!(out
        .stopped
        .as_deref()
        .unwrap()
        .ends_with("stopped after step 2"));
    assert!(!f
        .machine(ctl)
        .snapshot()
        .containers
        .contains_key("keystone"));
    let j = f.take_journal();
    assert!(!j.iter().any(|e| e.what.starts_with("step 3:")));
    assert!(
        !j.iter().any(|e| e.what == "step 2: task keystone/db_sync"),
        "no task after the one that failed"
    );
    // Fixed: the rerun runs what is left; the tasks that succeeded before do not run again.
    f.machine(ctl).set_faults(|x| x.task.clear());
    let before = out.hosts[ctl].tasks_ran.clone();
    let (plan, out) = apply(&ev, &mut f).await;
    assert!(out.ok(), "{:?}", out.failed());
    let planned: Vec<&str> = plan.hosts[ctl]
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Task { task, .. } => Some(task.as_str()),
            _ => None,
        })
        .collect();
    for done in &before {
        assert!(!planned.contains(&done.as_str()), "{done} ran again");
    }
    assert!(planned.contains(&"keystone/database"));
    assert_eq!(out.counts(), plan.counts());
}

#[tokio::test]
async fn keys_are_generated_once_kept_on_the_undercloud_and_rotated_with_retired_keys_removed() {
    let ev = lab();
    let mut f = fleet(&ev);
    let (_, out) = apply(&ev, &mut f).await;
    assert!(out.ok());
    let ctl = "lab-controller-0";
    let store_path = "/var/lib/provision/lab.keys.json";
    let uc = f.undercloud.snapshot();
    let stored = &uc.files[store_path];
    assert_eq!((stored.mode, stored.owner.as_str()), (0o600, "root"));
    let store: crate::keys::KeyStore = serde_json::from_slice(&stored.content).unwrap();
    let fernet = &store.repositories["keystone/fernet"];
    let node = f.machine(ctl).snapshot();
    for (i, k) in fernet {
        let file = &node.files[&format!("/var/lib/overcloud/keystone/fernet-keys/{i}")];
        assert_eq!(
            (file.content.as_slice(), file.mode, file.owner.as_str()),
            (k.as_bytes(), 0o600, "42425")
        );
    }
    // A second apply keeps them: nothing to write.
    let (plan, _) = apply(&ev, &mut f).await;
    assert_eq!(plan.counts().total(), 0, "{:?}", plan.counts());
    assert_eq!(
        f.undercloud.snapshot().files[store_path].content,
        stored.content
    );

    // Rotation (what `provision keys rotate` does to the store), twice: the next applies
    // write the new staged key and primary, and remove the retired key from the hosts.
    for _ in 0..2 {
        let mut s: crate::keys::KeyStore =
            serde_json::from_slice(&f.undercloud.snapshot().files[store_path].content).unwrap();
        crate::keys::rotate(&mut s, "keystone/fernet", 3).unwrap();
        f.undercloud.alter(|st| {
            st.files.get_mut(store_path).unwrap().content = serde_json::to_vec_pretty(&s).unwrap();
        });
        let (plan, out) = apply(&ev, &mut f).await;
        assert!(out.ok());
        assert_eq!(out.counts(), plan.counts());
    }
    let s: crate::keys::KeyStore =
        serde_json::from_slice(&f.undercloud.snapshot().files[store_path].content).unwrap();
    let node = f.machine(ctl).snapshot();
    let on_host: Vec<String> = node
        .files
        .keys()
        .filter_map(|p| p.strip_prefix("/var/lib/overcloud/keystone/fernet-keys/"))
        .map(str::to_string)
        .collect();
    assert_eq!(on_host, vec!["0", "2", "3"], "key 1 retired");
    assert_eq!(
        node.files["/var/lib/overcloud/keystone/fernet-keys/3"].content,
        s.repositories["keystone/fernet"][&3].as_bytes()
    );
}

#[tokio::test]
async fn an_interrupt_finishes_what_is_in_flight_starts_nothing_new_and_is_recorded() {
    let ev = lab();
    let mut f = fleet(&ev);
    let opts = options();
    let interrupt = opts.interrupt.clone();
    // Ctrl-C arrives while the controller runs step 2's containers.
    f.machine("lab-controller-0").set_faults(|x| {
        x.interrupt_in_step = Some((2, interrupt.clone()));
    });
    let (plan, out) = apply_with(&ev, &mut f, opts).await;
    assert_eq!(out.interrupted.as_deref(), Some("SIGINT"));
    assert!(!out.ok());
    assert!(
        out.failed().is_empty(),
        "an interrupt is no failure: {:?}",
        out.failed()
    );
    let j = f.take_journal();
    // The step in flight finished on the controller: its containers were created.
    assert!(j
        .iter()
        .any(|e| e.host == "lab-controller-0" && e.what.starts_with("step 2: create")));
    // Nothing started after it, on any host.
    assert!(
        !j.iter().any(|e| e.what.starts_with("step 3")),
        "{:?}",
        j.iter()
            .filter(|e| e.what.starts_with("step 3"))
            .collect::<Vec<_>>()
    );
    // No stamp is written after an interrupted run; the lock is released last.
    assert!(!j.iter().any(|e| e.what == "stamp"));
    assert_eq!(j.last().unwrap().what, "unlock");
    let ctl = &out.hosts["lab-controller-0"];
    assert_eq!(
        ctl.unfinished.as_deref(),
        Some("step 3 and later not started")
    );
    assert!(ctl.done.containers_created > 0);
    // Recorded on the undercloud as interrupted, with what each host got done.
    let rec: record::ApplyRecord = serde_json::from_slice(
        &f.undercloud.snapshot().files["/var/lib/provision/lab.last-apply.json"].content,
    )
    .unwrap();
    assert_eq!(rec.interrupted.as_deref(), Some("SIGINT"));
    assert!(!rec.ok);
    let h = &rec.hosts["lab-controller-0"];
    assert_eq!(h.result, "interrupted");
    assert_eq!(
        h.unfinished.as_deref(),
        Some("step 3 and later not started")
    );
    assert!(h.done.as_deref().unwrap().contains("created"), "{h:?}");
    // The next apply does what is left, and no more than the first plan had.
    let (plan2, out2) = apply(&ev, &mut f).await;
    assert!(out2.ok(), "{:?}", out2.failed());
    assert!(plan2.counts().total() < plan.counts().total());
    let all: Vec<&str> = ev.state.hosts.keys().map(String::as_str).collect();
    assert_converged(&ev, &f, &all);
    assert!(!replan(&ev, &mut f).await.has_changes());
}

#[tokio::test]
async fn an_unhealthy_or_stopped_container_is_not_in_sync_and_apply_recovers_it() {
    let ev = lab();
    let mut f = fleet(&ev);
    let (_, out) = apply(&ev, &mut f).await;
    assert!(out.ok(), "{:?}", out.failed());
    let ctl = f.machine("lab-controller-0");
    ctl.with_state(|st| {
        st.containers.get_mut("keystone").unwrap().health = "unhealthy".into();
        st.containers.get_mut("glance_api").unwrap().health = "starting".into();
        st.containers.get_mut("placement_api").unwrap().state = "exited".into();
        st.stamp = false;
    });
    let plan = replan(&ev, &mut f).await;
    let ops: Vec<(String, &'static str)> = plan.hosts["lab-controller-0"]
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Container { container, op, .. } => Some((container.clone(), op.verb())),
            _ => None,
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            ("keystone".to_string(), "recreate"),
            ("glance_api".to_string(), "check health of"),
            ("placement_api".to_string(), "start"),
        ]
    );
    let (_, out) = apply(&ev, &mut f).await;
    assert!(out.ok(), "{:?}", out.failed());
    assert_eq!(out.counts().containers_recreated, 1);
    assert_eq!(out.counts().health_awaited, 1);
    assert_eq!(out.counts().containers_started, 1);
    assert!(!replan(&ev, &mut f).await.has_changes());
}
