//! The template environment: every `.j2` file of the catalogue and every templated
//! value (INI options, container environment) compiled under a name, with where it was
//! written; rendering by name; minijinja's errors turned into located diagnostics.

use std::ops::Range;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use super::Renderer;
use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::ini_values::{ConfigOverrides, IniScalar, IniSections, IniValue};
use crate::model::Cloud;

/// Where a template registered in the environment comes from, for error locations.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub(super) file: PathBuf,
    /// Span of the template text inside `file` (an INI value in a TOML file), or `None`
    /// for a whole `.j2` file.
    pub(super) span: Option<Range<usize>>,
    /// Characters the environment's template has before the text of `span` (a file's
    /// `when`, compiled after [`WHEN_PREFIX`]).
    pub(super) prefix: usize,
}

/// A file's `when` is compiled as this, the expression, [`WHEN_MIDDLE`], the expression
/// again and [`WHEN_SUFFIX`]: it renders `true` or `false`, followed by `!` when the
/// expression is not a boolean. The first test of its truth is where an undefined
/// variable fails (the templates are strict), located in the expression.
pub(super) const WHEN_PREFIX: &str = "{% if (";
pub(super) const WHEN_MIDDLE: &str = ") %}true{% else %}false{% endif %}{% if not ((";
pub(super) const WHEN_SUFFIX: &str = ") is boolean) %}!{% endif %}";

/// The environment name of a file's `when` (its offset in the manifest).
pub(super) fn when_name(file: &Path, offset: usize) -> String {
    format!("{}#files.when@{offset}", file.display())
}

/// The environment name of a file's templated `container_path`.
pub(super) fn container_path_name(file: &Path, offset: usize) -> String {
    format!("{}#files.container_path@{offset}", file.display())
}

/// A templated value (to compile and render), not a plain one.
pub(super) fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// An empty environment with the templates' settings: strict undefined variables, no
/// automatic escaping but the escaping filters of [`super::escape`] (which never show
/// one of `secrets` in an error), sources kept for errors, trailing newlines kept and
/// blocks trimmed.
pub(super) fn environment(secrets: Vec<String>) -> Environment<'static> {
    let mut env = Environment::new();
    super::escape::register(&mut env, secrets);
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
    env
}

