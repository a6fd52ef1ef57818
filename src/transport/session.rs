//! One SSH connection to one host, and what runs over it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::ChannelMsg;
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;

use super::hostkeys::{HostKeyPolicy, Verdict};
use super::{shell_quote, SshOptions, Target, TransportError};

/// The client's keys, loaded once for the whole run.
#[derive(Clone)]
pub struct Credentials {
    key: Option<Arc<PrivateKey>>,
    key_label: String,
    agent: bool,
}

impl Credentials {
    /// Loads the private key file (passphrase-less) and notes whether the agent is usable.
    pub fn load(opts: &SshOptions) -> Result<Credentials, TransportError> {
        let key = match &opts.private_key {
            Some(path) => Some(Arc::new(russh::keys::load_secret_key(path, None).map_err(|e| TransportError::KeyFile {
                path: path.display().to_string(),
                message: format!("{e} (an unencrypted OpenSSH or PEM key is needed; use the ssh-agent for a key with a passphrase)"),
            })?)),
            None => None,
        };
        let agent = opts.use_agent && std::env::var_os("SSH_AUTH_SOCK").is_some();
        let key_label = opts
            .private_key
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Ok(Credentials {
            key,
            key_label,
            agent,
        })
    }
}

/// The russh handler: host-key verification, with the verdict kept for the error.
struct Client {
    host: String,
    port: u16,
    policy: HostKeyPolicy,
    verdict: Arc<Mutex<Option<Verdict>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                self.policy.check(&self.host, self.port, key)
            }
            PublicKeyOrCertificate::Certificate(c) => Verdict::Unknown {
                fingerprint: format!(
                    "certificate {}",
                    super::fingerprint(&russh::keys::PublicKey::from(c.public_key().clone()))
                ),
            },
        };
        let ok = matches!(verdict, Verdict::Known | Verdict::Learned);
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(verdict);
        }
        Ok(ok)
    }
}

/// One file of [`Session::upload_batch`].
#[derive(Debug, Clone, Copy)]
pub struct UploadFile<'a> {
    pub path: &'a str,
    pub content: &'a [u8],
    pub mode: u32,
    pub owner: &'a str,
    pub group: &'a str,
}

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

fn config(opts: &SshOptions) -> Arc<client::Config> {
    let mut kex: Vec<russh::kex::Name> = Vec::new();
    for name in &opts.kex {
        if let Ok(n) = russh::kex::Name::try_from(name.as_str()) {
            kex.push(n);
        }
    }
    for ext in [
        russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
        russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
    ] {
        kex.push(ext);
    }
    let mut preferred = russh::Preferred::default();
    if kex.len() > 2 {
        preferred.kex = kex.into();
    }
    Arc::new(client::Config {
        preferred,
        inactivity_timeout: None,
        keepalive_interval: Some(opts.keepalive),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    })
}

fn timeout_err(t: &Target, stage: &'static str, d: Duration, via: Option<&str>) -> TransportError {
    TransportError::Timeout {
        host: t.name.clone(),
        addr: format!("{}:{}", t.address, t.port),
        stage,
        secs: d.as_secs_f64(),
        via: via.map(|j| format!(" from {j}")).unwrap_or_default(),
    }
}

impl Session {
    /// Connects directly.
    pub async fn connect(
        target: &Target,
        opts: &SshOptions,
        creds: &Credentials,
    ) -> Result<Session, TransportError> {
        let addr = format!("{}:{}", target.address, target.port);
        let tcp =
            match tokio::time::timeout(opts.connect_timeout, tokio::net::TcpStream::connect(&addr))
                .await
            {
                Err(_) => {
                    return Err(timeout_err(
                        target,
                        "TCP connect",
                        opts.connect_timeout,
                        None,
                    ))
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(TransportError::Refused {
                        host: target.name.clone(),
                        addr,
                    })
                }
                Ok(Err(e)) => {
                    return Err(TransportError::Unreachable {
                        host: target.name.clone(),
                        addr,
                        message: e.to_string(),
                    })
                }
                Ok(Ok(s)) => s,
            };
        let _ = tcp.set_nodelay(true);
        Self::handshake(target, tcp, opts, creds, None).await
    }

