//! The record of the last apply, kept on the undercloud beside the lock
//! (`/var/lib/provision/<cloud>.last-apply.json`) for `provision status`: when, by whom,
//! which inventory (its digest) and, per host, the result of the last apply that
//! included it. No secret is in it: messages are redacted before they get here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use std::time::{Duration, SystemTime};

use super::{RunInfo, RunOutcome};
use crate::evaluate::Evaluation;
use crate::facts::TaskRun;
use crate::host::{Command, Host};
use crate::report::events::rfc3339_millis;
use crate::state::{DesiredState, HostState, STATE_DIR};
use crate::transport::UploadFile;

/// The record's format version.
pub const FORMAT: u32 = 1;

/// The last apply of a cloud.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ApplyRecord {
    pub format: u32,
    pub run_id: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub operator: String,
    pub inventory: String,
    /// Digest of the desired state applied (every file's and container's hash).
    pub desired_sha256: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// What interrupted the run (`SIGINT`), when it was interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    pub seconds: f64,
    /// Per host: the last apply that included it (hosts left out by `--limit` keep
    /// their earlier entry).
    pub hosts: BTreeMap<String, HostRecord>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HostRecord {
    pub run_id: String,
    pub time: String,
    pub role: String,
    /// `ok`, `changed`, `failed` or `interrupted`.
    pub result: String,
    pub changes: usize,
    /// What was done on it, in apply's words (`3 files written, 1 container
    /// recreated`), when anything was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// What an interrupted run did not start on it (`step 3 and later not started`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<String>,
    pub desired_sha256: String,
}

/// The tasks that succeeded, per host, with the inputs they ran with
/// (`/var/lib/provision/<cloud>.tasks.json`): a task runs again when its inputs change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TasksRecord {
    pub format: u32,
    pub hosts: BTreeMap<String, BTreeMap<String, TaskRun>>,
}

/// The tasks record's path on the undercloud.
pub fn tasks_path(cloud: &str) -> String {
    format!("{STATE_DIR}/{cloud}.tasks.json")
}

/// Reads the tasks record (empty when there is none yet).
pub async fn read_tasks(undercloud: &dyn Host, cloud: &str) -> Result<TasksRecord, String> {
    let path = tasks_path(cloud);
    let out = undercloud
        .run(&Command::ReadFile { path: &path }, Duration::from_secs(60))
        .await
        .map_err(|e| e.to_string())?;
    if out.stdout.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(TasksRecord {
            format: FORMAT,
            ..Default::default()
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{path} on {} is not a tasks record ({e}); move it away to run every task again",
            undercloud.name()
        )
    })
}

/// `previous` with the tasks this run ran added (with their inputs now).
pub fn with_tasks(
    mut previous: TasksRecord,
    run: &RunOutcome,
    state: &DesiredState,
    info: &RunInfo,
) -> TasksRecord {
    previous.format = FORMAT;
    for (host, h) in &run.hosts {
        // A node installed anew in this run: its earlier records are of another life.
        if h.done.nodes_provisioned > 0 {
            previous.hosts.remove(host);
        }
        let Some(hs) = state.hosts.get(host) else {
            continue;
        };
        for id in &h.tasks_ran {
            if let Some(t) = hs.tasks.get(id) {
                previous.hosts.entry(host.clone()).or_default().insert(
                    id.clone(),
                    TaskRun {
                        image: t.image.clone(),
                        definition_hash: t.definition_hash.clone(),
                        files_hash: t.files_hash.clone(),
                        hosts_of: t.hosts_of.clone(),
                        time: info.time.clone(),
                        run_id: info.run_id.clone(),
                    },
                );
            }
        }
    }
    previous
}

/// The record's path on the undercloud.
pub fn record_path(cloud: &str) -> String {
    format!("{STATE_DIR}/{cloud}.last-apply.json")
}

/// Updates the record on the undercloud with this run: read, merge, atomic write.
pub async fn save(
    undercloud: &dyn Host,
    ev: &Evaluation,
    run: &RunOutcome,
    info: &RunInfo,
) -> Result<(), String> {
    let path = record_path(&ev.cloud.name);
    let prev = undercloud
        .run(&Command::ReadFile { path: &path }, Duration::from_secs(60))
        .await
        .map_err(|e| e.to_string())?;
    let previous: Option<ApplyRecord> = serde_json::from_slice(&prev.stdout).ok();
    let rec = updated(
        previous,
        run,
        &ev.state,
        info,
        &rfc3339_millis(SystemTime::now()),
    );
    write_json(undercloud, &path, &rec, &ev.cloud.ssh.user).await
}