/// Templated values, wherever they are written (the catalogue's oslo defaults, its
/// services' INI options and environment, the cloud's, roles' and hosts' overrides),
/// each with its environment name and origin.
pub(super) fn templated_values(cloud: &Cloud) -> Vec<(String, String, Origin)> {
    let mut values: Vec<(String, String, Origin)> = Vec::new();
    for d in cloud.catalogue.oslo.values() {
        collect_ini(&d.file, &d.sections, &mut values);
    }
    let services = cloud.catalogue.services.values();
    for s in services.chain(cloud.catalogue.undercloud_services.values()) {
        for f in &s.manifest.files {
            collect_ini(&s.file, &f.ini, &mut values);
            if let Some(w) = &f.when {
                values.push((
                    when_name(&s.file, w.span().start),
                    format!(
                        "{WHEN_PREFIX}{w}{WHEN_MIDDLE}{w}{WHEN_SUFFIX}",
                        w = w.get_ref()
                    ),
                    Origin {
                        file: s.file.clone(),
                        span: Some(w.span()),
                        prefix: WHEN_PREFIX.len(),
                    },
                ));
            }
            if let Some(c) = f
                .container_path
                .as_ref()
                .filter(|c| is_template(c.get_ref()))
            {
                values.push((
                    container_path_name(&s.file, c.span().start),
                    c.get_ref().clone(),
                    Origin {
                        file: s.file.clone(),
                        span: Some(c.span()),
                        prefix: 0,
                    },
                ));
            }
        }
        // Tasks' environments (their names as render/tasks.rs gives them).
        for t in &s.manifest.tasks {
            for (k, v) in &t.environment {
                if is_template(v) {
                    values.push((
                        format!(
                            "{}#tasks.{}.environment:{k}",
                            s.file.display(),
                            t.name.get_ref()
                        ),
                        v.clone(),
                        Origin {
                            file: s.file.clone(),
                            span: Some(t.name.span()),
                            prefix: 0,
                        },
                    ));
                }
            }
        }
        for v in s.manifest.environment.values() {
            if is_template(v) {
                values.push((
                    format!("{}#environment:{v}", s.file.display()),
                    v.clone(),
                    Origin {
                        file: s.file.clone(),
                        span: None,
                        prefix: 0,
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
    values
}

fn collect_ini(file: &Path, sections: &IniSections, out: &mut Vec<(String, String, Origin)>) {
    for (section, options) in sections {
        for (key, value) in options {
            let base = value_name(file, section, key, value.span().start);
            let origin = Origin {
                file: file.to_path_buf(),
                span: Some(value.span()),
                prefix: 0,
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
pub(super) fn value_name(file: &Path, section: &str, key: &str, offset: usize) -> String {
    format!("{}#[{section}] {key}@{offset}", file.display())
}

impl Renderer<'_> {
    /// Compiles `text` as template `name` (once: a name already known is kept).
    pub(super) fn add(
        &mut self,
        name: String,
        text: String,
        origin: Origin,
        diags: &mut Diagnostics,
    ) {
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
        let refused = e
            .detail()
            .is_some_and(|d| d.starts_with(super::escape::REFUSED));
        let (kind, help) = match e.kind() {
            _ if refused => (
                "",
                "the value cannot be written into this file as data: change it where it is set (the inventory's vars, secrets or names); the template's escaping filters are listed in docs/catalogue.md",
            ),
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
            // A `when` (compiled after WHEN_PREFIX): in the expression's text, clamped to
            // it.
            (Some(s), Some(r)) if origin.prefix > 0 => {
                let at = |o: usize| {
                    (s.start + 1 + o.saturating_sub(origin.prefix)).min(s.end.saturating_sub(1))
                };
                Some(at(r.start)..at(r.end).max(at(r.start)))
            }
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
        // A refusal's detail is the whole message ("unsafe value for `shell`: ...").
        let message = match e.detail() {
            Some(d) if refused => d.to_string(),
            _ => format!("{kind}{detail}"),
        };
        Diagnostic::new(message, Location::new(&origin.file, span)).help(help)
    }

    /// Renders the template registered as `name`; with a cache, a template that reads
    /// nothing of the host renders once per service ([`Renderer::service_scope`]).
    pub(super) fn render_named(&self, name: &str, ctx: &Value) -> Result<String, Diagnostic> {
        let scope = self.service_scope(name, ctx);
        if let Some(scope) = &scope {
            if let Some(out) = self.memo.rendered(name, scope) {
                return Ok(out);
            }
        }
        let out = self.render_uncached(name, ctx)?;
        if let Some(scope) = &scope {
            self.memo.keep_rendered(name, scope, &out);
        }
        Ok(out)
    }

    fn render_uncached(&self, name: &str, ctx: &Value) -> Result<String, Diagnostic> {
        let origin = || {
            self.origins.get(name).cloned().unwrap_or(Origin {
                file: PathBuf::from(name),
                span: None,
                prefix: 0,
            })
        };
        let t = self
            .env
            .get_template(name)
            .map_err(|e| self.template_error(&e, &origin()))?;
        t.render(ctx).map_err(|e| {
            let mut d = self.template_error(&e, &origin());
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

    /// [`Renderer::render_str`], with the name made only for a templated `text`.
    pub(super) fn render_template_str(
        &self,
        name: impl FnOnce() -> String,
        text: &str,
        ctx: &Value,
    ) -> Result<String, Diagnostic> {
        if is_template(text) {
            self.render_named(&name(), ctx)
        } else {
            Ok(text.to_string())
        }
    }

    /// Renders `text`, registered as `name` if it is templated; a plain value as it is.
    pub(super) fn render_str(
        &self,
        name: &str,
        text: &str,
        ctx: &Value,
    ) -> Result<String, Diagnostic> {
        if is_template(text) {
            self.render_named(name, ctx)
        } else {
            Ok(text.to_string())
        }
    }
}
