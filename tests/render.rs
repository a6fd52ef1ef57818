//! Offline rendering of the example inventories: real content, the right addresses on
//! the right hosts, overrides at the right level, secrets only where needed, stable
//! output.

mod common;
use common::*;

use provision::evaluate::Evaluation;
use provision::state::{DesiredFile, FileKind};

const PROD: &str = "inventories/example-production.toml";

fn prod() -> Evaluation {
    match eval(&repo_tree(), PROD) {
        Ok(ev) => ev,
        Err(f) => panic!("{}", f.render()),
    }
}

/// The oslo file `id` of `service` on `host`.
fn oslo<'a>(ev: &'a Evaluation, host: &str, service: &str, id: &str) -> &'a DesiredFile {
    ev.state.hosts[host]
        .files
        .values()
        .find(|f| {
            f.service == service && matches!(&f.kind, FileKind::Oslo { id: i, .. } if i == id)
        })
        .unwrap_or_else(|| panic!("no {id} file of {service} on {host}"))
}

/// The value of `option` in `[section]` of an INI text.
fn ini_get(text: &str, section: &str, option: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = s.to_string();
        } else if current == section {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == option {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

#[test]
fn production_has_the_expected_hosts() {
    let ev = prod();
    let roles: Vec<(&str, usize)> = ["Controller", "Compute", "CephStorage"]
        .iter()
        .map(|r| (*r, ev.cloud.hosts.iter().filter(|h| h.role == *r).count()))
        .collect();
    assert_eq!(
        roles,
        vec![("Controller", 3), ("Compute", 20), ("CephStorage", 3)]
    );
    assert!(ev.state.hosts.contains_key("overcloud-controller-0"));
    assert!(ev.state.hosts.contains_key("overcloud-novacompute-19"));
    assert!(ev.state.hosts.contains_key("overcloud-cephstorage-2"));
}

#[test]
fn compute_nova_conf_has_its_own_address_and_the_controllers_rabbitmq() {
    let ev = prod();
    let host = "overcloud-novacompute-7";
    let h = ev.cloud.host(host).unwrap();
    // Allocated: the same host number as its ctlplane address (192.168.24.37).
    assert_eq!(h.addresses["internal_api"].to_string(), "172.16.2.37");
    let nova = &oslo(&ev, host, "nova_compute", "nova").content;
    assert_eq!(
        ini_get(nova, "DEFAULT", "my_ip").as_deref(),
        Some("172.16.2.37")
    );
    let transport = ini_get(nova, "DEFAULT", "transport_url").expect("transport_url");
    for controller_ip in ["172.16.2.10", "172.16.2.11", "172.16.2.12"] {
        assert!(
            transport.contains(&format!("@{controller_ip}:5672")),
            "{transport}"
        );
    }
    assert!(transport.starts_with("rabbit://"), "{transport}");
    // No other compute's address leaks into it.
    assert!(!nova.contains("172.16.2.38"), "{nova}");
}

#[test]
fn role_override_changes_only_that_roles_hosts() {
    let ev = prod();
    for h in &ev.cloud.hosts {
        for f in ev.state.hosts[&h.name].files.values() {
            if let FileKind::Oslo { id, .. } = &f.kind {
                if id == "nova" {
                    let ratio = ini_get(&f.content, "DEFAULT", "cpu_allocation_ratio");
                    if h.role == "Compute" {
                        assert_eq!(ratio.as_deref(), Some("8.0"), "{} {}", h.name, f.path);
                    } else {
                        assert_ne!(ratio.as_deref(), Some("8.0"), "{} {}", h.name, f.path);
                    }
                    // The global override applies everywhere.
                    assert_eq!(
                        ini_get(&f.content, "DEFAULT", "block_device_allocate_retries").as_deref(),
                        Some("120"),
                        "{}",
                        f.path
                    );
                }
            }
        }
    }
}

#[test]
fn node_override_changes_only_that_node() {
    let ev = prod();
    let reserved = |host: &str| {
        ini_get(
            &oslo(&ev, host, "nova_compute", "nova").content,
            "DEFAULT",
            "reserved_host_memory_mb",
        )
    };
    assert_eq!(reserved("overcloud-novacompute-0").as_deref(), Some("8192"));
    assert_ne!(reserved("overcloud-novacompute-1").as_deref(), Some("8192"));
}

#[test]
fn every_openstack_service_logs_json_through_the_shared_config() {
    let ev = prod();
    let hs = &ev.state.hosts["overcloud-controller-0"];
    let mut checked = 0;
    for f in hs.files.values() {
        if let FileKind::Oslo { .. } = f.kind {
            if let Some(path) = ini_get(&f.content, "DEFAULT", "log_config_append") {
                checked += 1;
                let logging = hs.files.values().find(|g| g.service == f.service && matches!(&g.kind, FileKind::Template { template } if template == "_common/logging.conf.j2"));
                let logging =
                    logging.unwrap_or_else(|| panic!("{} has no shared logging file", f.service));
                assert!(
                    logging
                        .content
                        .contains("oslo_log.formatters.JSONFormatter"),
                    "{}",
                    logging.path
                );
                assert!(
                    logging.content.contains(&format!("{}.log", f.service)),
                    "{}",
                    logging.content
                );
                assert!(path.ends_with("logging.conf"), "{path}");
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} services use the shared logging"
    );
    // Every overcloud host has the log forwarder, pointing at the undercloud's receiver.
    let uc = &ev.state.hosts[&ev.cloud.undercloud.name];
    let receiver = &uc.files["/etc/undercloud/log_receiver/rsyslog.conf"].content;
    assert!(
        receiver.contains("address=\"192.168.24.1\"") && receiver.contains("port=\"5140\""),
        "{receiver}"
    );
    for (name, hs) in ev
        .state
        .hosts
        .iter()
        .filter(|(n, _)| **n != ev.cloud.undercloud.name)
    {
        assert!(
            hs.containers.contains_key("rsyslog"),
            "{name} has no log forwarder"
        );
        let conf = hs
            .files
            .values()
            .filter(|f| f.service == "rsyslog")
            .map(|f| f.content.as_str())
            .collect::<String>();
        assert!(
            conf.contains("192.168.24.1"),
            "{name}: forwarder does not send to the undercloud"
        );
    }
}

#[test]
fn containers_have_images_steps_and_config_hashes() {
    let ev = prod();
    let c = &ev.state.hosts["overcloud-novacompute-3"].containers["nova_compute"];
    assert_eq!(
        c.image,
        "quay.io/openstack.kolla/nova-compute:2025.1-rocky-9"
    );
    assert!(
        c.volumes
            .iter()
            .any(|v| v.starts_with("/etc/overcloud/nova_compute/nova.conf:") && v.ends_with(":ro")),
        "{:?}",
        c.volumes
    );
    assert!(
        c.volumes
            .iter()
            .any(|v| v.starts_with("/var/log/overcloud/nova_compute:")),
        "{:?}",
        c.volumes
    );
    assert_eq!(c.labels["provision.config_hash"].len(), 64);
    // Two computes differ (own address) so their hashes differ; the controllers' keystone
    // containers differ too (own address in the config).
    let other = &ev.state.hosts["overcloud-novacompute-4"].containers["nova_compute"];
    assert_ne!(
        c.labels["provision.config_hash"],
        other.labels["provision.config_hash"]
    );
}

#[test]
fn secrets_appear_only_in_files_that_need_them() {
    let ev = prod();
    let secret_values: Vec<String> =
        read(&repo_tree(), "inventories/example-production.secrets.toml")
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(_, v)| v.trim().trim_matches('"').to_string())
            })
            .filter(|v| !v.is_empty())
            .collect();
    assert!(secret_values.len() > 5);
    let mut secret_files = 0;
    for hs in ev.state.hosts.values() {
        for f in hs.files.values() {
            let has = secret_values.iter().any(|v| f.content.contains(v.as_str()));
            assert_eq!(has, f.secret, "{} secret flag", f.path);
            if has {
                secret_files += 1;
                assert!(
                    f.mode & 0o007 == 0,
                    "{} holds a secret and is world-readable ({:o})",
                    f.path,
                    f.mode
                );
            }
        }
    }
    assert!(secret_files > 0);
    // The manifest never holds a secret.
    let m = provision::render::output::manifest(&ev.cloud.name, &ev.state, &ev.cloud.secrets);
    let json = serde_json::to_string(&m).unwrap();
    for v in &secret_values {
        assert!(!json.contains(v.as_str()), "manifest leaks a secret");
    }
}

