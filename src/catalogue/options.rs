//! The option catalogues: every option of every oslo.config file the catalogue renders,
//! as the release the cloud deploys defines it (section, name, type, choices, bounds,
//! deprecated names), generated from that release by `scripts/oslo-schema/generate.sh`
//! into `templates/_common/oslo/schema/<release>.json`. The catalogue names the release
//! it is written for in `schema/release.toml`; `validate --release NAME` checks against
//! another. See docs/catalogue.md, "Option catalogues".

use sha2::Digest;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::source::{SourceMap, SourceTree};
use crate::tomlfile;

/// Folder of the option catalogues, under the templates folder.
pub const SCHEMA_DIR: &str = "_common/oslo/schema";

/// The type of an option, as oslo.config parses its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptType {
    Str,
    Int,
    Float,
    Bool,
    Port,
    List,
    Dict,
    Multi,
    Host,
    Hostname,
    Ip,
    Uri,
    /// A type this reader does not check (the generator's own name kept in the file).
    Other,
}

impl OptType {
    fn parse(s: &str) -> OptType {
        match s {
            "str" => OptType::Str,
            "int" => OptType::Int,
            "float" => OptType::Float,
            "bool" => OptType::Bool,
            "port" => OptType::Port,
            "list" => OptType::List,
            "dict" => OptType::Dict,
            "multi" => OptType::Multi,
            "host" => OptType::Host,
            "hostname" => OptType::Hostname,
            "ip" => OptType::Ip,
            "uri" => OptType::Uri,
            _ => OptType::Other,
        }
    }

    /// How a message names a value of this type.
    pub fn noun(self) -> &'static str {
        match self {
            OptType::Str | OptType::Other => "a string",
            OptType::Int => "an integer",
            OptType::Float => "a floating point number",
            OptType::Bool => "a boolean",
            OptType::Port => "a port number",
            OptType::List => "a list",
            OptType::Dict => "a dict of key:value pairs",
            OptType::Multi => "a repeated option",
            OptType::Host => "a host address (an IP address or a host name)",
            OptType::Hostname => "a host name",
            OptType::Ip => "an IP address",
            OptType::Uri => "a URI",
        }
    }
}

/// One option of a section.
#[derive(Debug, Clone)]
pub struct OptSpec {
    pub kind: OptType,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The allowed values; `None` is oslo's `None` choice (the option left unset).
    pub choices: Vec<Option<String>>,
    /// Why it is deprecated for removal, when it is.
    pub removal: Option<String>,
    pub since: Option<String>,
    pub secret: bool,
}

impl OptSpec {
    /// An option of `kind` with no bounds, choices or deprecation.
    pub fn of(kind: OptType) -> OptSpec {
        OptSpec {
            kind,
            min: None,
            max: None,
            choices: Vec::new(),
            removal: None,
            since: None,
            secret: false,
        }
    }
}

/// A section: its options by name.
pub type Section = HashMap<String, OptSpec>;

/// The schema of one INI file (an oslo id: `nova`, `ml2_conf`...).
#[derive(Debug, Clone, Default)]
pub struct FileSchema {
    /// The project that defines it (its first namespace's: `nova.conf` -> `nova`).
    pub project: String,
    pub sections: HashMap<String, Section>,
    /// Old names oslo.config still reads, `(section, name)` -> the option's own
    /// `(section, name)`.
    pub deprecated: HashMap<(String, String), (String, String)>,
}

/// The option catalogue of one release.
#[derive(Debug, Clone)]
pub struct OptionSchema {
    pub release: String,
    /// `templates/_common/oslo/schema/<release>.json`
    pub file: PathBuf,
    /// The version of each project the schema was made from (`nova` -> `31.1.0`).
    pub packages: HashMap<String, String>,
    pub files: HashMap<String, FileSchema>,
    /// keystoneauth's plugins (`password`, `v3token`...): the options a section whose
    /// `auth_type` names one takes, registered at run time.
    pub auth_plugins: HashMap<String, Section>,
    /// keystoneauth's own options of such a section: `auth_type` and `auth_section`
    /// (`register_auth_conf_options`, at run time too).
    pub auth_common: Section,
    /// The sha256 of the file's text: what a cached render was checked against.
    pub digest: [u8; 32],
}

