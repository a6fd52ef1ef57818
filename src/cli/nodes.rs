//! `provision nodes INVENTORY power on|off|status|cycle [--limit]`: day-2 power
//! operations through the nodes' BMCs, called from the undercloud (the BMC network is
//! reachable only from there), all nodes at once. Passwords travel on standard input,
//! never on a command line. What each action does on each power state, and the lines
//! printed, are the library's ([`provision::baremetal::power`]): this maps the
//! arguments and prints.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use provision::baremetal::power::{node_line, summary};
use provision::baremetal::{BmcTarget, PowerCommand, Runner};
use provision::evaluate::Evaluation;
use provision::host::join_all;

/// What to do.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PowerAction {
    /// Power on the nodes that are not on; a node already on is left alone (its line
    /// says how to restart it).
    On,
    /// Cut the power (Redfish ForceOff, IPMI chassis power off).
    Off,
    /// Read the power state.
    Status,
    /// Hard restart of a node that is on (Redfish ForceRestart or PowerCycle, IPMI
    /// chassis power cycle); power on of a node that is off.
    Cycle,
}

impl PowerAction {
    fn command(self) -> PowerCommand {
        match self {
            PowerAction::On => PowerCommand::On,
            PowerAction::Off => PowerCommand::Off,
            PowerAction::Status => PowerCommand::Status,
            PowerAction::Cycle => PowerCommand::Cycle,
        }
    }
}

pub fn power(ev: &Evaluation, inventory: &Path, action: PowerAction, accept_new: bool) -> ExitCode {
    let command = action.command();
    let inventory = inventory.display().to_string();
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let fleet = match super::open_fleet(&ev.cloud, &[], accept_new, 1).await {
            Ok(f) => f.sessions,
            Err(code) => return code,
        };
        let runner: &dyn Runner = fleet.undercloud.as_ref();
        let start = Instant::now();
        let hosts: Vec<&provision::model::Host> = ev
            .cloud
            .hosts
            .iter()
            .filter(|h| ev.state.hosts.contains_key(&h.name))
            .collect();
        let calls = hosts.iter().map(|h| async move {
            let t = Instant::now();
            let (endpoint, r) = match BmcTarget::for_host(h, &ev.cloud.secrets) {
                Err(e) => (String::new(), Err(e)),
                Ok(bmc) => (bmc.endpoint(), bmc.power_command(runner, command).await),
            };
            (h, endpoint, r, t.elapsed())
        });
        let results = join_all(calls.collect()).await;
        for (h, endpoint, r, took) in &results {
            println!(
                "{}",
                node_line(&h.name, &h.role, endpoint, r, *took, &inventory)
            );
        }
        let outcomes: Vec<_> = results
            .iter()
            .map(|(h, _, r, _)| (h.name.as_str(), r))
            .collect();
        println!();
        for line in summary(command, &outcomes, start.elapsed(), &inventory) {
            println!("{line}");
        }
        if outcomes.iter().all(|(_, r)| r.is_ok()) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}
