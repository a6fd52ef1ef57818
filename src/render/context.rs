//! The variables templates see. See the table in docs/catalogue.md.

use std::collections::BTreeMap;
use std::net::IpAddr;

use std::sync::{Arc, OnceLock};

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::Value;
use serde::Serialize;

use sha2::{Digest, Sha256};

use super::cache::{part, Key};
use crate::model::{Cloud, Host};

/// A host as seen in `groups.<service>`.
#[derive(Debug, Serialize)]
struct GroupMember {
    name: String,
    fqdn: String,
    role: String,
    ctlplane_ip: IpAddr,
    networks: BTreeMap<String, IpAddr>,
}

/// `groups`: the hosts of every service, each group made a template value the first
/// time a template reads it. A compute node reads two or three small groups; making
/// every group of thousands of members up front cost more than rendering it.
#[derive(Debug)]
pub struct Groups {
    /// Every overcloud host, in inventory order.
    hosts: Vec<GroupMember>,
    /// Each service's hosts (indices into `hosts`) and, once read, its value.
    groups: BTreeMap<String, (Vec<usize>, OnceLock<Value>)>,
    /// Digests of every host and of the whole, once made (render/cache.rs).
    member_digests: OnceLock<Vec<Key>>,
    digest: OnceLock<Key>,
}

impl Groups {
    fn members(&self, idx: &[usize]) -> Vec<&GroupMember> {
        idx.iter().filter_map(|i| self.hosts.get(*i)).collect()
    }

    /// Every host's digest (its name, FQDN, role and addresses), made once.
    fn member_digests(&self) -> &[Key] {
        self.member_digests.get_or_init(|| {
            self.hosts
                .iter()
                .map(|m| {
                    let mut h = Sha256::new();
                    for text in [&m.name, &m.fqdn, &m.role] {
                        part(&mut h, text.as_bytes());
                    }
                    part(&mut h, m.ctlplane_ip.to_string().as_bytes());
                    h.update((m.networks.len() as u64).to_le_bytes());
                    for (net, ip) in &m.networks {
                        part(&mut h, net.as_bytes());
                        part(&mut h, ip.to_string().as_bytes());
                    }
                    h.finalize().into()
                })
                .collect()
        })
    }

    /// What a digest of `groups.<name>` covers (render/cache.rs): its members, in order,
    /// without making its template value. `None`: no such group.
    pub fn group_digest(&self, name: &str) -> Option<Key> {
        let (idx, _) = self.groups.get(name)?;
        let digests = self.member_digests();
        let mut h = Sha256::new();
        h.update((idx.len() as u64).to_le_bytes());
        for i in idx {
            h.update(digests.get(*i).copied().unwrap_or([0xff; 32]));
        }
        Some(h.finalize().into())
    }

    /// What a digest of `groups` whole covers: every group and its members.
    pub fn digest(&self) -> Key {
        *self.digest.get_or_init(|| {
            let mut h = Sha256::new();
            h.update((self.groups.len() as u64).to_le_bytes());
            for name in self.groups.keys() {
                part(&mut h, name.as_bytes());
                h.update(self.group_digest(name).unwrap_or([0xff; 32]));
            }
            h.finalize().into()
        })
    }
}

impl Object for Groups {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let (idx, value) = self.groups.get(key.as_str()?)?;
        Some(value.get_or_init(|| ser(&self.members(idx))).clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.groups
                .keys()
                .map(|k| Value::from(k.as_str()))
                .collect(),
        )
    }
}

#[derive(Serialize)]
struct HostNet {
    address: IpAddr,
    cidr: String,
    prefix: u8,
    vlan: Option<u16>,
    gateway: Option<IpAddr>,
    mtu: u32,
}

#[derive(Serialize)]
struct NetView {
    cidr: String,
    /// The network's own address (`192.168.24.0` of `192.168.24.0/24`).
    network: IpAddr,
    netmask: IpAddr,
    prefix: u8,
    allocation_start: IpAddr,
    allocation_end: IpAddr,
    vlan: Option<u16>,
    gateway: Option<IpAddr>,
    mtu: u32,
    vip: Option<IpAddr>,
}

/// An overcloud node as seen in `nodes` (what the undercloud's DHCP and DNS serve).
#[derive(Serialize)]
struct NodeView<'a> {
    name: &'a str,
    fqdn: &'a str,
    role: &'a str,
    ctlplane_ip: IpAddr,
    /// MAC addresses, lower case; the first one PXE boots.
    macs: Vec<String>,
    networks: &'a BTreeMap<String, IpAddr>,
}

