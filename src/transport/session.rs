//! One SSH connection to one host, and what runs over it: commands, with their exit
//! status, output and a timeout, and commands held running. Connecting is in
//! `session/connect.rs`, uploads in `session/upload.rs`.

mod connect;
mod upload;

use std::time::Duration;

use russh::client::{self, Handle};
use russh::ChannelMsg;
use tokio::io::AsyncRead;

use super::{Target, TransportError};
use connect::Client;
pub use connect::Credentials;
pub use upload::UploadFile;

/// The result of a remote command.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// `None` when the command was killed by a signal.
    pub status: Option<u32>,
    pub signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// An authenticated connection to one host; channels are opened on it for every
/// command, so a run pays one handshake per host.
pub struct Session {
    pub target: Target,
    handle: Handle<Client>,
}

impl Session {
    /// Runs a command, feeding it `stdin` if given, and collects its exit status and
    /// output. Output that arrives after the exit status is still collected.
    pub async fn exec(
        &self,
        command: &str,
        stdin: Option<&mut (dyn AsyncRead + Unpin + Send)>,
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let run = async {
            let mut channel = self
                .handle
                .channel_open_session()
                .await
                .map_err(|e| self.lost("opening a channel", e))?;
            channel
                .exec(true, command)
                .await
                .map_err(|e| self.lost("starting the command", e))?;
            if let Some(input) = stdin {
                // russh waits for window space without noticing a dead connection: race it.
                tokio::select! {
                    sent = channel.data(input) => sent.map_err(|e| self.lost("sending input", e))?,
                    _ = self.closed() => {
                        return Err(TransportError::Disconnected {
                            host: self.target.name.clone(),
                            during: "sending input".into(),
                            message: "the connection closed".into(),
                        })
                    }
                }
                channel
                    .eof()
                    .await
                    .map_err(|e| self.lost("sending input", e))?;
            }
            let mut out = ExecOutput::default();
            let mut exited = false;
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        out.stderr.extend_from_slice(&data)
                    }
                    ChannelMsg::ExitStatus { exit_status } => {
                        out.status = Some(exit_status);
                        exited = true;
                    }
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        out.signal = Some(format!("{signal_name:?}"));
                        exited = true;
                    }
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            if !exited {
                return Err(TransportError::Disconnected {
                    host: self.target.name.clone(),
                    during: format!("`{}`", first_words(command)),
                    message: "the channel closed before the command's exit status arrived".into(),
                });
            }
            Ok(out)
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::CommandTimeout {
                host: self.target.name.clone(),
                command: first_words(command),
                secs: timeout.as_secs_f64(),
            }),
        }
    }

    /// Resolves when the connection is closed (checked every 100 ms).
    async fn closed(&self) {
        while !self.handle.is_closed() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts `command` and keeps it running with its standard input open, until the
    /// returned [`Held`] is released or dropped, or the connection dies (the remote
    /// command then reads end of file). Waits for the command's first line of output,
    /// or its exit: a lock holder prints a line once it holds the lock.
    pub async fn hold(&self, command: &str, timeout: Duration) -> Result<Held, TransportError> {
        let start = async {
            let channel = self
                .handle
                .channel_open_session()
                .await
                .map_err(|e| self.lost("opening a channel", e))?;
            channel
                .exec(true, command)
                .await
                .map_err(|e| self.lost("starting the command", e))?;
            let mut channel = channel;
            let mut out = ExecOutput::default();
            loop {
                match channel.wait().await {
                    Some(ChannelMsg::Data { data }) => {
                        out.stdout.extend_from_slice(&data);
                        if out.stdout.contains(&b'\n') {
                            return Ok(Held {
                                channel: Some(channel),
                                first_line: out
                                    .stdout_text()
                                    .lines()
                                    .next()
                                    .unwrap_or("")
                                    .to_string(),
                                exited: None,
                            });
                        }
                    }
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        out.stderr.extend_from_slice(&data)
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => out.status = Some(exit_status),
                    Some(ChannelMsg::Close) | None => {
                        return Ok(Held {
                            channel: None,
                            first_line: out.stdout_text().lines().next().unwrap_or("").to_string(),
                            exited: Some(out),
                        })
                    }
                    Some(_) => {}
                }
            }
        };
        match tokio::time::timeout(timeout, start).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::CommandTimeout {
                host: self.target.name.clone(),
                command: first_words(command),
                secs: timeout.as_secs_f64(),
            }),
        }
    }

    /// Closes the connection.
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    fn lost(&self, during: &str, e: russh::Error) -> TransportError {
        TransportError::Disconnected {
            host: self.target.name.clone(),
            during: during.to_string(),
            message: e.to_string(),
        }
    }
}

/// A remote command kept running (see [`Session::hold`]).
pub struct Held {
    channel: Option<russh::Channel<client::Msg>>,
    /// The first line the command printed.
    pub first_line: String,
    /// The command's output and status, when it ended instead of holding.
    pub exited: Option<ExecOutput>,
}

impl Held {
    /// Whether the command is still running.
    pub fn is_holding(&self) -> bool {
        self.channel.is_some()
    }

    /// Ends the command: closes its standard input and waits (bounded) for it to exit.
    pub async fn release(mut self) {
        if let Some(channel) = self.channel.take() {
            let _ = channel.eof().await;
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                let mut channel = channel;
                while let Some(msg) = channel.wait().await {
                    if matches!(msg, ChannelMsg::Close) {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

/// The first words of a command, for messages (never its input).
fn first_words(command: &str) -> String {
    let mut s: String = command.chars().take(60).collect();
    if command.chars().count() > 60 {
        s.push('…');
    }
    s
}