#[test]
fn rendering_is_deterministic() {
    let a = prod();
    let b = prod();
    for (name, ha) in &a.state.hosts {
        let hb = &b.state.hosts[name];
        assert_eq!(ha.files, hb.files, "{name}");
        assert_eq!(ha.containers, hb.containers, "{name}");
    }
}

#[test]
fn rendering_does_not_depend_on_where_the_repository_is() {
    // The same repository at two places: every file and container hash is the same
    // (a path in a header would change every file, and restart every container, when
    // another operator applies from another checkout).
    let here = common::repo_tree();
    let mut there = provision::source::MemoryTree::new();
    for top in ["inventories", "roles", "templates"] {
        add_prefixed(&mut there, &common::repo(), top, "/srv/elsewhere/checkout");
    }
    let a =
        common::eval(&here, "inventories/lab.toml").unwrap_or_else(|f| panic!("{}", f.render()));
    let b = common::eval(&there, "/srv/elsewhere/checkout/inventories/lab.toml")
        .unwrap_or_else(|f| panic!("{}", f.render()));
    for (name, h) in &a.state.hosts {
        let other = &b.state.hosts[name];
        for (path, f) in &h.files {
            assert_eq!(f.content, other.files[path].content, "{name}:{path}");
        }
    }
}

fn add_prefixed(
    tree: &mut provision::source::MemoryTree,
    root: &std::path::Path,
    rel: &str,
    prefix: &str,
) {
    for e in std::fs::read_dir(root.join(rel)).unwrap().flatten() {
        let child = format!("{rel}/{}", e.file_name().to_string_lossy());
        if e.path().is_dir() {
            add_prefixed(tree, root, &child, prefix);
        } else if let Ok(text) = std::fs::read_to_string(e.path()) {
            tree.insert(format!("{prefix}/{child}"), text);
        }
    }
}