/// The parts of the context shared by every host.
pub struct SharedContext {
    pub cloud: Value,
    pub networks: Value,
    pub vip: Value,
    pub groups: Value,
    pub undercloud: Value,
    /// Every overcloud node, sorted by name.
    pub nodes: Value,
}

impl SharedContext {
    pub fn new(cloud: &Cloud) -> Self {
        let mut groups: BTreeMap<String, (Vec<usize>, OnceLock<Value>)> = BTreeMap::new();
        for svc in cloud.catalogue.services.keys() {
            groups.insert(svc.clone(), Default::default());
        }
        let mut hosts = Vec::with_capacity(cloud.hosts.len());
        for (i, h) in cloud.hosts.iter().enumerate() {
            for svc in &h.services {
                groups.entry(svc.clone()).or_default().0.push(i);
            }
            hosts.push(GroupMember {
                name: h.name.clone(),
                fqdn: h.fqdn.clone(),
                role: h.role.clone(),
                ctlplane_ip: h.ctlplane_ip,
                networks: h.addresses.clone(),
            });
        }
        let networks: BTreeMap<&str, NetView> = cloud
            .networks
            .iter()
            .map(|(n, net)| {
                (
                    n.as_str(),
                    NetView {
                        cidr: net.cidr.to_string(),
                        network: net.cidr.network(),
                        netmask: net.cidr.netmask(),
                        prefix: net.cidr.prefix_len(),
                        allocation_start: net.allocation_start,
                        allocation_end: net.allocation_end,
                        vlan: net.vlan,
                        gateway: net.gateway,
                        mtu: net.mtu,
                        vip: vip_of(cloud, n),
                    },
                )
            })
            .collect();
        let vip: BTreeMap<&str, Option<IpAddr>> = cloud
            .networks
            .keys()
            .map(|n| (n.as_str(), vip_of(cloud, n)))
            .collect();
        let nodes: Vec<NodeView> = cloud
            .hosts
            .iter()
            .map(|h| NodeView {
                name: &h.name,
                fqdn: &h.fqdn,
                role: &h.role,
                ctlplane_ip: h.ctlplane_ip,
                macs: h.macs.iter().map(|m| m.to_ascii_lowercase()).collect(),
                networks: &h.addresses,
            })
            .collect();
        Self {
            nodes: crate::render::context::ser(&nodes),
            cloud: minijinja::context! {
                name => cloud.name.clone(), domain => cloud.domain.clone(), registry => cloud.registry.clone(), tag => cloud.tag.clone(),
            },
            networks: crate::render::context::ser(&networks),
            vip: crate::render::context::ser(&vip),
            groups: Value::from_object(Groups {
                hosts,
                groups,
                member_digests: OnceLock::new(),
                digest: OnceLock::new(),
            }),
            undercloud: minijinja::context! {
                name => cloud.undercloud.name.clone(),
                fqdn => cloud.undercloud.fqdn.clone(),
                network => cloud.undercloud.network.clone(),
                ctlplane_ip => cloud.undercloud.ctlplane_ip.to_string(),
                log_port => cloud.undercloud.log_port,
            },
        }
    }
}

/// The network's VIP: the inventory's, else the address of the first host (by name)
/// that runs haproxy, else of the first host on that network.
pub fn vip_of(cloud: &Cloud, net: &str) -> Option<IpAddr> {
    if let Some(v) = cloud.networks.get(net).and_then(|n| n.vip) {
        return Some(v);
    }
    cloud
        .hosts
        .iter()
        .filter(|h| h.services.iter().any(|s| s == "haproxy"))
        .find_map(|h| h.addresses.get(net).copied())
        .or_else(|| {
            cloud
                .hosts
                .iter()
                .find_map(|h| h.addresses.get(net).copied())
        })
}

/// The `host` variable.
pub fn host_value(cloud: &Cloud, host: &Host) -> Value {
    let networks: BTreeMap<&str, HostNet> = host
        .addresses
        .iter()
        .filter_map(|(n, a)| {
            let net = cloud.networks.get(n)?;
            Some((
                n.as_str(),
                HostNet {
                    address: *a,
                    cidr: net.cidr.to_string(),
                    prefix: net.cidr.prefix_len(),
                    vlan: net.vlan,
                    gateway: net.gateway,
                    mtu: net.mtu,
                },
            ))
        })
        .collect();
    minijinja::context! {
        name => host.name.clone(),
        fqdn => host.fqdn.clone(),
        role => host.role.clone(),
        index => host.index,
        ctlplane_ip => host.ctlplane_ip.to_string(),
        networks => crate::render::context::ser(&networks),
        services => host.services.clone(),
    }
}

/// A serializable Rust value as a template value.
pub fn ser<T: Serialize>(t: &T) -> Value {
    Value::from(minijinja::value::Serde(t))
}
