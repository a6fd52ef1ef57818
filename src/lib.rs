//! `provision`: a declarative, TripleO-style undercloud/overcloud provisioner.
//!
//! The pipeline, one module each (docs/architecture.md): [`inventory`] (parse) ->
//! [`model`] (hosts, roles, networks, addresses) -> [`render`] (the desired [`state`]
//! of every host) -> [`plan`] (desired state and [`facts`] decided into one list of
//! changes) -> [`apply`] (stages and steps executing that list) -> [`report`]
//! (progress, event log). At the edges: [`host`] (what apply needs of a machine,
//! behind traits: SSH through [`transport`], or a fake) and [`baremetal`] (BMC drivers).
//! Input files come through [`source`]; problems are [`diagnostics`].

pub mod apply;
pub mod baremetal;
pub mod catalogue;
pub mod change;
pub mod diagnostics;
pub mod diff;
pub mod evaluate;
pub mod facts;
pub mod git;
pub mod host;
pub mod ini_values;
pub mod interrupt;
pub mod inventory;
pub mod keys;
pub mod model;
pub mod names;
pub mod plan;
pub mod render;
pub mod report;
pub mod source;
pub mod state;
pub mod tomlfile;
pub mod transport;
