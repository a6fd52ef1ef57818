//! The SSH transport against the local lab's real OpenSSH servers (lab/lab.sh up; the
//! README's test command starts it). Undercloud 127.0.10.1, nodes 127.0.10.11-16.

mod common;
use common::repo;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use provision::evaluate::evaluate;
use provision::host::sessions::Sessions;
use provision::model::{Cloud, LoadOptions};
use provision::source::FsTree;
use provision::transport::{
    Credentials, HostKeyPolicy, Session, SshOptions, Target, TransportError,
};

const SECOND: Duration = Duration::from_secs(1);

fn lab() -> Cloud {
    let state = repo().join("lab/state");
    assert!(
        state.join("known_hosts").is_file(),
        "the lab is not running: start it with lab/lab.sh up (scripts/test.sh does)"
    );
    match evaluate(
        &repo().join("inventories/lab.toml"),
        &FsTree,
        &LoadOptions::default(),
    ) {
        Ok(ev) => ev.cloud,
        Err(f) => panic!("{}", f.render()),
    }
}

fn options(cloud: &Cloud) -> SshOptions {
    let mut o = SshOptions::from_cloud(cloud, false);
    o.use_agent = false;
    o
}

fn undercloud(cloud: &Cloud) -> Target {
    Target {
        name: cloud.undercloud.name.clone(),
        address: cloud.undercloud.address.clone(),
        port: 22,
    }
}

fn node(cloud: &Cloud, name: &str) -> Target {
    let h = cloud.host(name).unwrap();
    Target {
        name: h.name.clone(),
        address: h.ctlplane_ip.to_string(),
        port: 22,
    }
}

async fn connect_uc(cloud: &Cloud, opts: &SshOptions) -> Session {
    let creds = Credentials::load(opts).unwrap();
    Session::connect(&undercloud(cloud), opts, &creds)
        .await
        .unwrap()
}

/// The address the remote sshd answered on: proves which host a session reached.
async fn server_address(s: &Session) -> String {
    let out = s
        .exec("echo $SSH_CONNECTION", None, 10 * SECOND)
        .await
        .unwrap();
    out.stdout_text()
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn exec_returns_status_stdout_and_stderr() {
    let cloud = lab();
    let s = connect_uc(&cloud, &options(&cloud)).await;
    let out = s
        .exec("echo out; echo err >&2; exit 3", None, 10 * SECOND)
        .await
        .unwrap();
    assert_eq!(out.status, Some(3));
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr_text(), "err\n");
    // Input is fed to the command.
    let mut input: &[u8] = b"line one\nline two\n";
    let out = s
        .exec("wc -l", Some(&mut input), 10 * SECOND)
        .await
        .unwrap();
    assert_eq!(out.stdout_text().trim(), "2");
    // Many commands on the one connection.
    for i in 0..20 {
        let out = s
            .exec(&format!("echo {i}"), None, 10 * SECOND)
            .await
            .unwrap();
        assert_eq!(out.stdout_text().trim(), i.to_string());
    }
}

#[tokio::test]
async fn a_command_that_outlives_its_timeout_is_reported() {
    let cloud = lab();
    let s = connect_uc(&cloud, &options(&cloud)).await;
    let err = s
        .exec("sleep 5", None, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::CommandTimeout { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("lab-undercloud: `sleep 5` did not finish within 0.3 s"),
        "{err}"
    );
}

#[tokio::test]
async fn upload_is_atomic_with_mode_and_owner() {
    let cloud = lab();
    let s = connect_uc(&cloud, &options(&cloud)).await;
    let path = "/etc/overcloud/transport-upload/upload.conf";
    let content = b"[DEFAULT]\ndebug = true\n".repeat(1000);
    s.upload(path, &content, 0o640, "root", "42436", 30 * SECOND)
        .await
        .unwrap();
    let out = s
        .exec(
            &format!("stat -c '%a %U %g %s' {path}; sha256sum < {path}"),
            None,
            10 * SECOND,
        )
        .await
        .unwrap();
    let text = out.stdout_text();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("640 root 42436 {}", content.len()).as_str())
    );
    let local: String = sha2::Sha256::digest(&content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(lines.next().unwrap().starts_with(&local));
    // No temporary file is left beside it.
    let out = s
        .exec("ls -A /etc/overcloud/transport-upload", None, 10 * SECOND)
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "upload.conf\n");
    use sha2::Digest;
}

