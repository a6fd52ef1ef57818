//! Every option of a rendered oslo.config file, checked against the option catalogue of
//! the release ([`OptionSchema`]): an unknown section or option (with the nearest known
//! name, across sections too), a value oslo.config would refuse (type, choices, bounds),
//! a deprecated name or an option deprecated for removal. A finding points at the line
//! that produced the value: the inventory's override, the service's manifest or the
//! shared oslo defaults. Sections chosen at run time are part of the schema:
//! - a cinder backend named in `[DEFAULT] enabled_backends` takes `[backend_defaults]`
//!   and `[backend]`;
//! - a glance store `name:type` of `enabled_backends` takes `[<type>]` or
//!   `[glance.store.<type>.store]`;
//! - a keystoneauth section (it has `auth_type`, or keystoneauth's session options)
//!   takes `auth_type`, `auth_section` and the options of the plugin its `auth_type`
//!   names.
//!
//! The inventory's `[unchecked_options]` lists what the catalogue lacks (a third-party
//! driver's options): each is a warning, never an error.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use toml::Spanned;

use super::ini::{Rendered, RenderedIni};
use crate::catalogue::options::{FileSchema, OptSpec, OptType, OptionSchema, Section};
use crate::diagnostics::{edit_distance, Diagnostic, Diagnostics, Location};

/// Where each option of a rendered file was written: section -> option -> location.
pub type Origins = BTreeMap<String, BTreeMap<String, Location>>;

/// The inventory's `[unchecked_options]`: oslo id -> `"section.option"` or `"section.*"`.
pub type UncheckedOptions = BTreeMap<String, Vec<Spanned<String>>>;

/// What a check found: errors fail the run, warnings are shown.
#[derive(Default)]
pub struct Findings {
    pub errors: Diagnostics,
    pub warnings: Diagnostics,
}

/// The checker of one evaluation: the schema, the escape hatch, and the suggestions
/// already computed (the same typo on a thousand hosts is looked up once).
pub struct OptionChecker<'s> {
    schema: &'s OptionSchema,
    /// (id, section, option or `*`) -> where the inventory lists it.
    unchecked: HashMap<(String, String, String), Location>,
    suggestions: Mutex<HashMap<(String, String, String), Option<(String, String)>>>,
    /// Secret values: a value holding one is never shown.
    secrets: Vec<String>,
}

impl<'s> OptionChecker<'s> {
    /// A checker for `schema`; the entries of `unchecked` (in `inventory`) are checked
    /// here: an unknown file id or a malformed entry is an error, an entry the schema
    /// knows is a warning.
    pub fn new(
        schema: &'s OptionSchema,
        unchecked: &UncheckedOptions,
        inventory: &std::path::Path,
        secrets: Vec<String>,
        findings: &mut Findings,
    ) -> Self {
        let mut map = HashMap::new();
        for (id, entries) in unchecked {
            let file = schema.files.get(id);
            for entry in entries {
                let at = Location::new(inventory, Some(entry.span()));
                let Some(file) = file else {
                    let mut ids: Vec<&str> = schema.files.keys().map(String::as_str).collect();
                    ids.sort();
                    findings.errors.push(
                        Diagnostic::new(
                            format!("[unchecked_options] names `{}`, which is not an oslo.config file of the catalogue", id.escape_debug()),
                            at,
                        )
                        .help(format!("name one of: {}", ids.join(", "))),
                    );
                    break;
                };
                let Some((section, option)) = entry.get_ref().rsplit_once('.') else {
                    findings.errors.push(
                        Diagnostic::new(
                            format!("[unchecked_options] entry `{}` is not `section.option`", entry.get_ref().escape_debug()),
                            at,
                        )
                        .help("write the section, a dot and the option (`DEFAULT.my_option`), or `section.*` for a whole section"),
                    );
                    continue;
                };
                if section.is_empty() || option.is_empty() {
                    findings.errors.push(
                        Diagnostic::new(
                            format!(
                                "[unchecked_options] entry `{}` has an empty section or option",
                                entry.get_ref().escape_debug()
                            ),
                            at,
                        )
                        .help("write `section.option` or `section.*`"),
                    );
                    continue;
                }
                let known = match option {
                    "*" => file.sections.contains_key(section),
                    o => file
                        .sections
                        .get(section)
                        .is_some_and(|s| s.contains_key(o)),
                };
                if known {
                    findings.warnings.push(
                        Diagnostic::warning(
                            format!(
                                "[unchecked_options] lists `[{section}] {option}` of `{id}`, which the option catalogue of {} knows",
                                schema.release
                            ),
                            at.clone(),
                        )
                        .help("remove the entry: the option is checked like any other"),
                    );
                }
                map.insert((id.clone(), section.to_string(), option.to_string()), at);
            }
        }
        OptionChecker {
            schema,
            unchecked: map,
            suggestions: Mutex::new(HashMap::new()),
            secrets,
        }
    }

