//! The catalogue: role definitions (`roles/`) and the service catalogue (`templates/`),
//! loaded with every error located. See docs/catalogue.md.

pub mod options;
pub mod role;
pub mod service;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::de::DeValue;
use toml::Spanned;

use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::ini_values::{IniSections, IniValue};
use crate::source::{normalize, SourceMap, SourceTree};
use crate::tomlfile;
pub use role::{Requirements, RoleDef};
pub use service::{
    DatabaseSpec, DirSpec, FileSpec, Healthcheck, KeysSpec, KeystoneSpec, NetworkMode, RunOn,
    ServiceManifest, SharedFile, TaskSpec, TOOLBOX_IMAGE,
};

/// Shared folder of the catalogue.
pub const COMMON_DIR: &str = "_common";
/// Folder of the undercloud's own services (`templates/undercloud/<service>/`).
pub const UNDERCLOUD_DIR: &str = "undercloud";

/// A role definition and the file it came from.
#[derive(Debug, Clone)]
pub struct Role {
    pub file: PathBuf,
    pub def: RoleDef,
}

/// A service of the catalogue.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    /// Its folder, relative to the templates folder: `<service>`, or
    /// `undercloud/<service>` for the undercloud's own.
    pub dir: String,
    /// `templates/<dir>/service.toml`
    pub file: PathBuf,
    pub manifest: ServiceManifest,
}

/// Shared oslo.config defaults of one INI file kind (`_common/oslo/<id>.toml`).
#[derive(Debug, Clone)]
pub struct OsloDefaults {
    pub id: String,
    pub file: PathBuf,
    pub namespaces: Vec<String>,
    pub sections: IniSections,
}

/// A template's source.
#[derive(Debug, Clone)]
pub struct TemplateSource {
    pub file: PathBuf,
    pub text: String,
}

/// Everything under `roles/` and `templates/`.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub roles_dir: PathBuf,
    pub templates_dir: PathBuf,
    pub roles: BTreeMap<String, Role>,
    /// The overcloud's services (`templates/<service>/`).
    pub services: BTreeMap<String, Service>,
    /// The undercloud's own services (`templates/undercloud/<service>/`): DHCP/PXE and
    /// DNS, the log receiver, the container-registry settings.
    pub undercloud_services: BTreeMap<String, Service>,
    pub oslo: BTreeMap<String, OsloDefaults>,
    /// Catalogue defaults of template variables (`_common/vars.toml`).
    pub vars: toml::Table,
    pub vars_file: PathBuf,
    /// Every `.j2` file, by its path relative to the templates folder.
    pub templates: BTreeMap<String, TemplateSource>,
    /// The option catalogue every rendered oslo.config file is checked against
    /// (`_common/oslo/schema/<release>.json`); none when the catalogue has no
    /// `schema/release.toml` and no release was asked for.
    pub options: Option<Arc<options::OptionSchema>>,
}

impl Catalogue {
    /// Loads the roles named in `role_names` and the whole service catalogue, with the
    /// option catalogue of `release` (by default the one `schema/release.toml` names).
    pub fn load(
        roles_dir: &Path,
        templates_dir: &Path,
        role_names: &[String],
        release: Option<&str>,
        tree: &dyn SourceTree,
        sources: &SourceMap,
        diags: &mut Diagnostics,
    ) -> Catalogue {
        let mut cat = Catalogue {
            roles_dir: normalize(roles_dir),
            templates_dir: normalize(templates_dir),
            ..Default::default()
        };
        for name in role_names {
            let file = cat.roles_dir.join(format!("{name}.toml"));
            if let Some(text) = read(&file, tree, sources) {
                if let Some(doc) = tomlfile::parse(&file, &text, diags) {
                    if let Some(def) = tomlfile::de_table::<RoleDef>(&file, &doc, diags) {
                        if def.name.get_ref() != name {
                            diags.push(
                                Diagnostic::new(
                                    format!(
                                        "role file {name}.toml defines role `{}`",
                                        def.name.get_ref()
                                    ),
                                    Location::new(&file, Some(def.name.span())),
                                )
                                .help(format!("set name = \"{name}\" or rename the file")),
                            );
                        }
                        cat.roles.insert(
                            name.clone(),
                            Role {
                                file: file.clone(),
                                def,
                            },
                        );
                    }
                }
            }
        }
        cat.load_templates(tree, sources, diags);
        let release = match release {
            Some(r) => Some(r.to_string()),
            None => {
                options::OptionSchema::catalogue_release(&cat.templates_dir, tree, sources, diags)
            }
        };
        cat.options = release
            .and_then(|r| options::OptionSchema::load(&cat.templates_dir, &r, tree, diags))
            .map(Arc::new);
        cat
    }

