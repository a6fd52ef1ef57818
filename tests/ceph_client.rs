//! The Ceph client side, rendered offline from inventories/example-production.toml:
//! every glance_api, cinder_volume and nova_compute container gets its own ceph.conf (the
//! cluster's fsid, the ceph_mon hosts' storage addresses) and the keyring of
//! client.openstack (the inventory's secret), readable by the service's group only; every
//! compute's nova_libvirt gets that key as the libvirt secret nova.conf names; no other
//! host or service gets any of it; `vars.ceph_enabled = false` writes none of it; the key
//! is never shown by a plan or a diff.

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};

use provision::evaluate::Evaluation;
use provision::facts::{ActualHost, ActualPath};
use provision::plan::Plan;
use provision::source::MemoryTree;
use provision::state::{ContainerDef, DesiredFile, HostState};

const PROD: &str = "inventories/example-production.toml";
const SECRETS: &str = "inventories/example-production.secrets.toml";
const KEY_NAME: &str = "ceph_client_openstack_key";
const UUID: &str = "4b5c8ad8-7a3c-4b1e-9d3e-3f0b6c2a8e51";

/// The services that use RBD, with the kolla gid their files are readable by.
const CLIENTS: [(&str, &str); 3] = [
    ("glance_api", "42415"),
    ("cinder_volume", "42407"),
    ("nova_compute", "42436"),
];

fn render(tree: &MemoryTree) -> Evaluation {
    match eval(tree, PROD) {
        Ok(ev) => ev,
        Err(f) => panic!("{}", f.render()),
    }
}

/// A secret's value in the secrets file of `tree`.
fn secret(tree: &MemoryTree, name: &str) -> String {
    let t: toml::Table = read(tree, SECRETS).parse().unwrap();
    t[name].as_str().unwrap().to_string()
}

/// A catalogue default of templates/_common/vars.toml.
fn default_var(name: &str) -> String {
    let t: toml::Table = read(&repo_tree(), "templates/_common/vars.toml")
        .parse()
        .unwrap();
    t[name].as_str().unwrap().to_string()
}

/// The value of `option` in `[section]` of an INI text.
fn ini_get(text: &str, section: &str, option: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = s.to_string();
        } else if current == section && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == option {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

fn file<'a>(hs: &'a HostState, path: &str) -> &'a DesiredFile {
    hs.files
        .get(path)
        .unwrap_or_else(|| panic!("{}: no {path}", hs.name))
}

fn container<'a>(hs: &'a HostState, name: &str) -> &'a ContainerDef {
    hs.containers
        .get(name)
        .unwrap_or_else(|| panic!("{}: no container {name}", hs.name))
}

fn runs(ev: &Evaluation, host: &str, service: &str) -> bool {
    ev.cloud
        .host(host)
        .is_some_and(|h| h.services.iter().any(|s| s == service))
}

/// `mon_host` as the cluster's monitors are: every ceph_mon host (by name) on its storage
/// address, msgr2 and v1.
fn expected_mon_host(ev: &Evaluation) -> (String, Vec<String>) {
    let mut mons: Vec<(&str, String)> = ev
        .cloud
        .hosts
        .iter()
        .filter(|h| h.services.iter().any(|s| s == "ceph_mon"))
        .map(|h| (h.name.as_str(), h.addresses["storage"].to_string()))
        .collect();
    mons.sort();
    let ips: Vec<String> = mons.iter().map(|(_, ip)| ip.clone()).collect();
    let value = ips
        .iter()
        .map(|ip| format!("[v2:{ip}:3300,v1:{ip}:6789]"))
        .collect::<Vec<_>>()
        .join(",");
    (value, ips)
}

