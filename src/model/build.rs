//! Building the model from an inventory and the catalogue, checking everything that
//! crosses parts: roles, services, secrets, addresses, duplicates.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::address::{host_offset, in_range, normalize_mac, nth_address, parse_cidr, parse_ip};
use super::*;
use crate::catalogue::Catalogue;
use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::inventory::spec::{BmcDriver, NodeSpec};
use crate::inventory::{Inventory, Secrets};
use crate::source::{SourceMap, SourceTree};

/// Inputs of a load besides the file tree.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Environment variables considered for secrets (`PROVISION_SECRET_*`).
    pub env: Vec<(String, String)>,
    /// Where to read the secrets file when the tree has none (a git revision usually
    /// does not hold it): the working tree's root.
    pub secrets_fallback: Option<std::path::PathBuf>,
}

impl LoadOptions {
    /// Takes the secret variables from this process's environment.
    pub fn from_process_env() -> Self {
        Self {
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("PROVISION_"))
                .collect(),
            secrets_fallback: None,
        }
    }
}

/// The result of loading: the model if it could be built, and every problem found.
pub struct Loaded {
    pub cloud: Option<Cloud>,
    pub diags: Diagnostics,
    pub sources: SourceMap,
}

/// Loads the inventory at `path` from `tree`, with its catalogue and secrets, and
/// builds the model.
pub fn build(path: &Path, tree: &dyn SourceTree, opts: &LoadOptions) -> Loaded {
    let sources = SourceMap::default();
    let mut diags = Diagnostics::default();
    let cloud = build_inner(path, tree, opts, &sources, &mut diags);
    diags.sort();
    Loaded {
        cloud: if diags.is_empty() {
            cloud
        } else {
            cloud.filter(|_| false)
        },
        diags,
        sources,
    }
}

fn loc(file: &Path, span: Range<usize>) -> Location {
    Location::new(file, Some(span))
}

