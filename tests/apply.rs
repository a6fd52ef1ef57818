//! `provision apply` (files and directories) against the lab: from empty hosts to the
//! rendered state, checked file by file; a second apply writes nothing.

mod common;
use common::repo;

use std::time::Duration;

use provision::evaluate::{evaluate, Evaluation};
use provision::model::LoadOptions;
use provision::source::FsTree;
use provision::transport::{Credentials, Fleet, SshOptions};

const HOST: &str = "lab-controller-0";

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

#[tokio::test]
async fn apply_converges_files_exactly_and_is_idempotent() {
    let mut ev = lab();
    ev.state.hosts.retain(|n, _| n == HOST);
    let mut opts = SshOptions::from_cloud(&ev.cloud, false);
    opts.use_agent = false;
    let creds = Credentials::load(&opts).unwrap();
    let fleet = Fleet::connect(&ev.cloud, &[HOST.to_string()], &opts, &creds, 4)
        .await
        .unwrap();
    let s = fleet.nodes[HOST].as_ref().unwrap().clone();
    let t = Duration::from_secs(60);
    s.exec(
        "rm -rf /etc/overcloud/* /var/lib/overcloud/* /var/log/overcloud/*",
        None,
        t,
    )
    .await
    .unwrap();

    let results = provision::apply::apply_files(&ev.state, &fleet, 4, t).await;
    assert_eq!(results.len(), 1);
    assert!(results[0].error.is_none(), "{:?}", results[0].error);
    let desired = &ev.state.hosts[HOST];
    assert_eq!(results[0].files_written, desired.files.len());

    // Every file: content hash, mode, owner and group as rendered.
    let paths: Vec<String> = desired.files.keys().cloned().collect();
    let cmd = format!("for f in {}; do printf '%s %s %s\\n' \"$f\" \"$(stat -c '%a %u %g' \"$f\")\" \"$(sha256sum < \"$f\" | cut -c1-64)\"; done", paths.join(" "));
    let out = s.exec(&cmd, None, t).await.unwrap().stdout_text();
    for f in desired.files.values() {
        let id = |v: &str| {
            if v == "root" {
                "0".to_string()
            } else {
                v.to_string()
            }
        };
        let line = format!(
            "{} {:o} {} {} {}",
            f.path,
            f.mode,
            id(&f.owner),
            id(&f.group),
            f.sha256()
        );
        assert!(
            out.lines().any(|l| l == line),
            "{} differs from the render: want `{line}`",
            f.path
        );
    }
    // Directories, with their owners (log directories belong to the service's user).
    let nova_logs = desired
        .directories
        .iter()
        .find(|d| d.path == "/var/log/overcloud/nova_api")
        .unwrap();
    let out = s
        .exec("stat -c '%a %u' /var/log/overcloud/nova_api", None, t)
        .await
        .unwrap()
        .stdout_text();
    assert_eq!(
        out.trim(),
        format!(
            "{} {}",
            nova_logs.mode.trim_start_matches('0'),
            nova_logs.owner
        )
    );

    // A second apply writes nothing.
    let again = provision::apply::apply_files(&ev.state, &fleet, 4, t).await;
    assert_eq!(
        (again[0].files_written, again[0].directories_fixed),
        (0, 0),
        "{:?}",
        again[0].error
    );

    // A hand edit is put back, and only that file is written.
    let one = desired
        .files
        .values()
        .find(|f| f.path.ends_with("keystone.conf"))
        .unwrap();
    s.exec(&format!("echo '# hand edit' >> {}", one.path), None, t)
        .await
        .unwrap();
    let fixed = provision::apply::apply_files(&ev.state, &fleet, 4, t).await;
    assert_eq!(fixed[0].files_written, 1);
    s.exec(
        "rm -rf /etc/overcloud/* /var/lib/overcloud/* /var/log/overcloud/*",
        None,
        t,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn apply_without_a_terminal_needs_yes() {
    let ev = lab();
    let host = "lab-novacompute-1";
    let mut opts = SshOptions::from_cloud(&ev.cloud, false);
    opts.use_agent = false;
    let creds = Credentials::load(&opts).unwrap();
    let fleet = Fleet::connect(&ev.cloud, &[host.to_string()], &opts, &creds, 4)
        .await
        .unwrap();
    let s = fleet.nodes[host].as_ref().unwrap().clone();
    s.exec("rm -rf /etc/overcloud/*", None, Duration::from_secs(30))
        .await
        .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
        .args([
            "apply",
            "inventories/lab.toml",
            "--limit",
            "lab-novacompute-1",
        ])
        .current_dir(repo())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("+ /etc/overcloud/nova_compute/nova.conf"),
        "the plan is shown first: {out}"
    );
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("not applying without confirmation: pass --yes"),
        "{err}"
    );
    let left = s
        .exec(
            "find /etc/overcloud -type f | wc -l",
            None,
            Duration::from_secs(30),
        )
        .await
        .unwrap()
        .stdout_text();
    assert_eq!(left.trim(), "0", "apply wrote without confirmation");
}