    /// Checks every option of `ini`, the rendered file `file_name` of oslo id `id`.
    pub fn check(
        &self,
        id: &str,
        file_name: &str,
        ini: &RenderedIni,
        origins: &Origins,
        defaults_file: &std::path::Path,
        findings: &mut Findings,
    ) {
        let Some(fs) = self.schema.files.get(id) else {
            findings.errors.push(
                Diagnostic::new(
                    format!(
                        "the option catalogue of {} has no file `{id}`, so its options cannot be checked",
                        self.schema.release
                    ),
                    Location::file(defaults_file),
                )
                .help(format!(
                    "make the catalogue again with `scripts/oslo-schema/generate.sh {}`: it covers every file of templates/_common/oslo/",
                    self.schema.release
                )),
            );
            return;
        };
        let all = ini.iter().flat_map(|(section, options)| {
            options
                .iter()
                .map(move |(key, value)| (section.as_str(), key.as_str(), value))
        });
        self.check_file_options(fs, id, file_name, ini, all, origins, findings);
    }

    /// Checks `options` (section, option, value: some of the options of the rendered
    /// file `file_name` of oslo id `id`, in the file's order). `ini` holds the options
    /// that decide a section's groups (`[DEFAULT] enabled_backends`, a section's
    /// `auth_type`): the whole file, or the part of it every host of a role shares
    /// ([`super::oslo_files`]). `None`: the catalogue has no such file (the caller checks
    /// the whole file with [`OptionChecker::check`] first, which says so).
    #[allow(clippy::too_many_arguments)]
    pub fn check_some<'o>(
        &self,
        id: &str,
        file_name: &str,
        ini: &RenderedIni,
        options: impl Iterator<Item = (&'o str, &'o str, &'o Rendered)>,
        origins: &Origins,
        findings: &mut Findings,
    ) -> Option<()> {
        let fs = self.schema.files.get(id)?;
        self.check_file_options(fs, id, file_name, ini, options, origins, findings);
        Some(())
    }