#[test]
fn every_rbd_client_gets_ceph_conf_and_the_keyring_readable_by_its_group_only() {
    let tree = repo_tree();
    let ev = render(&tree);
    let key = secret(&tree, KEY_NAME);
    let fsid = default_var("ceph_fsid");
    let (mon_host, mon_ips) = expected_mon_host(&ev);
    assert_eq!(
        mon_ips,
        vec!["172.16.1.10", "172.16.1.11", "172.16.1.12"],
        "the three controllers' storage addresses"
    );
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (host, hs) in &ev.state.hosts {
        for (svc, gid) in CLIENTS {
            if !runs(&ev, host, svc) {
                continue;
            }
            *seen.entry(svc).or_default() += 1;
            let conf_path = format!("/etc/overcloud/{svc}/ceph.conf");
            let keyring_path = format!("/etc/overcloud/{svc}/ceph.client.keyring");

            let conf = file(hs, &conf_path);
            assert_eq!(
                ini_get(&conf.content, "global", "fsid").as_deref(),
                Some(fsid.as_str()),
                "{host} {conf_path}"
            );
            assert_eq!(
                ini_get(&conf.content, "global", "mon_host").as_deref(),
                Some(mon_host.as_str()),
                "{host} {conf_path}"
            );
            for opt in [
                "auth_cluster_required",
                "auth_service_required",
                "auth_client_required",
            ] {
                assert_eq!(
                    ini_get(&conf.content, "global", opt).as_deref(),
                    Some("cephx")
                );
            }
            assert_eq!(
                (conf.mode, conf.owner.as_str(), conf.group.as_str()),
                (0o640, "root", gid),
                "{host} {conf_path}"
            );
            assert!(!conf.secret && !conf.content.contains(&key));

            let keyring = file(hs, &keyring_path);
            let lines: Vec<&str> = keyring
                .content
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect();
            assert_eq!(
                lines,
                vec!["[client.openstack]".to_string(), format!("\tkey = {key}")],
                "{host} {keyring_path}"
            );
            assert_eq!(
                (keyring.mode, keyring.owner.as_str(), keyring.group.as_str()),
                (0o640, "root", gid),
                "{host} {keyring_path}: the service's group reads it, others do not"
            );
            assert!(keyring.secret, "{host} {keyring_path} is marked secret");
            assert_eq!(keyring.service, svc);

            // Mounted where librados looks (ceph.conf, $cluster.$name.keyring), and
            // the host's /etc/ceph is no longer a source.
            let c = container(hs, svc);
            for v in [
                format!("{conf_path}:/etc/ceph/ceph.conf:ro"),
                format!("{keyring_path}:/etc/ceph/ceph.client.openstack.keyring:ro"),
            ] {
                assert!(c.volumes.contains(&v), "{host} {svc}: no {v}");
            }
            assert!(
                !c.volumes.iter().any(|v| v.starts_with("/etc/ceph:")),
                "{host} {svc}: {:?}",
                c.volumes
            );
        }
    }
    assert_eq!(
        seen,
        BTreeMap::from([
            ("cinder_volume", 3),
            ("glance_api", 3),
            ("nova_compute", 20)
        ])
    );
    // Every host of a service with the same files, whatever else it runs: a controller's
    // glance and cinder have their own copies (one path each), the same ceph.conf text
    // but for the service's name in its comment.
    let c0 = &ev.state.hosts["overcloud-controller-0"];
    let strip = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip(&file(c0, "/etc/overcloud/glance_api/ceph.conf").content),
        strip(&file(c0, "/etc/overcloud/cinder_volume/ceph.conf").content)
    );
    // The monitors' own ceph.conf says the same about the cluster.
    let mon = &file(c0, "/etc/overcloud/ceph_mon/ceph.conf").content;
    for opt in ["fsid", "mon_host"] {
        assert_eq!(
            ini_get(mon, "global", opt),
            ini_get(
                &file(c0, "/etc/overcloud/glance_api/ceph.conf").content,
                "global",
                opt
            ),
            "{opt}"
        );
    }
}

