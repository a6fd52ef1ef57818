//! The bare-metal edge: power and boot device of the nodes through their BMCs (Redfish
//! or IPMI), and introspection of a booted node's hardware.
//!
//! The BMC network is reachable only from the undercloud, so every BMC call is a command
//! run there through a [`Runner`] (its SSH [`Session`](crate::transport::Session)), or
//! locally ([`LocalRunner`]) when provision runs on the undercloud itself. The BMC
//! password is never on a command line: curl reads it as configuration on its standard
//! input (`-K -`), ipmitool from the `IPMI_PASSWORD` variable (`-E`) that the remote
//! shell reads from its standard input.

pub mod introspect;
pub mod ipmi;
pub mod power;
pub mod record;
pub mod redfish;
pub mod runner;

use std::fmt;
use std::time::{Duration, Instant};

use crate::inventory::spec::BmcDriver;
use crate::inventory::{SecretValue, Secrets};
use crate::model::Host;
use crate::transport::TransportError;
pub use power::{PowerCommand, PowerOutcome, PowerReport};
pub use runner::{LocalRunner, RunFuture, Runner};

/// A system's power state, as its BMC reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
    PoweringOn,
    PoweringOff,
    /// Anything else the BMC said, or why there is no answer (`no BMC`).
    Unknown(String),
}

impl PowerState {
    /// From Redfish's `PowerState` (`On`, `Off`, `PoweringOn`, `PoweringOff`, `Paused`...).
    pub fn from_redfish(s: &str) -> PowerState {
        match s {
            "On" => PowerState::On,
            "Off" => PowerState::Off,
            "PoweringOn" => PowerState::PoweringOn,
            "PoweringOff" => PowerState::PoweringOff,
            other => PowerState::Unknown(other.to_string()),
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PowerState::On => f.write_str("on"),
            PowerState::Off => f.write_str("off"),
            PowerState::PoweringOn => f.write_str("powering on"),
            PowerState::PoweringOff => f.write_str("powering off"),
            PowerState::Unknown(s) => write!(f, "unknown ({s})"),
        }
    }
}

/// The boot source override, in Redfish's words: `target` `Pxe`, `Hdd`, `Cd`,
/// `BiosSetup`, `None`...; `enabled` `Once`, `Continuous` or `Disabled`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOverride {
    pub target: String,
    pub enabled: String,
}

