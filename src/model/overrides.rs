//! The inventory's oslo.config overrides (`[config.<target>.<section>]`, at the cloud's,
//! a role's and a node's level) must name something that exists: an INI file of the
//! catalogue (its id, `templates/_common/oslo/<id>.toml`) or a service that writes one.
//! An override of a typo would be ignored silently.

use std::path::Path;

use crate::catalogue::Catalogue;
use crate::diagnostics::{edit_distance, Diagnostic, Diagnostics, Location};
use crate::ini_values::ConfigOverrides;
use crate::inventory::Inventory;

/// Every override target of every level.
pub fn check_targets(inv: &Inventory, catalogue: &Catalogue, diags: &mut Diagnostics) {
    let file = inv.path.as_path();
    // Made once for every level (not once per node).
    let known = known_targets(catalogue);
    check_level(file, "[config]", &inv.config, &known, diags);
    for (role, usage) in &inv.roles {
        let level = format!("[roles.{}.config]", role.get_ref());
        check_level(file, &level, &usage.config, &known, diags);
    }
    for (_, node) in &inv.nodes {
        check_level(file, "the node's config", &node.config, &known, diags);
    }
}

/// The targets one can override: oslo file ids, and the services with an oslo file.
fn known_targets(catalogue: &Catalogue) -> Vec<&str> {
    let mut ids: Vec<&str> = catalogue.oslo.keys().map(String::as_str).collect();
    for (name, svc) in &catalogue.services {
        if svc.manifest.files.iter().any(|f| f.oslo.is_some()) && !ids.contains(&name.as_str()) {
            ids.push(name);
        }
    }
    ids.sort();
    ids
}

fn check_level(
    file: &Path,
    level: &str,
    config: &ConfigOverrides,
    known: &[&str],
    diags: &mut Diagnostics,
) {
    for (target, sections) in config {
        if known.binary_search(&target.as_str()).is_ok() {
            continue;
        }
        // The first option written under it: where the override is.
        let span = sections
            .values()
            .flat_map(|o| o.values())
            .map(|v| v.span())
            .min_by_key(|s| s.start);
        let near: Vec<&str> = known
            .iter()
            .copied()
            .filter(|k| similar(k, target))
            .collect();
        let help = if near.is_empty() {
            format!("override one of: {}", known.join(", "))
        } else {
            format!(
                "did you mean `{}`? Overridable: {}",
                near.join("` or `"),
                known.join(", ")
            )
        };
        diags.push(
            Diagnostic::new(
                format!(
                    "{level} overrides `{}`, which is neither an INI file nor a service of the catalogue",
                    target.escape_debug()
                ),
                Location::new(file, span),
            )
            .help(help),
        );
    }
}

/// Whether two names are one edit apart or one is a prefix of the other.
fn similar(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a) || edit_distance(a, b, 1).is_some()
}
