//! The run's event log: one JSON object per line in `<run dir>/events.jsonl`, in the
//! format the overcloud services log in (oslo.log's `JSONFormatter`, see
//! `templates/_common/logging.conf.j2`), so one set of tools reads both.
//!
//! oslo's top-level keys keep their names and meaning (`asctime`, `created`, `msecs`,
//! `name`, `levelname`, `levelno`, `message`, `hostname`, `process`, `traceback`,
//! `context.request_id`); what is ours (stage, step, action, target, result, duration,
//! host) goes in `extra`, where oslo puts a record's extra values. `asctime` has the
//! services' `datefmt` (`%Y-%m-%dT%H:%M:%S%z`, here always UTC: `2026-11-24T23:10:01+0000`)
//! and, as in theirs, the milliseconds are in `msecs`.
//!
//! A line for a host is stamped with that host's name in `hostname` (and `extra.host`);
//! a run-wide line (no host) carries the local host name and `extra.host: null`.
//! The request id is `req-<run id>` for every line of a run.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The logger name of every line (oslo's `name`).
pub const LOGGER_NAME: &str = "provision.apply";

/// The file name of the event log inside a run directory.
pub const EVENTS_FILE: &str = "events.jsonl";

/// An event's severity, as Python's logging names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    /// `INFO`, `WARNING` or `ERROR` (oslo's `levelname`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }

    /// Python's numeric level (oslo's `levelno`): 20, 30, 40.
    pub fn number(self) -> u8 {
        match self {
            Level::Info => 20,
            Level::Warning => 30,
            Level::Error => 40,
        }
    }
}

/// What an action did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Already as desired; nothing done.
    Ok,
    /// Something was changed.
    Changed,
    Failed,
    /// Not attempted (e.g. an earlier failure on the host).
    Skipped,
}

impl Outcome {
    /// `ok`, `changed`, `failed` or `skipped` (`extra.result`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Changed => "changed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The stage of apply an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The undercloud's checks and its own services.
    Undercloud,
    /// Bringing nodes up through their BMCs, and powering removed nodes off.
    Baremetal,
    /// The overcloud's hosts.
    Overcloud,
    /// The run as a whole.
    Run,
}

impl Stage {
    /// `undercloud`, `baremetal`, `overcloud` or `run` (`extra.stage`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Undercloud => "undercloud",
            Stage::Baremetal => "baremetal",
            Stage::Overcloud => "overcloud",
            Stage::Run => "run",
        }
    }
}

/// One thing that happened during a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub level: Level,
    /// The host it happened on; `None` for run-wide events.
    pub host: Option<String>,
    pub stage: Stage,
    /// The deploy step (overcloud only).
    pub step: Option<u8>,
    /// E.g. `write files`, `create container`, `health`, `gather`.
    pub action: String,
    /// A path or a container name.
    pub target: Option<String>,
    pub outcome: Outcome,
    pub duration: Duration,
    pub message: String,
}

impl Event {
    /// An event of `action` on `host` (or run-wide, for `None`): `ok`, no target, no
    /// step, no message, until the builder methods say otherwise.
    pub fn new(stage: Stage, host: Option<&str>, action: impl Into<String>) -> Event {
        Event {
            level: Level::Info,
            host: host.map(str::to_string),
            stage,
            step: None,
            action: action.into(),
            target: None,
            outcome: Outcome::Ok,
            duration: Duration::ZERO,
            message: String::new(),
        }
    }

    /// In deploy step `step` (`None`: host preparation, logged as step 0).
    pub fn step(mut self, step: Option<u8>) -> Event {
        self.step = Some(step.unwrap_or(0));
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Event {
        self.target = Some(target.into());
        self
    }

    pub fn took(mut self, duration: Duration) -> Event {
        self.duration = duration;
        self
    }

    /// The outcome and its message; a failure is logged at `ERROR`.
    pub fn outcome(mut self, outcome: Outcome, message: impl Into<String>) -> Event {
        self.outcome = outcome;
        self.level = if outcome == Outcome::Failed {
            Level::Error
        } else {
            Level::Info
        };
        self.message = message.into();
        self
    }
}

/// The append-only `events.jsonl` of one run. Every [`write`](EventLog::write) is one
/// complete line, written with one call and flushed.
#[derive(Debug)]
pub struct EventLog {
    file: File,
    path: PathBuf,
    run_id: String,
}

impl EventLog {
    /// Creates `run_dir` (and its parents) and opens `run_dir/events.jsonl` for appending.
    pub fn create(run_dir: &Path, run_id: &str) -> io::Result<EventLog> {
        std::fs::create_dir_all(run_dir)?;
        let path = run_dir.join(EVENTS_FILE);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(EventLog {
            file,
            path,
            run_id: run_id.to_string(),
        })
    }

