//! Rendering: the desired state of every host (files with mode and owner, container
//! definitions), computed from the model with minijinja. Pure: no host is contacted,
//! and the same input gives byte-identical output.

pub mod context;
pub mod ini;
pub mod output;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use sha2::{Digest, Sha256};

use crate::catalogue::{parse_mode, Service};
use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::ini_values::{ConfigOverrides, IniScalar, IniSections, IniValue};
use crate::model::{Cloud, Host};
use crate::state::{
    hex, unit_name, ContainerDef, DesiredDir, DesiredFile, DesiredState, FileKind, HostState,
    Plane, UNIT_DIR,
};
use context::{host_value, SharedContext};
use ini::{Rendered, RenderedIni};

/// Where a template registered in the environment comes from, for error locations.
#[derive(Debug, Clone)]
struct Origin {
    file: PathBuf,
    /// Span of the template text inside `file` (an INI value in a TOML file), or `None`
    /// for a whole `.j2` file.
    span: Option<Range<usize>>,
}

/// Renders hosts of one model.
pub struct Renderer<'c> {
    cloud: &'c Cloud,
    env: Environment<'static>,
    origins: BTreeMap<String, Origin>,
    shared: SharedContext,
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

impl<'c> Renderer<'c> {
    /// Compiles every template of the catalogue and every templated INI value; syntax
    /// errors are reported in `diags`.
    pub fn new(cloud: &'c Cloud, diags: &mut Diagnostics) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // Keep template sources for located errors, in release builds too.
        env.set_debug(true);
        // Like Ansible's template module: trailing newlines kept, blocks trimmed.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .trim_blocks(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        let mut r = Renderer {
            cloud,
            env,
            origins: BTreeMap::new(),
            shared: SharedContext::new(cloud),
        };
        for (name, src) in &cloud.catalogue.templates {
            r.add(
                name.clone(),
                src.text.clone(),
                Origin {
                    file: src.file.clone(),
                    span: None,
                },
                diags,
            );
        }
        // Templated INI values, wherever they are written.
        let mut values: Vec<(String, String, Origin)> = Vec::new();
        for d in cloud.catalogue.oslo.values() {
            collect_ini(&d.file, &d.sections, &mut values);
        }
        for s in cloud.catalogue.services.values() {
            for f in &s.manifest.files {
                collect_ini(&s.file, &f.ini, &mut values);
            }
            for v in s.manifest.environment.values() {
                if is_template(v) {
                    values.push((
                        format!("{}#environment:{v}", s.file.display()),
                        v.clone(),
                        Origin {
                            file: s.file.clone(),
                            span: None,
                        },
                    ));
                }
            }
        }
        let inv = &cloud.inventory.path;
        collect_overrides(inv, &cloud.config, &mut values);
        for role in cloud.roles.values() {
            collect_overrides(inv, &role.config, &mut values);
        }
        for h in &cloud.hosts {
            collect_overrides(inv, &h.config, &mut values);
        }
        for (name, text, origin) in values {
            r.add(name, text, origin, diags);
        }
        r
    }

    fn add(&mut self, name: String, text: String, origin: Origin, diags: &mut Diagnostics) {
        if self.origins.contains_key(&name) {
            return;
        }
        if let Err(e) = self.env.add_template_owned(name.clone(), text) {
            diags.push(self.template_error(&e, &origin));
        }
        self.origins.insert(name, origin);
    }

    fn template_error(&self, e: &minijinja::Error, origin: &Origin) -> Diagnostic {
        let snippet = match (e.template_source(), e.range()) {
            (Some(src), Some(r)) => src
                .get(r)
                .filter(|t| !t.contains('\n') && t.len() <= 80)
                .map(|t| format!(" `{}`", t.trim())),
            _ => None,
        };
        let detail = match (e.kind(), snippet) {
            (minijinja::ErrorKind::UndefinedError, Some(snippet)) => snippet,
            _ => e.detail().map(|d| format!(": {d}")).unwrap_or_default(),
        };
        let (kind, help) = match e.kind() {
            minijinja::ErrorKind::UndefinedError => (
                "undefined variable",
                "templates are strict: use a variable from the context (docs/catalogue.md), add a default in templates/_common/vars.toml, or declare the secret in the service's `secrets`",
            ),
            minijinja::ErrorKind::SyntaxError => ("template syntax error", "fix the minijinja (Jinja2) syntax at this point"),
            _ => ("template error", "fix the template at this point"),
        };
        // A span inside the template source, shifted to the file.
        let span = match (&origin.span, e.range()) {
            (None, Some(r)) => Some(r),
            (Some(s), Some(r)) => Some(s.start + 1 + r.start..s.start + 1 + r.end),
            (Some(s), None) => Some(s.clone()),
            (None, None) => e.line().and_then(|line| {
                let src = self
                    .cloud
                    .catalogue
                    .templates
                    .values()
                    .find(|t| t.file == origin.file)?;
                let offset: usize = src
                    .text
                    .split_inclusive('\n')
                    .take(line.saturating_sub(1))
                    .map(str::len)
                    .sum();
                Some(offset..offset)
            }),
        };
        Diagnostic::new(format!("{kind}{detail}"), Location::new(&origin.file, span)).help(help)
    }

    fn render_named(&self, name: &str, ctx: &Value) -> Result<String, Diagnostic> {
        let origin = self.origins.get(name).cloned().unwrap_or(Origin {
            file: PathBuf::from(name),
            span: None,
        });
        let t = self
            .env
            .get_template(name)
            .map_err(|e| self.template_error(&e, &origin))?;
        t.render(ctx).map_err(|e| {
            let mut d = self.template_error(&e, &origin);
            // The innermost template of an include may differ from the one called.
            if let Some(inner) = e
                .name()
                .filter(|n| *n != name)
                .and_then(|n| self.origins.get(n))
            {
                d = self.template_error(&e, inner);
            }
            d
        })
    }

    fn render_str(&self, name: &str, text: &str, ctx: &Value) -> Result<String, Diagnostic> {
        if is_template(text) {
            self.render_named(name, ctx)
        } else {
            Ok(text.to_string())
        }
    }

    /// Renders the whole desired state (the undercloud's services and every overcloud
    /// host); every problem of every host is in `diags`.
    pub fn render_all(&self, diags: &mut Diagnostics) -> DesiredState {
        let mut state = DesiredState::default();
        let uc = self.render_undercloud(diags);
        state.hosts.insert(uc.name.clone(), uc);
        for host in &self.cloud.hosts {
            let hs = self.render_host(host, diags);
            state.hosts.insert(host.name.clone(), hs);
        }
        state
    }

    /// Renders one overcloud host.
    pub fn render_host(&self, host: &Host, diags: &mut Diagnostics) -> HostState {
        self.render_services(
            host,
            &self.cloud.catalogue.services,
            Plane::Overcloud,
            diags,
        )
    }

    /// Renders the undercloud's own services (`templates/undercloud/`). Their templates
    /// see the undercloud as `host` (role `undercloud`, its provisioning address as its
    /// only network), and every overcloud node in `nodes`.
    pub fn render_undercloud(&self, diags: &mut Diagnostics) -> HostState {
        self.render_services(
            &self.cloud.undercloud_host(),
            &self.cloud.catalogue.undercloud_services,
            Plane::Undercloud,
            diags,
        )
    }

    /// Renders `host.services`, found in `catalogue`, with `plane`'s paths.
    fn render_services(
        &self,
        host: &Host,
        catalogue: &BTreeMap<String, Service>,
        plane: Plane,
        diags: &mut Diagnostics,
    ) -> HostState {
        let cloud = self.cloud;
        let (log_root, data_root) = (plane.log_root(), plane.data_root());
        let mut hs = HostState {
            name: host.name.clone(),
            role: host.role.clone(),
            plane,
            ..Default::default()
        };
        let host_v = host_value(cloud, host);
        let vars_v = crate::render::context::ser(&host.vars);
        let role = cloud.roles.get(&host.role);
        let mut pending: Vec<(&Service, Value)> = Vec::new();
        for svc_name in &host.services {
            let Some(svc) = catalogue.get(svc_name) else {
                continue;
            };
            let m = &svc.manifest;
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
                name => svc_name.clone(),
                project => m.project.clone().unwrap_or_else(|| svc_name.clone()),
                log_dir => m.log_dir.clone(),
                host_log_dir => format!("{log_root}/{svc_name}"),
                log_root => log_root,
                config_dir => format!("{}/{svc_name}", plane.config_root()),
            };
            let ctx = minijinja::context! {
                cloud => self.shared.cloud.clone(),
                host => host_v.clone(),
                service => service_v,
                networks => self.shared.networks.clone(),
                vip => self.shared.vip.clone(),
                groups => self.shared.groups.clone(),
                undercloud => self.shared.undercloud.clone(),
                nodes => self.shared.nodes.clone(),
                vars => vars_v.clone(),
                secrets => crate::render::context::ser(&secrets),
            };
            let mut first_oslo = true;
            let mut rendered: Vec<DesiredFile> = Vec::new();
            for f in &m.files {
                let content = if let Some(src) = &f.src {
                    let Some(name) = cloud.catalogue.template_name(&svc.dir, src.get_ref()) else {
                        continue;
                    };
                    match self.render_named(&name, &ctx) {
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
                    let levels: [Option<&ConfigOverrides>; 3] = [
                        Some(&cloud.config),
                        role.map(|r| &r.config),
                        Some(&host.config),
                    ];
                    for level in levels.into_iter().flatten() {
                        if let Some(l) = level.get(id.get_ref()) {
                            layers.push((inv, l));
                        }
                        if first_oslo && svc_name != id.get_ref() {
                            if let Some(l) = level.get(svc_name) {
                                layers.push((inv, l));
                            }
                        }
                    }
                    first_oslo = false;
                    match self.render_ini(&layers, &ctx) {
                        Ok(ini) => {
                            // The catalogue file by its path inside the catalogue: the
                            // same wherever the repository is checked out.
                            let source = defaults
                                .file
                                .strip_prefix(&cloud.catalogue.templates_dir)
                                .map(|p| Path::new("templates").join(p))
                                .unwrap_or_else(|_| defaults.file.clone());
                            let header = format!(
                                "{} for {svc_name} on {}. Rendered by provision from {}; do not edit on the host.",
                                f.dest.get_ref().rsplit('/').next().unwrap_or(""),
                                host.name,
                                source.display()
                            );
                            (
                                ini::write(&header, &ini),
                                FileKind::Oslo {
                                    id: id.get_ref().clone(),
                                    namespaces: defaults.namespaces.clone(),
                                },
                            )
                        }
                        Err(d) => {
                            diags.push(d);
                            continue;
                        }
                    }
                } else {
                    continue;
                };
                let (content, kind) = content;
                rendered.push(DesiredFile {
                    path: f.dest.get_ref().clone(),
                    secret: cloud.secrets.appears_in(&content),
                    content,
                    mode: parse_mode(f.mode.get_ref()).unwrap_or(0o640),
                    owner: f.owner.clone(),
                    group: f.group.clone(),
                    service: svc_name.clone(),
                    kind,
                });
            }
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
            for f in rendered {
                self.insert_file(&mut hs, svc, host, f, diags);
            }
            if m.image.is_some() {
                pending.push((svc, ctx));
            }
        }
        // Containers last: their config hash covers files of other services they share.
        for (svc, ctx) in pending {
            let m = &svc.manifest;
            let mut used: Vec<&DesiredFile> = hs
                .files
                .values()
                .filter(|f| f.service == svc.name)
                .collect();
            let mut shared_mounts = Vec::new();
            for sf in &m.shared_files {
                match hs.files.get(sf.dest.get_ref()) {
                    Some(f) if &f.service == sf.from.get_ref() => {
                        used.push(f);
                        shared_mounts.push(format!("{}:{}:ro", sf.dest.get_ref(), sf.container_path));
                    }
                    _ => diags.push(
                        Diagnostic::new(
                            format!(
                                "service `{}` on `{}` mounts {} of service `{}`, which does not run there",
                                svc.name,
                                host.name,
                                sf.dest.get_ref(),
                                sf.from.get_ref()
                            ),
                            Location::new(&svc.file, Some(sf.dest.span())),
                        )
                        .help(format!("add `{}` to role `{}` or remove the shared file", sf.from.get_ref(), host.role)),
                    ),
                }
            }
            let container = self.container(svc, plane, &used, shared_mounts, &ctx, diags);
            let def_json = serde_json::to_string_pretty(&container).unwrap_or_default() + "\n";
            let def_file = DesiredFile {
                path: format!("{}/{}.json", plane.container_defs(), svc.name),
                secret: cloud.secrets.appears_in(&def_json),
                content: def_json,
                mode: 0o600,
                owner: "root".into(),
                group: "root".into(),
                service: svc.name.clone(),
                kind: FileKind::Container {
                    container: svc.name.clone(),
                },
            };
            self.insert_file(&mut hs, svc, host, def_file, diags);
            hs.containers.insert(container.name.clone(), container);
        }
        if cloud.container_units == crate::inventory::spec::ContainerUnits::Systemd {
            let units: Vec<DesiredFile> = hs
                .containers
                .values()
                .map(|c| container_unit(c, &hs.containers, plane))
                .collect();
            for u in units {
                hs.files.insert(u.path.clone(), u);
            }
        }
        // One entry per path; an explicitly declared directory, or one a `U` volume hands
        // to a service user, wins over a plain derived one (root, 0750).
        let mut dirs: BTreeMap<String, DesiredDir> = BTreeMap::new();
        for d in hs.directories.drain(..) {
            let derived = d.owner == "root" && d.mode == "0750" && !d.path.starts_with(log_root);
            if derived && dirs.contains_key(&d.path) {
                continue;
            }
            dirs.insert(d.path.clone(), d);
        }
        hs.directories = dirs.into_values().collect();
        hs
    }

    fn insert_file(
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

    fn render_ini(
        &self,
        layers: &[(&Path, &IniSections)],
        ctx: &Value,
    ) -> Result<RenderedIni, Diagnostic> {
        // Merge: later layers win, option by option.
        let mut merged: BTreeMap<&str, BTreeMap<&str, (&IniValue, String)>> = BTreeMap::new();
        for (file, layer) in layers {
            for (section, options) in layer.iter() {
                let sec = merged.entry(section.as_str()).or_default();
                for (key, value) in options {
                    sec.insert(
                        key.as_str(),
                        (
                            value.get_ref(),
                            value_name(file, section, key, value.span().start),
                        ),
                    );
                }
            }
        }
        let mut out = RenderedIni::new();
        for (section, options) in merged {
            let sec = out.entry(section.to_string()).or_default();
            for (key, (value, name)) in options {
                let rendered = match value {
                    IniValue::String(s) => {
                        let v = self.render_str(&name, s, ctx)?;
                        if v.trim().is_empty() {
                            continue;
                        }
                        Rendered::One(v.trim().to_string())
                    }
                    IniValue::List(items) => {
                        let mut parts = Vec::new();
                        for (i, item) in items.iter().enumerate() {
                            match item {
                                IniScalar::String(s) => {
                                    let v = self.render_str(&format!("{name}[{i}]"), s, ctx)?;
                                    if !v.trim().is_empty() {
                                        parts.push(v.trim().to_string());
                                    }
                                }
                                other => parts.push(ini::scalar(other)),
                            }
                        }
                        Rendered::One(parts.join(","))
                    }
                    IniValue::Multi { multi } => {
                        let mut parts = Vec::new();
                        for (i, s) in multi.iter().enumerate() {
                            let v = self.render_str(&format!("{name}[{i}]"), s, ctx)?;
                            if !v.trim().is_empty() {
                                parts.push(v.trim().to_string());
                            }
                        }
                        Rendered::Many(parts)
                    }
                    other => match ini::plain(other) {
                        Some(r) => r,
                        None => continue,
                    },
                };
                sec.insert(key.to_string(), rendered);
            }
        }
        Ok(out)
    }

    fn container(
        &self,
        svc: &Service,
        plane: Plane,
        files: &[&DesiredFile],
        shared_mounts: Vec<String>,
        ctx: &Value,
        diags: &mut Diagnostics,
    ) -> ContainerDef {
        let cloud = self.cloud;
        let m = &svc.manifest;
        let mut environment = BTreeMap::new();
        for (k, v) in &m.environment {
            let name = format!("{}#environment:{v}", svc.file.display());
            match self.render_str(&name, v, ctx) {
                Ok(r) => {
                    environment.insert(k.clone(), r);
                }
                Err(d) => diags.push(d),
            }
        }
        let mut volumes: Vec<String> = Vec::new();
        let mut mounted: Vec<(&String, &String)> = m
            .files
            .iter()
            .filter_map(|f| f.container_path.as_ref().map(|c| (f.dest.get_ref(), c)))
            .collect();
        mounted.sort();
        for (dest, cpath) in mounted {
            volumes.push(format!("{dest}:{cpath}:ro"));
        }
        volumes.extend(shared_mounts);
        volumes.push(format!(
            "{}/{}:{}:rw",
            plane.log_root(),
            svc.name,
            m.log_dir
        ));
        volumes.extend(m.volumes.iter().cloned());
        let mut def = ContainerDef {
            name: svc.name.clone(),
            service: svc.name.clone(),
            step: *m.step.get_ref(),
            image: format!(
                "{}/{}:{}",
                cloud.registry.trim_end_matches('/'),
                m.image
                    .as_ref()
                    .map(|i| i.get_ref().as_str())
                    .unwrap_or_default(),
                cloud.tag
            ),
            command: m.command.clone(),
            user: m.user.clone(),
            network: m.network,
            privileged: m.privileged,
            pid: m.pid.clone(),
            cgroupns: m.cgroupns.clone(),
            restart: m.restart.clone(),
            environment,
            volumes,
            healthcheck: m.healthcheck.clone(),
            labels: BTreeMap::new(),
        };
        // The lab runs a stand-in in every container (its images hold busybox only).
        if let Some(lab) = &cloud.inventory.lab {
            if !lab.stand_in_command.is_empty() {
                def.command = lab.stand_in_command.clone();
            }
            if let Some(hc) = def.healthcheck.as_mut() {
                if let Some(test) = lab
                    .healthchecks
                    .get(&svc.name)
                    .or(lab.stand_in_healthcheck.as_ref())
                {
                    hc.test = test.clone();
                }
            }
        }
        // The config hash covers the definition and every file the container uses.
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&def).unwrap_or_default());
        let mut sorted: Vec<&&DesiredFile> = files.iter().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        for f in sorted {
            h.update(
                format!(
                    "\n{} {:o} {}:{} {}",
                    f.path,
                    f.mode,
                    f.owner,
                    f.group,
                    f.sha256()
                )
                .as_bytes(),
            );
        }
        def.labels.insert("managed_by".into(), "provision".into());
        def.labels
            .insert("provision.service".into(), svc.name.clone());
        def.labels
            .insert("provision.step".into(), def.step.to_string());
        def.labels
            .insert("provision.config_hash".into(), hex(&h.finalize()));
        def
    }
}

