//! The apply lock, held on the undercloud: two applies against the same cloud cannot
//! run at once. It is a `flock` held by a command that runs as long as this process's
//! SSH connection to the undercloud lives: released when apply ends, and also when it
//! crashes or its connection drops (the remote command then reads end of file).

use std::time::Duration;

use thiserror::Error;

use crate::transport::{shell_quote, Held, Session, TransportError};

pub use crate::state::STATE_DIR;

/// Exit status of `flock` when another holds the lock.
const BUSY: u32 = 75;

#[derive(Debug, Error)]
pub enum LockError {
    #[error("another apply of cloud `{cloud}` is running: it holds the lock {path} on {undercloud} ({holder}); wait for it to finish (a crashed apply releases the lock when its SSH connection drops)")]
    Busy {
        cloud: String,
        undercloud: String,
        path: String,
        holder: String,
    },
    #[error("cannot take the apply lock {path} on {undercloud}: {message}")]
    Failed {
        undercloud: String,
        path: String,
        message: String,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// The held lock. Release it with [`ApplyLock::release`]; dropping it, or losing the
/// connection, releases it too.
pub struct ApplyLock {
    held: Held,
    pub path: String,
}

/// The lock file of a cloud.
pub fn lock_path(cloud: &str) -> String {
    format!("{STATE_DIR}/{cloud}.lock")
}

/// The command that takes the lock and holds it while its standard input is open.
pub fn lock_command(path: &str, holder: &str) -> String {
    let p = shell_quote(path);
    format!(
        "mkdir -p {dir} || exit 1; \
         flock --nonblock --conflict-exit-code {BUSY} {p} sh -c 'printf \"%s\\n\" \"$1\" > \"$2.holder\"; echo locked; cat >/dev/null; rm -f \"$2.holder\"' lock {h} {p}; \
         rc=$?; [ $rc = {BUSY} ] && echo \"busy $(cat {p}.holder 2>/dev/null)\"; exit $rc",
        dir = shell_quote(STATE_DIR),
        h = shell_quote(holder),
    )
}

/// Takes the lock of `cloud` on the undercloud, or says who holds it.
pub async fn acquire(
    undercloud: &Session,
    cloud: &str,
    holder: &str,
) -> Result<ApplyLock, LockError> {
    let path = lock_path(cloud);
    let held = undercloud
        .hold(&lock_command(&path, holder), Duration::from_secs(30))
        .await?;
    if held.is_holding() && held.first_line == "locked" {
        return Ok(ApplyLock { held, path });
    }
    let undercloud_name = undercloud.target.name.clone();
    let busy = held.first_line.starts_with("busy")
        || held
            .exited
            .as_ref()
            .map(|o| o.status == Some(BUSY))
            .unwrap_or(false);
    match &held.exited {
        _ if busy => Err(LockError::Busy {
            cloud: cloud.to_string(),
            undercloud: undercloud_name,
            path,
            holder: held
                .first_line
                .strip_prefix("busy ")
                .filter(|s| !s.trim().is_empty())
                .unwrap_or("holder unknown")
                .to_string(),
        }),
        Some(out) => Err(LockError::Failed {
            undercloud: undercloud_name,
            path,
            message: format!("exit status {:?}: {}", out.status, out.stderr_text().trim()),
        }),
        None => Err(LockError::Failed {
            undercloud: undercloud_name,
            path,
            message: format!("unexpected answer `{}`", held.first_line),
        }),
    }
}

impl ApplyLock {
    pub async fn release(self) {
        self.held.release().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_command_runs_in_a_shell() {
        let c = lock_command("/var/lib/provision/lab.lock", "root@ws pid 12 run 2026");
        assert!(c.starts_with("mkdir -p /var/lib/provision || exit 1; flock --nonblock --conflict-exit-code 75 /var/lib/provision/lab.lock sh -c"), "{c}");
        assert!(
            c.contains("lock 'root@ws pid 12 run 2026' /var/lib/provision/lab.lock;"),
            "{c}"
        );
        // A real shell parses it (syntax only).
        crate::host::script::assert_sh_syntax(&c);
    }
}
