//! The inventory's networks and the undercloud, resolved: every CIDR, VIP, gateway and
//! allocation range parsed and checked, and the undercloud's place on its provisioning
//! network.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use toml::Spanned;

use super::address::{in_range, nth_address, parse_cidr, parse_ip};
use super::build::loc;
use super::{Network, Undercloud};
use crate::catalogue::Catalogue;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::inventory::spec::NetworkSpec;
use crate::inventory::Inventory;

/// Every network whose CIDR parses, by name; the problems of each are in `diags`.
pub(super) fn resolve_networks(
    inv: &Inventory,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Network> {
    let mut networks = BTreeMap::new();
    for (name, spec) in &inv.networks {
        if let Some(network) = resolve_network(&inv.path, name, spec, diags) {
            networks.insert(name.get_ref().clone(), network);
        }
    }
    networks
}

/// One `[networks.NAME]`; `None` if its CIDR does not parse.
fn resolve_network(
    file: &Path,
    name: &Spanned<String>,
    spec: &NetworkSpec,
    diags: &mut Diagnostics,
) -> Option<Network> {
    let cidr = match parse_cidr(spec.cidr.get_ref()) {
        Ok(c) => c,
        Err(msg) => {
            diags.push(
                Diagnostic::new(msg, loc(file, spec.cidr.span()))
                    .help("write the network as ADDRESS/PREFIX with a zero host part"),
            );
            return None;
        }
    };
    let network = name.get_ref();
    let mut ip_in = |v: &Option<Spanned<String>>, what: &str| {
        address_in_network(file, v.as_ref()?, what, network, cidr, diags)
    };
    let gateway = ip_in(&spec.gateway, "gateway");
    let vip = ip_in(&spec.vip, "VIP");
    let start = ip_in(&spec.allocation_start, "allocation start");
    let end = ip_in(&spec.allocation_end, "allocation end");
    let first = nth_address(&cidr, 1).unwrap_or(cidr.network());
    let last = cidr.hosts().last().unwrap_or(cidr.broadcast());
    let (start, end) = (start.unwrap_or(first), end.unwrap_or(last));
    if !in_range(start, start, end) {
        if let Some(s) = &spec.allocation_start {
            diags.push(
                Diagnostic::new(
                    format!("allocation range {start}-{end} is empty"),
                    loc(file, s.span()),
                )
                .help("allocation_start must not be after allocation_end"),
            );
        }
    }
    Some(Network {
        name: network.clone(),
        cidr,
        vlan: spec.vlan.as_ref().map(|v| *v.get_ref()),
        gateway,
        allocation_start: start,
        allocation_end: end,
        vip,
        mtu: spec.mtu,
    })
}

/// An address of network `network` (its `what`: gateway, VIP...), which must be an IP
/// address inside `cidr`.
fn address_in_network(
    file: &Path,
    v: &Spanned<String>,
    what: &str,
    network: &str,
    cidr: IpNet,
    diags: &mut Diagnostics,
) -> Option<IpAddr> {
    match located_ip(file, v, diags)? {
        ip if cidr.contains(&ip) => Some(ip),
        ip => {
            diags.push(
                Diagnostic::new(
                    format!("{what} {ip} is outside network `{network}` ({cidr})"),
                    loc(file, v.span()),
                )
                .help(format!("use an address inside {cidr}")),
            );
            None
        }
    }
}

/// `v` as an IP address, or a located error saying it is not one.
pub(super) fn located_ip(
    file: &Path,
    v: &Spanned<String>,
    diags: &mut Diagnostics,
) -> Option<IpAddr> {
    let ip = parse_ip(v.get_ref());
    if ip.is_none() {
        diags.push(
            Diagnostic::new(
                format!("`{}` is not an IP address", v.get_ref()),
                loc(file, v.span()),
            )
            .help("write an IPv4 or IPv6 address"),
        );
    }
    ip
}

/// Whether the inventory has a `[networks.NAME]` table, even one whose CIDR does not
/// parse (that one is reported already).
pub(super) fn defines_network(inv: &Inventory, name: &str) -> bool {
    inv.networks.iter().any(|(n, _)| n.get_ref() == name)
}

/// The undercloud's address on its provisioning network as written: `ctlplane_ip`, or
/// else `address`.
pub(super) fn undercloud_ctlplane_ip(inv: &Inventory) -> &Spanned<String> {
    inv.undercloud
        .ctlplane_ip
        .as_ref()
        .unwrap_or(&inv.undercloud.address)
}

/// The undercloud, on its provisioning network; its services are the catalogue's
/// undercloud services.
pub(super) fn resolve_undercloud(
    inv: &Inventory,
    networks: &BTreeMap<String, Network>,
    catalogue: &Catalogue,
    diags: &mut Diagnostics,
) -> Undercloud {
    let file = &inv.path;
    let ctl_name = inv.undercloud.network.get_ref().clone();
    let ctlplane = networks.get(&ctl_name);
    if ctlplane.is_none() && !defines_network(inv, &ctl_name) {
        diags.push(
            Diagnostic::new(
                format!("the undercloud's provisioning network `{ctl_name}` is not defined"),
                loc(file, inv.undercloud.network.span()),
            )
            .help(format!("add a `[networks.{ctl_name}]` table with its cidr")),
        );
    }
    let uc_ctl_spanned = undercloud_ctlplane_ip(inv);
    let uc_ctlplane_ip = match parse_ip(uc_ctl_spanned.get_ref()) {
        _ if inv.incomplete.contains(&"undercloud") => IpAddr::from([0, 0, 0, 0]),
        Some(ip) => {
            if let Some(net) = ctlplane {
                if !net.cidr.contains(&ip) {
                    diags.push(
                        Diagnostic::new(
                            format!(
                                "undercloud address {ip} is outside network `{ctl_name}` ({})",
                                net.cidr
                            ),
                            loc(file, uc_ctl_spanned.span()),
                        )
                        .help(format!(
                            "use an address inside {}, or set `ctlplane_ip`",
                            net.cidr
                        )),
                    );
                }
            }
            ip
        }
        None => {
            diags.push(
                Diagnostic::new(
                    format!("`{}` is not an IP address", uc_ctl_spanned.get_ref()),
                    loc(file, uc_ctl_spanned.span()),
                )
                .help("give the undercloud's address on the provisioning network as `ctlplane_ip`"),
            );
            IpAddr::from([0, 0, 0, 0])
        }
    };
    Undercloud {
        name: inv.undercloud.name.get_ref().clone(),
        address: inv.undercloud.address.get_ref().clone(),
        ssh_port: inv.undercloud.ssh_port.unwrap_or(inv.ssh.port),
        ctlplane_ip: uc_ctlplane_ip,
        network: ctl_name,
        log_port: inv.undercloud.log_port,
        fqdn: format!(
            "{}.{}",
            inv.undercloud.name.get_ref(),
            inv.cloud.domain.get_ref()
        ),
        services: catalogue.undercloud_services.keys().cloned().collect(),
    }
}
