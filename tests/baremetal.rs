//! The bare-metal edge against real parts, with nothing from the lab (lab/lab.sh is
//! neither needed nor touched):
//!
//! - Redfish: a real sushy-emulator (sushy-tools 2.2.0, fake systems driver, basic
//!   authentication from an htpasswd file), started by each test on 127.0.20.1 and a
//!   free port, with a fresh state directory, and killed by PID at the end. Its venv is
//!   the lab's (`.cache/lab-venv`), created here if missing.
//! - IPMI: no IPMI BMC can run here (virtualbmc needs libvirt), so a MOCK ipmitool
//!   (tests/fixtures/fake-ipmitool) records its argv and environment.
//! - Introspection: the real command on this machine.
//!
//! Every call goes through `LocalRunner` (`sh -c`), as it would through the
//! undercloud's SSH session.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use provision::baremetal::introspect::{self, check_role};
use provision::baremetal::power::{node_line, summary};
use provision::baremetal::{
    ipmi, redfish, BmcError, BmcTarget, BootOverride, LocalRunner, PowerCommand, PowerOutcome,
    PowerReport, PowerState, Runner,
};
use provision::catalogue::Requirements;
use provision::diagnostics::Diagnostics;
use provision::inventory::spec::BmcDriver;
use provision::inventory::{SecretValue, Secrets};
use provision::model::{Bmc, Host};
use provision::source::{FsTree, SourceMap};

const BMC_ADDR: &str = "127.0.20.1";
const BMC_USER: &str = "admin";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A password no other process on the machine can have in its argv by chance.
fn unique_password(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}-\"q\\{}-{nanos}", std::process::id())
}

// ------------------------------------------------------------------ sushy-emulator

static VENV_LOCK: Mutex<()> = Mutex::new(());

/// The venv's sushy-emulator, installed with pip if the venv lacks it.
fn sushy_venv() -> PathBuf {
    let venv = repo().join(".cache/lab-venv");
    let _guard = VENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let bin = venv.join("bin/sushy-emulator");
    if !bin.exists() {
        let ok = Command::new("timeout")
            .args(["900", "sh", "-c"])
            .arg(format!(
                "python3 -m venv {0} && {0}/bin/pip install -q sushy-tools==2.2.0",
                venv.display()
            ))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok && bin.exists(),
            "cannot install sushy-tools into {}: run `python3 -m venv .cache/lab-venv && .cache/lab-venv/bin/pip install sushy-tools==2.2.0`",
            venv.display()
        );
    }
    venv
}

