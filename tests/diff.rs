//! `provision diff`: a temporary git repository with two commits (a template change, a
//! role variable change, a node added, a secret rotated) and the exact hosts, files,
//! lines and grouping reported, with no secret value anywhere in any output format.

mod common;
use common::repo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=provision-test",
            "-c",
            "user.email=test@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` in {}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// A repository holding the real cloud at HEAD~1 and the four changes at HEAD.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    old_secret: String,
    new_secret: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cloud");
    for d in ["inventories", "roles", "templates"] {
        copy_dir(&repo().join(d), &root.join(d));
    }
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "base"]);
    let inv = root.join("inventories/example-production.toml");
    // 1. A template change: haproxy's keep-alive timeout.
    edit(
        &root.join("templates/haproxy/haproxy.cfg.j2"),
        "timeout http-keep-alive 10s",
        "timeout http-keep-alive 30s",
    );
    // 2. A role variable change: the computes' reserved memory (compute-0 pins its own).
    edit(&inv, "[roles.Compute.config.nova.DEFAULT]\n", "[roles.Compute.vars]\nnova_reserved_host_memory_mb = 2048\n\n[roles.Compute.config.nova.DEFAULT]\n");
    // 3. A node added.
    edit(
        &inv,
        "[roles.Compute]\ncount = 20",
        "[roles.Compute]\ncount = 21",
    );
    let mut text = std::fs::read_to_string(&inv).unwrap();
    text.push_str("\n[[nodes]]\nrole = \"Compute\"\nctlplane_ip = \"192.168.24.50\"\nmacs = [\"52:54:00:20:00:14\"]\nbmc = { driver = \"redfish\", address = \"10.100.0.50\", system_id = \"System.Embedded.1\", username = \"root\", password = { secret = \"bmc_password\" } }\n");
    std::fs::write(&inv, text).unwrap();
    // 4. A secret rotated.
    let secrets = root.join("inventories/example-production.secrets.toml");
    let old_secret = std::fs::read_to_string(&secrets)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("keystone_db_password = \"")
                .map(|v| v.trim_end_matches('"').to_string())
        })
        .unwrap();
    let new_secret = "rotated-Kq8/zz@x".to_string();
    edit(
        &secrets,
        &format!("keystone_db_password = \"{old_secret}\""),
        &format!("keystone_db_password = \"{new_secret}\""),
    );
    git(&root, &["commit", "-q", "-am", "four changes"]);
    Fixture {
        _dir: dir,
        root,
        old_secret,
        new_secret,
    }
}

/// `provision diff ARGS` in `cwd`, killed (and the test failed) past 120 s: the two
/// revisions render on two threads, and a side that stops must not leave the other
/// waiting.
fn diff(cwd: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("diff")
        .args(args)
        .current_dir(cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes on their own threads, so a large report cannot fill one.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out_pipe, &mut v).map(|_| v)
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err_pipe, &mut v).map(|_| v)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("provision diff {args:?} ran past 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    }
}

fn hosts(v: &serde_json::Value) -> Vec<String> {
    v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect()
}

fn computes(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!("overcloud-novacompute-{i}"))
        .collect()
}