    /// The role files present in the roles folder, for suggestions.
    pub fn available_roles(&self, tree: &dyn SourceTree) -> Vec<String> {
        tree.list(&self.roles_dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|f| f.strip_suffix(".toml").map(str::to_string))
            .collect()
    }

    fn load_templates(
        &mut self,
        tree: &dyn SourceTree,
        sources: &SourceMap,
        diags: &mut Diagnostics,
    ) {
        let root = self.templates_dir.clone();
        let entries = match tree.list(&root) {
            Ok(e) => e,
            Err(e) => {
                diags.push(
                    Diagnostic::new(format!("cannot read the service catalogue: {e}"), Location::file(&root))
                        .help("set `cloud.templates` in the inventory to the catalogue folder (relative to the inventory file)"),
                );
                return;
            }
        };
        // Every .j2 file, at any depth, so templates can include each other by name.
        let mut stack = vec![String::new()];
        let mut guard = 0;
        while let Some(rel) = stack.pop() {
            guard += 1;
            if guard > 10_000 {
                break;
            }
            let dir = if rel.is_empty() {
                root.clone()
            } else {
                root.join(&rel)
            };
            for name in tree.list(&dir).unwrap_or_default() {
                let child_rel = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let child = root.join(&child_rel);
                if tree.exists(&child) {
                    if name.ends_with(".j2") {
                        if let Some(text) = read(&child, tree, sources) {
                            self.templates
                                .insert(child_rel, TemplateSource { file: child, text });
                        }
                    }
                } else {
                    stack.push(child_rel);
                }
            }
        }
        // Shared oslo defaults and variables.
        let oslo_dir = root.join(COMMON_DIR).join("oslo");
        for name in tree.list(&oslo_dir).unwrap_or_default() {
            if let Some(id) = name.strip_suffix(".toml") {
                let file = oslo_dir.join(&name);
                if let Some(d) = load_oslo(id, &file, tree, sources, diags) {
                    self.oslo.insert(id.to_string(), d);
                }
            }
        }
        self.vars_file = root.join(COMMON_DIR).join("vars.toml");
        if tree.exists(&self.vars_file) {
            if let Some(text) = read(&self.vars_file, tree, sources) {
                if let Some(doc) = tomlfile::parse(&self.vars_file, &text, diags) {
                    self.vars = tomlfile::de_table::<toml::Table>(&self.vars_file, &doc, diags)
                        .unwrap_or_default();
                }
            }
        }
        // One folder per service; the undercloud's in their own folder.
        let undercloud_root = root.join(UNDERCLOUD_DIR);
        let undercloud_entries = tree.list(&undercloud_root).unwrap_or_default();
        for (under, names) in [(None, entries), (Some(UNDERCLOUD_DIR), undercloud_entries)] {
            for name in names {
                if name.starts_with('_') || name.starts_with('.') {
                    continue;
                }
                if under.is_none() && name == UNDERCLOUD_DIR {
                    continue;
                }
                let dir = match under {
                    Some(u) => format!("{u}/{name}"),
                    None => name.clone(),
                };
                if let Some(svc) = self.load_service(&name, &dir, tree, sources, diags) {
                    match under {
                        Some(_) => self.undercloud_services.insert(name, svc),
                        None => self.services.insert(name, svc),
                    };
                }
            }
        }
        // Files shared between services must exist where they are said to.
        for svc in self.services.values() {
            for sf in &svc.manifest.shared_files {
                let declared = self.services.get(sf.from.get_ref()).map(|other| {
                    other
                        .manifest
                        .files
                        .iter()
                        .any(|f| f.dest.get_ref() == sf.dest.get_ref())
                });
                let problem = match declared {
                    None => Some(format!(
                        "service `{}` (shared file source) does not exist",
                        sf.from.get_ref()
                    )),
                    Some(false) => Some(format!(
                        "service `{}` renders no file {}",
                        sf.from.get_ref(),
                        sf.dest.get_ref()
                    )),
                    Some(true) => None,
                };
                if let Some(message) = problem {
                    diags.push(
                        Diagnostic::new(message, Location::new(&svc.file, Some(sf.dest.span())))
                            .help("name a service of the catalogue and one of its `[[files]]` destinations"),
                    );
                }
            }
            // A task that depends on the hosts of a service names one that exists.
            for t in &svc.manifest.tasks {
                for s in &t.rerun_on_hosts_of {
                    if !self.services.contains_key(s.get_ref()) {
                        diags.push(
                            Diagnostic::new(
                                format!(
                                    "task `{}`: rerun_on_hosts_of names service `{}`, which does not exist",
                                    t.name.get_ref(),
                                    s.get_ref()
                                ),
                                Location::new(&svc.file, Some(s.span())),
                            )
                            .help("name an overcloud service of the catalogue (templates/<service>/)"),
                        );
                    }
                }
            }
        }
    }