/// A free TCP port on `addr` (nothing listens on it once this returns).
fn free_port(addr: &str) -> u16 {
    TcpListener::bind((addr, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A sushy-emulator child process; killed (by its PID) and reaped on drop.
struct Sushy {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sushy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sushy {
    /// Two fake systems: `bm-0` powered on, `bm-1` powered off; user `admin` with
    /// `password`.
    fn start(password: &str) -> Sushy {
        let venv = sushy_venv();
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = dir.path().join("htpasswd");
        // bcrypt as lab/lablib.py writes it; the password goes on stdin.
        let mut hasher = Command::new(venv.join("bin/python"))
            .args([
                "-c",
                "import sys, bcrypt; print(bcrypt.hashpw(sys.stdin.buffer.read(), bcrypt.gensalt(rounds=5)).decode())",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        hasher
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        let out = hasher.wait_with_output().unwrap();
        assert!(out.status.success(), "bcrypt failed");
        let digest = String::from_utf8(out.stdout).unwrap();
        std::fs::write(&htpasswd, format!("{BMC_USER}:{}\n", digest.trim())).unwrap();

        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let port = free_port(BMC_ADDR);
        let conf = dir.path().join("sushy.conf");
        let system = |id: &str, power: &str, mac: &str| {
            format!(
                "{{'uuid': '{id}', 'name': '{id}', 'power_state': '{power}', 'external_notifier': False, 'nics': [{{'mac': '{mac}', 'ip': '127.0.20.100'}}]}}"
            )
        };
        std::fs::write(
            &conf,
            format!(
                "SUSHY_EMULATOR_LISTEN_IP = '{BMC_ADDR}'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\nSUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_STATE_DIR = '{}'\nSUSHY_EMULATOR_AUTH_FILE = '{}'\nSUSHY_EMULATOR_FAKE_SYSTEMS = [\n {},\n {},\n]\n",
                state.display(),
                htpasswd.display(),
                system("bm-0", "On", "52:54:00:14:00:00"),
                system("bm-1", "Off", "52:54:00:14:00:01"),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("sushy.log")).unwrap();
        let child = Command::new(venv.join("bin/sushy-emulator"))
            .arg("--config")
            .arg(&conf)
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("sushy-emulator");
        let mut s = Sushy { child, port, dir };
        s.wait_ready();
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sushy.log")).unwrap_or_default()
    }

    /// How many `ComputerSystem.Reset` POSTs sushy's access log shows for `system`.
    fn reset_posts(&self, system: &str) -> usize {
        let want = format!("POST /redfish/v1/Systems/{system}/Actions/ComputerSystem.Reset ");
        self.log().lines().filter(|l| l.contains(&want)).count()
    }

    /// The fake driver's record of `system`, read from its state file as it is now
    /// (`power_state`, and `pending_power` with the requested `power_state` until a GET
    /// after its apply time applies it). Read with the venv's python: the file is
    /// sqlite, the values pickled.
    fn system_record(&self, system: &str) -> serde_json::Value {
        let out = Command::new(sushy_venv().join("bin/python"))
            .args([
                "-c",
                "import sqlite3, pickle, json, sys\n\
                 c = sqlite3.connect(sys.argv[1])\n\
                 for row in c.execute('select * from cache'):\n    \
                     k, v = pickle.loads(row[0]), pickle.loads(row[1])\n    \
                     if k == sys.argv[2]: print(json.dumps(v))\n",
            ])
            .arg(self.dir.path().join("state/fakedriver.sqlite"))
            .arg(system)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "no record of {system} in sushy's state ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Waits (at most 30 s) until the port accepts connections.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sushy-emulator exited ({status}):\n{}", self.log());
            }
            if TcpStream::connect_timeout(
                &format!("{BMC_ADDR}:{}", self.port).parse().unwrap(),
                Duration::from_millis(200),
            )
            .is_ok()
            {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "sushy-emulator did not listen on {BMC_ADDR}:{} within 30 s:\n{}",
            self.port,
            self.log()
        );
    }
}

fn host(name: &str, bmc: Bmc) -> Host {
    Host {
        name: name.into(),
        fqdn: format!("{name}.lab.test"),
        role: "Compute".into(),
        index: 0,
        ctlplane_ip: "192.168.24.20".parse().unwrap(),
        macs: vec!["52:54:00:14:00:00".into()],
        addresses: BTreeMap::new(),
        services: vec![],
        profile: None,
        capabilities: BTreeMap::new(),
        root_device: None,
        bmc,
        vars: Default::default(),
        config: Default::default(),
    }
}

fn secrets(password: &str) -> Secrets {
    let env = vec![(
        "PROVISION_SECRET_BMC_PASSWORD".to_string(),
        password.to_string(),
    )];
    let mut diags = Diagnostics::default();
    Secrets::load(
        None,
        "PROVISION_SECRET_",
        &env,
        &FsTree,
        &SourceMap::default(),
        &mut diags,
    )
}

/// The target of a sushy system, built from a host as the provisioner builds it.
fn redfish_target(node: &str, port: u16, system_id: &str, password: &str) -> BmcTarget {
    let bmc = Bmc {
        driver: BmcDriver::Redfish,
        address: Some(BMC_ADDR.into()),
        port: Some(port),
        system_id: Some(system_id.into()),
        username: Some(BMC_USER.into()),
        password_secret: Some("bmc_password".into()),
        scheme: "http".into(),
        verify_tls: true,
    };
    BmcTarget::for_host(&host(node, bmc), &secrets(password)).unwrap()
}

/// Power on, off and reset take effect 1 to 11 s later in sushy: poll for 30 s.
const POWER_WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redfish_power_and_boot_against_sushy_emulator() {
    let password = unique_password("rf");
    let sushy = Sushy::start(&password);
    let runner = LocalRunner::new().named("undercloud-0");
    let on = redfish_target("overcloud-novacompute-0", sushy.port, "bm-0", &password);
    let off = redfish_target("overcloud-novacompute-1", sushy.port, "bm-1", &password);

    assert_eq!(on.power_state(&runner).await.unwrap(), PowerState::On);
    assert_eq!(off.power_state(&runner).await.unwrap(), PowerState::Off);

    // PXE once, read back. sushy stores the target and always reports the override as
    // "Continuous" (its libvirt heritage), so only the target is compared.
    let before = off.boot_override(&runner).await.unwrap();
    assert_eq!(before.target, "Hdd", "{before:?}");
    off.set_pxe_once(&runner).await.unwrap();
    let after = off.boot_override(&runner).await.unwrap();
    assert_eq!(after.target, "Pxe", "{after:?}");
    assert!(!after.enabled.is_empty());

    // Power on bm-1 while bm-0 is reset; both applied some seconds later.
    let cycle = async {
        off.power_on(&runner).await.unwrap();
        let reads = off
            .wait_power(&runner, PowerState::On, POWER_WAIT, POLL)
            .await
            .unwrap();
        off.power_off(&runner).await.unwrap();
        off.wait_power(&runner, PowerState::Off, POWER_WAIT, POLL)
            .await
            .unwrap();
        reads
    };
    let reset = async {
        on.reset(&runner).await.unwrap();
        // sushy turns a restarting system off at once, then on when it applies it.
        let right_after = on.power_state(&runner).await.unwrap();
        on.wait_power(&runner, PowerState::On, POWER_WAIT, POLL)
            .await
            .unwrap();
        right_after
    };
    let (reads, right_after) = tokio::join!(cycle, reset);
    assert!(reads >= 1);
    assert_eq!(right_after, PowerState::Off);
    assert_eq!(off.power_state(&runner).await.unwrap(), PowerState::Off);
    assert_eq!(on.power_state(&runner).await.unwrap(), PowerState::On);
    drop(sushy);
}

/// `power on` reads first and leaves an On system alone; `power cycle` restarts an On
/// system (ForceRestart) and powers on an Off one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redfish_power_on_leaves_on_alone_and_power_cycle_restarts() {
    let password = unique_password("rf-cycle");
    let sushy = Sushy::start(&password);
    let runner = LocalRunner::new().named("undercloud-0");
    let on = redfish_target("overcloud-controller-0", sushy.port, "bm-0", &password);
    let off = redfish_target("overcloud-novacompute-1", sushy.port, "bm-1", &password);
    let inv = "lab/inventory.toml";

    // power on of the On system: read, nothing POSTed, said plainly.
    let report = on.power_command(&runner, PowerCommand::On).await;
    let r = report.as_ref().unwrap();
    assert_eq!(
        r,
        &PowerReport {
            outcome: PowerOutcome::AlreadyOn {
                state: PowerState::On
            },
            state: PowerState::On
        }
    );
    assert_eq!(sushy.reset_posts("bm-0"), 0, "{}", sushy.log());
    let record = sushy.system_record("bm-0");
    assert_eq!(record["power_state"], "On", "{record}");
    assert!(record["pending_power"].is_null(), "{record}");
    let line = node_line(
        &on.node,
        "Controller",
        &on.endpoint(),
        &report,
        Duration::from_millis(3),
        inv,
    );
    assert!(
        line.contains(&format!(" power on           redfish http://127.0.20.1:{} system bm-0, already on: nothing pressed; if its OS does not answer, restart it with `provision nodes lab/inventory.toml power cycle --limit overcloud-controller-0`", sushy.port)),
        "{line}"
    );

    // power cycle of both: bm-0 (On) is restarted, bm-1 (Off) powered on. sushy's fake
    // driver records the requested reset until a GET after its apply time (1 to 11 s
    // later) applies it, so its record is read before any further GET.
    let restarted = on.power_cycle(&runner).await.unwrap();
    assert_eq!(
        restarted,
        PowerOutcome::Restarted {
            how: "ForceRestart"
        }
    );
    let record = sushy.system_record("bm-0");
    assert_eq!(
        record["pending_power"]["power_state"], "ForceRestart",
        "{record}"
    );
    assert_eq!(
        record["power_state"], "Off",
        "sushy turns a restarting system off at once: {record}"
    );
    let powered = off.power_cycle(&runner).await.unwrap();
    assert_eq!(
        powered,
        PowerOutcome::PoweredOn {
            was: PowerState::Off
        }
    );
    let record = sushy.system_record("bm-1");
    assert_eq!(record["pending_power"]["power_state"], "On", "{record}");
    assert_eq!(sushy.reset_posts("bm-0"), 1, "{}", sushy.log());
    assert_eq!(sushy.reset_posts("bm-1"), 1, "{}", sushy.log());
    let (a, b) = tokio::join!(
        on.wait_power(&runner, PowerState::On, POWER_WAIT, POLL),
        off.wait_power(&runner, PowerState::On, POWER_WAIT, POLL)
    );
    a.unwrap();
    b.unwrap();
    assert!(sushy.system_record("bm-0")["pending_power"].is_null());

    // Both on now: power on presses nothing on either, and the summary counts them and
    // gives the one command that restarts them.
    let a = on.power_command(&runner, PowerCommand::On).await;
    let b = off.power_command(&runner, PowerCommand::On).await;
    assert_eq!(sushy.reset_posts("bm-0"), 1, "{}", sushy.log());
    assert_eq!(sushy.reset_posts("bm-1"), 1, "{}", sushy.log());
    let lines = summary(
        PowerCommand::On,
        &[(on.node.as_str(), &a), (off.node.as_str(), &b)],
        Duration::from_millis(40),
        inv,
    );
    assert_eq!(
        lines,
        vec![
            "power on: 2 nodes already on (nothing pressed); 2 nodes in 0.04 s.".to_string(),
            "Nodes that are on but not answering need a restart, not power on: `provision nodes lab/inventory.toml power cycle --limit overcloud-controller-0,overcloud-novacompute-1`".to_string(),
        ]
    );

    // power off, then power on of the Off system: pressed, as before.
    off.power_off(&runner).await.unwrap();
    off.wait_power(&runner, PowerState::Off, POWER_WAIT, POLL)
        .await
        .unwrap();
    let r = off.power_command(&runner, PowerCommand::On).await.unwrap();
    assert_eq!(
        r.outcome,
        PowerOutcome::PoweredOn {
            was: PowerState::Off
        }
    );
    assert_eq!(sushy.reset_posts("bm-1"), 3, "{}", sushy.log());
    drop(sushy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redfish_errors_against_sushy_emulator() {
    let password = unique_password("rf-err");
    let sushy = Sushy::start(&password);
    let runner = LocalRunner::new().named("undercloud-0");

    let wrong = redfish_target(
        "overcloud-controller-2",
        sushy.port,
        "bm-0",
        "not-the-password",
    );
    let e = wrong.power_state(&runner).await.unwrap_err();
    assert!(
        matches!(e, BmcError::AuthFailed { ref node, .. } if node == "overcloud-controller-2"),
        "{e}"
    );
    assert_eq!(e.node(), "overcloud-controller-2");
    let msg = e.to_string();
    assert!(
        msg.starts_with("overcloud-controller-2: the BMC redfish http://127.0.20.1:"),
        "{msg}"
    );
    assert!(
        msg.contains("HTTP 401") && msg.contains("`bmc_password`"),
        "{msg}"
    );
    assert!(
        !msg.contains(&password) && !msg.contains("not-the-password"),
        "{msg}"
    );
    // A wrong password changes nothing either.
    assert!(matches!(
        wrong.power_off(&runner).await,
        Err(BmcError::AuthFailed { .. })
    ));

    let unknown = redfish_target(
        "overcloud-controller-1",
        sushy.port,
        "no-such-system",
        &password,
    );
    let e = unknown.power_state(&runner).await.unwrap_err();
    assert!(
        matches!(e, BmcError::UnknownSystem { ref node, ref system_id, .. } if node == "overcloud-controller-1" && system_id == "no-such-system"),
        "{e}"
    );
    assert!(matches!(
        unknown.set_pxe_once(&runner).await,
        Err(BmcError::UnknownSystem { .. })
    ));

    // Nothing listens on 127.0.20.2 (no test binds it): curl exit 7.
    let mut closed = redfish_target(
        "overcloud-controller-0",
        free_port("127.0.20.2"),
        "bm-0",
        &password,
    );
    closed.address = "127.0.20.2".into();
    let start = Instant::now();
    let e = closed.power_state(&runner).await.unwrap_err();
    assert!(
        matches!(e, BmcError::Unreachable { ref node, ref via, .. } if node == "overcloud-controller-0" && via == "undercloud-0"),
        "{e}"
    );
    assert!(e.to_string().contains("127.0.20.2"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(10));

    // The real system still answers: the errors above were the targets', not sushy's.
    let good = redfish_target("overcloud-controller-0", sushy.port, "bm-0", &password);
    assert_eq!(good.power_state(&runner).await.unwrap(), PowerState::On);
    drop(sushy);
}

/// A runner that records each command and its stdin, running it locally.
struct Recording {
    inner: LocalRunner,
    seen: Mutex<Vec<(String, Vec<u8>)>>,
}

impl Runner for Recording {
    fn run<'a>(
        &'a self,
        command: &'a str,
        stdin: &'a [u8],
        timeout: Duration,
    ) -> provision::baremetal::RunFuture<'a> {
        self.seen
            .lock()
            .unwrap()
            .push((command.to_string(), stdin.to_vec()));
        self.inner.run(command, stdin, timeout)
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
}

fn real_tool(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed"))
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redfish_password_is_in_no_argv() {
    let password = unique_password("rf-argv");
    let sushy = Sushy::start(&password);
    // A curl first on PATH that records every process's argv (its own is the one the
    // real curl gets, by exec) before running the real curl.
    let bin = tempfile::tempdir().unwrap();
    let snapshot = bin.path().join("argv-snapshot");
    write_script(
        &bin.path().join("curl"),
        &format!(
            "#!/bin/sh\n# MOCK wrapper of curl for tests/baremetal.rs: records argv, then execs the real curl\n{{ printf 'curl'; for a in \"$@\"; do printf ' [%s]' \"$a\"; done; echo; for f in /proc/[0-9]*/cmdline; do tr '\\000' ' ' <\"$f\" 2>/dev/null; echo; done; }} >>{}\nexec {} \"$@\"\n",
            snapshot.display(),
            real_tool("curl").display()
        ),
    );
    let runner = Recording {
        inner: LocalRunner::new().named("undercloud-0").with_env(
            "PATH",
            format!(
                "{}:{}",
                bin.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
        seen: Mutex::new(Vec::new()),
    };
    let t = redfish_target("overcloud-novacompute-1", sushy.port, "bm-1", &password);
    // Authenticated calls succeed, so the credentials did reach curl.
    assert_eq!(t.power_state(&runner).await.unwrap(), PowerState::Off);
    t.set_pxe_once(&runner).await.unwrap();
    t.power_off(&runner).await.unwrap();

    let seen = runner.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    let config = format!(
        "user = \"{BMC_USER}:{}\"\n",
        password.replace('\\', "\\\\").replace('"', "\\\"")
    );
    for (cmd, stdin) in &seen {
        assert!(
            cmd.starts_with(
                "curl -sS -K - -w '\\n%{http_code}' --max-time 20 --connect-timeout 5 -X "
            ),
            "{cmd}"
        );
        assert!(
            !cmd.contains(&password) && !cmd.contains("rf-argv"),
            "{cmd}"
        );
        assert_eq!(String::from_utf8_lossy(stdin), config);
    }
    let snap = std::fs::read_to_string(&snapshot).unwrap();
    assert_eq!(
        snap.lines().filter(|l| l.starts_with("curl [")).count(),
        3,
        "{snap}"
    );
    assert!(snap.lines().count() > 3, "no process argv recorded");
    assert!(
        !snap.contains("rf-argv"),
        "the password is in a process's argv:\n{snap}"
    );
    drop(sushy);
}

// -------------------------------------------------------------------------- IPMI

struct FakeIpmi {
    dir: tempfile::TempDir,
    bin: tempfile::TempDir,
}

impl FakeIpmi {
    fn new(password: &str) -> FakeIpmi {
        let dir = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        std::fs::copy(
            repo().join("tests/fixtures/fake-ipmitool"),
            bin.path().join("ipmitool"),
        )
        .unwrap();
        write_script(
            &bin.path().join("ipmitool"),
            &std::fs::read_to_string(bin.path().join("ipmitool")).unwrap(),
        );
        std::fs::write(dir.path().join("password"), password).unwrap();
        std::fs::write(dir.path().join("power"), "off\n").unwrap();
        std::fs::write(dir.path().join("bootdev"), "none\n").unwrap();
        FakeIpmi { dir, bin }
    }
    fn runner(&self) -> LocalRunner {
        LocalRunner::new()
            .named("undercloud-0")
            .with_env(
                "PATH",
                format!(
                    "{}:{}",
                    self.bin.path().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .with_env("FAKE_IPMITOOL_DIR", self.dir.path().display().to_string())
    }
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

fn ipmi_target(node: &str, password: &str) -> BmcTarget {
    let bmc = Bmc {
        driver: BmcDriver::Ipmi,
        address: Some("10.20.0.11".into()),
        port: Some(6230),
        system_id: None,
        username: Some(BMC_USER.into()),
        password_secret: Some("bmc_password".into()),
        scheme: "https".into(),
        verify_tls: true,
    };
    BmcTarget::for_host(&host(node, bmc), &secrets(password)).unwrap()
}

#[tokio::test]
async fn ipmi_through_mock_ipmitool() {
    let password = "ipmi-s3cret pw".to_string();
    let fake = FakeIpmi::new(&password);
    let runner = fake.runner();
    let t = ipmi_target("overcloud-cephstorage-0", &password);

    assert_eq!(t.power_state(&runner).await.unwrap(), PowerState::Off);
    assert_eq!(
        t.boot_override(&runner).await.unwrap(),
        BootOverride {
            target: "None".into(),
            enabled: "Disabled".into()
        }
    );
    t.set_pxe_once(&runner).await.unwrap();
    assert_eq!(
        t.boot_override(&runner).await.unwrap(),
        BootOverride {
            target: "Pxe".into(),
            enabled: "Once".into()
        }
    );
    t.power_on(&runner).await.unwrap();
    assert_eq!(t.power_state(&runner).await.unwrap(), PowerState::On);
    assert_eq!(
        t.wait_power(&runner, PowerState::On, Duration::from_secs(5), POLL)
            .await
            .unwrap(),
        1
    );
    t.reset(&runner).await.unwrap();
    t.power_off(&runner).await.unwrap();
    assert_eq!(t.power_state(&runner).await.unwrap(), PowerState::Off);

    let conn = "argv [-I] [lanplus] [-H] [10.20.0.11] [-p] [6230] [-U] [admin] [-E]";
    let want: Vec<String> = [
        "[chassis] [power] [status]",
        "[chassis] [bootparam] [get] [5]",
        "[chassis] [bootdev] [pxe]",
        "[chassis] [bootparam] [get] [5]",
        "[chassis] [power] [on]",
        "[chassis] [power] [status]",
        "[chassis] [power] [status]",
        "[chassis] [power] [reset]",
        "[chassis] [power] [off]",
        "[chassis] [power] [status]",
    ]
    .iter()
    .flat_map(|a| [format!("{conn} {a}"), "env IPMI_PASSWORD set".to_string()])
    .collect();
    assert_eq!(fake.read("calls.log").lines().collect::<Vec<_>>(), want);
    // The password reached ipmitool's environment, and no process's argv.
    assert_eq!(fake.read("env-password"), password);
    let snap = fake.read("argv-snapshot");
    assert!(
        snap.contains("ipmitool -I lanplus -H 10.20.0.11"),
        "the mock's own argv is missing"
    );
    assert!(
        !snap.contains("s3cret"),
        "the password is in a process's argv"
    );
}

/// `power on` of a chassis that is on runs only `power status`; `power cycle` runs
/// `chassis power cycle` on a chassis that is on and `power on` on one that is off (the
/// mock, as many BMCs, refuses to cycle a chassis that is off).
#[tokio::test]
async fn ipmi_power_on_and_cycle_through_mock_ipmitool() {
    let password = "ipmi-cyc1e pw".to_string();
    let fake = FakeIpmi::new(&password);
    let runner = fake.runner();
    let t = ipmi_target("overcloud-cephstorage-1", &password);

    assert_eq!(
        t.power_on_if_off(&runner).await.unwrap(),
        PowerOutcome::PoweredOn {
            was: PowerState::Off
        }
    );
    assert_eq!(
        t.power_on_if_off(&runner).await.unwrap(),
        PowerOutcome::AlreadyOn {
            state: PowerState::On
        }
    );
    let r = t.power_command(&runner, PowerCommand::Cycle).await.unwrap();
    assert_eq!(
        r,
        PowerReport {
            outcome: PowerOutcome::Restarted {
                how: "chassis power cycle"
            },
            state: PowerState::On
        }
    );
    std::fs::write(fake.dir.path().join("power"), "off\n").unwrap();
    assert_eq!(
        t.power_cycle(&runner).await.unwrap(),
        PowerOutcome::PoweredOn {
            was: PowerState::Off
        }
    );
    assert_eq!(fake.read("power"), "on\n");

    let conn = "argv [-I] [lanplus] [-H] [10.20.0.11] [-p] [6230] [-U] [admin] [-E]";
    let want: Vec<String> = [
        // power on, off: read, pressed
        "[chassis] [power] [status]",
        "[chassis] [power] [on]",
        // power on, on: read only
        "[chassis] [power] [status]",
        // power cycle, on: read, cycled, read after
        "[chassis] [power] [status]",
        "[chassis] [power] [cycle]",
        "[chassis] [power] [status]",
        // power cycle, off: read, powered on
        "[chassis] [power] [status]",
        "[chassis] [power] [on]",
    ]
    .iter()
    .flat_map(|a| [format!("{conn} {a}"), "env IPMI_PASSWORD set".to_string()])
    .collect();
    assert_eq!(fake.read("calls.log").lines().collect::<Vec<_>>(), want);
    assert_eq!(fake.read("env-password"), password);
    let snap = fake.read("argv-snapshot");
    assert!(snap.contains("ipmitool -I lanplus -H 10.20.0.11"), "{snap}");
    assert!(
        !snap.contains("cyc1e"),
        "the password is in a process's argv"
    );

    // The mock refuses to cycle a chassis that is off, as the BMC would: the error is
    // the BMC's, named.
    std::fs::write(fake.dir.path().join("power"), "off\n").unwrap();
    let e = ipmi::run_checked(&runner, &t, ipmi::Op::Cycle)
        .await
        .unwrap_err();
    assert!(
        matches!(e, BmcError::Protocol { ref node, .. } if node == "overcloud-cephstorage-1"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("`ipmitool chassis power cycle` failed (exit status 1)")
            && e.to_string()
                .contains("Command not supported in present state"),
        "{e}"
    );
}

#[tokio::test]
async fn ipmi_wrong_password_and_missing_tool() {
    let fake = FakeIpmi::new("the-right-one");
    let t = ipmi_target("overcloud-controller-1", "a-wrong-one");
    let e = t.power_state(&fake.runner()).await.unwrap_err();
    assert!(
        matches!(e, BmcError::AuthFailed { ref node, .. } if node == "overcloud-controller-1"),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("ipmi 10.20.0.11:6230")
            && msg.contains("Unable to establish IPMI v2 / RMCP+ session"),
        "{msg}"
    );
    assert!(matches!(
        t.power_on(&fake.runner()).await,
        Err(BmcError::AuthFailed { .. })
    ));
    assert_eq!(fake.read("power"), "off\n");

    // No ipmitool on the undercloud's PATH.
    let empty = tempfile::tempdir().unwrap();
    let runner = LocalRunner::new()
        .named("undercloud-0")
        .with_env("PATH", empty.path().display().to_string());
    let e = t.power_state(&runner).await.unwrap_err();
    assert!(
        matches!(e, BmcError::ToolMissing { ref tool, ref via, .. } if tool == "ipmitool" && via == "undercloud-0"),
        "{e}"
    );
}

#[test]
fn ipmi_command_carries_no_password() {
    let t = ipmi_target("n", "pw-in-stdin");
    let cmd = ipmi::command(&t, ipmi::Op::On);
    assert!(
        !cmd.contains("pw-in-stdin") && !cmd.contains(" -P ") && !cmd.contains("IPMI_PASSWORD=pw")
    );
    assert_eq!(ipmi::stdin(&t).unwrap(), b"pw-in-stdin\n");
    let r = redfish_target("n", 8000, "bm-0", "pw-in-stdin");
    for req in [
        redfish::Request::GetSystem,
        redfish::Request::SetPxeOnce,
        redfish::Request::Reset(redfish::ResetType::ForceRestart),
    ] {
        assert!(!redfish::command(&r, req).contains("pw-in-stdin"));
    }
}

#[test]
fn driver_none_needs_nothing() {
    let t =
        BmcTarget::for_host(&host("preprovisioned-0", Bmc::none()), &Secrets::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runner = LocalRunner::new();
    assert_eq!(
        rt.block_on(t.power_state(&runner)).unwrap(),
        PowerState::Unknown("no BMC".into())
    );
    let e = rt.block_on(t.power_on(&runner)).unwrap_err();
    assert!(matches!(e, BmcError::NoBmc { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("preprovisioned-0: no BMC to manage"),
        "{e}"
    );
    // SecretValue never shows in a target's Debug.
    let mut t2 = t.clone();
    t2.password = Some(SecretValue::new("hidden-value"));
    assert!(!format!("{t2:?}").contains("hidden-value"));
}

// ----------------------------------------------------------------- introspection

#[tokio::test]
async fn introspect_this_machine() {
    let runner = LocalRunner::new().named("this-machine");
    let inv = introspect::introspect(&runner).await.unwrap();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(inv.hostname, hostname.trim());
    assert!(inv.cpus >= 1);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(inv.memory_mb, kb / 1024);
    assert!(!inv.nics.contains_key("lo"));
    for (name, mac) in &inv.nics {
        let want = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).unwrap();
        assert_eq!(mac, &want.trim().to_ascii_lowercase());
    }

    // Requirements this machine meets, then ones it cannot.
    let macs: Vec<String> = inv.nics.values().take(1).cloned().collect();
    let easy = Requirements {
        memory_mb: 1,
        cpus: 1,
        disks: 0,
        disk_gb: 0,
    };
    assert_eq!(
        check_role(&inv, "Compute", &easy, &macs),
        Vec::<String>::new()
    );
    let hard = Requirements {
        memory_mb: 1 << 30,
        cpus: 100_000,
        disks: 1000,
        disk_gb: 1_000_000,
    };
    let problems = check_role(&inv, "Compute", &hard, &["52:54:00:0a:00:0c".into()]);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(
        problems[1].starts_with("memory ")
            && problems[1].ends_with("the Compute role needs 1073741824 MB")
    );
    assert!(problems[3].contains("none of its NICs has MAC 52:54:00:0a:00:0c from the inventory"));
}
