//! What an apply run shows a person and records for machines.
//!
//! - [`events`]: the run's JSON-lines event log, `<base>/runs/<run id>/events.jsonl`, in
//!   the overcloud services' own log format (oslo.log's `JSONFormatter`).
//! - [`progress`]: bars and spinners on a terminal, plain timestamped lines otherwise.
//! - [`Reporter`] ties both together for the apply pipeline: every [`Event`] goes through
//!   the secrets redaction first, then into the log, and failures onto the screen.
//!
//! ```no_run
//! use std::io::IsTerminal;
//! use std::path::Path;
//! use provision::report::{default_run_dir, new_run_id, EventLog, Progress, Reporter};
//!
//! let run_id = new_run_id();
//! let log = EventLog::create(&default_run_dir(Path::new(".provision"), &run_id), &run_id).ok();
//! let progress = Progress::new(std::io::stderr().is_terminal());
//! let reporter = Reporter::new(progress, log, Box::new(|s: &str| s.replace("hunter2", "(secret)")));
//! reporter.progress().phase("files", 3);
//! ```

pub mod events;
pub mod progress;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

pub use events::{event_json, new_run_id, Event, EventLog, Level, Outcome, Stage};
pub use progress::Progress;

/// The redaction applied to every message and target before it is logged or shown.
pub type Redact = Box<dyn Fn(&str) -> String + Send + Sync>;

/// The directory of one run's records: `base/runs/<run_id>`.
pub fn default_run_dir(base: &Path, run_id: &str) -> PathBuf {
    base.join("runs").join(run_id)
}

/// The name of the full plan in a run's directory.
pub const PLAN_FILE: &str = "plan.txt";

/// Writes the full text of a run's plan (already redacted) as `run_dir/plan.txt`, mode
/// 0600, creating the directory; returns its path.
pub fn write_plan(run_dir: &Path, text: &str) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(run_dir)?;
    let path = run_dir.join(PLAN_FILE);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(text.as_bytes())?;
    f.flush()?;
    Ok(path)
}

/// Reports a run's events to its log and its person. Shared by the run's tasks (`Arc`).
pub struct Reporter {
    /// `None` without a log, or once writing it has failed.
    log: Mutex<Option<EventLog>>,
    log_path: Option<PathBuf>,
    progress: Progress,
    redact: Redact,
}

impl Reporter {
    /// `log` is `None` to record nothing; `redact` hides secrets in free text.
    pub fn new(progress: Progress, log: Option<EventLog>, redact: Redact) -> Reporter {
        Reporter {
            log_path: log.as_ref().map(|l| l.path().to_path_buf()),
            log: Mutex::new(log),
            progress,
            redact,
        }
    }

    /// Records `e`: its message and target are redacted, it is appended to the log, and
    /// if it failed, a line naming the host, action, target and message is shown.
    ///
    /// If the log cannot be written, that is shown once and the run goes on without it.
    pub fn event(&self, mut e: Event) {
        e.message = (self.redact)(&e.message);
        e.target = e.target.map(|t| (self.redact)(&t));
        {
            let mut log = self.lock_log();
            if let Some(l) = log.as_mut() {
                if let Err(err) = l.write(&e) {
                    self.progress.println(&format!(
                        "warning: cannot write the event log {}: {err}; continuing without it",
                        l.path().display()
                    ));
                    *log = None;
                }
            }
        }
        if e.outcome == Outcome::Failed {
            self.progress.println(&failure_line(&e));
        }
    }

    /// The screen side, for phases and per-host progress.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Where the event log is (it stays there, incomplete, if writing it failed).
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// Redacts `text` as events are (for callers that show other text).
    pub fn redact(&self, text: &str) -> String {
        (self.redact)(text)
    }

    fn lock_log(&self) -> MutexGuard<'_, Option<EventLog>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("log_path", &self.log_path)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// `lab-compute-1: FAILED create container nova_compute: <message>`; a run-wide event
/// names its stage instead of a host.
fn failure_line(e: &Event) -> String {
    let who = e.host.as_deref().unwrap_or(e.stage.as_str());
    let mut line = format!("{who}: FAILED {}", e.action);
    if let Some(t) = &e.target {
        line.push(' ');
        line.push_str(t);
    }
    if !e.message.is_empty() {
        line.push_str(": ");
        line.push_str(&e.message);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        /// The lines written, without their `[  0.00s] ` time prefix.
        fn lines(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| {
                    assert!(l.starts_with('[') && l[..10].ends_with("s] "), "{l:?}");
                    l[10..].to_string()
                })
                .collect()
        }
    }

