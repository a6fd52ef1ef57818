//! `provision validate`: every kind of bad input is reported with its file, line,
//! column and advice, all in one run. Each test breaks one real file of the repository
//! (in memory) and evaluates the real inventories, roles and templates around it.

mod common;
use common::*;

const LAB: &str = "inventories/lab.toml";

fn assert_error(report: &str, message: &str, location: &str) {
    let block = report
        .split("\nerror: ")
        .find(|b| b.contains(message))
        .unwrap_or_else(|| panic!("no error `{message}` in:\n{report}"));
    assert!(
        block.contains(&format!("--> {location}\n")),
        "`{message}` not located at {location}:\n{block}"
    );
    assert!(
        block.contains("= help: "),
        "`{message}` gives no advice:\n{block}"
    );
}

#[test]
fn the_repository_inventories_are_valid() {
    let tree = repo_tree();
    for inv in [
        "inventories/lab.toml",
        "inventories/vagrant.toml",
        "inventories/example-production.toml",
    ] {
        if let Err(f) = eval(&tree, inv) {
            panic!("{inv}:\n{}", f.render());
        }
    }
}

#[test]
fn unknown_key_is_located() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "role = \"Networker\"",
        "rolle = \"Networker\"",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(&report, "unknown field `rolle`", &at(&tree, LAB, "rolle ="));
}

#[test]
fn unknown_section_is_located() {
    let mut tree = repo_tree();
    edit(&mut tree, LAB, "[vars]\n", "[varz]\n");
    let (_, report) = errors(&tree, LAB);
    assert_error(&report, "unknown section `varz`", &at(&tree, LAB, "varz"));
}

#[test]
fn missing_key_is_located() {
    let mut tree = repo_tree();
    edit(&mut tree, LAB, "ctlplane_ip = \"127.0.10.16\"\n", "");
    let (_, report) = errors(&tree, LAB);
    assert!(report.contains("missing field `ctlplane_ip`"), "{report}");
}

#[test]
fn wrong_type_is_located() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "connect_timeout = 5",
        "connect_timeout = \"five\"",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "invalid type: string \"five\", expected u64",
        &at(&tree, LAB, "\"five\""),
    );
}

#[test]
fn toml_syntax_error_is_located() {
    let mut tree = repo_tree();
    edit(&mut tree, LAB, "[networks.tenant]\n", "[networks.tenant\n");
    let (_, report) = errors(&tree, LAB);
    assert!(report.contains("error: invalid TOML"), "{report}");
    assert!(report.contains(&format!("--> {LAB}:")), "{report}");
    let line = at(&tree, LAB, "[networks.tenant")
        .split(':')
        .nth(1)
        .unwrap()
        .to_string();
    assert!(report.contains(&format!("{LAB}:{line}:")), "{report}");
}

#[test]
fn duplicate_node_names() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "role = \"CephStorage\"\n",
        "name = \"lab-novacompute-0\"\nrole = \"CephStorage\"\n",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "duplicate node name `lab-novacompute-0`",
        &at(&tree, LAB, "\"lab-novacompute-0\""),
    );
}

#[test]
fn duplicate_addresses() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "ctlplane_ip = \"127.0.10.14\"",
        "ctlplane_ip = \"127.0.10.13\"",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "duplicate address 127.0.10.13 on network `ctlplane`",
        &at_nth(&tree, LAB, "\"127.0.10.13\"", 1),
    );
    // The allocated addresses collide too, and are reported on the same node.
    assert!(
        report.contains("duplicate address 127.0.11.13 on network `internal_api`"),
        "{report}"
    );
}

#[test]
fn duplicate_macs() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "macs = [\"52:54:00:0a:00:0e\"]",
        "macs = [\"52:54:00:0A:00:0D\"]",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "duplicate MAC address 52:54:00:0a:00:0d",
        &at(&tree, LAB, "\"52:54:00:0A:00:0D\""),
    );
}

#[test]
fn duplicate_bmc_endpoints() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "system_id = \"lab-node-13\"",
        "system_id = \"lab-node-12\"",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "duplicate BMC endpoint 127.0.10.1:8000/lab-node-12",
        &at_nth(&tree, LAB, "\"lab-node-12\"", 1),
    );
}