#[test]
fn computes_get_the_libvirt_secret_that_nova_and_cinder_name() {
    let tree = repo_tree();
    let ev = render(&tree);
    let key = secret(&tree, KEY_NAME);
    let mut computes = 0;
    // cinder's backend names the same secret
    let cinder = &file(
        &ev.state.hosts["overcloud-controller-0"],
        "/etc/overcloud/cinder_volume/cinder.conf",
    )
    .content;
    assert_eq!(
        ini_get(cinder, "tripleo_ceph", "rbd_secret_uuid").as_deref(),
        Some(UUID)
    );
    assert_eq!(
        ini_get(cinder, "tripleo_ceph", "rbd_user").as_deref(),
        Some("openstack")
    );
    for (host, hs) in &ev.state.hosts {
        if !runs(&ev, host, "nova_libvirt") {
            continue;
        }
        computes += 1;
        let nova = &file(hs, "/etc/overcloud/nova_compute/nova.conf").content;
        let uuid = ini_get(nova, "libvirt", "rbd_secret_uuid").expect("rbd_secret_uuid");
        assert_eq!(uuid, UUID);
        assert_eq!(
            ini_get(nova, "libvirt", "rbd_user").as_deref(),
            Some("openstack")
        );

        let xml = file(hs, "/etc/overcloud/nova_libvirt/ceph-secret.xml");
        let body: String = xml
            .content
            .split("-->")
            .nth(1)
            .expect("the XML after its comment")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            body,
            format!(
                "<secret ephemeral='no' private='yes'> <uuid>{uuid}</uuid> \
                 <description>Ceph client.openstack key (cinder RBD volumes)</description> \
                 <usage type='ceph'> <name>client.openstack secret</name> </usage> </secret>"
            ),
            "{host}"
        );
        // one comment, no `--` inside it (not well-formed XML)
        let comment = xml.content.split("-->").next().unwrap();
        assert!(comment.starts_with("<!--") && !comment[4..].contains("--"));
        if computes == 1 {
            xml_parses_as_a_ceph_secret(&xml.content, &uuid);
        }
        assert!(!xml.secret);
        assert_eq!(
            (xml.mode, xml.owner.as_str(), xml.group.as_str()),
            (0o600, "root", "root")
        );

        let value = file(hs, "/etc/overcloud/nova_libvirt/ceph-secret.base64");
        assert_eq!(
            value.content, key,
            "{host}: the key itself, as libvirt writes it"
        );
        assert!(value.secret);
        assert_eq!(
            (value.mode, value.owner.as_str(), value.group.as_str()),
            (0o600, "root", "root")
        );

        // libvirtd reads /etc/libvirt/secrets/<uuid>.{xml,base64}
        let c = container(hs, "nova_libvirt");
        for v in [
            format!("/etc/overcloud/nova_libvirt/ceph-secret.xml:/etc/libvirt/secrets/{uuid}.xml:ro"),
            format!(
                "/etc/overcloud/nova_libvirt/ceph-secret.base64:/etc/libvirt/secrets/{uuid}.base64:ro"
            ),
            "/var/lib/overcloud/libvirt-secrets:/etc/libvirt/secrets".to_string(),
        ] {
            assert!(c.volumes.contains(&v), "{host}: no {v} in {:?}", c.volumes);
        }
    }
    assert_eq!(computes, 20);
}

/// An XML parser (Python's, where it is installed) reads the secret as libvirt's schema
/// has it.
fn xml_parses_as_a_ceph_secret(text: &str, uuid: &str) {
    let script = "import sys, xml.etree.ElementTree as E\n\
                  r = E.fromstring(sys.stdin.read())\n\
                  u = r.find('usage')\n\
                  print('|'.join([r.tag, r.get('ephemeral'), r.get('private'), \
                  r.findtext('uuid'), u.get('type'), u.findtext('name')]))";
    let child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("python3 is not installed: the secret's XML is not parsed");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("secret|no|yes|{uuid}|ceph|client.openstack secret")
    );
}

/// Every (host, service, path) of `ev` whose file holds `value`.
fn holding(ev: &Evaluation, value: &str) -> BTreeSet<(String, String, String)> {
    ev.state
        .hosts
        .iter()
        .flat_map(|(h, hs)| {
            hs.files
                .values()
                .filter(|f| f.content.contains(value))
                .map(|f| (h.clone(), f.service.clone(), f.path.clone()))
        })
        .collect()
}

