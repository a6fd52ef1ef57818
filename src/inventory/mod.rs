//! The inventory: parsing the operator's TOML file into [`spec`] types, with every error
//! located. Cross-checks between parts (duplicates, addresses, roles) happen in `model`.

pub mod finder;
pub mod secrets;
pub mod spec;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::DeValue;
use toml::Spanned;

use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::ini_values::ConfigOverrides;
use crate::source::{normalize, SourceMap, SourceTree};
use crate::tomlfile;
pub use secrets::{SecretValue, Secrets};
use spec::*;

/// A parsed inventory file.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The inventory file, as given (normalized).
    pub path: PathBuf,
    pub cloud: CloudSpec,
    pub ssh: SshSpec,
    pub undercloud: UndercloudSpec,
    /// Networks by name, with the span of the name.
    pub networks: Vec<(Spanned<String>, NetworkSpec)>,
    /// Roles used, with the span of the name.
    pub roles: Vec<(Spanned<String>, RoleUseSpec)>,
    /// Nodes in file order, with the span of their table.
    pub nodes: Vec<(Range<usize>, NodeSpec)>,
    pub secrets: SecretsSpec,
    pub vars: toml::Table,
    pub config: ConfigOverrides,
    /// `[unchecked_options]`: options the release's option catalogue lacks, by oslo
    /// file id (`"section.option"` or `"section.*"`); each is a warning.
    pub unchecked_options: BTreeMap<String, Vec<Spanned<String>>>,
    /// `[lab]`: the local lab's stand-in containers.
    pub lab: Option<LabSpec>,
    /// Required sections that failed to parse and hold placeholders.
    pub incomplete: Vec<&'static str>,
}

const SECTIONS: &[&str] = &[
    "cloud",
    "ssh",
    "undercloud",
    "networks",
    "roles",
    "nodes",
    "secrets",
    "vars",
    "config",
    "unchecked_options",
    "lab",
];

