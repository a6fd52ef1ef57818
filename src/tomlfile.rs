//! Reading TOML files with locations, collecting every error instead of the first.
//!
//! A file is parsed once into a spanned tree; each part (a section, one `[[nodes]]`
//! entry, one network) is then deserialized on its own, so one bad node does not hide
//! the errors of the next one.

use std::path::Path;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::diagnostics::{Diagnostic, Diagnostics, Location};

/// Parses a TOML document; a syntax error becomes a located diagnostic.
pub fn parse<'a>(
    path: &Path,
    text: &'a str,
    diags: &mut Diagnostics,
) -> Option<Spanned<DeTable<'a>>> {
    match DeTable::parse(text) {
        Ok(table) => Some(table),
        Err(e) => {
            diags.push(
                Diagnostic::new(
                    format!("invalid TOML: {}", first_line(e.message())),
                    Location::new(path, e.span()),
                )
                .help("fix the TOML syntax at this point (see https://toml.io for the format)"),
            );
            None
        }
    }
}

/// Deserializes one spanned value into `T`, turning a serde error into a located
/// diagnostic with advice.
pub fn de<T: DeserializeOwned>(
    path: &Path,
    value: &Spanned<DeValue<'_>>,
    diags: &mut Diagnostics,
) -> Option<T> {
    let whole = value.span();
    match T::deserialize(ValueDeserializer::from(value.clone())) {
        Ok(v) => Some(v),
        Err(e) => {
            let message = first_line(e.message()).to_string();
            let help = advice(&message);
            let mut d = Diagnostic::new(
                message,
                Location::new(path, Some(e.span().unwrap_or(whole))),
            );
            if let Some(help) = help {
                d = d.help(help);
            }
            diags.push(d);
            None
        }
    }
}

/// Deserializes a whole document into `T`.
pub fn de_table<T: DeserializeOwned>(
    path: &Path,
    table: &Spanned<DeTable<'_>>,
    diags: &mut Diagnostics,
) -> Option<T> {
    let span = table.span();
    let value = Spanned::new(span, DeValue::Table(table.get_ref().clone()));
    de(path, &value, diags)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

fn advice(message: &str) -> Option<String> {
    if message.starts_with("unknown field") {
        Some("remove this key or fix its spelling; the keys this table accepts are listed above and in docs/inventory.md".into())
    } else if message.starts_with("missing field") {
        Some("add this key to the table".into())
    } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
        Some("change the value to the expected type".into())
    } else if message.starts_with("unknown variant") {
        Some("use one of the accepted values listed above".into())
    } else {
        None
    }
}

/// The span of a key in a table, for errors that concern the key itself.
pub fn key_span(table: &DeTable<'_>, key: &str) -> Option<std::ops::Range<usize>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(k, _)| k.span())
}

/// Looks up a key of a table.
pub fn get<'t, 'a>(table: &'t DeTable<'a>, key: &str) -> Option<&'t Spanned<DeValue<'a>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(_, v)| v)
}

/// Parses a file of secrets: a syntax error is located, but its message is reduced to
/// a generic one, since the parser's text may quote the value.
pub fn parse_secret<'a>(
    path: &Path,
    text: &'a str,
    diags: &mut Diagnostics,
) -> Option<Spanned<DeTable<'a>>> {
    match DeTable::parse(text) {
        Ok(table) => Some(table),
        Err(e) => {
            diags.push(
                Diagnostic::new(
                    "invalid TOML in the secrets file",
                    Location::new(path, e.span()),
                )
                .help("each line must be `name = \"value\"` (the value is not shown here)"),
            );
            None
        }
    }
}
