//! Role definitions: `roles/<Name>.toml`, like TripleO's roles_data.

use serde::Deserialize;
use toml::Spanned;

/// A role: which services and networks its hosts have, and what hardware they need.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    pub name: Spanned<String>,
    pub description: String,
    /// Default host name format: `{cloud}`, `{role}` (lower case) and `{index}` are replaced.
    pub hostname_format: Spanned<String>,
    pub networks: Vec<Spanned<String>>,
    pub services: Vec<Spanned<String>>,
    /// Share of this role's hosts that may fail before the run stops.
    #[serde(default)]
    pub max_fail_percentage: u8,
    pub requirements: Requirements,
    /// Role defaults of template variables (under the inventory's role and node vars).
    #[serde(default)]
    pub vars: toml::Table,
}

/// Minimum hardware of a role's hosts, checked at introspection.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    pub memory_mb: u64,
    pub cpus: u32,
    #[serde(default = "one")]
    pub disks: u32,
    #[serde(default)]
    pub disk_gb: u64,
}

fn one() -> u32 {
    1
}
