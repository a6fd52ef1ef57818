//! Where BMC and introspection commands run. The BMC network is reachable only from the
//! undercloud, so every BMC call is a command run there ([`Session`]); tests, and a
//! provision running on the undercloud itself, run them locally ([`LocalRunner`]).
//! Secrets go on the command's standard input, never on its command line.

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::transport::{ExecOutput, Session, TransportError};

/// The future a [`Runner`] returns.
pub type RunFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ExecOutput, TransportError>> + Send + 'a>>;

/// Runs a shell command with the given standard input (then end of file), within
/// `timeout`.
pub trait Runner: Send + Sync {
    fn run<'a>(&'a self, command: &'a str, stdin: &'a [u8], timeout: Duration) -> RunFuture<'a>;
    /// The machine the commands run on, for messages.
    fn name(&self) -> &str;
}

impl Runner for Session {
    fn run<'a>(&'a self, command: &'a str, stdin: &'a [u8], timeout: Duration) -> RunFuture<'a> {
        Box::pin(async move {
            // Always a stdin, even an empty one: the remote command gets its end of file
            // (curl -K - would otherwise wait for its configuration forever).
            let mut input: &[u8] = stdin;
            self.exec(command, Some(&mut input), timeout).await
        })
    }
    fn name(&self) -> &str {
        &self.target.name
    }
}

/// Runs `/bin/sh -c COMMAND` on this machine, in its own process group (killed as a whole
/// on timeout).
#[derive(Debug, Clone)]
pub struct LocalRunner {
    name: String,
    env: Vec<(String, String)>,
}

impl Default for LocalRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalRunner {
    pub fn new() -> Self {
        LocalRunner {
            name: "localhost".into(),
            env: Vec::new(),
        }
    }
    /// The name used in messages (default `localhost`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Sets an environment variable of the shell (e.g. `PATH`).
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    async fn run_local(
        &self,
        command: &str,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| TransportError::Unreachable {
            host: self.name.clone(),
            addr: "local".into(),
            message: format!("cannot start `sh -c`: {e}"),
        })?;
        let pid = child.id();
        let mut input = child.stdin.take();
        let data = stdin.to_vec();
        let writer = async move {
            if let Some(w) = input.as_mut() {
                // A command that exits without reading its input is not an error.
                let _ = w.write_all(&data).await;
                let _ = w.shutdown().await;
            }
            drop(input);
        };
        let run = async {
            let (_, out) = tokio::join!(writer, child.wait_with_output());
            out
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(out)) => {
                use std::os::unix::process::ExitStatusExt;
                Ok(ExecOutput {
                    status: out.status.code().map(|c| c as u32),
                    signal: out.status.signal().map(|s| format!("signal {s}")),
                    stdout: out.stdout,
                    stderr: out.stderr,
                })
            }
            Ok(Err(e)) => Err(TransportError::Disconnected {
                host: self.name.clone(),
                during: format!("`{}`", first_words(command)),
                message: e.to_string(),
            }),
            Err(_) => {
                // The shell is killed on drop; its children are in its process group.
                if let Some(pid) = pid {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", "--", &format!("-{pid}")])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
                Err(TransportError::CommandTimeout {
                    host: self.name.clone(),
                    command: first_words(command),
                    secs: timeout.as_secs_f64(),
                })
            }
        }
    }
}

impl Runner for LocalRunner {
    fn run<'a>(&'a self, command: &'a str, stdin: &'a [u8], timeout: Duration) -> RunFuture<'a> {
        Box::pin(self.run_local(command, stdin, timeout))
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// The start of a command, for messages (never its input).
fn first_words(command: &str) -> String {
    let line = command.lines().next().unwrap_or("");
    let mut s: String = line.chars().take(60).collect();
    if s.len() < command.len() {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_runner_passes_stdin_and_status() {
        let r = LocalRunner::new().with_env("GREETING", "hi");
        let out = r
            .run(
                "read -r x; echo \"$GREETING $x\"; echo err >&2; exit 3",
                b"there\n",
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(out.stdout_text(), "hi there\n");
        assert_eq!(out.stderr_text(), "err\n");
        assert_eq!(out.status, Some(3));
        assert_eq!(r.name(), "localhost");
    }

    #[tokio::test]
    async fn local_runner_times_out_and_kills() {
        let r = LocalRunner::new().named("box");
        let start = std::time::Instant::now();
        let err = r
            .run("sleep 30 & wait", b"", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(err, TransportError::CommandTimeout { ref host, .. } if host == "box"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn command_not_reading_stdin_is_fine() {
        let out = LocalRunner::new()
            .run("true", &[b'x'; 1 << 20], Duration::from_secs(10))
            .await
            .unwrap();
        assert!(out.success());
    }
}
