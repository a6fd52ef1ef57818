//! The power commands of `provision nodes INVENTORY power on|off|status|cycle`, node by
//! node: what each does on each power state, and the lines it prints. The CLI only maps
//! its arguments to a [`PowerCommand`], runs [`BmcTarget::power_command`] on every node
//! and prints [`node_line`] and [`summary`].
//!
//! - `status` reads the power state.
//! - `on` reads it first: a node that is on (or powering on) is left alone, and its line
//!   points to `power cycle` (a node whose BMC says on but whose OS is dead needs a
//!   restart, not a power button that does nothing); any other node is powered on.
//! - `cycle` reads it first: a node that is on gets a hard restart (Redfish
//!   `ForceRestart`, or `PowerCycle` when the system offers no `ForceRestart`; IPMI
//!   `chassis power cycle`), a node that is off is powered on, and a node in between
//!   (powering on or off, unknown) is refused with what to do.
//! - `off` cuts the power (Redfish `ForceOff`, IPMI `chassis power off`).

use std::time::Duration;

use super::{ipmi, redfish, BmcError, BmcTarget, PowerState, Runner};
use crate::change::plural;
use crate::inventory::spec::BmcDriver;
use crate::transport::shell_quote;

/// A power command, as `provision nodes INVENTORY power ACTION` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerCommand {
    On,
    Off,
    Status,
    Cycle,
}

impl PowerCommand {
    /// `on`, `off`, `status`, `cycle`.
    pub fn name(self) -> &'static str {
        match self {
            PowerCommand::On => "on",
            PowerCommand::Off => "off",
            PowerCommand::Status => "status",
            PowerCommand::Cycle => "cycle",
        }
    }
}

/// What a power command did on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerOutcome {
    /// `status`: only read.
    Read,
    /// It was not on (`was`): power on was requested.
    PoweredOn { was: PowerState },
    /// It was already on, or powering on (`state`): nothing was pressed.
    AlreadyOn { state: PowerState },
    /// It was on: a hard restart was requested, `how` names it (`ForceRestart`,
    /// `PowerCycle`, `chassis power cycle`).
    Restarted { how: &'static str },
    /// Power off was requested.
    PoweredOff,
}

/// One node's result: what was done, and the power state read after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerReport {
    pub outcome: PowerOutcome,
    pub state: PowerState,
}

impl BmcTarget {
    /// Powers on a node that is not on; a node that is on or powering on is left alone
    /// ([`PowerOutcome::AlreadyOn`]: no request is sent to its BMC).
    pub async fn power_on_if_off(&self, runner: &dyn Runner) -> Result<PowerOutcome, BmcError> {
        if self.driver == BmcDriver::None {
            return Err(self.no_bmc());
        }
        let was = self.power_state(runner).await?;
        match was {
            PowerState::On | PowerState::PoweringOn => Ok(PowerOutcome::AlreadyOn { state: was }),
            _ => {
                self.power_on(runner).await?;
                Ok(PowerOutcome::PoweredOn { was })
            }
        }
    }

    /// A hard restart of a node that is on, power on of a node that is off; a node in
    /// between is refused ([`BmcError::PowerUnsettled`]), as is a Redfish system that
    /// lists its reset types without `ForceRestart` or `PowerCycle`
    /// ([`BmcError::NoHardRestart`]).
    pub async fn power_cycle(&self, runner: &dyn Runner) -> Result<PowerOutcome, BmcError> {
        let (was, restart) = match self.driver {
            BmcDriver::None => return Err(self.no_bmc()),
            BmcDriver::Redfish => {
                let system = redfish::get_system(runner, self).await?;
                let restart = match system.power {
                    PowerState::On => {
                        Some(redfish::restart_type(self, system.reset_types.as_deref())?)
                    }
                    _ => None,
                };
                (system.power, restart)
            }
            BmcDriver::Ipmi => (ipmi::power_state(runner, self).await?, None),
        };
        match was {
            PowerState::Off => {
                self.power_on(runner).await?;
                Ok(PowerOutcome::PoweredOn { was })
            }
            PowerState::On => match restart {
                Some(kind) => {
                    redfish::reset(runner, self, kind).await?;
                    Ok(PowerOutcome::Restarted { how: kind.as_str() })
                }
                None => {
                    ipmi::run_checked(runner, self, ipmi::Op::Cycle).await?;
                    Ok(PowerOutcome::Restarted {
                        how: "chassis power cycle",
                    })
                }
            },
            state => Err(BmcError::PowerUnsettled {
                node: self.node.clone(),
                bmc: self.endpoint(),
                state,
            }),
        }
    }