    #[allow(clippy::too_many_arguments)]
    fn check_file_options<'o>(
        &self,
        fs: &FileSchema,
        id: &str,
        file_name: &str,
        ini: &RenderedIni,
        options: impl Iterator<Item = (&'o str, &'o str, &'o Rendered)>,
        origins: &Origins,
        findings: &mut Findings,
    ) {
        let ctx = FileCtx {
            id,
            file_name,
            release: &self.schema.release,
            project: self.schema.project_version(&fs.project),
        };
        let dynamic = dynamic_sections(fs, ini);
        // The groups of the section of the options before: they come section by section.
        let mut groups: Vec<&Section> = Vec::new();
        let mut groups_of: Option<&str> = None;
        for (section, key, value) in options {
            if groups_of != Some(section) {
                groups_of = Some(section);
                groups.clear();
                if let Some(s) = fs.sections.get(section) {
                    groups.push(s);
                }
                if let Some(extra) = dynamic.get(section) {
                    groups.extend(extra.iter().copied());
                }
                if groups.iter().any(|g| keystoneauth_section(g)) {
                    groups.push(&self.schema.auth_common);
                    if let Some(Rendered::One(plugin)) =
                        ini.get(section).and_then(|o| o.get("auth_type"))
                    {
                        if let Some(p) = self.schema.auth_plugins.get(plugin) {
                            groups.push(p);
                        }
                    }
                }
            }
            let Some(at) = origins.get(section).and_then(|o| o.get(key)) else {
                continue;
            };
            self.check_option(&ctx, fs, section, &groups, key, value, at, findings);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_option(
        &self,
        ctx: &FileCtx,
        fs: &FileSchema,
        section: &str,
        groups: &[&Section],
        key: &str,
        value: &Rendered,
        at: &Location,
        findings: &mut Findings,
    ) {
        for k in [key, "*"]
            .into_iter()
            .filter(|_| !self.unchecked.is_empty())
        {
            if let Some(listed) =
                self.unchecked
                    .get(&(ctx.id.to_string(), section.to_string(), k.to_string()))
            {
                findings.warnings.push(
                    Diagnostic::warning(
                        format!(
                            "`[{section}] {key}` of {} is not checked: [unchecked_options] lists it",
                            ctx.file_name
                        ),
                        at.clone(),
                    )
                    .note("listed here", listed.clone()),
                );
                return;
            }
        }
        if let Some(spec) = groups.iter().find_map(|g| g.get(key)) {
            self.check_value(ctx, section, key, spec, value, at, findings);
            return;
        }
        if let Some((new_section, new_key)) =
            fs.deprecated.get(&(section.to_string(), key.to_string()))
        {
            findings.warnings.push(
                Diagnostic::warning(
                    format!(
                        "`[{section}] {key}` is deprecated in {} ({}): {} reads it as `[{new_section}] {new_key}`",
                        ctx.release, ctx.project, ctx.file_name
                    ),
                    at.clone(),
                )
                .help(format!("write it as `[{new_section}] {new_key}`")),
            );
            return;
        }
        let suggestion = self.suggest(ctx.id, fs, section, groups, key);
        let message = if groups.is_empty() {
            format!(
                "{} has no section `[{section}]` in {} ({}): `[{section}] {key}` would be ignored",
                ctx.file_name, ctx.release, ctx.project
            )
        } else {
            format!(
                "`[{section}] {key}` is not an option of {} in {} ({}): the service would ignore it",
                ctx.file_name, ctx.release, ctx.project
            )
        };
        let help = match suggestion {
            Some((s, k)) => format!("did you mean `[{s}] {k}`?"),
            None => "check the name and section in the release's configuration reference; an option the catalogue lacks (a third-party driver's) can be listed in the inventory's [unchecked_options] (docs/inventory.md)".to_string(),
        };
        findings
            .errors
            .push(Diagnostic::new(message, at.clone()).help(help));
    }

    #[allow(clippy::too_many_arguments)]
    fn check_value(
        &self,
        ctx: &FileCtx,
        section: &str,
        key: &str,
        spec: &OptSpec,
        value: &Rendered,
        at: &Location,
        findings: &mut Findings,
    ) {
        if let Some(reason) = &spec.removal {
            let since = spec
                .since
                .as_deref()
                .map(|s| format!(" since {s}"))
                .unwrap_or_default();
            let why = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            findings.warnings.push(
                Diagnostic::warning(
                    format!(
                        "`[{section}] {key}` is deprecated for removal in {} ({}{since}){why}",
                        ctx.release, ctx.project
                    ),
                    at.clone(),
                )
                .help("remove it, or plan for the release that drops it"),
            );
        }
        let values: Vec<&String> = match value {
            Rendered::One(v) => vec![v],
            Rendered::Many(vs) => {
                if spec.kind != OptType::Multi && vs.len() > 1 {
                    findings.errors.push(
                        Diagnostic::new(
                            format!(
                                "`[{section}] {key}` of {} is written {} times, but it takes one value ({})",
                                ctx.file_name,
                                vs.len(),
                                spec.kind.noun()
                            ),
                            at.clone(),
                        )
                        .help("give one value (a list option takes a TOML array, written comma-separated)"),
                    );
                    return;
                }
                vs.iter().collect()
            }
        };
        for v in values {
            if let Err(problem) = value_problem(spec, v) {
                let shown = if spec.secret || self.secrets.iter().any(|s| v.contains(s.as_str())) {
                    format!("`[{section}] {key}` (its value not shown: it holds a secret)")
                } else {
                    format!("`[{section}] {key} = {}`", v.escape_debug())
                };
                findings.errors.push(
                    Diagnostic::new(
                        format!(
                            "{shown} {problem} ({} in {}, {}): the service would refuse it",
                            ctx.file_name, ctx.release, ctx.project
                        ),
                        at.clone(),
                    )
                    .help(value_help(spec)),
                );
            }
        }
    }

    /// The known option nearest to `key`: the same name in another section first, then
    /// the fewest edits (a typo), in this section before the others.
    fn suggest(
        &self,
        id: &str,
        fs: &FileSchema,
        section: &str,
        groups: &[&Section],
        key: &str,
    ) -> Option<(String, String)> {
        // The section's groups depend on the file (its auth_type, its backends).
        let groups_id: String = groups.iter().map(|g| format!("{:p},", *g)).collect();
        let memo_key = (
            id.to_string(),
            format!("{section}\n{groups_id}"),
            key.to_string(),
        );
        if let Ok(memo) = self.suggestions.lock() {
            if let Some(hit) = memo.get(&memo_key) {
                return hit.clone();
            }
        }
        let limit = (key.chars().count() / 4).clamp(1, 3);
        let mut best: Option<((usize, bool, &str, &str), (String, String))> = None;
        // This section's options (its run-time groups included), then every section's.
        let own = groups.iter().map(|g| (section, *g));
        let all = fs.sections.iter().map(|(n, s)| (n.as_str(), s));
        for (sname, opts) in own.chain(all) {
            for oname in opts.keys() {
                if oname.len().abs_diff(key.len()) > limit {
                    continue;
                }
                let Some(d) = edit_distance(key, oname, limit) else {
                    continue;
                };
                let score = (d, sname != section, sname, oname.as_str());
                if best.as_ref().is_none_or(|(b, _)| score < *b) {
                    best = Some((score, (sname.to_string(), oname.clone())));
                }
            }
        }
        // A section name with a typo: the same option in the section nearest by name.
        let found = best
            .map(|(_, s)| s)
            .filter(|(s, k)| !(s == section && k == key));
        if let Ok(mut memo) = self.suggestions.lock() {
            memo.insert(memo_key, found.clone());
        }
        found
    }
}

struct FileCtx<'a> {
    id: &'a str,
    file_name: &'a str,
    release: &'a str,
    project: String,
}

/// Whether keystoneauth registers its options in this section at run time: it has
/// `auth_type`, or keystoneauth's session options (`cafile`, `certfile`, `keyfile`,
/// `insecure`: cinder's `[service_user]` lists those and the password plugin's, and
/// registers `auth_type` when it loads the plugin).
fn keystoneauth_section(g: &Section) -> bool {
    g.contains_key("auth_type")
        || ["cafile", "certfile", "keyfile", "insecure"]
            .iter()
            .all(|k| g.contains_key(*k))
}

/// Sections a file names itself: cinder's backends and glance's stores of
/// `[DEFAULT] enabled_backends`, with the option groups each takes.
fn dynamic_sections<'f>(
    fs: &'f FileSchema,
    ini: &RenderedIni,
) -> HashMap<String, Vec<&'f Section>> {
    let mut out = HashMap::new();
    let Some(Rendered::One(list)) = ini.get("DEFAULT").and_then(|d| d.get("enabled_backends"))
    else {
        return out;
    };
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, kind) = match item.split_once(':') {
            Some((n, k)) => (n.trim(), Some(k.trim())),
            None => (item, None),
        };
        let groups: Vec<&Section> = match kind {
            Some(k) => [k.to_string(), format!("glance.store.{k}.store")]
                .iter()
                .filter_map(|g| fs.sections.get(g))
                .collect(),
            None => ["backend_defaults", "backend"]
                .iter()
                .filter_map(|g| fs.sections.get(*g))
                .collect(),
        };
        if !groups.is_empty() {
            out.insert(name.to_string(), groups);
        }
    }
    out
}