    /// Appends one line for `e`, stamped now.
    pub fn write(&mut self, e: &Event) -> io::Result<()> {
        let mut line = event_json(e, &self.run_id, SystemTime::now()).to_string();
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.flush()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run id this log stamps its lines with.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// The JSON object of one event line (without the newline).
pub fn event_json(e: &Event, run_id: &str, time: SystemTime) -> Value {
    let millis = unix_millis(time);
    let hostname = match &e.host {
        Some(h) => h.clone(),
        None => local_hostname().to_string(),
    };
    json!({
        "asctime": asctime(time),
        "created": unix_seconds(time),
        "msecs": millis.rem_euclid(1000) as f64,
        "name": LOGGER_NAME,
        "levelname": e.level.as_str(),
        "levelno": e.level.number(),
        "message": e.message,
        "hostname": hostname,
        "process": std::process::id(),
        "traceback": null,
        "context": { "request_id": format!("req-{run_id}") },
        "extra": {
            "stage": e.stage.as_str(),
            "step": e.step,
            "action": e.action,
            "target": e.target,
            "result": e.outcome.as_str(),
            "duration": round_millis(e.duration),
            "host": e.host,
        },
    })
}

/// A new run id: the UTC time to the second and 4 hex digits from the pid and the clock,
/// e.g. `20261124T231001Z-3f9a`. Safe as a directory name.
pub fn new_run_id() -> String {
    run_id_at(SystemTime::now(), std::process::id())
}

/// The run id for `time` and `pid` (see [`new_run_id`]).
pub fn run_id_at(time: SystemTime, pid: u32) -> String {
    let nanos = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as u64,
        Err(e) => e.duration().as_nanos() as u64,
    };
    // A multiplicative mix so that neighbouring pids and instants differ in the suffix.
    let mut x = (u64::from(pid) ^ nanos.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    let (y, mo, d, h, mi, s, _) = utc_parts(time);
    format!(
        "{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z-{:04x}",
        (x >> 48) & 0xffff
    )
}

/// `time` as the services' logging `datefmt` writes it, in UTC: `2026-11-24T23:10:01+0000`.
pub fn asctime(time: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = utc_parts(time);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+0000")
}

/// `time` as RFC 3339 UTC with milliseconds: `2026-11-24T23:10:01.123Z`.
pub fn rfc3339_millis(time: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = utc_parts(time);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// The name of the machine running `provision` (Linux: the kernel's host name).
pub fn local_hostname() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .chain(std::env::var("HOSTNAME").ok())
            .map(|s| s.trim().to_string())
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    })
}

/// Seconds with 3 decimals.
fn round_millis(d: Duration) -> f64 {
    ((d.as_micros() + 500) / 1000) as f64 / 1000.0
}

fn unix_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => {
            // Round towards negative infinity, so 0.5 s before the epoch is -500 ms.
            let d = e.duration();
            let ms = d.as_millis() as i64;
            if d.as_nanos() % 1_000_000 == 0 {
                -ms
            } else {
                -ms - 1
            }
        }
    }
}

