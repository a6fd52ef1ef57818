//! Introspection: one command run on a booted node (over its own SSH session) that
//! prints its CPUs, memory, disks, NICs and host name; a parser; and the check of the
//! result against its role's minimum hardware and its inventory MACs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::Runner;
use crate::catalogue::Requirements;
use crate::transport::TransportError;

/// How long the introspection command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The introspection command (POSIX sh; every part tolerates a missing tool). One
/// `key value...` line per fact, then `end`.
pub const COMMAND: &str = r#"echo "hostname $(cat /proc/sys/kernel/hostname 2>/dev/null || hostname)"
echo "cpus $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
grep '^MemTotal:' /proc/meminfo
if bs=$(cat /sys/devices/system/memory/block_size_bytes 2>/dev/null); then
  n=0
  for s in /sys/devices/system/memory/memory*/online; do
    [ "$(cat "$s" 2>/dev/null)" = 1 ] && n=$((n+1))
  done
  echo "memblocks $bs $n"
fi
lsblk -b -d -n -o NAME,SIZE,TYPE 2>/dev/null | while read -r name size type; do
  if [ "$type" = disk ]; then echo "disk $name $size"; fi
done
for f in /sys/class/net/*/address; do
  n=${f%/address}; n=${n##*/}
  [ "$n" = lo ] && continue
  echo "nic $n $(cat "$f" 2>/dev/null)"
done
echo end"#;

/// A node's hardware as introspection found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Inventory {
    pub hostname: String,
    pub cpus: u32,
    /// MemTotal (what the kernel can use), in MiB.
    pub memory_mb: u64,
    /// Installed memory (online memory blocks), in MiB, when the kernel shows it.
    pub physical_memory_mb: Option<u64>,
    /// Whole disks (`lsblk` type disk, not zram, not empty): name and size in bytes.
    pub disks: Vec<(String, u64)>,
    /// Interface name -> MAC (lower case), loopback excluded.
    pub nics: BTreeMap<String, String>,
}

/// Why introspection failed.
#[derive(Debug, thiserror::Error)]
pub enum IntrospectError {
    #[error("{host}: introspection could not run: {source}")]
    Runner {
        host: String,
        #[source]
        source: Box<TransportError>,
    },
    #[error("{host}: introspection failed: {message}: {excerpt:?}")]
    Output {
        host: String,
        message: String,
        excerpt: String,
    },
}

/// Reads the output of [`COMMAND`].
pub fn parse(text: &str) -> Result<Inventory, String> {
    let mut inv = Inventory::default();
    let (mut cpus, mut mem, mut end) = (false, false, false);
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let Some(key) = w.next() else { continue };
        let rest: Vec<&str> = w.collect();
        let num = |s: Option<&&str>, what: &str| -> Result<u64, String> {
            s.ok_or_else(|| format!("no {what} in `{line}`"))?
                .parse::<u64>()
                .map_err(|_| format!("bad {what} in `{line}`"))
        };
        match key {
            "hostname" => inv.hostname = rest.join(" "),
            "cpus" => {
                inv.cpus = num(rest.first(), "CPU count")? as u32;
                cpus = true;
            }
            "MemTotal:" => {
                let kb = num(rest.first(), "memory size")?;
                let unit = rest.get(1).copied().unwrap_or("kB");
                if unit != "kB" {
                    return Err(format!("unknown memory unit in `{line}`"));
                }
                inv.memory_mb = kb / 1024;
                mem = true;
            }
            "memblocks" => {
                let size = rest
                    .first()
                    .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
                let count = rest.get(1).and_then(|s| s.parse::<u64>().ok());
                if let (Some(size), Some(count)) = (size, count) {
                    if size > 0 && count > 0 {
                        inv.physical_memory_mb = Some(size.saturating_mul(count) / (1024 * 1024));
                    }
                }
            }
            "disk" => {
                let name = rest
                    .first()
                    .ok_or_else(|| format!("no disk name in `{line}`"))?;
                let size = num(rest.get(1), "disk size")?;
                if size > 0 && !name.starts_with("zram") {
                    inv.disks.push((name.to_string(), size));
                }
            }
            "nic" => {
                if let (Some(name), Some(mac)) = (rest.first(), rest.get(1)) {
                    inv.nics.insert(name.to_string(), mac.to_ascii_lowercase());
                }
            }
            "end" => end = true,
            _ => {}
        }
    }
    if !end {
        return Err("the output was cut short (no `end` line)".into());
    }
    if !cpus || inv.cpus == 0 {
        return Err("no CPU count".into());
    }
    if !mem {
        return Err("no MemTotal".into());
    }
    Ok(inv)
}

/// Runs [`COMMAND`] on the node (`runner` is its own session) and reads it.
pub async fn introspect(runner: &dyn Runner) -> Result<Inventory, IntrospectError> {
    let host = runner.name().to_string();
    let out = runner
        .run(COMMAND, b"", COMMAND_TIMEOUT)
        .await
        .map_err(|source| IntrospectError::Runner {
            host: host.clone(),
            source: Box::new(source),
        })?;
    let text = out.stdout_text();
    parse(&text).map_err(|message| IntrospectError::Output {
        host,
        message: if out.success() {
            message
        } else {
            format!(
                "{message} (exit status {:?}: {})",
                out.status,
                super::excerpt(&out.stderr_text())
            )
        },
        excerpt: super::excerpt(&text),
    })
}

/// Every requirement the node does not meet, one sentence each (empty: it fits).
pub fn check(inv: &Inventory, req: &Requirements, macs: &[String]) -> Vec<String> {
    check_inner(inv, "the role", req, macs)
}

/// [`check`], naming the role in the sentences ("the Compute role needs ...").
pub fn check_role(inv: &Inventory, role: &str, req: &Requirements, macs: &[String]) -> Vec<String> {
    check_inner(inv, &format!("the {role} role"), req, macs)
}

