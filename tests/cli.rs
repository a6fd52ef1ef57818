//! The `provision` binary itself: exit codes, messages, the render folder.

mod common;
use common::repo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn provision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(args)
        .current_dir(repo())
        .env_remove("PROVISION_SECRET_RABBITMQ_PASSWORD")
        .output()
        .expect("run provision")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn secret_values(file: &str) -> Vec<String> {
    std::fs::read_to_string(repo().join(file))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// lab.toml with its relative paths made absolute, to be written anywhere.
fn lab_elsewhere() -> String {
    std::fs::read_to_string(repo().join("inventories/lab.toml"))
        .unwrap()
        .replace(
            "templates = \"../templates\"",
            &format!("templates = \"{}\"", repo().join("templates").display()),
        )
        .replace(
            "roles = \"../roles\"",
            &format!("roles = \"{}\"", repo().join("roles").display()),
        )
        .replace(
            "file = \"lab.secrets.toml\"",
            &format!(
                "file = \"{}\"",
                repo().join("inventories/lab.secrets.toml").display()
            ),
        )
}

#[test]
fn validate_accepts_every_example_inventory() {
    for inv in [
        "inventories/lab.toml",
        "inventories/vagrant.toml",
        "inventories/example-production.toml",
    ] {
        let o = provision(&["validate", inv]);
        assert!(o.status.success(), "{inv}: {}", text(&o.stderr));
        assert!(text(&o.stdout).contains(": valid."), "{}", text(&o.stdout));
    }
}

#[test]
fn validate_reports_located_errors_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let broken = lab_elsewhere()
        .replace("\"52:54:00:0a:00:0f\"", "\"52:54:00:0a:0f\"")
        .replace("role = \"Networker\"", "role = \"Netwroker\"");
    let inv = dir.path().join("broken.toml");
    std::fs::write(&inv, &broken).unwrap();
    let o = provision(&["validate", inv.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    let line_of = |needle: &str| broken[..broken.find(needle).unwrap()].matches('\n').count() + 1;
    assert!(
        err.contains(&format!("broken.toml:{}:9", line_of("\"52:54:00:0a:0f\""))),
        "{err}"
    );
    assert!(
        err.contains(&format!("broken.toml:{}:8", line_of("\"Netwroker\""))),
        "{err}"
    );
    assert!(err.contains("is not valid: 3 errors found"), "{err}");
    assert!(text(&o.stdout).is_empty());
}

#[test]
fn render_is_byte_identical_and_never_prints_secrets() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let inv = "inventories/example-production.toml";
    let oa = provision(&["render", inv, "--out", a.path().to_str().unwrap()]);
    assert!(oa.status.success(), "{}", text(&oa.stderr));
    let ob = provision(&["render", inv, "--out", b.path().to_str().unwrap()]);
    assert!(ob.status.success());
    let fa = files_under(a.path());
    assert_eq!(fa, files_under(b.path()));
    assert!(fa.len() > 500, "{} files", fa.len());
    for f in &fa {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{}",
            f.display()
        );
    }
    // Layout: DIR/<host>/<absolute path>.
    assert!(a
        .path()
        .join("overcloud-novacompute-0/etc/overcloud/nova_compute/nova.conf")
        .is_file());
    let secrets = secret_values("inventories/example-production.secrets.toml");
    let manifest = std::fs::read_to_string(a.path().join("manifest.json")).unwrap();
    let outputs = format!("{}{}{}", text(&oa.stdout), text(&oa.stderr), manifest);
    for s in &secrets {
        assert!(
            !outputs.contains(s.as_str()),
            "a secret value was printed or put in the manifest"
        );
    }
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let files = m["hosts"]["overcloud-novacompute-0"]["files"]
        .as_array()
        .unwrap();
    let nova = files
        .iter()
        .find(|f| f["path"] == "/etc/overcloud/nova_compute/nova.conf")
        .unwrap();
    assert_eq!(nova["kind"], "oslo");
    assert_eq!(nova["secret"], true);
    assert_eq!(nova["oslo"]["id"], "nova");
    assert!(
        nova["oslo"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "nova.conf"),
        "{nova}"
    );
    // Re-rendering into a previous render folder replaces it.
    let again = provision(&["render", inv, "--out", a.path().to_str().unwrap()]);
    assert!(again.status.success(), "{}", text(&again.stderr));
}

#[test]
fn render_refuses_a_folder_that_is_not_a_render() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
    let o = provision(&[
        "render",
        "inventories/lab.toml",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("refusing to write into it"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("precious.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn a_secret_from_the_environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args([
            "render",
            "inventories/lab.toml",
            "--out",
            dir.path().to_str().unwrap(),
        ])
        .current_dir(repo())
        .env(
            "PROVISION_SECRET_RABBITMQ_PASSWORD",
            "from-the-environment-42",
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!text(&o.stdout).contains("from-the-environment-42"));
    let nova = std::fs::read_to_string(
        dir.path()
            .join("lab-novacompute-0/etc/overcloud/nova_compute/nova.conf"),
    )
    .unwrap();
    assert!(
        nova.contains(":from-the-environment-42@"),
        "transport_url does not use the environment's secret"
    );
}

#[test]
fn turning_host_key_checking_off_is_loud() {
    let dir = tempfile::tempdir().unwrap();
    let insecure = lab_elsewhere().replace(
        "connect_timeout = 5\n",
        "connect_timeout = 5\nstrict_host_key_checking = false\n",
    );
    let inv = dir.path().join("insecure.toml");
    std::fs::write(&inv, insecure).unwrap();
    let o = provision(&["validate", inv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("warning: strict host-key checking is OFF"),
        "{}",
        text(&o.stderr)
    );
    // The default is strict: no warning.
    let o = provision(&["validate", "inventories/lab.toml"]);
    assert!(!text(&o.stderr).contains("warning"), "{}", text(&o.stderr));
}

#[test]
fn plan_summary_is_text_and_apply_takes_diff() {
    let o = provision(&[
        "plan",
        "inventories/example-production.toml",
        "--summary",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr)
            .contains("error: --summary is a text form: leave out --format, or give --format text"),
        "{}",
        text(&o.stderr)
    );
    // `--diff` is apply's: the run goes on to read the inventory (none here).
    let o = provision(&["apply", "no-such-inventory.toml", "--diff", "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(!err.contains("unexpected argument"), "{err}");
    assert!(err.contains("no-such-inventory.toml"), "{err}");
}
