//! The undercloud stage's checks: before anything else, one command on the undercloud
//! reads its OS release, CPUs, memory, free disk, whether its provisioning address is
//! its own, and which of the commands provision needs there are present. Every problem
//! is reported at once; any stops apply before a node or a BMC is touched.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::host::{Command, Host};
use crate::inventory::spec::BmcDriver;
use crate::model::Cloud;
use crate::transport::{shell_quote, TransportError};

/// Minimums of the undercloud (it runs podman, curl and ipmitool for every node, holds
/// the state and lock, and receives the overcloud's logs).
pub const MIN_CPUS: u32 = 2;
pub const MIN_MEMORY_MB: u64 = 4096;
pub const MIN_FREE_DISK_MB: u64 = 10 * 1024;

/// The undercloud operating systems provision supports (`ID` and major `VERSION_ID` of
/// /etc/os-release): those podman 4+ and the services' images are built for.
pub const SUPPORTED_OS: &[(&str, &str)] = &[
    ("rhel", "9"),
    ("centos", "9"),
    ("rocky", "9"),
    ("almalinux", "9"),
    ("debian", "12"),
    ("debian", "13"),
    ("ubuntu", "22"),
    ("ubuntu", "24"),
];

/// Whether `os` ("ID VERSION_ID", e.g. "rocky 9.4") is supported.
pub fn supported_os(os: &str) -> bool {
    let mut it = os.split_whitespace();
    let (Some(id), Some(version)) = (it.next(), it.next()) else {
        return false;
    };
    let major = version.split('.').next().unwrap_or("");
    SUPPORTED_OS.iter().any(|(i, v)| *i == id && *v == major)
}

/// The commands provision runs on the undercloud for this cloud.
pub fn required_commands(cloud: &Cloud) -> Vec<&'static str> {
    let mut c = vec!["sh", "flock", "sha256sum", "stat", "mkdir", "podman"];
    if cloud
        .hosts
        .iter()
        .any(|h| h.bmc.driver == BmcDriver::Redfish)
    {
        c.push("curl");
    }
    if cloud.hosts.iter().any(|h| h.bmc.driver == BmcDriver::Ipmi) {
        c.push("ipmitool");
    }
    c
}

/// The one command that reads everything the checks need.
pub fn check_command(cloud: &Cloud) -> String {
    let cmds = required_commands(cloud)
        .iter()
        .map(|c| {
            format!("command -v {c} >/dev/null 2>&1 && echo 'cmd {c} yes' || echo 'cmd {c} no'")
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        ". /etc/os-release 2>/dev/null; echo \"os $ID $VERSION_ID\"; \
         echo \"cpus $(nproc)\"; \
         echo \"memory_kb $(awk '/^MemTotal:/ {{print $2}}' /proc/meminfo)\"; \
         echo \"free_kb $(df -Pk /var/lib | awk 'NR==2 {{print $4}}')\"; \
         echo \"route $(ip -o route get {addr} 2>&1 | head -n 1)\"; {cmds}",
        addr = shell_quote(&cloud.undercloud.ctlplane_ip.to_string()),
    )
}

/// What the checks found, and every problem.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub facts: BTreeMap<String, String>,
    pub problems: Vec<String>,
}

