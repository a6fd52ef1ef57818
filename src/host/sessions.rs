//! SSH sessions to a whole cloud: the undercloud directly, then every node through it
//! (or directly, if the inventory says so), all at once up to a bound. The cloud-aware
//! side of the transport (which addresses, which settings) lives here, so that
//! [`crate::transport`] knows nothing of the model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::model::Cloud;
use crate::transport::{
    Credentials, HostKeyPolicy, Session, SshOptions, Target, TransportError, DEFAULT_KEX,
};

impl SshOptions {
    /// The inventory's SSH settings. `accept_new` is the explicit first-contact mode.
    pub fn from_cloud(cloud: &Cloud, accept_new: bool) -> SshOptions {
        SshOptions {
            user: cloud.ssh.user.clone(),
            private_key: Some(cloud.ssh.private_key.clone()),
            use_agent: true,
            host_keys: HostKeyPolicy {
                known_hosts: cloud.ssh.known_hosts.clone(),
                strict: cloud.ssh.strict_host_key_checking,
                accept_new,
            },
            connect_timeout: Duration::from_secs(cloud.ssh.connect_timeout_secs.max(1)),
            keepalive: Duration::from_secs(15),
            kex: if cloud.ssh.key_exchange.is_empty() {
                DEFAULT_KEX.iter().map(|s| s.to_string()).collect()
            } else {
                cloud.ssh.key_exchange.clone()
            },
        }
    }
}

/// Open SSH sessions to a cloud's hosts.
pub struct Sessions {
    pub undercloud: Arc<Session>,
    /// The undercloud's host name: [`Sessions::session`] answers it with `undercloud`.
    pub undercloud_name: String,
    /// Every requested node: its session, or why it could not be reached.
    pub nodes: BTreeMap<String, Result<Arc<Session>, TransportError>>,
    /// How the nodes were reached, for later connections ([`Sessions::connect_node`]).
    opts: SshOptions,
    creds: Credentials,
    jump: bool,
}

impl Sessions {
    /// The session of a host of the desired state: the undercloud (its own services) or
    /// a node; `None` if that node was not connected.
    pub fn session(&self, host: &str) -> Option<Result<&Arc<Session>, &TransportError>> {
        if host == self.undercloud_name {
            return Some(Ok(&self.undercloud));
        }
        self.nodes.get(host).map(|r| r.as_ref())
    }

    /// Connects to the undercloud, then to `nodes` (host names of the cloud), at most
    /// `parallel` handshakes at a time.
    pub async fn connect(
        cloud: &Cloud,
        nodes: &[String],
        opts: &SshOptions,
        creds: &Credentials,
        parallel: usize,
    ) -> Result<Sessions, TransportError> {
        let uc = Target {
            name: cloud.undercloud.name.clone(),
            address: cloud.undercloud.address.clone(),
            port: cloud.undercloud.ssh_port,
        };
        let undercloud = Arc::new(Session::connect(&uc, opts, creds).await?);
        let mut fleet = Sessions {
            undercloud,
            undercloud_name: cloud.undercloud.name.clone(),
            nodes: BTreeMap::new(),
            opts: opts.clone(),
            creds: creds.clone(),
            jump: cloud.ssh.jump_through_undercloud,
        };
        fleet.connect_nodes(cloud, nodes, parallel).await;
        Ok(fleet)
    }

    /// Connects to more nodes of the cloud (host names), at most `parallel` handshakes
    /// at a time, adding them (or why they could not be reached) to `nodes`.
    pub async fn connect_nodes(&mut self, cloud: &Cloud, nodes: &[String], parallel: usize) {
        let (opts, creds) = (&self.opts, &self.creds);
        let undercloud = self.undercloud.clone();
        let limit = Arc::new(Semaphore::new(parallel.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for name in nodes {
            let Some(host) = cloud.host(name) else {
                continue;
            };
            let target = Target {
                name: host.name.clone(),
                address: host.ctlplane_ip.to_string(),
                port: cloud.ssh.port,
            };
            let (uc, opts, creds, limit, jump) = (
                undercloud.clone(),
                opts.clone(),
                creds.clone(),
                limit.clone(),
                cloud.ssh.jump_through_undercloud,
            );
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let session = if jump {
                    uc.connect_via(&target, &opts, &creds).await
                } else {
                    Session::connect(&target, &opts, &creds).await
                };
                (target.name, session.map(Arc::new))
            });
        }
        let mut out = BTreeMap::new();
        while let Some(done) = tasks.join_next().await {
            if let Ok((name, session)) = done {
                out.insert(name, session);
            }
        }
        self.nodes.extend(out);
    }

    /// Connects to one more node of the cloud (one that was powered off, say), as
    /// [`Sessions::connect`] does, within `timeout`. The session is not added to `nodes`.
    pub async fn connect_node(
        &self,
        cloud: &Cloud,
        name: &str,
        timeout: Duration,
    ) -> Result<Arc<Session>, TransportError> {
        let host = cloud.host(name).ok_or_else(|| TransportError::Ssh {
            host: name.to_string(),
            during: "connecting".into(),
            message: "not a host of this cloud".into(),
        })?;
        let target = Target {
            name: host.name.clone(),
            address: host.ctlplane_ip.to_string(),
            port: cloud.ssh.port,
        };
        let mut opts = self.opts.clone();
        opts.connect_timeout = opts.connect_timeout.min(timeout);
        let session = if self.jump {
            self.undercloud
                .connect_via(&target, &opts, &self.creds)
                .await
        } else {
            Session::connect(&target, &opts, &self.creds).await
        };
        session.map(Arc::new)
    }
}
