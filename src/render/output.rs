//! Writing a rendered desired state to a folder: `DIR/<host>/<absolute path>` for every
//! file, and DIR/manifest.json describing all of it (without secret values).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::inventory::Secrets;
use crate::state::{ContainerDef, DesiredDir, DesiredState, FileKind, TaskDef};

/// Name of the manifest in a render folder.
pub const MANIFEST: &str = "manifest.json";
/// Version of the manifest's format.
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: the folder is not empty and holds no previous render ({MANIFEST}); refusing to write into it")]
    NotARenderFolder { path: PathBuf },
    #[error("refusing to write {what}: it would land outside {dir}")]
    Outside { dir: PathBuf, what: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize)]
pub struct Manifest<'a> {
    pub format: u32,
    pub cloud: &'a str,
    pub hosts: BTreeMap<&'a str, HostManifest<'a>>,
}

#[derive(Serialize)]
pub struct HostManifest<'a> {
    pub role: &'a str,
    pub directories: &'a [DesiredDir],
    pub files: Vec<FileManifest<'a>>,
    pub containers: Vec<ContainerDef>,
    /// The host's tasks, in the order they run (step, then order within it).
    pub tasks: Vec<TaskManifest<'a>>,
}

/// A task as `podman` runs it: what `benches/compare.sh`'s podman floor runs, and
/// what tells whether it runs again (its digests and image).
#[derive(Serialize)]
pub struct TaskManifest<'a> {
    pub id: &'a str,
    pub step: u8,
    pub order: u16,
    pub image: &'a str,
    pub definition_hash: &'a str,
    pub files_hash: &'a str,
    /// The `podman` arguments (after `podman`), secrets redacted (a task's values are
    /// in its environment file, not on its command line).
    pub podman_args: Vec<String>,
}

#[derive(Serialize)]
pub struct FileManifest<'a> {
    pub path: &'a str,
    pub mode: String,
    pub owner: &'a str,
    pub group: &'a str,
    pub sha256: String,
    pub size: usize,
    pub service: &'a str,
    /// `template`, `oslo` or `container`.
    pub kind: &'static str,
    /// For template files: the template, relative to the catalogue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<&'a str>,
    /// The file holds a secret's value (its content is never shown in plans or diffs).
    pub secret: bool,
    /// For oslo.config files: what CI validates them against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oslo: Option<OsloManifest<'a>>,
}

#[derive(Serialize)]
pub struct OsloManifest<'a> {
    pub id: &'a str,
    pub namespaces: &'a [String],
}

/// Builds the manifest; container environment values holding secrets are redacted.
pub fn manifest<'a>(cloud: &'a str, state: &'a DesiredState, secrets: &Secrets) -> Manifest<'a> {
    let hosts = state
        .hosts
        .iter()
        .map(|(name, hs)| {
            let files = hs
                .files
                .values()
                .map(|f| FileManifest {
                    path: &f.path,
                    mode: format!("{:04o}", f.mode),
                    owner: &f.owner,
                    group: &f.group,
                    sha256: f.sha256(),
                    size: f.content.len(),
                    service: &f.service,
                    kind: match &f.kind {
                        FileKind::Template { .. } => "template",
                        FileKind::Oslo { .. } => "oslo",
                        FileKind::Container { .. } => "container",
                        FileKind::Unit { .. } => "unit",
                        FileKind::Key { .. } => "key",
                    },
                    template: match &f.kind {
                        FileKind::Template { template } => Some(template),
                        _ => None,
                    },
                    secret: f.secret,
                    oslo: match &f.kind {
                        FileKind::Oslo { id, namespaces } => Some(OsloManifest { id, namespaces }),
                        _ => None,
                    },
                })
                .collect();
            let mut containers: Vec<ContainerDef> = hs.containers.values().cloned().collect();
            containers.sort_by(|a, b| (a.step, &a.name).cmp(&(b.step, &b.name)));
            for c in &mut containers {
                for v in c.environment.values_mut() {
                    *v = secrets.redact(v);
                }
            }
            let mut tasks: Vec<&TaskDef> = hs.tasks.values().collect();
            tasks.sort_by(|a, b| (a.step, a.order, &a.id).cmp(&(b.step, b.order, &b.id)));
            let tasks = tasks
                .into_iter()
                .map(|t| TaskManifest {
                    id: &t.id,
                    step: t.step,
                    order: t.order,
                    image: &t.image,
                    definition_hash: &t.definition_hash,
                    files_hash: &t.files_hash,
                    podman_args: crate::host::script::task_args(t)
                        .iter()
                        .map(|a| secrets.redact(a))
                        .collect(),
                })
                .collect();
            (
                name.as_str(),
                HostManifest {
                    role: &hs.role,
                    directories: &hs.directories,
                    files,
                    containers,
                    tasks,
                },
            )
        })
        .collect();
    Manifest {
        format: MANIFEST_FORMAT,
        cloud,
        hosts,
    }
}

/// Writes the render folder. A non-empty folder is replaced only if it holds a previous
/// render; anything else is refused, so no unrelated data is lost.
pub fn write(
    dir: &Path,
    cloud: &str,
    state: &DesiredState,
    secrets: &Secrets,
) -> Result<usize, OutputError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OutputError::Io { path, source }
    };
    // Every path first: nothing is removed or written if one would land outside `dir`.
    let mut writes = Vec::new();
    for (host, hs) in &state.hosts {
        for f in hs.files.values() {
            writes.push((confined(dir, host, &f.path)?, f));
        }
    }
    if dir.exists() {
        let non_empty = std::fs::read_dir(dir).map_err(io(dir))?.next().is_some();
        if non_empty {
            if !dir.join(MANIFEST).is_file() {
                return Err(OutputError::NotARenderFolder {
                    path: dir.to_path_buf(),
                });
            }
            // Remove only what a render writes: host folders named in the old manifest, and the manifest.
            for host in previous_hosts(&dir.join(MANIFEST)) {
                let p = dir.join(&host);
                if p.is_dir() && !host.contains('/') && !host.starts_with('.') {
                    std::fs::remove_dir_all(&p).map_err(io(&p))?;
                }
            }
            std::fs::remove_file(dir.join(MANIFEST)).map_err(io(dir))?;
        }
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut count = 0;
    for (p, f) in writes {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        write_file(&p, f.content.as_bytes(), f.mode).map_err(io(&p))?;
        count += 1;
    }
    let m = manifest(cloud, state, secrets);
    let mut json = serde_json::to_string_pretty(&m).unwrap_or_default();
    json.push('\n');
    let p = dir.join(MANIFEST);
    write_file(&p, json.as_bytes(), 0o644).map_err(io(&p))?;
    Ok(count)
}

/// `dir/<host>/<path>`, if the host is one path component and the path only descends
/// (validation guarantees both; this holds whatever the input).
fn confined(dir: &Path, host: &str, path: &str) -> Result<PathBuf, OutputError> {
    use std::path::Component;
    let outside = || OutputError::Outside {
        dir: dir.to_path_buf(),
        what: format!("{path} of host `{}`", host.escape_debug()),
    };
    let one = matches!(
        Path::new(host).components().collect::<Vec<_>>().as_slice(),
        [Component::Normal(_)]
    );
    if !one || host.contains('/') {
        return Err(outside());
    }
    let rel = Path::new(path.trim_start_matches('/'));
    if path.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(outside());
    }
    Ok(dir.join(host).join(rel))
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode & 0o777)
        .open(path)?;
    f.write_all(content)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))?;
    Ok(())
}

fn previous_hosts(manifest: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(manifest) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    v.get("hosts")
        .and_then(|h| h.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}
