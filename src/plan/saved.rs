//! Saved plans (`provision plan --out FILE`, then `provision apply FILE`): what the plan
//! saw on every host (a fingerprint of its actual state) and what it would make it (a
//! digest of its desired state). Applying a saved plan re-evaluates the inventory and
//! re-reads the hosts, and refuses if either differs: the apply then does exactly what
//! the plan showed. The file holds no file contents and no secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{Counts, Plan};
use crate::facts::ActualHost;
use crate::state::DesiredState;

/// The `format` of a saved plan.
pub const FORMAT: &str = "provision-plan/2";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedPlan {
    pub format: String,
    /// The inventory, as an absolute path.
    pub inventory: PathBuf,
    /// `--limit` as given to plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// `--power-off-removed` as given to plan: part of what it decided.
    #[serde(default)]
    pub power_off_removed: bool,
    /// RFC 3339, UTC.
    pub created: String,
    /// What the plan will do, counted as apply counts what it did.
    pub changes: Counts,
    pub hosts: BTreeMap<String, PlannedHost>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlannedHost {
    /// [`ActualHost::fingerprint`] as the plan read it.
    pub actual: String,
    /// [`HostState::digest`](crate::state::HostState::digest) of the desired state planned.
    pub desired: String,
}

#[derive(Debug, Error)]
pub enum SavedPlanError {
    #[error("cannot read the plan {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path} is not a plan saved by `provision plan --out` (format {found}, expected {FORMAT}); run `provision plan INVENTORY --out FILE` again")]
    Format { path: PathBuf, found: String },
    #[error("the desired state of {hosts} changed since the plan was saved (the inventory, its templates, roles or secrets were edited); nothing was applied: run `provision plan --out` again and review it")]
    DesiredChanged { hosts: String },
    #[error("the plan covers {planned} but this run covers {now}; nothing was applied: run `provision plan --out` again")]
    HostsChanged { planned: String, now: String },
    #[error("{hosts} changed since the plan was saved (drift: files, modes, owners or containers are not what the plan saw); nothing was applied: run `provision plan --out` again and review it")]
    Drifted { hosts: String },
}

impl SavedPlan {
    pub fn new(
        inventory: PathBuf,
        limit: Option<String>,
        power_off_removed: bool,
        created: String,
        plan: &Plan,
        desired: &DesiredState,
        actual: &BTreeMap<String, ActualHost>,
    ) -> SavedPlan {
        let hosts = desired
            .hosts
            .iter()
            .filter_map(|(n, hs)| {
                actual.get(n).map(|a| {
                    (
                        n.clone(),
                        PlannedHost {
                            actual: a.fingerprint(),
                            desired: hs.digest(),
                        },
                    )
                })
            })
            .collect();
        SavedPlan {
            format: FORMAT.into(),
            inventory,
            limit,
            power_off_removed,
            created,
            changes: plan.counts(),
            hosts,
        }
    }

    /// Reads `path` if it is a saved plan: `Ok(None)` when it is something else (an
    /// inventory: it is not JSON).
    pub fn read(path: &Path) -> Result<Option<SavedPlan>, SavedPlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| SavedPlanError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if !text.trim_start().starts_with('{') {
            return Ok(None);
        }
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| SavedPlanError::Read {
                path: path.to_path_buf(),
                message: format!("not valid JSON: {e}"),
            })?;
        let found = v.get("format").and_then(|f| f.as_str()).unwrap_or("none");
        if found != FORMAT {
            return Err(SavedPlanError::Format {
                path: path.to_path_buf(),
                found: found.to_string(),
            });
        }
        serde_json::from_value(v)
            .map(Some)
            .map_err(|e| SavedPlanError::Read {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
    }

    /// Refuses if the hosts or their desired states differ from the plan's.
    pub fn check_desired(&self, desired: &DesiredState) -> Result<(), SavedPlanError> {
        let planned: Vec<&String> = self.hosts.keys().collect();
        let now: Vec<&String> = desired.hosts.keys().collect();
        if planned != now {
            return Err(SavedPlanError::HostsChanged {
                planned: names(planned.iter().map(|s| s.as_str())),
                now: names(now.iter().map(|s| s.as_str())),
            });
        }
        let changed: Vec<&str> = desired
            .hosts
            .iter()
            .filter(|(n, hs)| self.hosts[*n].desired != hs.digest())
            .map(|(n, _)| n.as_str())
            .collect();
        if changed.is_empty() {
            Ok(())
        } else {
            Err(SavedPlanError::DesiredChanged {
                hosts: names(changed.into_iter()),
            })
        }
    }

    /// Refuses if a host's actual state differs from what the plan saw.
    pub fn check_actual(
        &self,
        actual: &BTreeMap<String, ActualHost>,
    ) -> Result<(), SavedPlanError> {
        let drifted: Vec<&str> = self
            .hosts
            .iter()
            .filter(|(n, p)| {
                actual
                    .get(*n)
                    .map(|a| a.fingerprint() != p.actual)
                    .unwrap_or(false)
            })
            .map(|(n, _)| n.as_str())
            .collect();
        if drifted.is_empty() {
            Ok(())
        } else {
            Err(SavedPlanError::Drifted {
                hosts: names(drifted.into_iter()),
            })
        }
    }
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.collect();
    match v.len() {
        0 => "no host".into(),
        1 => format!("host {}", v[0]),
        _ => format!("hosts {}", v.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::ActualContainer;
    use crate::state::HostState;

    fn state() -> DesiredState {
        let mut d = DesiredState::default();
        for n in ["a", "b"] {
            d.hosts.insert(
                n.into(),
                HostState {
                    name: n.into(),
                    role: "Compute".into(),
                    ..Default::default()
                },
            );
        }
        d
    }

    #[test]
    fn drift_and_desired_changes_are_refused() {
        let desired = state();
        let mut actual: BTreeMap<String, ActualHost> = BTreeMap::new();
        actual.insert("a".into(), ActualHost::default());
        actual.insert("b".into(), ActualHost::default());
        let plan = SavedPlan::new(
            "/x/lab.toml".into(),
            None,
            false,
            "t".into(),
            &Plan::default(),
            &desired,
            &actual,
        );
        assert!(plan.check_desired(&desired).is_ok());
        assert!(plan.check_actual(&actual).is_ok());
        // b drifted: a container appeared
        actual.get_mut("b").unwrap().containers.insert(
            "x".into(),
            ActualContainer {
                state: "running".into(),
                config_hash: "h".into(),
                status: String::new(),
            },
        );
        let e = plan.check_actual(&actual).unwrap_err().to_string();
        assert!(
            e.starts_with("host b changed since the plan was saved"),
            "{e}"
        );
        // a's desired state changed
        let mut d2 = desired.clone();
        d2.hosts
            .get_mut("a")
            .unwrap()
            .directories
            .push(crate::state::DesiredDir {
                path: "/x".into(),
                mode: "0755".into(),
                owner: "root".into(),
                group: "root".into(),
            });
        let e = plan.check_desired(&d2).unwrap_err().to_string();
        assert!(e.starts_with("the desired state of host a changed"), "{e}");
        // round trip through the file format
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plan.json");
        std::fs::write(&p, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
        assert_eq!(SavedPlan::read(&p).unwrap(), Some(plan));
        std::fs::write(&p, "[cloud]\nname = 'x'\n").unwrap();
        assert_eq!(SavedPlan::read(&p).unwrap(), None);
    }
}
