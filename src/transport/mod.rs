//! The SSH transport, on russh: one connection per host reused for the whole run,
//! nodes reached through the undercloud (direct-tcpip, like ProxyJump) with host keys
//! verified on every hop, commands with exit status and a timeout, atomic uploads.

mod hostkeys;
mod session;

use std::path::PathBuf;
use std::time::Duration;

pub use hostkeys::{fingerprint, HostKeyPolicy, Verdict};
pub use session::{Credentials, ExecOutput, Held, Session, UploadFile};

/// How to connect, from the inventory's `[ssh]`.
#[derive(Debug, Clone)]
pub struct SshOptions {
    pub user: String,
    pub private_key: Option<PathBuf>,
    /// Also try the ssh-agent at `SSH_AUTH_SOCK`.
    pub use_agent: bool,
    pub host_keys: HostKeyPolicy,
    pub connect_timeout: Duration,
    /// Keepalive interval; the connection is dropped after 3 unanswered.
    pub keepalive: Duration,
    /// Key-exchange algorithms, most preferred first (russh names).
    pub kex: Vec<String>,
}

/// The key exchange offered first by default: curve25519-sha256 (RFC 8731). The
/// post-quantum hybrid `mlkem768x25519-sha256` is offered too, after it: on these
/// 2-core machines the key exchange dominates the cost of a connection (see
/// docs/performance.md), and OpenSSH before 9.9 does not offer ML-KEM anyway.
pub const DEFAULT_KEX: &[&str] = &[
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "mlkem768x25519-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group14-sha256",
];

/// Key-exchange algorithms the transport can offer.
pub const KNOWN_KEX: &[&str] = &[
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "mlkem768x25519-sha256",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group17-sha512",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group15-sha512",
    "diffie-hellman-group14-sha256",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
];

/// A host to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// Name for messages (the inventory's host name).
    pub name: String,
    pub address: String,
    pub port: u16,
}

/// Why a transport operation failed. Every variant names the host.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{host} ({addr}): connection refused; is sshd running and listening there?")]
    Refused { host: String, addr: String },
    #[error("{host} ({addr}): {stage} timed out after {secs:.1} s; check that the host is up and reachable{via}")]
    Timeout {
        host: String,
        addr: String,
        stage: &'static str,
        secs: f64,
        via: String,
    },
    #[error("{host} ({addr}): unreachable: {message}")]
    Unreachable {
        host: String,
        addr: String,
        message: String,
    },
    #[error("{host} ({addr}): authentication as `{user}` failed (tried: {tried}); check that the key is in the host's authorized_keys")]
    AuthFailed {
        host: String,
        addr: String,
        user: String,
        tried: String,
    },
    #[error("{host} ({addr}): host key {fingerprint} is not in {known_hosts}; nothing was sent. After checking that it is this machine's key, add it (`ssh-keyscan -t ed25519 ADDRESS >> KNOWN_HOSTS`, or `provision ping --accept-new-host-keys`)")]
    UnknownHostKey {
        host: String,
        addr: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("{host} ({addr}): HOST KEY CHANGED: the host presented {fingerprint}, but {known_hosts}:{line} expects {expected}; nothing was sent. If the machine was reinstalled, remove the old entry; otherwise someone may be impersonating it")]
    HostKeyChanged {
        host: String,
        addr: String,
        fingerprint: String,
        expected: String,
        known_hosts: String,
        line: usize,
    },
    #[error("{host}: cannot check host keys: {message}")]
    HostKeysUnreadable { host: String, message: String },
    #[error("cannot load the private key {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("{host}: the jump host {jump} refused to open a tunnel: {message}")]
    Jump {
        host: String,
        jump: String,
        message: String,
    },
    #[error("{host}: the connection was lost during {during}: {message}")]
    Disconnected {
        host: String,
        during: String,
        message: String,
    },
    #[error("{host}: `{command}` did not finish within {secs:.1} s")]
    CommandTimeout {
        host: String,
        command: String,
        secs: f64,
    },
    #[error("{host}: SSH error during {during}: {message}")]
    Ssh {
        host: String,
        during: String,
        message: String,
    },
    #[error("{host}: upload of {path} failed: {message}")]
    Upload {
        host: String,
        path: String,
        message: String,
    },
}

impl TransportError {
    /// What the operator must do first when running again cannot help by itself (a
    /// host key to check, a key to install), step by step; `None` when the fault may
    /// pass (a timeout, a dropped connection) and running again is the remedy.
    pub fn remedy(&self) -> Option<String> {
        // known_hosts names a host on port 22 by its address, else `[address]:port`.
        let pattern = |addr: &str| match addr.rsplit_once(':') {
            Some((a, "22")) => a.to_string(),
            Some((a, p)) => format!("[{a}]:{p}"),
            None => addr.to_string(),
        };
        match self {
            TransportError::HostKeyChanged {
                host,
                addr,
                fingerprint,
                known_hosts,
                line,
                ..
            } => Some(format!(
                "re-running cannot help: {host}'s host key is not the one recorded. On {host}'s console (not over the network), \
                 run `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`: it must print {fingerprint}. If it does (the machine was \
                 reinstalled), remove the old key, `ssh-keygen -R '{p}' -f {known_hosts}` (line {line}), record the new one, \
                 `provision ping INVENTORY --accept-new-host-keys`, and apply again. If it does not, do not connect: \
                 something else answers at {addr}.",
                p = pattern(addr)
            )),
            TransportError::UnknownHostKey {
                host,
                addr,
                fingerprint,
                known_hosts,
            } => Some(format!(
                "re-running cannot help: {known_hosts} has no key for {host} ({addr}). Check on its console that \
                 `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints {fingerprint}, then record it \
                 (`provision ping INVENTORY --accept-new-host-keys`) and apply again."
            )),
            TransportError::AuthFailed { host, user, .. } => Some(format!(
                "re-running cannot help: {host} refuses the inventory's SSH key for `{user}`. Add its public key to \
                 ~{user}/.ssh/authorized_keys on {host} (or fix [ssh] in the inventory), then apply again."
            )),
            TransportError::KeyFile { path, .. } => Some(format!(
                "re-running cannot help: fix the private key {path} (the inventory's [ssh] key), then apply again."
            )),
            TransportError::HostKeysUnreadable { host, .. } => Some(format!(
                "re-running cannot help: make the known_hosts file readable (it checks {host}'s key), then apply again."
            )),
            _ => None,
        }
    }
}

/// Quotes a string for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Quotes each word for a POSIX shell, joined by spaces.
pub fn shell_quote_all<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quotes() {
        assert_eq!(
            shell_quote("/etc/overcloud/a.conf"),
            "/etc/overcloud/a.conf"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b;rm"), "'a b;rm'");
    }
}
