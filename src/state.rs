//! The desired state: what every host must hold (files with mode and owner,
//! directories, container definitions), and which plane (overcloud or undercloud) its
//! paths belong to. Produced by [`crate::render`], read by [`crate::plan`] (to decide
//! what changes), [`crate::diff`] and [`crate::apply`]. Plain data: no I/O.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalogue::{Healthcheck, NetworkMode};

/// Where the containers' systemd units are written (`container_units = "systemd"`).
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// The role name of the undercloud in the desired state, plans and reports.
pub const UNDERCLOUD_ROLE: &str = "undercloud";

/// Where provision keeps its own records on the undercloud: the apply lock, the record
/// of the last apply, the record of provisioned nodes.
pub const STATE_DIR: &str = "/var/lib/provision";

/// Which side of the cloud a host is on: where its configuration, logs, data and
/// container definitions live. The overcloud's hosts use `/etc/overcloud`,
/// `/var/log/overcloud` and `/var/lib/overcloud`; the undercloud's own services the
/// same paths under `undercloud`, so the two never mix on one machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Plane {
    #[default]
    Overcloud,
    Undercloud,
}

impl Plane {
    /// The plane of a host of this role.
    pub fn of_role(role: &str) -> Plane {
        if role == UNDERCLOUD_ROLE {
            Plane::Undercloud
        } else {
            Plane::Overcloud
        }
    }
    /// The apply stage of its hosts, in events and reports.
    pub fn stage(self) -> crate::report::Stage {
        match self {
            Plane::Overcloud => crate::report::Stage::Overcloud,
            Plane::Undercloud => crate::report::Stage::Undercloud,
        }
    }
    /// Where each service's configuration folder is (`<root>/<service>/`).
    pub fn config_root(self) -> &'static str {
        match self {
            Plane::Overcloud => "/etc/overcloud",
            Plane::Undercloud => "/etc/undercloud",
        }
    }
    /// Where each service's log folder is (`<root>/<service>/`).
    pub fn log_root(self) -> &'static str {
        match self {
            Plane::Overcloud => "/var/log/overcloud",
            Plane::Undercloud => "/var/log/undercloud",
        }
    }
    /// Data the services keep (with a trailing `/`).
    pub fn data_root(self) -> &'static str {
        match self {
            Plane::Overcloud => "/var/lib/overcloud/",
            Plane::Undercloud => "/var/lib/undercloud/",
        }
    }
    /// Where the container definitions are written.
    pub fn container_defs(self) -> &'static str {
        match self {
            Plane::Overcloud => "/var/lib/overcloud/containers",
            Plane::Undercloud => "/var/lib/undercloud/containers",
        }
    }
    /// The stamp of running containers (name, full id, config hash) apply leaves on a
    /// host: plan and apply trust it only while every container in it still runs under
    /// the same id (its OCI runtime state names a live process), else they read
    /// `podman ps`. Saves a podman process (~30 ms of CPU) per host.
    pub fn running_stamp(self) -> &'static str {
        match self {
            Plane::Overcloud => "/var/lib/overcloud/.provision-running",
            Plane::Undercloud => "/var/lib/undercloud/.provision-running",
        }
    }
    /// The files stamp apply's survey leaves on a host: per managed file, its path, its
    /// `size:inode:mtime:ctime` (ns) and its SHA-256, tab-separated. A later read trusts
    /// the recorded hash only while the file's stat is exactly that (git's index and
    /// rsync's quick check): any write changes the ctime, which no user can set back.
    pub fn files_stamp(self) -> &'static str {
        match self {
            Plane::Overcloud => "/var/lib/overcloud/.provision-files",
            Plane::Undercloud => "/var/lib/undercloud/.provision-files",
        }
    }
}

/// Folders outside a plane's own roots that services may write files into: podman's and
/// logrotate's drop-in folders.
pub const DROP_IN_DIRS: &[&str] = &["/etc/containers/registries.conf.d", "/etc/logrotate.d"];

/// Host folders outside a plane's roots that services may create (and containers share
/// with the host): network namespaces and Open vSwitch's sockets.
pub const SHARED_HOST_DIRS: &[&str] = &["/run/netns", "/run/openvswitch"];

/// What a checked host path is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathUse {
    /// A file a service writes.
    File,
    /// A directory a service needs.
    Directory,
}

/// What is wrong with a path's shape.
pub enum PathShape {
    /// A character outside the allowed ones.
    Char(char),
    Other(&'static str),
}

/// A path's shape: absolute, normalized (no empty, `.` or `..` component), made of
/// letters, digits and the characters of `allowed` only.
pub fn check_path_shape(path: &str, allowed: &str) -> Result<(), PathShape> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathShape::Other("is not an absolute path"));
    };
    for c in rest.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(PathShape::Other(
                "is not a normalized path (an empty, `.` or `..` component)",
            ));
        }
        if let Some(bad) = c
            .chars()
            .find(|ch| !(ch.is_ascii_alphanumeric() || allowed.contains(*ch)))
        {
            return Err(PathShape::Char(bad));
        }
    }
    Ok(())
}

