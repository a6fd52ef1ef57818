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
    /// `all_forms`, computed once.
    forms: std::sync::OnceLock<Vec<String>>,
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
                    values.insert(
                        name.to_ascii_lowercase(),
                        (
                            SecretValue::new(v.clone()),
                            SecretOrigin::Environment(k.clone()),
                        ),
                    );
                }
            }
        }
        Secrets {
            values,
            forms: Default::default(),
        }
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

    /// Every form in which a known value can appear in a rendered file (as is,
    /// URL-encoded as in a database or transport URL, JSON-escaped), longest first.
    pub fn all_forms(&self) -> &[String] {
        self.forms.get_or_init(|| self.compute_forms())
    }

    fn compute_forms(&self) -> Vec<String> {
        let mut forms: Vec<String> = Vec::new();
        for (v, _) in self.values.values() {
            forms.extend(forms_of(&v.0));
        }
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        forms.dedup();
        forms
    }

    /// The names of the secrets whose value (in any form) is in `text`, sorted.
    pub fn found_in(&self, text: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .values
            .iter()
            .filter(|(_, (v, _))| forms_of(&v.0).iter().any(|f| text.contains(f.as_str())))
            .map(|(n, _)| n.as_str())
            .collect();
        names.sort();
        names
    }

    /// Replaces every secret value in a text by `(secret)`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for form in self.all_forms() {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), "(secret)");
            }
        }
        out
    }

    /// Whether a text contains any secret value, in any of its forms.
    pub fn appears_in(&self, text: &str) -> bool {
        self.all_forms().iter().any(|f| text.contains(f.as_str()))
    }
}

/// The forms in which a value can appear in a rendered file: as is, URL-encoded (with
/// and without `/`), JSON-escaped.
pub fn forms_of(value: &str) -> Vec<String> {
    if value.is_empty() {
        return Vec::new();
    }
    let json = serde_json::to_string(value).unwrap_or_default();
    let mut forms = vec![
        value.to_string(),
        percent_encode(value, false),
        percent_encode(value, true),
        json.trim_matches('"').to_string(),
        // single-quoted for a shell
        value.replace('\'', "'\\''"),
    ];
    forms.dedup();
    forms
}

/// Percent-encodes everything but RFC 3986's unreserved characters (and `/` if asked).
fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_encoded_forms() {
        let s = Secrets {
            values: [(
                "db".to_string(),
                (SecretValue::new("p@ss/w:rd\"x"), SecretOrigin::File),
            )]
            .into(),
            forms: Default::default(),
        };
        let url = "mysql+pymysql://nova:p%40ss%2Fw%3Ard%22x@db/nova";
        assert!(s.appears_in(url));
        assert_eq!(s.redact(url), "mysql+pymysql://nova:(secret)@db/nova");
        assert_eq!(
            s.redact(r#"{"PW": "p@ss/w:rd\"x"}"#),
            r#"{"PW": "(secret)"}"#
        );
        assert_eq!(format!("{:?}", s.get("db").unwrap()), "(secret)");
    }
}
