//! Every host's address on each network of its role: its provisioning address checked,
//! its pinned `addresses` checked, the rest allocated (the same host number as on the
//! provisioning network); no address used twice on a network.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use std::rc::Rc;

use super::address::{host_offset, in_range, nth_address, parse_ip};
use super::build::loc;
use super::networks::{located_ip, undercloud_ctlplane_ip};
use super::{Network, Role, Undercloud};
use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::inventory::spec::NodeSpec;
use crate::inventory::Inventory;

/// Who used an address first (`` `host` ``, or "the undercloud", "the VIP of
/// `network`"...), and where it is written.
struct FirstUse {
    /// A host's name (shared by its entries on every network), or the undercloud, a VIP
    /// or a gateway as it is described.
    who: Rc<str>,
    /// Whether `who` is a host's name, quoted in a message.
    host: bool,
    span: Option<Range<usize>>,
}

impl FirstUse {
    fn other(what: String, span: Option<Range<usize>>) -> Self {
        FirstUse {
            who: what.into(),
            host: false,
            span,
        }
    }
}

/// The addresses handed out so far, by network, to find one used twice.
pub(super) struct AddressBook<'a> {
    file: &'a Path,
    networks: &'a BTreeMap<String, Network>,
    /// The provisioning network's name.
    ctl_name: &'a str,
    /// By network, then address: a hash lookup per address, with no key to allocate.
    used: BTreeMap<String, HashMap<IpAddr, FirstUse>>,
}

impl<'a> AddressBook<'a> {
    /// A book holding the addresses that are no node's: the undercloud's, and every
    /// network's VIP and gateway.
    pub(super) fn new(
        inv: &'a Inventory,
        networks: &'a BTreeMap<String, Network>,
        undercloud: &'a Undercloud,
    ) -> Self {
        let mut used: BTreeMap<String, HashMap<IpAddr, FirstUse>> = BTreeMap::new();
        if !inv.incomplete.contains(&"undercloud") {
            used.entry(undercloud.network.clone()).or_default().insert(
                undercloud.ctlplane_ip,
                FirstUse::other(
                    "the undercloud".into(),
                    Some(undercloud_ctlplane_ip(inv).span()),
                ),
            );
        }
        for (net_name, net) in networks {
            if let Some(vip) = net.vip {
                let span = inv
                    .networks
                    .iter()
                    .find(|(n, _)| n.get_ref() == net_name)
                    .and_then(|(_, s)| s.vip.as_ref().map(|v| v.span()));
                used.entry(net_name.clone()).or_default().insert(
                    vip,
                    FirstUse::other(format!("the VIP of `{net_name}`"), span),
                );
            }
            if let Some(gw) = net.gateway {
                let span = inv
                    .networks
                    .iter()
                    .find(|(n, _)| n.get_ref() == net_name)
                    .and_then(|(_, s)| s.gateway.as_ref().map(|v| v.span()));
                used.entry(net_name.clone())
                    .or_default()
                    .entry(gw)
                    .or_insert_with(|| {
                        FirstUse::other(format!("the gateway of `{net_name}`"), span)
                    });
            }
        }
        AddressBook {
            file: &inv.path,
            networks,
            ctl_name: &undercloud.network,
            used,
        }
    }

    /// The addresses of `node` (host `name` of `role`): its provisioning address, if
    /// valid, and its address on every network of its role that has one.
    pub(super) fn assign(
        &mut self,
        node: &NodeSpec,
        name: &str,
        role: &Role,
        diags: &mut Diagnostics,
    ) -> (Option<IpAddr>, BTreeMap<String, IpAddr>) {
        let ctlplane = self.networks.get(self.ctl_name);
        let ctlplane_ip = check_node_ctlplane(self.file, node, ctlplane, self.ctl_name, diags);
        let mut addresses = BTreeMap::new();
        // One copy of the name for the host's entries on every network.
        let name: Rc<str> = Rc::from(name);
        if let Some(ip) = ctlplane_ip {
            addresses.insert(self.ctl_name.to_string(), ip);
            self.note(
                self.ctl_name,
                ip,
                &name,
                Some(node.ctlplane_ip.span()),
                diags,
            );
        }
        self.pin(node, &name, role, &mut addresses, diags);
        if let Some(ip) = ctlplane_ip {
            self.allocate(node, &name, role, ip, &mut addresses, diags);
        }
        (ctlplane_ip, addresses)
    }

