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
    /// One-shot tasks run before the service's containers (schema syncs, bootstraps).
    #[serde(default)]
    pub tasks: Vec<TaskSpec>,
    /// Its databases and their user: a `database` task creates them (and brings the
    /// user's password up to date) before anything else of the service's step.
    pub database: Option<DatabaseSpec>,
    /// Its keystone user, service entry and endpoints: a `register` task makes them so.
    pub keystone: Option<KeystoneSpec>,
}

/// `[database]`: the service's databases, created on the cluster through haproxy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    pub names: Spanned<Vec<String>>,
    pub user: String,
    /// The secret holding the user's password.
    pub password: Spanned<String>,
}

/// `[keystone]`: the service in keystone's catalogue (what kolla-ansible's
/// service-ks-register does).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoneSpec {
    pub user: Spanned<String>,
    /// The secret holding its password.
    pub password: Spanned<String>,
    /// The service entry: its name and type (`image`, `compute`...).
    pub service: String,
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub description: String,
    /// Templated: e.g. `http://{{ vip.external }}:9292`.
    pub public_url: String,
    pub internal_url: String,
}

/// The image of the bootstrap tasks that need database and keystone clients (kolla's
/// toolbox).
pub const TOOLBOX_IMAGE: &str = "kolla-toolbox";

impl ServiceManifest {
    /// The tasks its `[database]` and `[keystone]` stand for, added to `tasks`, and the
    /// secrets they use added to `secrets`: `database` (order 0 of its step) and
    /// `register` (order 5), on its bootstrap host, in the toolbox image.
    pub fn expand_bootstrap(&mut self) {
        let file = |src: &str, dest: &str, cpath: &str, name: &Spanned<String>| FileSpec {
            dest: Spanned::new(name.span(), dest.to_string()),
            container_path: Some(cpath.to_string()),
            src: Some(Spanned::new(name.span(), src.to_string())),
            oslo: None,
            ini: IniSections::new(),
            mode: Spanned::new(name.span(), "0600".into()),
            owner: "root".into(),
            group: "root".into(),
        };
        let add_secret = |s: &mut Vec<Spanned<String>>, n: &Spanned<String>| {
            if !s.iter().any(|x| x.get_ref() == n.get_ref()) {
                s.push(n.clone());
            }
        };
        if let Some(db) = self.database.clone() {
            let name = Spanned::new(db.password.span(), "database".to_string());
            let dir = "/etc/overcloud/{service}/tasks/database";
            let mut vars = toml::Table::new();
            vars.insert(
                "databases".into(),
                toml::Value::Array(
                    db.names
                        .get_ref()
                        .iter()
                        .map(|n| toml::Value::String(n.clone()))
                        .collect(),
                ),
            );
            vars.insert("user".into(), toml::Value::String(db.user.clone()));
            vars.insert(
                "password".into(),
                toml::Value::String(db.password.get_ref().clone()),
            );
            self.tasks.insert(
                0,
                TaskSpec {
                    image: Some(TOOLBOX_IMAGE.into()),
                    command: vec![
                        "mariadb".into(),
                        "--defaults-extra-file=/etc/provision-task/client.cnf".into(),
                        "--execute=source /etc/provision-task/database.sql".into(),
                    ],
                    user: Some("root".into()),
                    step: None,
                    order: 0,
                    run_on: RunOn::Bootstrap,
                    timeout: 120,
                    environment: BTreeMap::new(),
                    volumes: Vec::new(),
                    rerun_on_image_change: false,
                    files: vec![
                        file(
                            "../_common/tasks/client.cnf.j2",
                            &format!("{dir}/client.cnf"),
                            "/etc/provision-task/client.cnf",
                            &name,
                        ),
                        file(
                            "../_common/tasks/database.sql.j2",
                            &format!("{dir}/database.sql"),
                            "/etc/provision-task/database.sql",
                            &name,
                        ),
                    ],
                    vars,
                    name,
                },
            );
            add_secret(
                &mut self.secrets,
                &Spanned::new(db.password.span(), "mariadb_root_password".into()),
            );
            add_secret(&mut self.secrets, &db.password);
        }
        if let Some(ks) = self.keystone.clone() {
            let name = Spanned::new(ks.user.span(), "register".to_string());
            let env = |k: &str, v: &str| (k.to_string(), v.to_string());
            let environment: BTreeMap<String, String> = [
                env("OS_AUTH_URL", "http://{{ vip.internal_api }}:5000/v3"),
                env("OS_USERNAME", "admin"),
                env("OS_PASSWORD", "{{ secrets.keystone_admin_password }}"),
                env("OS_PROJECT_NAME", "admin"),
                env("OS_USER_DOMAIN_NAME", "Default"),
                env("OS_PROJECT_DOMAIN_NAME", "Default"),
                env("OS_REGION_NAME", "{{ vars.keystone_region }}"),
                env("KS_USER", ks.user.get_ref()),
                env(
                    "KS_PASSWORD",
                    &format!("{{{{ secrets.{} }}}}", ks.password.get_ref()),
                ),
                env("KS_SERVICE_NAME", &ks.service),
                env("KS_SERVICE_TYPE", &ks.service_type),
                env("KS_SERVICE_DESCRIPTION", &ks.description),
                env("KS_PUBLIC_URL", &ks.public_url),
                env("KS_INTERNAL_URL", &ks.internal_url),
            ]
            .into_iter()
            .collect();
            let dir = "/etc/overcloud/{service}/tasks/register";
            self.tasks.push(TaskSpec {
                image: Some(TOOLBOX_IMAGE.into()),
                command: vec![
                    "python3".into(),
                    "/etc/provision-task/ks_register.py".into(),
                ],
                user: Some("root".into()),
                step: None,
                order: 5,
                run_on: RunOn::Bootstrap,
                timeout: 180,
                environment,
                volumes: Vec::new(),
                rerun_on_image_change: false,
                files: vec![file(
                    "../_common/tasks/ks_register.py.j2",
                    &format!("{dir}/ks_register.py"),
                    "/etc/provision-task/ks_register.py",
                    &name,
                )],
                vars: toml::Table::new(),
                name,
            });
            add_secret(
                &mut self.secrets,
                &Spanned::new(ks.password.span(), "keystone_admin_password".into()),
            );
            add_secret(&mut self.secrets, &ks.password);
        }
    }
}

