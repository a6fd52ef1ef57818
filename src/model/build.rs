//! Building the model from an inventory and the catalogue, checking everything that
//! crosses parts: the steps in order (networks, roles, nodes, counts, secrets), each in
//! its own module, and the cloud they make.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use super::networks::{resolve_networks, resolve_undercloud};
use super::nodes::{resolve_nodes, NodeInputs};
use super::roles::{check_role_counts, resolve_roles};
use super::*;
use super::{names, overrides};
use crate::catalogue::Catalogue;
use crate::diagnostics::{Diagnostic, Diagnostics, Location};
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
    /// The release whose option catalogue the rendered oslo.config files are checked
    /// against (`validate --release`); `None`: the one the catalogue is written for.
    pub release: Option<String>,
}

impl LoadOptions {
    /// Takes the secret variables from this process's environment.
    pub fn from_process_env() -> Self {
        Self {
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("PROVISION_"))
                .collect(),
            secrets_fallback: None,
            release: None,
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

/// A location in `file`.
pub(super) fn loc(file: &Path, span: Range<usize>) -> Location {
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
    names::check_inventory(&inv, diags);
    // A role's name is a file name under roles/: only valid ones are looked up.
    let role_names: Vec<String> = inv
        .roles
        .iter()
        .map(|(n, _)| n.get_ref().clone())
        .filter(|n| crate::names::NameRule::Identifier.allows(n))
        .collect();
    let catalogue = Catalogue::load(
        &inv.resolve(inv.cloud.roles.get_ref()),
        &inv.resolve(inv.cloud.templates.get_ref()),
        &role_names,
        opts.release.as_deref(),
        tree,
        sources,
        diags,
    );
    names::check_catalogue(&catalogue, diags);
    let (secrets, secrets_hint) = load_secrets(&inv, tree, opts, sources, diags);
    let ssh = ssh_settings(&inv, diags);
    let networks = resolve_networks(&inv, diags);
    let undercloud = resolve_undercloud(&inv, &networks, &catalogue, diags);
    let mut vars = catalogue.vars.clone();
    merge_tables(&mut vars, &inv.vars);
    let available = catalogue.available_roles(tree);
    let roles = resolve_roles(&inv, &catalogue, &networks, &available, diags);
    let nodes = resolve_nodes(
        &NodeInputs {
            inv: &inv,
            networks: &networks,
            roles: &roles,
            undercloud: &undercloud,
            available_roles: &available,
            secrets: &secrets,
            secrets_hint: &secrets_hint,
            vars: &vars,
        },
        diags,
    );
    check_role_counts(&inv, &nodes.per_role, diags);
    let mut hosts = nodes.hosts;
    check_service_secrets(&inv, &catalogue, &roles, &secrets, &secrets_hint, diags);
    overrides::check_targets(&inv, &catalogue, diags);
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    Some(Cloud {
        name: inv.cloud.name.get_ref().clone(),
        domain: inv.cloud.domain.get_ref().clone(),
        registry: inv.cloud.registry.clone(),
        tag: inv.cloud.tag.clone(),
        tags: inv.cloud.tags.clone(),
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

/// The secrets (the inventory's file, then the environment), and the help that says
/// how to give one a value (`NAME` stands for its name).
fn load_secrets(
    inv: &Inventory,
    tree: &dyn SourceTree,
    opts: &LoadOptions,
    sources: &SourceMap,
    diags: &mut Diagnostics,
) -> (Secrets, String) {
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
    (secrets, secrets_hint)
}

/// SSH. Turning strict host-key checking off is not an error, but the CLI says so on
/// every run.
fn ssh_settings(inv: &Inventory, diags: &mut Diagnostics) -> SshSettings {
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
                    loc(&inv.path, k.span()),
                )
                .help(format!(
                    "use some of: {}",
                    crate::transport::KNOWN_KEX.join(", ")
                )),
            );
        }
    }
    ssh
}

/// Every secret a service in use needs must have a value.
fn check_service_secrets(
    inv: &Inventory,
    catalogue: &Catalogue,
    roles: &BTreeMap<String, Role>,
    secrets: &Secrets,
    secrets_hint: &str,
    diags: &mut Diagnostics,
) {
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
}
