//! The one oslo.config INI mechanism: layers of structured options merged in order,
//! then written in a stable order. See docs/catalogue.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::diagnostics::{Diagnostic, Location};
use crate::ini_values::{IniScalar, IniValue};

/// A rendered option value.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    One(String),
    Many(Vec<String>),
}

/// Sections (DEFAULT first when written) of rendered options.
pub type RenderedIni = BTreeMap<String, BTreeMap<String, Rendered>>;

/// Writes an oslo.config INI file: `[DEFAULT]` first, then sections and options sorted.
pub fn write(header: &str, ini: &RenderedIni) -> String {
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    let mut names: Vec<&String> = ini.keys().collect();
    names.sort_by_key(|n| (n.as_str() != "DEFAULT", n.as_str()));
    for (i, section) in names.into_iter().enumerate() {
        let options = &ini[section];
        if options.is_empty() && section != "DEFAULT" {
            continue;
        }
        if i > 0 || !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "[{section}]");
        for (key, value) in options {
            match value {
                Rendered::One(v) => {
                    let _ = writeln!(out, "{key} = {v}");
                }
                Rendered::Many(vs) => {
                    for v in vs {
                        let _ = writeln!(out, "{key} = {v}");
                    }
                }
            }
        }
    }
    out
}

/// A section or option name must not change the file's structure: letters, digits and
/// `_.-` (and `:` in a section), as oslo.config's names are. Else an error located at
/// `at()` (made only then).
pub fn check_name(what: &str, name: &str, at: impl FnOnce() -> Location) -> Result<(), Diagnostic> {
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c) || (what == "section" && c == ':');
    if !name.is_empty() && name.chars().all(allowed) {
        return Ok(());
    }
    Err(Diagnostic::new(
        format!(
            "INI {what} name `{}` is not valid: it would change the file's structure",
            name.escape_debug()
        ),
        at(),
    )
    .help(format!(
        "an oslo.config {what} name holds letters, digits and `_.-`{} only",
        if what == "section" { " (and `:`)" } else { "" }
    )))
}

/// A value must land on its option's line: no newline, carriage return or other
/// control character (a tab is kept). Else a located error.
pub fn check_value(
    section: &str,
    key: &str,
    v: &Rendered,
    at: &Location,
) -> Result<(), Diagnostic> {
    let values: Vec<&String> = match v {
        Rendered::One(s) => vec![s],
        Rendered::Many(vs) => vs.iter().collect(),
    };
    for s in values {
        if let Some(c) = s.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(Diagnostic::new(
                format!(
                    "the value of [{section}] {key} holds {c:?}: it would add lines to the INI file",
                ),
                at.clone(),
            )
            .help("write the value on one line; a list is a TOML array (or `{ multi = [...] }` for a repeated option)"));
        }
    }
    Ok(())
}

/// Formats a scalar the way oslo.config reads it.
pub fn scalar(v: &IniScalar) -> String {
    match v {
        IniScalar::Bool(b) => b.to_string(),
        IniScalar::Integer(i) => i.to_string(),
        IniScalar::Float(f) => float(*f),
        IniScalar::String(s) => s.clone(),
    }
}

fn float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        f.to_string()
    }
}

/// Formats a non-string value (strings are templates, rendered by the caller).
pub fn plain(v: &IniValue) -> Option<Rendered> {
    match v {
        IniValue::Bool(b) => Some(Rendered::One(b.to_string())),
        IniValue::Integer(i) => Some(Rendered::One(i.to_string())),
        IniValue::Float(f) => Some(Rendered::One(float(*f))),
        IniValue::String(_) | IniValue::List(_) | IniValue::Multi { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_first_then_sorted() {
        let mut ini = RenderedIni::new();
        ini.entry("database".into())
            .or_default()
            .insert("connection".into(), Rendered::One("x".into()));
        ini.entry("DEFAULT".into())
            .or_default()
            .insert("debug".into(), Rendered::One("false".into()));
        ini.entry("DEFAULT".into())
            .or_default()
            .insert("allow".into(), Rendered::Many(vec!["a".into(), "b".into()]));
        let text = write("generated", &ini);
        assert_eq!(text, "# generated\n\n[DEFAULT]\nallow = a\nallow = b\ndebug = false\n\n[database]\nconnection = x\n");
    }

    #[test]
    fn floats_keep_a_decimal_point() {
        assert_eq!(scalar(&IniScalar::Float(4.0)), "4.0");
        assert_eq!(scalar(&IniScalar::Float(1.5)), "1.5");
    }
}
