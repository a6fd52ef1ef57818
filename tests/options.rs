//! Every rendered oslo.config option checked against the release's option catalogue
//! (templates/_common/oslo/schema/<release>.json): each case of
//! tests/fixtures/option-cases.toml added alone to the real production example, reported
//! at its inventory line; the origins of a value (inventory, manifest, shared defaults);
//! the run-time sections; the escape hatch; another release.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

use provision::diagnostics::Severity;
use provision::evaluate::evaluate;
use provision::model::LoadOptions;
use provision::source::MemoryTree;

const PROD: &str = "inventories/example-production.toml";
const LAB: &str = "inventories/lab.toml";

#[derive(serde::Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    role: Option<String>,
    file: String,
    section: String,
    option: String,
    value: toml::Value,
    expect: String,
    message: String,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/option-cases.toml")).unwrap();
    toml::from_str::<Cases>(&text).unwrap().case
}

/// Adds `option = value` under `[roles.<role>.config.<file>.<section>]` (after the
/// header when the inventory has it, else as a new table at the end); returns the
/// inventory text and the line written.
fn with_option(text: &str, role: Option<&str>, file: &str, section: &str, line: &str) -> String {
    let header = match role {
        Some(r) => format!("[roles.{r}.config.{file}.{section}]"),
        None => format!("[config.{file}.{section}]"),
    };
    let Some(i) = text.find(&format!("\n{header}\n")) else {
        return format!("{text}\n{header}\n{line}\n");
    };
    let body = i + header.len() + 2;
    // The table already sets the option: its line is replaced.
    let key = format!("{} = ", line.split(" = ").next().unwrap_or(line));
    let end = text[body..].find("\n[").map_or(text.len(), |e| body + e);
    if let Some(j) = text[body..end]
        .match_indices(&key)
        .map(|(j, _)| body + j)
        .find(|j| text[..*j].ends_with('\n'))
    {
        let eol = text[j..].find('\n').map_or(text.len(), |e| j + e);
        return format!("{}{line}{}", &text[..j], &text[eol..]);
    }
    format!("{}{line}\n{}", &text[..body], &text[body..])
}

/// `path:line:col` of the value of the line `needle`.
fn value_at(tree: &MemoryTree, path: &str, needle: &str) -> String {
    let at = at(tree, path, needle);
    let (head, col) = at.rsplit_once(':').unwrap();
    let eq = needle.find("= ").unwrap() + 2;
    format!("{head}:{}", col.parse::<usize>().unwrap() + eq)
}

fn block<'a>(report: &'a str, level: &str, message: &str) -> Option<&'a str> {
    report
        .split("\n\n")
        .find(|b| b.trim_start().starts_with(&format!("{level}: ")) && b.contains(message))
}

#[test]
fn every_shipped_inventory_has_no_finding_against_the_release_it_deploys() {
    let tree = repo_tree();
    for inv in [LAB, PROD, "inventories/vagrant.toml"] {
        match eval(&tree, inv) {
            Ok(ev) => {
                let release = ev
                    .cloud
                    .catalogue
                    .options
                    .as_ref()
                    .map(|o| o.release.clone());
                assert_eq!(release.as_deref(), Some("2025.1"), "{inv}");
                assert!(ev.warnings.is_empty(), "{inv}:\n{}", ev.render_warnings());
            }
            Err(f) => panic!("{inv}:\n{}", f.render()),
        }
    }
}

#[test]
fn each_case_alone_is_reported_at_its_inventory_line() {
    for case in cases() {
        let mut tree = repo_tree();
        let line = format!("{} = {}", case.option, case.value);
        let text = with_option(
            &read(&tree, PROD),
            case.role.as_deref(),
            &case.file,
            &case.section,
            &line,
        );
        tree.insert(PROD, text);
        let location = value_at(&tree, PROD, &line);
        let key = format!("`[{}] {}", case.section, case.option);
        match (case.expect.as_str(), eval(&tree, PROD)) {
            ("error", Err(f)) => {
                let report = f.render();
                let b = block(&report, "error", &key)
                    .unwrap_or_else(|| panic!("{}: no error on {key}:\n{report}", case.name));
                assert!(
                    b.contains(&case.message),
                    "{}: `{}` not in:\n{b}",
                    case.name,
                    case.message
                );
                assert!(
                    b.contains(&format!("--> {location}\n")),
                    "{}: not at {location}:\n{b}",
                    case.name
                );
                assert!(b.contains("= help: "), "{}: no advice:\n{b}", case.name);
                assert_eq!(f.diags.len(), 1, "{}: one error only:\n{report}", case.name);
            }
            ("warning", Ok(ev)) => {
                let report = ev.render_warnings();
                let b = block(&report, "warning", &key)
                    .unwrap_or_else(|| panic!("{}: no warning on {key}:\n{report}", case.name));
                assert!(
                    b.contains(&case.message),
                    "{}: `{}` not in:\n{b}",
                    case.name,
                    case.message
                );
                assert!(
                    b.contains(&format!("--> {location}\n")),
                    "{}: not at {location}:\n{b}",
                    case.name
                );
                assert!(
                    b.contains("write it as `["),
                    "{}: the replacement not named:\n{b}",
                    case.name
                );
            }
            ("ok", Ok(ev)) => {
                assert!(
                    ev.warnings.is_empty(),
                    "{}:\n{}",
                    case.name,
                    ev.render_warnings()
                );
            }
            (want, Ok(ev)) => panic!(
                "{}: expected {want}, valid with warnings:\n{}",
                case.name,
                ev.render_warnings()
            ),
            (want, Err(f)) => panic!("{}: expected {want}, got:\n{}", case.name, f.render()),
        }
    }
}