#[tokio::test]
async fn each_host_has_its_own_files() {
    let cloud = lab();
    let opts = options(&cloud);
    let creds = Credentials::load(&opts).unwrap();
    let uc = Session::connect(&undercloud(&cloud), &opts, &creds)
        .await
        .unwrap();
    let a = uc
        .connect_via(&node(&cloud, "lab-novacompute-0"), &opts, &creds)
        .await
        .unwrap();
    let b = uc
        .connect_via(&node(&cloud, "lab-novacompute-1"), &opts, &creds)
        .await
        .unwrap();
    a.upload(
        "/etc/overcloud/transport-own/who",
        b"compute-0\n",
        0o644,
        "root",
        "root",
        10 * SECOND,
    )
    .await
    .unwrap();
    let out = b
        .exec(
            "cat /etc/overcloud/transport-own/who 2>/dev/null || echo absent",
            None,
            10 * SECOND,
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "absent\n");
    assert!(
        !std::path::Path::new("/etc/overcloud/transport-own/who").exists(),
        "the lab's hosts write into this machine's /etc"
    );
}

#[tokio::test]
async fn nodes_are_reached_through_the_undercloud() {
    let cloud = lab();
    let opts = options(&cloud);
    let creds = Credentials::load(&opts).unwrap();
    let uc = Session::connect(&undercloud(&cloud), &opts, &creds)
        .await
        .unwrap();
    let n = uc
        .connect_via(&node(&cloud, "lab-controller-0"), &opts, &creds)
        .await
        .unwrap();
    assert_eq!(server_address(&n).await, "127.0.10.11");
    // The tunnel's far end is the undercloud: the node sees the connection come from it.
    let out = n.exec("echo $SSH_CLIENT", None, 10 * SECOND).await.unwrap();
    assert!(
        out.stdout_text().starts_with("127.0.10.1 ") || out.stdout_text().starts_with("127."),
        "{}",
        out.stdout_text()
    );
}

