//! Connecting: the client's credentials, a session opened directly or through a jump
//! host, the handshake with the host key checked against known_hosts, and
//! authentication by key file or ssh-agent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};

use super::Session;
use crate::transport::hostkeys::{HostKeyPolicy, Verdict};
use crate::transport::{SshOptions, Target, TransportError};

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
pub(super) struct Client {
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
                    crate::transport::fingerprint(&russh::keys::PublicKey::from(
                        c.public_key().clone()
                    ))
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
}
