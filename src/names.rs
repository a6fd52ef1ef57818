//! The one rule for names: every name the inventory and the catalogue give (the cloud,
//! its domain, the undercloud, roles, networks, services, nodes) becomes part of paths,
//! host names, DNS records, shell and Python on the hosts. Each must match its rule, so
//! that none can hold `/`, `..`, whitespace, quotes or control characters.

use std::ops::Range;
use std::path::Path;

use crate::diagnostics::{Diagnostic, Location};

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