/// What is wrong with `v` for an option of `spec`, as oslo.config would parse it.
fn value_problem(spec: &OptSpec, v: &str) -> Result<(), String> {
    let v = v.trim();
    // `$name` is oslo.config's interpolation: the value is known to the service only.
    if v.contains('$') {
        return Ok(());
    }
    match spec.kind {
        OptType::Bool => {
            const WORDS: [&str; 8] = ["true", "false", "1", "0", "yes", "no", "on", "off"];
            if !WORDS.contains(&v.to_ascii_lowercase().as_str()) {
                return Err("is not a boolean".into());
            }
        }
        OptType::Int | OptType::Port => {
            let Ok(n) = v.strip_prefix('+').unwrap_or(v).parse::<i64>() else {
                return Err(format!("is not {}", spec.kind.noun()));
            };
            let (min, max) = match spec.kind {
                OptType::Port => (spec.min.or(Some(0.0)), spec.max.or(Some(65535.0))),
                _ => (spec.min, spec.max),
            };
            bounds(n as f64, min, max)?;
        }
        OptType::Float => {
            let Ok(x) = v.parse::<f64>() else {
                return Err("is not a floating point number".into());
            };
            bounds(x, spec.min, spec.max)?;
        }
        OptType::Ip => {
            if v.parse::<std::net::IpAddr>().is_err() {
                return Err("is not an IP address".into());
            }
        }
        OptType::Host | OptType::Hostname => {
            let ip = spec.kind == OptType::Host && v.parse::<std::net::IpAddr>().is_ok();
            if !ip && !is_hostname(v) {
                return Err(format!("is not {}", spec.kind.noun()));
            }
        }
        OptType::Uri => {
            let ok = v.split_once("://").is_some_and(|(scheme, rest)| {
                !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    && !rest.is_empty()
            });
            if !ok {
                return Err("is not a URI (scheme://host...)".into());
            }
        }
        OptType::Dict => {
            if let Some(item) = v
                .split(',')
                .map(str::trim)
                .find(|i| !i.is_empty() && !i.contains(':'))
            {
                return Err(format!(
                    "has item `{}` that is not key:value",
                    item.escape_debug()
                ));
            }
        }
        OptType::Str | OptType::List | OptType::Multi | OptType::Other => {}
    }
    let choosable = matches!(
        spec.kind,
        OptType::Str | OptType::Int | OptType::Port | OptType::Multi
    );
    if choosable && !spec.choices.is_empty() && !spec.choices.iter().flatten().any(|c| c == v) {
        return Err(format!("is not one of {}", choice_list(spec)));
    }
    Ok(())
}