/// The Ceph client files of `hs`: any path of theirs.
fn client_files(hs: &HostState) -> Vec<&str> {
    hs.files
        .keys()
        .map(String::as_str)
        .filter(|p| {
            p.ends_with("/ceph.client.keyring")
                || p.contains("/ceph-secret.")
                || (p.ends_with("/ceph.conf")
                    && !p.starts_with("/etc/overcloud/ceph_mon/")
                    && !p.starts_with("/etc/overcloud/ceph_osd/"))
        })
        .collect()
}

#[test]
fn the_key_is_only_where_a_service_uses_it() {
    let tree = repo_tree();
    let ev = render(&tree);
    let key = secret(&tree, KEY_NAME);
    let mut expected = BTreeSet::new();
    for (host, hs) in &ev.state.hosts {
        let mut mine: Vec<String> = Vec::new();
        for (svc, _) in CLIENTS {
            if runs(&ev, host, svc) {
                mine.push(format!("/etc/overcloud/{svc}/ceph.conf"));
                mine.push(format!("/etc/overcloud/{svc}/ceph.client.keyring"));
                expected.insert((
                    host.clone(),
                    svc.to_string(),
                    format!("/etc/overcloud/{svc}/ceph.client.keyring"),
                ));
            }
        }
        if runs(&ev, host, "nova_libvirt") {
            mine.push("/etc/overcloud/nova_libvirt/ceph-secret.base64".into());
            mine.push("/etc/overcloud/nova_libvirt/ceph-secret.xml".into());
            expected.insert((
                host.clone(),
                "nova_libvirt".into(),
                "/etc/overcloud/nova_libvirt/ceph-secret.base64".into(),
            ));
        }
        // the monitors know the client (imported at mkfs)
        if runs(&ev, host, "ceph_mon") {
            expected.insert((
                host.clone(),
                "ceph_mon".into(),
                "/etc/overcloud/ceph_mon/ceph.keyring".into(),
            ));
        }
        mine.sort();
        let mut found = client_files(hs);
        found.sort();
        assert_eq!(found, mine, "{host}");
    }
    assert_eq!(holding(&ev, &key), expected);
    // The storage nodes and the undercloud get none of it.
    for host in ["overcloud-cephstorage-0", "undercloud"] {
        assert!(client_files(&ev.state.hosts[host]).is_empty(), "{host}");
        assert!(!expected.iter().any(|(h, _, _)| h == host));
    }
    // The monitors' keyring: the client with the capabilities of RBD on its two pools.
    let mon_keyring = &file(
        &ev.state.hosts["overcloud-controller-1"],
        "/etc/overcloud/ceph_mon/ceph.keyring",
    )
    .content;
    let block: Vec<&str> = mon_keyring
        .lines()
        .skip_while(|l| *l != "[client.openstack]")
        .collect();
    assert_eq!(
        block,
        vec![
            "[client.openstack]".to_string(),
            format!("\tkey = {key}"),
            "\tcaps mgr = \"profile rbd pool=volumes, profile rbd pool=images\"".into(),
            "\tcaps mon = \"profile rbd\"".into(),
            "\tcaps osd = \"profile rbd pool=volumes, profile rbd pool=images\"".into(),
        ]
    );
}

fn side<'a>(ev: &'a Evaluation, rev: &str) -> provision::diff::Side<'a> {
    provision::diff::Side {
        label: provision::diff::RevisionInfo {
            rev: rev.into(),
            commit: None,
        },
        state: &ev.state,
        secrets: &ev.cloud.secrets,
    }
}

/// The production inventory with `line` added to its global `[vars]`.
fn with_vars(line: &str) -> MemoryTree {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        PROD,
        "[vars]\ndebug = false\n",
        &format!("[vars]\ndebug = false\n{line}\n"),
    );
    tree
}

