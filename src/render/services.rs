//! One host's services rendered: each service's template context, its files (templates
//! and oslo.config INI files) and directories, then its container; no path written by
//! two services.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use minijinja::Value;

use super::cache::ServiceOutput;
use super::context::{host_value, ser};
use super::skip::{HostKeys, SkippedContainer};
use super::templates::{container_path_name, is_template, when_name};
use super::Renderer;
use crate::catalogue::{parse_mode, FileSpec, Service, ServiceManifest};
use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::ini_values::IniSections;
use crate::inventory::spec::ContainerUnits;
use crate::model::Host;
use crate::state::{DesiredDir, DesiredFile, FileKind, HostState, Plane};

/// A service whose container is rendered once every file of the host is: with its
/// template context, the mounts of its files, and its cached output if any.
pub(super) struct Pending<'s> {
    pub svc: &'s Service,
    pub ctx: Value,
    pub mounts: Vec<(String, String)>,
    pub output: Option<Arc<ServiceOutput>>,
}

impl Renderer<'_> {
    /// Renders `host.services`, found in `catalogue`, with `plane`'s paths. In the second
    /// pass of a diff (`pass`: the host's keys from the first, and the services skipped,
    /// by position: [`super::skip`]), a skipped service gets its directories and its
    /// container's unit only.
    pub(super) fn render_services(
        &self,
        host: &Host,
        catalogue: &BTreeMap<String, Service>,
        plane: Plane,
        pass: Option<(&HostKeys, &[bool])>,
        diags: &mut Diagnostics,
    ) -> HostState {
        let mut hs = HostState {
            name: host.name.clone(),
            role: host.role.clone(),
            plane,
            ..Default::default()
        };
        let host_v = host_value(self.cloud, host);
        let vars_v = self.vars_value(&host.vars);
        let mut pending: Vec<Pending> = Vec::new();
        let mut skipped_containers: Vec<SkippedContainer> = Vec::new();
        for (i, svc_name) in host.services.iter().enumerate() {
            let Some(svc) = catalogue.get(svc_name) else {
                continue;
            };
            if pass.is_some_and(|(_, skip)| skip.get(i) == Some(&true)) {
                service_directories(&mut hs, svc_name, &svc.manifest, plane);
                if svc.manifest.image.is_some() {
                    skipped_containers.push(SkippedContainer {
                        name: svc_name.clone(),
                        service: svc_name.clone(),
                        step: *svc.manifest.step.get_ref(),
                    });
                }
                continue;
            }
            let ctx = self.service_context(svc_name, &svc.manifest, plane, &host_v, &vars_v);
            // The first pass's key, where it made one for this service.
            let key = match pass.and_then(|(k, _)| k.services.get(i)) {
                Some(k) if &k.service == svc_name => k.key,
                _ => self.service_key(host, svc, plane, &ctx),
            };
            let (rendered, mounts, output) = match key.and_then(|k| self.cached(svc_name, &k)) {
                Some(out) => (
                    self.reused_files(host, svc, &out, diags),
                    out.mounts.clone(),
                    Some(out),
                ),
                None => {
                    let before = self.findings(diags);
                    let (rendered, mounts) = self.render_files(host, svc_name, svc, &ctx, diags);
                    let output = key.filter(|_| self.findings(diags) == before).map(|k| {
                        let out = Arc::new(ServiceOutput {
                            files: rendered.clone(),
                            mounts: mounts.clone(),
                            container: Default::default(),
                            secrets_id: self.secrets_id(),
                        });
                        self.keep(svc_name, k, Arc::clone(&out));
                        out
                    });
                    (rendered, mounts, output)
                }
            };
            service_directories(&mut hs, svc_name, &svc.manifest, plane);
            for f in rendered {
                self.insert_file(&mut hs, svc, host, f, diags);
            }
            self.render_tasks(&mut hs, host, svc, plane, &ctx, &mounts, diags);
            if svc.manifest.image.is_some() {
                pending.push(Pending {
                    svc,
                    ctx,
                    mounts,
                    output,
                });
            }
        }
        // Containers last: their config hash covers files of other services they share.
        self.render_containers(&mut hs, host, plane, pending, diags);
        if self.cloud.container_units == ContainerUnits::Systemd {
            super::containers::add_container_units(&mut hs, plane, &skipped_containers);
        }
        merge_directories(&mut hs, plane.log_root());
        hs
    }

    /// The `vars` variable of a host: made once for the hosts that share their vars
    /// (the nodes of a role that set none of their own).
    pub(super) fn vars_value(&self, vars: &Arc<toml::Table>) -> Value {
        let Ok(mut made) = self.vars_values.lock() else {
            return ser(&**vars);
        };
        if let Some((_, v)) = made.iter().find(|(t, _)| Arc::ptr_eq(t, vars)) {
            return v.clone();
        }
        let v = ser(&**vars);
        // Bounded: a cloud whose every node sets its own vars makes each once.
        if made.len() < 64 {
            made.push((Arc::clone(vars), v.clone()));
        }
        v
    }

    /// The files of a cached output, checked for secrets again when they were checked
    /// with another revision's secrets.
    fn reused_files(
        &self,
        host: &Host,
        svc: &Service,
        out: &ServiceOutput,
        diags: &mut Diagnostics,
    ) -> Vec<DesiredFile> {
        let mut files = out.files.clone();
        if out.secrets_id != self.secrets_id() {
            for file in &mut files {
                let Some(f) = svc
                    .manifest
                    .files
                    .iter()
                    .find(|f| f.dest.get_ref() == &file.path)
                else {
                    continue;
                };
                let mode_at = Location::new(&svc.file, Some(f.mode.span()));
                let dest_at = Location::new(&svc.file, Some(f.dest.span()));
                self.check_secrets(host, svc, file, &dest_at, &mode_at, diags);
            }
        }
        files
    }

    /// What the templates of service `svc_name` see on this host: the cloud, the host
    /// (`host_v`), the service, the other hosts, the variables (`vars_v`) and the
    /// service's secrets.
    pub(super) fn service_context(
        &self,
        svc_name: &str,
        m: &ServiceManifest,
        plane: Plane,
        host_v: &Value,
        vars_v: &Value,
    ) -> Value {
        let cloud = self.cloud;
        let log_root = plane.log_root();
        let secrets: BTreeMap<&str, &str> = m
            .secrets
            .iter()
            .filter_map(|s| {
                cloud
                    .secrets
                    .get(s.get_ref())
                    .map(|v| (s.get_ref().as_str(), v.expose()))
            })
            .collect();
        let service_v = minijinja::context! {
            name => svc_name.to_string(),
            project => m.project.clone().unwrap_or_else(|| svc_name.to_string()),
            log_dir => m.log_dir.clone(),
            host_log_dir => format!("{log_root}/{svc_name}"),
            log_root => log_root,
            config_dir => format!("{}/{svc_name}", plane.config_root()),
        };
        minijinja::context! {
            cloud => self.shared.cloud.clone(),
            host => host_v.clone(),
            service => service_v,
            networks => self.shared.networks.clone(),
            vip => self.shared.vip.clone(),
            groups => self.shared.groups.clone(),
            undercloud => self.shared.undercloud.clone(),
            nodes => self.shared.nodes.clone(),
            vars => vars_v.clone(),
            secrets => ser(&secrets),
        }
    }

    /// The `[[files]]` of service `svc_name` rendered with `ctx` (those whose `when` is
    /// true): a template, or an oslo.config INI file; with the mounts of those that
    /// have a `container_path` (host path, container path), in the manifest's order. A
    /// file that fails is reported and left out.
    fn render_files(
        &self,
        host: &Host,
        svc_name: &str,
        svc: &Service,
        ctx: &Value,
        diags: &mut Diagnostics,
    ) -> (Vec<DesiredFile>, Vec<(String, String)>) {
        let cloud = self.cloud;
        // The overrides written under the service's name go to its first INI file.
        let mut first_oslo = true;
        let mut rendered: Vec<DesiredFile> = Vec::new();
        let mut mounts: Vec<(String, String)> = Vec::new();
        for (index, f) in svc.manifest.files.iter().enumerate() {
            match self.file_wanted(svc, f, ctx) {
                Ok(true) => {}
                Ok(false) => {
                    // Still the first INI file of the manifest: the overrides under the
                    // service's name do not move to the next one.
                    first_oslo &= f.oslo.is_none();
                    continue;
                }
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            }
            let content = if let Some(src) = &f.src {
                let Some(name) = cloud.catalogue.template_name(&svc.dir, src.get_ref()) else {
                    continue;
                };
                match self.render_named(&name, ctx) {
                    Ok(c) => (c, FileKind::Template { template: name }),
                    Err(d) => {
                        diags.push(d);
                        continue;
                    }
                }
            } else if let Some(id) = &f.oslo {
                let Some(defaults) = cloud.catalogue.oslo.get(id.get_ref()) else {
                    continue;
                };
                let inv = cloud.inventory.path.as_path();
                let mut layers: Vec<(&Path, &IniSections)> = vec![
                    (defaults.file.as_path(), &defaults.sections),
                    (svc.file.as_path(), &f.ini),
                ];
                let overrides = self.override_layers(host, svc_name, id.get_ref(), first_oslo);
                layers.extend(overrides.into_iter().map(|l| (inv, l)));
                // The node's own overrides of the file: its own render.
                let own = host.config.contains_key(id.get_ref())
                    || (first_oslo
                        && svc_name != id.get_ref()
                        && host.config.contains_key(svc_name));
                let first = first_oslo;
                first_oslo = false;
                let dest = f.dest.get_ref();
                let prepared = (!own && self.prepare_ini)
                    .then(|| {
                        self.prepared_ini(
                            svc_name, index, first, host, defaults, dest, &layers, ctx,
                        )
                    })
                    .flatten();
                let file = match prepared {
                    Some(p) => self.render_prepared(&p, host, svc_name, dest, defaults, ctx, diags),
                    None => self.render_ini(&layers, ctx).map(|(ini, origins)| {
                        self.check_options(defaults, dest, &ini, &origins, diags);
                        self.oslo_file(host, svc_name, dest, defaults, &ini)
                    }),
                };
                match file {
                    Ok(file) => file,
                    Err(d) => {
                        diags.push(d);
                        continue;
                    }
                }
            } else {
                continue;
            };
            let (content, kind) = content;
            let container_path = match self.container_path(svc, f, ctx) {
                Ok(c) => c,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            };
            let file = self.manifest_file(host, svc, svc_name, f, content, kind, diags);
            if let Some(c) = container_path {
                mounts.push((file.path.clone(), c));
            }
            rendered.push(file);
        }
        (rendered, mounts)
    }

    /// Whether file `f` of `svc` is written on this host: its `when`, rendered with
    /// `ctx`, must give `true` or `false`; no `when` is true.
    fn file_wanted(&self, svc: &Service, f: &FileSpec, ctx: &Value) -> Result<bool, Diagnostic> {
        let Some(w) = &f.when else {
            return Ok(true);
        };
        match self
            .render_named(&when_name(&svc.file, w.span().start), ctx)?
            .as_str()
        {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Diagnostic::new(
                format!("the `when` of file {} does not give a boolean", f.dest.get_ref()),
                Location::new(&svc.file, Some(w.span())),
            )
            .help("write an expression that is true or false, e.g. `vars.ceph_enabled` (a variable set to true or false, not a string) or `groups.ceph_mon | length > 0`")),
        }
    }

    /// Where file `f` of `svc` is mounted in its container, if it is: its
    /// `container_path`, rendered with `ctx` when it is a template, then checked.
    fn container_path(
        &self,
        svc: &Service,
        f: &FileSpec,
        ctx: &Value,
    ) -> Result<Option<String>, Diagnostic> {
        let Some(c) = &f.container_path else {
            return Ok(None);
        };
        if !is_template(c.get_ref()) {
            return Ok(Some(c.get_ref().clone()));
        }
        let path = self.render_named(&container_path_name(&svc.file, c.span().start), ctx)?;
        if let Err(why) = check_container_path(&path) {
            let shown = if self.cloud.secrets.appears_in(&path) {
                "(a secret value)".to_string()
            } else {
                format!("`{}`", path.escape_debug())
            };
            return Err(Diagnostic::new(
                format!(
                    "the container path of file {} is {shown}, which {why}",
                    f.dest.get_ref()
                ),
                Location::new(&svc.file, Some(c.span())),
            )
            .help("the values in a `container_path` must make an absolute, normalized path of letters, digits and `._+@=-` (it is part of a podman volume `host:container:ro`)"));
        }
        Ok(Some(path))
    }

    /// The file of manifest entry `f` (a service's or a task's, owned by `owner`) with
    /// its rendered content, checked for the secrets it may hold.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn manifest_file(
        &self,
        host: &Host,
        svc: &Service,
        owner: &str,
        f: &FileSpec,
        content: String,
        kind: FileKind,
        diags: &mut Diagnostics,
    ) -> DesiredFile {
        let mut file = DesiredFile {
            path: f.dest.get_ref().clone(),
            secret: false, // check_secrets knows
            content,
            mode: parse_mode(f.mode.get_ref()).unwrap_or(0o640),
            owner: f.owner.clone(),
            group: f.group.clone(),
            service: owner.to_string(),
            kind,
        };
        let mode_at = Location::new(&svc.file, Some(f.mode.span()));
        let dest_at = Location::new(&svc.file, Some(f.dest.span()));
        self.check_secrets(host, svc, &mut file, &dest_at, &mode_at, diags);
        file
    }

    /// A file holds only the secrets its service declares (`secrets = [...]`: a value
    /// copied into `vars` or an override would land where nothing says it is secret),
    /// and a file that holds one gives no access to every user of the host. Sets the
    /// file's `secret` (one scan of its content for both).
    pub(super) fn check_secrets(
        &self,
        host: &Host,
        svc: &Service,
        f: &mut DesiredFile,
        dest_at: &Location,
        mode_at: &Location,
        diags: &mut Diagnostics,
    ) {
        let found = self.cloud.secrets.found_in(&f.content);
        f.secret = !found.is_empty();
        let declared: Vec<&str> = svc
            .manifest
            .secrets
            .iter()
            .map(|s| s.get_ref().as_str())
            .collect();
        let undeclared: Vec<&str> = found
            .iter()
            .copied()
            .filter(|n| !declared.contains(n))
            .collect();
        if !undeclared.is_empty() {
            diags.push(
                Diagnostic::new(
                    format!(
                        "{} of service `{}` on `{}` holds the value of secret `{}`, which the service does not declare",
                        f.path,
                        svc.name,
                        host.name,
                        undeclared.join("`, `")
                    ),
                    dest_at.clone(),
                )
                .help("a secret's value reaches a file only as `secrets.NAME` of a service that lists it in `secrets`: remove it from the variable or override that carries it, or declare it in the service's manifest"),
            );
        }
        if !found.is_empty() && f.mode & 0o007 != 0 {
            diags.push(
                Diagnostic::new(
                    format!(
                        "{} of service `{}` holds secrets, but its mode {:04o} lets every user of the host read it",
                        f.path, svc.name, f.mode
                    ),
                    mode_at.clone(),
                )
                .help("give a file that holds secrets a mode without access for others, e.g. \"0640\" or \"0600\""),
            );
        }
    }

    /// Adds `f` to the host's files, unless another service writes the same path.
    pub(super) fn insert_file(
        &self,
        hs: &mut HostState,
        svc: &Service,
        host: &Host,
        f: DesiredFile,
        diags: &mut Diagnostics,
    ) {
        if let Some(other) = hs.files.get(&f.path) {
            let dest_span = svc
                .manifest
                .files
                .iter()
                .find(|x| x.dest.get_ref() == &f.path)
                .map(|x| x.dest.span());
            diags.push(
                Diagnostic::new(
                    format!(
                        "services `{}` and `{}` both write {} on `{}`",
                        other.service, svc.name, f.path, host.name
                    ),
                    Location::new(&svc.file, dest_span),
                )
                .help("give each service its own destination path"),
            );
            return;
        }
        hs.files.insert(f.path.clone(), f);
    }
}