    /// Connects to `target` through this session's host (a direct-tcpip tunnel, like
    /// ProxyJump); the target's host key is verified as for a direct connection.
    pub async fn connect_via(
        &self,
        target: &Target,
        opts: &SshOptions,
        creds: &Credentials,
    ) -> Result<Session, TransportError> {
        let open = self.handle.channel_open_direct_tcpip(
            target.address.clone(),
            target.port as u32,
            "127.0.0.1",
            0,
        );
        let channel = match tokio::time::timeout(opts.connect_timeout, open).await {
            Err(_) => {
                return Err(timeout_err(
                    target,
                    "opening the tunnel",
                    opts.connect_timeout,
                    Some(&self.target.name),
                ))
            }
            Ok(Err(e)) => {
                let message = match &e {
                    russh::Error::ChannelOpenFailure(reason) => format!(
                        "{reason:?} (is {}:{} up, and does the jump host allow TCP forwarding?)",
                        target.address, target.port
                    ),
                    other => other.to_string(),
                };
                return Err(TransportError::Jump {
                    host: target.name.clone(),
                    jump: self.target.name.clone(),
                    message,
                });
            }
            Ok(Ok(c)) => c,
        };
        Self::handshake(
            target,
            channel.into_stream(),
            opts,
            creds,
            Some(&self.target.name),
        )
        .await
    }

