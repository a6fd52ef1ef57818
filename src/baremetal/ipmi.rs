//! IPMI through ipmitool run on the undercloud. The password is the remote shell's first
//! line of input, read into `IPMI_PASSWORD` and exported to ipmitool only (`-E`): it is
//! never in any process's argv (no `-P`, no `IPMI_PASSWORD=... ipmitool`).

use std::time::Duration;

use super::{excerpt, BmcError, BmcTarget, BootOverride, PowerState, Runner};
use crate::transport::{shell_quote, ExecOutput};

/// How long the runner waits for ipmitool (it retries a silent BMC for a while).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// An ipmitool chassis command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Status,
    On,
    Off,
    Reset,
    /// Off, then on again (a chassis that is off stays off: power it on instead).
    Cycle,
    /// Network boot at the next boot only.
    BootdevPxe,
    /// Reads boot parameter 5 (the boot flags).
    BootparamGet5,
}

impl Op {
    /// ipmitool's arguments after the connection options.
    pub fn args(self) -> &'static str {
        match self {
            Op::Status => "chassis power status",
            Op::On => "chassis power on",
            Op::Off => "chassis power off",
            Op::Reset => "chassis power reset",
            Op::Cycle => "chassis power cycle",
            Op::BootdevPxe => "chassis bootdev pxe",
            Op::BootparamGet5 => "chassis bootparam get 5",
        }
    }
    /// What ipmitool prints on success (checked).
    fn expect(self) -> Option<&'static str> {
        match self {
            Op::On | Op::Off | Op::Reset | Op::Cycle => Some("Chassis Power Control"),
            Op::BootdevPxe => Some("Set Boot Device to pxe"),
            Op::Status | Op::BootparamGet5 => None,
        }
    }
}

/// The shell command: reads the password from stdin into ipmitool's environment, then
/// execs ipmitool.
pub fn command(t: &BmcTarget, op: Op) -> String {
    format!(
        "IFS= read -r IPMI_PASSWORD; export IPMI_PASSWORD; exec ipmitool -I lanplus -H {} -p {} -U {} -E {}",
        shell_quote(&t.address),
        t.port,
        shell_quote(t.username.as_deref().unwrap_or("")),
        op.args()
    )
}

/// The command's standard input: the password and a newline.
pub fn stdin(t: &BmcTarget) -> Result<Vec<u8>, BmcError> {
    let bad = |reason: &str| BmcError::BadCredentials {
        node: t.node.clone(),
        bmc: t.endpoint(),
        reason: reason.into(),
    };
    let Some(pw) = t.password.as_ref() else {
        return Err(bad("IPMI needs a password"));
    };
    let pw = pw.expose();
    if pw.contains('\n') || pw.contains('\r') || pw.contains('\0') {
        return Err(bad("the password contains a line break or NUL character"));
    }
    if pw.len() > 20 {
        return Err(bad("an IPMI v2 password has at most 20 bytes"));
    }
    if t.username.as_deref().unwrap_or("").len() > 16 {
        return Err(bad("an IPMI username has at most 16 bytes"));
    }
    let mut v = pw.as_bytes().to_vec();
    v.push(b'\n');
    Ok(v)
}

/// Maps a failed or unexpected ipmitool run to an error; returns its output otherwise.
pub fn check_output(
    t: &BmcTarget,
    via: &str,
    op: Op,
    out: &ExecOutput,
) -> Result<String, BmcError> {
    let stdout = out.stdout_text();
    let stderr = out.stderr_text();
    let node = t.node.clone();
    let bmc = t.endpoint();
    let first = |s: &str| {
        excerpt(
            s.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or(""),
        )
    };
    if out.status == Some(127) || (out.status != Some(0) && stderr.contains("ipmitool: not found"))
    {
        return Err(BmcError::ToolMissing {
            node,
            tool: "ipmitool".into(),
            via: via.into(),
        });
    }
    if out.status != Some(0) {
        let text = format!("{stderr}\n{stdout}");
        let lower = text.to_ascii_lowercase();
        let line_with = |needle: &str| {
            text.lines()
                .find(|l| l.to_ascii_lowercase().contains(needle))
                .map(excerpt)
                .unwrap_or_else(|| first(&text))
        };
        for needle in [
            "address lookup",
            "no route to host",
            "network is unreachable",
            "connection refused",
            "no response from remote controller",
        ] {
            if lower.contains(needle) {
                return Err(BmcError::Unreachable {
                    node,
                    bmc,
                    via: via.into(),
                    detail: line_with(needle),
                });
            }
        }
        for needle in [
            "rakp",
            "unable to establish ipmi v2 / rmcp+ session",
            "unauthorized name",
            "invalid user name",
            "activate session",
            "invalid session",
        ] {
            if lower.contains(needle) {
                return Err(BmcError::AuthFailed {
                    node,
                    bmc,
                    detail: format!(
                        "ipmitool: {}{}",
                        line_with(needle),
                        if needle.starts_with("unable") {
                            "; ipmitool says the same when the BMC does not answer"
                        } else {
                            ""
                        }
                    ),
                    secret_hint: t.secret_hint(),
                });
            }
        }
        return Err(BmcError::Protocol {
            node,
            bmc,
            message: match out.status {
                Some(c) => format!("`ipmitool {}` failed (exit status {c})", op.args()),
                None => format!("`ipmitool {}` was killed", op.args()),
            },
            excerpt: first(&text),
        });
    }
    if let Some(want) = op.expect() {
        if !stdout.contains(want) {
            return Err(BmcError::Protocol {
                node,
                bmc,
                message: format!("`ipmitool {}` did not print `{want}`", op.args()),
                excerpt: excerpt(&stdout),
            });
        }
    }
    Ok(stdout)
}

