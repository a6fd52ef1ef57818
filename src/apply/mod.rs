//! `provision apply`, first part: converging every host's files and directories.
//! Per host, in parallel up to a bound: read the actual state (one command), create or
//! fix the directories (one command), and write every file that differs in content,
//! mode or owner as one atomic batch (one command). Unchanged files are not touched.
//! Containers are not started yet (the podman lifecycle is the next piece of work).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::plan::gather::{self, ActualHost};
use crate::render::{DesiredDir, DesiredFile, HostState};
use crate::transport::{shell_quote, Fleet, Session, TransportError, UploadFile};

/// What apply did on one host.
#[derive(Debug)]
pub struct HostResult {
    pub host: String,
    pub files_written: usize,
    pub directories_fixed: usize,
    pub seconds: f64,
    /// The failing action and its error, if the host failed.
    pub error: Option<(String, TransportError)>,
}

fn owner_matches(want: &str, name: &str, id: &str) -> bool {
    want == name || want == id
}

/// The files whose content, mode or owner differ from the desired ones.
pub fn files_to_write<'a>(desired: &'a HostState, actual: &ActualHost) -> Vec<&'a DesiredFile> {
    desired
        .files
        .values()
        .filter(|f| match actual.paths.get(&f.path) {
            None => true,
            Some(a) => {
                a.sha256.as_deref() != Some(f.sha256().as_str())
                    || a.mode != f.mode
                    || !owner_matches(&f.owner, &a.user, &a.uid)
                    || !owner_matches(&f.group, &a.group, &a.gid)
            }
        })
        .collect()
}

/// The directories missing or with another mode or owner.
pub fn dirs_to_fix<'a>(desired: &'a HostState, actual: &ActualHost) -> Vec<&'a DesiredDir> {
    desired
        .directories
        .iter()
        .filter(|d| match actual.paths.get(&d.path) {
            None => true,
            Some(a) => {
                a.kind != "directory"
                    || format!("{:o}", a.mode) != d.mode.trim_start_matches('0')
                    || !owner_matches(&d.owner, &a.user, &a.uid)
                    || !owner_matches(&d.group, &a.group, &a.gid)
            }
        })
        .collect()
}

async fn converge(
    session: &Session,
    desired: &HostState,
    timeout: Duration,
) -> Result<(usize, usize), (String, TransportError)> {
    let actual = gather::gather_with(session, desired, timeout, false)
        .await
        .map_err(|e| ("reading the actual state".to_string(), e))?;
    let dirs = dirs_to_fix(desired, &actual);
    if !dirs.is_empty() {
        let cmd: Vec<String> = dirs
            .iter()
            .map(|d| {
                let p = shell_quote(&d.path);
                format!(
                    "mkdir -p {p} && chmod {} {p} && chown {}:{} {p}",
                    shell_quote(&d.mode),
                    shell_quote(&d.owner),
                    shell_quote(&d.group)
                )
            })
            .collect();
        let out = session
            .exec(&format!("set -e; {}", cmd.join("; ")), None, timeout)
            .await
            .map_err(|e| ("creating directories".to_string(), e))?;
        if !out.success() {
            return Err((
                "creating directories".into(),
                TransportError::Upload {
                    host: desired.name.clone(),
                    path: "directories".into(),
                    message: out.stderr_text().trim().to_string(),
                },
            ));
        }
    }
    let files = files_to_write(desired, &actual);
    let batch: Vec<UploadFile> = files
        .iter()
        .map(|f| UploadFile {
            path: &f.path,
            content: f.content.as_bytes(),
            mode: f.mode,
            owner: &f.owner,
            group: &f.group,
        })
        .collect();
    session
        .upload_batch(&batch, timeout)
        .await
        .map_err(|e| (format!("writing {} files", batch.len()), e))?;
    Ok((files.len(), dirs.len()))
}

/// Converges the files and directories of every host in `desired`, `parallel` hosts at
/// a time. A host that fails does not stop the others.
pub async fn apply_files(
    desired: &crate::render::DesiredState,
    fleet: &Fleet,
    parallel: usize,
    timeout: Duration,
) -> Vec<HostResult> {
    let limit = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut results = Vec::new();
    for (name, hs) in &desired.hosts {
        match fleet.nodes.get(name) {
            Some(Ok(session)) => {
                let (session, hs, limit) = (session.clone(), hs.clone(), limit.clone());
                tasks.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    let start = Instant::now();
                    let r = converge(&session, &hs, timeout).await;
                    let (files_written, directories_fixed, error) = match r {
                        Ok((f, d)) => (f, d, None),
                        Err(e) => (0, 0, Some(e)),
                    };
                    HostResult {
                        host: hs.name.clone(),
                        files_written,
                        directories_fixed,
                        seconds: start.elapsed().as_secs_f64(),
                        error,
                    }
                });
            }
            Some(Err(e)) => results.push(HostResult {
                host: name.clone(),
                files_written: 0,
                directories_fixed: 0,
                seconds: 0.0,
                error: Some((
                    "connecting".into(),
                    TransportError::Ssh {
                        host: name.clone(),
                        during: "connecting".into(),
                        message: e.to_string(),
                    },
                )),
            }),
            None => {}
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(r) = done {
            results.push(r);
        }
    }
    results.sort_by(|a, b| a.host.cmp(&b.host));
    results
}
