//! A service's oslo.config INI file: its layers (the shared defaults, the service's
//! `ini`, then the inventory's overrides: the cloud's, the role's, the node's) merged
//! option by option, its templated values rendered, and the file written by [`ini`].

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::Value;

use std::path::PathBuf;
use std::sync::Arc;

use super::ini::{self, IniTemplate, Rendered, RenderedIni};
use super::option_check::{Findings, Origins};
use super::templates::{is_template, value_name};
use super::Renderer;
use crate::catalogue::OsloDefaults;
use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::ini_values::{ConfigOverrides, IniScalar, IniSections, IniValue};
use crate::model::Host;
use crate::state::FileKind;

/// One option of the merged layers: its value and where it is written (its template
/// name is made only for a templated value).
struct Merged<'a> {
    value: &'a IniValue,
    file: &'a Path,
    span: std::ops::Range<usize>,
}

impl Renderer<'_> {
    /// The inventory's overrides of INI file `id` on `host`, in order: the cloud's, the
    /// role's, the node's; for the service's first INI file (`first`), each followed by
    /// those written under the service's name `svc_name`.
    pub(super) fn override_layers<'a>(
        &'a self,
        host: &'a Host,
        svc_name: &str,
        id: &str,
        first: bool,
    ) -> Vec<&'a IniSections> {
        let cloud = self.cloud;
        let role = cloud.roles.get(&host.role);
        let levels: [Option<&ConfigOverrides>; 3] = [
            Some(&cloud.config),
            role.map(|r| &r.config),
            Some(&host.config),
        ];
        let mut layers = Vec::new();
        for level in levels.into_iter().flatten() {
            if let Some(l) = level.get(id) {
                layers.push(l);
            }
            if first && svc_name != id {
                if let Some(l) = level.get(svc_name) {
                    layers.push(l);
                }
            }
        }
        layers
    }

    /// The header of INI file `dest` of service `svc_name` on `host`: it names the
    /// catalogue file it comes from.
    fn oslo_header(
        &self,
        host: &Host,
        svc_name: &str,
        dest: &str,
        defaults: &OsloDefaults,
    ) -> String {
        // The catalogue file by its path inside the catalogue: the
        // same wherever the repository is checked out.
        let source = defaults
            .file
            .strip_prefix(&self.cloud.catalogue.templates_dir)
            .map(|p| Path::new("templates").join(p))
            .unwrap_or_else(|_| defaults.file.clone());
        format!(
            "{} for {svc_name} on {}. Rendered by provision from {}; do not edit on the host.",
            dest.rsplit('/').next().unwrap_or(""),
            host.name,
            source.display()
        )
    }

    /// The INI file `dest` of service `svc_name` on `host`, with a header naming its
    /// catalogue file, and its kind.
    pub(super) fn oslo_file(
        &self,
        host: &Host,
        svc_name: &str,
        dest: &str,
        defaults: &OsloDefaults,
        ini: &RenderedIni,
    ) -> (String, FileKind) {
        let header = self.oslo_header(host, svc_name, dest, defaults);
        (
            ini::write(&header, ini),
            FileKind::Oslo {
                id: defaults.id.clone(),
                namespaces: defaults.namespaces.clone(),
            },
        )
    }

    /// Merges `layers` (later ones win, option by option) and renders every value with
    /// `ctx`; a string option (or list item) that renders empty is left out.
    pub(super) fn render_ini(
        &self,
        layers: &[(&Path, &IniSections)],
        ctx: &Value,
    ) -> Result<(RenderedIni, Origins), Diagnostic> {
        let merged = merge(layers)?;
        let mut out = RenderedIni::new();
        let mut origins = Origins::new();
        for (section, options) in merged {
            let sec = out.entry(section.to_string()).or_default();
            let sec_origins = origins.entry(section.to_string()).or_default();
            for (key, m) in options {
                let Some(rendered) = self.render_value(section, key, &m, ctx)? else {
                    continue;
                };
                sec.insert(key.to_string(), rendered);
                sec_origins.insert(key.to_string(), Location::new(m.file, Some(m.span)));
            }
        }
        Ok((out, origins))
    }

    /// One merged option rendered with `ctx` and checked to stay on its line; `None`: a
    /// string (or every item of a list) that renders empty, left out.
    fn render_value(
        &self,
        section: &str,
        key: &str,
        m: &Merged,
        ctx: &Value,
    ) -> Result<Option<Rendered>, Diagnostic> {
        let Merged { value, file, span } = m;
        let offset = span.start;
        let name = || value_name(file, section, key, offset);
        let rendered = match value {
            IniValue::String(s) => {
                let v = self.render_template_str(name, s, ctx)?;
                if v.trim().is_empty() {
                    return Ok(None);
                }
                Rendered::One(v.trim().to_string())
            }
            IniValue::List(items) => {
                let mut parts = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        IniScalar::String(s) => {
                            let v =
                                self.render_template_str(|| format!("{}[{i}]", name()), s, ctx)?;
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
                    let v = self.render_template_str(|| format!("{}[{i}]", name()), s, ctx)?;
                    if !v.trim().is_empty() {
                        parts.push(v.trim().to_string());
                    }
                }
                Rendered::Many(parts)
            }
            other => match ini::plain(other) {
                Some(r) => r,
                None => return Ok(None),
            },
        };
        ini::check_value(
            section,
            key,
            &rendered,
            &Location::new(file, Some(span.clone())),
        )?;
        Ok(Some(rendered))
    }

    /// Whether the value of merged option `m` reads something of the host but its vars
    /// (or what it reads cannot be known): rendered for each host.
    fn reads_host(&self, section: &str, key: &str, m: &Merged) -> bool {
        let base = || value_name(m.file, section, key, m.span.start);
        let templated: Vec<String> = match m.value {
            IniValue::String(s) if is_template(s) => vec![base()],
            IniValue::List(items) => items
                .iter()
                .enumerate()
                .filter(|(_, item)| matches!(item, IniScalar::String(s) if is_template(s)))
                .map(|(i, _)| format!("{}[{i}]", base()))
                .collect(),
            IniValue::Multi { multi } => multi
                .iter()
                .enumerate()
                .filter(|(_, s)| is_template(s))
                .map(|(i, _)| format!("{}[{i}]", base()))
                .collect(),
            _ => Vec::new(),
        };
        templated
            .iter()
            .any(|name| self.host_independent(name).is_none())
    }

    /// INI file `dest` (number `index` of service `svc`'s files) on `host`, whose
    /// layers are `layers` (none of them the host's own) and context `ctx`: prepared
    /// once for the hosts of its role that share its vars ([`PreparedIni`]). `None`: it
    /// is rendered whole on every host (preparing it found a problem, which the whole
    /// render reports where it is).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prepared_ini(
        &self,
        svc: &str,
        index: usize,
        first: bool,
        host: &Host,
        defaults: &OsloDefaults,
        dest: &str,
        layers: &[(&Path, &IniSections)],
        ctx: &Value,
    ) -> Option<Arc<PreparedIni>> {
        let key = (
            svc.to_string(),
            index,
            first,
            host.role.clone(),
            Arc::as_ptr(&host.vars) as usize,
        );
        if let Some((p, _)) = self.prepared.lock().ok()?.get(&key) {
            return p.clone();
        }
        let p = self.prepare_ini(defaults, dest, layers, ctx).map(Arc::new);
        if let Ok(mut m) = self.prepared.lock() {
            // Bounded: nodes that set their own vars prepare a file each. The entry holds
            // the vars table, so that its address is not another's while it lives.
            if m.len() < PREPARED {
                m.insert(key, (p.clone(), Arc::clone(&host.vars)));
            }
        }
        p
    }

    fn prepare_ini(
        &self,
        defaults: &OsloDefaults,
        dest: &str,
        layers: &[(&Path, &IniSections)],
        ctx: &Value,
    ) -> Option<PreparedIni> {
        let merged = merge(layers).ok()?;
        let mut fixed = RenderedIni::new();
        let mut fixed_origins = Origins::new();
        let mut slots: Vec<Slot> = Vec::new();
        let mut origins = Origins::new();
        for (section, options) in merged {
            fixed.entry(section.to_string()).or_default();
            for (key, m) in options {
                let at = Location::new(m.file, Some(m.span.clone()));
                if self.reads_host(section, key, &m) {
                    origins
                        .entry(section.to_string())
                        .or_default()
                        .insert(key.to_string(), at);
                    slots.push(Slot {
                        section: section.to_string(),
                        key: key.to_string(),
                        value: m.value.clone(),
                        file: m.file.to_path_buf(),
                        span: m.span,
                    });
                    continue;
                }
                if let Some(r) = self.render_value(section, key, &m, ctx).ok()? {
                    fixed
                        .entry(section.to_string())
                        .or_default()
                        .insert(key.to_string(), r);
                    fixed_origins
                        .entry(section.to_string())
                        .or_default()
                        .insert(key.to_string(), at);
                }
            }
        }
        // What decides the option catalogue's groups of a section is the same on every
        // host, and the shared options are checked once: with no finding, or the file
        // is rendered whole everywhere (each host's findings as they are).
        if slots.iter().any(|s| {
            s.key == "auth_type" || (s.section == "DEFAULT" && s.key == "enabled_backends")
        }) {
            return None;
        }
        if let Some(checker) = &self.options {
            let mut findings = Findings::default();
            let file_name = dest.rsplit('/').next().unwrap_or(dest);
            checker.check(
                &defaults.id,
                file_name,
                &fixed,
                &fixed_origins,
                &defaults.file,
                &mut findings,
            );
            if !findings.errors.is_empty() || !findings.warnings.is_empty() {
                return None;
            }
        }
        let keys: Vec<(String, String)> = slots
            .iter()
            .map(|s| (s.section.clone(), s.key.clone()))
            .collect();
        Some(PreparedIni {
            template: IniTemplate::new(&fixed, &keys),
            slots,
            fixed,
            origins,
        })
    }

    /// INI file `dest` of service `svc_name` on `host` from its prepared form: the host's
    /// own options rendered, checked and put in their places.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn render_prepared(
        &self,
        p: &PreparedIni,
        host: &Host,
        svc_name: &str,
        dest: &str,
        defaults: &OsloDefaults,
        ctx: &Value,
        diags: &mut Diagnostics,
    ) -> Result<(String, FileKind), Diagnostic> {
        let mut values: Vec<Option<Rendered>> = Vec::with_capacity(p.slots.len());
        for s in &p.slots {
            let m = Merged {
                value: &s.value,
                file: &s.file,
                span: s.span.clone(),
            };
            values.push(self.render_value(&s.section, &s.key, &m, ctx)?);
        }
        if let Some(checker) = &self.options {
            let mut findings = Findings::default();
            let file_name = dest.rsplit('/').next().unwrap_or(dest);
            let own = p
                .slots
                .iter()
                .zip(&values)
                .filter_map(|(s, v)| Some((s.section.as_str(), s.key.as_str(), v.as_ref()?)));
            checker.check_some(
                &defaults.id,
                file_name,
                &p.fixed,
                own,
                &p.origins,
                &mut findings,
            );
            self.keep_findings(findings, diags);
        }
        let header = self.oslo_header(host, svc_name, dest, defaults);
        Ok((
            p.template.write(&header, &values),
            FileKind::Oslo {
                id: defaults.id.clone(),
                namespaces: defaults.namespaces.clone(),
            },
        ))
    }

    /// Checks the options of a rendered INI file against the release's option catalogue:
    /// errors go to `diags`, warnings to the renderer's own list.
    pub(super) fn check_options(
        &self,
        defaults: &OsloDefaults,
        dest: &str,
        ini: &RenderedIni,
        origins: &Origins,
        diags: &mut Diagnostics,
    ) {
        let Some(checker) = &self.options else {
            return;
        };
        let mut findings = Findings::default();
        let file_name = dest.rsplit('/').next().unwrap_or(dest);
        checker.check(
            &defaults.id,
            file_name,
            ini,
            origins,
            &defaults.file,
            &mut findings,
        );
        self.keep_findings(findings, diags);
    }

    /// A check's errors to `diags`, its warnings to the renderer's.
    fn keep_findings(&self, findings: Findings, diags: &mut Diagnostics) {
        diags.extend(findings.errors);
        if !findings.warnings.is_empty() {
            if let Ok(mut w) = self.warnings.lock() {
                w.extend(findings.warnings);
            }
        }
    }
}