/// Why a BMC call failed. Every variant names the node and its BMC, and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BmcError {
    #[error("{node}: the BMC {bmc} refused the credentials ({detail}); check the BMC `username` and the value of the password secret{secret_hint}")]
    AuthFailed {
        node: String,
        bmc: String,
        detail: String,
        /// ` `NAME``, or empty.
        secret_hint: String,
    },
    #[error("{node}: the BMC {bmc} cannot be reached from {via} ({detail}); check its address and port, that it is powered and that the BMC network is reachable from {via}")]
    Unreachable {
        node: String,
        bmc: String,
        via: String,
        detail: String,
    },
    #[error("{node}: the BMC {bmc} has no system `{system_id}`; check the node's `bmc.system_id` (GET /redfish/v1/Systems lists the BMC's systems)")]
    UnknownSystem {
        node: String,
        bmc: String,
        system_id: String,
    },
    #[error("{node}: TLS with the BMC {bmc} failed ({detail}); install the BMC's CA certificate on {via}, or set `verify_tls = false` in the node's `bmc` table")]
    Tls {
        node: String,
        bmc: String,
        via: String,
        detail: String,
    },
    #[error("{node}: unexpected answer from the BMC {bmc}: {message}: {excerpt:?}")]
    Protocol {
        node: String,
        bmc: String,
        message: String,
        /// The first 200 characters of the answer.
        excerpt: String,
    },
    #[error("{node}: no BMC to manage ({reason}); give the node a `bmc` table with a driver and an address, or power it by hand")]
    NoBmc { node: String, reason: String },
    #[error("{node}: the {driver} BMC has no `{what}`; add it to the node's `bmc` table")]
    Incomplete {
        node: String,
        driver: String,
        what: String,
    },
    #[error("{node}: the BMC password secret `{secret}` has no value; add it to the secrets file or set PROVISION_SECRET_{upper}")]
    MissingSecret {
        node: String,
        secret: String,
        upper: String,
    },
    #[error("{node}: the credentials of the BMC {bmc} cannot be used: {reason}")]
    BadCredentials {
        node: String,
        bmc: String,
        reason: String,
    },
    #[error(
        "{node}: `{tool}` is not installed on {via}; install it there (e.g. `dnf install {tool}`)"
    )]
    ToolMissing {
        node: String,
        tool: String,
        via: String,
    },
    #[error("{node}: the BMC command for {bmc} could not run on {via}: {source}")]
    Runner {
        node: String,
        bmc: String,
        via: String,
        #[source]
        source: Box<TransportError>,
    },
    #[error("{node}: the BMC {bmc} still reports the power {state} after {secs:.0} s, expected {want}; check the machine and its BMC")]
    PowerTimeout {
        node: String,
        bmc: String,
        state: PowerState,
        want: PowerState,
        secs: f64,
    },
    #[error("{node}: the BMC {bmc} offers no hard restart: its ComputerSystem.Reset allows {allowed} (neither ForceRestart nor PowerCycle); nothing was pressed: restart the machine from the BMC's own interface, or run `power off`, then `power on`")]
    NoHardRestart {
        node: String,
        bmc: String,
        /// The reset types the system lists, comma-separated, or `none`.
        allowed: String,
    },
    #[error("{node}: the BMC {bmc} reports the power {state}, neither on nor off, so `power cycle` pressed nothing; read it again with `power status` (a change in progress settles within a minute) and run `power cycle` once it is on or off")]
    PowerUnsettled {
        node: String,
        bmc: String,
        state: PowerState,
    },
}

impl BmcError {
    /// The node the error is about.
    pub fn node(&self) -> &str {
        match self {
            BmcError::AuthFailed { node, .. }
            | BmcError::Unreachable { node, .. }
            | BmcError::UnknownSystem { node, .. }
            | BmcError::Tls { node, .. }
            | BmcError::Protocol { node, .. }
            | BmcError::NoBmc { node, .. }
            | BmcError::Incomplete { node, .. }
            | BmcError::MissingSecret { node, .. }
            | BmcError::BadCredentials { node, .. }
            | BmcError::ToolMissing { node, .. }
            | BmcError::Runner { node, .. }
            | BmcError::PowerTimeout { node, .. }
            | BmcError::NoHardRestart { node, .. }
            | BmcError::PowerUnsettled { node, .. } => node,
        }
    }
}

/// The first 200 characters of a text, for [`BmcError::Protocol`].
pub(crate) fn excerpt(text: &str) -> String {
    text.trim().chars().take(200).collect()
}

/// Everything needed to call one node's BMC, password included (its `Debug` shows
/// `(secret)`).
#[derive(Debug, Clone)]
pub struct BmcTarget {
    pub node: String,
    pub driver: BmcDriver,
    /// `http` or `https` (Redfish).
    pub scheme: String,
    /// Empty for driver `none`.
    pub address: String,
    /// The inventory's, or the default: 623 (IPMI), 443 (https), 80 (http).
    pub port: u16,
    pub system_id: Option<String>,
    pub username: Option<String>,
    /// The password secret's name, for messages.
    pub password_secret: Option<String>,
    pub password: Option<SecretValue>,
    pub verify_tls: bool,
}

impl BmcTarget {
    /// The node's BMC with its password looked up. A node with driver `none` gives a
    /// target whose status is unknown and whose power cannot be changed.
    pub fn for_host(host: &Host, secrets: &Secrets) -> Result<BmcTarget, BmcError> {
        Self::for_bmc(&host.name, &host.bmc, secrets)
    }