    async fn handshake<S>(
        target: &Target,
        stream: S,
        opts: &SshOptions,
        creds: &Credentials,
        via: Option<&str>,
    ) -> Result<Session, TransportError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let addr = format!("{}:{}", target.address, target.port);
        let verdict = Arc::new(Mutex::new(None));
        let handler = Client {
            host: target.address.clone(),
            port: target.port,
            policy: opts.host_keys.clone(),
            verdict: verdict.clone(),
        };
        let started = Instant::now();
        let connected = tokio::time::timeout(
            opts.connect_timeout,
            client::connect_stream(config(opts), stream, handler),
        )
        .await;
        let mut handle = match connected {
            Err(_) => {
                return Err(timeout_err(
                    target,
                    "SSH handshake",
                    opts.connect_timeout,
                    via,
                ))
            }
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                let v = verdict.lock().ok().and_then(|v| v.clone());
                return Err(match v {
                    Some(Verdict::Unknown { fingerprint }) => TransportError::UnknownHostKey {
                        host: target.name.clone(),
                        addr,
                        fingerprint,
                        known_hosts: opts.host_keys.path().display().to_string(),
                    },
                    Some(Verdict::Changed {
                        fingerprint,
                        expected,
                        line,
                    }) => TransportError::HostKeyChanged {
                        host: target.name.clone(),
                        addr,
                        fingerprint,
                        expected: expected.join(" or "),
                        known_hosts: opts.host_keys.path().display().to_string(),
                        line,
                    },
                    Some(Verdict::Unreadable { message }) => TransportError::HostKeysUnreadable {
                        host: target.name.clone(),
                        message,
                    },
                    _ => TransportError::Ssh {
                        host: target.name.clone(),
                        during: "the handshake".into(),
                        message: e.to_string(),
                    },
                });
            }
        };
        let remaining = opts
            .connect_timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(500));
        let authed = tokio::time::timeout(
            remaining,
            Self::authenticate(&mut handle, &opts.user, creds),
        )
        .await;
        match authed {
            Err(_) => Err(timeout_err(
                target,
                "authentication",
                opts.connect_timeout,
                via,
            )),
            Ok(Err(message)) => Err(TransportError::Ssh {
                host: target.name.clone(),
                during: "authentication".into(),
                message,
            }),
            Ok(Ok(true)) => Ok(Session {
                target: target.clone(),
                handle,
            }),
            Ok(Ok(false)) => {
                let mut tried = Vec::new();
                if creds.key.is_some() {
                    tried.push(format!("key {}", creds.key_label));
                }
                if creds.agent {
                    tried.push("ssh-agent".into());
                }
                Err(TransportError::AuthFailed {
                    host: target.name.clone(),
                    addr,
                    user: opts.user.clone(),
                    tried: if tried.is_empty() {
                        "no key configured".into()
                    } else {
                        tried.join(", ")
                    },
                })
            }
        }
    }

    async fn authenticate(
        handle: &mut Handle<Client>,
        user: &str,
        creds: &Credentials,
    ) -> Result<bool, String> {
        if let Some(key) = &creds.key {
            let hash = if key.algorithm().is_rsa() {
                handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(|e| e.to_string())?
                    .flatten()
            } else {
                None
            };
            let r = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), hash))
                .await
                .map_err(|e| e.to_string())?;
            if r.success() {
                return Ok(true);
            }
        }
        if creds.agent {
            if let Ok(mut agent) = russh::keys::agent::client::AgentClient::connect_env().await {
                let identities = agent.request_identities().await.unwrap_or_default();
                for id in identities.into_iter().take(16) {
                    let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = id else {
                        continue;
                    };
                    let hash = if key.algorithm().is_rsa() {
                        handle
                            .best_supported_rsa_hash()
                            .await
                            .ok()
                            .flatten()
                            .flatten()
                    } else {
                        None
                    };
                    if let Ok(r) = handle
                        .authenticate_publickey_with(user, key, hash, &mut agent)
                        .await
                    {
                        if r.success() {
                            return Ok(true);
                        }
                    }
                }
            }
        }
        Ok(false)
    }

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

    /// Writes `content` to `path` atomically: into a temporary file beside it, checked
    /// for size and SHA-256, mode and owner set, fsynced, then renamed over the
    /// destination. A cut transfer leaves the destination as it was and removes the
    /// temporary file.
    pub async fn upload(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
        owner: &str,
        group: &str,
        timeout: Duration,
    ) -> Result<(), TransportError> {
        let sha = Sha256::digest(content);
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        let mut reader: &[u8] = content;
        self.upload_stream(
            path,
            &mut reader,
            content.len() as u64,
            &hex,
            mode,
            owner,
            group,
            timeout,
        )
        .await
    }

    /// Streams a local file to `path` atomically, without holding it in memory (it is
    /// read twice: once for its checksum, once to send it).
    pub async fn upload_file(
        &self,
        local: &std::path::Path,
        path: &str,
        mode: u32,
        owner: &str,
        group: &str,
        timeout: Duration,
    ) -> Result<(), TransportError> {
        let err = |m: String| TransportError::Upload {
            host: self.target.name.clone(),
            path: path.to_string(),
            message: m,
        };
        let (size, hex) = {
            use std::io::Read;
            let mut f =
                std::fs::File::open(local).map_err(|e| err(format!("{}: {e}", local.display())))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut size = 0u64;
            loop {
                let n = f.read(&mut buf).map_err(|e| err(e.to_string()))?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                h.update(&buf[..n]);
            }
            (
                size,
                h.finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            )
        };
        let mut f = tokio::fs::File::open(local)
            .await
            .map_err(|e| err(format!("{}: {e}", local.display())))?;
        self.upload_stream(path, &mut f, size, &hex, mode, owner, group, timeout)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_stream(
        &self,
        path: &str,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        size: u64,
        sha256: &str,
        mode: u32,
        owner: &str,
        group: &str,
        timeout: Duration,
    ) -> Result<(), TransportError> {
        let dir = match path.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => path[..i].to_string(),
            None => ".".to_string(),
        };
        let script = format!(
            "set -e; umask 077; d={dir}; mkdir -p \"$d\"; t=$(mktemp \"$d/.provision.XXXXXX\"); \
             trap 'rm -f \"$t\"' EXIT HUP INT TERM PIPE; \
             head -c {size} > \"$t\"; \
             n=$(wc -c < \"$t\"); [ \"$n\" -eq {size} ] || {{ echo \"received $n of {size} bytes\" >&2; exit 70; }}; \
             echo '{sha256}  '\"$t\" | sha256sum -c --status - || {{ echo 'checksum mismatch' >&2; exit 71; }}; \
             chmod {mode:o} \"$t\"; chown {owner}:{group} \"$t\"; sync \"$t\"; mv -f \"$t\" {dest}; trap - EXIT; sync \"$d\" 2>/dev/null || true",
            dir = shell_quote(&dir),
            owner = shell_quote(owner),
            group = shell_quote(group),
            dest = shell_quote(path),
        );
        let out = self
            .exec(&script, Some(reader), timeout)
            .await
            .map_err(|e| match e {
                TransportError::Disconnected { message, .. } => TransportError::Upload {
                    host: self.target.name.clone(),
                    path: path.to_string(),
                    message: format!("connection lost: {message}"),
                },
                other => other,
            })?;
        if out.success() {
            Ok(())
        } else {
            Err(TransportError::Upload {
                host: self.target.name.clone(),
                path: path.to_string(),
                message: out.stderr_text().trim().to_string(),
            })
        }
    }

    /// Writes many files in one remote command over one channel: each goes to a
    /// temporary file beside its destination; then all are checked against their
    /// SHA-256 at once, fsynced at once and only then renamed into place. If anything
    /// fails (or the transfer is cut), no destination is touched and the temporary files
    /// are removed. Paths must not contain newlines.
    pub async fn upload_batch(
        &self,
        files: &[UploadFile<'_>],
        timeout: Duration,
    ) -> Result<(), TransportError> {
        if files.is_empty() {
            return Ok(());
        }
        if let Some(bad) = files
            .iter()
            .find(|f| f.path.contains('\n') || !f.path.starts_with('/'))
        {
            return Err(TransportError::Upload {
                host: self.target.name.clone(),
                path: bad.path.to_string(),
                message: "not an absolute path on one line".into(),
            });
        }
        let mut stream: Vec<u8> =
            Vec::with_capacity(files.iter().map(|f| f.content.len() + 128).sum());
        for f in files {
            let sha: String = Sha256::digest(f.content)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            stream.extend_from_slice(
                format!(
                    "{} {sha} {:o} {} {} {}\n",
                    f.content.len(),
                    f.mode,
                    f.owner,
                    f.group,
                    f.path
                )
                .as_bytes(),
            );
            stream.extend_from_slice(f.content);
        }
        // Headers are read with the shell's `read` (a byte at a time) and contents with
        // `head -c`, which reads no more than it is asked: the stream stays in step.
        let script = r#"set -e; umask 077; w=$(mktemp -d /tmp/.provision-batch.XXXXXX)
trap 'while read -r t d; do rm -f "$t"; done < "$w/moves" 2>/dev/null; rm -rf "$w"' EXIT HUP INT TERM PIPE
: > "$w/moves"; : > "$w/sums"; : > "$w/dirs"; : > "$w/meta"; last=; n=0; set -C
while IFS=' ' read -r size sha mode owner group dest; do
  d=${dest%/*}; [ -n "$d" ] || d=/
  if [ "$d" != "$last" ]; then mkdir -p "$d"; echo "$d" >> "$w/dirs"; last=$d; fi
  n=$((n + 1)); t="$d/.provision.$$.$n"
  echo "$t $dest" >> "$w/moves"; echo "$mode $owner $group $t" >> "$w/meta"; echo "$sha  $t" >> "$w/sums"
  head -c "$size" > "$t"
done
set +C
sha256sum -c --quiet "$w/sums" >&2 || { echo 'a file arrived incomplete or corrupted; nothing was replaced' >&2; exit 71; }
cut -d' ' -f1-3 "$w/meta" | sort -u | while read -r m o g; do
  awk -v m="$m" -v o="$o" -v g="$g" '$1 == m && $2 == o && $3 == g { print $4 }' "$w/meta" > "$w/set"
  xargs chmod "$m" < "$w/set"; xargs chown "$o:$g" < "$w/set"
done
cut -d' ' -f1 "$w/moves" | xargs sync
while read -r t d; do mv -f "$t" "$d"; done < "$w/moves"; : > "$w/moves"
sort -u "$w/dirs" | xargs sync 2>/dev/null || true"#;
        let mut reader: &[u8] = &stream;
        let out = self.exec(script, Some(&mut reader), timeout).await?;
        if out.success() {
            Ok(())
        } else {
            Err(TransportError::Upload {
                host: self.target.name.clone(),
                path: format!("{} files", files.len()),
                message: out.stderr_text().trim().to_string(),
            })
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