/// (year, month, day, hour, minute, second, millisecond) in UTC.
fn utc_parts(time: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let millis = unix_millis(time);
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, mo, d) = civil_from_days(days);
    (y, mo, d, sod / 3600, sod % 3600 / 60, sod % 60, ms)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_millis(ms: i64) -> SystemTime {
        if ms >= 0 {
            UNIX_EPOCH + Duration::from_millis(ms as u64)
        } else {
            UNIX_EPOCH - Duration::from_millis((-ms) as u64)
        }
    }

    fn event() -> Event {
        Event {
            level: Level::Warning,
            host: Some("lab-controller-0".into()),
            stage: Stage::Overcloud,
            step: Some(3),
            action: "create container".into(),
            target: Some("nova_api".into()),
            outcome: Outcome::Changed,
            duration: Duration::from_micros(1_234_567),
            message: "recreated: image changed".into(),
        }
    }

    #[test]
    fn formats_rfc3339_utc_millis() {
        // Values checked against Python's datetime.
        let cases = [
            (1_795_561_801_123, "2026-11-24T23:10:01.123Z"),
            (1_709_208_000_005, "2024-02-29T12:00:00.005Z"),
            (951_868_800_999, "2000-03-01T00:00:00.999Z"),
            (0, "1970-01-01T00:00:00.000Z"),
            (-500, "1969-12-31T23:59:59.500Z"),
        ];
        for (ms, want) in cases {
            assert_eq!(rfc3339_millis(at_millis(ms)), want, "{ms}");
        }
        // Sub-millisecond parts are truncated, like Python's msecs.
        let t = at_millis(1_795_561_801_123) + Duration::from_micros(999);
        assert_eq!(rfc3339_millis(t), "2026-11-24T23:10:01.123Z");
    }

    #[test]
    fn event_line_has_oslo_keys_and_our_extra() {
        let t = at_millis(1_795_561_801_123);
        let v = event_json(&event(), "20261124T231001Z-3f9a", t);
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "asctime",
                "context",
                "created",
                "extra",
                "hostname",
                "levelname",
                "levelno",
                "message",
                "msecs",
                "name",
                "process",
                "traceback"
            ]
        );
        assert_eq!(v["asctime"], "2026-11-24T23:10:01+0000");
        assert_eq!(v["created"].as_f64().unwrap(), 1_795_561_801.123);
        assert_eq!(v["msecs"].as_f64().unwrap(), 123.0);
        assert_eq!(v["name"], "provision.apply");
        assert_eq!(v["levelname"], "WARNING");
        assert_eq!(v["levelno"], 30);
        assert_eq!(v["message"], "recreated: image changed");
        assert_eq!(v["hostname"], "lab-controller-0");
        assert_eq!(v["process"], std::process::id());
        assert!(v["traceback"].is_null());
        assert_eq!(
            v["context"],
            json!({"request_id": "req-20261124T231001Z-3f9a"})
        );
        assert_eq!(
            v["extra"],
            json!({
                "stage": "overcloud",
                "step": 3,
                "action": "create container",
                "target": "nova_api",
                "result": "changed",
                "duration": 1.235,
                "host": "lab-controller-0",
            })
        );
    }

    #[test]
    fn run_wide_event_uses_local_hostname_and_nulls() {
        let e = Event {
            level: Level::Info,
            host: None,
            stage: Stage::Run,
            step: None,
            action: "gather".into(),
            target: None,
            outcome: Outcome::Ok,
            duration: Duration::from_millis(20),
            message: "3 hosts".into(),
        };
        let v = event_json(&e, "r", at_millis(0));
        assert_eq!(v["hostname"], local_hostname());
        assert!(!local_hostname().is_empty());
        assert_eq!(v["levelname"], "INFO");
        assert_eq!(v["levelno"], 20);
        assert!(v["extra"]["host"].is_null());
        assert!(v["extra"]["step"].is_null());
        assert!(v["extra"]["target"].is_null());
        assert_eq!(v["extra"]["result"], "ok");
        assert_eq!(v["extra"]["duration"].as_f64().unwrap(), 0.02);
        assert_eq!(Level::Error.as_str(), "ERROR");
        assert_eq!(Outcome::Failed.as_str(), "failed");
        assert_eq!(Outcome::Skipped.as_str(), "skipped");
    }

    #[test]
    fn durations_round_to_milliseconds() {
        assert_eq!(round_millis(Duration::from_micros(570_400)), 0.57);
        assert_eq!(round_millis(Duration::from_micros(570_500)), 0.571);
        assert_eq!(round_millis(Duration::ZERO), 0.0);
        assert_eq!(round_millis(Duration::from_secs(61)), 61.0);
    }

    #[test]
    fn run_ids_are_timestamps_with_a_suffix() {
        let t = at_millis(1_795_561_801_123);
        let id = run_id_at(t, 4242);
        assert_eq!(id.len(), "20261124T231001Z-0000".len());
        assert!(id.starts_with("20261124T231001Z-"), "{id}");
        assert!(id[17..].chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert_eq!(run_id_at(t, 4242), id);
        // Another process at the same instant gets another id.
        assert_ne!(run_id_at(t, 4243), id);
        let now = new_run_id();
        assert!(now.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn log_appends_one_json_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("runs").join("r1");
        let mut log = EventLog::create(&run_dir, "r1").unwrap();
        assert_eq!(log.path(), run_dir.join("events.jsonl"));
        log.write(&event()).unwrap();
        let mut second = event();
        second.message = "line\nbreak".into();
        log.write(&second).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(text.ends_with('\n'));
        let v: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["message"], "line\nbreak");
        assert_eq!(v["context"]["request_id"], "req-r1");
        assert!(v["asctime"].as_str().unwrap().ends_with("+0000"));
    }
}