#[test]
fn a_cloud_that_does_not_use_ceph_gets_none_of_it() {
    let tree = with_vars("ceph_enabled = false");
    let ev = render(&tree);
    let key = secret(&tree, KEY_NAME);
    for (host, hs) in &ev.state.hosts {
        assert!(
            client_files(hs).is_empty(),
            "{host}: {:?}",
            client_files(hs)
        );
        for c in hs.containers.values().filter(|c| {
            [
                "glance_api",
                "cinder_volume",
                "nova_compute",
                "nova_libvirt",
            ]
            .contains(&c.name.as_str())
        }) {
            assert!(
                !c.volumes
                    .iter()
                    .any(|v| v.contains(":/etc/ceph/") || v.contains(UUID)),
                "{host} {}: {:?}",
                c.name,
                c.volumes
            );
        }
    }
    // Nowhere, not even in the monitors' keyring.
    assert!(holding(&ev, &key).is_empty());
    // The monitors' and OSDs' own files are as they were.
    let on = render(&repo_tree());
    for (host, path) in [
        (
            "overcloud-controller-0",
            "/etc/overcloud/ceph_mon/ceph.conf",
        ),
        (
            "overcloud-cephstorage-0",
            "/etc/overcloud/ceph_osd/ceph.conf",
        ),
        (
            "overcloud-cephstorage-0",
            "/etc/overcloud/ceph_osd/bootstrap-osd.keyring",
        ),
    ] {
        assert_eq!(
            ev.state.hosts[host].files[path], on.state.hosts[host].files[path],
            "{host} {path}"
        );
    }

    // Per role, like any variable: computes without, controllers with.
    let mut tree = repo_tree();
    edit(
        &mut tree,
        PROD,
        "[roles.Compute]\ncount = 20\n",
        "[roles.Compute]\ncount = 20\nvars = { ceph_enabled = false }\n",
    );
    let ev = render(&tree);
    assert!(client_files(&ev.state.hosts["overcloud-novacompute-3"]).is_empty());
    assert_eq!(
        client_files(&ev.state.hosts["overcloud-controller-2"]).len(),
        4
    );
}

#[test]
fn when_must_be_a_boolean_and_is_located() {
    // A string is not a boolean ("false" would be true).
    let tree = with_vars("ceph_enabled = \"false\"");
    let (_, msg) = errors(&tree, PROD);
    // (glance's `vars.ceph_enabled and vars.glance_backend == 'rbd'` gives the
    // comparison's boolean: cinder-volume's is the variable alone.)
    let cinder = "templates/cinder_volume/service.toml";
    assert!(
        msg.contains(
            "the `when` of file /etc/overcloud/cinder_volume/ceph.conf does not give a boolean"
        ) && msg.contains(&format!(
            "--> {}",
            at_nth(&tree, cinder, "\"vars.ceph_enabled\"", 0)
        )),
        "{msg}"
    );
    // A misspelt variable: strict, at the variable inside the expression.
    let mut tree = repo_tree();
    let libvirt = "templates/nova_libvirt/service.toml";
    let text = read(&tree, libvirt).replacen(
        "when = \"vars.ceph_enabled\"",
        "when = \"vars.ceph_enabeld\"",
        1,
    );
    tree.insert(libvirt, text);
    let (_, msg) = errors(&tree, PROD);
    let place = at(&tree, libvirt, "vars.ceph_enabeld");
    assert!(
        msg.contains("undefined variable") && msg.contains(&format!("--> {place}")),
        "{place}: {msg}"
    );
}

#[test]
fn a_rendered_container_path_is_checked() {
    // `word` lets `.` and `/` through: the path check refuses the result.
    let tree = with_vars("cinder_rbd_secret_uuid = \"../../../etc/x\"");
    let (_, msg) = errors(&tree, PROD);
    assert!(
        msg.contains("the container path of file /etc/overcloud/nova_libvirt/ceph-secret.xml is `/etc/libvirt/secrets/../../../etc/x.xml`, which is not a normalized path")
            && msg.contains("--> templates/nova_libvirt/service.toml:"),
        "{msg}"
    );
    // A `:` would split the podman volume.
    let tree = with_vars("cinder_rbd_user = \"a:b\"");
    let (_, msg) = errors(&tree, PROD);
    assert!(
        msg.contains("/etc/ceph/ceph.client.a:b.keyring`, which holds ':'"),
        "{msg}"
    );
}

