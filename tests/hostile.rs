//! Hostile inventories and catalogues (issue 13): every value that could escape into
//! another file, path, section or command is refused with a located error, or lands
//! harmlessly, checked in the output's own format. The cases start from copies of the
//! repository's real inventories and catalogue (in memory, tests/common).
//! (Shell, Python and JSON templates with hostile `vars`: tests/hostile_templates.rs.)

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const LAB: &str = "inventories/lab.toml";
const SECRETS: &str = "inventories/lab.secrets.toml";

/// The error block of `message`, which must be located at `location` and give advice.
fn refused(tree: &provision::source::MemoryTree, inv: &str, message: &str, location: &str) {
    let (_, report) = errors(tree, inv);
    let block = report
        .split("\nerror: ")
        .find(|b| b.contains(message))
        .unwrap_or_else(|| panic!("no error `{message}` in:\n{report}"));
    assert!(
        block.contains(&format!("--> {location}\n")),
        "`{message}` not located at {location}:\n{block}"
    );
    assert!(block.contains("= help: "), "no advice:\n{block}");
}

/// `path:line:col` of the last occurrence of `needle` (what a test appended).
fn at_last(tree: &provision::source::MemoryTree, path: &str, needle: &str) -> String {
    let n = read(tree, path).matches(needle).count();
    at_nth(tree, path, needle, n - 1)
}

/// The lab inventory with `from` replaced by `to`.
fn lab_with(from: &str, to: &str) -> provision::source::MemoryTree {
    let mut tree = repo_tree();
    edit(&mut tree, LAB, from, to);
    tree
}

#[test]
fn names_that_are_not_names_are_refused_where_they_are_written() {
    for (from, to, message) in [
        (
            "name = \"lab-undercloud\"",
            "name = \"/tmp/x\"",
            "undercloud name `/tmp/x` is not valid",
        ),
        (
            "name = \"lab-undercloud\"",
            "name = \"../../../tmp/x\"",
            "undercloud name `../../../tmp/x` is not valid",
        ),
        (
            "name = \"lab-undercloud\"",
            "name = \"/\"",
            "undercloud name `/` is not valid",
        ),
        (
            "name = \"lab\"",
            "name = \"../../../../tmp/x\"",
            "cloud name `../../../../tmp/x` is not valid",
        ),
        (
            "name = \"lab\"",
            "name = \"lab\\nimport os; os.system('id')\"",
            "cloud name `lab\\nimport os; os.system(\\'id\\')` is not valid",
        ),
        (
            "domain = \"lab.test\"",
            "domain = \"lab.test$(touch /tmp/p)\"",
            "domain `lab.test$(touch /tmp/p)` is not valid",
        ),
        (
            "domain = \"lab.test\"",
            "domain = \"lab.test\\naddress=/#/6.6.6.6\"",
            "domain `lab.test\\naddress=/#/6.6.6.6` is not valid",
        ),
        (
            "[networks.storage_mgmt]",
            "[networks.\"storage mgmt/..\"]",
            "network name `storage mgmt/..` is not valid",
        ),
    ] {
        let tree = lab_with(from, to);
        let needle = format!("\"{}\"", to.split('"').nth(1).unwrap());
        refused(&tree, LAB, message, &at(&tree, LAB, &needle));
    }
    // A role name is a file name under roles/: `../x` is refused before any lookup.
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "[roles.Networker]",
        "[roles.\"../inventories/lab\"]",
    );
    refused(
        &tree,
        LAB,
        "role name `../inventories/lab` is not valid",
        &at(&tree, LAB, "\"../inventories/lab\""),
    );
    // A node's name.
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "ctlplane_ip = \"127.0.10.16\"",
        "ctlplane_ip = \"127.0.10.16\"\nname = \"net work\"",
    );
    refused(
        &tree,
        LAB,
        "`net work` is not a valid host name",
        &at(&tree, LAB, "\"net work\""),
    );
}

#[test]
fn a_service_folder_that_is_not_a_name_is_refused() {
    let mut tree = repo_tree();
    let manifest = read(&tree, "templates/memcached/service.toml");
    tree.insert("templates/mem cached/service.toml", manifest);
    let (_, report) = errors(&tree, LAB);
    assert!(
        report.contains("service name `mem cached` is not valid")
            && report.contains("--> templates/mem cached/service.toml"),
        "{report}"
    );
}

