//! Service manifests: `templates/<service>/service.toml`. See docs/catalogue.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::ini_values::IniSections;

/// What a service's manifest says.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceManifest {
    pub description: String,
    pub project: Option<String>,
    /// The container image (under the cloud's registry). A service without one is a
    /// files-only service: its files are written, no container runs (e.g. the
    /// undercloud's container-registry settings).
    pub image: Option<Spanned<String>>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default = "first_step")]
    pub step: Spanned<u8>,
    pub user: Option<String>,
    #[serde(default)]
    pub network: NetworkMode,
    #[serde(default)]
    pub privileged: bool,
    pub pid: Option<String>,
    /// `"host"` to share the host's cgroup namespace (libvirt needs it).
    pub cgroupns: Option<String>,
    #[serde(default = "default_restart")]
    pub restart: String,
    /// The service's log directory inside its container (mounted from the host's log
    /// root); required with `image`.
    #[serde(default)]
    pub log_dir: String,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<Spanned<String>>,
    pub healthcheck: Option<Healthcheck>,
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Files of another service on the same host that this container mounts too (and
    /// restarts for): e.g. neutron's RPC server uses neutron_server's neutron.conf.
    #[serde(default)]
    pub shared_files: Vec<SharedFile>,
    /// Directories the service needs on its host besides its log directory.
    #[serde(default)]
    pub directories: Vec<DirSpec>,
    /// Owner (and group) of the log directory on the host: the container's user id.
    #[serde(default = "root")]
    pub log_owner: String,
}

/// A file rendered by another service, mounted into this one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedFile {
    /// The service that renders it (must run on every host this one runs on).
    pub from: Spanned<String>,
    /// Its path on the host, as that service declares it.
    pub dest: Spanned<String>,
    pub container_path: String,
}

/// A directory on the host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSpec {
    pub path: Spanned<String>,
    #[serde(default = "dir_mode")]
    pub mode: Spanned<String>,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
}

fn first_step() -> Spanned<u8> {
    Spanned::new(0..0, 1)
}

fn dir_mode() -> Spanned<String> {
    Spanned::new(0..0, "0755".into())
}

fn default_restart() -> String {
    "always".into()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    #[default]
    Host,
    None,
}

/// A podman healthcheck.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    pub test: String,
    #[serde(default = "default_interval")]
    pub interval: String,
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_start_period")]
    pub start_period: String,
}

fn default_interval() -> String {
    "30s".into()
}
fn default_timeout() -> String {
    "10s".into()
}
fn default_retries() -> u32 {
    3
}
fn default_start_period() -> String {
    "60s".into()
}

/// A file the service needs on its host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub dest: Spanned<String>,
    pub container_path: Option<String>,
    pub src: Option<Spanned<String>>,
    pub oslo: Option<Spanned<String>>,
    #[serde(default)]
    pub ini: IniSections,
    #[serde(default = "default_mode")]
    pub mode: Spanned<String>,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
}

fn default_mode() -> Spanned<String> {
    Spanned::new(0..0, "0640".into())
}
fn root() -> String {
    "root".into()
}
