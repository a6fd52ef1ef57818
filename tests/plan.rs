//! `provision plan` against the lab's real hosts: what would change, read in one round
//! trip per host, shown like `provision diff`, with nothing changed on any host.

mod common;
use common::repo;

use std::time::Duration;

use provision::apply::survey::SurveyOptions;
use provision::diff::{FileAction, Report};
use provision::evaluate::{evaluate, Evaluation};
use provision::facts::ReadFacts;
use provision::host::sessions::Sessions;
use provision::host::ssh::SshFleet;
use provision::model::LoadOptions;
use provision::source::FsTree;
use provision::transport::{Credentials, Session, SshOptions};

const HOST: &str = "lab-cephstorage-0";

fn lab() -> Evaluation {
    assert!(
        repo().join("lab/state/known_hosts").is_file(),
        "the lab is not running: start it with lab/lab.sh up (scripts/test.sh does)"
    );
    match evaluate(
        &repo().join("inventories/lab.toml"),
        &FsTree,
        &LoadOptions::default(),
    ) {
        Ok(ev) => ev,
        Err(f) => panic!("{}", f.render()),
    }
}

/// The plan of one host, through the same survey as `provision plan`.
async fn plan_one(ev: &Evaluation, host: &str) -> (Report, Sessions) {
    let mut opts = SshOptions::from_cloud(&ev.cloud, false);
    opts.use_agent = false;
    let creds = Credentials::load(&opts).unwrap();
    let sessions = Sessions::connect(&ev.cloud, &[host.to_string()], &opts, &creds, 4)
        .await
        .unwrap();
    let mut one = lab();
    one.state.hosts.retain(|n, _| n == host);
    let mut fleet = SshFleet::new(&one.cloud, sessions);
    let read = SurveyOptions {
        read: ReadFacts {
            contents: true,
            trust_stamp: false,
            quick_check: false,
            record_files: false,
        },
        parallel: 4,
        timeout: Duration::from_secs(30),
        power_off_removed: false,
    };
    let (survey, report, _) =
        provision::apply::survey::plan(&one, &mut fleet, &read, "inventories/lab.toml")
            .await
            .unwrap();
    assert!(survey.unreachable.is_empty(), "{:?}", survey.unreachable);
    (report, fleet.sessions)
}

async fn run(s: &Session, cmd: &str) -> String {
    let out = s.exec(cmd, None, Duration::from_secs(30)).await.unwrap();
    assert!(out.success(), "{cmd}: {}", out.stderr_text());
    out.stdout_text()
}

