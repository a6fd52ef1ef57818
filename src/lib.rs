//! `provision`: a declarative, TripleO-style undercloud/overcloud provisioner.
//!
//! The pipeline, one module each: [`inventory`] (parse) -> [`model`] (hosts, roles,
//! networks, addresses) -> [`render`] (desired files and containers per host). Input
//! files come through [`source`]; problems are [`diagnostics`].

pub mod apply;
pub mod baremetal;
pub mod catalogue;
pub mod diagnostics;
pub mod diff;
pub mod evaluate;
pub mod git;
pub mod ini_values;
pub mod inventory;
pub mod model;
pub mod plan;
pub mod render;
pub mod report;
pub mod source;
pub mod state;
pub mod tomlfile;
pub mod transport;