#[test]
fn every_container_gets_a_systemd_unit_ordered_by_deploy_step_unless_the_hosts_have_none() {
    let ev = prod();
    let compute = ev
        .state
        .hosts
        .values()
        .find(|h| h.role == "Compute")
        .unwrap();
    let unit = &compute.files["/etc/systemd/system/provision-nova_compute.service"];
    assert_eq!((unit.mode, unit.owner.as_str()), (0o644, "root"));
    assert!(
        unit.content
            .contains("ExecStart=/usr/bin/podman start nova_compute\n"),
        "{}",
        unit.content
    );
    // nova_compute is step 5: after every earlier step's container of this host, and
    // after none of its own or later steps.
    let after = unit
        .content
        .lines()
        .find(|l| l.starts_with("After=provision-"))
        .unwrap();
    let mut want: Vec<String> = compute
        .containers
        .values()
        .filter(|c| c.step < compute.containers["nova_compute"].step)
        .map(|c| format!("provision-{}.service", c.name))
        .collect();
    want.sort();
    assert_eq!(after, format!("After={}", want.join(" ")));
    assert!(!want.is_empty() && !after.contains("provision-nova_compute.service"));
    // One unit per container, and the units are not part of any container's hash: a
    // unit's change restarts nothing.
    let units = compute
        .files
        .keys()
        .filter(|p| p.starts_with("/etc/systemd/system/"))
        .count();
    assert_eq!(units, compute.containers.len());
    // The lab's hosts run no systemd (`container_units = "none"`): no unit.
    let tree = common::repo_tree();
    let lab =
        common::eval(&tree, "inventories/lab.toml").unwrap_or_else(|f| panic!("{}", f.render()));
    assert!(lab
        .state
        .hosts
        .values()
        .all(|h| h.files.keys().all(|p| !p.starts_with("/etc/systemd/"))));
}

