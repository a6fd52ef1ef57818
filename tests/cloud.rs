//! The real cloud, end to end (one scenario: the suite's one real-cloud run). The lab
//! runs real OpenStack 2025.1 from Debian 13 packages (`lab/lab.sh up --real-images
//! --spare 1`, lab/images.sh) for the services of `[lab] real_images` in
//! inventories/lab.toml: the identity plane, glance, placement, nova (the fake driver),
//! neutron with Open vSwitch, cinder's API; nova-libvirt, ceph and cinder-volume stay
//! the lab's stand-ins.
//!
//! From a lab with every node powered off, one apply brings the cloud up; the admin's
//! clouds.yaml from `provision credentials` issues a token on the public VIP
//! (python-openstackclient, lab/client.sh), and the catalogue holds every enabled
//! service's endpoints; a second apply runs no task and recreates nothing; an image is
//! saved back byte for byte, every compute is a resource provider, an `up` service and
//! a hypervisor, a network, subnet and port are made and a server goes ACTIVE with its
//! port bound; a wrong database root password fails its task with the task's own error
//! and a re-run converges; a new keystone image tag re-runs only the schema sync and
//! recreates only keystone; the spare node added as a compute is provisioned and
//! discovered with no other command, then a no-op; removed again, its nova service,
//! hypervisor, resource provider and agent are deleted; no secret in any output or
//! event log; the key files are 0600 everywhere.

mod common;
use common::lab::*;
use common::repo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use provision::evaluate::Evaluation;

/// What every run printed and logged, for the secrets check at the end.
#[derive(Default)]
struct Seen {
    texts: Vec<(String, String)>,
}

impl Seen {
    fn add(&mut self, what: &str, text: &str) {
        self.texts.push((what.to_string(), text.to_string()));
    }
    fn add_run(&mut self, what: &str, out: &str, err: &str, run: &Path) {
        self.add(&format!("{what}: stdout"), out);
        self.add(&format!("{what}: stderr"), err);
        let log = std::fs::read_to_string(run.join("events.jsonl")).unwrap_or_default();
        self.add(&format!("{what}: events.jsonl"), &log);
    }
}

fn apply_run(inv: &str, run: &Path) -> (bool, String, String) {
    apply_with(inv, run, &[])
}

fn apply_with(inv: &str, run: &Path, more: &[&str]) -> (bool, String, String) {
    let mut args = vec![
        "apply",
        inv,
        "--yes",
        "--run-dir",
        run.to_str().unwrap(),
        "--health-timeout",
        "180",
    ];
    args.extend_from_slice(more);
    let (o, out, err) = provision(&args);
    // The figures of docs/performance.md (cargo test --test cloud -- --nocapture).
    let summary = out
        .lines()
        .find(|l| l.starts_with("Apply ") || l.starts_with("No changes."))
        .unwrap_or("(no summary)");
    eprintln!("{}: {summary}", run.file_name().unwrap().to_string_lossy());
    (o.status.success(), out, err)
}

