//! The oslo.config option values shared by the inventory (`[config]` overrides), the
//! catalogue (shared oslo defaults, a file's `ini`) and rendering: typed values, the
//! sections of an INI file, overrides by file. Data only: merging and writing them is
//! `render::ini`'s job.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// oslo.config overrides: `[config.<file id or service>.<section>] option = value`.
pub type ConfigOverrides = BTreeMap<String, IniSections>;
/// Sections of an INI file, each a table of options.
pub type IniSections = BTreeMap<String, BTreeMap<String, Spanned<IniValue>>>;

/// A value of an oslo.config option.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum IniValue {
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
    List(Vec<IniScalar>),
    Multi { multi: Vec<String> },
}

/// An element of a list option.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum IniScalar {
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
}
