//! The one rule for names: every name the inventory and the catalogue give (the cloud,
//! its domain, the undercloud, roles, networks, services, nodes) becomes part of paths,
//! host names, DNS records, shell and Python on the hosts. Each must match its rule, so
//! that none can hold `/`, `..`, whitespace, quotes or control characters.

use std::ops::Range;
use std::path::Path;

use crate::catalogue::{Catalogue, ServiceManifest};
use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::state::{check_host_path, PathUse, Plane};

/// The rules a name can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// A host name (one DNS label, RFC 1123): letters, digits and `-`, 1 to 63
    /// characters, not starting or ending with `-`.
    HostName,
    /// A DNS domain: host-name labels separated by `.`, at most 253 characters.
    Domain,
    /// An identifier (cloud, role, network and service names): letters, digits, `_`
    /// and `-`, 1 to 64 characters, starting with a letter or a digit.
    Identifier,
}

impl NameRule {
    /// What the rule allows, for the help line.
    pub fn help(self) -> &'static str {
        match self {
            NameRule::HostName => "use letters, digits and '-' (at most 63 characters), starting and ending with a letter or digit",
            NameRule::Domain => "use labels of letters, digits and '-' separated by '.', e.g. `cloud.example.com` (at most 253 characters)",
            NameRule::Identifier => "use letters, digits, '_' and '-' (at most 64 characters), starting with a letter or digit",
        }
    }

    /// Whether `name` follows the rule.
    pub fn allows(self, name: &str) -> bool {
        match self {
            NameRule::HostName => label(name),
            NameRule::Domain => name.len() <= 253 && name.split('.').all(label),
            NameRule::Identifier => {
                !name.is_empty()
                    && name.len() <= 64
                    && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            }
        }
    }
}

fn label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A located error if `name` (a `what`: "cloud name", "role name"...) breaks `rule`.
pub fn check(
    what: &str,
    name: &str,
    rule: NameRule,
    file: &Path,
    span: Option<Range<usize>>,
) -> Option<Diagnostic> {
    if rule.allows(name) {
        return None;
    }
    Some(
        Diagnostic::new(
            format!("{what} {} is not valid", shown(name)),
            Location::new(file, span),
        )
        .help(rule.help()),
    )
}

/// A name as an error shows it: quoted, control characters escaped.
fn shown(name: &str) -> String {
    format!("`{}`", name.escape_debug())
}

/// Every name the inventory gives: the cloud's name and domain, the undercloud's name,
/// each network's and role's. (Node names are checked once formatted, with the nodes.)
pub fn check_inventory(
    inv: &crate::inventory::Inventory,
    diags: &mut crate::diagnostics::Diagnostics,
) {
    let f = inv.path.as_path();
    let c = &inv.cloud;
    let u = &inv.undercloud;
    let mut found = vec![
        check(
            "cloud name",
            c.name.get_ref(),
            NameRule::Identifier,
            f,
            Some(c.name.span()),
        ),
        check(
            "domain",
            c.domain.get_ref(),
            NameRule::Domain,
            f,
            Some(c.domain.span()),
        ),
        check(
            "undercloud name",
            u.name.get_ref(),
            NameRule::HostName,
            f,
            Some(u.name.span()),
        ),
    ];
    for (name, _) in &inv.networks {
        found.push(check(
            "network name",
            name.get_ref(),
            NameRule::Identifier,
            f,
            Some(name.span()),
        ));
    }
    for (name, _) in &inv.roles {
        found.push(check(
            "role name",
            name.get_ref(),
            NameRule::Identifier,
            f,
            Some(name.span()),
        ));
    }
    for d in found.into_iter().flatten() {
        diags.push(d);
    }
}

/// Every service of the catalogue: its name (its folder's) is an identifier, and every
/// host path of its manifest stays where its plane's services may write.
pub fn check_catalogue(catalogue: &Catalogue, diags: &mut Diagnostics) {
    let planes = [
        (&catalogue.services, Plane::Overcloud),
        (&catalogue.undercloud_services, Plane::Undercloud),
    ];
    for (services, plane) in planes {
        for svc in services.values() {
            if let Some(d) = check(
                "service name",
                &svc.name,
                NameRule::Identifier,
                &svc.file,
                None,
            ) {
                diags.push(d);
            }
            check_paths(&svc.file, &svc.manifest, plane, diags);
        }
    }
}

/// Every host path of a manifest stays where its plane's services may write
/// ([`check_host_path`]): its files, the files it shares from another service, its
/// directories.
fn check_paths(file: &Path, m: &ServiceManifest, plane: Plane, diags: &mut Diagnostics) {
    let files = m.files.iter().map(|f| (&f.dest, PathUse::File, "file"));
    let shared = m
        .shared_files
        .iter()
        .map(|f| (&f.dest, PathUse::File, "shared file"));
    let dirs = m
        .directories
        .iter()
        .map(|d| (&d.path, PathUse::Directory, "directory"));
    for (path, use_, what) in files.chain(shared).chain(dirs) {
        if let Err(why) = check_host_path(path.get_ref(), plane, use_) {
            diags.push(
                Diagnostic::new(
                    format!("{what} `{}` {why}", path.get_ref().escape_debug()),
                    Location::new(file, Some(path.span())),
                )
                .help(format!(
                    "write it under the service's own folder, {}/<service>/ (or a drop-in folder docs/catalogue.md lists)",
                    plane.config_root()
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        use NameRule::*;
        for ok in ["lab-controller-0", "overcloud-novacompute-19", "a"] {
            assert!(HostName.allows(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a_b",
            "a.b",
            "/tmp/x",
            "../x",
            "a b",
            "a\nb",
            &"x".repeat(64),
        ] {
            assert!(!HostName.allows(bad), "{bad:?}");
        }
        assert!(Domain.allows("lab.test") && Domain.allows("cloud.example.com"));
        for bad in ["", "a..b", ".a", "a.", "$(id).x", "a\nb.c", "a b.c"] {
            assert!(!Domain.allows(bad), "{bad:?}");
        }
        for ok in [
            "Compute",
            "internal_api",
            "nova_compute",
            "lab",
            "CephStorage",
            "2nd",
        ] {
            assert!(Identifier.allows(ok), "{ok}");
        }
        for bad in [
            "",
            "_x",
            "-x",
            "a/b",
            "..",
            "a b",
            "a\nb",
            "a.b",
            "x'y",
            &"x".repeat(65),
        ] {
            assert!(!Identifier.allows(bad), "{bad:?}");
        }
        let d = check("cloud name", "a\nb", Identifier, Path::new("i.toml"), None).unwrap();
        assert!(d.message.contains("`a\\nb`"), "{}", d.message);
    }
}
