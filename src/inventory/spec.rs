//! The inventory file format, as written by the operator. Every key is documented in
//! docs/inventory.md. These types hold what the file says; `model` resolves them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::ini_values::ConfigOverrides;

/// `[cloud]`: the cloud as a whole.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudSpec {
    pub name: Spanned<String>,
    pub domain: Spanned<String>,
    /// Service catalogue folder, relative to the inventory file.
    #[serde(default = "default_templates")]
    pub templates: Spanned<String>,
    /// Role definitions folder, relative to the inventory file.
    #[serde(default = "default_roles")]
    pub roles: Spanned<String>,
    /// Container registry of the overcloud images, e.g. `quay.io/openstack.kolla`.
    pub registry: String,
    /// Tag of the overcloud images, e.g. `2025.1-rocky-9`.
    pub tag: String,
    /// Another tag for some images, by image name (an upgrade of one service, say:
    /// `tags = { keystone = "2025.1-rocky-9-p1" }`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// How containers come back after a reboot: `systemd` (a unit per container,
    /// enabled, ordered by deploy step) or `none` (hosts without systemd: podman's
    /// restart policy only; see docs/apply.md).
    #[serde(default)]
    pub container_units: ContainerUnits,
}

/// See [`CloudSpec::container_units`].
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerUnits {
    #[default]
    Systemd,
    None,
}

fn default_templates() -> Spanned<String> {
    Spanned::new(0..0, "../templates".into())
}
fn default_roles() -> Spanned<String> {
    Spanned::new(0..0, "../roles".into())
}

/// `[ssh]`: how provision reaches the hosts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSpec {
    #[serde(default = "default_user")]
    pub user: String,
    /// Private key file, relative to the inventory file.
    pub private_key: Spanned<String>,
    /// known_hosts file (OpenSSH format), relative to the inventory file.
    pub known_hosts: Spanned<String>,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// Seconds to wait for a connection and its handshake.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: u64,
    /// Refuse hosts whose key is not in known_hosts. Turning this off is reported on every run.
    #[serde(default = "default_true")]
    pub strict_host_key_checking: Spanned<bool>,
    /// Reach the overcloud nodes through the undercloud (like ProxyJump).
    #[serde(default = "default_true_plain")]
    pub jump_through_undercloud: bool,
    /// Key-exchange algorithms offered, most preferred first; default: the transport's.
    pub key_exchange: Option<Vec<Spanned<String>>>,
}

fn default_user() -> String {
    "root".into()
}
fn default_ssh_port() -> u16 {
    22
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_true() -> Spanned<bool> {
    Spanned::new(0..0, true)
}
fn default_true_plain() -> bool {
    true
}

/// `[lab]`: settings for the local lab only (lab/README.md). The lab's images hold
/// busybox, not the services (nothing can be pulled there), so every container runs a
/// stand-in that reads its mounted configuration and answers a healthcheck. A
/// production inventory has no `[lab]` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// The command every container runs instead of its service's.
    pub stand_in_command: Vec<String>,
    /// The healthcheck every container with one runs instead of its service's.
    pub stand_in_healthcheck: Option<String>,
    /// Seconds between two runs of a stand-in's healthcheck by podman's timer
    /// (`--health-interval`), instead of its service's. A lab of qemu TCG VMs sets it
    /// long: each `podman healthcheck run` costs seconds of its one vCPU, and a dozen
    /// containers every 30 s kept it saturated until checks timed out.
    pub stand_in_health_interval: Option<std::num::NonZeroU32>,
    /// Seconds a stand-in's healthcheck may take (`--health-timeout`), instead of its
    /// service's.
    pub stand_in_health_timeout: Option<std::num::NonZeroU32>,
    /// Per service, another healthcheck (a test breaks one service with `"false"`).
    #[serde(default)]
    pub healthchecks: BTreeMap<String, String>,
    /// The command every task runs instead of its own (reads its files, exits 0).
    #[serde(default)]
    pub stand_in_task_command: Vec<String>,
    /// Images that hold the real service (lab/images.sh builds them from Debian's
    /// packages): containers and tasks of these images run their own command and
    /// healthcheck; the others run the stand-ins.
    #[serde(default)]
    pub real_images: Vec<String>,
}

/// `[undercloud]`: the machine the operator prepares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndercloudSpec {
    pub name: Spanned<String>,
    /// Address provision connects to over SSH.
    pub address: Spanned<String>,
    /// Its address on the provisioning network; defaults to `address`.
    pub ctlplane_ip: Option<Spanned<String>>,
    /// The provisioning network it serves (DHCP/PXE).
    #[serde(default = "default_ctlplane")]
    pub network: Spanned<String>,
    /// SSH port of the undercloud, if not `ssh.port`.
    pub ssh_port: Option<u16>,
    /// TCP port of the undercloud's log receiver.
    #[serde(default = "default_log_port")]
    pub log_port: u16,
}

