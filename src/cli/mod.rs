//! The drivers of the commands that reach hosts: `plan` and `apply` (converge.rs),
//! `status` (status.rs). They wire the library's pipeline to the terminal.

pub mod converge;
pub mod nodes;
pub mod status;
