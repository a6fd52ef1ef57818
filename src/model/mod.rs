//! The model: the cloud the inventory describes, resolved and checked. Hosts with their
//! roles, services and addresses on every network; merged variables; BMCs. Pure code:
//! no host is contacted.

pub mod address;
mod bmc;
mod build;
mod host_addresses;
mod names;
mod networks;
mod nodes;
mod overrides;
mod roles;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Serialize;

use crate::catalogue::{Catalogue, Requirements};
use crate::ini_values::ConfigOverrides;
use crate::inventory::spec::{BmcDriver, RootDeviceHint};
use crate::inventory::{Inventory, Secrets};
pub use build::{build, LoadOptions, Loaded};

/// The resolved cloud.
#[derive(Debug, Clone)]
pub struct Cloud {
    pub name: String,
    pub domain: String,
    pub registry: String,
    pub tag: String,
    /// Per image name, another tag than `tag`.
    pub tags: BTreeMap<String, String>,
    /// Whether every container gets a systemd unit (`[cloud] container_units`).
    pub container_units: crate::inventory::spec::ContainerUnits,
    pub ssh: SshSettings,
    pub undercloud: Undercloud,
    pub networks: BTreeMap<String, Network>,
    pub roles: BTreeMap<String, Role>,
    /// Overcloud hosts, sorted by name.
    pub hosts: Vec<Host>,
    /// Global variables: catalogue defaults, then the inventory's `[vars]`.
    pub vars: toml::Table,
    /// Global oslo.config overrides.
    pub config: ConfigOverrides,
    pub secrets: Secrets,
    pub inventory: Inventory,
    pub catalogue: Catalogue,
}

#[derive(Debug, Clone, Serialize)]
pub struct SshSettings {
    pub user: String,
    pub private_key: PathBuf,
    pub known_hosts: PathBuf,
    pub port: u16,
    pub connect_timeout_secs: u64,
    pub strict_host_key_checking: bool,
    pub jump_through_undercloud: bool,
    /// Key-exchange algorithms, most preferred first (empty: the transport's default).
    pub key_exchange: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Undercloud {
    pub name: String,
    pub address: String,
    pub ssh_port: u16,
    pub ctlplane_ip: IpAddr,
    pub network: String,
    pub log_port: u16,
    pub fqdn: String,
    /// Its own services (`templates/undercloud/`), rendered as the host's of role
    /// [`UNDERCLOUD_ROLE`].
    pub services: Vec<String>,
}

pub use crate::state::UNDERCLOUD_ROLE;

#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub name: String,
    pub cidr: IpNet,
    pub vlan: Option<u16>,
    pub gateway: Option<IpAddr>,
    pub allocation_start: IpAddr,
    pub allocation_end: IpAddr,
    pub vip: Option<IpAddr>,
    pub mtu: u32,
}

/// A role as this cloud uses it.
#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub hostname_format: String,
    pub networks: Vec<String>,
    pub services: Vec<String>,
    pub max_fail_percentage: u8,
    pub requirements: Requirements,
    /// Role file vars, then the inventory's `[roles.X.vars]`.
    pub vars: toml::Table,
    pub config: ConfigOverrides,
}

/// An overcloud host.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub fqdn: String,
    pub role: String,
    /// Position among the role's nodes, in inventory order.
    pub index: usize,
    pub ctlplane_ip: IpAddr,
    pub macs: Vec<String>,
    /// Address on every network of its role.
    pub addresses: BTreeMap<String, IpAddr>,
    pub services: Vec<String>,
    pub profile: Option<String>,
    pub capabilities: BTreeMap<String, String>,
    pub root_device: Option<RootDeviceHint>,
    pub bmc: Bmc,
    /// Global < role < node. Shared by the nodes of a role that set none of their own.
    pub vars: std::sync::Arc<toml::Table>,
    /// The node's own oslo.config overrides.
    pub config: ConfigOverrides,
}

/// A node's BMC. The password is a secret's name, not its value.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Bmc {
    pub driver: BmcDriver,
    pub address: Option<String>,
    pub port: Option<u16>,
    pub system_id: Option<String>,
    pub username: Option<String>,
    pub password_secret: Option<String>,
    pub scheme: String,
    pub verify_tls: bool,
}

impl Bmc {
    /// No BMC: a pre-provisioned node (driver `none`), or the undercloud.
    pub fn none() -> Bmc {
        Bmc {
            driver: BmcDriver::None,
            address: None,
            port: None,
            system_id: None,
            username: None,
            password_secret: None,
            scheme: "https".into(),
            verify_tls: true,
        }
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
pub fn merge_tables(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

impl Cloud {
    /// The overcloud host `name`: a binary search, `hosts` being sorted by name (a
    /// lookup per host of thousands stays cheap); a linear one should the order have
    /// been disturbed since.
    pub fn host(&self, name: &str) -> Option<&Host> {
        match self.hosts.binary_search_by(|h| h.name.as_str().cmp(name)) {
            Ok(i) => Some(&self.hosts[i]),
            Err(_) => self.hosts.iter().find(|h| h.name == name),
        }
    }

    /// The full reference of image `name`: `<registry>/<name>:<tag>` (its own tag if
    /// `[cloud] tags` gives one).
    pub fn image_ref(&self, name: &str) -> String {
        let tag = self.tags.get(name).unwrap_or(&self.tag);
        format!("{}/{name}:{tag}", self.registry.trim_end_matches('/'))
    }

    /// The first host (by name) that runs `service`: its tasks that run once run there.
    pub fn bootstrap_host(&self, service: &str) -> Option<&Host> {
        self.hosts
            .iter()
            .find(|h| h.services.iter().any(|s| s == service))
    }

    /// Whether containers and tasks of `image` run the lab's stand-ins.
    pub fn stand_in(&self, image: &str) -> bool {
        match &self.inventory.lab {
            Some(lab) => !lab.real_images.iter().any(|i| i == image),
            None => false,
        }
    }

    /// The undercloud as the host its own services are rendered for: role
    /// [`UNDERCLOUD_ROLE`], its provisioning address as its only network, the global
    /// variables, no BMC.
    pub fn undercloud_host(&self) -> Host {
        let uc = &self.undercloud;
        Host {
            name: uc.name.clone(),
            fqdn: uc.fqdn.clone(),
            role: UNDERCLOUD_ROLE.into(),
            index: 0,
            ctlplane_ip: uc.ctlplane_ip,
            macs: Vec::new(),
            addresses: [(uc.network.clone(), uc.ctlplane_ip)].into_iter().collect(),
            services: uc.services.clone(),
            profile: None,
            capabilities: BTreeMap::new(),
            root_device: None,
            bmc: Bmc::none(),
            vars: std::sync::Arc::new(self.vars.clone()),
            config: ConfigOverrides::default(),
        }
    }
}