#[test]
fn the_command_line_exits_1_on_an_error_and_0_on_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    for top in ["roles", "templates", "inventories"] {
        copy_dir(&repo().join(top), &dir.path().join(top));
    }
    let inv = dir.path().join(PROD);
    let original = std::fs::read_to_string(&inv).unwrap();
    let bin = env!("CARGO_BIN_EXE_provision");

    let bad = with_option(
        &original,
        Some("Compute"),
        "nova",
        "DEFAULT",
        "cpu_alocation_ratio = 8.0",
    );
    std::fs::write(&inv, bad).unwrap();
    let out = Command::new(bin)
        .arg("validate")
        .arg(&inv)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("did you mean `[DEFAULT] cpu_allocation_ratio`?"),
        "{err}"
    );
    assert!(err.contains("example-production.toml:99:"), "{err}");

    let deprecated = cases().into_iter().find(|c| c.expect == "warning").unwrap();
    let line = format!("{} = {}", deprecated.option, deprecated.value);
    let warned = with_option(
        &original,
        deprecated.role.as_deref(),
        &deprecated.file,
        &deprecated.section,
        &line,
    );
    std::fs::write(&inv, warned).unwrap();
    let out = Command::new(bin)
        .arg("validate")
        .arg(&inv)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: `[DEFAULT] ") && err.contains("is deprecated"),
        "{err}"
    );
    assert!(
        stdout.contains("checked against 2025.1: 1 warning."),
        "{stdout}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_finding_points_at_the_catalogue_line_that_wrote_the_value() {
    // The shared oslo defaults.
    let mut tree = repo_tree();
    edit(
        &mut tree,
        "templates/_common/oslo/nova.toml",
        "rabbit_quorum_queue = true",
        "rabbit_quorum_queue = true\nrabbit_quorum_queues = true",
    );
    let (_, report) = errors(&tree, LAB);
    let b = block(
        &report,
        "error",
        "`[oslo_messaging_rabbit] rabbit_quorum_queues`",
    )
    .expect(&report);
    assert!(
        b.contains(&format!(
            "--> {}\n",
            value_at(
                &tree,
                "templates/_common/oslo/nova.toml",
                "rabbit_quorum_queues = true"
            )
        )),
        "{b}"
    );
    assert!(
        b.contains("did you mean `[oslo_messaging_rabbit] rabbit_quorum_queue`?"),
        "{b}"
    );

    // A service's own `[files.ini.*]`.
    let mut tree = repo_tree();
    edit(
        &mut tree,
        "templates/nova_novncproxy/service.toml",
        "novncproxy_port = 6080",
        "novncproxy_port = 99999",
    );
    let (_, report) = errors(&tree, LAB);
    let b = block(&report, "error", "`[vnc] novncproxy_port = 99999`").expect(&report);
    assert!(
        b.contains(&format!(
            "--> {}\n",
            value_at(
                &tree,
                "templates/nova_novncproxy/service.toml",
                "novncproxy_port = 99999"
            )
        )),
        "{b}"
    );
}

#[test]
fn sections_chosen_at_run_time_are_checked_too() {
    // A keystoneauth section takes its auth_type plugin's options, and only those.
    let mut tree = repo_tree();
    let text = with_option(
        &read(&tree, PROD),
        None,
        "nova",
        "keystone_authtoken",
        "user_domian_name = \"Default\"",
    );
    tree.insert(PROD, text);
    let (_, report) = errors(&tree, PROD);
    let b = block(&report, "error", "`[keystone_authtoken] user_domian_name`").expect(&report);
    assert!(
        b.contains("did you mean `[keystone_authtoken] user_domain_name`?"),
        "{b}"
    );

    // A cinder backend named in enabled_backends takes the volume drivers' options.
    let mut tree = repo_tree();
    let cinder = read(&tree, "templates/cinder_volume/service.toml");
    let backend = cinder
        .lines()
        .filter_map(|l| {
            l.strip_prefix("[files.ini.")
                .and_then(|s| s.strip_suffix(']'))
        })
        .find(|s| *s != "DEFAULT")
        .map(str::to_string);
    let Some(backend) = backend else {
        panic!("cinder_volume's manifest names no backend section:\n{cinder}")
    };
    let text = with_option(
        &read(&tree, PROD),
        None,
        "cinder_volume",
        &backend,
        "rbd_poool = \"volumes\"",
    );
    tree.insert(PROD, text);
    let (_, report) = errors(&tree, PROD);
    let b = block(&report, "error", &format!("`[{backend}] rbd_poool`")).expect(&report);
    assert!(
        b.contains("did you mean `[") && b.contains("rbd_pool`?"),
        "{b}"
    );
}

#[test]
fn unchecked_options_are_warnings_and_their_entries_are_checked() {
    let mut tree = repo_tree();
    let text = with_option(
        &read(&tree, PROD),
        Some("Compute"),
        "nova",
        "DEFAULT",
        "my_driver_knob = 3",
    );
    tree.insert(PROD, format!("{text}\n[unchecked_options]\nnova = [\"DEFAULT.my_driver_knob\", \"DEFAULT.cpu_allocation_ratio\"]\n"));
    let ev = eval(&tree, PROD).unwrap_or_else(|f| panic!("{}", f.render()));
    let report = ev.render_warnings();
    assert!(ev
        .warnings
        .items
        .iter()
        .all(|w| w.severity == Severity::Warning));
    let b = block(
        &report,
        "warning",
        "`[DEFAULT] my_driver_knob` of nova.conf is not checked",
    )
    .expect(&report);
    assert!(
        b.contains("= note: listed here (inventories/example-production.toml:"),
        "{b}"
    );
    assert!(block(&report, "warning", "lists `[DEFAULT] cpu_allocation_ratio` of `nova`, which the option catalogue of 2025.1 knows").is_some(), "{report}");

    let mut tree = repo_tree();
    let text = read(&tree, PROD);
    tree.insert(
        PROD,
        format!("{text}\n[unchecked_options]\nnovaa = [\"DEFAULT.x\"]\nnova = [\"no_dot\"]\n"),
    );
    let (n, report) = errors(&tree, PROD);
    assert_eq!(n, 2, "{report}");
    assert!(
        report.contains("[unchecked_options] names `novaa`, which is not an oslo.config file"),
        "{report}"
    );
    assert!(
        report.contains("[unchecked_options] entry `no_dot` is not `section.option`"),
        "{report}"
    );
}

#[test]
fn another_release_shows_what_an_upgrade_would_deprecate() {
    let tree = repo_tree();
    let opts = LoadOptions {
        release: Some("2026.2".into()),
        ..LoadOptions::default()
    };
    let ev = evaluate(Path::new(LAB), &tree, &opts).unwrap_or_else(|f| panic!("{}", f.render()));
    let report = ev.render_warnings();
    assert!(
        report.contains("`[ml2] tenant_network_types` is deprecated in 2026.2"),
        "{report}"
    );
    assert!(
        report.contains("write it as `[ml2] project_network_types`"),
        "{report}"
    );

    let opts = LoadOptions {
        release: Some("1999.1".into()),
        ..LoadOptions::default()
    };
    let Err(f) = evaluate(Path::new(LAB), &tree, &opts) else {
        panic!("an unknown release must fail")
    };
    let report = f.render();
    assert!(
        report.contains("there is no option catalogue of release `1999.1`"),
        "{report}"
    );
    assert!(report.contains("name one of: 2025.1, 2026.2"), "{report}");
}

#[test]
fn a_wrong_value_that_holds_a_secret_is_not_shown() {
    let mut tree = repo_tree();
    // transport_url holds the rabbitmq password; make it a list option's neighbour of
    // the wrong type: a boolean written from a secret.
    let text = with_option(
        &read(&tree, PROD),
        Some("Compute"),
        "nova",
        "DEFAULT",
        "force_config_drive = \"{{ secrets.rabbitmq_password }}\"",
    );
    tree.insert(PROD, text);
    let (_, report) = errors(&tree, PROD);
    let b = block(
        &report,
        "error",
        "`[DEFAULT] force_config_drive` (its value not shown: it holds a secret)",
    )
    .expect(&report);
    let secrets = read(&tree, "inventories/example-production.secrets.toml");
    let password = secrets
        .lines()
        .find_map(|l| l.strip_prefix("rabbitmq_password = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("rabbitmq_password in the example secrets");
    assert!(!report.contains(password), "{b}");
}
