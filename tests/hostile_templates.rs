//! Hostile inventory values against every template (issue 13, item 3). The repository's
//! real inventories, in memory, get `vars` values and secrets full of shell, Python,
//! JSON and line syntax; the rendered files are then read by the programs that read
//! them: real bash runs every rendered shell script, with MOCKS standing in for the
//! commands it calls; real python3 parses local_settings.py; serde_json and the toml
//! crate read the JSON and TOML; and every line-oriented config either keeps the value
//! on its line or refuses it with an error located in its template. No lab, no host.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use provision::evaluate::Evaluation;
use provision::source::MemoryTree;
use provision::state::{DesiredFile, FileKind};

const INVENTORIES: [&str; 3] = [
    "inventories/lab.toml",
    "inventories/vagrant.toml",
    "inventories/example-production.toml",
];
const LAB: &str = "inventories/lab.toml";

// ---------------------------------------------------------------------------------------
// Inventory edits and evaluation
// ---------------------------------------------------------------------------------------

/// A TOML basic string (a JSON string is one, for the characters used here).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn toml_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", items.join(", "))
}

/// Adds `key = value` lines (TOML values) to the `[vars]` of `inventory`.
fn set_vars(tree: &mut MemoryTree, inventory: &str, vars: &[(&str, String)]) {
    let mut table = String::from("[vars]\n");
    for (k, v) in vars {
        // A variable the inventory sets already: that line is replaced (a second one
        // would be a duplicate key).
        let prefix = format!("\n{k} = ");
        let text = read(tree, inventory);
        if let Some(at) = text.find(&prefix) {
            let end = text[at + 1..]
                .find('\n')
                .map(|e| at + 1 + e)
                .unwrap_or(text.len());
            let line = text[at + 1..end].to_string();
            edit(
                tree,
                inventory,
                &format!("\n{line}\n"),
                &format!("\n{k} = {v}\n"),
            );
        } else {
            table.push_str(&format!("{k} = {v}\n"));
        }
    }
    edit(tree, inventory, "[vars]\n", &table);
}

/// Sets secret `name` of `inventory` (its `<name>.secrets.toml`) to `value`.
fn set_secret(tree: &mut MemoryTree, inventory: &str, name: &str, value: &str) {
    let path = inventory.replace(".toml", ".secrets.toml");
    let text = read(tree, &path);
    let prefix = format!("{name} = ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no secret {name} in {path}"))
        .to_string();
    edit(
        tree,
        &path,
        &format!("{line}\n"),
        &format!("{prefix}{}\n", toml_str(value)),
    );
}

fn render(tree: &MemoryTree, inventory: &str) -> Evaluation {
    match eval(tree, inventory) {
        Ok(ev) => ev,
        Err(f) => panic!("{inventory} must render:\n{}", f.render()),
    }
}

/// The rendered errors of an evaluation that must be refused.
fn refusal(tree: &MemoryTree, inventory: &str) -> String {
    match eval(tree, inventory) {
        Ok(_) => panic!("{inventory} must be refused"),
        Err(f) => f.render(),
    }
}

/// Every file rendered from a template whose name ends with `suffix`, with its host.
/// The rendered files of a template (`TEMPLATE`, or `TEMPLATE@SERVICE`: only those the
/// service owns, for a template every service renders, as the bootstrap tasks').
fn rendered<'a>(ev: &'a Evaluation, template: &str) -> Vec<(&'a str, &'a DesiredFile)> {
    let (suffix, service) = match template.split_once('@') {
        Some((t, s)) => (t, Some(s)),
        None => (template, None),
    };
    let mut out = Vec::new();
    for (host, hs) in &ev.state.hosts {
        for f in hs.files.values() {
            if service.is_some_and(|s| f.service != s) {
                continue;
            }
            if matches!(&f.kind, FileKind::Template { template } if template.ends_with(suffix)) {
                out.push((host.as_str(), f));
            }
        }
    }
    out
}

fn is_shell(f: &DesiredFile) -> bool {
    matches!(&f.kind, FileKind::Template { template }
        if template.ends_with(".sh.j2") || template.ends_with("rabbitmq-env.conf.j2"))
}

// ---------------------------------------------------------------------------------------
// Real bash, MOCK commands
// ---------------------------------------------------------------------------------------

/// A program of this machine, by name (the scripts run with a PATH of MOCKS only).
fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is needed by this test"))
}

/// Every external command the rendered shell scripts call. Each is a MOCK: the real
/// program never runs. The scripts' PATH holds these MOCKS only, so a command left out
/// here fails with "command not found", which the test reports.
const MOCKED: &[&str] = &[
    "awk",
    "cat",
    "ceph-mon",
    "ceph-osd",
    "ceph-volume",
    "chown",
    "date",
    "grep",
    "install",
    "mariadb-install-db",
    "mariadbd",
    "mkdir",
    "modprobe",
    "nova-manage",
    "ovs-vsctl",
    "ovs-vswitchd",
    "ovsdb-server",
    "ovsdb-tool",
    "rm",
    "seq",
    "setpriv",
    "sleep",
    "touch",
];

/// A directory of MOCK commands, and the marker file a hostile value creates if it runs
/// as code (with the shell's own `echo` and redirection: no MOCK involved).
struct Mocks {
    dir: tempfile::TempDir,
}

/// One call of a MOCK: its name and its arguments, byte-exact.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    cmd: String,
    args: Vec<String>,
}