    /// Runs a power command and reads the power state after it (a node left alone is
    /// not read twice).
    pub async fn power_command(
        &self,
        runner: &dyn Runner,
        command: PowerCommand,
    ) -> Result<PowerReport, BmcError> {
        let outcome = match command {
            PowerCommand::Status => PowerOutcome::Read,
            PowerCommand::On => self.power_on_if_off(runner).await?,
            PowerCommand::Off => {
                self.power_off(runner).await?;
                PowerOutcome::PoweredOff
            }
            PowerCommand::Cycle => self.power_cycle(runner).await?,
        };
        let state = match &outcome {
            PowerOutcome::AlreadyOn { state } => state.clone(),
            _ => self.power_state(runner).await?,
        };
        Ok(PowerReport { outcome, state })
    }
}

/// The command that restarts `nodes`: `provision nodes INVENTORY power cycle --limit
/// NODES`.
pub fn cycle_command(inventory: &str, nodes: &[&str]) -> String {
    format!(
        "provision nodes {} power cycle --limit {}",
        shell_quote(inventory),
        shell_quote(&nodes.join(","))
    )
}

/// One node's line: name, role, the power state read after the command, its BMC, what
/// was done (and, for a node already on, the command that restarts it), the time taken.
pub fn node_line(
    node: &str,
    role: &str,
    endpoint: &str,
    result: &Result<PowerReport, BmcError>,
    took: Duration,
    inventory: &str,
) -> String {
    let report = match result {
        Ok(r) => r,
        Err(e) => return format!("{node:<28} {role:<12} FAILED: {e}"),
    };
    let done = match &report.outcome {
        PowerOutcome::Read => String::new(),
        PowerOutcome::PoweredOn { was } => format!(", was {was}: power on requested"),
        PowerOutcome::AlreadyOn {
            state: PowerState::On,
        } => format!(
            ", already on: nothing pressed; if its OS does not answer, restart it with `{}`",
            cycle_command(inventory, &[node])
        ),
        PowerOutcome::AlreadyOn { state } => {
            format!(", already {state}: nothing pressed; check it again with `power status`")
        }
        PowerOutcome::Restarted { how } => format!(", was on: restart requested ({how})"),
        PowerOutcome::PoweredOff => ", power off requested".into(),
    };
    format!(
        "{node:<28} {role:<12} power {:<12} {endpoint}{done} ({:.0} ms)",
        report.state.to_string(),
        took.as_secs_f64() * 1000.0
    )
}