/// The openstack client (python-openstackclient from PyPI into .cache/client-venv).
fn client() -> PathBuf {
    let o = Command::new(repo().join("lab/client.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(o.status.success(), "lab/client.sh failed");
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

/// `openstack --os-cloud lab ARGS -f json` with the clouds.yaml at `clouds`.
fn openstack(clouds: &Path, args: &[&str]) -> Result<serde_json::Value, String> {
    let o = Command::new(client())
        .arg("--os-cloud")
        .arg("lab")
        .args(args)
        .args(["-f", "json"])
        .env("OS_CLIENT_CONFIG_FILE", clouds)
        .env_remove("OS_CLOUD")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    if !o.status.success() {
        return Err(format!("openstack {}: {err}{out}", args.join(" ")));
    }
    serde_json::from_str(&out).map_err(|e| format!("openstack {}: {e}: {out}", args.join(" ")))
}

/// Whether keystone on `url` validates `subject` (GET /v3/auth/tokens with an admin
/// token): the tokens go to curl on its standard input, never on a command line.
fn validates(url: &str, admin: &str, subject: &str) -> u16 {
    use std::io::Write as _;
    let mut child = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-K", "-"])
        .arg(format!("{url}/v3/auth/tokens"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    write!(
        child.stdin.take().unwrap(),
        "header = \"X-Auth-Token: {admin}\"\nheader = \"X-Subject-Token: {subject}\"\nmax-time = 20\n"
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn vip(ev: &Evaluation, network: &str) -> String {
    ev.cloud.networks[network]
        .vip
        .unwrap_or_else(|| panic!("no vip on {network}"))
        .to_string()
}

/// The closing line of a plan (`Plan: ...`), as counts.
fn plan_counts(plan_out: &str) -> BTreeMap<String, i64> {
    let line = plan_out
        .lines()
        .find(|l| l.starts_with("Plan: "))
        .unwrap_or_else(|| panic!("no closing line in\n{plan_out}"));
    let phrase = line
        .trim_start_matches("Plan: ")
        .trim_end_matches('.')
        .to_string();
    counts(&phrase)
}

/// Each service type keystone must list, with the services that declare it.
fn registered_types(ev: &Evaluation) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, svc) in &ev.cloud.catalogue.services {
        let Some(k) = &svc.manifest.keystone else {
            continue;
        };
        if ev.cloud.hosts.iter().any(|h| h.services.contains(name)) {
            out.insert(k.service_type.clone(), name.clone());
        }
    }
    out
}

/// `openstack ARGS` again until `done` accepts its output: every 3 s, at most `secs`
/// seconds (a compute reports to placement, its services to nova, a little after its
/// container is healthy).
fn openstack_until(
    clouds: &Path,
    args: &[&str],
    secs: u64,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let v = openstack(clouds, args);
        match &v {
            Ok(v) if done(v) => return v.clone(),
            _ if start.elapsed().as_secs() >= secs => {
                panic!("openstack {} after {secs} s: {v:?}", args.join(" "))
            }
            _ => std::thread::sleep(std::time::Duration::from_secs(3)),
        }
    }
}

/// The values of `key` in a JSON list of objects, sorted.
fn column(v: &serde_json::Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| match &o[key] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    out.sort();
    out
}

/// The names of the hosts of `ev` running `service`, sorted.
fn hosts_of(ev: &Evaluation, service: &str) -> Vec<String> {
    let mut out: Vec<String> = ev
        .cloud
        .hosts
        .iter()
        .filter(|h| h.services.iter().any(|s| s == service))
        .map(|h| h.name.clone())
        .collect();
    out.sort();
    out
}

/// What an operator checks first in a new cloud, with the admin's credentials: images
/// (a 4 MiB image saved back byte for byte), placement and compute (every compute a
/// resource provider, a hypervisor and an `up` nova-compute beside the conductor and
/// the scheduler), networking (a network, a subnet, a port), and a server that goes
/// ACTIVE with its port bound by the Open vSwitch agent of its compute.
fn a_server_goes_active(clouds: &Path, ev: &Evaluation, dir: &Path) {
    let computes = hosts_of(ev, "nova_compute");
    assert!(computes.len() >= 2, "{computes:?}");

    // glance: 4 MiB of bytes that are not all alike, created and saved back.
    let image = dir.join("image.raw");
    let bytes: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&image, &bytes).unwrap();
    let img = openstack(
        clouds,
        &[
            "image",
            "create",
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--file",
            image.to_str().unwrap(),
            "cirros-like",
        ],
    )
    .unwrap();
    assert_eq!(img["status"], "active", "{img}");
    let id = img["id"].as_str().unwrap().to_string();
    let saved = dir.join("saved.raw");
    let o = Command::new(client())
        .args(["--os-cloud", "lab", "image", "save", "--file"])
        .arg(&saved)
        .arg(&id)
        .env("OS_CLIENT_CONFIG_FILE", clouds)
        .env_remove("OS_CLOUD")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read(&saved).unwrap() == bytes,
        "the saved image differs from the uploaded one"
    );

    // placement and nova: every compute, up.
    let rps = openstack_until(clouds, &["resource", "provider", "list"], 180, |v| {
        column(v, "name") == computes
    });
    assert_eq!(column(&rps, "name"), computes, "{rps}");
    let services = openstack_until(clouds, &["compute", "service", "list"], 180, |v| {
        v.as_array().is_some_and(|l| {
            l.iter().all(|s| s["State"] == "up")
                && computes.iter().all(|c| {
                    l.iter()
                        .any(|s| s["Binary"] == "nova-compute" && s["Host"] == c.as_str())
                })
        })
    });
    let binaries = column(&services, "Binary");
    for b in ["nova-conductor", "nova-scheduler"] {
        assert!(binaries.iter().any(|x| x == b), "{services}");
    }
    let hypervisors = openstack_until(clouds, &["hypervisor", "list"], 120, |v| {
        column(v, "Hypervisor Hostname") == computes
    });
    assert_eq!(column(&hypervisors, "Hypervisor Hostname"), computes);

    // neutron: a network, a subnet and a port.
    let net = openstack(clouds, &["network", "create", "private"]).unwrap();
    assert_eq!(net["status"], "ACTIVE", "{net}");
    let subnet = openstack(
        clouds,
        &[
            "subnet",
            "create",
            "--network",
            "private",
            "--subnet-range",
            "10.20.0.0/24",
            "private-v4",
        ],
    )
    .unwrap();
    assert_eq!(subnet["cidr"], "10.20.0.0/24", "{subnet}");
    let port = openstack(clouds, &["port", "create", "--network", "private", "spare"]).unwrap();
    assert!(port["fixed_ips"].to_string().contains("10.20.0."), "{port}");

    // nova: a flavor, then a server from that image on that network: ACTIVE, its port
    // bound to its compute by Open vSwitch.
    openstack(
        clouds,
        &[
            "flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", "m1.lab",
        ],
    )
    .unwrap();
    let server = openstack(
        clouds,
        &[
            "server",
            "create",
            "--flavor",
            "m1.lab",
            "--image",
            &id,
            "--network",
            "private",
            "--wait",
            "vm-1",
        ],
    )
    .unwrap();
    assert_eq!(server["status"], "ACTIVE", "{server}");
    let host = server["OS-EXT-SRV-ATTR:host"].as_str().unwrap_or_default();
    assert!(computes.iter().any(|c| c == host), "{server}");
    let ports = openstack(
        clouds,
        &[
            "port",
            "list",
            "--server",
            server["id"].as_str().unwrap(),
            "--long",
        ],
    )
    .unwrap();
    let pid = ports[0]["ID"]
        .as_str()
        .expect("the server's port")
        .to_string();
    let bound = openstack(clouds, &["port", "show", &pid]).unwrap();
    assert_eq!(bound["binding_vif_type"], "ovs", "{bound}");
    assert_eq!(bound["binding_host_id"], host, "{bound}");
}

/// The interfaces of each service type in `openstack catalog list -f json`.
fn catalog(v: &serde_json::Value) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for s in v.as_array().expect("a list") {
        let ty = s["Type"].as_str().unwrap_or_default().to_string();
        let mut interfaces: Vec<String> = match &s["Endpoints"] {
            serde_json::Value::Array(eps) => eps
                .iter()
                .filter_map(|e| e["interface"].as_str().map(str::to_string))
                .collect(),
            // older clients print "RegionOne\n  public: http://..."
            serde_json::Value::String(text) => text
                .lines()
                .filter_map(|l| l.trim().split_once(':').map(|(i, _)| i.to_string()))
                .filter(|i| ["public", "internal", "admin"].contains(&i.as_str()))
                .collect(),
            _ => Vec::new(),
        };
        interfaces.sort();
        out.insert(ty, interfaces);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_cloud_comes_up_from_power_off_issues_tokens_and_changes_only_what_changed() {
    let _g = serial().await;
    assert!(
        repo().join("lab/state/images/.lab-real-images.sha256").is_file(),
        "the lab's images are the busybox stand-ins: start it with lab/lab.sh up --real-images (scripts/test.sh does)"
    );
    let client = client();
    assert!(client.is_file(), "{}", client.display());
    let spare_lab = scaled_out();
    let ev4 = load(&spare_lab.inventory());
    spare_off(&ev4).await;
    power_everything_off().await;
    let lab = LabCopy::real("");
    let inv = lab.inv();
    let runs = tempfile::tempdir().unwrap();
    let run = |name: &str| runs.path().join(name);
    let mut seen = Seen::default();

    // 1. From power-off: the plan lists the tasks; one apply does what it says.
    let (o, planned, err) = provision(&["plan", &inv]);
    assert!(o.status.success(), "{planned}\n{err}");
    seen.add("plan 1", &format!("{planned}\n{err}"));
    for t in [
        "keystone/database",
        "keystone/db_sync",
        "keystone/bootstrap",
        "glance_api/register",
    ] {
        assert!(
            planned.contains(&format!(
                "> run {t} on 1 host: lab-controller-0 (never run)"
            )),
            "{t} not planned:\n{planned}"
        );
    }
    let (ok, out, err) = apply_run(&inv, &run("cold"));
    seen.add_run("cold apply", &out, &err, &run("cold"));
    assert!(ok, "{out}\n{err}");
    assert_plan_is_apply(&planned, &out);

    // 2. The admin's clouds.yaml issues a token on the public VIP; the catalogue has
    // identity and every enabled service, each with public and internal endpoints.
    let (o, clouds_yaml, err) = provision(&["credentials", &inv]);
    assert!(o.status.success(), "{err}");
    let ev = load(&lab.inventory());
    let public = format!("http://{}:5000", vip(&ev, "external"));
    assert!(
        clouds_yaml.contains(&format!("auth_url: \"{public}/v3\"")),
        "{clouds_yaml}"
    );
    let clouds = runs.path().join("clouds.yaml");
    std::fs::write(&clouds, &clouds_yaml).unwrap();
    let token = openstack(&clouds, &["token", "issue"]).unwrap();
    let first = token["id"].as_str().unwrap().to_string();
    assert!(
        token["project_id"].as_str().is_some_and(|p| !p.is_empty()),
        "{token}"
    );
    let listed = catalog(&openstack(&clouds, &["catalog", "list"]).unwrap());
    assert_eq!(
        listed.get("identity").map(Vec::as_slice),
        Some(&["admin".to_string(), "internal".into(), "public".into()][..]),
        "{listed:?}"
    );
    let types = registered_types(&ev);
    assert!(types.len() >= 5, "{types:?}");
    for (ty, svc) in &types {
        assert_eq!(
            listed.get(ty).map(Vec::as_slice),
            Some(&["internal".to_string(), "public".into()][..]),
            "{svc} ({ty}) in the catalogue: {listed:?}"
        );
    }

    // 3. Again: no task, no container recreated; the token still validates.
    let f = fleet(&ev).await;
    let ctl = node(&f, "lab-controller-0");
    let ids_before = sh(ctl, "podman ps -q --no-trunc | sort").await;
    let (ok, out, err) = apply_run(&inv, &run("again"));
    seen.add_run("second apply", &out, &err, &run("again"));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("No changes."), "{out}");
    assert_eq!(sh(ctl, "podman ps -q --no-trunc | sort").await, ids_before);
    let admin = openstack(&clouds, &["token", "issue"]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(validates(&public, &admin, &first), 200);
    assert_eq!(validates(&public, &admin, "not-a-token"), 404);

    // 3b. The cloud works: images, placement, compute, networking, a server ACTIVE.
    a_server_goes_active(&clouds, &ev, runs.path());

    // 4. A wrong database root password (a test copy of the secrets): the database task
    // fails its host's step with its own error lines; the summary names it; a re-run
    // with the right password converges.
    let wrong = LabCopy::real("");
    let secrets = std::fs::read_to_string(repo().join("inventories/lab.secrets.toml")).unwrap();
    let line = secrets
        .lines()
        .find(|l| l.starts_with("mariadb_root_password"))
        .expect("mariadb_root_password in lab.secrets.toml");
    wrong.edit_file(
        "inventories/lab.secrets.toml",
        line,
        "mariadb_root_password = \"wrong-9c1e5d7b2a\"",
    );
    let (ok, out, err) = apply_run(&wrong.inv(), &run("wrong"));
    seen.add_run("wrong password", &out, &err, &run("wrong"));
    assert!(!ok, "{out}\n{err}");
    assert!(
        out.contains("task keystone/database") && out.contains("Access denied for user 'root'"),
        "{out}\n{err}"
    );
    assert!(
        !out.contains("wrong-9c1e5d7b2a") && !err.contains("wrong-9c1e5d7b2a"),
        "the wrong password is shown"
    );
    let (ok, out, err) = apply_run(&inv, &run("fixed"));
    seen.add_run("right password", &out, &err, &run("fixed"));
    assert!(ok, "{out}\n{err}");
    let (o, planned, err) = provision(&["plan", &inv]);
    assert!(o.status.success(), "{err}");
    assert!(planned.contains("No changes."), "{planned}");

    // 5. A new keystone image tag: the plan runs keystone's schema sync and recreates
    // keystone (its definition file holds the image), nothing else; apply does that.
    sh(
        ctl,
        "podman tag localhost/provision-lab/keystone:latest localhost/provision-lab/keystone:v2",
    )
    .await;
    let tagged = LabCopy::real("");
    tagged.edit("[cloud]\n", "[cloud]\ntags = { keystone = \"v2\" }\n");
    let (o, planned, err) = provision(&["plan", &tagged.inv()]);
    assert!(o.status.success(), "{planned}\n{err}");
    seen.add("plan v2", &format!("{planned}\n{err}"));
    let tasks: Vec<&str> = planned
        .lines()
        .filter(|l| l.starts_with("  > run "))
        .collect();
    assert_eq!(
        tasks,
        vec!["  > run keystone/db_sync on 1 host: lab-controller-0 (image tag changed (latest -> v2))"],
        "{planned}"
    );
    let c = plan_counts(&planned);
    assert_eq!(
        (c["run"], c["recreated"], c["written"], c["fixed"]),
        (1, 1, 1, 0),
        "{planned}"
    );
    assert!(!c.contains_key("created"), "{planned}");
    let (ok, out, err) = apply_run(&tagged.inv(), &run("v2"));
    seen.add_run("image tag", &out, &err, &run("v2"));
    assert!(ok, "{out}\n{err}");
    assert_plan_is_apply(&planned, &out);
    assert!(sh(ctl, "podman inspect keystone --format '{{.ImageName}}'")
        .await
        .contains("keystone:v2"));
    assert_eq!(
        validates(&public, &admin, &first),
        200,
        "after keystone's upgrade"
    );

    // 6. A compute added to the inventory (the lab's spare node): the next apply
    // provisions and configures it, runs host discovery again (its input, the hosts of
    // nova_compute, changed), and it is a hypervisor with no other command.
    let scaled = scaled_out();
    scaled.edit("[cloud]\n", "[cloud]\ntags = { keystone = \"v2\" }\n");
    let (o, planned, err) = provision(&["plan", &scaled.inv()]);
    assert!(o.status.success(), "{planned}\n{err}");
    seen.add("plan scale-out", &format!("{planned}\n{err}"));
    assert!(
        planned.contains("> run nova_conductor/discover_hosts on 1 host: lab-controller-0 (the hosts of nova_compute changed (+lab-novacompute-3))"),
        "{planned}"
    );
    let (ok, out, err) = apply_run(&scaled.inv(), &run("scale-out"));
    seen.add_run("scale-out", &out, &err, &run("scale-out"));
    assert!(ok, "{out}\n{err}");
    let computes = hosts_of(&ev4, "nova_compute");
    assert_eq!(computes.len(), 4, "{computes:?}");
    let hypervisors = openstack(&clouds, &["hypervisor", "list"]).unwrap();
    assert_eq!(column(&hypervisors, "Hypervisor Hostname"), computes);

    // 7. After all of that, again: no task, nothing recreated, plan exits 0.
    let ids = sh(ctl, "podman ps -q --no-trunc | sort").await;
    let (ok, out, err) = apply_run(&scaled.inv(), &run("last"));
    seen.add_run("last apply", &out, &err, &run("last"));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("No changes."), "{out}");
    assert_eq!(sh(ctl, "podman ps -q --no-trunc | sort").await, ids);
    let (o, planned, err) = provision(&["plan", &scaled.inv()]);
    assert_eq!(o.status.code(), Some(0), "{planned}\n{err}");
    assert!(planned.contains("No changes."), "{planned}");

    // 7b. Scale-in: the spare compute out of the inventory again, with
    // --power-off-removed: it is powered off before the overcloud stage, and
    // forget_computes (its input, the hosts of nova_compute, changed) deletes its
    // nova-compute service once nova sees it down: no hypervisor, resource provider or
    // service of it is left.
    let back = LabCopy::real("");
    back.edit("[cloud]\n", "[cloud]\ntags = { keystone = \"v2\" }\n");
    let (o, planned, err) = provision(&["plan", &back.inv(), "--power-off-removed"]);
    assert!(o.status.success(), "{planned}\n{err}");
    seen.add("plan scale-in", &format!("{planned}\n{err}"));
    assert!(
        planned.contains("> run nova_conductor/forget_computes on 1 host: lab-controller-0 (the hosts of nova_compute changed (-lab-novacompute-3))"),
        "{planned}"
    );
    let (ok, out, err) = apply_with(&back.inv(), &run("scale-in"), &["--power-off-removed"]);
    seen.add_run("scale-in", &out, &err, &run("scale-in"));
    assert!(ok, "{out}\n{err}");
    let three = hosts_of(&ev, "nova_compute");
    let services = openstack(
        &clouds,
        &["compute", "service", "list", "--service", "nova-compute"],
    )
    .unwrap();
    assert_eq!(column(&services, "Host"), three, "{services}");
    let hypervisors = openstack(&clouds, &["hypervisor", "list"]).unwrap();
    assert_eq!(column(&hypervisors, "Hypervisor Hostname"), three);
    let rps = openstack(&clouds, &["resource", "provider", "list"]).unwrap();
    assert_eq!(column(&rps, "name"), three, "{rps}");
    let agents = openstack(
        &clouds,
        &["network", "agent", "list", "--host", "lab-novacompute-3"],
    )
    .unwrap();
    assert_eq!(agents.as_array().map(Vec::len), Some(0), "{agents}");

    // 8. No secret in any output or event log (every value of the secrets file and every
    // generated key, raw and encoded); the key files 0600 on the undercloud and on the
    // node, their folders 0700.
    let keyed = with_keys(&ev, &f).await;
    for (what, text) in &seen.texts {
        let found = keyed.cloud.secrets.found_in(text);
        assert!(found.is_empty(), "{what} shows the secrets {found:?}");
        assert!(
            !text.contains("wrong-9c1e5d7b2a"),
            "{what} shows the wrong password"
        );
    }
    assert_eq!(
        sh(
            &f.undercloud,
            "stat -c '%a' /var/lib/provision/lab.keys.json"
        )
        .await
        .trim(),
        "600"
    );
    let modes = sh(
        ctl,
        "stat -c '%n %a %u' /var/lib/overcloud/keystone/fernet-keys /var/lib/overcloud/keystone/fernet-keys/* /var/lib/overcloud/keystone/credential-keys /var/lib/overcloud/keystone/credential-keys/*",
    )
    .await;
    let lines: Vec<&str> = modes.lines().collect();
    assert_eq!(lines.len(), 6, "{modes}");
    for l in lines {
        let want = if l.contains("-keys ") {
            "700 42425"
        } else {
            "600 42425"
        };
        assert!(l.ends_with(want), "{l}: want {want}");
    }

    // The real services stop with the scenario: the next tests start from empty hosts,
    // the spare node powered off as the lab started it.
    wipe(&f).await;
    spare_off(&ev4).await;
}

/// The lab's inventory with the lab's spare node (`lab/lab.sh up --spare 1`: BMC system
/// lab-node-17 at 127.0.10.17) as a fourth compute.
fn scaled_out() -> LabCopy {
    let spare = "\n[[nodes]]\nrole = \"Compute\"\nctlplane_ip = \"127.0.10.17\"\nmacs = [\"52:54:00:0a:00:11\"]\nbmc = { driver = \"redfish\", scheme = \"http\", address = \"127.0.10.1\", port = 8000, system_id = \"lab-node-17\", username = \"admin\", password = { secret = \"lab_bmc_password\" } }\n";
    let scaled = LabCopy::real(spare);
    scaled.edit(
        "[roles.Compute]\ncount = 3\n",
        "[roles.Compute]\ncount = 4\n",
    );
    scaled
}

/// The spare node emptied (it may run a compute of an earlier, failed run, which would
/// join this run's cloud) and powered off, as `lab/lab.sh up --powered-off` leaves it.
async fn spare_off(ev4: &Evaluation) {
    power(ev4, "lab-node-17", "On");
    wait_ssh("lab-novacompute-3", true);
    let f = fleet(ev4).await;
    sh(node(&f, "lab-novacompute-3"), common::EMPTY_NODE).await;
    power(ev4, "lab-node-17", "ForceOff");
    wait_ssh("lab-novacompute-3", false);
}
