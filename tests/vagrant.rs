//! The Vagrant lab's files, without VMs: `vagrant validate` in a fresh clone, and the
//! inventory generator on a recorded `vagrant ssh-config` (tests/fixtures/vagrant/).
//! The VMs themselves run in vagrant/acceptance.sh (vagrant/README.md).

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn generator() -> Command {
    let mut c = Command::new("python3");
    c.arg(repo().join("vagrant/inventory.py"));
    // the settings of the file only: no VAGRANT_LAB_* of the caller's environment
    for (k, _) in std::env::vars() {
        if k.starts_with("VAGRANT_LAB_") {
            c.env_remove(k);
        }
    }
    c
}

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/vagrant/ssh-config")
}

#[test]
fn vagrant_validate_passes_in_a_fresh_clone() {
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone");
    let out = run(Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(repo())
        .arg(&clone));
    assert!(out.status.success(), "git clone: {}", text(&out.stderr));
    assert!(!clone.join("vagrant/.vagrant").exists());
    let home = dir.path().join("vagrant.d");
    let validate = |env: &[(&str, &str)]| {
        let mut c = Command::new("vagrant");
        c.arg("validate")
            .current_dir(clone.join("vagrant"))
            .env("VAGRANT_HOME", &home)
            .env("VAGRANT_CHECKPOINT_DISABLE", "1");
        for (k, v) in env {
            c.env(k, v);
        }
        run(&mut c)
    };
    let out = validate(&[]);
    assert!(
        out.status.success(),
        "vagrant validate in a fresh clone:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("Vagrantfile validated successfully"));
    // it created nothing the next `up` would trip over (the key is made by lab.sh up)
    assert!(!clone.join("vagrant/.vagrant/lab/id_ed25519").exists());

    // a bad setting is refused with the setting, its value and where it is read from
    let out = validate(&[("VAGRANT_LAB_NODES", "0")]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("VAGRANT_LAB_NODES='0': a whole number from 1 to 80 (vagrant/settings.env)"),
        "{err}"
    );
    let out = validate(&[("VAGRANT_LAB_ACCEL", "fast")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("VAGRANT_LAB_ACCEL=fast: auto, kvm or qemu"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_committed_inventory_is_the_generators_output_on_the_recorded_ssh_config() {
    let out = run(generator()
        .args(["generate", "--ssh-config"])
        .arg(fixture()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let committed = std::fs::read_to_string(repo().join("inventories/vagrant.toml")).unwrap();
    assert!(
        text(&out.stdout) == committed,
        "inventories/vagrant.toml differs from vagrant/inventory.py's output on \
         tests/fixtures/vagrant/ssh-config: it is generated, never edited (run vagrant/lab.sh up, \
         or vagrant/inventory.py generate --ssh-config tests/fixtures/vagrant/ssh-config --out \
         inventories/vagrant.toml)"
    );
    // the address and port are the recorded ssh-config's, the rest the settings'
    let recorded = std::fs::read_to_string(fixture()).unwrap();
    let hostname = recorded
        .lines()
        .find_map(|l| l.trim().strip_prefix("HostName "))
        .expect("HostName in the fixture");
    assert!(committed.contains(&format!("address = \"{hostname}\"")));
    assert!(committed.contains("ctlplane_ip = \"192.168.24.2\""));
    // the first inventory leaves the spare node out (acceptance.sh adds it)
    assert!(committed.contains("name = \"vagrant-compute-0\""));
    assert!(!committed.contains("vagrant-compute-1"));
    assert!(committed.contains(
        "system_id = \"2c0d5a52-7b6e-4f1a-9c3e-00000000000a\", username = \"admin\", \
         password = { secret = \"vagrant_bmc_password\" }"
    ));
}

#[test]
fn every_node_vm_of_the_settings_makes_an_inventory_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    // inside inventories/ so that its relative paths resolve as the committed one's do
    let inv = repo()
        .join("inventories")
        .join(format!(".vagrant-test-{}.toml", std::process::id()));
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let machines = run(generator().arg("machines"));
    assert!(machines.status.success());
    let names: Vec<String> = text(&machines.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("\"name\": \""))
        .map(|n| n.trim_end_matches("\",").to_string())
        .collect();
    assert_eq!(
        names,
        [
            "undercloud",
            "vagrant-controller-0",
            "vagrant-compute-0",
            "vagrant-compute-1"
        ]
    );
    for n in &names {
        let out = run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", n, "-f"])
            .arg(keys.join(n)));
        assert!(out.status.success());
    }
    let known = dir.path().join("known_hosts");
    let out = run(generator()
        .args(["generate", "--nodes", "3", "--ssh-config"])
        .arg(fixture())
        .arg("--out")
        .arg(&inv)
        .arg("--host-keys")
        .arg(&keys)
        .arg("--known-hosts")
        .arg(&known));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr)
        .contains("3 nodes (vagrant-controller-0, vagrant-compute-0, vagrant-compute-1)"));
    let validate = run(Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("validate")
        .arg(&inv));
    let _ = std::fs::remove_file(&inv);
    assert!(
        validate.status.success(),
        "provision validate of the generated inventory:\n{}{}",
        text(&validate.stdout),
        text(&validate.stderr)
    );
    // known_hosts: each machine's own key at each of its addresses
    let kh = std::fs::read_to_string(&known).unwrap();
    for (addr, name) in [
        ("192.168.24.2", "undercloud"),
        ("192.168.24.10", "vagrant-controller-0"),
        ("192.168.24.12", "vagrant-compute-1"),
    ] {
        let key = std::fs::read_to_string(keys.join(format!("{name}.pub"))).unwrap();
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        assert!(
            kh.lines().any(|l| l == format!("{addr} {}", key.join(" "))),
            "{addr} {name} in\n{kh}"
        );
    }
    assert_eq!(kh.lines().count(), 5, "{kh}");
}

#[test]
fn bad_settings_and_a_missing_undercloud_are_clear_errors() {
    let out = run(generator()
        .args(["generate", "--ssh-config", "-"])
        .stdin(std::process::Stdio::null()));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(
            "`vagrant ssh-config` has no HostName for undercloud: is it up? (vagrant/lab.sh up)"
        ),
        "{}",
        text(&out.stderr)
    );
    let out = run(generator()
        .env("VAGRANT_LAB_CTLPLANE", "192.168.300")
        .arg("machines"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("VAGRANT_LAB_CTLPLANE='192.168.300': the first three octets of a /24"),
        "{}",
        text(&out.stderr)
    );
    let out = run(generator()
        .args(["generate", "--nodes", "9", "--ssh-config"])
        .arg(fixture()));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--nodes 9: from 1 to 3 (VAGRANT_LAB_NODES)"));
}