/// Where a task runs.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunOn {
    /// The service's bootstrap host: the first (by name) of the hosts that run it, as
    /// TripleO's bootstrap server.
    #[default]
    Bootstrap,
    /// Every host that runs the service.
    All,
}

/// `[[tasks]]`: a container run to completion.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Its name within the service (an identifier).
    pub name: Spanned<String>,
    /// The image (under the cloud's registry); default: the service's.
    pub image: Option<String>,
    pub command: Vec<String>,
    /// Default: the service's user.
    pub user: Option<String>,
    /// Default: the service's step.
    pub step: Option<u8>,
    /// Order within the step (ascending); default 0.
    #[serde(default)]
    pub order: u16,
    #[serde(default)]
    pub run_on: RunOn,
    /// Seconds it may take; default 300.
    #[serde(default = "task_timeout")]
    pub timeout: u64,
    /// Templated like the service's; written into an environment file (0600) that
    /// podman reads, never on a command line.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// More volumes (`host:container[:options]`).
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Whether a new image (tag) runs it again; default true.
    #[serde(default = "yes")]
    pub rerun_on_image_change: bool,
    /// Its own files (rendered like the service's, mounted at `container_path`); the
    /// service's files with a `container_path` are mounted too.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Values its templates see as `task.vars`.
    #[serde(default)]
    pub vars: toml::Table,
}

fn task_timeout() -> u64 {
    300
}
fn yes() -> bool {
    true
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