/// The lines after the nodes' lines: how many nodes had each outcome (and how many
/// failed) and, when `power on` left nodes alone because they were on, the one command
/// that restarts them all.
pub fn summary(
    command: PowerCommand,
    results: &[(&str, &Result<PowerReport, BmcError>)],
    elapsed: Duration,
    inventory: &str,
) -> Vec<String> {
    let total = results.len();
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    let count = |f: &dyn Fn(&PowerOutcome) -> bool| {
        results
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|r| f(&r.outcome)))
            .count()
    };
    let secs = elapsed.as_secs_f64();
    if command == PowerCommand::Status {
        let answered = total - failed;
        return vec![format!(
            "{answered} of {} answered through {} BMC in {secs:.2} s.",
            plural(total, "node"),
            if total == 1 { "its" } else { "their" }
        )];
    }
    let restarted = count(&|o| matches!(o, PowerOutcome::Restarted { .. }));
    let powered_on = count(&|o| matches!(o, PowerOutcome::PoweredOn { .. }));
    let already_on: Vec<&str> = results
        .iter()
        .filter(|(_, r)| {
            r.as_ref()
                .is_ok_and(|r| matches!(r.outcome, PowerOutcome::AlreadyOn { .. }))
        })
        .map(|(n, _)| *n)
        .collect();
    let powered_off = count(&|o| matches!(o, PowerOutcome::PoweredOff));
    let mut parts: Vec<String> = Vec::new();
    let mut part = |n: usize, what: &str| {
        if n > 0 {
            parts.push(format!("{} {what}", plural(n, "node")));
        }
    };
    part(restarted, "restarted");
    match command {
        PowerCommand::Cycle => part(powered_on, "powered on (it was off)"),
        _ => part(powered_on, "powered on"),
    }
    part(already_on.len(), "already on (nothing pressed)");
    part(powered_off, "powered off");
    part(failed, "failed");
    let did = if parts.is_empty() {
        "no node".to_string()
    } else {
        parts.join(", ")
    };
    let mut lines = vec![format!(
        "power {}: {did}; {} in {secs:.2} s.",
        command.name(),
        plural(total, "node")
    )];
    if !already_on.is_empty() {
        lines.push(format!(
            "{} on but not answering {} a restart, not power on: `{}`",
            if already_on.len() == 1 {
                "A node that is"
            } else {
                "Nodes that are"
            },
            if already_on.len() == 1 {
                "needs"
            } else {
                "need"
            },
            cycle_command(inventory, &already_on)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baremetal::testutil::target;

    fn ok(outcome: PowerOutcome, state: PowerState) -> Result<PowerReport, BmcError> {
        Ok(PowerReport { outcome, state })
    }

    #[test]
    fn lines() {
        let ms = Duration::from_millis(12);
        let on = ok(
            PowerOutcome::AlreadyOn {
                state: PowerState::On,
            },
            PowerState::On,
        );
        assert_eq!(
            node_line("lab-controller-0", "Controller", "redfish http://127.0.10.1:8000 system c0", &on, ms, "lab/inventory.toml"),
            "lab-controller-0             Controller   power on           redfish http://127.0.10.1:8000 system c0, already on: nothing pressed; if its OS does not answer, restart it with `provision nodes lab/inventory.toml power cycle --limit lab-controller-0` (12 ms)"
        );
        let was_off = ok(
            PowerOutcome::PoweredOn {
                was: PowerState::Off,
            },
            PowerState::Off,
        );
        assert!(
            node_line("n", "Compute", "ipmi 10.0.0.5:623", &was_off, ms, "i.toml").ends_with(
                "power off          ipmi 10.0.0.5:623, was off: power on requested (12 ms)"
            )
        );
        let restarted = ok(
            PowerOutcome::Restarted {
                how: "ForceRestart",
            },
            PowerState::Off,
        );
        assert!(node_line("n", "Compute", "e", &restarted, ms, "i.toml")
            .ends_with(" e, was on: restart requested (ForceRestart) (12 ms)"));
        let t = target(BmcDriver::Redfish);
        let failed: Result<PowerReport, BmcError> = Err(BmcError::PowerUnsettled {
            node: t.node.clone(),
            bmc: t.endpoint(),
            state: PowerState::PoweringOff,
        });
        let line = node_line(&t.node, "Controller", "e", &failed, ms, "i.toml");
        assert!(line.starts_with("overcloud-controller-0       Controller   FAILED: overcloud-controller-0: the BMC redfish https://10.0.0.5:443 system sys-1 reports the power powering off, neither on nor off, so `power cycle` pressed nothing"), "{line}");
        // A path that needs quoting is quoted in the command to copy.
        assert_eq!(
            cycle_command("my lab/inv.toml", &["a", "b"]),
            "provision nodes 'my lab/inv.toml' power cycle --limit a,b"
        );
    }

    #[test]
    fn summaries_count_and_point_to_cycle() {
        let s = Duration::from_millis(520);
        let on = ok(
            PowerOutcome::AlreadyOn {
                state: PowerState::On,
            },
            PowerState::On,
        );
        let was_off = ok(
            PowerOutcome::PoweredOn {
                was: PowerState::Off,
            },
            PowerState::On,
        );
        let t = target(BmcDriver::Ipmi);
        let failed: Result<PowerReport, BmcError> = Err(t.no_bmc());
        assert_eq!(
            summary(PowerCommand::On, &[("a", &on), ("b", &was_off)], s, "inv.toml"),
            vec![
                "power on: 1 node powered on, 1 node already on (nothing pressed); 2 nodes in 0.52 s.".to_string(),
                "A node that is on but not answering needs a restart, not power on: `provision nodes inv.toml power cycle --limit a`".to_string(),
            ]
        );
        assert_eq!(
            summary(
                PowerCommand::On,
                &[("a", &on), ("c", &on), ("b", &was_off), ("d", &was_off), ("e", &failed)],
                s,
                "inv.toml"
            ),
            vec![
                "power on: 2 nodes powered on, 2 nodes already on (nothing pressed), 1 node failed; 5 nodes in 0.52 s.".to_string(),
                "Nodes that are on but not answering need a restart, not power on: `provision nodes inv.toml power cycle --limit a,c`".to_string(),
            ]
        );
        let restarted = ok(
            PowerOutcome::Restarted {
                how: "ForceRestart",
            },
            PowerState::Off,
        );
        assert_eq!(
            summary(
                PowerCommand::Cycle,
                &[("a", &restarted), ("b", &was_off)],
                s,
                "inv.toml"
            ),
            vec![
                "power cycle: 1 node restarted, 1 node powered on (it was off); 2 nodes in 0.52 s."
                    .to_string()
            ]
        );
        let read = ok(PowerOutcome::Read, PowerState::On);
        assert_eq!(
            summary(PowerCommand::Status, &[("a", &read)], s, "inv.toml"),
            vec!["1 of 1 node answered through its BMC in 0.52 s.".to_string()]
        );
        assert_eq!(
            summary(
                PowerCommand::Status,
                &[("a", &read), ("b", &failed)],
                s,
                "inv.toml"
            ),
            vec!["1 of 2 nodes answered through their BMC in 0.52 s.".to_string()]
        );
        assert_eq!(
            summary(PowerCommand::Off, &[], s, "inv.toml"),
            vec!["power off: no node; 0 nodes in 0.52 s.".to_string()]
        );
    }
}