/// Writes `value` as JSON to `path` on the undercloud: atomically, mode 0600, owned by
/// the SSH user. For provision's own records.
pub async fn write_json(
    undercloud: &dyn Host,
    path: &str,
    value: &impl serde::Serialize,
    user: &str,
) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())? + "\n";
    let file = UploadFile {
        path,
        content: text.as_bytes(),
        mode: 0o600,
        owner: user,
        group: user,
    };
    undercloud
        .upload_batch(&[file], Duration::from_secs(60))
        .await
        .map_err(|e| e.to_string())
}

/// Reads the record (`None` when there is none, or it cannot be read).
pub async fn read(undercloud: &dyn Host, cloud: &str) -> Option<ApplyRecord> {
    let path = record_path(cloud);
    let out = undercloud
        .run(&Command::ReadFile { path: &path }, Duration::from_secs(60))
        .await
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// The new record: `previous` updated with this run's hosts.
pub fn updated(
    previous: Option<ApplyRecord>,
    run: &RunOutcome,
    state: &DesiredState,
    info: &RunInfo,
    time: &str,
) -> ApplyRecord {
    let (run_id, operator, inventory) = (&info.run_id, &info.operator, &info.inventory);
    let mut hosts = previous.map(|p| p.hosts).unwrap_or_default();
    for (name, h) in &run.hosts {
        let result = if h.failure.is_some() {
            "failed"
        } else if h.unfinished.is_some() {
            "interrupted"
        } else if h.changes() > 0 {
            "changed"
        } else {
            "ok"
        };
        hosts.insert(
            name.clone(),
            HostRecord {
                run_id: run_id.to_string(),
                time: time.to_string(),
                role: h.role.clone(),
                result: result.into(),
                changes: h.changes(),
                done: (h.changes() > 0).then(|| h.done.brief(crate::change::Tense::Done)),
                failure: h.failure.as_ref().map(|f| f.to_string()),
                unfinished: h.unfinished.clone(),
                desired_sha256: state
                    .hosts
                    .get(name)
                    .map(HostState::digest)
                    .unwrap_or_default(),
            },
        );
    }
    ApplyRecord {
        format: FORMAT,
        run_id: run_id.to_string(),
        time: time.to_string(),
        operator: operator.to_string(),
        inventory: inventory.to_string(),
        desired_sha256: state.digest(),
        ok: run.ok(),
        stopped: run.stopped.clone(),
        interrupted: run.interrupted.clone(),
        seconds: run.seconds,
        hosts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{Failure, HostOutcome, Phase};
    use crate::change::Counts;

    #[test]
    fn a_limited_run_keeps_the_other_hosts_entries() {
        let mut run = RunOutcome::default();
        run.hosts.insert(
            "c0".into(),
            HostOutcome {
                host: "c0".into(),
                role: "Compute".into(),
                done: Counts {
                    files_written: 2,
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        run.hosts.insert(
            "c1".into(),
            HostOutcome {
                host: "c1".into(),
                role: "Compute".into(),
                failure: Some(Failure {
                    remedy: None,
                    phase: Phase::Step(5),
                    action: "healthcheck of nova_compute".into(),
                    message: "unhealthy".into(),
                }),
                ..Default::default()
            },
        );
        let mut prev = ApplyRecord::default();
        prev.hosts.insert(
            "ctl0".into(),
            HostRecord {
                run_id: "old".into(),
                result: "ok".into(),
                ..Default::default()
            },
        );
        let info = RunInfo {
            run_id: "new".into(),
            operator: "me".into(),
            inventory: "lab.toml".into(),
            time: "t".into(),
        };
        let r = updated(Some(prev), &run, &DesiredState::default(), &info, "t");
        assert_eq!(r.hosts["ctl0"].run_id, "old");
        assert_eq!(
            (r.hosts["c0"].result.as_str(), r.hosts["c0"].changes),
            ("changed", 2)
        );
        assert_eq!(r.hosts["c1"].result, "failed");
        assert_eq!(
            r.hosts["c1"].failure.as_deref(),
            Some("step 5: healthcheck of nova_compute: unhealthy")
        );
        assert!(!r.ok);
        let json = serde_json::to_string(&r).unwrap();
        let back: ApplyRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