struct Run {
    status: Option<i32>,
    stderr: String,
    calls: Vec<Call>,
}

impl Mocks {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir bin");
        let bash = program("bash");
        for cmd in MOCKED {
            // ceph-volume: `lvm list DEVICE` finds no OSD, so that the script prepares it.
            let behaviour = if *cmd == "ceph-volume" {
                "[[ ${1-} == lvm && ${2-} == list ]] && exit 1\n"
            } else {
                ""
            };
            let text = format!(
                "#!{bash}\n\
                 # MOCK of `{cmd}` (tests/hostile_templates.rs): the real program never runs.\n\
                 # Records its name, its argument count and each argument in $MOCK_LOG, each\n\
                 # NUL-terminated (an argument may hold a line feed), then succeeds.\n\
                 {{ printf '%s\\0' \"${{0##*/}}\" \"$#\"; if (( $# )); then printf '%s\\0' \"$@\"; fi; }} >> \"$MOCK_LOG\"\n\
                 {behaviour}exit 0\n",
                bash = bash.display()
            );
            let path = bin.join(cmd);
            std::fs::write(&path, text).expect("write mock");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("chmod mock");
        }
        Mocks { dir }
    }

    fn marker(&self) -> PathBuf {
        self.dir.path().join("PWNED")
    }

    /// `bash -n`, then a run of `script` with the MOCKS as its only PATH.
    fn run(&self, label: &str, script: &str) -> Run {
        let work = tempfile::tempdir_in(self.dir.path()).expect("tempdir");
        let file = work.path().join("script");
        let log = work.path().join("mock.log");
        std::fs::write(&file, script).expect("write script");
        std::fs::write(&log, "").expect("write log");
        let bash = program("bash");
        let check = Command::new(&bash)
            .arg("-n")
            .arg(&file)
            .output()
            .expect("bash -n");
        assert!(
            check.status.success(),
            "{label}: bash -n fails: {}\n{script}",
            String::from_utf8_lossy(&check.stderr)
        );
        let out = Command::new(program("timeout"))
            .arg("30")
            .arg(&bash)
            .arg(&file)
            .env_clear()
            .env("PATH", self.dir.path().join("bin"))
            .env("MOCK_LOG", &log)
            .current_dir(work.path())
            .output()
            .expect("run script");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let raw = std::fs::read(&log).expect("read mock log");
        Run {
            status: out.status.code(),
            stderr,
            calls: parse_calls(&raw),
        }
    }
}

/// The MOCK log: per call, its name, its argument count, then each argument.
fn parse_calls(raw: &[u8]) -> Vec<Call> {
    let mut fields = raw
        .split(|b| *b == 0)
        .map(|f| String::from_utf8(f.to_vec()).expect("UTF-8 argument"));
    let mut calls = Vec::new();
    while let Some(cmd) = fields.next() {
        if cmd.is_empty() {
            break; // the end of the log
        }
        let argc: usize = fields.next().and_then(|n| n.parse().ok()).expect("argc");
        let args: Vec<String> = (0..argc)
            .map(|_| fields.next().expect("argument"))
            .collect();
        calls.push(Call { cmd, args });
    }
    calls
}

/// Hostile strings: each runs code (creates `marker`) if a script lets it out of its
/// shell word, breaks naive quoting, or expands (globs, variables, history, braces).
/// None holds `:` (the bridge mappings are split on it), a line feed or a tab (which
/// the scripts' comments refuse: see `refused_values_are_located`).
fn hostile(marker: &Path) -> Vec<String> {
    let m = marker.display();
    vec![
        format!("/dev/sdb; echo pwned > {m}"),
        format!("$(echo pwned > {m})"),
        format!("`echo pwned > {m}`"),
        "a'b\"c".to_string(),
        format!("x'; echo pwned > {m}; '"),
        format!("\"; echo pwned > {m}; \""),
        format!("\\'$(echo pwned > {m})\\'"),
        format!("* ?[a] ~ {{a,b}} && echo pwned > {m} | cat"),
        "$'\\x41' ${HOME} $PATH !! # end".to_string(),
        "  two  spaces  ".to_string(),
        String::new(),
        "-rf".to_string(),
    ]
}

