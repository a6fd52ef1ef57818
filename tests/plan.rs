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
        change.diff.contains("hidden: this file holds secrets"),
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