/// `Chassis Power is on|off`.
pub fn parse_power(t: &BmcTarget, stdout: &str) -> Result<PowerState, BmcError> {
    for line in stdout.lines() {
        if let Some(rest) = line.trim().strip_prefix("Chassis Power is ") {
            return Ok(match rest.trim() {
                "on" => PowerState::On,
                "off" => PowerState::Off,
                other => PowerState::Unknown(other.to_string()),
            });
        }
    }
    Err(BmcError::Protocol {
        node: t.node.clone(),
        bmc: t.endpoint(),
        message: "no `Chassis Power is ...` in ipmitool's answer".into(),
        excerpt: excerpt(stdout),
    })
}

/// Boot parameter 5 (`chassis bootparam get 5`) in Redfish's words.
pub fn parse_bootparam(t: &BmcTarget, stdout: &str) -> Result<BootOverride, BmcError> {
    let mut target: Option<String> = None;
    let mut enabled = "Continuous";
    let mut valid = true;
    for line in stdout.lines() {
        let l = line.trim().trim_start_matches('-').trim();
        if l.eq_ignore_ascii_case("Boot Flag Invalid") {
            valid = false;
        } else if l.starts_with("Options apply to only next boot") {
            enabled = "Once";
        } else if l.starts_with("Options apply to all future boots") {
            enabled = "Continuous";
        } else if let Some(sel) = l.strip_prefix("Boot Device Selector") {
            let sel = sel.trim_start().trim_start_matches(':').trim();
            target = Some(
                if sel.starts_with("No override") {
                    "None"
                } else if sel.starts_with("Force PXE") {
                    "Pxe"
                } else if sel.contains("Hard-Drive") {
                    "Hdd"
                } else if sel.contains("CD/DVD") {
                    "Cd"
                } else if sel.contains("BIOS Setup") {
                    "BiosSetup"
                } else if sel.contains("Floppy") {
                    "Floppy"
                } else {
                    sel
                }
                .to_string(),
            );
        }
    }
    let Some(target) = target else {
        return Err(BmcError::Protocol {
            node: t.node.clone(),
            bmc: t.endpoint(),
            message: "no `Boot Device Selector` in ipmitool's boot parameter 5".into(),
            excerpt: excerpt(stdout),
        });
    };
    Ok(BootOverride {
        target,
        enabled: if valid { enabled } else { "Disabled" }.into(),
    })
}

/// Runs one ipmitool command; its output on success.
pub async fn run_checked(runner: &dyn Runner, t: &BmcTarget, op: Op) -> Result<String, BmcError> {
    let input = stdin(t)?;
    let cmd = command(t, op);
    let out = runner
        .run(&cmd, &input, COMMAND_TIMEOUT)
        .await
        .map_err(|e| t.runner_error(runner, e))?;
    check_output(t, runner.name(), op, &out)
}

pub async fn power_state(runner: &dyn Runner, t: &BmcTarget) -> Result<PowerState, BmcError> {
    let out = run_checked(runner, t, Op::Status).await?;
    parse_power(t, &out)
}