const GB: u64 = 1_000_000_000;

fn gb(bytes: u64) -> String {
    let g = bytes as f64 / GB as f64;
    if g >= 10.0 {
        format!("{g:.0} GB")
    } else {
        format!("{g:.1} GB")
    }
}

fn check_inner(inv: &Inventory, who: &str, req: &Requirements, macs: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if inv.cpus < req.cpus {
        out.push(format!(
            "{} CPU{}, {who} needs {}",
            inv.cpus,
            if inv.cpus == 1 { "" } else { "s" },
            req.cpus
        ));
    }
    // MemTotal leaves out what the firmware and kernel keep: the installed size counts.
    let memory = inv.memory_mb.max(inv.physical_memory_mb.unwrap_or(0));
    if memory < req.memory_mb {
        out.push(format!(
            "memory {memory} MB, {who} needs {} MB",
            req.memory_mb
        ));
    }
    let min = req.disk_gb.saturating_mul(GB);
    let fit = inv.disks.iter().filter(|(_, size)| *size >= min).count();
    if fit < req.disks as usize {
        let found = if inv.disks.is_empty() {
            "no disks found".to_string()
        } else {
            inv.disks
                .iter()
                .map(|(n, s)| format!("{n} {}", gb(*s)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let size = if req.disk_gb > 0 {
            format!(" of at least {} GB", req.disk_gb)
        } else {
            String::new()
        };
        out.push(format!(
            "{fit} disk{}{size} ({found}), {who} needs {}",
            if fit == 1 { "" } else { "s" },
            req.disks
        ));
    }
    if !macs.is_empty() {
        let have: Vec<&str> = inv.nics.values().map(String::as_str).collect();
        let present = |m: &String| have.iter().any(|h| h.eq_ignore_ascii_case(m));
        let nics = if inv.nics.is_empty() {
            "it has no NICs besides lo".to_string()
        } else {
            format!(
                "its NICs: {}",
                inv.nics
                    .iter()
                    .map(|(n, m)| format!("{n} {m}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        if !macs.iter().any(present) {
            let list = macs.join(", ");
            out.push(format!(
                "none of its NICs has {} {list} from the inventory ({nics}): is this the expected machine?",
                if macs.len() == 1 { "MAC" } else { "any of the MACs" }
            ));
        } else {
            for m in macs.iter().filter(|m| !present(m)) {
                out.push(format!(
                    "no NIC has MAC {m} from the inventory ({nics}): fix the inventory's `macs` or check the cabling"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "hostname overcloud-novacompute-0\ncpus 2\nMemTotal:        4039828 kB\nmemblocks 8000000 32\ndisk zram0 0\ndisk vda 21474836480\nnic eth0 52:54:00:0A:00:0C\nnic eth1 52:54:00:0b:00:0c\nend\n";

    fn req(memory_mb: u64, cpus: u32, disks: u32, disk_gb: u64) -> Requirements {
        Requirements {
            memory_mb,
            cpus,
            disks,
            disk_gb,
        }
    }

    #[test]
    fn parses() {
        let inv = parse(SAMPLE).unwrap();
        assert_eq!(inv.hostname, "overcloud-novacompute-0");
        assert_eq!(inv.cpus, 2);
        assert_eq!(inv.memory_mb, 3945);
        assert_eq!(inv.physical_memory_mb, Some(4096));
        assert_eq!(inv.disks, vec![("vda".to_string(), 21474836480)]);
        assert_eq!(inv.nics["eth0"], "52:54:00:0a:00:0c");
        assert_eq!(inv.nics.len(), 2);
        assert!(parse("cpus 2\nMemTotal: 1 kB\n")
            .unwrap_err()
            .contains("cut short"));
        assert!(parse("cpus x\nend\n").is_err());
        assert!(parse("MemTotal: 1024 kB\nend\n")
            .unwrap_err()
            .contains("CPU"));
    }

    #[test]
    fn fits() {
        let inv = parse(SAMPLE).unwrap();
        assert!(check(&inv, &req(4096, 2, 1, 20), &["52:54:00:0a:00:0c".into()]).is_empty());
        assert!(check(&inv, &req(4096, 2, 1, 0), &[]).is_empty());
    }

    #[test]
    fn every_unmet_requirement() {
        let inv = parse(SAMPLE).unwrap();
        let problems = check_role(
            &inv,
            "Compute",
            &req(8192, 4, 2, 50),
            &["52:54:00:0a:00:99".into()],
        );
        assert_eq!(
            problems,
            vec![
                "2 CPUs, the Compute role needs 4".to_string(),
                "memory 4096 MB, the Compute role needs 8192 MB".to_string(),
                "0 disks of at least 50 GB (vda 21 GB), the Compute role needs 2".to_string(),
                "none of its NICs has MAC 52:54:00:0a:00:99 from the inventory (its NICs: eth0 52:54:00:0a:00:0c, eth1 52:54:00:0b:00:0c): is this the expected machine?".to_string(),
            ]
        );
        let problems = check(
            &inv,
            &req(1024, 1, 1, 0),
            &["52:54:00:0A:00:0C".into(), "52:54:00:0a:00:0d".into()],
        );
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("no NIC has MAC 52:54:00:0a:00:0d from the inventory"),
            "{problems:?}"
        );
        let mut bare = inv.clone();
        bare.disks.clear();
        bare.physical_memory_mb = None;
        let p = check(&bare, &req(4000, 1, 1, 0), &[]);
        assert_eq!(
            p,
            vec![
                "memory 3945 MB, the role needs 4000 MB".to_string(),
                "0 disks (no disks found), the role needs 1".to_string()
            ]
        );
    }
}
