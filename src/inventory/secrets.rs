//! Secret values: read from a separate file and the environment, referenced by name,
//! never printed. [`SecretValue`]'s `Debug` and `Display` show `(secret)`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use toml::de::DeValue;

use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::source::{SourceMap, SourceTree};
use crate::tomlfile;

/// A secret's value. Formatting it never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(v: impl Into<String>) -> Self {
        Self(v.into())
    }
    /// The value itself, for the destination files that need it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(secret)")
    }
}
impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(secret)")
    }
}

/// Where a secret's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    File,
    Environment(String),
}

/// All secret values known to a run.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, (SecretValue, SecretOrigin)>,
}

impl Secrets {
    /// Reads the secrets file (if any) and the environment variables with the prefix;
    /// the environment wins.
    pub fn load(
        file: Option<&Path>,
        env_prefix: &str,
        env: &[(String, String)],
        tree: &dyn SourceTree,
        sources: &SourceMap,
        diags: &mut Diagnostics,
    ) -> Secrets {
        let mut values = BTreeMap::new();
        if let Some(path) = file {
            match tree.read(path) {
                Ok(text) => {
                    sources.add(path, &text, true);
                    if let Some(doc) = tomlfile::parse_secret(path, &text, diags) {
                        for (key, value) in doc.get_ref().iter() {
                            match value.get_ref() {
                                DeValue::String(s) => {
                                    values.insert(key.get_ref().to_string(), (SecretValue::new(s.to_string()), SecretOrigin::File));
                                }
                                other => diags.push(
                                    Diagnostic::new(
                                        format!("secret `{}` must be a string, not {}", key.get_ref(), other.type_str()),
                                        Location::new(path, Some(key.span())),
                                    )
                                    .help("quote the value: name = \"value\""),
                                ),
                            }
                        }
                    }
                }
                Err(e) => diags.push(
                    Diagnostic::new(format!("cannot read the secrets file: {e}"), Location::file(path))
                        .help("create it (name = \"value\" lines, mode 0600) or fix `[secrets] file` in the inventory"),
                ),
            }
        }
        for (k, v) in env {
            if let Some(name) = k.strip_prefix(env_prefix) {
                if !name.is_empty() {
                    values.insert(name.to_ascii_lowercase(), (SecretValue::new(v.clone()), SecretOrigin::Environment(k.clone())));
                }
            }
        }
        Secrets { values }
    }

    pub fn get(&self, name: &str) -> Option<&SecretValue> {
        self.values.get(name).map(|(v, _)| v)
    }

    /// The names of every known secret.
    pub fn names(&self) -> Vec<&str> {
        self.values.keys().map(String::as_str).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Every known value, longest first (for redaction).
    pub fn all_values(&self) -> Vec<&SecretValue> {
        let mut v: Vec<&SecretValue> = self.values.values().map(|(v, _)| v).filter(|v| !v.0.is_empty()).collect();
        v.sort_by_key(|v| std::cmp::Reverse(v.0.len()));
        v
    }

    /// Replaces every secret value in a text by `(secret)`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.all_values() {
            if out.contains(v.expose()) {
                out = out.replace(v.expose(), "(secret)");
            }
        }
        out
    }

    /// Whether a text contains any secret value.
    pub fn appears_in(&self, text: &str) -> bool {
        self.all_values().iter().any(|v| text.contains(v.expose()))
    }
}
