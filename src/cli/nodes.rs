//! `provision nodes INVENTORY power on|off|status [--limit]`: day-2 power operations
//! through the nodes' BMCs, called from the undercloud (the BMC network is reachable
//! only from there), all nodes at once. Passwords travel on standard input, never on
//! a command line.

use std::process::ExitCode;
use std::time::Instant;

use provision::baremetal::{BmcTarget, PowerState, Runner};
use provision::evaluate::Evaluation;
use provision::host::join_all;

/// What to do.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PowerAction {
    On,
    Off,
    Status,
}

pub fn power(ev: &Evaluation, action: PowerAction, accept_new: bool) -> ExitCode {
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
            let r = match BmcTarget::for_host(h, &ev.cloud.secrets) {
                Err(e) => Err(e),
                Ok(bmc) => {
                    let done = match action {
                        PowerAction::On => bmc
                            .power_on(runner)
                            .await
                            .map(|_| "power on requested".to_string()),
                        PowerAction::Off => bmc
                            .power_off(runner)
                            .await
                            .map(|_| "power off requested".to_string()),
                        PowerAction::Status => Ok(String::new()),
                    };
                    match done {
                        Err(e) => Err(e),
                        Ok(msg) => bmc
                            .power_state(runner)
                            .await
                            .map(|s| (s, msg, bmc.endpoint())),
                    }
                }
            };
            (h, r, t.elapsed())
        });
        let results = join_all(calls.collect()).await;
        let mut failed = 0;
        for (h, r, took) in results {
            match r {
                Ok((state, msg, endpoint)) => {
                    let state = match state {
                        PowerState::Unknown(s) => format!("unknown ({s})"),
                        s => s.to_string(),
                    };
                    let msg = if msg.is_empty() {
                        String::new()
                    } else {
                        format!(", {msg}")
                    };
                    println!(
                        "{:<28} {:<12} power {state:<12} {endpoint}{msg} ({:.0} ms)",
                        h.name,
                        h.role,
                        took.as_secs_f64() * 1000.0
                    );
                }
                Err(e) => {
                    failed += 1;
                    println!("{:<28} {:<12} FAILED: {e}", h.name, h.role);
                }
            }
        }
        println!(
            "\n{} of {} nodes answered through their BMC in {:.2} s.",
            hosts.len() - failed,
            hosts.len(),
            start.elapsed().as_secs_f64()
        );
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}