#[test]
fn destinations_stay_under_their_roots() {
    let svc = "templates/memcached/service.toml";
    let tree0 = repo_tree();
    let text = read(&tree0, svc);
    let dest = text
        .lines()
        .find_map(|l| l.strip_prefix("dest = \""))
        .map(|d| d.trim_end_matches('"').to_string());
    for (bad, why) in [
        (
            "/etc/overcloud/../../../../../tmp/f",
            "is not a normalized path",
        ),
        (
            "/etc/passwd",
            "is outside the folders a overcloud service may write",
        ),
        ("/etc/overcloud/memcached/a b", "holds ' ': paths may hold"),
        ("etc/overcloud/memcached/x", "is not an absolute path"),
    ] {
        let mut tree = repo_tree();
        match &dest {
            Some(d) => edit(
                &mut tree,
                svc,
                &format!("dest = \"{d}\""),
                &format!("dest = \"{bad}\""),
            ),
            None => {
                let t =
                    read(&tree, svc) + &format!("\n[[files]]\nsrc = \"x.j2\"\ndest = \"{bad}\"\n");
                tree.insert(svc, t);
                tree.insert("templates/memcached/x.j2", "x\n".to_string());
            }
        }
        refused(&tree, LAB, why, &at(&tree, svc, &format!("\"{bad}\"")));
    }
}

#[test]
fn ini_values_keys_and_sections_cannot_change_the_file() {
    // A value with a newline: refused where it is written.
    let add = |extra: &str| {
        let mut tree = repo_tree();
        let text = read(&tree, LAB) + extra;
        tree.insert(LAB, text);
        tree
    };
    let tree = add("\n[config.nova.DEFAULT]\nhost = \"x\\n[DEFAULT]\\nfoo = bar\\n[evil]\"\n");
    refused(
        &tree,
        LAB,
        "the value of [DEFAULT] host holds '\\n'",
        &at_last(&tree, LAB, "\"x\\n"),
    );
    let tree = add("\n[config.nova.DEFAULT]\n\"a\\nb\" = 1\n");
    refused(
        &tree,
        LAB,
        "INI option name `a\\nb` is not valid",
        &at_last(&tree, LAB, "1\n"),
    );
    let tree = add("\n[config.nova.DEFAULT]\n\"a = b\" = 1\n");
    refused(
        &tree,
        LAB,
        "INI option name `a = b` is not valid",
        &at_last(&tree, LAB, "1\n"),
    );
    let tree = add("\n[config.nova.\"DEFAULT]\\n[evil\"]\nx = 1\n");
    refused(
        &tree,
        LAB,
        "INI section name `DEFAULT]\\n[evil` is not valid",
        &at_last(&tree, LAB, "1\n"),
    );

    // Odd printable characters land on their line, as data: a real INI parser finds
    // exactly the expected sections and the value byte for byte.
    let odd = "a=b;c#d [e] %(x)s 'q' \\\"";
    let tree = add(&format!("\n[config.nova.DEFAULT]\nhost = \"{odd}\"\n"));
    let ev = eval(&tree, LAB).unwrap_or_else(|f| panic!("{}", f.render()));
    let nova = ev.state.hosts["lab-novacompute-0"].files["/etc/overcloud/nova_compute/nova.conf"]
        .content
        .clone();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nova.conf");
    std::fs::write(&p, &nova).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import configparser,json,sys\n\
             c=configparser.RawConfigParser(strict=False, interpolation=None)\n\
             c.read(sys.argv[1])\n\
             print(json.dumps({'sections': c.sections(), 'host': c.get('DEFAULT','host')}))",
        ])
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["host"], odd.replace("\\\"", "\""));
    let mut expected: Vec<String> = nova
        .lines()
        .filter(|l| l.starts_with('[') && *l != "[DEFAULT]")
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').to_string())
        .collect();
    expected.sort();
    let mut got: Vec<String> = parsed["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(got, expected);
    assert!(!got
        .iter()
        .any(|s| s.contains("evil") || s.contains('e') && s.len() == 1));
}