#[test]
fn malformed_mac() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "\"52:54:00:0a:00:10\"",
        "\"52:54:00:0a:00\"",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "`52:54:00:0a:00` is not a MAC address",
        &at(&tree, LAB, "\"52:54:00:0a:00\""),
    );
}

#[test]
fn address_outside_its_network() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "ctlplane_ip = \"127.0.10.16\"",
        "ctlplane_ip = \"127.0.99.16\"",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "address 127.0.99.16 is outside network `ctlplane` (127.0.10.0/24)",
        &at(&tree, LAB, "\"127.0.99.16\""),
    );
}

#[test]
fn pinned_address_outside_its_network() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "ctlplane_ip = \"127.0.10.16\"",
        "ctlplane_ip = \"127.0.10.16\"\naddresses = { tenant = \"127.0.99.3\" }",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "address 127.0.99.3 is outside network `tenant` (127.0.14.0/24)",
        &at(&tree, LAB, "\"127.0.99.3\""),
    );
}

#[test]
fn role_that_does_not_exist() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "role = \"Networker\"",
        "role = \"Netwroker\"",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "node role `Netwroker` does not exist",
        &at(&tree, LAB, "\"Netwroker\""),
    );
    let mut tree = repo_tree();
    edit(&mut tree, LAB, "[roles.Networker]", "[roles.ObjectStorage]");
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "role `ObjectStorage` does not exist",
        &at(&tree, LAB, "ObjectStorage"),
    );
    assert!(
        report.contains("use one of: CephStorage, Compute, Controller, Networker"),
        "{report}"
    );
}

#[test]
fn service_without_template() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        "roles/CephStorage.toml",
        "\"ceph_osd\"",
        "\"ceph_osd\", \"swift_object\"",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "role `CephStorage` runs service `swift_object`, which has no template in the catalogue",
        &at(&tree, "roles/CephStorage.toml", "\"swift_object\""),
    );
}

#[test]
fn template_that_does_not_parse() {
    let mut tree = repo_tree();
    let path = "templates/_common/logging.conf.j2";
    let text = read(&tree, path);
    tree.insert(path, format!("{text}{{% if vars.debug %}}\nunclosed\n"));
    let (_, report) = errors(&tree, LAB);
    assert!(report.contains("error: template syntax error"), "{report}");
    assert!(report.contains(&format!("--> {path}:")), "{report}");
}

#[test]
fn template_with_undefined_variable() {
    let mut tree = repo_tree();
    let path = "templates/_common/logging.conf.j2";
    let text = read(&tree, path);
    tree.insert(path, format!("{text}# {{{{ vars.no_such_variable }}}}\n"));
    let (_, report) = errors(&tree, LAB);
    let line = text.lines().count() + 1;
    assert_error(
        &report,
        "undefined variable `vars.no_such_variable`",
        &format!("{path}:{line}:6"),
    );
}

#[test]
fn undefined_variable_in_an_ini_value_points_into_the_toml() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "[vars]\n",
        "[config.nova.DEFAULT]\nhost = \"{{ host.nmae }}\"\n\n[vars]\n",
    );
    let (_, report) = errors(&tree, LAB);
    // Located inside the TOML string, at the expression itself.
    assert_error(
        &report,
        "undefined variable `host.nmae`",
        &at(&tree, LAB, "host.nmae"),
    );
}

#[test]
fn secret_reference_without_value() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "password = { secret = \"lab_bmc_password\" } }\n\n[[nodes]]\nrole = \"Networker\"",
        "password = { secret = \"lab_bmc_pasword\" } }\n\n[[nodes]]\nrole = \"Networker\"",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "secret `lab_bmc_pasword` (BMC password of `lab-cephstorage-0`) has no value",
        &at(&tree, LAB, "\"lab_bmc_pasword\""),
    );
}

#[test]
fn literal_bmc_password_is_refused_without_being_shown() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "password = { secret = \"lab_bmc_password\" } }\n\n[[nodes]]\nrole = \"Networker\"",
        "password = \"hunter2-literal\" }\n\n[[nodes]]\nrole = \"Networker\"",
    );
    let (_, report) = errors(&tree, LAB);
    assert!(
        report.contains("a literal password is not accepted here"),
        "{report}"
    );
    // The message itself never repeats the value (the quoted source line may).
    let message = report
        .lines()
        .find(|l| l.contains("literal password"))
        .unwrap();
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn role_count_mismatch() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "[roles.Compute]\ncount = 3",
        "[roles.Compute]\ncount = 4",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "role `Compute` expects 4 nodes but the inventory has 3",
        &at(&tree, LAB, "4\nrequirements = { memory_mb = 512, cpus = 1, disks = 1, disk_gb = 1 }\n\n[roles.CephStorage]"),
    );
}