    /// Loads `templates/<dir>/service.toml`, if there is one.
    fn load_service(
        &self,
        name: &str,
        dir: &str,
        tree: &dyn SourceTree,
        sources: &SourceMap,
        diags: &mut Diagnostics,
    ) -> Option<Service> {
        let file = self.templates_dir.join(dir).join("service.toml");
        if !tree.exists(&file) {
            return None;
        }
        let text = read(&file, tree, sources)?;
        let doc = tomlfile::parse(&file, &text, diags)?;
        let mut manifest = tomlfile::de_table::<ServiceManifest>(&file, &doc, diags)?;
        manifest.expand_bootstrap();
        for t in &mut manifest.tasks {
            for f in &mut t.files {
                let dest = f.dest.get_ref().replace("{service}", name);
                f.dest = Spanned::new(f.dest.span(), dest);
            }
        }
        self.check_manifest(dir, &file, &manifest, diags);
        Some(Service {
            name: name.to_string(),
            dir: dir.to_string(),
            file,
            manifest,
        })
    }

    fn check_manifest(
        &self,
        name: &str,
        file: &Path,
        m: &ServiceManifest,
        diags: &mut Diagnostics,
    ) {
        match &m.image {
            Some(image) => {
                if m.command.is_empty() || m.log_dir.is_empty() {
                    diags.push(
                        Diagnostic::new(
                            "a service with an image needs `command` and `log_dir`",
                            Location::new(file, Some(image.span())),
                        )
                        .help("add `command = [...]` (what the container runs) and `log_dir = \"/var/log/<service>\"` (its log directory inside the container)"),
                    );
                }
            }
            None => {
                let container_keys = [
                    ("command", !m.command.is_empty()),
                    ("log_dir", !m.log_dir.is_empty()),
                    ("volumes", !m.volumes.is_empty()),
                    ("environment", !m.environment.is_empty()),
                    ("healthcheck", m.healthcheck.is_some()),
                    ("shared_files", !m.shared_files.is_empty()),
                ];
                let set: Vec<&str> = container_keys
                    .iter()
                    .filter(|(_, on)| *on)
                    .map(|(k, _)| *k)
                    .collect();
                if !set.is_empty() {
                    diags.push(
                        Diagnostic::new(
                            format!("{} set, but the service has no `image`: no container would run", set.join(", ")),
                            Location::file(file),
                        )
                        .help("add `image = \"<name>\"`, or remove the container settings from this files-only service"),
                    );
                }
                if let Some(f) = m.files.iter().find(|f| f.container_path.is_some()) {
                    diags.push(
                        Diagnostic::new(
                            format!(
                                "file {} has a `container_path`, but the service has no `image`",
                                f.dest.get_ref()
                            ),
                            Location::new(file, Some(f.dest.span())),
                        )
                        .help("remove `container_path`, or give the service an image"),
                    );
                }
            }
        }
        let step = *m.step.get_ref();
        if !(1..=6).contains(&step) {
            diags.push(
                Diagnostic::new(
                    format!("deploy step {step} is out of range"),
                    Location::new(file, Some(m.step.span())),
                )
                .help("steps go from 1 to 6, as in TripleO"),
            );
        }
        for d in &m.directories {
            if !d.path.get_ref().starts_with('/') {
                diags.push(
                    Diagnostic::new(
                        format!("directory `{}` is not an absolute path", d.path.get_ref()),
                        Location::new(file, Some(d.path.span())),
                    )
                    .help("write the full path on the host"),
                );
            }
            if parse_mode(d.mode.get_ref()).is_none() {
                diags.push(
                    Diagnostic::new(
                        format!("directory mode `{}` is not an octal mode", d.mode.get_ref()),
                        Location::new(file, Some(d.mode.span())),
                    )
                    .help("write the mode as an octal string, e.g. \"0755\""),
                );
            }
        }
        check_tasks(file, m, diags);
        for f in m
            .files
            .iter()
            .chain(m.tasks.iter().flat_map(|t| t.files.iter()))
        {
            let dest = f.dest.get_ref();
            if !dest.starts_with('/') {
                diags.push(
                    Diagnostic::new(
                        format!("destination `{dest}` is not an absolute path"),
                        Location::new(file, Some(f.dest.span())),
                    )
                    .help("write the full path on the host, e.g. /etc/overcloud/<service>/<file>"),
                );
            }
            if parse_mode(f.mode.get_ref()).is_none() {
                diags.push(
                    Diagnostic::new(
                        format!("file mode `{}` is not an octal mode", f.mode.get_ref()),
                        Location::new(file, Some(f.mode.span())),
                    )
                    .help("write the mode as an octal string, e.g. \"0640\""),
                );
            }
            match (&f.src, &f.oslo) {
                (Some(src), None) => {
                    let rel = self.template_name(name, src.get_ref());
                    if rel.as_ref().map(|r| !self.templates.contains_key(r)).unwrap_or(true) {
                        diags.push(
                            Diagnostic::new(
                                format!("template `{}` of service `{name}` does not exist", src.get_ref()),
                                Location::new(file, Some(src.span())),
                            )
                            .help(format!("create it under {} (a .j2 file, relative to the service folder)", self.templates_dir.join(name).display())),
                        );
                    }
                }
                (None, Some(id)) => {
                    if !self.oslo.contains_key(id.get_ref()) {
                        diags.push(
                            Diagnostic::new(
                                format!("no shared oslo.config defaults `{}`", id.get_ref()),
                                Location::new(file, Some(id.span())),
                            )
                            .help(format!(
                                "create {} or use one of: {}",
                                self.templates_dir.join(COMMON_DIR).join("oslo").join(format!("{}.toml", id.get_ref())).display(),
                                self.oslo.keys().cloned().collect::<Vec<_>>().join(", ")
                            )),
                        );
                    }
                }
                _ => diags.push(
                    Diagnostic::new(
                        format!("file `{dest}` needs exactly one of `src` (a template) or `oslo` (an oslo.config INI file)"),
                        Location::new(file, Some(f.dest.span())),
                    )
                    .help("add `src = \"<file>.j2\"` or `oslo = \"<id>\"`"),
                ),
            }
        }
    }