    fn redact() -> Redact {
        Box::new(|s: &str| s.replace("hunter2", "(secret)"))
    }

    fn failed() -> Event {
        Event {
            level: Level::Error,
            host: Some("lab-compute-1".into()),
            stage: events::Stage::Overcloud,
            step: Some(4),
            action: "create container".into(),
            target: Some("nova_compute-hunter2".into()),
            outcome: Outcome::Failed,
            duration: Duration::from_millis(1500),
            message: "podman: bad password hunter2\n".into(),
        }
    }

    #[test]
    fn redacts_before_logging_and_showing() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = default_run_dir(dir.path(), "r1");
        let log = EventLog::create(&run_dir, "r1").unwrap();
        let screen = Buf::default();
        let r = Reporter::new(
            Progress::plain_to(Box::new(screen.clone())),
            Some(log),
            redact(),
        );
        assert_eq!(r.log_path(), Some(run_dir.join("events.jsonl").as_path()));
        r.event(failed());
        r.event(Event {
            level: Level::Info,
            outcome: Outcome::Changed,
            message: "wrote hunter2.conf".into(),
            target: None,
            ..failed()
        });

        let text = std::fs::read_to_string(r.log_path().unwrap()).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["message"], "podman: bad password (secret)\n");
        assert_eq!(lines[0]["extra"]["target"], "nova_compute-(secret)");
        assert_eq!(lines[0]["extra"]["result"], "failed");
        assert_eq!(lines[0]["levelname"], "ERROR");
        assert_eq!(lines[0]["hostname"], "lab-compute-1");
        assert_eq!(lines[0]["context"]["request_id"], "req-r1");
        assert_eq!(lines[1]["message"], "wrote (secret).conf");
        assert!(lines[1]["extra"]["target"].is_null());

        // Only the failure is shown, redacted, on one line.
        assert_eq!(
            screen.lines(),
            ["lab-compute-1: FAILED create container nova_compute-(secret): podman: bad password (secret)"]
        );
    }

    #[test]
    fn run_wide_failure_names_the_stage() {
        let e = Event {
            host: None,
            stage: events::Stage::Run,
            action: "lock".into(),
            target: None,
            message: String::new(),
            ..failed()
        };
        assert_eq!(failure_line(&e), "run: FAILED lock");
    }

    #[test]
    fn works_without_a_log() {
        let screen = Buf::default();
        let r = Reporter::new(Progress::plain_to(Box::new(screen.clone())), None, redact());
        assert_eq!(r.log_path(), None);
        r.event(failed());
        assert_eq!(screen.lines().len(), 1);
        assert_eq!(r.redact("a hunter2"), "a (secret)");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn log_write_error_is_reported_once_and_the_run_goes_on() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // Every write to /dev/full fails with "No space left on device".
        std::os::unix::fs::symlink("/dev/full", dir.path().join("events.jsonl")).unwrap();
        let log = EventLog::create(dir.path(), "r").unwrap();
        let screen = Buf::default();
        let r = Reporter::new(
            Progress::plain_to(Box::new(screen.clone())),
            Some(log),
            redact(),
        );
        r.event(failed());
        r.event(failed());
        let lines = screen.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!(
                "warning: cannot write the event log {}/events.jsonl: ",
                dir.path().display()
            )) && lines[0].ends_with("; continuing without it"),
            "{}",
            lines[0]
        );
        assert!(lines[1].starts_with("lab-compute-1: FAILED"));
        assert_eq!(lines[1], lines[2]);
        assert!(r.log_path().is_some());
    }

    #[test]
    fn run_dir_is_under_runs() {
        assert_eq!(
            default_run_dir(Path::new("/var/lib/provision"), "20261124T231001Z-3f9a"),
            Path::new("/var/lib/provision/runs/20261124T231001Z-3f9a")
        );
    }

    #[test]
    fn the_plan_is_written_in_the_run_dir() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let run_dir = default_run_dir(dir.path(), "r2");
        let p = write_plan(&run_dir, "Plan: 1 file to write\n").unwrap();
        assert_eq!(p, run_dir.join("plan.txt"));
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "Plan: 1 file to write\n"
        );
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The event log goes next to it.
        let log = EventLog::create(&run_dir, "r2").unwrap();
        assert_eq!(log.path(), run_dir.join("events.jsonl"));
        // Written again (the same run dir given twice): replaced, not appended to.
        write_plan(&run_dir, "x\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "x\n");
    }

    #[test]
    fn reporter_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Reporter>();
    }
}
