//! Helpers of the tests that run against the lab (tests/apply.rs, tests/cloud.rs):
//! copies of the lab's inventory, the provision binary, SSH sessions to the lab's hosts,
//! wiping and powering them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use provision::evaluate::{evaluate, Evaluation};
use provision::host::sessions::Sessions;
use provision::model::LoadOptions;
use provision::source::FsTree;
use provision::transport::{Credentials, Session, SshOptions};

use super::{repo, EMPTY_NODE, EMPTY_UNDERCLOUD};

/// One test at a time on the lab (an async mutex: held across awaits, and not poisoned
/// by a failed test).
pub static LAB: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    LAB.lock().await
}

pub const T: Duration = Duration::from_secs(120);

/// A copy of inventories/lab.toml in a temporary folder (with links to the repository's
/// templates, roles and lab keys), with `extra` appended: a variant of the lab to apply.
pub struct LabCopy {
    dir: tempfile::TempDir,
}

impl LabCopy {
    /// Every container and task a stand-in (`[lab] real_images = []`): what the tests
    /// of the engine need, fast, in the real images as in the busybox ones.
    pub fn new(extra: &str) -> LabCopy {
        let copy = LabCopy::real(extra);
        let inv = copy.inventory();
        let text = std::fs::read_to_string(&inv).unwrap();
        // The array, on one line or several (up to its closing bracket).
        if let Some(start) = text.find("\nreal_images = [") {
            let end = start + text[start..].find(']').expect("real_images closes") + 1;
            let text = format!("{}\nreal_images = []{}", &text[..start], &text[end..]);
            std::fs::write(&inv, text).unwrap();
        }
        copy
    }

    /// The lab's inventory as it is: the services of `[lab] real_images` run for real
    /// (the lab must be up with `--real-images`).
    pub fn real(extra: &str) -> LabCopy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("inventories")).unwrap();
        for link in ["templates", "lab"] {
            std::os::unix::fs::symlink(repo().join(link), dir.path().join(link)).unwrap();
        }
        // roles/ is copied: a test may take a service out of a role.
        std::fs::create_dir(dir.path().join("roles")).unwrap();
        for e in std::fs::read_dir(repo().join("roles")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.path().join("roles").join(e.file_name())).unwrap();
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
    pub fn inventory(&self) -> PathBuf {
        self.dir.path().join("inventories/lab.toml")
    }
    /// Replaces `from` (once) in the inventory.
    pub fn edit(&self, from: &str, to: &str) {
        self.edit_file("inventories/lab.toml", from, to)
    }
    /// Replaces `from` (once) in a file of the copy.
    pub fn edit_file(&self, path: &str, from: &str, to: &str) {
        let p = self.dir.path().join(path);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.matches(from).count(), 1, "{from}");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    }
    pub fn inv(&self) -> String {
        self.inventory().to_str().unwrap().to_string()
    }
}

pub fn load(inventory: &Path) -> Evaluation {
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
pub fn provision(args: &[&str]) -> (Output, String, String) {
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

pub async fn fleet(ev: &Evaluation) -> Sessions {
    let mut opts = SshOptions::from_cloud(&ev.cloud, false);
    opts.use_agent = false;
    let creds = Credentials::load(&opts).unwrap();
    let names: Vec<String> = ev.state.hosts.keys().cloned().collect();
    Sessions::connect(&ev.cloud, &names, &opts, &creds, 16)
        .await
        .unwrap()
}

/// The session of a host of the desired state: a node, or the undercloud.
pub fn node<'a>(f: &'a Sessions, name: &str) -> &'a Session {
    f.session(name)
        .unwrap_or_else(|| panic!("{name} is not connected"))
        .unwrap()
}

pub async fn sh(s: &Session, cmd: &str) -> String {
    let o = s.exec(cmd, None, T).await.unwrap();
    assert!(
        o.success(),
        "`{cmd}` on {}: {}",
        s.target.name,
        o.stderr_text()
    );
    o.stdout_text()
}

/// `ev` with the keys the undercloud keeps (after an apply generated them): the desired
/// state apply wrote.
pub async fn with_keys(ev: &Evaluation, f: &Sessions) -> Evaluation {
    let path = provision::keys::store_path(&ev.cloud.name);
    let text = sh(&f.undercloud, &format!("cat {path}")).await;
    let store = provision::keys::parse(&path, text.as_bytes())
        .unwrap()
        .expect("apply stored the keys");
    let mut ev = ev.clone();
    provision::keys::add_to(&mut ev.cloud, &mut ev.state, &store);
    ev
}

/// Empties every node and the undercloud's services: no managed container, no managed
/// file (the undercloud's lock and records stay).
pub async fn wipe(f: &Sessions) {
    for s in f.nodes.values() {
        sh(s.as_ref().unwrap(), EMPTY_NODE).await;
    }
    sh(&f.undercloud, EMPTY_UNDERCLOUD).await;
}

/// Presses a lab node's power button through its Redfish BMC (sushy-tools), the
/// password passed to curl on standard input, not on its command line.
pub fn power(ev: &Evaluation, system: &str, reset: &str) {
    use std::io::Write as _;
    let password = ev
        .cloud
        .secrets
        .get("lab_bmc_password")
        .unwrap()
        .expose()
        .to_string();
    let mut child = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-K",
            "-",
            "-H",
            "Content-Type: application/json",
            "-X",
            "POST",
            "-d",
            &format!("{{\"ResetType\": \"{reset}\"}}"),
            &format!(
                "http://127.0.10.1:8000/redfish/v1/Systems/{system}/Actions/ComputerSystem.Reset"
            ),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("user = \"admin:{password}\"\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "204",
        "{reset} {system}"
    );
}