/// Merges `layers`, later ones winning option by option; a section or option name that
/// would change the file's structure is an error.
fn merge<'a>(
    layers: &[(&'a Path, &'a IniSections)],
) -> Result<BTreeMap<&'a str, BTreeMap<&'a str, Merged<'a>>>, Diagnostic> {
    let mut merged: BTreeMap<&str, BTreeMap<&str, Merged>> = BTreeMap::new();
    for (file, layer) in layers {
        for (section, options) in layer.iter() {
            let sec = merged.entry(section.as_str()).or_default();
            for (key, value) in options {
                let located = || Location::new(file, Some(value.span()));
                ini::check_name("section", section, located)?;
                ini::check_name("option", key, located)?;
                sec.insert(
                    key.as_str(),
                    Merged {
                        value: value.get_ref(),
                        file,
                        span: value.span(),
                    },
                );
            }
        }
    }
    Ok(merged)
}

/// Prepared INI files kept per renderer (one per service file, role and vars table).
const PREPARED: usize = 4096;

/// The key of a prepared INI file: service, file number, whether it takes the
/// overrides written under the service's name, role, and the address of the vars table.
pub(super) type PreparedKey = (String, usize, bool, String, usize);

/// An oslo.config file of a service on the hosts of a role that share their vars and
/// set no overrides of it: its options merged; those the same on every such host (none
/// of their templates reads the host) rendered and checked once, and written once
/// ([`IniTemplate`]); the others, the host's own (`my_ip`, `host`), rendered and
/// checked on each host.
#[derive(Debug)]
pub(super) struct PreparedIni {
    template: IniTemplate,
    slots: Vec<Slot>,
    /// The shared options: what decides a section's groups in the option catalogue.
    fixed: RenderedIni,
    /// Where the host's own options are written.
    origins: Origins,
}

/// One of the host's own options of a [`PreparedIni`].
#[derive(Debug)]
struct Slot {
    section: String,
    key: String,
    value: IniValue,
    file: PathBuf,
    span: std::ops::Range<usize>,
}