/// A rendered container path: absolute, normalized, letters, digits and `._+@=-` (no
/// `:` or `,`: it is one field of a podman volume).
fn check_container_path(path: &str) -> Result<(), String> {
    crate::state::check_path_shape(path, "._+@=-").map_err(|e| match e {
        crate::state::PathShape::Char(bad) => format!("holds {bad:?}"),
        crate::state::PathShape::Other(e) => e.into(),
    })
}

/// The directories service `svc_name` needs: its log directory (if it runs a
/// container), the sources of its volumes under the data root, and its declared ones.
fn service_directories(hs: &mut HostState, svc_name: &str, m: &ServiceManifest, plane: Plane) {
    let (log_root, data_root) = (plane.log_root(), plane.data_root());
    if m.image.is_some() {
        hs.directories.push(DesiredDir {
            path: format!("{log_root}/{svc_name}"),
            mode: "0750".into(),
            owner: m.log_owner.clone(),
            group: m.log_owner.clone(),
        });
    }
    // Bind-mount sources under the provisioner's data root must exist before podman
    // starts the container: they are desired directories too.
    // A `U` volume is handed by podman to the container's user (its uid and gid,
    // the service's log owner): so it is desired, or every apply would flip it back.
    for v in &m.volumes {
        let mut parts = v.split(':');
        let src = parts.next().unwrap_or("");
        let chowned = parts
            .nth(1)
            .map(|o| o.split(',').any(|x| x == "U"))
            .unwrap_or(false);
        if src.starts_with(data_root) && src.len() > data_root.len() {
            let owner = if chowned {
                m.log_owner.clone()
            } else {
                "root".into()
            };
            hs.directories.push(DesiredDir {
                path: src.to_string(),
                mode: "0750".into(),
                owner: owner.clone(),
                group: owner,
            });
        }
    }
    for d in &m.directories {
        hs.directories.push(DesiredDir {
            path: d.path.get_ref().clone(),
            mode: format!("{:04o}", parse_mode(d.mode.get_ref()).unwrap_or(0o755)),
            owner: d.owner.clone(),
            group: d.group.clone(),
        });
    }
}

/// One entry per path; an explicitly declared directory, or one a `U` volume hands to a
/// service user, wins over a plain derived one (root, 0750).
fn merge_directories(hs: &mut HostState, log_root: &str) {
    let mut dirs: BTreeMap<String, DesiredDir> = BTreeMap::new();
    for d in hs.directories.drain(..) {
        let derived = d.owner == "root" && d.mode == "0750" && !d.path.starts_with(log_root);
        if derived && dirs.contains_key(&d.path) {
            continue;
        }
        dirs.insert(d.path.clone(), d);
    }
    hs.directories = dirs.into_values().collect();
}