fn choice_list(spec: &OptSpec) -> String {
    let mut names: Vec<&str> = spec.choices.iter().flatten().map(String::as_str).collect();
    names.sort_unstable();
    names.join(", ")
}

fn bounds(x: f64, min: Option<f64>, max: Option<f64>) -> Result<(), String> {
    if let Some(lo) = min {
        if x < lo {
            return Err(format!("is below the minimum {}", number(lo)));
        }
    }
    if let Some(hi) = max {
        if x > hi {
            return Err(format!("is above the maximum {}", number(hi)));
        }
    }
    Ok(())
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        x.to_string()
    }
}

fn value_help(spec: &OptSpec) -> String {
    match spec.kind {
        OptType::Bool => "oslo.config reads true/false, yes/no, on/off or 1/0".into(),
        _ if !spec.choices.is_empty() => format!("give one of: {}", choice_list(spec)),
        OptType::Int | OptType::Port | OptType::Float => {
            let range = match (spec.min, spec.max, spec.kind) {
                (lo, hi, OptType::Port) => format!(
                    " from {} to {}",
                    number(lo.unwrap_or(0.0)),
                    number(hi.unwrap_or(65535.0))
                ),
                (Some(lo), Some(hi), _) => format!(" from {} to {}", number(lo), number(hi)),
                (Some(lo), None, _) => format!(" of at least {}", number(lo)),
                (None, Some(hi), _) => format!(" of at most {}", number(hi)),
                (None, None, _) => String::new(),
            };
            format!("give {}{range}", spec.kind.noun())
        }
        k => format!("give {}", k.noun()),
    }
}

/// A DNS name as oslo.config's Hostname type takes it: labels of letters, digits and
/// `-` (not first or last), 1 to 63 characters, 253 in all, an optional final dot.
fn is_hostname(v: &str) -> bool {
    let v = v.strip_suffix('.').unwrap_or(v);
    !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: OptType) -> OptSpec {
        OptSpec::of(kind)
    }

    #[test]
    fn values_as_oslo_config_parses_them() {
        assert!(value_problem(&spec(OptType::Bool), "Yes").is_ok());
        assert_eq!(
            value_problem(&spec(OptType::Bool), "yes-please").unwrap_err(),
            "is not a boolean"
        );
        let port = spec(OptType::Port);
        assert!(value_problem(&port, "6080").is_ok());
        assert_eq!(
            value_problem(&port, "70000").unwrap_err(),
            "is above the maximum 65535"
        );
        assert_eq!(
            value_problem(&port, "-1").unwrap_err(),
            "is below the minimum 0"
        );
        let ratio = OptSpec {
            min: Some(0.0),
            ..spec(OptType::Float)
        };
        assert!(value_problem(&ratio, "8.0").is_ok());
        assert_eq!(
            value_problem(&ratio, "eight").unwrap_err(),
            "is not a floating point number"
        );
        assert_eq!(
            value_problem(&ratio, "-1").unwrap_err(),
            "is below the minimum 0"
        );
        let virt = OptSpec {
            choices: vec![Some("kvm".into()), Some("qemu".into())],
            ..spec(OptType::Str)
        };
        assert_eq!(
            value_problem(&virt, "vmware").unwrap_err(),
            "is not one of kvm, qemu"
        );
        assert!(value_problem(&virt, "qemu").is_ok());
        assert!(value_problem(&spec(OptType::Int), "$workers").is_ok());
        assert!(value_problem(&spec(OptType::Int), "1.5").is_err());
        assert!(value_problem(&spec(OptType::Host), "192.0.2.1").is_ok());
        assert!(value_problem(&spec(OptType::Host), "ctl-0.example.com").is_ok());
        assert!(value_problem(&spec(OptType::Host), "bad_host!").is_err());
        assert!(value_problem(&spec(OptType::Dict), "a:1,b:2").is_ok());
        assert!(value_problem(&spec(OptType::Dict), "a:1,b").is_err());
        assert!(value_problem(&spec(OptType::Uri), "http://ctl:5000").is_ok());
        assert!(value_problem(&spec(OptType::Uri), "ctl:5000").is_err());
    }
}