fn build_inner(
    path: &Path,
    tree: &dyn SourceTree,
    opts: &LoadOptions,
    sources: &SourceMap,
    diags: &mut Diagnostics,
) -> Option<Cloud> {
    let inv = Inventory::load(path, tree, sources, diags)?;
    let file = inv.path.clone();
    let role_names: Vec<String> = inv.roles.iter().map(|(n, _)| n.get_ref().clone()).collect();
    let catalogue = Catalogue::load(
        &inv.resolve(inv.cloud.roles.get_ref()),
        &inv.resolve(inv.cloud.templates.get_ref()),
        &role_names,
        tree,
        sources,
        diags,
    );
    let secrets_file = inv.secrets.file.as_ref().map(|f| inv.resolve(f.get_ref()));
    let fallback = opts
        .secrets_fallback
        .as_ref()
        .map(|root| crate::git::WorkTree { root: root.clone() });
    let secrets_tree: &dyn SourceTree = match (&secrets_file, &fallback) {
        (Some(f), Some(fb)) if !tree.exists(f) => fb,
        _ => tree,
    };
    let secrets = Secrets::load(
        secrets_file.as_deref(),
        &inv.secrets.env_prefix,
        &opts.env,
        secrets_tree,
        sources,
        diags,
    );
    let secrets_hint = match &secrets_file {
        Some(f) => format!(
            "add `NAME = \"...\"` to {} or set {}NAME",
            f.display(),
            inv.secrets.env_prefix
        ),
        None => format!(
            "set `[secrets] file = \"...\"` in the inventory, or the environment variable {}NAME",
            inv.secrets.env_prefix
        ),
    };

    // SSH. Turning strict host-key checking off is not an error, but the CLI says so
    // on every run.
    let ssh = SshSettings {
        user: inv.ssh.user.clone(),
        private_key: inv.resolve(inv.ssh.private_key.get_ref()),
        known_hosts: inv.resolve(inv.ssh.known_hosts.get_ref()),
        port: inv.ssh.port,
        connect_timeout_secs: inv.ssh.connect_timeout,
        strict_host_key_checking: *inv.ssh.strict_host_key_checking.get_ref(),
        jump_through_undercloud: inv.ssh.jump_through_undercloud,
        key_exchange: inv
            .ssh
            .key_exchange
            .iter()
            .flatten()
            .map(|k| k.get_ref().clone())
            .collect(),
    };
    for k in inv.ssh.key_exchange.iter().flatten() {
        if !crate::transport::KNOWN_KEX.contains(&k.get_ref().as_str()) {
            diags.push(
                Diagnostic::new(
                    format!("unknown key-exchange algorithm `{}`", k.get_ref()),
                    loc(&file, k.span()),
                )
                .help(format!(
                    "use some of: {}",
                    crate::transport::KNOWN_KEX.join(", ")
                )),
            );
        }
    }

    // Networks.
    let mut networks = BTreeMap::new();
    for (name, spec) in &inv.networks {
        let cidr = match parse_cidr(spec.cidr.get_ref()) {
            Ok(c) => c,
            Err(msg) => {
                diags.push(
                    Diagnostic::new(msg, loc(&file, spec.cidr.span()))
                        .help("write the network as ADDRESS/PREFIX with a zero host part"),
                );
                continue;
            }
        };
        let mut ip_in = |v: &Option<Spanned<String>>, what: &str| -> Option<IpAddr> {
            let v = v.as_ref()?;
            match parse_ip(v.get_ref()) {
                Some(ip) if cidr.contains(&ip) => Some(ip),
                Some(ip) => {
                    diags.push(
                        Diagnostic::new(
                            format!(
                                "{what} {ip} is outside network `{}` ({cidr})",
                                name.get_ref()
                            ),
                            loc(&file, v.span()),
                        )
                        .help(format!("use an address inside {cidr}")),
                    );
                    None
                }
                None => {
                    diags.push(
                        Diagnostic::new(
                            format!("`{}` is not an IP address", v.get_ref()),
                            loc(&file, v.span()),
                        )
                        .help("write an IPv4 or IPv6 address"),
                    );
                    None
                }
            }
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
                        loc(&file, s.span()),
                    )
                    .help("allocation_start must not be after allocation_end"),
                );
            }
        }
        networks.insert(
            name.get_ref().clone(),
            Network {
                name: name.get_ref().clone(),
                cidr,
                vlan: spec.vlan.as_ref().map(|v| *v.get_ref()),
                gateway,
                allocation_start: start,
                allocation_end: end,
                vip,
                mtu: spec.mtu,
            },
        );
    }
    let network_spans: BTreeMap<String, Range<usize>> = inv
        .networks
        .iter()
        .map(|(n, _)| (n.get_ref().clone(), n.span()))
        .collect();

    // Undercloud.
    let ctl_name = inv.undercloud.network.get_ref().clone();
    let ctlplane = networks.get(&ctl_name).cloned();
    if ctlplane.is_none() && network_spans.get(&ctl_name).is_none() {
        diags.push(
            Diagnostic::new(
                format!("the undercloud's provisioning network `{ctl_name}` is not defined"),
                loc(&file, inv.undercloud.network.span()),
            )
            .help(format!("add a `[networks.{ctl_name}]` table with its cidr")),
        );
    }
    let uc_ctl_spanned = inv
        .undercloud
        .ctlplane_ip
        .clone()
        .unwrap_or_else(|| inv.undercloud.address.clone());
    let uc_ctlplane_ip = match parse_ip(uc_ctl_spanned.get_ref()) {
        _ if inv.incomplete.contains(&"undercloud") => IpAddr::from([0, 0, 0, 0]),
        Some(ip) => {
            if let Some(net) = &ctlplane {
                if !net.cidr.contains(&ip) {
                    diags.push(
                        Diagnostic::new(
                            format!(
                                "undercloud address {ip} is outside network `{ctl_name}` ({})",
                                net.cidr
                            ),
                            loc(&file, uc_ctl_spanned.span()),
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
                    loc(&file, uc_ctl_spanned.span()),
                )
                .help("give the undercloud's address on the provisioning network as `ctlplane_ip`"),
            );
            IpAddr::from([0, 0, 0, 0])
        }
    };
    let undercloud = Undercloud {
        name: inv.undercloud.name.get_ref().clone(),
        address: inv.undercloud.address.get_ref().clone(),
        ssh_port: inv.undercloud.ssh_port.unwrap_or(inv.ssh.port),
        ctlplane_ip: uc_ctlplane_ip,
        network: ctl_name.clone(),
        log_port: inv.undercloud.log_port,
        fqdn: format!(
            "{}.{}",
            inv.undercloud.name.get_ref(),
            inv.cloud.domain.get_ref()
        ),
        services: catalogue.undercloud_services.keys().cloned().collect(),
    };

    // Roles.
    let mut vars = catalogue.vars.clone();
    merge_tables(&mut vars, &inv.vars);
    let available = catalogue.available_roles(tree);
    let mut roles = BTreeMap::new();
    for (name, usage) in &inv.roles {
        let Some(role) = catalogue.roles.get(name.get_ref()) else {
            diags.push(
                Diagnostic::new(
                    format!("role `{}` does not exist", name.get_ref()),
                    loc(&file, name.span()),
                )
                .help(format!(
                    "create {} or use one of: {}",
                    catalogue
                        .roles_dir
                        .join(format!("{}.toml", name.get_ref()))
                        .display(),
                    available.join(", ")
                )),
            );
            continue;
        };
        let def = &role.def;
        for net in &def.networks {
            if !networks.contains_key(net.get_ref()) && !network_spans.contains_key(net.get_ref()) {
                diags.push(
                    Diagnostic::new(
                        format!(
                            "role `{}` uses network `{}`, which the inventory does not define",
                            name.get_ref(),
                            net.get_ref()
                        ),
                        loc(&role.file, net.span()),
                    )
                    .help(format!(
                        "add `[networks.{}]` to {}",
                        net.get_ref(),
                        file.display()
                    )),
                );
            }
        }
        for svc in &def.services {
            if !catalogue.services.contains_key(svc.get_ref()) {
                diags.push(
                    Diagnostic::new(
                        format!(
                            "role `{}` runs service `{}`, which has no template in the catalogue",
                            name.get_ref(),
                            svc.get_ref()
                        ),
                        loc(&role.file, svc.span()),
                    )
                    .help(format!(
                        "create {} (see docs/catalogue.md), or remove the service from the role",
                        catalogue
                            .templates_dir
                            .join(svc.get_ref())
                            .join("service.toml")
                            .display()
                    )),
                );
            }
        }
        let mut role_vars = def.vars.clone();
        merge_tables(&mut role_vars, &usage.vars);
        roles.insert(
            name.get_ref().clone(),
            Role {
                name: name.get_ref().clone(),
                description: def.description.clone(),
                hostname_format: usage
                    .hostname_format
                    .as_ref()
                    .map(|h| h.get_ref().clone())
                    .unwrap_or_else(|| def.hostname_format.get_ref().clone()),
                networks: def.networks.iter().map(|n| n.get_ref().clone()).collect(),
                services: def.services.iter().map(|s| s.get_ref().clone()).collect(),
                max_fail_percentage: usage.max_fail_percentage.unwrap_or(def.max_fail_percentage),
                requirements: usage
                    .requirements
                    .clone()
                    .unwrap_or_else(|| def.requirements.clone()),
                vars: role_vars,
                config: usage.config.clone(),
            },
        );
    }

    // Nodes.
    let mut hosts = Vec::new();
    let mut per_role: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_names: BTreeMap<String, Range<usize>> = BTreeMap::new();
    let mut seen_macs: BTreeMap<String, Range<usize>> = BTreeMap::new();
    let mut seen_bmcs: BTreeMap<String, Range<usize>> = BTreeMap::new();
    // (network, address) -> where first used
    let mut seen_addrs: BTreeMap<(String, IpAddr), (String, Option<Range<usize>>)> =
        BTreeMap::new();
    if !inv.incomplete.contains(&"undercloud") {
        seen_addrs.insert(
            (ctl_name.clone(), uc_ctlplane_ip),
            ("the undercloud".into(), Some(uc_ctl_spanned.span())),
        );
    }
    for (net_name, net) in &networks {
        if let Some(vip) = net.vip {
            let span = inv
                .networks
                .iter()
                .find(|(n, _)| n.get_ref() == net_name)
                .and_then(|(_, s)| s.vip.as_ref().map(|v| v.span()));
            seen_addrs.insert(
                (net_name.clone(), vip),
                (format!("the VIP of `{net_name}`"), span),
            );
        }
        if let Some(gw) = net.gateway {
            let span = inv
                .networks
                .iter()
                .find(|(n, _)| n.get_ref() == net_name)
                .and_then(|(_, s)| s.gateway.as_ref().map(|v| v.span()));
            seen_addrs
                .entry((net_name.clone(), gw))
                .or_insert((format!("the gateway of `{net_name}`"), span));
        }
    }
    for (node_span, node) in &inv.nodes {
        let Some(role) = roles.get(node.role.get_ref()) else {
            if !inv
                .roles
                .iter()
                .any(|(n, _)| n.get_ref() == node.role.get_ref())
            {
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
                        loc(&file, node.role.span()),
                    )
                    .help(help),
                );
            }
            continue;
        };
        let index = *per_role
            .entry(role.name.clone())
            .and_modify(|i| *i += 1)
            .or_insert(0);
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
        if !valid_hostname(&name) {
            diags.push(
                Diagnostic::new(format!("`{name}` is not a valid host name"), loc(&file, name_span.clone()))
                    .help("use letters, digits and '-' (at most 63 characters), starting with a letter or digit"),
            );
        }
        if &name == inv.undercloud.name.get_ref() {
            diags.push(
                Diagnostic::new(
                    format!("node `{name}` has the undercloud's name"),
                    loc(&file, name_span.clone()),
                )
                .note(
                    "the undercloud is named here",
                    loc(&file, inv.undercloud.name.span()),
                )
                .help("give the node another name: the undercloud is a host of the plan too"),
            );
        } else if let Some(first) = seen_names.get(&name) {
            diags.push(
                Diagnostic::new(
                    format!("duplicate node name `{name}`"),
                    loc(&file, name_span.clone()),
                )
                .note("first used here", loc(&file, first.clone()))
                .help("give every node its own name"),
            );
        } else {
            seen_names.insert(name.clone(), name_span.clone());
        }
        let ctlplane_ip = check_node_ctlplane(&file, node, ctlplane.as_ref(), &ctl_name, diags);
        let mut addresses = BTreeMap::new();
        if let Some(ip) = ctlplane_ip {
            addresses.insert(ctl_name.clone(), ip);
            note_address(
                &mut seen_addrs,
                &ctl_name,
                ip,
                &name,
                Some(node.ctlplane_ip.span()),
                &file,
                diags,
            );
        }
        for (net_name, value) in &node.addresses {
            if !role.networks.contains(net_name) {
                diags.push(
                    Diagnostic::new(format!("node `{name}` has an address on `{net_name}`, a network its role `{}` does not use", role.name), loc(&file, value.span()))
                        .help(format!("the role's networks are: {}", role.networks.join(", "))),
                );
                continue;
            }
            let Some(net) = networks.get(net_name) else {
                continue;
            };
            match parse_ip(value.get_ref()) {
                Some(ip) if net.cidr.contains(&ip) => {
                    addresses.insert(net_name.clone(), ip);
                    note_address(
                        &mut seen_addrs,
                        net_name,
                        ip,
                        &name,
                        Some(value.span()),
                        &file,
                        diags,
                    );
                }
                Some(ip) => diags.push(
                    Diagnostic::new(
                        format!(
                            "address {ip} is outside network `{net_name}` ({})",
                            net.cidr
                        ),
                        loc(&file, value.span()),
                    )
                    .help(format!("use an address inside {}", net.cidr)),
                ),
                None => diags.push(
                    Diagnostic::new(
                        format!("`{}` is not an IP address", value.get_ref()),
                        loc(&file, value.span()),
                    )
                    .help("write an IPv4 or IPv6 address"),
                ),
            }
        }
        // Allocate the rest: the same host number as on the provisioning network.
        if let (Some(ip), Some(ctl)) = (ctlplane_ip, ctlplane.as_ref()) {
            let offset = host_offset(&ctl.cidr, ip);
            for net_name in &role.networks {
                if addresses.contains_key(net_name) {
                    continue;
                }
                let Some(net) = networks.get(net_name) else {
                    continue;
                };
                match offset.and_then(|o| nth_address(&net.cidr, o)).filter(|a| in_range(*a, net.allocation_start, net.allocation_end)) {
                    Some(a) => {
                        addresses.insert(net_name.clone(), a);
                        note_address(&mut seen_addrs, net_name, a, &name, Some(node.ctlplane_ip.span()), &file, diags);
                    }
                    None => diags.push(
                        Diagnostic::new(
                            format!(
                                "cannot allocate an address on `{net_name}` for `{name}`: host number {} of {ip} falls outside the allocation range {}-{}",
                                offset.map(|o| o.to_string()).unwrap_or_default(),
                                net.allocation_start,
                                net.allocation_end
                            ),
                            loc(&file, node.ctlplane_ip.span()),
                        )
                        .help(format!("pin it: `addresses = {{ {net_name} = \"...\" }}` on this node, or widen the range of `{net_name}`")),
                    ),
                }
            }
        }
        let mut macs = Vec::new();
        for mac in &node.macs {
            match normalize_mac(mac.get_ref()) {
                Some(m) => {
                    if let Some(first) = seen_macs.get(&m) {
                        diags.push(
                            Diagnostic::new(
                                format!("duplicate MAC address {m}"),
                                loc(&file, mac.span()),
                            )
                            .note("first used here", loc(&file, first.clone()))
                            .help("every NIC has its own MAC: check for a copy-paste"),
                        );
                    } else {
                        seen_macs.insert(m.clone(), mac.span());
                    }
                    macs.push(m);
                }
                None => diags.push(
                    Diagnostic::new(
                        format!("`{}` is not a MAC address", mac.get_ref()),
                        loc(&file, mac.span()),
                    )
                    .help(
                        "write six hexadecimal pairs separated by colons, e.g. 52:54:00:12:34:56",
                    ),
                ),
            }
        }
        let bmc = check_bmc(
            &file,
            node,
            &name,
            &secrets,
            &secrets_hint,
            &mut seen_bmcs,
            diags,
        );
        // A node the undercloud brings up boots from its DHCP entry: one per MAC.
        if bmc.driver != BmcDriver::None && macs.is_empty() && node.macs.is_empty() {
            diags.push(
                Diagnostic::new(
                    format!(
                        "node `{name}` has a {} BMC but no `macs`: it cannot PXE boot from the undercloud's DHCP",
                        bmc.driver
                    ),
                    loc(&file, name_span.clone()),
                )
                .help("add `macs = [\"<MAC of its provisioning NIC>\"]` (the first one PXE boots), or `bmc = { driver = \"none\" }` for a node already installed"),
            );
        }
        let mut host_vars = vars.clone();
        merge_tables(&mut host_vars, &role.vars);
        merge_tables(&mut host_vars, &node.vars);
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

    // Counts.
    for (name, usage) in &inv.roles {
        if let Some(count) = &usage.count {
            let actual = per_role.get(name.get_ref()).map(|i| i + 1).unwrap_or(0);
            if *count.get_ref() != actual {
                diags.push(
                    Diagnostic::new(
                        format!(
                            "role `{}` expects {} nodes but the inventory has {actual}",
                            name.get_ref(),
                            count.get_ref()
                        ),
                        loc(&file, count.span()),
                    )
                    .help("add or remove `[[nodes]]` of this role, or change `count`"),
                );
            }
        }
    }

    // Secrets the services in use need.
    let used: BTreeSet<&String> = roles.values().flat_map(|r| r.services.iter()).collect();
    for svc in used {
        if let Some(s) = catalogue.services.get(svc) {
            for secret in &s.manifest.secrets {
                if !secrets.contains(secret.get_ref()) {
                    diags.push(
                        Diagnostic::new(
                            format!(
                                "secret `{}` (needed by service `{svc}`) has no value",
                                secret.get_ref()
                            ),
                            loc(&s.file, secret.span()),
                        )
                        .help(
                            secrets_hint.replace("NAME", secret.get_ref()).replace(
                                &format!("{}{}", inv.secrets.env_prefix, secret.get_ref()),
                                &format!(
                                    "{}{}",
                                    inv.secrets.env_prefix,
                                    secret.get_ref().to_ascii_uppercase()
                                ),
                            ),
                        ),
                    );
                }
            }
        }
    }

    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    Some(Cloud {
        name: inv.cloud.name.get_ref().clone(),
        domain: inv.cloud.domain.get_ref().clone(),
        registry: inv.cloud.registry.clone(),
        tag: inv.cloud.tag.clone(),
        container_units: inv.cloud.container_units,
        ssh,
        undercloud,
        networks,
        roles,
        hosts,
        vars,
        config: inv.config.clone(),
        secrets,
        inventory: inv,
        catalogue,
    })
}

fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn check_node_ctlplane(
    file: &Path,
    node: &NodeSpec,
    ctlplane: Option<&Network>,
    ctl_name: &str,
    diags: &mut Diagnostics,
) -> Option<IpAddr> {
    let v = &node.ctlplane_ip;
    match parse_ip(v.get_ref()) {
        Some(ip) => match ctlplane {
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
        },
        None => {
            diags.push(
                Diagnostic::new(
                    format!("`{}` is not an IP address", v.get_ref()),
                    loc(file, v.span()),
                )
                .help("write an IPv4 or IPv6 address"),
            );
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn note_address(
    seen: &mut BTreeMap<(String, IpAddr), (String, Option<Range<usize>>)>,
    net: &str,
    ip: IpAddr,
    who: &str,
    span: Option<Range<usize>>,
    file: &Path,
    diags: &mut Diagnostics,
) {
    let key = (net.to_string(), ip);
    if let Some((first, first_span)) = seen.get(&key) {
        let mut d = Diagnostic::new(format!("duplicate address {ip} on network `{net}`: `{who}` and {first}"), Location::new(file, span))
            .help("give every host its own address on each network (pin it with `addresses` if it was allocated)");
        if let Some(fs) = first_span {
            d = d.note("first used here", Location::new(file, Some(fs.clone())));
        }
        diags.push(d);
    } else {
        let label = if who.starts_with("the ") {
            who.to_string()
        } else {
            format!("`{who}`")
        };
        seen.insert(key, (label, span));
    }
}

fn check_bmc(
    file: &Path,
    node: &NodeSpec,
    name: &str,
    secrets: &Secrets,
    secrets_hint: &str,
    seen: &mut BTreeMap<String, Range<usize>>,
    diags: &mut Diagnostics,
) -> Bmc {
    let Some(spec) = &node.bmc else {
        return Bmc::none();
    };
    let driver = *spec.driver.get_ref();
    let dspan = spec.driver.span();
    if driver != BmcDriver::None {
        let needs = |what: &str, present: bool, diags: &mut Diagnostics| {
            if !present {
                diags.push(
                    Diagnostic::new(
                        format!("the {driver:?} BMC of `{name}` has no `{what}`")
                            .to_lowercase()
                            .replace("redfish", "Redfish")
                            .replace("ipmi", "IPMI"),
                        loc(file, dspan.clone()),
                    )
                    .help(format!("add `{what}` to this node's `bmc` table")),
                );
            }
        };
        needs("address", spec.address.is_some(), diags);
        needs("username", spec.username.is_some(), diags);
        needs("password", spec.password.is_some(), diags);
        if driver == BmcDriver::Redfish {
            needs("system_id", spec.system_id.is_some(), diags);
        }
        if let Some(pw) = &spec.password {
            let secret = pw.name.get_ref();
            if !secrets.contains(secret) {
                diags.push(
                    Diagnostic::new(
                        format!("secret `{secret}` (BMC password of `{name}`) has no value"),
                        loc(file, pw.name.span()),
                    )
                    .help(secrets_hint.replace("NAME", secret)),
                );
            }
        }
        if let Some(addr) = &spec.address {
            let port = spec
                .port
                .unwrap_or(if driver == BmcDriver::Ipmi { 623 } else { 443 });
            let key = format!(
                "{}:{port}/{}",
                addr.get_ref(),
                spec.system_id
                    .as_ref()
                    .map(|s| s.get_ref().as_str())
                    .unwrap_or("")
            );
            let span = spec
                .system_id
                .as_ref()
                .map(|s| s.span())
                .unwrap_or(addr.span());
            if let Some(first) = seen.get(&key) {
                diags.push(
                    Diagnostic::new(
                        format!("duplicate BMC endpoint {key}: two nodes would share one BMC"),
                        loc(file, span),
                    )
                    .note("first used here", loc(file, first.clone()))
                    .help("give each node its own BMC address, port or system id"),
                );
            } else {
                seen.insert(key, span);
            }
        }
    }
    Bmc {
        driver,
        address: spec.address.as_ref().map(|a| a.get_ref().clone()),
        port: spec.port,
        system_id: spec.system_id.as_ref().map(|s| s.get_ref().clone()),
        username: spec.username.clone(),
        password_secret: spec.password.as_ref().map(|p| p.name.get_ref().clone()),
        scheme: spec.scheme.clone(),
        verify_tls: spec.verify_tls,
    }
}
