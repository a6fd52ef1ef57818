//! The record of provisioned nodes, kept on the undercloud
//! (`/var/lib/provision/<cloud>.nodes.json`): a node in it has been brought up (or
//! adopted) and introspected, and its BMC is not called again; a node no longer in the
//! inventory is found here, with its BMC, to power it off. Read and written by
//! [`crate::apply::baremetal`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::inventory::spec::BmcDriver;
use crate::model::Cloud;
use crate::state::STATE_DIR;

/// The record of provisioned nodes, on the undercloud.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodesRecord {
    pub format: u32,
    pub nodes: BTreeMap<String, ProvisionedNode>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProvisionedNode {
    /// RFC 3339, UTC.
    pub time: String,
    pub run_id: String,
    /// How it came up: `powered on` (PXE once, power on) or `adopted` (it answered
    /// already, or has no BMC).
    pub how: String,
    /// The inventory MAC found on one of its NICs.
    pub mac: String,
    pub cpus: u32,
    pub memory_mb: u64,
    pub disks: Vec<(String, u64)>,
    pub nics: BTreeMap<String, String>,
    /// Its BMC (the password secret's name only), to power it off once it leaves the
    /// inventory.
    #[serde(default)]
    pub bmc: Option<crate::model::Bmc>,
    #[serde(default)]
    pub role: String,
}

/// The record's path on the undercloud.
pub fn record_path(cloud: &str) -> String {
    format!("{STATE_DIR}/{cloud}.nodes.json")
}

/// The nodes of `names` the stage would provision: not in the record.
pub fn pending<'a>(names: impl Iterator<Item = &'a String>, rec: &NodesRecord) -> Vec<String> {
    names
        .filter(|n| !rec.nodes.contains_key(*n))
        .cloned()
        .collect()
}

/// What the plan says the stage does for a node.
pub fn describe(cloud: &Cloud, node: &str) -> String {
    match cloud.host(node).map(|h| &h.bmc) {
        Some(b) if b.driver != BmcDriver::None => format!(
            "{} BMC {}{}: one-time PXE boot and power on if off, wait for SSH, check its MAC, introspect",
            b.driver,
            b.address.as_deref().unwrap_or("?"),
            b.system_id.as_deref().map(|s| format!(" system {s}")).unwrap_or_default()
        ),
        _ => "no BMC (pre-provisioned): wait for SSH, check its MAC, introspect".into(),
    }
}

/// Provisioned nodes that are no longer in the inventory.
pub fn removed(cloud: &Cloud, rec: &NodesRecord) -> Vec<String> {
    rec.nodes
        .keys()
        .filter(|n| cloud.host(n).is_none())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unrecorded_nodes_are_pending() {
        let mut rec = NodesRecord::default();
        rec.nodes.insert("a".into(), ProvisionedNode::default());
        let names = ["a".to_string(), "b".to_string()];
        assert_eq!(pending(names.iter(), &rec), vec!["b".to_string()]);
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<NodesRecord>(&json).unwrap(), rec);
    }
}