/// The Vagrant lab's `[lab]` healthcheck interval and timeout reach the stand-ins'
/// podman definitions (`--health-interval`, `--health-timeout`) and only theirs: a real
/// image (rsyslog in the VMs) keeps its service's; the config hash follows.
#[test]
fn the_labs_stand_in_health_interval_and_timeout_reach_only_the_stand_ins() {
    let ev = match eval(&repo_tree(), "inventories/vagrant.toml") {
        Ok(ev) => ev,
        Err(f) => panic!("{}", f.render()),
    };
    let c = &ev.state.hosts["vagrant-controller-0"].containers;
    let hc = c["keystone"].healthcheck.as_ref().unwrap();
    assert_eq!((hc.interval.as_str(), hc.timeout.as_str()), ("600s", "60s"));
    let real = c["rsyslog"].healthcheck.as_ref().unwrap();
    assert_eq!(
        (real.interval.as_str(), real.timeout.as_str()),
        ("30s", "10s")
    );
    let def = &ev.state.hosts["vagrant-controller-0"].files
        ["/var/lib/overcloud/containers/keystone.json"];
    assert!(
        def.content.contains("\"interval\": \"600s\""),
        "{}",
        def.content
    );
}

/// Every host's state, rendered through `cache` or without one, or the errors.
fn states(
    tree: &provision::source::MemoryTree,
    cache: Option<std::sync::Arc<provision::render::cache::RenderCache>>,
) -> Result<Vec<String>, String> {
    use provision::evaluate::{evaluate_each, Rendered};
    let mut hosts = Vec::new();
    let result = evaluate_each(
        std::path::Path::new(PROD),
        tree,
        &provision::model::LoadOptions::default(),
        cache,
        |r| {
            if let Rendered::Host(hs) = r {
                // Everything a host's state holds, secret flags among them.
                hosts.push(format!(
                    "{} {:?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}",
                    hs.name,
                    hs.exact_dirs,
                    hs.files.values().collect::<Vec<_>>(),
                    hs.containers,
                    hs.tasks,
                    hs.directories
                ));
            }
        },
    );
    result.map(|_| hosts).map_err(|f| f.render())
}

#[test]
fn a_render_cache_shared_by_two_revisions_gives_what_rendering_each_gives() {
    use provision::render::cache::RenderCache;
    let base = repo_tree();
    // The head: a role's INI override (nova.conf of every compute), a role's variable,
    // a template (rsyslog on every host) and a secret in the computes' files changed;
    // the rest as it was.
    let mut head = repo_tree();
    edit(
        &mut head,
        PROD,
        "cpu_allocation_ratio = 8.0",
        "cpu_allocation_ratio = 4.0",
    );
    // A variable the computes alone change: their logging.conf files log DEBUG.
    edit(
        &mut head,
        PROD,
        "[roles.Compute.config.nova.DEFAULT]",
        "[roles.Compute.vars]\ndebug = true\n\n[roles.Compute.config.nova.DEFAULT]",
    );
    edit(
        &mut head,
        "inventories/example-production.secrets.toml",
        "rabbitmq_password = \"example-2f305f8bfca42c6e\"",
        "rabbitmq_password = \"example-rotated-0001\"",
    );
    let rsyslog = "templates/rsyslog/rsyslog.conf.j2";
    let text = read(&head, rsyslog);
    head.insert(rsyslog, format!("# changed by the test\n{text}"));
    let cache = RenderCache::new();
    let base_cached = states(&base, Some(cache.clone())).expect("base renders");
    let within = cache.hits();
    let head_cached = states(&head, Some(cache.clone())).expect("head renders");
    assert_eq!(base_cached, states(&base, None).unwrap());
    assert_eq!(head_cached, states(&head, None).unwrap());
    assert_ne!(base_cached, head_cached);
    // The head took from the base what the change does not touch.
    assert!(cache.hits() > within + 20, "{within} then {}", cache.hits());

    // A secret whose new value is text the files hold anyway (a section name of every
    // nova.conf): the same files, handed over from the base, fail the head as they do
    // when rendered.
    let mut leaked = repo_tree();
    edit(
        &mut leaked,
        "inventories/example-production.secrets.toml",
        "bmc_password = \"example-bmc-Xq7\"",
        "bmc_password = \"oslo_concurrency\"",
    );
    let cache = RenderCache::new();
    states(&base, Some(cache.clone())).expect("base renders");
    let hits = cache.hits();
    let cached = states(&leaked, Some(cache.clone())).expect_err("the leaked secret fails");
    assert!(cache.hits() > hits, "the head reused the base's services");
    assert!(cached.contains("bmc_password"), "{cached}");
    assert_eq!(
        cached,
        states(&leaked, None).expect_err("fails rendered too")
    );
}