#[test]
fn shell_scripts_pass_hostile_vars_as_one_argument_each() {
    let mocks = Mocks::new();
    let values = hostile(&mocks.marker());
    let devices = values.clone();
    // Bridges: every non-empty hostile value (an empty bridge name is no mapping).
    let bridges: Vec<String> = values.iter().filter(|v| !v.is_empty()).cloned().collect();
    let mut mappings = vec!["datacentre:br-ex".to_string()];
    mappings.extend(
        bridges
            .iter()
            .enumerate()
            .map(|(i, b)| format!("phys{i}:{b}")),
    );
    // Ports: each hostile bridge gets a hostile interface (the next value).
    let ports: Vec<(String, String)> = bridges
        .iter()
        .enumerate()
        .map(|(i, b)| (b.clone(), values[(i + 1) % values.len()].clone()))
        .filter(|(_, iface)| !iface.is_empty())
        .collect();
    let port_values: Vec<String> = ports.iter().map(|(b, i)| format!("{b}:{i}")).collect();

    let (mut osd_scripts, mut bridge_scripts, mut scripts) = (0, 0, 0);
    for inv in INVENTORIES {
        let mut tree = repo_tree();
        set_vars(
            &mut tree,
            inv,
            &[
                ("ceph_osd_devices", toml_list(&devices)),
                ("neutron_bridge_mappings", toml_list(&mappings)),
                ("ovs_bridge_ports", toml_list(&port_values)),
            ],
        );
        let ev = render(&tree, inv);
        for (host, hs) in &ev.state.hosts {
            for f in hs.files.values().filter(|f| is_shell(f)) {
                let label = format!("{inv} {host}:{}", f.path);
                let run = mocks.run(&label, &f.content);
                scripts += 1;
                assert!(
                    !mocks.marker().exists(),
                    "{label}: a hostile value ran as code\n{}",
                    f.content
                );
                assert!(
                    !run.stderr.contains("command not found"),
                    "{label}: a command without its MOCK: {}",
                    run.stderr
                );
                let of = |cmd: &str| -> Vec<&Call> {
                    run.calls.iter().filter(|c| c.cmd == cmd).collect()
                };
                if f.path.ends_with("/ceph-osd-start") {
                    osd_scripts += 1;
                    // every device, in order, one argument each, byte-exact
                    let listed: Vec<String> = of("ceph-volume")
                        .iter()
                        .filter(|c| c.args.len() == 3 && c.args[..2] == ["lvm", "list"])
                        .map(|c| c.args[2].clone())
                        .collect();
                    assert_eq!(listed, devices, "{label}: ceph-volume lvm list");
                    let prepared: Vec<String> = of("ceph-volume")
                        .iter()
                        .filter(|c| {
                            c.args.len() == 5
                                && c.args[..4] == ["lvm", "prepare", "--bluestore", "--data"]
                        })
                        .map(|c| c.args[4].clone())
                        .collect();
                    assert_eq!(prepared, devices, "{label}: ceph-volume lvm prepare");
                }
                if f.path.ends_with("/vswitchd-start") {
                    let vsctl = of("ovs-vsctl");
                    let init = vsctl
                        .iter()
                        .find(|c| c.args.iter().any(|a| a == "init"))
                        .unwrap_or_else(|| panic!("{label}: no ovs-vsctl init"));
                    let fqdn = &ev.cloud.host(host).expect("host").fqdn;
                    // ovs-vsctl reads a double-quoted value as a JSON string
                    assert!(
                        init.args.contains(&format!(
                            "external_ids:system-id={}",
                            serde_json::to_string(host).expect("json")
                        )) && init.args.contains(&format!(
                            "external_ids:hostname={}",
                            serde_json::to_string(fqdn).expect("json")
                        )),
                        "{label}: {init:?}"
                    );
                    // add-br NAME -- set bridge NAME datapath_type=TYPE: the name whole, twice
                    let datapath = format!(
                        "datapath_type={}",
                        ev.cloud.vars["ovs_datapath_type"]
                            .as_str()
                            .unwrap_or_default()
                    );
                    let added: Vec<String> = vsctl
                        .iter()
                        .filter(|c| c.args.len() == 10 && c.args[3] == "add-br")
                        .inspect(|c| {
                            assert_eq!(
                                c.args[5..],
                                ["--", "set", "bridge", c.args[4].as_str(), datapath.as_str()],
                                "{label}: {c:?}"
                            )
                        })
                        .map(|c| c.args[4].clone())
                        .collect();
                    let l3 = ev
                        .cloud
                        .host(host)
                        .is_some_and(|h| h.services.iter().any(|s| s == "neutron_l3_agent"));
                    if l3 {
                        bridge_scripts += 1;
                        let mut want = vec!["br-ex".to_string()];
                        want.extend(bridges.iter().cloned());
                        assert_eq!(added, want, "{label}: ovs-vsctl add-br");
                        let plugged: Vec<(String, String)> = vsctl
                            .iter()
                            .filter(|c| c.args.len() == 6 && c.args[3] == "add-port")
                            .map(|c| (c.args[4].clone(), c.args[5].clone()))
                            .collect();
                        assert_eq!(plugged, ports, "{label}: ovs-vsctl add-port");
                    } else {
                        assert!(added.is_empty(), "{label}: bridges on a non-network node");
                    }
                    assert_eq!(of("ovs-vswitchd").len(), 1, "{label}: exec ovs-vswitchd");
                }
                if f.path.ends_with("/rabbitmq-env.conf") {
                    // sourced by rabbitmq-server's sh scripts: the values come back whole
                    let out = Command::new(program("bash"))
                        .arg("-c")
                        .arg(r#". "$1"; printf '%s\0' "$NODENAME" "$ERL_EPMD_ADDRESS""#)
                        .arg("_")
                        .arg(write_temp(&mocks, &f.content))
                        .output()
                        .expect("source rabbitmq-env.conf");
                    let got = String::from_utf8_lossy(&out.stdout).into_owned();
                    let addr = ev.cloud.host(host).expect("host").addresses["internal_api"];
                    assert_eq!(got, format!("rabbit@{host}\0{addr}\0"), "{label}");
                }
                // the scripts that end with `exec` of a MOCK get there
                let execs = [
                    "/ceph-mon-start",
                    "/mariadb-start",
                    "/ovsdb-start",
                    "/vswitchd-start",
                ];
                if execs.iter().any(|e| f.path.ends_with(e)) {
                    assert_eq!(run.status, Some(0), "{label}: {}", run.stderr);
                }
            }
        }
    }
    assert!(
        osd_scripts >= 2,
        "ceph-osd-start rendered {osd_scripts} times"
    );
    assert!(
        bridge_scripts >= 2,
        "vswitchd-start with bridges {bridge_scripts} times"
    );
    assert!(scripts > 50, "only {scripts} scripts ran");
    assert!(!mocks.marker().exists());
}

fn write_temp(mocks: &Mocks, text: &str) -> PathBuf {
    let f = tempfile::NamedTempFile::new_in(mocks.dir.path()).expect("tempfile");
    let (_, path) = f.keep().expect("keep");
    std::fs::write(&path, text).expect("write");
    path
}

// ---------------------------------------------------------------------------------------
// Python: local_settings.py
// ---------------------------------------------------------------------------------------

/// Every top-level statement of a Python file, by real python3's parser: an assignment
/// to one name as `[name, its value if it is a str literal]`, anything else as
/// `[node type, null]`.
fn python_statements(text: &str) -> Vec<(String, Option<String>)> {
    const SCRIPT: &str = r#"
import ast, json, sys
tree = ast.parse(open(sys.argv[1], encoding="utf-8").read())
out = []
for node in tree.body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            value = None
        out.append([node.targets[0].id, value if isinstance(value, str) else None])
    else:
        out.append([type(node).__name__, None])
print(json.dumps(out))
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("local_settings.py");
    std::fs::write(&file, text).expect("write");
    let out = Command::new(program("python3"))
        .arg("-c")
        .arg(SCRIPT)
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python3 cannot parse it: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("statements as JSON")
}

#[test]
fn local_settings_py_keeps_hostile_values_as_string_literals() {
    let zone = "UTC'\nimport os; os.system('echo pwned > /tmp/PWNED')\nx = '".to_string();
    let role = "member\"\"\"'''\\\u{1}\r\té\u{2028}\u{1F600}".to_string();
    // no control character in the secret: the secrets file may refuse those
    let key = "k'\"\\ #)]} $(x) \"\"\"".to_string();
    for inv in INVENTORIES {
        let baseline = render(&repo_tree(), inv);
        let mut tree = repo_tree();
        set_vars(
            &mut tree,
            inv,
            &[
                ("horizon_time_zone", toml_str(&zone)),
                ("horizon_keystone_default_role", toml_str(&role)),
            ],
        );
        set_secret(&mut tree, inv, "horizon_secret_key", &key);
        let ev = render(&tree, inv);
        let files = rendered(&ev, "horizon/local_settings.py.j2");
        assert!(!files.is_empty(), "{inv}: no local_settings.py");
        for (host, f) in files {
            let got = python_statements(&f.content);
            let want = python_statements(&baseline.state.hosts[host].files[&f.path].content);
            // exactly the same statements, in the same order: nothing injected
            let names = |s: &[(String, Option<String>)]| -> Vec<String> {
                s.iter().map(|(n, _)| n.clone()).collect()
            };
            assert_eq!(names(&got), names(&want), "{inv} {host}");
            let value = |name: &str| -> Option<String> {
                got.iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, v)| v.clone())
            };
            assert_eq!(value("TIME_ZONE"), Some(zone.clone()), "{inv} {host}");
            assert_eq!(
                value("OPENSTACK_KEYSTONE_DEFAULT_ROLE"),
                Some(role.clone()),
                "{inv} {host}"
            );
            assert_eq!(value("SECRET_KEY"), Some(key.clone()), "{inv} {host}");
            // the untouched values are as before
            for name in ["OPENSTACK_HOST", "OPENSTACK_KEYSTONE_URL", "WEBROOT"] {
                let before = want.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
                assert_eq!(Some(value(name)), before, "{inv} {host} {name}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// JSON: definitions.json
// ---------------------------------------------------------------------------------------

#[test]
fn definitions_json_keeps_a_hostile_password_byte_exact() {
    let password = "p\"w\\d</script>'{}[],: $(x) é".to_string();
    for inv in INVENTORIES {
        let mut tree = repo_tree();
        set_secret(&mut tree, inv, "rabbitmq_password", &password);
        let ev = render(&tree, inv);
        let files = rendered(&ev, "rabbitmq/definitions.json.j2");
        assert!(!files.is_empty(), "{inv}: no definitions.json");
        for (host, f) in files {
            let v: serde_json::Value = serde_json::from_str(&f.content)
                .unwrap_or_else(|e| panic!("{inv} {host}: {e}\n{}", f.content));
            assert_eq!(v["users"][0]["password"], password.as_str(), "{inv} {host}");
            assert_eq!(v["users"].as_array().map(Vec::len), Some(1), "{inv} {host}");
        }
    }
    // A control character too, if the secrets file takes it.
    let mut tree = repo_tree();
    let odd = "a\nb\u{1}\"".to_string();
    set_secret(&mut tree, LAB, "rabbitmq_password", &odd);
    if let Ok(ev) = eval(&tree, LAB) {
        for (host, f) in rendered(&ev, "rabbitmq/definitions.json.j2") {
            let v: serde_json::Value = serde_json::from_str(&f.content).expect("JSON");
            assert_eq!(v["users"][0]["password"], odd.as_str(), "{host}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Line-oriented configs
// ---------------------------------------------------------------------------------------

/// Where a hostile value goes in: a `vars` value, or a secret.
#[derive(Clone, Copy)]
enum Input {
    Var(&'static str),
    /// A list variable: the value is its one item.
    VarItem(&'static str),
    Secret(&'static str),
}

/// How the template writes it.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Filter {
    /// `line_value`: a value with a control character is refused; any other lands as
    /// it is, on its line.
    Line,
    /// `word`: anything but a bare word is refused.
    Word,
    /// A quoting filter that escapes a line feed (toml_string, mycnf_string,
    /// sql_string): every value lands on its line, quoted.
    Escapes,
    /// A quoting filter that refuses control characters (rsyslog_param, haproxy_arg).
    Quotes,
}

struct Case {
    input: Input,
    /// The template (name suffix) the value reaches.
    template: &'static str,
    filter: Filter,
    /// With [`ODD`]: the line as rendered (a quoting filter's output), if it is checked.
    odd_line: Option<&'static str>,
}

/// Printable but hostile to line formats: comment starts, quotes, braces, expansions,
/// uwsgi's `@(exec://...)` and `%n`, a backslash (not at the end).
const ODD: &str = r#"a #;!{}[]$(x) 'q' "d" \ @(exec://id) %n y"#;
/// A line feed that would start a line of its own.
const NEWLINE: &str = "ok\nINJECTED = 1";

fn cases() -> Vec<Case> {
    use Filter::*;
    use Input::*;
    let case = |input, template, filter, odd_line| Case {
        input,
        template,
        filter,
        odd_line,
    };
    vec![
        case(Var("ceph_fsid"), "ceph_mon/ceph.conf.j2", Line, None),
        case(
            Secret("ceph_mon_key"),
            "ceph_mon/ceph.keyring.j2",
            Line,
            None,
        ),
        case(
            Secret("ceph_bootstrap_osd_key"),
            "ceph_osd/bootstrap-osd.keyring.j2",
            Line,
            None,
        ),
        case(Var("ceph_fsid"), "_common/ceph-client.conf.j2", Line, None),
        case(
            Secret("ceph_client_openstack_key"),
            "_common/ceph-client.keyring.j2",
            Line,
            None,
        ),
        case(
            Var("cinder_rbd_user"),
            "_common/ceph-client.keyring.j2",
            Word,
            None,
        ),
        case(
            Var("glance_rbd_pool"),
            "ceph_mon/ceph.keyring.j2",
            Word,
            None,
        ),
        case(
            Secret("ceph_client_openstack_key"),
            "nova_libvirt/ceph-secret.base64.j2",
            Line,
            None,
        ),
        case(
            Var("cinder_rbd_secret_uuid"),
            "nova_libvirt/ceph-secret.xml.j2",
            Word,
            None,
        ),
        case(
            Var("mariadb_wsrep_provider"),
            "mariadb/galera.cnf.j2",
            Line,
            None,
        ),
        case(
            Var("rabbitmq_cluster_partition_handling"),
            "rabbitmq/rabbitmq.conf.j2",
            Line,
            None,
        ),
        case(
            Secret("rabbitmq_erlang_cookie"),
            "rabbitmq/erlang.cookie.j2",
            Line,
            None,
        ),
        case(
            VarItem("undercloud_dns_servers"),
            "undercloud/dnsmasq/dnsmasq.conf.j2",
            Line,
            None,
        ),
        case(
            Var("haproxy_client_timeout"),
            "haproxy/haproxy.cfg.j2",
            Word,
            None,
        ),
        case(
            Var("haproxy_stats_port"),
            "haproxy/haproxy.cfg.j2",
            Word,
            None,
        ),
        case(
            Var("keepalived_internal_interface"),
            "keepalived/keepalived.conf.j2",
            Word,
            None,
        ),
        case(
            Var("keepalived_virtual_router_id"),
            "keepalived/keepalived.conf.j2",
            Word,
            None,
        ),
        case(
            Secret("keepalived_password"),
            "keepalived/keepalived.conf.j2",
            Word,
            None,
        ),
        case(
            Var("keystone_api_workers"),
            "keystone/keystone-uwsgi.ini.j2",
            Word,
            None,
        ),
        case(
            Var("glance_api_workers"),
            "glance_api/glance-api-uwsgi.ini.j2",
            Word,
            None,
        ),
        case(
            Var("placement_api_workers"),
            "placement_api/placement-uwsgi.ini.j2",
            Word,
            None,
        ),
        case(
            Var("nova_api_workers"),
            "nova_api/nova-api-uwsgi.ini.j2",
            Word,
            None,
        ),
        case(
            Var("nova_metadata_workers"),
            "nova_api/nova-metadata-uwsgi.ini.j2",
            Word,
            None,
        ),
        case(
            Var("neutron_api_workers"),
            "neutron_server/neutron-api-uwsgi.ini.j2",
            Word,
            None,
        ),
        case(
            Var("cinder_api_workers"),
            "cinder_api/cinder-api-uwsgi.ini.j2",
            Word,
            None,
        ),
        case(
            Var("log_rotate_max_size"),
            "_common/logrotate.conf.j2",
            Word,
            None,
        ),
        case(
            Var("log_rotate_days"),
            "_common/logrotate.conf.j2",
            Word,
            None,
        ),
        case(
            Var("horizon_wsgi_processes"),
            "horizon/horizon.conf.j2",
            Word,
            None,
        ),
        case(
            Var("qemu_max_files"),
            "nova_libvirt/qemu.conf.j2",
            Word,
            None,
        ),
        case(
            Var("undercloud_dhcp_lease_time"),
            "undercloud/dnsmasq/dnsmasq.conf.j2",
            Word,
            None,
        ),
        case(
            Var("undercloud_pxe_bios_loader"),
            "undercloud/dnsmasq/dnsmasq.conf.j2",
            Word,
            None,
        ),
        case(
            VarItem("registry_mirrors"),
            "_common/registries.conf.j2",
            Escapes,
            Some(r#"location = "a #;!{}[]$(x) 'q' \"d\" \\ @(exec://id) %n y""#),
        ),
        case(
            Var("mariadb_cluster_name"),
            "mariadb/galera.cnf.j2",
            Escapes,
            Some(r#"wsrep_cluster_name = "a #;!{}[]$(x) 'q' \"d\" \\ @(exec://id) %n y""#),
        ),
        case(
            Secret("mariadb_root_password"),
            "mariadb/galera.cnf.j2",
            Escapes,
            Some(r#"wsrep_sst_auth = "root:a #;!{}[]$(x) 'q' \"d\" \\ @(exec://id) %n y""#),
        ),
        case(
            Secret("mariadb_root_password"),
            "mariadb/bootstrap.sql.j2",
            Escapes,
            Some(r#"IDENTIFIED BY 'a #;!{}[]$(x) \'q\' "d" \\ @(exec://id) %n y';"#),
        ),
        case(
            Secret("mariadb_root_password"),
            "_common/tasks/client.cnf.j2",
            Escapes,
            Some(r#"password = "a #;!{}[]$(x) 'q' \"d\" \\ @(exec://id) %n y""#),
        ),
        case(
            Secret("keystone_db_password"),
            "_common/tasks/database.sql.j2@keystone/database",
            Escapes,
            Some(
                r#"ALTER USER 'keystone'@'%' IDENTIFIED BY 'a #;!{}[]$(x) \'q\' "d" \\ @(exec://id) %n y';"#,
            ),
        ),
        case(
            Var("rsyslog_queue_max_disk_space"),
            "rsyslog/rsyslog.conf.j2",
            Quotes,
            Some(r#"queue.maxDiskSpace="a #;!{}[]$(x) 'q' \"d\" \\ @(exec://id) %n y""#),
        ),
        case(
            Var("log_receiver_queue_max_disk_space"),
            "undercloud/log_receiver/rsyslog.conf.j2",
            Quotes,
            Some(r#"queue.maxDiskSpace="a #;!{}[]$(x) 'q' \"d\" \\ @(exec://id) %n y""#),
        ),
        case(
            Secret("haproxy_stats_password"),
            "haproxy/haproxy.cfg.j2",
            Quotes,
            Some(r#"stats auth 'admin:a #;!{}[]$(x) '\''q'\'' "d" \ @(exec://id) %n y'"#),
        ),
    ]
}

fn with_input(input: Input, value: &str) -> MemoryTree {
    let mut tree = repo_tree();
    // The lab runs no Ceph: its client files are rendered only with Ceph on.
    edit(
        &mut tree,
        LAB,
        "ceph_enabled = false\n",
        "ceph_enabled = true\n",
    );
    match input {
        Input::Var(k) => set_vars(&mut tree, LAB, &[(k, toml_str(value))]),
        Input::VarItem(k) => set_vars(&mut tree, LAB, &[(k, toml_list(&[value.to_string()]))]),
        Input::Secret(k) => set_secret(&mut tree, LAB, k, value),
    }
    tree
}

fn input_name(input: Input) -> String {
    match input {
        Input::Var(k) | Input::VarItem(k) => format!("vars.{k}"),
        Input::Secret(k) => format!("secrets.{k}"),
    }
}

/// The error refusing `value` (a secret is never shown), located in the case's
/// template; by `filter` if given, else by any filter (a comment's `line_value` may come
/// before the value's own). A secret may also be refused by the secrets file's own
/// rules, before any template sees it.
fn assert_refused(errors: &str, case: &Case, filter: Option<&str>, value: &str, problem: &str) {
    let what = input_name(case.input);
    if let Input::Secret(_) = case.input {
        assert!(
            !errors.contains(value) && !errors.contains(&format!("{value:?}")),
            "{what}: the secret is shown:\n{errors}"
        );
        if !errors.contains("unsafe value") {
            return; // refused by the secrets rules
        }
    }
    let shown = match case.input {
        Input::Secret(_) => "(a secret value)".to_string(),
        _ => format!("{value:?}"),
    };
    let by = match filter {
        Some(f) => format!("unsafe value for `{f}`: "),
        None => "unsafe value for `".to_string(),
    };
    let message = format!("{shown} {problem}");
    let location = format!("--> templates/{}:", case.template);
    let found = errors
        .split("error: ")
        .any(|e| e.starts_with(&by) && e.contains(&message) && e.contains(&location));
    assert!(
        found,
        "{what}: no `{by}...{message}` at `{location}` in:\n{errors}"
    );
}

#[test]
fn line_configs_keep_a_value_on_its_line_or_refuse_it() {
    for case in cases() {
        let what = format!("{} in {}", input_name(case.input), case.template);
        // the same input with a plain value: the lines a file must keep
        // (distinctive: a secret's value found in a file of another service is an error)
        let baseline = render(&with_input(case.input, "plain-7f3a9q"), LAB);

        // A line feed: refused where it would start a line, escaped by a quoting filter.
        let tree = with_input(case.input, NEWLINE);
        match case.filter {
            Filter::Line | Filter::Word | Filter::Quotes => assert_refused(
                &refusal(&tree, LAB),
                &case,
                None,
                NEWLINE,
                "holds a line feed (U+000A)",
            ),
            Filter::Escapes => {
                let ev = match (eval(&tree, LAB), case.input) {
                    (Ok(ev), _) => Some(ev),
                    // the secrets rules may refuse a control character first
                    (Err(f), Input::Secret(_)) if !f.render().contains("unsafe value") => None,
                    (Err(f), _) => panic!("{what}: {}", f.render()),
                };
                if let Some(ev) = ev {
                    same_lines(&what, &ev, &baseline, case.template);
                    for (host, f) in rendered(&ev, case.template) {
                        assert!(
                            !f.content.lines().any(|l| l.starts_with("INJECTED")),
                            "{what} {host}: a new line\n{}",
                            f.content
                        );
                    }
                }
            }
        }

        // Printable but odd: as data on its one line, or refused by `word`.
        let tree = with_input(case.input, ODD);
        if case.filter == Filter::Word {
            assert_refused(
                &refusal(&tree, LAB),
                &case,
                Some("word"),
                ODD,
                "holds a space (U+0020)",
            );
            continue;
        }
        let ev = render(&tree, LAB);
        same_lines(&what, &ev, &baseline, case.template);
        let want = case.odd_line.unwrap_or(ODD);
        let files = rendered(&ev, case.template);
        assert!(!files.is_empty(), "{what}: not rendered");
        for (host, f) in files {
            let holding: Vec<&str> = f.content.lines().filter(|l| l.contains(want)).collect();
            assert_eq!(
                holding.len(),
                1,
                "{what} {host}: `{want}` on one line\n{}",
                f.content
            );
            if case.template.ends_with("registries.conf.j2") {
                // the toml crate reads the mirror back
                let t: toml::Table = f.content.parse().expect("TOML");
                let mirror = &t["registry"].as_array().expect("registry")[0]["mirror"];
                assert_eq!(mirror[0]["location"].as_str(), Some(ODD), "{what} {host}");
            }
            if case.template.ends_with("haproxy.cfg.j2") {
                haproxy_accepts(&what, &f.content);
            }
        }
    }
}

/// Every file of `template` has as many lines as in the baseline render.
fn same_lines(what: &str, ev: &Evaluation, baseline: &Evaluation, template: &str) {
    for (host, f) in rendered(ev, template) {
        let before = &baseline.state.hosts[host].files[&f.path].content;
        assert_eq!(
            f.content.lines().count(),
            before.lines().count(),
            "{what} {host}:{}: lines added\n{}",
            f.path,
            f.content
        );
    }
}

/// `haproxy -c` reads the file, where haproxy is installed (tests/config-check).
fn haproxy_accepts(what: &str, text: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(haproxy) = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
    else {
        eprintln!("haproxy is not installed: {what} not checked by haproxy -c");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("haproxy.cfg");
    std::fs::write(&file, text).expect("write");
    let out = Command::new(haproxy)
        .args(["-c", "-q", "-f"])
        .arg(&file)
        .output()
        .expect("haproxy -c");
    assert!(
        out.status.success(),
        "{what}: haproxy -c: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Refusals: located, readable, through `provision validate`
// ---------------------------------------------------------------------------------------

#[test]
fn refused_values_are_located() {
    // A shell script's comment refuses a device with a line feed, named in the error.
    let mut tree = repo_tree();
    set_vars(
        &mut tree,
        LAB,
        &[(
            "ceph_osd_devices",
            toml_list(&["/dev/sdb".into(), "/dev/sdc\ntouch /tmp/x".into()]),
        )],
    );
    let errors = refusal(&tree, LAB);
    let at = at(
        &tree,
        "templates/ceph_osd/ceph-osd-start.sh.j2",
        "map(\"line_value\")",
    );
    assert!(
        errors.contains(
            r#"error: unsafe value for `line_value`: "/dev/sdc\ntouch /tmp/x" holds a line feed (U+000A)"#
        ) && errors.contains(&format!("--> {at}")),
        "{errors}"
    );
    // A trailing backslash (a line continuation) is refused by `line_value`.
    let mut tree = repo_tree();
    set_vars(&mut tree, LAB, &[("ceph_fsid", toml_str("abc\\"))]);
    let errors = refusal(&tree, LAB);
    assert!(
        errors.contains(r#"unsafe value for `line_value`: "abc\\" ends with a backslash"#)
            && errors.contains("--> templates/ceph_mon/ceph.conf.j2:5:"),
        "{errors}"
    );
}

#[test]
fn hostile_names_are_refused() {
    // Names become host names, FQDNs, file names: a name with a line feed, a space or
    // `$(...)` is refused (by the name rules, or by the templates' filters), never
    // rendered.
    for (from, to) in [
        ("name = \"lab\"", "name = \"lab\\nimport os\""),
        (
            "domain = \"lab.test\"",
            "domain = \"lab.test$(echo pwned > /tmp/PWNED)\"",
        ),
        ("domain = \"lab.test\"", "domain = \"lab test\""),
    ] {
        let mut tree = repo_tree();
        edit(&mut tree, LAB, from, to);
        assert!(eval(&tree, LAB).is_err(), "{to} was rendered");
    }
}

/// Copies a folder of the repository into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

#[test]
fn provision_validate_reports_a_refused_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    for top in ["inventories", "roles", "templates"] {
        copy_dir(&repo().join(top), &dir.path().join(top));
    }
    let inv = dir.path().join(LAB);
    let text = std::fs::read_to_string(&inv).expect("read");
    let text = text.replacen(
        "[vars]\n",
        "[vars]\nhaproxy_client_timeout = \"1m\\nbind *:1\"\n",
        1,
    );
    std::fs::write(&inv, text).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["validate", LAB])
        .current_dir(dir.path())
        .output()
        .expect("provision validate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}{stderr}");
    assert!(!out.status.success(), "{all}");
    let want = [
        r#"error: unsafe value for `word`: "1m\nbind *:1" holds a line feed (U+000A)"#,
        "--> templates/haproxy/haproxy.cfg.j2:24:",
        "timeout client {{ vars.haproxy_client_timeout | word }}",
        "help: the value cannot be written into this file as data",
    ];
    for w in want {
        assert!(all.contains(w), "no `{w}` in:\n{all}");
    }
}

/// Every template of the catalogue renders at least once in the tests above, or is
/// listed here with why no inventory value reaches it as a free string.
/// A task's environment file (`KEY=value` lines podman reads): a value is kept byte
/// for byte on its line; a line feed is refused, located in the service's manifest.
#[test]
fn task_environment_keeps_a_value_on_its_line_or_refuses_it() {
    let env_file = "/etc/overcloud/keystone/tasks/bootstrap.env";
    let ev = render(&with_input(Input::Var("keystone_region"), ODD), LAB);
    let hs = ev
        .state
        .hosts
        .values()
        .find(|hs| hs.files.contains_key(env_file))
        .expect("keystone's bootstrap environment is rendered");
    let text = &hs.files[env_file].content;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("OS_BOOTSTRAP_REGION_ID="))
        .collect();
    assert_eq!(
        lines,
        vec![format!("OS_BOOTSTRAP_REGION_ID={ODD}")],
        "{text}"
    );
    assert_eq!(hs.files[env_file].mode, 0o600);

    let errors = refusal(&with_input(Input::Var("keystone_region"), NEWLINE), LAB);
    assert!(
        errors.contains("environment `OS_BOOTSTRAP_REGION_ID` of task `bootstrap` cannot be one line of an environment file")
            && errors.contains("templates/keystone/service.toml:"),
        "{errors}"
    );
}

#[test]
fn every_template_is_covered() {
    let covered: BTreeMap<&str, &str> = [
        ("ceph_osd/ceph-osd-start.sh.j2", "shell: devices"),
        (
            "openvswitch_vswitchd/vswitchd-start.sh.j2",
            "shell: bridges, ports",
        ),
        (
            "ceph_mon/ceph-mon-start.sh.j2",
            "shell: run under MOCKS (host name only)",
        ),
        (
            "horizon/horizon-start.sh.j2",
            "shell: run under MOCKS (host name only)",
        ),
        (
            "mariadb/mariadb-start.sh.j2",
            "shell: run under MOCKS (host names only)",
        ),
        (
            "openvswitch_db/ovsdb-start.sh.j2",
            "shell: run under MOCKS (host name only)",
        ),
        (
            "rabbitmq/rabbitmq-env.conf.j2",
            "shell: sourced (host name, address only)",
        ),
        ("horizon/local_settings.py.j2", "python"),
        ("rabbitmq/definitions.json.j2", "json"),
        (
            "_common/logging.conf.j2",
            "no inventory string: service.* and vars.debug",
        ),
        (
            "_common/log_record.rsyslog.j2",
            "macros: host names only (rsyslog_expr)",
        ),
        (
            "nova_libvirt/libvirtd.conf.j2",
            "no inventory string: booleans, service.*",
        ),
        (
            "rabbitmq/advanced.config.j2",
            "no inventory string: host name, address",
        ),
        ("rabbitmq/enabled_plugins.j2", "constant"),
        (
            "_common/tasks/ks_register.py.j2",
            "no inventory string: service.name in comments (names); values from the environment",
        ),
        (
            "undercloud/dnsmasq/hosts.j2",
            "names only (word): hostile_names_are_refused",
        ),
        (
            "undercloud/dnsmasq/boot.ipxe.j2",
            "names in comments only (line_value); the one iPXE command line holds an IP address",
        ),
        ("ceph_mon/ceph.conf.j2", "line"),
        (
            "nova_api/create-cell.sh.j2",
            "shell: run under MOCKS (no inventory value)",
        ),
        (
            "nova_conductor/discover-hosts.sh.j2",
            "shell: run under MOCKS (host names only)",
        ),
        (
            "nova_conductor/forget-computes.py.j2",
            "constant: values from the environment",
        ),
    ]
    .into_iter()
    .collect();
    let cases = cases();
    let tree = repo_tree();
    let ev = render(&tree, LAB);
    let mut templates: Vec<String> = Vec::new();
    for hs in ev.state.hosts.values() {
        for f in hs.files.values() {
            if let FileKind::Template { template } = &f.kind {
                templates.push(template.clone());
            }
        }
    }
    templates.sort();
    templates.dedup();
    assert!(templates.len() >= 35, "{templates:?}");
    for t in &templates {
        assert!(
            covered.contains_key(t.as_str())
                // task_environment_keeps_a_value_on_its_line_or_refuses_it
                || t.contains("#tasks.") && t.ends_with(".environment")
                || cases
                    .iter()
                    .any(|c| c.template.split('@').next() == Some(t.as_str())),
            "{t}: no hostile-value case"
        );
    }
}
