//! The roles this cloud uses: each `[roles.NAME]` of the inventory joined with its role
//! file, its networks and services checked against the inventory and the catalogue;
//! and the node count each role expects.

use std::collections::BTreeMap;

use toml::Spanned;

use super::build::loc;
use super::networks::defines_network;
use super::{merge_tables, Network, Role};
use crate::catalogue::{self, Catalogue};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::inventory::spec::RoleUseSpec;
use crate::inventory::Inventory;

/// Every role of the inventory that has a role file, by name. `available` are the role
/// files present, for the help of a role that has none.
pub(super) fn resolve_roles(
    inv: &Inventory,
    catalogue: &Catalogue,
    networks: &BTreeMap<String, Network>,
    available: &[String],
    diags: &mut Diagnostics,
) -> BTreeMap<String, Role> {
    let file = &inv.path;
    let mut roles = BTreeMap::new();
    for (name, usage) in &inv.roles {
        let Some(role) = catalogue.roles.get(name.get_ref()) else {
            diags.push(
                Diagnostic::new(
                    format!("role `{}` does not exist", name.get_ref()),
                    loc(file, name.span()),
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
        check_role_networks(inv, name, role, networks, diags);
        check_role_services(catalogue, name, role, diags);
        roles.insert(name.get_ref().clone(), role_in_use(name, usage, &role.def));
    }
    roles
}

/// Every network of the role must be one of the inventory's.
fn check_role_networks(
    inv: &Inventory,
    name: &Spanned<String>,
    role: &catalogue::Role,
    networks: &BTreeMap<String, Network>,
    diags: &mut Diagnostics,
) {
    for net in &role.def.networks {
        if !networks.contains_key(net.get_ref()) && !defines_network(inv, net.get_ref()) {
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
                    inv.path.display()
                )),
            );
        }
    }
}

/// Every service of the role must be one of the catalogue's.
fn check_role_services(
    catalogue: &Catalogue,
    name: &Spanned<String>,
    role: &catalogue::Role,
    diags: &mut Diagnostics,
) {
    for svc in &role.def.services {
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
}

/// The role file's definition with the inventory's `[roles.NAME]` over it.
fn role_in_use(name: &Spanned<String>, usage: &RoleUseSpec, def: &catalogue::RoleDef) -> Role {
    let mut role_vars = def.vars.clone();
    merge_tables(&mut role_vars, &usage.vars);
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
    }
}

/// Every role's `count`, if set, must be its number of nodes (`per_role`).
pub(super) fn check_role_counts(
    inv: &Inventory,
    per_role: &BTreeMap<String, usize>,
    diags: &mut Diagnostics,
) {
    for (name, usage) in &inv.roles {
        if let Some(count) = &usage.count {
            let actual = per_role.get(name.get_ref()).copied().unwrap_or(0);
            if *count.get_ref() != actual {
                diags.push(
                    Diagnostic::new(
                        format!(
                            "role `{}` expects {} nodes but the inventory has {actual}",
                            name.get_ref(),
                            count.get_ref()
                        ),
                        loc(&inv.path, count.span()),
                    )
                    .help("add or remove `[[nodes]]` of this role, or change `count`"),
                );
            }
        }
    }
}