/// Judges the output of [`check_command`].
pub fn judge(cloud: &Cloud, out: &str) -> Checked {
    let mut c = Checked::default();
    let mut missing = Vec::new();
    for line in out.lines() {
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        if k == "cmd" {
            if let Some(name) = v.strip_suffix(" no") {
                missing.push(name.to_string());
            }
            continue;
        }
        c.facts.insert(k.to_string(), v.trim().to_string());
    }
    let uc = &cloud.undercloud.name;
    let os = c.facts.get("os").cloned().unwrap_or_default();
    if !supported_os(&os) {
        c.problems.push(format!(
            "{uc} runs `{}` (/etc/os-release); the undercloud must run one of: {}",
            if os.trim().is_empty() {
                "an unknown OS"
            } else {
                os.trim()
            },
            SUPPORTED_OS
                .iter()
                .map(|(i, v)| format!("{i} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let num = |k: &str| c.facts.get(k).and_then(|v| v.parse::<u64>().ok());
    match num("cpus") {
        Some(n) if n >= u64::from(MIN_CPUS) => {}
        Some(n) => c.problems.push(format!(
            "{uc} has {}; the undercloud needs at least {MIN_CPUS}",
            crate::change::plural(n as usize, "CPU")
        )),
        None => c
            .problems
            .push(format!("{uc}: cannot read its CPUs (nproc)")),
    }
    match num("memory_kb") {
        Some(kb) if kb / 1024 >= MIN_MEMORY_MB => {}
        Some(kb) => c.problems.push(format!(
            "{uc} has {} MB of memory; the undercloud needs at least {MIN_MEMORY_MB} MB",
            kb / 1024
        )),
        None => c
            .problems
            .push(format!("{uc}: cannot read its memory (/proc/meminfo)")),
    }
    match num("free_kb") {
        Some(kb) if kb / 1024 >= MIN_FREE_DISK_MB => {}
        Some(kb) => c.problems.push(format!(
            "{uc} has {} MB free under /var/lib; the undercloud needs at least {MIN_FREE_DISK_MB} MB: free some space",
            kb / 1024
        )),
        None => c.problems.push(format!("{uc}: cannot read the free space of /var/lib (df)")),
    }
    let route = c.facts.get("route").cloned().unwrap_or_default();
    if !route.starts_with("local ") {
        c.problems.push(format!(
            "{uc} does not hold its provisioning address {} (`ip route get` says: {}); configure it on the provisioning interface (network `{}`)",
            cloud.undercloud.ctlplane_ip,
            if route.is_empty() { "nothing" } else { route.as_str() },
            cloud.undercloud.network
        ));
    }
    if !missing.is_empty() {
        c.problems.push(format!(
            "{uc} lacks the command{} {}: install {} (e.g. `dnf install` or `apt-get install` {})",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" },
            missing.join(" ")
        ));
    }
    c
}

/// Runs the checks on the undercloud.
pub async fn check(cloud: &Cloud, undercloud: &dyn Host) -> Result<Checked, TransportError> {
    let script = check_command(cloud);
    let out = undercloud
        .run(
            &Command::CheckUndercloud { script: &script },
            Duration::from_secs(60),
        )
        .await?;
    Ok(judge(cloud, &out.stdout_text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Cloud {
        let inv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/lab.toml");
        crate::evaluate::evaluate(&inv, &crate::source::FsTree, &Default::default())
            .unwrap_or_else(|f| panic!("{}", f.render()))
            .cloud
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let cloud = lab();
        let ok = "os debian 12\ncpus 2\nmemory_kb 24000000\nfree_kb 90000000\n\
                  route local 127.0.10.1 dev lo table local src 127.0.0.1 uid 0\n\
                  cmd curl yes\ncmd flock yes\n";
        let c = judge(&cloud, ok);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.facts["os"], "debian 12");
        let bad = "os centos 7\ncpus 1\nmemory_kb 2000000\nfree_kb 1000\n\
                   route 127.0.10.1 via 10.0.0.1 dev eth0 src 10.0.0.5\ncmd curl no\ncmd flock yes\n";
        let c = judge(&cloud, bad);
        assert_eq!(c.problems.len(), 6, "{:?}", c.problems);
        assert!(
            c.problems[0].contains("runs `centos 7`"),
            "{}",
            c.problems[0]
        );
        assert!(c.problems[0].contains("rocky 9, almalinux 9, debian 12"));
        assert!(c.problems[1].contains("has 1 CPU;"));
        assert!(c.problems[4].contains("does not hold its provisioning address 127.0.10.1"));
        assert!(c.problems[5].contains("lacks the command"));
        assert!(
            supported_os("rocky 9.4") && supported_os("ubuntu 24.04") && !supported_os("rocky")
        );
        // The command itself is valid shell.
        crate::host::script::assert_sh_syntax(&check_command(&cloud));
    }

    #[test]
    fn the_checks_run_here() {
        // On this machine (a real shell, real /proc): every fact is read.
        let cloud = lab();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(check_command(&cloud))
            .output()
            .unwrap();
        let c = judge(&cloud, &String::from_utf8_lossy(&out.stdout));
        for k in ["os", "cpus", "memory_kb", "free_kb", "route"] {
            assert!(c.facts.contains_key(k), "{k}: {:?}", c.facts);
        }
    }
}