/// The systemd unit that starts `c` at boot, after the containers of the earlier deploy
/// steps on the same host (TripleO's `tripleo_<service>.service` do the same). podman
/// created the container already; the unit starts and stops it; while conmon lives,
/// podman's restart policy restarts it after a crash.
fn container_unit(
    c: &ContainerDef,
    all: &BTreeMap<String, ContainerDef>,
    plane: Plane,
) -> DesiredFile {
    let after: Vec<String> = all
        .values()
        .filter(|o| o.step < c.step)
        .map(|o| unit_name(&o.name))
        .collect();
    let after = if after.is_empty() {
        String::new()
    } else {
        format!("After={}\n", after.join(" "))
    };
    let content = format!(
        "# Starts the {name} container (deploy step {step}) at boot. Written by provision;\n\
         # the container itself is created by `provision apply` from\n\
         # {defs}/{name}.json.\n\
         [Unit]\n\
         Description=provision container {name} (deploy step {step})\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         {after}\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/usr/bin/podman start {name}\n\
         ExecStop=/usr/bin/podman stop --time 10 {name}\n\
         TimeoutStartSec=300\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        name = c.name,
        step = c.step,
        defs = plane.container_defs(),
    );
    DesiredFile {
        path: format!("{UNIT_DIR}/{}", unit_name(&c.name)),
        content,
        mode: 0o644,
        owner: "root".into(),
        group: "root".into(),
        service: c.service.clone(),
        kind: FileKind::Unit {
            container: c.name.clone(),
        },
        secret: false,
    }
}

fn collect_ini(file: &Path, sections: &IniSections, out: &mut Vec<(String, String, Origin)>) {
    for (section, options) in sections {
        for (key, value) in options {
            let base = value_name(file, section, key, value.span().start);
            let origin = Origin {
                file: file.to_path_buf(),
                span: Some(value.span()),
            };
            match value.get_ref() {
                IniValue::String(s) if is_template(s) => out.push((base, s.clone(), origin)),
                IniValue::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let IniScalar::String(s) = item {
                            if is_template(s) {
                                out.push((format!("{base}[{i}]"), s.clone(), origin.clone()));
                            }
                        }
                    }
                }
                IniValue::Multi { multi } => {
                    for (i, s) in multi.iter().enumerate() {
                        if is_template(s) {
                            out.push((format!("{base}[{i}]"), s.clone(), origin.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn collect_overrides(
    file: &Path,
    config: &ConfigOverrides,
    out: &mut Vec<(String, String, Origin)>,
) {
    for sections in config.values() {
        collect_ini(file, sections, out);
    }
}

/// The environment name of a templated INI value.
fn value_name(file: &Path, section: &str, key: &str, offset: usize) -> String {
    format!("{}#[{section}] {key}@{offset}", file.display())
}