#[tokio::test]
async fn parallel_sessions_to_every_node() {
    let cloud = lab();
    let opts = options(&cloud);
    let creds = Credentials::load(&opts).unwrap();
    let names: Vec<String> = cloud.hosts.iter().map(|h| h.name.clone()).collect();
    let fleet = Sessions::connect(&cloud, &names, &opts, &creds, 16)
        .await
        .unwrap();
    assert_eq!(fleet.nodes.len(), 6);
    let mut tasks = tokio::task::JoinSet::new();
    for (name, s) in &fleet.nodes {
        let s: Arc<Session> = s.as_ref().unwrap_or_else(|e| panic!("{name}: {e}")).clone();
        let expected = cloud.host(name).unwrap().ctlplane_ip.to_string();
        tasks.spawn(async move {
            // Several commands at once on each connection, too.
            let (a, b) = tokio::join!(server_address(&s), server_address(&s));
            assert_eq!(a, expected);
            assert_eq!(b, expected);
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

fn temp_known_hosts(content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("known_hosts");
    std::fs::write(&p, content).unwrap();
    (dir, p)
}

#[tokio::test]
async fn a_changed_host_key_is_refused() {
    let cloud = lab();
    let mut opts = options(&cloud);
    // The undercloud's address, with a node's key: as if another machine answered there.
    let real = std::fs::read_to_string(repo().join("lab/state/known_hosts")).unwrap();
    let node_key = real
        .lines()
        .find(|l| l.starts_with("127.0.10.12 "))
        .unwrap()
        .splitn(2, ' ')
        .nth(1)
        .unwrap()
        .to_string();
    let (_d, kh) = temp_known_hosts(&format!("127.0.10.1 {node_key}\n"));
    opts.host_keys = HostKeyPolicy {
        known_hosts: kh.clone(),
        strict: true,
        accept_new: false,
    };
    let creds = Credentials::load(&opts).unwrap();
    let err = Session::connect(&undercloud(&cloud), &opts, &creds)
        .await
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        matches!(err, TransportError::HostKeyChanged { .. }),
        "{msg}"
    );
    assert!(
        msg.contains(
            "lab-undercloud (127.0.10.1:22): HOST KEY CHANGED: the host presented SHA256:"
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{}:1 expects SHA256:", kh.display())),
        "{msg}"
    );
}

#[tokio::test]
async fn an_unknown_host_key_is_refused_unless_first_contact_is_explicit() {
    let cloud = lab();
    let mut opts = options(&cloud);
    let (_d, kh) = temp_known_hosts("");
    opts.host_keys = HostKeyPolicy {
        known_hosts: kh.clone(),
        strict: true,
        accept_new: false,
    };
    let creds = Credentials::load(&opts).unwrap();
    let err = Session::connect(&undercloud(&cloud), &opts, &creds)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, TransportError::UnknownHostKey { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("is not in"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        "",
        "refusing must not record the key"
    );
    // Explicit first contact records it; afterwards strict checking accepts it.
    opts.host_keys.accept_new = true;
    Session::connect(&undercloud(&cloud), &opts, &creds)
        .await
        .unwrap();
    let learned = std::fs::read_to_string(&kh).unwrap();
    assert!(learned.contains("ssh-ed25519"), "{learned}");
    opts.host_keys.accept_new = false;
    Session::connect(&undercloud(&cloud), &opts, &creds)
        .await
        .unwrap();
}

#[tokio::test]
async fn hashed_known_hosts_entries_are_understood() {
    let cloud = lab();
    let mut opts = options(&cloud);
    let hashed = repo().join("lab/state/known_hosts.hashed");
    assert!(std::fs::read_to_string(&hashed).unwrap().starts_with("|1|"));
    opts.host_keys = HostKeyPolicy {
        known_hosts: hashed,
        strict: true,
        accept_new: false,
    };
    let creds = Credentials::load(&opts).unwrap();
    let uc = Session::connect(&undercloud(&cloud), &opts, &creds)
        .await
        .unwrap();
    let n = uc
        .connect_via(&node(&cloud, "lab-networker-0"), &opts, &creds)
        .await
        .unwrap();
    assert_eq!(server_address(&n).await, "127.0.10.16");
}

#[tokio::test]
async fn unreachable_hosts_are_reported() {
    let cloud = lab();
    let opts = options(&cloud);
    let creds = Credentials::load(&opts).unwrap();
    let nobody = Target {
        name: "ghost".into(),
        address: "127.0.10.250".into(),
        port: 22,
    };
    let err = Session::connect(&nobody, &opts, &creds)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TransportError::Refused { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("ghost (127.0.10.250:22): connection refused"),
        "{err}"
    );
    // Through the undercloud: its sshd cannot open the tunnel.
    let uc = Session::connect(&undercloud(&cloud), &opts, &creds)
        .await
        .unwrap();
    let err = uc.connect_via(&nobody, &opts, &creds).await.err().unwrap();
    assert!(matches!(err, TransportError::Jump { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("ghost: the jump host lab-undercloud refused to open a tunnel"),
        "{err}"
    );
    // A host that accepts TCP but never speaks SSH: the handshake times out.
    let silent = tokio::net::TcpListener::bind("127.0.10.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..4 {
            if let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        }
    });
    let mut quick = opts.clone();
    quick.connect_timeout = Duration::from_millis(700);
    let mute = Target {
        name: "mute".into(),
        address: "127.0.10.1".into(),
        port,
    };
    let err = Session::connect(&mute, &quick, &creds).await.err().unwrap();
    assert!(
        matches!(
            err,
            TransportError::Timeout {
                stage: "SSH handshake",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_connection_killed_mid_command_is_reported() {
    let cloud = lab();
    let s = connect_uc(&cloud, &options(&cloud)).await;
    // The shell's parent is the sshd process serving this connection: kill it.
    let err = s
        .exec("kill -9 $PPID; sleep 10", None, 20 * SECOND)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Disconnected { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("lab-undercloud: the connection was lost during"),
        "{err}"
    );
}

#[tokio::test]
async fn a_cut_transfer_leaves_no_half_written_file() {
    let cloud = lab();
    let opts = options(&cloud);
    let creds = Credentials::load(&opts).unwrap();
    let watcher = Session::connect(&undercloud(&cloud), &opts, &creds)
        .await
        .unwrap();
    let path = "/etc/overcloud/transport-cut/big.img";
    watcher
        .upload(
            path,
            b"the old content\n",
            0o600,
            "root",
            "root",
            10 * SECOND,
        )
        .await
        .unwrap();
    let uploader = Arc::new(
        Session::connect(&undercloud(&cloud), &opts, &creds)
            .await
            .unwrap(),
    );
    let big = vec![b'x'; 256 << 20];
    let up = uploader.clone();
    let task = tokio::spawn(async move {
        up.upload(path, &big, 0o600, "root", "root", 120 * SECOND)
            .await
    });
    // Wait (bounded) until the temporary file is being written, then cut the connection.
    let mut seen = false;
    for _ in 0..200 {
        let out = watcher
            .exec(
                "ls -A /etc/overcloud/transport-cut | grep -c '^.provision' || true",
                None,
                10 * SECOND,
            )
            .await
            .unwrap();
        if out.stdout_text().trim() != "0" {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "the transfer never started");
    let out = watcher.exec("pid=$(pgrep -f '^head -c 268435456' | head -n1); kill -9 $(ps -o ppid= -p $(ps -o ppid= -p $pid))", None, 10 * SECOND).await.unwrap();
    assert!(out.success(), "{}", out.stderr_text());
    let result = tokio::time::timeout(30 * SECOND, task)
        .await
        .expect("the cut upload did not return")
        .unwrap();
    assert!(result.is_err(), "a cut upload must fail");
    // The destination still holds the old content, and no temporary file remains.
    let mut clean = false;
    for _ in 0..100 {
        let out = watcher
            .exec(
                &format!(
                    "cat {path}; ls -A /etc/overcloud/transport-cut | grep '^.provision' || true"
                ),
                None,
                10 * SECOND,
            )
            .await
            .unwrap();
        assert!(
            out.stdout_text().starts_with("the old content\n"),
            "{}",
            out.stdout_text()
        );
        if out.stdout_text() == "the old content\n" {
            clean = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(clean, "a temporary file was left behind");
}

#[tokio::test]
async fn a_batch_of_files_arrives_whole_or_not_at_all() {
    use provision::transport::UploadFile;
    let cloud = lab();
    let opts = options(&cloud);
    let creds = Credentials::load(&opts).unwrap();
    let uc = Session::connect(&undercloud(&cloud), &opts, &creds)
        .await
        .unwrap();
    let s = uc
        .connect_via(&node(&cloud, "lab-novacompute-2"), &opts, &creds)
        .await
        .unwrap();
    let contents: Vec<(String, Vec<u8>)> = (0..150)
        .map(|i| {
            (
                format!("/etc/overcloud/batch-{}/file-{i}.conf", i % 3),
                format!("[DEFAULT]\nindex = {i}\n")
                    .repeat(i + 1)
                    .into_bytes(),
            )
        })
        .collect();
    let files: Vec<UploadFile> = contents
        .iter()
        .enumerate()
        .map(|(i, (p, c))| UploadFile {
            path: p,
            content: c,
            mode: if i % 2 == 0 { 0o640 } else { 0o600 },
            owner: "root",
            group: "42436",
        })
        .collect();
    s.upload_batch(&files, 60 * SECOND).await.unwrap();
    let out = s.exec("cd /etc/overcloud && for f in batch-*/*; do printf '%s %s ' \"$f\" \"$(stat -c '%a %g' \"$f\")\"; sha256sum < \"$f\" | cut -c1-64; done; ls -A batch-0 | grep -c '^.provision' || true", None, 30 * SECOND).await.unwrap();
    let text = out.stdout_text();
    for (i, (p, c)) in contents.iter().enumerate() {
        let sha: String =
            sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), c))
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
        let mode = if i % 2 == 0 { "640" } else { "600" };
        let line = format!(
            "{} {mode} 42436 {sha}",
            p.trim_start_matches("/etc/overcloud/")
        );
        assert!(text.contains(&line), "missing `{line}`");
    }
    assert_eq!(text.lines().last(), Some("0"), "temporary files left");
    // A batch that fails part-way (an owner the host does not have) replaces nothing.
    let bad = [
        UploadFile {
            path: "/etc/overcloud/batch-0/file-0.conf",
            content: b"replaced\n",
            mode: 0o640,
            owner: "root",
            group: "root",
        },
        UploadFile {
            path: "/etc/overcloud/batch-0/file-3.conf",
            content: b"replaced\n",
            mode: 0o640,
            owner: "no-such-user",
            group: "root",
        },
    ];
    let err = s.upload_batch(&bad, 30 * SECOND).await.unwrap_err();
    assert!(matches!(err, TransportError::Upload { .. }), "{err}");
    let out = s.exec("cat /etc/overcloud/batch-0/file-0.conf | head -n 2; ls -A /etc/overcloud/batch-0 | grep -c '^.provision' || true", None, 10 * SECOND).await.unwrap();
    assert_eq!(
        out.stdout_text(),
        "[DEFAULT]\nindex = 0\n0\n",
        "a failed batch changed a destination or left a temporary file"
    );
    s.exec("rm -rf /etc/overcloud/batch-*", None, 10 * SECOND)
        .await
        .unwrap();
}
