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
            write_option(&mut out, key, value);
        }
    }
    out
}

/// An INI file written as [`write`] writes it, for hosts that differ only in a few of
/// its options (slots): the lines of the others written once, each host's own values
/// put in their places.
#[derive(Debug)]
pub struct IniTemplate {
    /// As [`write`] orders them: `[DEFAULT]` first, then sorted.
    sections: Vec<(String, Vec<Item>)>,
}

#[derive(Debug)]
enum Item {
    /// The lines of an option the same on every host.
    Fixed(String),
    /// The option written with a host's value number `.1` (`.0`: its name).
    Slot(String, usize),
}

impl IniTemplate {
    /// The file of `fixed` (its sections, empty ones included, and the options the same
    /// on every host) and of `slots` (section and option of each host's own value, by
    /// number, none of them in `fixed`).
    pub fn new(fixed: &RenderedIni, slots: &[(String, String)]) -> IniTemplate {
        let mut merged: BTreeMap<&str, BTreeMap<&str, Item>> = BTreeMap::new();
        for (section, options) in fixed {
            let sec = merged.entry(section.as_str()).or_default();
            for (key, value) in options {
                let mut lines = String::new();
                write_option(&mut lines, key, value);
                sec.insert(key.as_str(), Item::Fixed(lines));
            }
        }
        for (i, (section, key)) in slots.iter().enumerate() {
            merged
                .entry(section.as_str())
                .or_default()
                .insert(key.as_str(), Item::Slot(key.clone(), i));
        }
        let mut sections: Vec<(String, Vec<Item>)> = merged
            .into_iter()
            .map(|(name, items)| (name.to_string(), items.into_values().collect()))
            .collect();
        sections.sort_by(|a, b| (a.0 != "DEFAULT", &a.0).cmp(&(b.0 != "DEFAULT", &b.0)));
        IniTemplate { sections }
    }

    /// The file with `values` in the slots (`None`: the option is left out), exactly as
    /// [`write`] writes the whole file.
    pub fn write(&self, header: &str, values: &[Option<Rendered>]) -> String {
        let mut out = String::with_capacity(self.len_hint());
        for line in header.lines() {
            let _ = writeln!(out, "# {line}");
        }
        for (i, (section, items)) in self.sections.iter().enumerate() {
            let written = items.iter().any(|item| match item {
                Item::Fixed(_) => true,
                Item::Slot(_, n) => values.get(*n).is_some_and(Option::is_some),
            });
            if !written && section != "DEFAULT" {
                continue;
            }
            if i > 0 || !out.is_empty() {
                out.push('\n');
            }
            let _ = writeln!(out, "[{section}]");
            for item in items {
                match item {
                    Item::Fixed(lines) => out.push_str(lines),
                    Item::Slot(key, n) => {
                        if let Some(Some(v)) = values.get(*n) {
                            write_option(&mut out, key, v);
                        }
                    }
                }
            }
        }
        out
    }

    fn len_hint(&self) -> usize {
        self.sections
            .iter()
            .flat_map(|(_, items)| items)
            .map(|i| match i {
                Item::Fixed(l) => l.len(),
                Item::Slot(k, _) => k.len() + 24,
            })
            .sum::<usize>()
            + 256
    }
}

/// An option's lines: `key = value`, once per value of a multi-valued one.
fn write_option(out: &mut String, key: &str, value: &Rendered) {
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
    fn a_template_with_its_slots_filled_writes_what_write_writes() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        // Options of a few sections, each fixed, a slot with a value, or a slot left out.
        let option = (
            prop::sample::select(vec!["DEFAULT", "api", "database", "zeta"]),
            prop::sample::select(vec!["a", "b", "host", "my_ip", "z"]),
            0..4u8,
            prop::collection::vec("[a-z0-9.]{0,6}", 1..3),
        );
        let strategy = (
            prop::collection::vec(option, 0..12),
            prop::sample::select(vec!["", "nova.conf for x on h", "a\nb"]),
        );
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: 2000,
                failure_persistence: None,
                ..Config::default()
            },
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        );
        runner
            .run(&strategy, |(options, header)| {
                let (mut whole, mut fixed) = (RenderedIni::new(), RenderedIni::new());
                let mut slots: Vec<(String, String)> = Vec::new();
                let mut values: Vec<Option<Rendered>> = Vec::new();
                let mut seen = std::collections::BTreeSet::new();
                for (section, key, how, vs) in options {
                    // Every section of the file is in both, as render_ini makes them.
                    whole.entry(section.to_string()).or_default();
                    fixed.entry(section.to_string()).or_default();
                    if !seen.insert((section, key)) {
                        continue;
                    }
                    let value = if vs.len() > 1 {
                        Rendered::Many(vs)
                    } else {
                        Rendered::One(vs[0].clone())
                    };
                    match how {
                        0 | 1 => {
                            fixed
                                .get_mut(section)
                                .unwrap()
                                .insert(key.into(), value.clone());
                            whole.get_mut(section).unwrap().insert(key.into(), value);
                        }
                        2 => {
                            slots.push((section.into(), key.into()));
                            values.push(Some(value.clone()));
                            whole.get_mut(section).unwrap().insert(key.into(), value);
                        }
                        _ => {
                            slots.push((section.into(), key.into()));
                            values.push(None);
                        }
                    }
                }
                let t = IniTemplate::new(&fixed, &slots);
                prop_assert_eq!(t.write(header, &values), write(header, &whole));
                Ok(())
            })
            .unwrap();
    }

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