#[test]
fn all_errors_are_reported_in_one_run() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "role = \"Networker\"",
        "rolle = \"Networker\"",
    );
    edit(
        &mut tree,
        LAB,
        "\"52:54:00:0a:00:0f\"",
        "\"52:54:00:0a:00\"",
    );
    edit(
        &mut tree,
        LAB,
        "ctlplane_ip = \"127.0.10.12\"",
        "ctlplane_ip = \"127.0.99.12\"",
    );
    edit(
        &mut tree,
        LAB,
        "connect_timeout = 5",
        "connect_timeout = \"five\"",
    );
    let (count, report) = errors(&tree, LAB);
    for m in [
        "unknown field `rolle`",
        "is not a MAC address",
        "is outside network `ctlplane`",
        "invalid type: string \"five\"",
    ] {
        assert!(report.contains(m), "missing `{m}` in:\n{report}");
    }
    assert!(count >= 4, "{count}");
}

#[test]
fn secrets_file_errors_never_quote_it() {
    let mut tree = repo_tree();
    tree.insert(
        "inventories/lab.secrets.toml",
        "lab_bmc_password = 12345678\n",
    );
    let (_, report) = errors(&tree, LAB);
    assert!(
        report.contains("secret `lab_bmc_password` must be a string, not integer"),
        "{report}"
    );
    assert!(
        report.contains("--> inventories/lab.secrets.toml:1:1"),
        "{report}"
    );
    assert!(!report.contains("12345678"), "{report}");
    tree.insert(
        "inventories/lab.secrets.toml",
        "lab_bmc_password = \"s3cr3t-value\n",
    );
    let (_, report) = errors(&tree, LAB);
    assert!(
        report.contains("invalid TOML in the secrets file"),
        "{report}"
    );
    assert!(!report.contains("s3cr3t"), "{report}");
}

#[test]
fn a_node_named_like_the_undercloud() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "role = \"CephStorage\"\n",
        "name = \"lab-undercloud\"\nrole = \"CephStorage\"\n",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "node `lab-undercloud` has the undercloud's name",
        &at(&tree, LAB, "\"lab-undercloud\"\nrole"),
    );
}

#[test]
fn a_files_only_service_with_container_settings() {
    let mut tree = repo_tree();
    let path = "templates/undercloud/container_registry/service.toml";
    edit(
        &mut tree,
        path,
        "# files only: no container runs\n",
        "command = [\"registry\"]\n",
    );
    let (_, report) = errors(&tree, LAB);
    assert!(
        report
            .contains("error: command set, but the service has no `image`: no container would run"),
        "{report}"
    );
    assert!(report.contains(&format!("--> {path}")), "{report}");
    assert!(report.contains("files-only service"), "{report}");
}

#[test]
fn an_undercloud_template_with_an_undefined_variable() {
    let mut tree = repo_tree();
    let path = "templates/undercloud/dnsmasq/dnsmasq.conf.j2";
    let text = read(&tree, path);
    tree.insert(
        path,
        format!("{text}# {{{{ vars.no_such_dhcp_option }}}}\n"),
    );
    let (_, report) = errors(&tree, LAB);
    let line = text.lines().count() + 1;
    assert_error(
        &report,
        "undefined variable `vars.no_such_dhcp_option`",
        &format!("{path}:{line}:6"),
    );
}

#[test]
fn a_node_with_a_bmc_and_no_mac_cannot_pxe_boot() {
    let mut tree = repo_tree();
    edit(
        &mut tree,
        LAB,
        "ctlplane_ip = \"127.0.10.16\"\nmacs = [\"52:54:00:0a:00:10\"]\n",
        "ctlplane_ip = \"127.0.10.16\"\n",
    );
    let (_, report) = errors(&tree, LAB);
    assert_error(
        &report,
        "node `lab-networker-0` has a redfish BMC but no `macs`: it cannot PXE boot from the undercloud's DHCP",
        &at(&tree, LAB, "[[nodes]]\nrole = \"Networker\""),
    );
}