    /// As [`BmcTarget::for_host`], from a node's name and BMC settings (a node that has
    /// left the inventory, from the record of provisioned nodes).
    pub fn for_bmc(
        node: &str,
        bmc: &crate::model::Bmc,
        secrets: &Secrets,
    ) -> Result<BmcTarget, BmcError> {
        let driver = bmc.driver;
        let mut t = BmcTarget {
            node: node.to_string(),
            driver,
            scheme: bmc.scheme.clone(),
            address: bmc.address.clone().unwrap_or_default(),
            port: 0,
            system_id: bmc.system_id.clone(),
            username: bmc.username.clone(),
            password_secret: bmc.password_secret.clone(),
            password: None,
            verify_tls: bmc.verify_tls,
        };
        let driver_name = match driver {
            BmcDriver::None => return Ok(t),
            BmcDriver::Redfish => "Redfish",
            BmcDriver::Ipmi => "IPMI",
        };
        if t.address.is_empty() {
            return Err(BmcError::NoBmc {
                node: t.node,
                reason: format!("its {driver_name} BMC has no address"),
            });
        }
        t.port = bmc.port.unwrap_or(match (driver, t.scheme.as_str()) {
            (BmcDriver::Ipmi, _) => 623,
            (_, "http") => 80,
            _ => 443,
        });
        let incomplete = |what: &str| BmcError::Incomplete {
            node: node.to_string(),
            driver: driver_name.into(),
            what: what.into(),
        };
        if driver == BmcDriver::Redfish {
            if t.system_id.as_deref().unwrap_or("").is_empty() {
                return Err(incomplete("system_id"));
            }
            if t.scheme != "http" && t.scheme != "https" {
                return Err(incomplete("scheme `http` or `https`"));
            }
        }
        if t.username.as_deref().unwrap_or("").is_empty() {
            return Err(incomplete("username"));
        }
        let Some(secret) = bmc.password_secret.as_deref() else {
            return Err(incomplete("password"));
        };
        t.password = Some(
            secrets
                .get(secret)
                .cloned()
                .ok_or_else(|| BmcError::MissingSecret {
                    node: node.to_string(),
                    secret: secret.to_string(),
                    upper: secret.to_ascii_uppercase(),
                })?,
        );
        Ok(t)
    }

    /// The BMC, for messages: `redfish https://ADDR:PORT system ID` or `ipmi ADDR:PORT`.
    pub fn endpoint(&self) -> String {
        match self.driver {
            BmcDriver::Redfish => format!(
                "redfish {}://{}:{} system {}",
                self.scheme,
                bracket(&self.address),
                self.port,
                self.system_id.as_deref().unwrap_or("?")
            ),
            BmcDriver::Ipmi => format!("ipmi {}:{}", bracket(&self.address), self.port),
            BmcDriver::None => "(none)".into(),
        }
    }

    fn no_bmc(&self) -> BmcError {
        BmcError::NoBmc {
            node: self.node.clone(),
            reason: "its BMC driver is `none`".into(),
        }
    }

    pub(crate) fn runner_error(&self, runner: &dyn Runner, source: TransportError) -> BmcError {
        BmcError::Runner {
            node: self.node.clone(),
            bmc: self.endpoint(),
            via: runner.name().to_string(),
            source: Box::new(source),
        }
    }

    pub(crate) fn secret_hint(&self) -> String {
        self.password_secret
            .as_deref()
            .map(|s| format!(" `{s}`"))
            .unwrap_or_default()
    }

    /// The power state; `Unknown("no BMC")` for driver `none`.
    pub async fn power_state(&self, runner: &dyn Runner) -> Result<PowerState, BmcError> {
        match self.driver {
            BmcDriver::Redfish => Ok(redfish::get_system(runner, self).await?.power),
            BmcDriver::Ipmi => ipmi::power_state(runner, self).await,
            BmcDriver::None => Ok(PowerState::Unknown("no BMC".into())),
        }
    }

    /// The boot source override.
    pub async fn boot_override(&self, runner: &dyn Runner) -> Result<BootOverride, BmcError> {
        match self.driver {
            BmcDriver::Redfish => Ok(redfish::get_system(runner, self).await?.boot),
            BmcDriver::Ipmi => ipmi::boot_override(runner, self).await,
            BmcDriver::None => Err(self.no_bmc()),
        }
    }