#[test]
fn reports_exact_hosts_files_lines_and_groups() {
    let f = fixture();
    // From a subdirectory of the repository, with a path relative to it.
    let o = diff(
        &f.root.join("roles"),
        &[
            "../inventories/example-production.toml",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
            "--format",
            "json",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["format"], 1);
    assert_eq!(r["inventory"], "inventories/example-production.toml");

    // The node added, and nothing removed.
    let added: Vec<&str> = r["hosts_added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["overcloud-novacompute-20"]);
    assert_eq!(r["hosts_added"][0]["role"], "Compute");
    assert!(r["hosts_removed"].as_array().unwrap().is_empty());

    let files = r["files"].as_array().unwrap();
    let find = |path: &str| {
        files
            .iter()
            .filter(|c| c["path"] == path)
            .collect::<Vec<_>>()
    };

    // The template change: haproxy.cfg on the three controllers, once.
    let haproxy = find("/etc/overcloud/haproxy/haproxy.cfg");
    assert_eq!(haproxy.len(), 1, "{haproxy:?}");
    assert_eq!(
        hosts(haproxy[0]),
        [
            "overcloud-controller-0",
            "overcloud-controller-1",
            "overcloud-controller-2"
        ]
    );
    let d = haproxy[0]["diff"].as_str().unwrap();
    let changed: Vec<&str> = d
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        changed,
        [
            "-    timeout http-keep-alive 10s",
            "+    timeout http-keep-alive 30s"
        ]
    );

    // The role variable: one change for the 19 computes without their own override.
    let nova = find("/etc/overcloud/nova_compute/nova.conf");
    assert_eq!(nova.len(), 1, "{nova:?}");
    assert_eq!(hosts(nova[0]), computes(1..20));
    let d = nova[0]["diff"].as_str().unwrap();
    let changed: Vec<&str> = d
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        changed,
        [
            "-reserved_host_memory_mb = 4096",
            "+reserved_host_memory_mb = 2048"
        ]
    );
    assert_eq!(nova[0]["secret_changed"], false);

    // The rotated secret: keystone.conf on the controllers, as "(secret changed)" only.
    let keystone = find("/etc/overcloud/keystone/keystone.conf");
    assert_eq!(keystone.len(), 1);
    assert_eq!(
        hosts(keystone[0]),
        [
            "overcloud-controller-0",
            "overcloud-controller-1",
            "overcloud-controller-2"
        ]
    );
    assert_eq!(keystone[0]["secret_changed"], true);
    assert_eq!(keystone[0]["diff"], "");

    // Nothing else changed on the computes (a new compute changes no other compute).
    for c in files {
        for h in hosts(c) {
            if h.starts_with("overcloud-novacompute") {
                assert_eq!(c["path"], "/etc/overcloud/nova_compute/nova.conf", "{c}");
            }
        }
    }

    // Restarts: exactly the containers whose files changed, grouped.
    let containers = r["containers"].as_array().unwrap();
    let restart = |name: &str| {
        containers
            .iter()
            .find(|c| c["container"] == name && c["action"] == "restart")
            .map(hosts)
    };
    assert_eq!(restart("nova_compute"), Some(computes(1..20)));
    assert_eq!(restart("haproxy").map(|h| h.len()), Some(3));
    assert_eq!(restart("keystone").map(|h| h.len()), Some(3));
    assert!(restart("nova_libvirt").is_none());

    // Host groups: the 19 computes share one set of changes.
    let groups = r["host_groups"].as_array().unwrap();
    let g = groups
        .iter()
        .find(|g| hosts(g).contains(&"overcloud-novacompute-1".to_string()))
        .unwrap();
    assert_eq!(hosts(g), computes(1..20));
    assert_eq!(r["summary"]["hosts_added"], 1);
    // The summary counts per host what the groups list.
    let restarts: usize = containers
        .iter()
        .filter(|c| c["action"] == "restart")
        .map(|c| hosts(c).len())
        .sum();
    assert_eq!(r["summary"]["restarts"].as_u64(), Some(restarts as u64));
    assert_eq!(
        r["summary"]["secrets_changed"].as_u64(),
        Some(
            files
                .iter()
                .filter(|c| c["secret_changed"] == true)
                .map(|c| hosts(c).len() as u64)
                .sum()
        )
    );
}