/// Runs `ssh HOST CMD` through the lab's ssh_config: whether it exited 0 (`false`
/// when the host does not answer within 1 s).
pub fn ssh_ok(host: &str, cmd: &str) -> bool {
    Command::new("ssh")
        .args([
            "-F",
            "lab/state/ssh_config",
            "-o",
            "ConnectTimeout=1",
            host,
            cmd,
        ])
        .current_dir(repo())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Waits (at most 30 s) until `host` answers SSH (`up`) or stops answering (`!up`).
pub fn wait_ssh(host: &str, up: bool) {
    for _ in 0..120 {
        let ok = ssh_ok(host, "true");
        if ok == up {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "{host} did not {} within 30 s",
        if up { "come back" } else { "go down" }
    );
}

/// The suite's lab as a fresh one powered off (never a new lab: tests use the lab the
/// suite started): every node emptied while it answers, then powered off through its
/// Redfish BMC and waited for until it no longer answers SSH, and the undercloud's
/// record of provisioned nodes removed, so that the next apply brings every node up.
pub async fn power_everything_off() {
    let base = LabCopy::new("");
    let ev = load(&base.inventory());
    // Every node on first (a failed test may have left some off), to empty it.
    for h in &ev.cloud.hosts {
        power(&ev, h.bmc.system_id.as_deref().unwrap(), "On");
    }
    for h in &ev.cloud.hosts {
        wait_ssh(&h.name, true);
    }
    let f = fleet(&ev).await;
    wipe(&f).await;
    sh(&f.undercloud, "rm -f /var/lib/provision/lab.nodes.json").await;
    for h in &ev.cloud.hosts {
        power(&ev, h.bmc.system_id.as_deref().unwrap(), "ForceOff");
    }
    for h in &ev.cloud.hosts {
        wait_ssh(&h.name, false);
    }
}

/// Every event of a run's log.
pub fn events(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The counts of a plan's closing line or apply's summary by verb, in apply's words:
/// `6 files to write, 0 directories to fix, 3 containers to recreate, 1 to start on 3
/// of 7 hosts` -> {written: 6, fixed: 0, recreated: 3, started: 1, hosts: 3 of 7}.
pub fn counts(phrase: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let (phrase, on) = match phrase.rsplit_once(" on ") {
        Some((p, on)) if on.ends_with(" hosts") || on.ends_with(" host") => (p, Some(on)),
        _ => (phrase, None),
    };
    for part in phrase.split(", ") {
        let mut part = part.to_string();
        for (will, did) in [
            ("to provision", "provisioned"),
            ("to run", "run"),
            ("to write", "written"),
            ("to fix", "fixed"),
            ("to create", "created"),
            ("to recreate", "recreated"),
            ("to start", "started"),
            ("to remove", "removed"),
            ("to enable", "enabled"),
            ("to power off", "powered off"),
        ] {
            part = part.replace(will, did);
        }
        let (n, rest) = part.split_once(' ').unwrap_or_else(|| panic!("`{part}`"));
        let verb = [
            "powered off",
            "provisioned",
            "written",
            "fixed",
            "recreated",
            "created",
            "started",
            "removed",
            "enabled",
            "run",
        ]
        .iter()
        .find(|v| rest.ends_with(*v))
        .unwrap_or_else(|| panic!("no verb in `{part}`"));
        out.insert(verb.to_string(), n.parse().unwrap());
    }
    if let Some(on) = on {
        out.insert(format!("hosts ({on})"), 0);
    }
    out
}

/// Asserts that apply's summary says what the plan's closing line said, number for
/// number (`Plan: 6 files to write, ... on 3 of 7 hosts.` and `Apply complete: 6
/// files written, ... on 3 of 7 hosts, in 4.1 s.`), except what apply's notes say of
/// nodes that were not empty, as the plan assumed: those differences must be exactly
/// the notes'.
pub fn assert_plan_is_apply(plan_out: &str, apply_out: &str) {
    let plan = plan_out
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Plan: "))
        .unwrap_or_else(|| panic!("no closing line in the plan: {plan_out}"))
        .trim_end_matches('.');
    let done = apply_out
        .lines()
        .find_map(|l| l.strip_prefix("Apply complete: "))
        .unwrap_or_else(|| panic!("no summary in apply's output: {apply_out}"));
    let done = &done[..done.rfind(", in ").unwrap_or(done.len())];
    let mut expected = counts(plan);
    for note in apply_out
        .lines()
        .filter_map(|l| l.split_once("note: ").map(|(_, n)| n))
    {
        let Some((_, rest)) = note.split_once(": it needs ") else {
            continue;
        };
        let (needs, said) = rest
            .trim_end_matches(')')
            .split_once(" (the plan said ")
            .unwrap();
        for (verb, n) in counts(said) {
            *expected.entry(verb).or_default() -= n;
        }
        for (verb, n) in counts(needs) {
            *expected.entry(verb).or_default() += n;
        }
    }
    let mut got = counts(done);
    for m in [&mut expected, &mut got] {
        m.retain(|k, n| *n != 0 || k.starts_with("hosts") || k == "written" || k == "fixed");
    }
    assert_eq!(
        got, expected,
        "apply did not do what the plan said:\n{plan}\n{done}"
    );
}