    /// Boots from the network once, at the next power on or reset.
    pub async fn set_pxe_once(&self, runner: &dyn Runner) -> Result<(), BmcError> {
        match self.driver {
            BmcDriver::Redfish => redfish::set_pxe_once(runner, self).await,
            BmcDriver::Ipmi => ipmi::run_checked(runner, self, ipmi::Op::BootdevPxe)
                .await
                .map(drop),
            BmcDriver::None => Err(self.no_bmc()),
        }
    }

    /// Powers on (the BMC may apply it some seconds later: see [`Self::wait_power`]).
    pub async fn power_on(&self, runner: &dyn Runner) -> Result<(), BmcError> {
        self.power(runner, redfish::ResetType::On, ipmi::Op::On)
            .await
    }

    /// Cuts the power at once (Redfish `ForceOff`, IPMI `chassis power off`).
    pub async fn power_off(&self, runner: &dyn Runner) -> Result<(), BmcError> {
        self.power(runner, redfish::ResetType::ForceOff, ipmi::Op::Off)
            .await
    }

    /// Hard reset (Redfish `ForceRestart`, IPMI `chassis power reset`).
    pub async fn reset(&self, runner: &dyn Runner) -> Result<(), BmcError> {
        self.power(runner, redfish::ResetType::ForceRestart, ipmi::Op::Reset)
            .await
    }

    async fn power(
        &self,
        runner: &dyn Runner,
        rf: redfish::ResetType,
        op: ipmi::Op,
    ) -> Result<(), BmcError> {
        match self.driver {
            BmcDriver::Redfish => redfish::reset(runner, self, rf).await,
            BmcDriver::Ipmi => ipmi::run_checked(runner, self, op).await.map(drop),
            BmcDriver::None => Err(self.no_bmc()),
        }
    }

    /// Reads the power state every `interval` until it is `want`, for at most `timeout`
    /// (and at most 1000 reads). Returns the number of reads.
    pub async fn wait_power(
        &self,
        runner: &dyn Runner,
        want: PowerState,
        timeout: Duration,
        interval: Duration,
    ) -> Result<usize, BmcError> {
        let start = Instant::now();
        let mut last = PowerState::Unknown("not read".into());
        for reads in 1..=1000usize {
            last = self.power_state(runner).await?;
            if last == want {
                return Ok(reads);
            }
            if start.elapsed() + interval > timeout {
                break;
            }
            tokio::time::sleep(interval).await;
        }
        Err(BmcError::PowerTimeout {
            node: self.node.clone(),
            bmc: self.endpoint(),
            state: last,
            want,
            secs: start.elapsed().as_secs_f64(),
        })
    }
}