fn default_ctlplane() -> Spanned<String> {
    Spanned::new(0..0, "ctlplane".into())
}
fn default_log_port() -> u16 {
    5140
}

/// `[networks.NAME]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    pub cidr: Spanned<String>,
    pub vlan: Option<Spanned<u16>>,
    pub gateway: Option<Spanned<String>>,
    /// First address handed out on this network.
    pub allocation_start: Option<Spanned<String>>,
    /// Last address handed out on this network.
    pub allocation_end: Option<Spanned<String>>,
    /// Virtual IP of the control plane's endpoints on this network.
    pub vip: Option<Spanned<String>>,
    #[serde(default = "default_mtu")]
    pub mtu: u32,
}

fn default_mtu() -> u32 {
    1500
}

/// `[roles.NAME]`: a role this cloud uses.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RoleUseSpec {
    /// Expected number of nodes; checked against the `[[nodes]]` of this role.
    pub count: Option<Spanned<usize>>,
    /// Overrides the role's hostname format (`{cloud}`, `{role}`, `{index}`).
    pub hostname_format: Option<Spanned<String>>,
    /// Overrides the role's tolerated failure percentage.
    pub max_fail_percentage: Option<u8>,
    /// Overrides the role's minimum hardware, checked at introspection (a small test
    /// cloud, or the lab).
    pub requirements: Option<crate::catalogue::Requirements>,
    #[serde(default)]
    pub vars: toml::Table,
    #[serde(default)]
    pub config: ConfigOverrides,
}

/// `[[nodes]]`: one bare-metal machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Host name; defaults to the role's hostname format.
    pub name: Option<Spanned<String>>,
    pub role: Spanned<String>,
    /// Address on the provisioning network.
    pub ctlplane_ip: Spanned<String>,
    /// MAC addresses of the node's NICs; the first one PXE boots.
    #[serde(default)]
    pub macs: Vec<Spanned<String>>,
    /// Fixed addresses on other networks; missing ones are allocated.
    #[serde(default)]
    pub addresses: BTreeMap<String, Spanned<String>>,
    /// Ironic-style profile (e.g. `control`, `compute`).
    pub profile: Option<String>,
    /// Ironic-style capabilities (e.g. `boot_mode = "uefi"`).
    #[serde(default)]
    pub capabilities: BTreeMap<String, String>,
    pub root_device: Option<RootDeviceHint>,
    pub bmc: Option<BmcSpec>,
    #[serde(default)]
    pub vars: toml::Table,
    #[serde(default)]
    pub config: ConfigOverrides,
}

/// Ironic root device hints.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RootDeviceHint {
    pub name: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub size_gb: Option<u64>,
}

/// A node's BMC.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BmcSpec {
    pub driver: Spanned<BmcDriver>,
    pub address: Option<Spanned<String>>,
    pub port: Option<u16>,
    /// Redfish system id (the path under /redfish/v1/Systems/).
    pub system_id: Option<Spanned<String>>,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    /// Verify the BMC's TLS certificate (Redfish over https).
    #[serde(default = "default_true_plain")]
    pub verify_tls: bool,
    /// `http` or `https` for Redfish.
    #[serde(default = "default_scheme")]
    pub scheme: String,
}

fn default_scheme() -> String {
    "https".into()
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BmcDriver {
    Redfish,
    Ipmi,
    None,
}

impl std::fmt::Display for BmcDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BmcDriver::Redfish => "redfish",
            BmcDriver::Ipmi => "ipmi",
            BmcDriver::None => "none",
        })
    }
}

/// `{ secret = "NAME" }`: a reference to a value in the secrets.
#[derive(Debug, Clone)]
pub struct SecretRef {
    pub name: Spanned<String>,
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A literal string is refused without echoing it: it is probably a password.
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a secret reference `{ secret = \"NAME\" }`")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom(
                    "a literal password is not accepted here: write `{ secret = \"NAME\" }` and put the value in the secrets file",
                ))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SecretRef, A::Error> {
                let mut name: Option<Spanned<String>> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "secret" {
                        name = Some(map.next_value()?);
                    } else {
                        return Err(serde::de::Error::unknown_field(&key, &["secret"]));
                    }
                }
                name.map(|name| SecretRef { name })
                    .ok_or_else(|| serde::de::Error::missing_field("secret"))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[secrets]`: where secret values come from.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SecretsSpec {
    /// A TOML file of `name = "value"`, relative to the inventory file.
    pub file: Option<Spanned<String>>,
    /// Environment variables `<prefix><NAME in upper case>` override the file.
    #[serde(default = "default_env_prefix")]
    pub env_prefix: String,
}

fn default_env_prefix() -> String {
    "PROVISION_SECRET_".into()
}
