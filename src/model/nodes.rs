//! The `[[nodes]]`, resolved into hosts: each node's role, host name, addresses, MACs
//! and BMC, checked, with names and MACs no two nodes share; variables merged global <
//! role < node.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::address::normalize_mac;
use super::bmc::check_bmc;
use super::build::loc;
use super::host_addresses::AddressBook;
use super::{merge_tables, Bmc, Host, Network, Role, Undercloud};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::inventory::spec::{BmcDriver, NodeSpec};
use crate::inventory::{Inventory, Secrets};

/// What the nodes are resolved against: the inventory, and what was resolved before.
pub(super) struct NodeInputs<'a> {
    pub inv: &'a Inventory,
    pub networks: &'a BTreeMap<String, Network>,
    pub roles: &'a BTreeMap<String, Role>,
    pub undercloud: &'a Undercloud,
    /// The role files present, for the help of a node whose role is not in use.
    pub available_roles: &'a [String],
    pub secrets: &'a Secrets,
    /// How to give a secret a value (`NAME` stands for its name).
    pub secrets_hint: &'a str,
    /// The global variables.
    pub vars: &'a toml::Table,
}

/// Where each name, MAC and BMC endpoint was first used, to find one used twice.
#[derive(Default)]
struct FirstUses {
    names: BTreeMap<String, Range<usize>>,
    macs: BTreeMap<String, Range<usize>>,
    bmcs: BTreeMap<String, Range<usize>>,
}

/// The nodes, resolved.
pub(super) struct Resolved {
    /// A host for every node whose role the cloud uses, in inventory order; none once
    /// a problem is found.
    pub hosts: Vec<Host>,
    /// How many nodes each role the cloud uses has.
    pub per_role: BTreeMap<String, usize>,
}

/// Checks every node; a host for every node whose role the cloud uses, as long as no
/// problem is found. A load with any diagnostic gives no cloud (see
/// [`super::build()`]), so the hosts are not kept past the first one: an inventory
/// with an error on each of 200,000 nodes would otherwise hold every host, each with
/// its copy of the global variables, only to throw them away.
pub(super) fn resolve_nodes(input: &NodeInputs, diags: &mut Diagnostics) -> Resolved {
    let inv = input.inv;
    let file = &inv.path;
    let mut hosts = Vec::new();
    let mut per_role: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = FirstUses::default();
    let mut address_book = AddressBook::new(inv, input.networks, input.undercloud);
    let mut shared_vars: BTreeMap<String, Arc<toml::Table>> = BTreeMap::new();
    for (node_span, node) in &inv.nodes {
        let Some(role) = input.roles.get(node.role.get_ref()) else {
            report_unknown_role(inv, input.available_roles, node, diags);
            continue;
        };
        let index = {
            let count = per_role.entry(role.name.clone()).or_insert(0);
            *count += 1;
            *count - 1
        };
        let (name, name_span) = host_name(inv, node, node_span, role, index);
        check_host_name(inv, &name, &name_span, &mut seen.names, diags);
        let (ctlplane_ip, addresses) = address_book.assign(node, &name, role, diags);
        let macs = node_macs(file, node, &mut seen.macs, diags);
        let bmc = check_bmc(
            file,
            node,
            &name,
            input.secrets,
            input.secrets_hint,
            &mut seen.bmcs,
            diags,
        );
        check_pxe_boot(file, node, &name, &name_span, &bmc, &macs, diags);
        if !diags.is_empty() {
            hosts = Vec::new();
            continue;
        }
        // The cloud's and the role's vars, once per role: most nodes add none.
        let role_vars = shared_vars.entry(role.name.clone()).or_insert_with(|| {
            let mut v = input.vars.clone();
            merge_tables(&mut v, &role.vars);
            Arc::new(v)
        });
        let host_vars = if node.vars.is_empty() {
            Arc::clone(role_vars)
        } else {
            let mut v = (**role_vars).clone();
            merge_tables(&mut v, &node.vars);
            Arc::new(v)
        };
        hosts.push(Host {
            fqdn: format!("{name}.{}", inv.cloud.domain.get_ref()),
            name,
            role: role.name.clone(),
            index,
            ctlplane_ip: ctlplane_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            macs,
            addresses,
            services: role.services.clone(),
            profile: node.profile.clone(),
            capabilities: node.capabilities.clone(),
            root_device: node.root_device.clone(),
            bmc,
            vars: host_vars,
            config: node.config.clone(),
        });
    }
    Resolved { hosts, per_role }
}