/// An IPv6 address in brackets, for URLs and messages.
pub(crate) fn bracket(address: &str) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::inventory::spec::BmcDriver;

    /// A command's result, as a runner returns it.
    pub fn out(status: u32, stdout: &str, stderr: &str) -> crate::transport::ExecOutput {
        crate::transport::ExecOutput {
            status: Some(status),
            signal: None,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    pub fn target(driver: BmcDriver) -> BmcTarget {
        BmcTarget {
            node: "overcloud-controller-0".into(),
            driver,
            scheme: "https".into(),
            address: "10.0.0.5".into(),
            port: if driver == BmcDriver::Ipmi { 623 } else { 443 },
            system_id: Some("sys-1".into()),
            username: Some("admin".into()),
            password_secret: Some("bmc_password".into()),
            password: Some(SecretValue::new("s3cr\"et\\pw")),
            verify_tls: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::model::Bmc;
    use crate::source::{FsTree, SourceMap};

    fn host(bmc: Bmc) -> Host {
        Host {
            name: "overcloud-novacompute-0".into(),
            fqdn: "overcloud-novacompute-0.example.com".into(),
            role: "Compute".into(),
            index: 0,
            ctlplane_ip: "192.168.24.10".parse().unwrap(),
            macs: vec!["52:54:00:0a:00:0c".into()],
            addresses: BTreeMap::new(),
            services: vec![],
            profile: None,
            capabilities: BTreeMap::new(),
            root_device: None,
            bmc,
            vars: Default::default(),
            config: Default::default(),
        }
    }

    fn bmc(driver: BmcDriver) -> Bmc {
        Bmc {
            driver,
            address: Some("10.0.0.5".into()),
            port: None,
            system_id: Some("sys-1".into()),
            username: Some("admin".into()),
            password_secret: Some("bmc_password".into()),
            scheme: "https".into(),
            verify_tls: true,
        }
    }

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        let env: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| {
                (
                    format!("PROVISION_SECRET_{}", k.to_uppercase()),
                    v.to_string(),
                )
            })
            .collect();
        let mut diags = crate::diagnostics::Diagnostics::default();
        Secrets::load(
            None,
            "PROVISION_SECRET_",
            &env,
            &FsTree,
            &SourceMap::default(),
            &mut diags,
        )
    }

    #[test]
    fn target_from_host() {
        let s = secrets(&[("bmc_password", "pw")]);
        let t = BmcTarget::for_host(&host(bmc(BmcDriver::Redfish)), &s).unwrap();
        assert_eq!(t.port, 443);
        assert_eq!(t.password.as_ref().unwrap().expose(), "pw");
        assert_eq!(t.endpoint(), "redfish https://10.0.0.5:443 system sys-1");
        assert!(!format!("{t:?}").contains("\"pw\""));
        let t = BmcTarget::for_host(&host(bmc(BmcDriver::Ipmi)), &s).unwrap();
        assert_eq!(t.port, 623);
        assert_eq!(t.endpoint(), "ipmi 10.0.0.5:623");
        let mut b = bmc(BmcDriver::Redfish);
        b.scheme = "http".into();
        assert_eq!(BmcTarget::for_host(&host(b), &s).unwrap().port, 80);
    }

    #[test]
    fn target_errors() {
        let s = secrets(&[]);
        let e = BmcTarget::for_host(&host(bmc(BmcDriver::Redfish)), &s).unwrap_err();
        assert!(matches!(e, BmcError::MissingSecret { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "overcloud-novacompute-0: the BMC password secret `bmc_password` has no value; add it to the secrets file or set PROVISION_SECRET_BMC_PASSWORD"
        );
        let mut b = bmc(BmcDriver::Ipmi);
        b.address = None;
        let e = BmcTarget::for_host(&host(b), &s).unwrap_err();
        assert!(matches!(e, BmcError::NoBmc { .. }), "{e}");
        assert!(e.to_string().contains("IPMI BMC has no address"), "{e}");
        let mut b = bmc(BmcDriver::Redfish);
        b.system_id = None;
        let e = BmcTarget::for_host(&host(b), &s).unwrap_err();
        assert!(e.to_string().contains("no `system_id`"), "{e}");
    }

    #[tokio::test]
    async fn driver_none() {
        let mut b = bmc(BmcDriver::None);
        b.address = None;
        let t = BmcTarget::for_host(&host(b), &secrets(&[])).unwrap();
        let r = LocalRunner::new();
        assert_eq!(
            t.power_state(&r).await.unwrap(),
            PowerState::Unknown("no BMC".into())
        );
        for e in [
            t.power_on(&r).await.unwrap_err(),
            t.power_off(&r).await.unwrap_err(),
            t.reset(&r).await.unwrap_err(),
            t.power_on_if_off(&r).await.unwrap_err(),
            t.power_cycle(&r).await.unwrap_err(),
            t.set_pxe_once(&r).await.unwrap_err(),
            t.boot_override(&r).await.unwrap_err(),
        ] {
            assert!(
                matches!(e, BmcError::NoBmc { ref node, .. } if node == "overcloud-novacompute-0"),
                "{e}"
            );
        }
    }

    #[test]
    fn power_state_names() {
        assert_eq!(
            PowerState::from_redfish("PoweringOn"),
            PowerState::PoweringOn
        );
        assert_eq!(
            PowerState::from_redfish("Paused"),
            PowerState::Unknown("Paused".into())
        );
        assert_eq!(bracket("fd00::5"), "[fd00::5]");
    }
}