#[tokio::test]
async fn plan_reads_changes_and_modifies_nothing() {
    let ev = lab();
    let desired = &ev.state.hosts[HOST];
    let (_, fleet) = plan_one(&ev, HOST).await;
    let s = fleet.nodes[HOST].as_ref().unwrap().clone();
    // A known starting point: nothing of ours on the host.
    run(&s, common::EMPTY_NODE).await;

    let (report, _) = plan_one(&ev, HOST).await;
    let creates: Vec<&str> = report
        .files
        .iter()
        .filter(|f| f.action == FileAction::Create)
        .map(|f| f.path.as_str())
        .collect();
    let mut expected: Vec<&str> = desired.files.keys().map(String::as_str).collect();
    expected.sort();
    let mut got = creates.clone();
    got.sort();
    assert_eq!(got, expected, "an empty host needs every desired file");
    assert!(
        report.summary.containers_created >= 2,
        "{:?}",
        report.summary
    );
    let log_dir = report
        .directories
        .iter()
        .find(|d| d.path == "/var/log/overcloud/rsyslog")
        .expect("the log directory to create");
    assert_eq!(
        (log_dir.action, log_dir.after.as_deref()),
        (FileAction::Create, Some("0750 root:root"))
    );
    // Plan wrote nothing.
    assert_eq!(
        run(&s, "find /etc/overcloud -type f | wc -l").await.trim(),
        "0"
    );

    // Put every file in place as desired, except: one with other content, one with another mode.
    let mut changed_path = String::new();
    let mut mode_path = String::new();
    for f in desired.files.values() {
        let (content, mode) = if changed_path.is_empty() && !f.secret && f.path.ends_with(".conf") {
            changed_path = f.path.clone();
            (format!("{}# an operator's hand edit\n", f.content), f.mode)
        } else if mode_path.is_empty() && f.path != changed_path && !f.secret {
            mode_path = f.path.clone();
            (f.content.clone(), 0o666)
        } else {
            (f.content.clone(), f.mode)
        };
        s.upload(
            &f.path,
            content.as_bytes(),
            mode,
            &f.owner,
            &f.group,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    assert!(!changed_path.is_empty() && !mode_path.is_empty());
    let (report, _) = plan_one(&ev, HOST).await;
    assert_eq!(report.files.len(), 2, "{:#?}", report.files);
    let edit = report
        .files
        .iter()
        .find(|f| f.path == changed_path)
        .unwrap();
    assert_eq!(edit.action, FileAction::Modify);
    assert!(
        edit.diff.contains("-# an operator's hand edit"),
        "{}",
        edit.diff
    );
    let m = report.files.iter().find(|f| f.path == mode_path).unwrap();
    assert_eq!(m.mode.as_ref().map(|m| m[0].as_str()), Some("0666"));
    assert!(m.diff.is_empty());
    run(&s, "rm -rf /etc/overcloud/* /var/lib/overcloud/containers").await;
}

#[tokio::test]
async fn an_old_secret_on_a_host_is_never_shown() {
    let ev = lab();
    let host = "lab-networker-0";
    let (_, fleet) = plan_one(&ev, host).await;
    let s = fleet.nodes[host].as_ref().unwrap().clone();
    let f = ev.state.hosts[host]
        .files
        .values()
        .find(|f| f.secret && f.path.ends_with("neutron.conf"))
        .expect("a file with a secret");
    let new = ev
        .cloud
        .secrets
        .get("rabbitmq_password")
        .unwrap()
        .expose()
        .to_string();
    let old = "an-old-rabbit-secret-77";
    s.upload(
        &f.path,
        f.content.replace(&new, old).as_bytes(),
        f.mode,
        &f.owner,
        &f.group,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let (report, _) = plan_one(&ev, host).await;
    let text = provision::diff::format::text(&report)
        + &provision::diff::format::json(&report)
        + &provision::diff::format::markdown(&report);
    assert!(!text.contains(old), "the host's old secret is shown");
    assert!(!text.contains(&new), "the new secret is shown");
    let change = report.files.iter().find(|c| c.path == f.path).unwrap();
    assert!(
        change.diff.contains("hidden: it held a secret"),
        "{}",
        change.diff
    );
    run(&s, &format!("rm -f {}", f.path)).await;
}

/// A file that holds a secret, changed on the host in another line only: the host's
/// line that carries the current secret is the desired one, and shown redacted like it
/// (it was shown as found: the secret in clear on the `-` side).
#[tokio::test]
async fn a_current_secret_in_an_unchanged_line_is_never_shown() {
    let ev = lab();
    let host = "lab-networker-0";
    let (_, fleet) = plan_one(&ev, host).await;
    let s = fleet.nodes[host].as_ref().unwrap().clone();
    // Not the file an_old_secret_on_a_host_is_never_shown edits (the tests run in
    // parallel).
    let f = ev.state.hosts[host]
        .files
        .get("/etc/overcloud/neutron_l3_agent/neutron.conf")
        .filter(|f| f.secret)
        .expect("a file with a secret");
    let secret = ev
        .cloud
        .secrets
        .get("rabbitmq_password")
        .unwrap()
        .expose()
        .to_string();
    assert!(f.content.contains(&secret));
    let edited = f.content.replacen(
        "\ntransport_url",
        "\n# an operator's hand edit\ntransport_url",
        1,
    );
    assert_ne!(edited, f.content);
    s.upload(
        &f.path,
        edited.as_bytes(),
        f.mode,
        &f.owner,
        &f.group,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let (report, _) = plan_one(&ev, host).await;
    let text = provision::diff::format::text(&report)
        + &provision::diff::format::json(&report)
        + &provision::diff::format::markdown(&report);
    assert!(!text.contains(&secret), "the current secret is shown");
    let change = report.files.iter().find(|c| c.path == f.path).unwrap();
    let transport: Vec<&str> = change
        .diff
        .lines()
        .filter(|l| l.contains("transport_url"))
        .collect();
    assert_eq!(transport.len(), 1, "{}", change.diff);
    assert!(transport[0].starts_with(' '), "{}", change.diff);
    run(&s, &format!("rm -f {}", f.path)).await;
}

#[test]
fn the_plan_command_exits_2_on_changes() {
    lab();
    // nova.conf missing on the host (whatever tests ran before).
    let o = std::process::Command::new("ssh")
        .args([
            "-F",
            "lab/state/ssh_config",
            "lab-novacompute-2",
            "rm -f /etc/overcloud/nova_compute/nova.conf",
        ])
        .current_dir(repo())
        .status()
        .unwrap();
    assert!(o.success());
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
        .args([
            "plan",
            "inventories/lab.toml",
            "--limit",
            "lab-novacompute-2",
            "--detailed-exitcode",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("+ /etc/overcloud/nova_compute/nova.conf"),
        "{out}"
    );
    assert!(
        out.trim_end().lines().last().unwrap().starts_with("Plan: "),
        "{out}"
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["plan", "inventories/lab.toml", "--limit", "NoSuchRole"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--limit names `NoSuchRole`"));
}

/// One file changed on a host (offline: no lab): nova.conf with an old
/// `cpu_allocation_ratio` and rotated passwords nobody knows any more. The plan and a
/// diff between the same two contents hide exactly the same lines: the ones whose
/// option carries a secret, not the others.
#[test]
fn plan_and_diff_hide_the_same_lines_of_the_same_file() {
    use provision::facts::{ActualHost, ActualPath};
    use std::collections::BTreeMap;

    let inv = "inventories/example-production.toml";
    let ev = match evaluate(&repo().join(inv), &FsTree, &LoadOptions::default()) {
        Ok(ev) => ev,
        Err(f) => panic!("{}", f.render()),
    };
    let host = "overcloud-novacompute-0";
    let path = "/etc/overcloud/nova_compute/nova.conf";
    let f = &ev.state.hosts[host].files[path];
    assert!(f.secret);
    let rabbit = ev.cloud.secrets.get("rabbitmq_password").unwrap().expose();
    assert!(f.content.contains("cpu_allocation_ratio = 8.0\n") && f.content.contains(rabbit));
    let (old_rabbit, old_cinder) = ("rotated-rabbit-0ld", "rotated-cinder-0ld");
    let cinder_line = f
        .content
        .lines()
        .skip_while(|l| *l != "[cinder]")
        .find(|l| l.starts_with("password = "))
        .unwrap();
    let old = f
        .content
        .replace("cpu_allocation_ratio = 8.0", "cpu_allocation_ratio = 4.0")
        .replace(rabbit, old_rabbit)
        .replacen(cinder_line, &format!("password = {old_cinder}"), 1);

    // The plan: the host holds `old`.
    let mut found = ActualHost::default();
    found.paths.insert(
        path.into(),
        ActualPath {
            kind: "regular file".into(),
            mode: f.mode,
            uid: "0".into(),
            gid: "0".into(),
            user: f.owner.clone(),
            group: f.group.clone(),
            sha256: Some("0".repeat(64)),
        },
    );
    found.contents.insert(path.into(), old.as_bytes().to_vec());
    let facts: BTreeMap<String, ActualHost> = [(host.to_string(), found)].into();
    let plan = provision::plan::Plan::decide(&ev.state, &facts, Vec::new());
    let planned = provision::plan::report::report(inv, &plan, &ev.state, &facts, &ev.cloud.secrets);
    let in_plan = planned.files.iter().find(|c| c.path == path).unwrap();

    // The diff: a base revision whose nova.conf is `old`.
    let mut base = ev.state.clone();
    base.hosts
        .get_mut(host)
        .unwrap()
        .files
        .get_mut(path)
        .unwrap()
        .content = old.clone();
    let side = |state, rev: &str| provision::diff::Side {
        label: provision::diff::RevisionInfo {
            rev: rev.into(),
            commit: None,
        },
        state,
        secrets: &ev.cloud.secrets,
    };
    let diffed = provision::diff::compare(inv, &side(&base, "base"), &side(&ev.state, "head"));
    assert_eq!(diffed.files.len(), 1);
    let in_diff = &diffed.files[0];
    assert_eq!(in_diff.hosts, [host]);

    let hidden = |diff: &str| -> Vec<String> {
        diff.lines()
            .filter(|l| l.contains("hidden: it held a secret"))
            .map(|l| l.split(" of ").next().unwrap().to_string())
            .collect()
    };
    let line_of = |needle: &str| old.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let expected = vec![
        format!("-(line {}", line_of("transport_url = ")),
        format!("-(line {}", line_of(&format!("password = {old_cinder}"))),
    ];
    assert_eq!(hidden(&in_plan.diff), expected, "{}", in_plan.diff);
    assert_eq!(hidden(&in_diff.diff), expected, "{}", in_diff.diff);
    // The same diff but for the name of the old side.
    assert_eq!(
        in_plan
            .diff
            .replace("the host's file", "the base revision's file"),
        in_diff.diff
    );
    // The line without a secret is shown, on both sides.
    for d in [&in_plan.diff, &in_diff.diff] {
        assert!(
            d.contains("\n-cpu_allocation_ratio = 4.0\n+cpu_allocation_ratio = 8.0\n"),
            "{d}"
        );
        assert!(
            d.contains("\n+transport_url = rabbit://openstack:(secret)@"),
            "{d}"
        );
    }
    let all = provision::diff::format::text(&planned)
        + &provision::diff::format::json(&planned)
        + &provision::diff::format::markdown(&planned)
        + &provision::diff::format::text(&diffed)
        + &provision::diff::format::json(&diffed);
    for v in [
        rabbit,
        old_rabbit,
        old_cinder,
        cinder_line.trim_start_matches("password = "),
    ] {
        assert!(!all.contains(v), "a secret is shown");
    }
}

/// The plan of a first apply of the production example, offline: every host empty.
fn first_apply() -> Report {
    use provision::facts::ActualHost;
    use std::collections::BTreeMap;
    let inv = "inventories/example-production.toml";
    let ev = match evaluate(&repo().join(inv), &FsTree, &LoadOptions::default()) {
        Ok(ev) => ev,
        Err(f) => panic!("{}", f.render()),
    };
    let facts: BTreeMap<String, ActualHost> = ev
        .state
        .hosts
        .keys()
        .map(|h| (h.clone(), ActualHost::default()))
        .collect();
    let plan = provision::plan::Plan::decide(&ev.state, &facts, Vec::new());
    provision::plan::report::report(inv, &plan, &ev.state, &facts, &ev.cloud.secrets)
}

/// What `apply` shows of a plan (offline): the hosts grouped, with their roles and
/// counts, every file's path with its line counts, and not one line of a diff; the full
/// text (`apply --diff`, plan.txt) has the diffs.
#[test]
fn apply_shows_the_plan_grouped_with_counts_and_no_diff() {
    let report = first_apply();
    let short = provision::diff::format::summary(&report);
    let full = provision::diff::format::text(&report);
    let (s_lines, f_lines) = (short.lines().count(), full.lines().count());
    eprintln!("a first apply of the production example: summary {s_lines} lines, full text {f_lines} lines");
    assert!(s_lines < 200 && f_lines > 10_000, "{s_lines} {f_lines}");
    // Grouped by the hosts whose changes are the same, with their role and counts
    // (singular and plural).
    for group in [
        "\nCompute (20 hosts: overcloud-novacompute-[0-19]): 560 files to write, 220 directories to fix, 120 containers to create, 120 units to enable\n",
        "\nController (1 host: overcloud-controller-0): 151 files to write, 33 directories to fix, 23 tasks to run, 27 containers to create, 27 units to enable\n",
        "\nController (2 hosts: overcloud-controller-[1-2]): ",
        "\nCephStorage (3 hosts: overcloud-cephstorage-[0-2]): ",
    ] {
        assert!(short.contains(group), "{group} in {short}");
    }
    // Each path with the lines it adds, a directory with its mode and owner.
    let nova = &first_apply_state().hosts["overcloud-novacompute-0"].files
        ["/etc/overcloud/nova_compute/nova.conf"];
    let line = format!(
        "\n  + /etc/overcloud/nova_compute/nova.conf  +{}\n",
        nova.content.lines().count()
    );
    assert!(short.contains(&line), "{line} in {short}");
    assert!(short.contains("\n  + /run/openvswitch/  0755 root:root\n"));
    assert!(short.contains("\n  containers: create neutron_ovs_agent, nova_compute, nova_libvirt, openvswitch_db, openvswitch_vswitchd, rsyslog\n"));
    assert!(
        short.contains("  ... and 159 more paths (the full plan lists every one, with its diff)\n")
    );
    // Not one line of a diff: every line that begins with a sign names a path.
    for l in short.lines() {
        let t = l.trim_start();
        assert!(
            !t.starts_with("@@") && !t.starts_with("+++") && !t.starts_with("---"),
            "{l}"
        );
        if let Some(rest) = t.strip_prefix(['+', '-', '~']) {
            assert!(
                rest.starts_with(" /") || rest.starts_with(" host "),
                "a diff line: {l}"
            );
        }
    }
    assert!(full.contains("\n  +[DEFAULT]\n") && !short.contains("[DEFAULT]"));
    // It ends as the full text does, in apply's words.
    assert_eq!(short.lines().last(), full.lines().last());
    assert!(short.trim_end().ends_with("on 27 of 27 hosts."), "{short}");
}

fn first_apply_state() -> provision::state::DesiredState {
    match evaluate(
        &repo().join("inventories/example-production.toml"),
        &FsTree,
        &LoadOptions::default(),
    ) {
        Ok(ev) => ev.state,
        Err(f) => panic!("{}", f.render()),
    }
}