/// A node whose role the cloud does not use: reported, unless the role is one of the
/// inventory's (its missing role file is reported already).
fn report_unknown_role(
    inv: &Inventory,
    available: &[String],
    node: &NodeSpec,
    diags: &mut Diagnostics,
) {
    if inv
        .roles
        .iter()
        .any(|(n, _)| n.get_ref() == node.role.get_ref())
    {
        return;
    }
    let help = if available.contains(node.role.get_ref()) {
        format!(
            "add `[roles.{}]` to the inventory to use this role",
            node.role.get_ref()
        )
    } else {
        format!(
            "use one of the inventory's roles: {}",
            inv.roles
                .iter()
                .map(|(n, _)| n.get_ref().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    diags.push(
        Diagnostic::new(
            format!("node role `{}` does not exist", node.role.get_ref()),
            loc(&inv.path, node.role.span()),
        )
        .help(help),
    );
}

/// The node's host name (its `name`, or its role's hostname format) and where it is
/// written (the name, or else the node's table).
fn host_name(
    inv: &Inventory,
    node: &NodeSpec,
    node_span: &Range<usize>,
    role: &Role,
    index: usize,
) -> (String, Range<usize>) {
    let name = match &node.name {
        Some(n) => n.get_ref().clone(),
        None => role
            .hostname_format
            .replace("{cloud}", inv.cloud.name.get_ref())
            .replace("{role}", &role.name.to_ascii_lowercase())
            .replace("{index}", &index.to_string()),
    };
    let name_span = node
        .name
        .as_ref()
        .map(|n| n.span())
        .unwrap_or(node_span.clone());
    (name, name_span)
}

/// A host name must be valid, not the undercloud's, and not another node's (`seen`).
fn check_host_name(
    inv: &Inventory,
    name: &str,
    name_span: &Range<usize>,
    seen: &mut BTreeMap<String, Range<usize>>,
    diags: &mut Diagnostics,
) {
    let file = &inv.path;
    if !crate::names::NameRule::HostName.allows(name) {
        diags.push(
            Diagnostic::new(
                format!("`{}` is not a valid host name", name.escape_debug()),
                loc(file, name_span.clone()),
            )
            .help(crate::names::NameRule::HostName.help()),
        );
    }
    if name == inv.undercloud.name.get_ref() {
        diags.push(
            Diagnostic::new(
                format!("node `{name}` has the undercloud's name"),
                loc(file, name_span.clone()),
            )
            .note(
                "the undercloud is named here",
                loc(file, inv.undercloud.name.span()),
            )
            .help("give the node another name: the undercloud is a host of the plan too"),
        );
    } else if let Some(first) = seen.get(name) {
        diags.push(
            Diagnostic::new(
                format!("duplicate node name `{name}`"),
                loc(file, name_span.clone()),
            )
            .note("first used here", loc(file, first.clone()))
            .help("give every node its own name"),
        );
    } else {
        seen.insert(name.to_string(), name_span.clone());
    }
}

/// The node's MACs, normalized; each must be well formed and no other node's (`seen`).
fn node_macs(
    file: &Path,
    node: &NodeSpec,
    seen: &mut BTreeMap<String, Range<usize>>,
    diags: &mut Diagnostics,
) -> Vec<String> {
    let mut macs = Vec::new();
    for mac in &node.macs {
        match normalize_mac(mac.get_ref()) {
            Some(m) => {
                if let Some(first) = seen.get(&m) {
                    diags.push(
                        Diagnostic::new(
                            format!("duplicate MAC address {m}"),
                            loc(file, mac.span()),
                        )
                        .note("first used here", loc(file, first.clone()))
                        .help("every NIC has its own MAC: check for a copy-paste"),
                    );
                } else {
                    seen.insert(m.clone(), mac.span());
                }
                macs.push(m);
            }
            None => diags.push(
                Diagnostic::new(
                    format!("`{}` is not a MAC address", mac.get_ref()),
                    loc(file, mac.span()),
                )
                .help("write six hexadecimal pairs separated by colons, e.g. 52:54:00:12:34:56"),
            ),
        }
    }
    macs
}

/// A node the undercloud brings up boots from its DHCP entry: one per MAC.
fn check_pxe_boot(
    file: &Path,
    node: &NodeSpec,
    name: &str,
    name_span: &Range<usize>,
    bmc: &Bmc,
    macs: &[String],
    diags: &mut Diagnostics,
) {
    if bmc.driver != BmcDriver::None && macs.is_empty() && node.macs.is_empty() {
        diags.push(
            Diagnostic::new(
                format!(
                    "node `{name}` has a {} BMC but no `macs`: it cannot PXE boot from the undercloud's DHCP",
                    bmc.driver
                ),
                loc(file, name_span.clone()),
            )
            .help("add `macs = [\"<MAC of its provisioning NIC>\"]` (the first one PXE boots), or `bmc = { driver = \"none\" }` for a node already installed"),
        );
    }
}
