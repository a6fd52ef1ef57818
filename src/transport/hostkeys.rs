//! Host-key verification against an OpenSSH known_hosts file (plain and hashed
//! entries). Unknown and changed keys are refused unless first contact is explicitly
//! allowed, in which case an unknown key (never a changed one) is recorded.

use std::path::{Path, PathBuf};

use russh::keys::ssh_key::{HashAlg, PublicKey};

/// What was decided about a server's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Known,
    /// Recorded in known_hosts on first contact (only with `accept_new`).
    Learned,
    Unknown {
        fingerprint: String,
    },
    Changed {
        fingerprint: String,
        expected: Vec<String>,
        line: usize,
    },
    Unreadable {
        message: String,
    },
}

/// How host keys are checked.
#[derive(Debug, Clone)]
pub struct HostKeyPolicy {
    pub known_hosts: PathBuf,
    /// Verify at all; `false` trusts any key (the inventory's loud opt-out).
    pub strict: bool,
    /// Record unknown keys instead of refusing them (explicit first-contact mode).
    pub accept_new: bool,
}

pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

impl HostKeyPolicy {
    /// Checks `key` presented by `host:port`.
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        if !self.strict {
            return Verdict::Known;
        }
        let recorded =
            match russh::keys::known_hosts::known_host_keys_path(host, port, &self.known_hosts) {
                Ok(r) => r,
                Err(e) => {
                    return Verdict::Unreadable {
                        message: format!("{}: {e}", self.known_hosts.display()),
                    }
                }
            };
        if recorded.iter().any(|(_, k)| k.key_data() == key.key_data()) {
            return Verdict::Known;
        }
        if let Some((line, _)) = recorded
            .iter()
            .find(|(_, k)| k.algorithm() == key.algorithm())
        {
            return Verdict::Changed {
                fingerprint: fingerprint(key),
                expected: recorded
                    .iter()
                    .filter(|(_, k)| k.algorithm() == key.algorithm())
                    .map(|(_, k)| fingerprint(k))
                    .collect(),
                line: *line,
            };
        }
        if self.accept_new {
            return match russh::keys::known_hosts::learn_known_hosts_path(
                host,
                port,
                key,
                &self.known_hosts,
            ) {
                Ok(()) => Verdict::Learned,
                Err(e) => Verdict::Unreadable {
                    message: format!(
                        "cannot record the key in {}: {e}",
                        self.known_hosts.display()
                    ),
                },
            };
        }
        Verdict::Unknown {
            fingerprint: fingerprint(key),
        }
    }

    pub fn path(&self) -> &Path {
        &self.known_hosts
    }
}