#[derive(Deserialize)]
struct RawSchema {
    release: String,
    #[serde(default)]
    packages: HashMap<String, String>,
    files: HashMap<String, RawFile>,
    #[serde(default)]
    auth_plugins: HashMap<String, HashMap<String, RawOpt>>,
}

#[derive(Deserialize)]
struct RawFile {
    /// The project that defines the file (its package on PyPI).
    project: Option<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    sections: HashMap<String, HashMap<String, RawOpt>>,
}

#[derive(Deserialize)]
struct RawOpt {
    #[serde(rename = "type")]
    kind: String,
    min: Option<f64>,
    max: Option<f64>,
    #[serde(default)]
    choices: Vec<Option<String>>,
    #[serde(default)]
    deprecated: Vec<(Option<String>, String)>,
    removal: Option<serde_json::Value>,
    since: Option<String>,
    #[serde(default)]
    secret: bool,
}

impl RawOpt {
    fn spec(
        self,
        section: &str,
        name: &str,
        deprecated: &mut Vec<((String, String), (String, String))>,
    ) -> OptSpec {
        for (group, old) in self.deprecated {
            let group = group.unwrap_or_else(|| section.to_string());
            deprecated.push(((group, old), (section.to_string(), name.to_string())));
        }
        let removal = match self.removal {
            None | Some(serde_json::Value::Bool(false)) | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(_) => Some(String::new()),
        };
        OptSpec {
            kind: OptType::parse(&self.kind),
            min: self.min,
            max: self.max,
            choices: self.choices,
            removal,
            since: self.since,
            secret: self.secret,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseFile {
    release: toml::Spanned<String>,
}

impl OptionSchema {
    /// Parses a schema file's text.
    pub fn parse(file: &Path, text: &str) -> Result<OptionSchema, String> {
        let raw: RawSchema = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut files = HashMap::new();
        for (id, f) in raw.files {
            let mut schema = FileSchema {
                project: f.project.clone().unwrap_or_else(|| {
                    f.namespaces
                        .first()
                        .and_then(|n| n.split('.').next())
                        .unwrap_or(&id)
                        .to_string()
                }),
                ..Default::default()
            };
            let mut deprecated = Vec::new();
            for (section, opts) in f.sections {
                let opts: Section = opts
                    .into_iter()
                    .map(|(name, o)| {
                        let spec = o.spec(&section, &name, &mut deprecated);
                        (name, spec)
                    })
                    .collect();
                schema.sections.insert(section, opts);
            }
            // An old name that is an option of its own in that section is that option.
            for (old, new) in deprecated {
                let own = schema
                    .sections
                    .get(&old.0)
                    .is_some_and(|s| s.contains_key(&old.1));
                if !own && old != new {
                    schema.deprecated.insert(old, new);
                }
            }
            files.insert(id, schema);
        }
        let mut unused = Vec::new();
        let auth_plugins = raw
            .auth_plugins
            .into_iter()
            .map(|(name, opts)| {
                let opts = opts
                    .into_iter()
                    .map(|(o, spec)| {
                        let s = spec.spec("", &o, &mut unused);
                        (o, s)
                    })
                    .collect();
                (name, opts)
            })
            .collect();
        let auth_common = ["auth_type", "auth_section"]
            .into_iter()
            .map(|n| (n.to_string(), OptSpec::of(OptType::Str)))
            .collect();
        Ok(OptionSchema {
            release: raw.release,
            file: file.to_path_buf(),
            packages: raw.packages,
            files,
            auth_plugins,
            auth_common,
            digest: sha2::Sha256::digest(text.as_bytes()).into(),
        })
    }

    /// The project and version a file's schema came from, for messages: `nova 31.1.0`.
    pub fn project_version(&self, project: &str) -> String {
        match self
            .packages
            .get(project)
            .or_else(|| self.packages.get(&format!("openstack-{project}")))
        {
            Some(v) => format!("{project} {v}"),
            None => project.to_string(),
        }
    }

    /// The release the catalogue is written for: `schema/release.toml`'s `release`.
    /// `None` (and nothing reported) when the catalogue has no option catalogues.
    pub fn catalogue_release(
        templates_dir: &Path,
        tree: &dyn SourceTree,
        sources: &SourceMap,
        diags: &mut Diagnostics,
    ) -> Option<String> {
        let file = templates_dir.join(SCHEMA_DIR).join("release.toml");
        if !tree.exists(&file) {
            return None;
        }
        let text = read_reported(&file, tree, diags)?;
        sources.add(&file, &text, false);
        let doc = tomlfile::parse(&file, &text, diags)?;
        let r = tomlfile::de_table::<ReleaseFile>(&file, &doc, diags)?;
        Some(r.release.into_inner())
    }

    /// Loads the option catalogue of `release` from the catalogue's schema folder.
    pub fn load(
        templates_dir: &Path,
        release: &str,
        tree: &dyn SourceTree,
        diags: &mut Diagnostics,
    ) -> Option<OptionSchema> {
        let dir = templates_dir.join(SCHEMA_DIR);
        let valid = !release.is_empty()
            && release
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
            && !release.starts_with('.');
        let file = dir.join(format!("{release}.json"));
        if !valid || !tree.exists(&file) {
            let mut known: Vec<String> = tree
                .list(&dir)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
                .collect();
            known.sort();
            diags.push(
                Diagnostic::new(
                    format!(
                        "there is no option catalogue of release `{}` ({})",
                        release.escape_debug(),
                        file.display()
                    ),
                    Location::file(&dir),
                )
                .help(format!(
                    "name one of: {}; or make it with `scripts/oslo-schema/generate.sh {}` (docs/catalogue.md)",
                    if known.is_empty() { "(none)".to_string() } else { known.join(", ") },
                    release.escape_debug()
                )),
            );
            return None;
        }
        // A generated file: read, not kept in the source map (it is never quoted).
        let text = read_reported(&file, tree, diags)?;
        match OptionSchema::parse(&file, &text) {
            Ok(s) => Some(s),
            Err(e) => {
                diags.push(
                    Diagnostic::new(
                        format!("the option catalogue is not valid: {e}"),
                        Location::file(&file),
                    )
                    .help(format!(
                        "make it again with `scripts/oslo-schema/generate.sh {release}`"
                    )),
                );
                None
            }
        }
    }
}

/// A file's text, or `None` with the reason in `diags`.
fn read_reported(file: &Path, tree: &dyn SourceTree, diags: &mut Diagnostics) -> Option<String> {
    match tree.read(file) {
        Ok(t) => Some(t),
        Err(e) => {
            diags.push(Diagnostic::new(
                format!("cannot read: {e}"),
                Location::file(file),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"{
      "release": "test",
      "packages": {"nova": "31.1.0"},
      "files": {
        "nova": {"namespaces": ["nova.conf"], "sections": {
          "DEFAULT": {
            "cpu_allocation_ratio": {"type": "float", "min": 0.0},
            "new_name": {"type": "str", "deprecated": [[null, "old_name"], ["api", "older"]]},
            "going": {"type": "bool", "removal": "not used since Yoga", "since": "29.0.0"}
          }
        }}
      },
      "auth_plugins": {"password": {"username": {"type": "str"}}}
    }"#;

    #[test]
    fn deprecated_names_point_at_their_option() {
        let s = OptionSchema::parse(Path::new("t.json"), SMALL).unwrap();
        let nova = &s.files["nova"];
        assert_eq!(
            nova.deprecated
                .get(&("DEFAULT".to_string(), "old_name".to_string())),
            Some(&("DEFAULT".to_string(), "new_name".to_string()))
        );
        assert_eq!(
            nova.deprecated
                .get(&("api".to_string(), "older".to_string())),
            Some(&("DEFAULT".to_string(), "new_name".to_string()))
        );
        let going = &nova.sections["DEFAULT"]["going"];
        assert_eq!(going.kind, OptType::Bool);
        assert_eq!(going.removal.as_deref(), Some("not used since Yoga"));
        assert_eq!(s.project_version("nova"), "nova 31.1.0");
        assert!(s.auth_plugins["password"].contains_key("username"));
    }

    #[test]
    fn a_broken_file_is_an_error_not_a_panic() {
        let e = OptionSchema::parse(Path::new("t.json"), "{\"release\": 3}").unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
    }
}