    /// The node's fixed `addresses`, each on a network of its role and inside it.
    fn pin(
        &mut self,
        node: &NodeSpec,
        name: &Rc<str>,
        role: &Role,
        addresses: &mut BTreeMap<String, IpAddr>,
        diags: &mut Diagnostics,
    ) {
        let file = self.file;
        for (net_name, value) in &node.addresses {
            if !role.networks.contains(net_name) {
                diags.push(
                    Diagnostic::new(format!("node `{name}` has an address on `{net_name}`, a network its role `{}` does not use", role.name), loc(file, value.span()))
                        .help(format!("the role's networks are: {}", role.networks.join(", "))),
                );
                continue;
            }
            let Some(net) = self.networks.get(net_name) else {
                continue;
            };
            match parse_ip(value.get_ref()) {
                Some(ip) if net.cidr.contains(&ip) => {
                    addresses.insert(net_name.clone(), ip);
                    self.note(net_name, ip, name, Some(value.span()), diags);
                }
                Some(ip) => diags.push(
                    Diagnostic::new(
                        format!(
                            "address {ip} is outside network `{net_name}` ({})",
                            net.cidr
                        ),
                        loc(file, value.span()),
                    )
                    .help(format!("use an address inside {}", net.cidr)),
                ),
                None => diags.push(
                    Diagnostic::new(
                        format!("`{}` is not an IP address", value.get_ref()),
                        loc(file, value.span()),
                    )
                    .help("write an IPv4 or IPv6 address"),
                ),
            }
        }
    }

    /// Allocates the rest: on every network of the role without an address yet, the
    /// same host number as `ip` has on the provisioning network (if that is defined).
    fn allocate(
        &mut self,
        node: &NodeSpec,
        name: &Rc<str>,
        role: &Role,
        ip: IpAddr,
        addresses: &mut BTreeMap<String, IpAddr>,
        diags: &mut Diagnostics,
    ) {
        let Some(ctl) = self.networks.get(self.ctl_name) else {
            return;
        };
        let offset = host_offset(&ctl.cidr, ip);
        for net_name in &role.networks {
            if addresses.contains_key(net_name) {
                continue;
            }
            let Some(net) = self.networks.get(net_name) else {
                continue;
            };
            match offset.and_then(|o| nth_address(&net.cidr, o)).filter(|a| in_range(*a, net.allocation_start, net.allocation_end)) {
                Some(a) => {
                    addresses.insert(net_name.clone(), a);
                    self.note(net_name, a, name, Some(node.ctlplane_ip.span()), diags);
                }
                None => diags.push(
                    Diagnostic::new(
                        format!(
                            "cannot allocate an address on `{net_name}` for `{name}`: host number {} of {ip} falls outside the allocation range {}-{}",
                            offset.map(|o| o.to_string()).unwrap_or_default(),
                            net.allocation_start,
                            net.allocation_end
                        ),
                        loc(self.file, node.ctlplane_ip.span()),
                    )
                    .help(format!("pin it: `addresses = {{ {net_name} = \"...\" }}` on this node, or widen the range of `{net_name}`")),
                ),
            }
        }
    }

    /// Notes that `who` uses `ip` on `net` (written at `span`); reports it if another
    /// host, the undercloud, a VIP or a gateway uses it already.
    fn note(
        &mut self,
        net: &str,
        ip: IpAddr,
        who: &Rc<str>,
        span: Option<Range<usize>>,
        diags: &mut Diagnostics,
    ) {
        if !self.used.contains_key(net) {
            self.used.insert(net.to_string(), HashMap::new());
        }
        let Some(on_net) = self.used.get_mut(net) else {
            return;
        };
        if let Some(first) = on_net.get(&ip) {
            let label = if first.host {
                format!("`{}`", first.who)
            } else {
                first.who.to_string()
            };
            let mut d = Diagnostic::new(format!("duplicate address {ip} on network `{net}`: `{who}` and {label}"), Location::new(self.file, span))
                .help("give every host its own address on each network (pin it with `addresses` if it was allocated)");
            if let Some(fs) = &first.span {
                d = d.note(
                    "first used here",
                    Location::new(self.file, Some(fs.clone())),
                );
            }
            diags.push(d);
        } else {
            on_net.insert(
                ip,
                FirstUse {
                    who: who.clone(),
                    host: !who.starts_with("the "),
                    span,
                },
            );
        }
    }
}

/// The node's address on the provisioning network `ctl_name`, if it is an IP address
/// inside it.
fn check_node_ctlplane(
    file: &Path,
    node: &NodeSpec,
    ctlplane: Option<&Network>,
    ctl_name: &str,
    diags: &mut Diagnostics,
) -> Option<IpAddr> {
    let v = &node.ctlplane_ip;
    let ip = located_ip(file, v, diags)?;
    match ctlplane {
        Some(net) if !net.cidr.contains(&ip) => {
            diags.push(
                Diagnostic::new(
                    format!(
                        "address {ip} is outside network `{ctl_name}` ({})",
                        net.cidr
                    ),
                    loc(file, v.span()),
                )
                .help(format!("use an address inside {}", net.cidr)),
            );
            None
        }
        _ => Some(ip),
    }
}