#[test]
fn no_secret_value_in_any_format() {
    let f = fixture();
    for format in ["text", "markdown", "json"] {
        let o = diff(
            &f.root,
            &[
                "inventories/example-production.toml",
                "--base",
                "HEAD~1",
                "--head",
                "HEAD",
                "--format",
                format,
            ],
        );
        assert!(
            o.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let all_secrets =
            std::fs::read_to_string(f.root.join("inventories/example-production.secrets.toml"))
                .unwrap();
        let mut values: Vec<String> = all_secrets
            .lines()
            .filter_map(|l| {
                l.split_once(" = \"")
                    .map(|(_, v)| v.trim_end_matches('"').to_string())
            })
            .collect();
        values.push(f.old_secret.clone());
        values.push(f.new_secret.clone());
        values.push("rotated-Kq8%2Fzz%40x".into());
        for v in &values {
            assert!(
                !out.contains(v.as_str()),
                "{format} output shows a secret value"
            );
        }
        let marker = if format == "json" {
            "\"secret_changed\": true"
        } else {
            "(secret changed)"
        };
        assert!(out.contains(marker), "{format}");
    }
}

#[test]
fn text_and_markdown_show_each_change_once() {
    let f = fixture();
    let o = diff(
        &f.root,
        &[
            "inventories/example-production.toml",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.matches("~ /etc/overcloud/nova_compute/nova.conf")
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("on 19 hosts: overcloud-novacompute-[1-19]"),
        "{text}"
    );
    assert!(
        text.contains("+ host overcloud-novacompute-20 (Compute)"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("Diff: 1 host to add, 0 to remove,"),
        "{text}"
    );
    let o = diff(
        &f.root,
        &[
            "inventories/example-production.toml",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
            "--format",
            "markdown",
        ],
    );
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(md.contains("| hosts | files changed | restarts |"), "{md}");
    assert!(md.contains("| overcloud-novacompute-[1-19] (19) | `/etc/overcloud/nova_compute/nova.conf` | `nova_compute` |"), "{md}");
    assert!(
        md.contains("<details><summary>~ <code>/etc/overcloud/haproxy/haproxy.cfg</code>"),
        "{md}"
    );
    assert!(md.contains("```diff\n"), "{md}");
    assert!(md.len() < 65_536);
}

#[test]
fn no_changes_exits_zero() {
    let f = fixture();
    let o = diff(
        &f.root,
        &[
            "inventories/example-production.toml",
            "--base",
            "HEAD",
            "--head",
            "HEAD",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("No changes."));
    // The working tree is the default head: clean, so no changes either.
    let o = diff(
        &f.root,
        &[
            "inventories/example-production.toml",
            "--base",
            "HEAD",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_revisions_swapped_remove_the_added_host() {
    let f = fixture();
    let o = diff(
        &f.root,
        &[
            "inventories/example-production.toml",
            "--base",
            "HEAD",
            "--head",
            "HEAD~1",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["hosts_added"].as_array().unwrap().is_empty());
    let removed: Vec<&str> = r["hosts_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(removed, ["overcloud-novacompute-20"]);
    assert_eq!(r["hosts_removed"][0]["role"], "Compute");
    assert!(r["hosts_removed"][0]["files"].as_u64().unwrap() > 0);
    // The hosts of both revisions changed as the other way round, less the one removed.
    assert_eq!(r["summary"]["hosts_removed"], 1);
    assert!(r["summary"]["hosts_changed"].as_u64().unwrap() > 20);
}

#[test]
fn clear_errors_for_bad_revisions_and_trees() {
    let f = fixture();
    let o = diff(
        &f.root,
        &[
            "inventories/example-production.toml",
            "--base",
            "no-such-branch",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown revision `no-such-branch`"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // An inventory that exists only at head.
    std::fs::copy(
        f.root.join("inventories/lab.toml"),
        f.root.join("inventories/new.toml"),
    )
    .unwrap();
    git(&f.root, &["add", "-A"]);
    git(&f.root, &["commit", "-q", "-m", "new inventory"]);
    let o = diff(
        &f.root,
        &["inventories/new.toml", "--base", "HEAD~1", "--head", "HEAD"],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("inventories/new.toml does not exist at base revision HEAD~1"),
        "{err}"
    );

    // A template that fails to render at head only: named, with the revision.
    edit(
        &f.root.join("templates/memcached/service.toml"),
        "description = ",
        "command_typo = 1\ndescription = ",
    );
    git(&f.root, &["commit", "-q", "-am", "broken"]);
    let o = diff(
        &f.root,
        &[
            "inventories/example-production.toml",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("does not evaluate at head revision HEAD"),
        "{err}"
    );
    assert!(
        err.contains("--> templates/memcached/service.toml:1:1"),
        "{err}"
    );
    assert!(err.contains("unknown field `command_typo`"), "{err}");

    // The same revisions the other way round: the base fails, before rendering any
    // host, while the head renders its 27 (more than it may render ahead of the
    // comparison): the base's error, and no wait.
    let o = diff(
        &f.root,
        &[
            "inventories/example-production.toml",
            "--base",
            "HEAD",
            "--head",
            "HEAD~1",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("does not evaluate at base revision HEAD"),
        "{err}"
    );
    assert!(err.contains("unknown field `command_typo`"), "{err}");

    // Outside a repository.
    let outside = tempfile::tempdir().unwrap();
    let o = diff(outside.path(), &["x.toml", "--base", "HEAD"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not inside a git repository"));
}

/// The diff skips, on each host, the services whose inputs are the same at both
/// revisions (src/render/skip.rs): its report must be the one a comparison of the two
/// whole desired states gives. Beyond the fixture's four changes: a service added to
/// every compute at an earlier step (the units of the skipped containers there name it),
/// an override of the file neutron_server shares with the RPC server and the periodic
/// workers (they restart though their own files do not change), and the container units
/// turned off; each pair of revisions both ways.
#[test]
fn skipping_unchanged_services_reports_what_comparing_whole_states_does() {
    use provision::diff::revisions::Source;
    use provision::diff::{compare, Side};
    use provision::model::LoadOptions;

    let f = fixture();
    let inv = f.root.join("inventories/example-production.toml");
    edit(
        &f.root.join("roles/Compute.toml"),
        "services = [\"rsyslog\", ",
        "services = [\"memcached\", \"rsyslog\", ",
    );
    edit(
        &inv,
        "[roles.Compute.vars]\n",
        "[roles.Controller.config.neutron_server.DEFAULT]\napi_workers = 3\n\n[roles.Compute.vars]\n",
    );
    git(
        &f.root,
        &[
            "commit",
            "-q",
            "-am",
            "memcached on computes, neutron api_workers",
        ],
    );
    edit(&inv, "[cloud]\n", "[cloud]\ncontainer_units = \"none\"\n");
    git(&f.root, &["commit", "-q", "-am", "no units"]);

    let repo_ = provision::git::Repo::discover(&f.root).unwrap();
    let rel = PathBuf::from("inventories/example-production.toml");
    let mut opts = LoadOptions::from_process_env();
    opts.secrets_fallback = Some(f.root.clone());
    let whole = |rev: &str| {
        let r = repo_.resolve(rev).unwrap();
        let tree = repo_.tree(&r).unwrap();
        let e = provision::evaluate::evaluate(&rel, &tree, &opts)
            .unwrap_or_else(|e| panic!("{rev}: {}", e.render()));
        (Source::Commit(r).info(), e)
    };
    let revs = ["HEAD~3", "HEAD~2", "HEAD~1", "HEAD"];
    let states: Vec<_> = revs.iter().map(|r| whole(r)).collect();
    let mut restarts_seen = 0;
    for (b, h) in [(0, 1), (1, 2), (2, 3), (0, 3), (3, 0), (2, 1)] {
        let skipped =
            provision::diff::revisions::diff_revisions(&f.root, &rel, revs[b], Some(revs[h]))
                .unwrap();
        let side = |i: usize| Side {
            label: states[i].0.clone(),
            state: &states[i].1.state,
            secrets: &states[i].1.cloud.secrets,
        };
        let whole = compare(&rel.display().to_string(), &side(b), &side(h));
        if skipped != whole {
            // The first line where the two reports part, not two whole reports.
            let (a, w) = (format!("{skipped:#?}"), format!("{whole:#?}"));
            let at = a.lines().zip(w.lines()).position(|(x, y)| x != y);
            let line = |t: &str| at.and_then(|i| t.lines().nth(i)).unwrap_or("").to_string();
            panic!(
                "{} -> {}: the diff's report differs from the whole comparison's at line {at:?}:\n  diff:  {}\n  whole: {}",
                revs[b],
                revs[h],
                line(&a),
                line(&w)
            );
        }
        restarts_seen += whole.summary.restarts;
        if (b, h) == (1, 2) {
            // What the skip must not lose: the three neutron containers restart (two of
            // them for the shared file alone), and every compute's units change.
            for c in [
                "neutron_server",
                "neutron_rpc_server",
                "neutron_periodic_workers",
            ] {
                assert!(
                    whole
                        .containers
                        .iter()
                        .any(|x| x.container == c && x.hosts.len() == 3),
                    "{c}: {:?}",
                    whole.containers
                );
            }
            let unit = whole
                .files
                .iter()
                .find(|x| x.path == "/etc/systemd/system/provision-nova_compute.service")
                .expect("nova_compute's unit changes on the computes");
            assert_eq!(unit.hosts.len(), 21, "{unit:?}");
            assert!(
                unit.diff.contains("provision-memcached.service"),
                "{}",
                unit.diff
            );
        }
    }
    assert!(restarts_seen > 0);
}