/// Checks a host path of a service of `plane`: absolute, normalized (no empty, `.` or
/// `..` component, no trailing `/`), made of letters, digits and `._+@=,:-` only (no
/// whitespace, quote or control character), and under the plane's roots (its
/// configuration, data and log roots), a drop-in folder ([`DROP_IN_DIRS`]) or, for a
/// directory, a shared host folder ([`SHARED_HOST_DIRS`]). Returns what is wrong.
pub fn check_host_path(path: &str, plane: Plane, use_: PathUse) -> Result<(), String> {
    check_path_shape(path, "._+@=,:-").map_err(|e| match e {
        PathShape::Char(bad) => {
            format!("holds {bad:?}: paths may hold letters, digits and `._+@=,:-` only")
        }
        PathShape::Other(e) => e.into(),
    })?;
    let under = |root: &str| {
        let root = root.trim_end_matches('/');
        path.strip_prefix(root)
            .map(|r| r.starts_with('/') || (r.is_empty() && use_ == PathUse::Directory))
            .unwrap_or(false)
    };
    let mut roots = vec![plane.config_root(), plane.data_root(), plane.log_root()];
    roots.extend(DROP_IN_DIRS);
    if use_ == PathUse::Directory {
        roots.extend(SHARED_HOST_DIRS);
    }
    if roots.iter().any(|r| under(r)) {
        Ok(())
    } else {
        Err(format!(
            "is outside the folders a {} service may write: {}",
            plane.stage().as_str(),
            roots
                .iter()
                .map(|r| format!("{}/", r.trim_end_matches('/')))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// The systemd unit of a container: `provision-<name>.service`.
pub fn unit_name(container: &str) -> String {
    format!("provision-{container}.service")
}

/// Whether a name is safe as a container name and as a path component (letters,
/// digits, `_` and `-`, at most 64 bytes): the only container names apply acts on.
pub fn safe_container_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a desired file is.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileKind {
    Template {
        template: String,
    },
    Oslo {
        id: String,
        namespaces: Vec<String>,
    },
    Container {
        container: String,
    },
    /// The systemd unit that starts a container at boot.
    Unit {
        container: String,
    },
    /// Generated key material ([`crate::keys`]): a key of a repository, or the store of
    /// every key on the undercloud. Its content is made by provision, not rendered.
    Key {
        repository: String,
    },
}

/// A file as it must be on a host.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredFile {
    pub path: String,
    pub content: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub service: String,
    pub kind: FileKind,
    /// Whether the content holds a secret's value.
    pub secret: bool,
}

impl DesiredFile {
    pub fn sha256(&self) -> String {
        crate::state::hex(&Sha256::digest(self.content.as_bytes()))
    }

    /// `path mode owner:group sha256`: what a digest of the file covers.
    pub fn identity(&self) -> String {
        format!(
            "{} {:o} {}:{} {}",
            self.path,
            self.mode,
            self.owner,
            self.group,
            self.sha256()
        )
    }
}

/// A directory that must exist on a host.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DesiredDir {
    pub path: String,
    pub mode: String,
    pub owner: String,
    pub group: String,
}

/// A container as it must run on a host.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContainerDef {
    pub name: String,
    pub service: String,
    pub step: u8,
    pub image: String,
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub network: NetworkMode,
    pub privileged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroupns: Option<String>,
    pub restart: String,
    pub environment: BTreeMap<String, String>,
    pub volumes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Names the container resolves (`--add-host`, in its own /etc/hosts): with the
    /// manifest's `resolve_peers`, the hosts that run the service, short name and FQDN,
    /// on their internal_api address (rabbitmq's node names `rabbit@<host>`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, String>,
    /// Includes `provision.config_hash`: changes whenever the container's files, image
    /// or definition change.
    pub labels: BTreeMap<String, String>,
}

impl ContainerDef {
    /// A container known only by name (one found on a host that is not desired there).
    pub fn named(name: &str) -> Self {
        ContainerDef {
            name: name.to_string(),
            service: name.to_string(),
            step: 0,
            image: String::new(),
            command: Vec::new(),
            user: None,
            network: NetworkMode::Host,
            privileged: false,
            pid: None,
            cgroupns: None,
            restart: String::new(),
            environment: BTreeMap::new(),
            volumes: Vec::new(),
            healthcheck: None,
            hosts: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }
}

/// The desired state of one host.
#[derive(Debug, Clone, Default)]
pub struct HostState {
    pub name: String,
    pub role: String,
    pub plane: Plane,
    pub directories: Vec<DesiredDir>,
    /// By path.
    pub files: BTreeMap<String, DesiredFile>,
    /// By name, in no particular order; `step` orders them.
    pub containers: BTreeMap<String, ContainerDef>,
    /// One-shot tasks, by id (`<service>/<task>`); `step` and `order` order them.
    pub tasks: BTreeMap<String, TaskDef>,
    /// Folders that hold exactly their desired files: any other file in them is removed
    /// (key repositories: a retired key must not stay).
    pub exact_dirs: Vec<String>,
}

/// A one-shot task: a container of the service's (or another) image, run to completion
/// before the long-running containers of its deploy step (a schema sync, a database
/// created). It runs when it never succeeded on its host or its inputs changed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskDef {
    /// `<service>/<task>`.
    pub id: String,
    pub service: String,
    pub name: String,
    pub step: u8,
    /// Within its step, ascending.
    pub order: u16,
    pub image: String,
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Host path of its environment file (a desired file of the host, 0600): podman reads
    /// it (`--env-file`), so no value is on a command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_file: Option<String>,
    pub volumes: Vec<String>,
    pub timeout_secs: u64,
    /// Whether a new image (tag) runs it again (a schema sync: yes; a bootstrap that only
    /// creates what is missing: no).
    pub rerun_on_image_change: bool,
    /// The hosts (by name) running each service of its `rerun_on_hosts_of`: when they
    /// change, it runs again. Not in the definition digest: recorded as they are, so
    /// that plan can say which hosts came or went.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts_of: BTreeMap<String, Vec<String>>,
    /// Digest of its definition (everything above but the image, `hosts_of` and the files' digest).
    pub definition_hash: String,
    /// Digest of the files it mounts (path, mode, owner, content).
    pub files_hash: String,
}

impl TaskDef {
    /// A name safe as a container name: `provision-task-<service>-<task>`.
    pub fn container_name(&self) -> String {
        format!("provision-task-{}-{}", self.service, self.name)
    }
}

impl HostState {
    /// A digest of everything desired on the host: every file's path, mode, owner and
    /// content hash, every directory, every container's config hash.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for f in self.files.values() {
            match &f.kind {
                // Not the inventory's: generated on the undercloud (anew until stored) and
                // added to the desired state when a run reads the store, so a plan saved
                // before the keys exist holds when apply generates them.
                FileKind::Key { .. } => {}
                _ => h.update(format!("F {}\n", f.identity()).as_bytes()),
            }
        }
        for d in &self.directories {
            h.update(format!("D {} {} {}:{}\n", d.path, d.mode, d.owner, d.group).as_bytes());
        }
        for (id, t) in &self.tasks {
            h.update(
                format!(
                    "T {id} {} {} {} {:?}\n",
                    t.image, t.definition_hash, t.files_hash, t.hosts_of
                )
                .as_bytes(),
            );
        }
        for (n, c) in &self.containers {
            let hash = c
                .labels
                .get("provision.config_hash")
                .map(String::as_str)
                .unwrap_or("");
            h.update(format!("C {n} {hash}\n").as_bytes());
        }
        hex(&h.finalize())
    }
}