/// Every host's state and the findings, with each oslo.config file's shared options
/// rendered and checked once per role (the default) or every file rendered whole.
fn rendered_ini(tree: &provision::source::MemoryTree, whole: bool) -> (Vec<String>, String) {
    use provision::render::Renderer;
    let loaded = provision::model::build(
        std::path::Path::new(PROD),
        tree,
        &provision::model::LoadOptions::default(),
    );
    let Some(cloud) = loaded.cloud else {
        panic!("the model does not build: {:#?}", loaded.diags);
    };
    let mut diags = loaded.diags;
    let mut renderer = Renderer::new(&cloud, &mut diags);
    if whole {
        renderer = renderer.whole_ini_files();
    }
    let mut hosts: Vec<String> = cloud
        .hosts
        .iter()
        .map(|h| {
            let hs = renderer.render_host(h, &mut diags);
            format!("{} {:#?}", hs.name, hs.files.values().collect::<Vec<_>>())
        })
        .collect();
    let uc = renderer.render_undercloud(&mut diags);
    hosts.push(format!("{:#?}", uc.files.values().collect::<Vec<_>>()));
    diags.sort();
    let findings = format!("{:#?}\n{:#?}", diags.items, renderer.warnings().items);
    (hosts, findings)
}

/// An oslo.config file's options that read nothing of the host are rendered and checked
/// once for the hosts of a role (render/oslo_files.rs), the others on each host: the
/// files and every finding must be those of rendering each file whole on every host,
/// with a host's own value that is wrong (an error on every compute), deprecated (a
/// warning), left out on some hosts, or a shared one that is wrong (the file is then
/// rendered whole everywhere).
#[test]
fn prepared_ini_files_give_what_rendering_each_whole_gives() {
    let cases = [
        "",
        "disk_allocation_ratio = \"{{ host.name }}\"\n",
        "reserved_host_memory_mb = \"{{ '' if host.name is endingwith('1') else host.index + 512 }}\"\n",
        "console_token_ttl = \"{{ host.index + 600 }}\"\n",
        "force_config_drive = \"yes-please\"\nmy_ip = \"{{ host.name }}.x\"\n",
    ];
    let mut errors_seen = 0;
    for (i, case) in cases.iter().enumerate() {
        let mut tree = repo_tree();
        edit(
            &mut tree,
            PROD,
            "[roles.Compute.config.nova.DEFAULT]\n",
            &format!("[roles.Compute.config.nova.DEFAULT]\n{case}"),
        );
        let prepared = rendered_ini(&tree, false);
        let whole = rendered_ini(&tree, true);
        let first_difference = |a: &str, b: &str| {
            a.lines()
                .zip(b.lines())
                .find(|(x, y)| x != y)
                .map(|(x, y)| format!("prepared: {x}\n   whole: {y}"))
        };
        assert!(
            prepared.1 == whole.1,
            "case {i}: the findings differ:\n{:?}",
            first_difference(&prepared.1, &whole.1)
        );
        for (p, w) in prepared.0.iter().zip(&whole.0) {
            assert!(p == w, "case {i}:\n{:?}", first_difference(p, w));
        }
        assert_eq!(prepared.0.len(), whole.0.len());
        errors_seen += prepared.1.matches("Error").count();
        if i == 2 {
            // Left out where it renders empty, written elsewhere.
            assert!(prepared
                .0
                .iter()
                .any(|h| h.contains("reserved_host_memory_mb = 514")));
            assert!(prepared
                .0
                .iter()
                .any(|h| h.starts_with("overcloud-novacompute-1 ")
                    && !h.contains("reserved_host_memory_mb")));
        }
    }
    assert!(
        errors_seen > 0,
        "no case gave an error: the cases test nothing"
    );
}