    /// The template name (relative to the templates folder) of a `src` of the service
    /// in folder `dir` ([`Service::dir`]).
    pub fn template_name(&self, dir: &str, src: &str) -> Option<String> {
        let p = normalize(&Path::new(dir).join(src));
        let s = p.to_str()?.to_string();
        if s.starts_with("..") || p.is_absolute() {
            None
        } else {
            Some(s)
        }
    }
}

/// A service's `[[tasks]]`: a unique identifier each, a command, an image (the
/// service's or its own), files that are templates mounted into it.
fn check_tasks(file: &Path, m: &ServiceManifest, diags: &mut Diagnostics) {
    let mut seen = std::collections::BTreeSet::new();
    for t in &m.tasks {
        let at = Location::new(file, Some(t.name.span()));
        let name = t.name.get_ref();
        let rule = crate::names::NameRule::Identifier;
        if let Some(d) = crate::names::check("task name", name, rule, file, Some(t.name.span())) {
            diags.push(d);
        }
        if !seen.insert(name.clone()) {
            diags.push(
                Diagnostic::new(format!("two tasks named `{name}`"), at.clone())
                    .help("give each task of the service its own name"),
            );
        }
        if t.command.is_empty() {
            diags.push(
                Diagnostic::new(format!("task `{name}` has no `command`"), at.clone())
                    .help("add `command = [...]`: what its container runs to completion"),
            );
        }
        if t.image.is_none() && m.image.is_none() {
            diags.push(
                Diagnostic::new(
                    format!("task `{name}` has no image, and the service has none"),
                    at.clone(),
                )
                .help("add `image = \"<name>\"` to the task"),
            );
        }
        for f in &t.files {
            if f.oslo.is_some() || f.container_path.is_none() {
                diags.push(
                    Diagnostic::new(
                        format!("file {} of task `{name}` must be a template (`src`) with a `container_path`", f.dest.get_ref()),
                        Location::new(file, Some(f.dest.span())),
                    )
                    .help("a task's own files are templates mounted into its container"),
                );
            }
            if let Some(w) = &f.when {
                diags.push(
                    Diagnostic::new(
                        format!("file {} of task `{name}` has a `when`", f.dest.get_ref()),
                        Location::new(file, Some(w.span())),
                    )
                    .help("`when` is for a service's `[[files]]`; a task's own files are written whenever the task is"),
                );
            }
            if let Some(c) = f
                .container_path
                .as_ref()
                .filter(|c| c.get_ref().contains("{{") || c.get_ref().contains("{%"))
            {
                diags.push(
                    Diagnostic::new(
                        format!(
                            "the `container_path` of file {} of task `{name}` is a template",
                            f.dest.get_ref()
                        ),
                        Location::new(file, Some(c.span())),
                    )
                    .help("a task's files are mounted at fixed paths: write the path itself"),
                );
            }
        }
    }
}