/// The desired state of every host, by name.
#[derive(Debug, Clone, Default)]
pub struct DesiredState {
    pub hosts: BTreeMap<String, HostState>,
}

impl DesiredState {
    /// A digest of every host's [`HostState::digest`].
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (name, hs) in &self.hosts {
            h.update(format!("{name} {}\n", hs.digest()).as_bytes());
        }
        hex(&h.finalize())
    }
}

/// Lower-case hexadecimal of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_stay_under_their_roots() {
        let ok = |p: &str, u| check_host_path(p, Plane::Overcloud, u).is_ok();
        assert!(ok("/etc/overcloud/nova_compute/nova.conf", PathUse::File));
        assert!(ok("/var/lib/overcloud/containers/x.json", PathUse::File));
        assert!(ok("/etc/logrotate.d/provision", PathUse::File));
        assert!(ok("/run/netns", PathUse::Directory));
        assert!(!ok("/run/netns", PathUse::File));
        assert!(!ok("/etc/overcloud", PathUse::File));
        for bad in [
            "/etc/overcloud/../../tmp/f",
            "/etc/overcloud/./x",
            "/etc/overcloud//x",
            "/etc/overcloud/x/",
            "etc/overcloud/x",
            "/etc/overcloud/a b",
            "/etc/overcloud/a\nb",
            "/etc/overcloudx/y",
            "/etc/passwd",
            "/etc/undercloud/dnsmasq/x",
        ] {
            assert!(!ok(bad, PathUse::File), "{bad}");
        }
        assert!(check_host_path(
            "/etc/undercloud/dnsmasq/x",
            Plane::Undercloud,
            PathUse::File
        )
        .is_ok());
        let e = check_host_path("/etc/passwd", Plane::Overcloud, PathUse::File).unwrap_err();
        assert!(
            e.contains("/etc/overcloud/, /var/lib/overcloud/, /var/log/overcloud/"),
            "{e}"
        );
    }
}