impl Inventory {
    /// The folder the inventory's relative paths start from.
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Resolves a path written in the inventory.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        normalize(&self.dir().join(relative))
    }

    /// Reads and parses an inventory. Returns `None` when a required part is unusable;
    /// every problem found is in `diags` either way.
    pub fn load(
        path: &Path,
        tree: &dyn SourceTree,
        sources: &SourceMap,
        diags: &mut Diagnostics,
    ) -> Option<Inventory> {
        let path = normalize(path);
        let text = match tree.read(&path) {
            Ok(t) => t,
            Err(e) => {
                diags.push(
                    Diagnostic::new(
                        format!("cannot read the inventory: {e}"),
                        Location::file(&path),
                    )
                    .help("give the path of an inventory TOML file, e.g. inventories/lab.toml"),
                );
                return None;
            }
        };
        sources.add(&path, &text, false);
        let doc = tomlfile::parse(&path, &text, diags)?;
        let mut cloud = None;
        let mut ssh = None;
        let mut undercloud = None;
        let mut networks = Vec::new();
        let mut roles = Vec::new();
        let mut nodes = Vec::new();
        let mut secrets = SecretsSpec {
            file: None,
            env_prefix: "PROVISION_SECRET_".into(),
        };
        let mut vars = toml::Table::new();
        let mut config = ConfigOverrides::new();
        let mut lab = None;
        let mut unchecked_options = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for (key, value) in doc.get_ref().iter() {
            seen.insert(key.get_ref().to_string());
            match key.get_ref().as_ref() {
                "cloud" => cloud = tomlfile::de::<CloudSpec>(&path, value, diags),
                "ssh" => ssh = tomlfile::de::<SshSpec>(&path, value, diags),
                "undercloud" => undercloud = tomlfile::de::<UndercloudSpec>(&path, value, diags),
                "networks" => networks = named_tables(&path, value, "networks", diags),
                "roles" => roles = named_tables(&path, value, "roles", diags),
                "nodes" => match value.get_ref() {
                    DeValue::Array(items) => {
                        nodes.reserve(items.len());
                        for item in items.iter() {
                            if let Some(node) = tomlfile::de::<NodeSpec>(&path, item, diags) {
                                nodes.push((item.span(), node));
                            }
                        }
                    }
                    _ => diags.push(
                        Diagnostic::new(
                            "`nodes` must be an array of tables",
                            Location::new(&path, Some(value.span())),
                        )
                        .help("write each node as a `[[nodes]]` table"),
                    ),
                },
                "secrets" => {
                    if let Some(s) = tomlfile::de::<SecretsSpec>(&path, value, diags) {
                        secrets = s;
                    }
                }
                "vars" => {
                    vars = tomlfile::de::<toml::Table>(&path, value, diags).unwrap_or_default()
                }
                "lab" => lab = tomlfile::de::<LabSpec>(&path, value, diags),
                "unchecked_options" => {
                    unchecked_options =
                        tomlfile::de::<BTreeMap<String, Vec<Spanned<String>>>>(&path, value, diags)
                            .unwrap_or_default()
                }
                "config" => {
                    config =
                        tomlfile::de::<ConfigOverrides>(&path, value, diags).unwrap_or_default()
                }
                other => diags.push(
                    Diagnostic::new(
                        format!("unknown section `{other}`"),
                        Location::new(&path, Some(key.span())),
                    )
                    .help(format!(
                        "the inventory's top-level sections are: {}",
                        SECTIONS.join(", ")
                    )),
                ),
            }
        }
        for required in ["cloud", "ssh", "undercloud", "networks"] {
            if !seen.contains(required) {
                diags.push(
                    Diagnostic::new(
                        format!("missing section `[{required}]`"),
                        Location::new(&path, Some(0..0)),
                    )
                    .help(format!("add a `[{required}]` table; see docs/inventory.md")),
                );
            }
        }
        // A section that failed to parse is replaced by a placeholder, so the checks of
        // the other parts still run and report their own errors in the same run (the
        // load has failed anyway: its diagnostics are not empty).
        let placeholder = |s: &str| toml::Spanned::new(0..0, s.to_string());
        let mut incomplete = Vec::new();
        for (name, ok) in [
            ("cloud", cloud.is_some()),
            ("ssh", ssh.is_some()),
            ("undercloud", undercloud.is_some()),
        ] {
            if !ok {
                incomplete.push(name);
            }
        }
        Some(Inventory {
            path,
            cloud: cloud.unwrap_or_else(|| CloudSpec {
                name: placeholder("cloud"),
                domain: placeholder("invalid"),
                templates: placeholder("../templates"),
                roles: placeholder("../roles"),
                registry: String::new(),
                tag: String::new(),
                tags: Default::default(),
                container_units: Default::default(),
            }),
            ssh: ssh.unwrap_or_else(|| SshSpec {
                user: "root".into(),
                private_key: placeholder(""),
                known_hosts: placeholder(""),
                port: 22,
                connect_timeout: 10,
                strict_host_key_checking: toml::Spanned::new(0..0, true),
                jump_through_undercloud: true,
                key_exchange: None,
            }),
            undercloud: undercloud.unwrap_or_else(|| UndercloudSpec {
                name: placeholder("undercloud"),
                address: placeholder("0.0.0.0"),
                ctlplane_ip: None,
                network: placeholder("ctlplane"),
                ssh_port: None,
                log_port: 5140,
            }),
            networks,
            roles,
            nodes,
            secrets,
            vars,
            config,
            unchecked_options,
            lab,
            incomplete,
        })
    }
}

/// Deserializes each entry of a table of named tables on its own (`[networks.NAME]`).
fn named_tables<T: serde::de::DeserializeOwned>(
    path: &Path,
    value: &Spanned<DeValue<'_>>,
    what: &str,
    diags: &mut Diagnostics,
) -> Vec<(Spanned<String>, T)> {
    let mut out = Vec::new();
    match value.get_ref() {
        DeValue::Table(table) => {
            for (name, entry) in table.iter() {
                if let Some(v) = tomlfile::de::<T>(path, entry, diags) {
                    out.push((Spanned::new(name.span(), name.get_ref().to_string()), v));
                }
            }
        }
        _ => diags.push(
            Diagnostic::new(
                format!("`{what}` must be a table of named tables"),
                Location::new(path, Some(value.span())),
            )
            .help(format!("write `[{what}.NAME]` sections")),
        ),
    }
    out
}