#[test]
fn unknown_override_targets_are_refused() {
    let mut tree = repo_tree();
    let text = read(&tree, LAB) + "\n[config.novaa.DEFAULT]\ncpu_allocation_ratio = 2.0\n";
    tree.insert(LAB, text);
    refused(
        &tree,
        LAB,
        "[config] overrides `novaa`, which is neither an INI file nor a service of the catalogue",
        &at_last(&tree, LAB, "2.0"),
    );
    let (_, report) = errors(&tree, LAB);
    assert!(report.contains("did you mean `nova`"), "{report}");
    // At a role's level too.
    let tree = lab_with(
        "[roles.Compute.config.nova_compute.DEFAULT]\n",
        "[roles.Compute.config.nova_computee.DEFAULT]\n",
    );
    let (_, report) = errors(&tree, LAB);
    assert!(
        report.contains("[roles.Compute.config] overrides `nova_computee`"),
        "{report}"
    );
}

#[test]
fn a_secret_lands_only_in_files_of_services_that_declare_it() {
    // The RabbitMQ password copied into a variable that ceph.conf renders.
    let mut tree = repo_tree();
    let password = read(&tree, SECRETS)
        .lines()
        .find_map(|l| l.strip_prefix("rabbitmq_password = \""))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap();
    let text =
        read(&tree, LAB).replace("[vars]\n", &format!("[vars]\nceph_fsid = \"{password}\"\n"));
    tree.insert(LAB, text);
    let (_, report) = errors(&tree, LAB);
    assert!(
        report.contains("/etc/overcloud/ceph_mon/ceph.conf of service `ceph_mon` on `lab-controller-0` holds the value of secret `rabbitmq_password`, which the service does not declare"),
        "{report}"
    );
    assert!(!report.contains(&password), "the error shows the secret");

    // A file that holds a declared secret must not be readable by every user.
    let svc = "templates/ceph_mon/service.toml";
    let mut tree = repo_tree();
    edit(
        &mut tree,
        svc,
        "dest = \"/etc/overcloud/ceph_mon/ceph.keyring\"\ncontainer_path = \"/etc/ceph/ceph.keyring\"\nmode = \"0600\"",
        "dest = \"/etc/overcloud/ceph_mon/ceph.keyring\"\ncontainer_path = \"/etc/ceph/ceph.keyring\"\nmode = \"0644\"",
    );
    let (_, report) = errors(&tree, LAB);
    assert!(
        report.contains("/etc/overcloud/ceph_mon/ceph.keyring of service `ceph_mon` holds secrets, but its mode 0644 lets every user of the host read it"),
        "{report}"
    );
}

/// Every entry under `dir`, recursively, relative to it.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn render_writes_nowhere_but_under_its_folder() {
    use provision::state::{DesiredFile, DesiredState, FileKind, HostState};
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let file = |path: &str| DesiredFile {
        path: path.into(),
        content: "x\n".into(),
        mode: 0o644,
        owner: "root".into(),
        group: "root".into(),
        service: "s".into(),
        kind: FileKind::Template {
            template: "t.j2".into(),
        },
        secret: false,
    };
    // What validation refuses, handed to the writer anyway: nothing at all is written.
    for (host, path) in [
        ("../escaped", "/etc/x"),
        ("/", "/etc/logrotate.d/provision"),
        ("..", "/x"),
        ("h", "/etc/overcloud/../../../escaped"),
        ("h", "/../escaped"),
        ("a/b", "/x"),
    ] {
        let mut state = DesiredState::default();
        let mut hs = HostState {
            name: host.into(),
            ..Default::default()
        };
        hs.files.insert(path.into(), file(path));
        state.hosts.insert(host.into(), hs);
        let secrets = provision::inventory::Secrets::default();
        let r = provision::render::output::write(&out, "c", &state, &secrets);
        assert!(r.is_err(), "{host} {path}");
        assert!(
            listing(work.path()).is_empty(),
            "{host} {path}: {:?}",
            listing(work.path())
        );
    }

    // A real render: everything under the folder, nothing beside it.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("render");
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["render", LAB, "--out"])
        .arg(&target)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all = listing(dir.path());
    assert!(all.iter().all(|p| p.starts_with("render")), "{all:?}");
    let hosts: BTreeMap<String, ()> = std::fs::read_dir(&target)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), ()))
        .collect();
    assert_eq!(hosts.len(), 8, "{hosts:?}"); // 7 hosts and manifest.json
}
