//! A service's oslo.config INI file: its layers (the shared defaults, the service's
//! `ini`, then the inventory's overrides: the cloud's, the role's, the node's) merged
//! option by option, its templated values rendered, and the file written by [`ini`].

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::Value;

use super::ini::{self, Rendered, RenderedIni};
use super::option_check::{Findings, Origins};
use super::templates::value_name;
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
        // The catalogue file by its path inside the catalogue: the
        // same wherever the repository is checked out.
        let source = defaults
            .file
            .strip_prefix(&self.cloud.catalogue.templates_dir)
            .map(|p| Path::new("templates").join(p))
            .unwrap_or_else(|_| defaults.file.clone());
        let header = format!(
            "{} for {svc_name} on {}. Rendered by provision from {}; do not edit on the host.",
            dest.rsplit('/').next().unwrap_or(""),
            host.name,
            source.display()
        );
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
        // Merge: later layers win, option by option.
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
        let mut out = RenderedIni::new();
        let mut origins = Origins::new();
        for (section, options) in merged {
            let sec = out.entry(section.to_string()).or_default();
            let sec_origins = origins.entry(section.to_string()).or_default();
            for (key, Merged { value, file, span }) in options {
                let offset = span.start;
                let name = || value_name(file, section, key, offset);
                let at = Location::new(file, Some(span));
                let rendered = match value {
                    IniValue::String(s) => {
                        let v = self.render_template_str(name, s, ctx)?;
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
                                    let v = self.render_template_str(
                                        || format!("{}[{i}]", name()),
                                        s,
                                        ctx,
                                    )?;
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
                            let v =
                                self.render_template_str(|| format!("{}[{i}]", name()), s, ctx)?;
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
                ini::check_value(section, key, &rendered, &at)?;
                sec.insert(key.to_string(), rendered);
                sec_origins.insert(key.to_string(), at);
            }
        }
        Ok((out, origins))
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
        diags.extend(findings.errors);
        if !findings.warnings.is_empty() {
            if let Ok(mut w) = self.warnings.lock() {
                w.extend(findings.warnings);
            }
        }
    }
}