fn read(file: &Path, tree: &dyn SourceTree, sources: &SourceMap) -> Option<String> {
    let text = tree.read(file).ok()?;
    sources.add(file, &text, false);
    Some(text)
}

/// Parses an octal mode string.
pub fn parse_mode(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 4 {
        return None;
    }
    u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o7777)
}

fn load_oslo(
    id: &str,
    file: &Path,
    tree: &dyn SourceTree,
    sources: &SourceMap,
    diags: &mut Diagnostics,
) -> Option<OsloDefaults> {
    let text = match tree.read(file) {
        Ok(t) => t,
        Err(e) => {
            diags.push(Diagnostic::new(
                format!("cannot read: {e}"),
                Location::file(file),
            ));
            return None;
        }
    };
    sources.add(file, &text, false);
    let doc = tomlfile::parse(file, &text, diags)?;
    let mut out = OsloDefaults {
        id: id.into(),
        file: file.to_path_buf(),
        namespaces: Vec::new(),
        sections: IniSections::new(),
    };
    for (key, value) in doc.get_ref().iter() {
        let k = key.get_ref().to_string();
        if k == "namespaces" {
            out.namespaces = tomlfile::de::<Vec<String>>(file, value, diags).unwrap_or_default();
        } else if matches!(value.get_ref(), DeValue::Table(_)) {
            if let Some(section) =
                tomlfile::de::<BTreeMap<String, toml::Spanned<IniValue>>>(file, value, diags)
            {
                out.sections.insert(k, section);
            }
        } else {
            diags.push(
                Diagnostic::new(
                    format!("`{k}` is neither `namespaces` nor a section"),
                    Location::new(file, Some(key.span())),
                )
                .help("write options under a section header such as [DEFAULT]"),
            );
        }
    }
    if out.namespaces.is_empty() {
        diags.push(
            Diagnostic::new(format!("oslo defaults `{id}` list no namespaces"), Location::new(file, Some(0..0)))
                .help("add `namespaces = [...]` from the project's oslo-config-generator configuration, so CI can validate the rendered file"),
        );
    }
    Some(out)
}