pub async fn boot_override(runner: &dyn Runner, t: &BmcTarget) -> Result<BootOverride, BmcError> {
    let out = run_checked(runner, t, Op::BootparamGet5).await?;
    parse_bootparam(t, &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baremetal::testutil::{out, target};
    use crate::inventory::spec::BmcDriver;

    #[test]
    fn commands_and_stdin() {
        let mut t = target(BmcDriver::Ipmi);
        t.password = Some(crate::inventory::SecretValue::new("pa ss'wd"));
        assert_eq!(
            command(&t, Op::Status),
            "IFS= read -r IPMI_PASSWORD; export IPMI_PASSWORD; exec ipmitool -I lanplus -H 10.0.0.5 -p 623 -U admin -E chassis power status"
        );
        assert!(command(&t, Op::BootdevPxe).ends_with(" -E chassis bootdev pxe"));
        assert!(command(&t, Op::Cycle).ends_with(" -E chassis power cycle"));
        assert!(command(&t, Op::BootparamGet5).ends_with(" -E chassis bootparam get 5"));
        for op in [
            Op::Status,
            Op::On,
            Op::Off,
            Op::Reset,
            Op::Cycle,
            Op::BootdevPxe,
            Op::BootparamGet5,
        ] {
            let c = command(&t, op);
            assert!(!c.contains("pa ss") && !c.contains(" -P"), "{c}");
        }
        assert_eq!(stdin(&t).unwrap(), b"pa ss'wd\n");
        t.username = Some("a b".into());
        assert!(command(&t, Op::On).contains(" -U 'a b' -E chassis power on"));
        t.password = Some(crate::inventory::SecretValue::new("two\nlines"));
        assert!(matches!(stdin(&t), Err(BmcError::BadCredentials { .. })));
        t.password = Some(crate::inventory::SecretValue::new("x".repeat(21)));
        assert!(matches!(stdin(&t), Err(BmcError::BadCredentials { .. })));
    }

    #[test]
    fn power_answers() {
        let t = target(BmcDriver::Ipmi);
        assert_eq!(
            parse_power(&t, "Chassis Power is on\n").unwrap(),
            PowerState::On
        );
        assert_eq!(
            parse_power(&t, "Chassis Power is off\n").unwrap(),
            PowerState::Off
        );
        assert!(matches!(
            parse_power(&t, "huh"),
            Err(BmcError::Protocol { .. })
        ));
        assert!(check_output(
            &t,
            "uc",
            Op::On,
            &out(0, "Chassis Power Control: Up/On\n", "")
        )
        .is_ok());
        assert!(check_output(
            &t,
            "uc",
            Op::BootdevPxe,
            &out(0, "Set Boot Device to pxe\n", "")
        )
        .is_ok());
        assert!(matches!(
            check_output(&t, "uc", Op::Off, &out(0, "something else\n", "")),
            Err(BmcError::Protocol { .. })
        ));
    }

    #[test]
    fn error_mapping() {
        let t = target(BmcDriver::Ipmi);
        let e = check_output(
            &t,
            "uc",
            Op::Status,
            &out(
                1,
                "",
                "Error: Unable to establish IPMI v2 / RMCP+ session\n",
            ),
        )
        .unwrap_err();
        assert!(
            matches!(e, BmcError::AuthFailed { ref node, .. } if node == "overcloud-controller-0"),
            "{e}"
        );
        assert!(e.to_string().contains("ipmi 10.0.0.5:623"), "{e}");
        let e = check_output(
            &t,
            "uc",
            Op::Status,
            &out(
                1,
                "",
                "> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n",
            ),
        )
        .unwrap_err();
        assert!(
            matches!(e, BmcError::AuthFailed { ref detail, .. } if detail.contains("RAKP 2 HMAC is invalid")),
            "{e}"
        );
        let e = check_output(
            &t,
            "uc",
            Op::Status,
            &out(1, "", "Address lookup for nosuch failed\n"),
        )
        .unwrap_err();
        assert!(matches!(e, BmcError::Unreachable { .. }), "{e}");
        let e = check_output(
            &t,
            "uc",
            Op::Status,
            &out(127, "", "sh: 1: exec: ipmitool: not found\n"),
        )
        .unwrap_err();
        assert!(
            matches!(e, BmcError::ToolMissing { ref via, .. } if via == "uc"),
            "{e}"
        );
        let e = check_output(
            &t,
            "uc",
            Op::Status,
            &out(1, "", "Invalid chassis command\n"),
        )
        .unwrap_err();
        assert!(matches!(e, BmcError::Protocol { .. }), "{e}");
    }

    #[test]
    fn bootparam() {
        let t = target(BmcDriver::Ipmi);
        let once = "Boot parameter version: 1\nBoot parameter 5 is valid/unlocked\nBoot parameter data: 8004000000\n Boot Flags :\n   - Boot Flag Valid\n   - Options apply to only next boot\n   - BIOS PC Compatible (legacy) boot\n   - Boot Device Selector : Force PXE\n   - Console Redirection control : System Default\n";
        assert_eq!(
            parse_bootparam(&t, once).unwrap(),
            BootOverride {
                target: "Pxe".into(),
                enabled: "Once".into()
            }
        );
        let none = "Boot parameter version: 1\nBoot parameter 5 is valid/unlocked\nBoot parameter data: 0000000000\n Boot Flags :\n   - Boot Flag Invalid\n   - Options apply to only next boot\n   - BIOS PC Compatible (legacy) boot\n   - Boot Device Selector : No override\n";
        assert_eq!(
            parse_bootparam(&t, none).unwrap(),
            BootOverride {
                target: "None".into(),
                enabled: "Disabled".into()
            }
        );
        let hdd = " - Boot Flag Valid\n - Options apply to all future boots\n - Boot Device Selector : Force Boot from default Hard-Drive\n";
        assert_eq!(parse_bootparam(&t, hdd).unwrap().target, "Hdd");
        assert_eq!(parse_bootparam(&t, hdd).unwrap().enabled, "Continuous");
        assert!(parse_bootparam(&t, "nothing").is_err());
    }
}