#[test]
fn the_key_is_never_shown_by_a_plan_or_a_diff() {
    let tree = repo_tree();
    let ev = render(&tree);
    let key = secret(&tree, KEY_NAME);
    let old_key = "AQAA8VNlAAAAABAAold0ld0ld0ld0ld0ld0ld0==";
    let compute = "overcloud-novacompute-4";
    let keyring = "/etc/overcloud/nova_compute/ceph.client.keyring";
    let base64 = "/etc/overcloud/nova_libvirt/ceph-secret.base64";

    // A plan: every host empty but one compute, which holds the files with an old key.
    let mut facts: BTreeMap<String, ActualHost> = ev
        .state
        .hosts
        .keys()
        .map(|h| (h.clone(), ActualHost::default()))
        .collect();
    let old_keyring = format!("[client.openstack]\n\tkey = {old_key}\n");
    let found = facts.get_mut(compute).unwrap();
    for (path, content, group) in [
        (keyring, old_keyring.as_str(), "42436"),
        (base64, old_key, "root"),
    ] {
        found.paths.insert(
            path.to_string(),
            ActualPath {
                kind: "regular file".into(),
                mode: 0o640,
                uid: "0".into(),
                gid: group.replace("root", "0"),
                user: "root".into(),
                group: group.into(),
                sha256: Some("0".repeat(64)),
            },
        );
        found
            .contents
            .insert(path.to_string(), content.as_bytes().to_vec());
    }
    let plan = Plan::decide(&ev.state, &facts, Vec::new());
    let report = provision::plan::report::report(PROD, &plan, &ev.state, &facts, &ev.cloud.secrets);
    let listed = |r: &provision::diff::Report, path: &str| r.files.iter().any(|f| f.path == path);
    assert!(listed(&report, keyring) && listed(&report, base64));
    let out = provision::diff::format::text(&report)
        + &provision::diff::format::markdown(&report)
        + &provision::diff::format::json(&report);
    for v in [key.as_str(), old_key] {
        assert!(!out.contains(v), "the plan shows a key");
    }
    assert!(
        out.contains("hidden: it held a secret"),
        "the old lines hidden"
    );

    // A diff: the client side added (from a cloud without it), then the key rotated.
    let without = render(&with_vars("ceph_enabled = false"));
    let mut rotated_tree = repo_tree();
    let new_key = "AQAA8VNlAAAAABAAn3wk3yn3wk3yn3wk3yn3wA==";
    edit(&mut rotated_tree, SECRETS, &key, new_key);
    let rotated = render(&rotated_tree);
    for (base, head, changed) in [(&without, &ev, false), (&ev, &rotated, true)] {
        let report = provision::diff::compare(PROD, &side(base, "base"), &side(head, "head"));
        assert!(listed(&report, keyring) && listed(&report, base64));
        let out = provision::diff::format::text(&report)
            + &provision::diff::format::markdown(&report)
            + &provision::diff::format::json(&report);
        for v in [key.as_str(), new_key] {
            assert!(!out.contains(v), "the diff shows a key");
        }
        if changed {
            assert!(out.contains("(secret changed)"));
            // only the files that hold it, and the containers that mount them
            let paths: BTreeSet<&str> = report.files.iter().map(|f| f.path.as_str()).collect();
            assert!(
                paths.iter().all(|p| p.ends_with("/ceph.client.keyring")
                    || p.ends_with("/ceph-secret.base64")
                    || *p == "/etc/overcloud/ceph_mon/ceph.keyring"
                    || p.starts_with("/var/lib/overcloud/containers/")
                    || p.starts_with("/etc/systemd/system/")),
                "{paths:?}"
            );
        }
    }
}
