//! What a person sees while `provision apply` runs, on stderr.
//!
//! A run is a sequence of *phases* (e.g. "host preparation: files and directories",
//! "step 3/5: containers"), each over a number of hosts that work in parallel (a phase
//! with no host is one line: "step 4/5: containers: nothing to do"). [`Progress`] has
//! two modes:
//!
//! - **interactive** (stderr is a terminal): an indicatif [`MultiProgress`] with one bar
//!   for the current phase (`step 3/5: containers on 3 hosts [=====>   ] 1/3 00:00:02`)
//!   and one spinner line per host in flight showing what it is doing; finished hosts
//!   and other lines are printed above the bars.
//! - **plain** (CI logs, pipes): one line per thing that happened, prefixed with the
//!   seconds since the start, and no control characters at all (no `\r`, no ANSI):
//!   ```text
//!   [  1.23s] step 3/5 started: 3 hosts
//!   [  1.80s] lab-controller-0: step 3 done (2 containers recreated) 0.57s
//!   [  2.10s] lab-compute-1: FAILED create container nova_compute: exit status 125
//!   [  2.35s] step 3/5 finished: 2 ok, 1 failed in 1.12s
//!   ```
//!   What a host is busy with is not printed in this mode, to keep logs short.
//!
//! Text from outside (error messages from hosts may hold `\r`, newlines or colour
//! codes) is flattened to one line without control characters in both modes.
//! All methods take `&self`; a `Progress` is shared by the tasks of a run through an `Arc`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::change::plural;

type Clock = Box<dyn Fn() -> Duration + Send + Sync>;

const PHASE_TEMPLATE: &str = "{msg} [{bar:30.cyan/blue}] {pos}/{len} {elapsed_precise}";
const HOST_TEMPLATE: &str = "  {spinner:.cyan} {prefix}: {msg}";
const TICK: Duration = Duration::from_millis(120);

/// The progress display of a run. See the module documentation.
pub struct Progress {
    /// Time since the start of the run.
    clock: Clock,
    state: Mutex<State>,
}

struct State {
    phase: Option<Phase>,
    sink: Sink,
}

struct Phase {
    title: String,
    hosts: usize,
    started: Duration,
    ok: usize,
    failed: usize,
    /// When each host started its work in this phase (its first action).
    host_started: HashMap<String, Duration>,
}

enum Sink {
    Plain(Box<dyn Write + Send>),
    Bars {
        multi: MultiProgress,
        bar: Option<ProgressBar>,
        spinners: HashMap<String, ProgressBar>,
    },
}

impl Progress {
    /// Bars and spinners on stderr if `interactive`, else plain lines on stderr. Pass
    /// `std::io::IsTerminal::is_terminal(&std::io::stderr())`.
    pub fn new(interactive: bool) -> Progress {
        if interactive {
            Progress::with(
                monotonic_clock(),
                Sink::Bars {
                    multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                    bar: None,
                    spinners: HashMap::new(),
                },
            )
        } else {
            Progress::plain_to(Box::new(std::io::stderr()))
        }
    }

    /// Plain lines into `out` (tests, or a file).
    pub fn plain_to(out: Box<dyn Write + Send>) -> Progress {
        Progress::with(monotonic_clock(), Sink::Plain(out))
    }

    /// Shows nothing at all.
    pub fn hidden() -> Progress {
        Progress::plain_to(Box::new(std::io::sink()))
    }

    fn with(clock: Clock, sink: Sink) -> Progress {
        Progress {
            clock,
            state: Mutex::new(State { phase: None, sink }),
        }
    }

    /// Whether this shows bars (rather than plain lines).
    pub fn is_interactive(&self) -> bool {
        matches!(self.lock().sink, Sink::Bars { .. })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not also take the display down.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a phase over `hosts` hosts, ending the previous one. `title` names it, e.g.
    /// `step 3/5` or `step 3/5: containers` (the hosts are said after it: `... started:
    /// 3 hosts`, `... on 3 hosts`). A phase with no host is one line, `<title>: nothing
    /// to do`, and no phase.
    pub fn phase(&self, title: &str, hosts: usize) {
        let now = (self.clock)();
        let mut st = self.lock();
        end_phase(&mut st, now);
        let title = flatten(title);
        if hosts == 0 {
            let line = nothing_to_do_text(&title);
            match &mut st.sink {
                Sink::Plain(out) => write_plain(out, now, &line),
                Sink::Bars { multi, .. } => {
                    let _ = multi.println(line);
                }
            }
            return;
        }
        match &mut st.sink {
            Sink::Plain(out) => write_plain(out, now, &phase_started_text(&title, hosts)),
            Sink::Bars { multi, bar, .. } => {
                let pb = multi.add(ProgressBar::new(hosts as u64));
                pb.set_style(style(PHASE_TEMPLATE));
                pb.set_message(format!("{title} on {}", plural(hosts, "host")));
                pb.enable_steady_tick(TICK);
                *bar = Some(pb);
            }
        }
        st.phase = Some(Phase {
            title,
            hosts,
            started: now,
            ok: 0,
            failed: 0,
            host_started: HashMap::new(),
        });
    }

    /// `host` is now busy with `action` (interactive: its spinner's text; plain: nothing).
    pub fn host_action(&self, host: &str, action: &str) {
        let now = (self.clock)();
        let mut st = self.lock();
        if let Some(phase) = &mut st.phase {
            phase.host_started.entry(host.to_string()).or_insert(now);
        }
        if let Sink::Bars {
            multi, spinners, ..
        } = &mut st.sink
        {
            let action = flatten(action);
            match spinners.get(host) {
                Some(sp) => sp.set_message(action),
                None => {
                    let sp = multi.add(ProgressBar::new_spinner());
                    sp.set_style(style(HOST_TEMPLATE));
                    sp.set_prefix(flatten(host));
                    sp.set_message(action);
                    sp.enable_steady_tick(TICK);
                    spinners.insert(host.to_string(), sp);
                }
            }
        }
    }

    /// `host` finished the current phase; `summary` says how, e.g. `step 3 done (2
    /// containers recreated)`. A failed host's line reads `<host>: FAILED <summary> …`.
    pub fn host_done(&self, host: &str, summary: &str, ok: bool) {
        let now = (self.clock)();
        let mut st = self.lock();
        let started = match &mut st.phase {
            Some(phase) => {
                if ok {
                    phase.ok += 1;
                } else {
                    phase.failed += 1;
                }
                phase.host_started.remove(host).unwrap_or(phase.started)
            }
            None => now,
        };
        let text = host_done_text(
            &flatten(host),
            &flatten(summary),
            ok,
            now.saturating_sub(started),
        );
        match &mut st.sink {
            Sink::Plain(out) => write_plain(out, now, &text),
            Sink::Bars {
                multi,
                bar,
                spinners,
            } => {
                if let Some(sp) = spinners.remove(host) {
                    sp.finish_and_clear();
                    multi.remove(&sp);
                }
                let _ = multi.println(text);
                if let Some(pb) = bar {
                    pb.inc(1);
                }
            }
        }
    }

    /// A line above the bars (interactive) or a plain line.
    pub fn println(&self, line: &str) {
        let now = (self.clock)();
        let mut st = self.lock();
        let line = flatten(line);
        match &mut st.sink {
            Sink::Plain(out) => write_plain(out, now, &line),
            Sink::Bars { multi, .. } => {
                let _ = multi.println(line);
            }
        }
    }

    /// Ends the current phase and clears the bars. Another phase may follow.
    pub fn finish(&self) {
        let now = (self.clock)();
        let mut st = self.lock();
        end_phase(&mut st, now);
        if let Sink::Bars { multi, .. } = &st.sink {
            let _ = multi.clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("interactive", &self.is_interactive())
            .finish_non_exhaustive()
    }
}

fn monotonic_clock() -> Clock {
    let start = Instant::now();
    Box::new(move || start.elapsed())
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("a valid indicatif template")
}

/// Prints the end of the current phase, if any, and removes its bar and spinners.
fn end_phase(st: &mut State, now: Duration) {
    let Some(phase) = st.phase.take() else {
        return;
    };
    let text = phase_finished_text(
        &phase.title,
        phase.hosts,
        phase.ok,
        phase.failed,
        now.saturating_sub(phase.started),
    );
    match &mut st.sink {
        Sink::Plain(out) => write_plain(out, now, &text),
        Sink::Bars {
            multi,
            bar,
            spinners,
        } => {
            for (_, sp) in spinners.drain() {
                sp.finish_and_clear();
                multi.remove(&sp);
            }
            if let Some(pb) = bar.take() {
                pb.finish_and_clear();
                multi.remove(&pb);
            }
            let _ = multi.println(text);
        }
    }
}

fn write_plain(out: &mut Box<dyn Write + Send>, elapsed: Duration, text: &str) {
    // Losing a progress line (stderr closed) must not stop the run.
    let _ = out.write_all(plain_line(elapsed, text).as_bytes());
    let _ = out.flush();
}

/// One plain output line, with its newline: `[  1.23s] text`.
fn plain_line(elapsed: Duration, text: &str) -> String {
    format!("[{:>6.2}s] {}\n", elapsed.as_secs_f64(), flatten(text))
}

fn phase_started_text(title: &str, hosts: usize) -> String {
    format!("{title} started: {}", plural(hosts, "host"))
}

fn nothing_to_do_text(title: &str) -> String {
    format!("{title}: nothing to do")
}

fn phase_finished_text(
    title: &str,
    hosts: usize,
    ok: usize,
    failed: usize,
    took: Duration,
) -> String {
    let unfinished = hosts.saturating_sub(ok + failed);
    let mut text = format!("{title} finished: {ok} ok, {failed} failed");
    if unfinished > 0 {
        text.push_str(&format!(", {unfinished} unfinished"));
    }
    text.push_str(&format!(" in {:.2}s", took.as_secs_f64()));
    text
}

fn host_done_text(host: &str, summary: &str, ok: bool, took: Duration) -> String {
    let failed = if ok { "" } else { "FAILED " };
    format!("{host}: {failed}{summary} {:.2}s", took.as_secs_f64())
}

/// `text` as one line without control characters: ANSI escape sequences are dropped,
/// line breaks and tabs become one space, trailing line breaks go.
pub fn flatten(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.trim_end_matches(['\n', '\r']).chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters up to a final byte in @..~
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ST (ESC \)
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\n' | '\r' | '\t' => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

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
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// A plain Progress into a buffer, with a clock the test sets (milliseconds).
    fn plain() -> (Progress, Buf, Arc<AtomicU64>) {
        let buf = Buf::default();
        let ms = Arc::new(AtomicU64::new(0));
        let clock_ms = ms.clone();
        let p = Progress::with(
            Box::new(move || Duration::from_millis(clock_ms.load(Ordering::SeqCst))),
            Sink::Plain(Box::new(buf.clone())),
        );
        (p, buf, ms)
    }

    fn assert_no_control(text: &str) {
        for (i, b) in text.bytes().enumerate() {
            assert!(
                b == b'\n' || (b >= 0x20 && b != 0x7f),
                "control byte {b:#04x} at {i} in {text:?}"
            );
        }
    }

    #[test]
    fn plain_lines_are_exact() {
        let ms = Duration::from_millis;
        assert_eq!(
            plain_line(ms(1230), &phase_started_text("step 3/5", 3)),
            "[  1.23s] step 3/5 started: 3 hosts\n"
        );
        assert_eq!(
            plain_line(
                ms(1800),
                &host_done_text(
                    "lab-controller-0",
                    "step 3 done (2 containers recreated)",
                    true,
                    ms(570)
                )
            ),
            "[  1.80s] lab-controller-0: step 3 done (2 containers recreated) 0.57s\n"
        );
        assert_eq!(
            host_done_text("lab-compute-1", "step 3", false, ms(400)),
            "lab-compute-1: FAILED step 3 0.40s"
        );
        assert_eq!(phase_started_text("files", 1), "files started: 1 host");
        assert_eq!(phase_started_text("files", 2), "files started: 2 hosts");
        assert_eq!(
            nothing_to_do_text("step 5/5: containers"),
            "step 5/5: containers: nothing to do"
        );
        assert_eq!(
            phase_finished_text("step 3/5", 3, 2, 0, ms(1120)),
            "step 3/5 finished: 2 ok, 0 failed, 1 unfinished in 1.12s"
        );
        assert_eq!(
            plain_line(ms(1_234_560), "x"),
            "[1234.56s] x\n",
            "long runs widen the prefix"
        );
    }

    #[test]
    fn flatten_removes_every_control_character() {
        assert_eq!(
            flatten("\u{1b}[31mError:\u{1b}[0m pull\r\nfailed\tnow\n"),
            "Error: pull failed now"
        );
        assert_eq!(flatten("a\u{7}b\u{7f}c\u{9b}d"), "abcd");
        assert_eq!(flatten("\u{1b}]0;title\u{7}ok"), "ok");
        assert_eq!(flatten("\u{1b}]8;;http://x\u{1b}\\link"), "link");
        assert_eq!(flatten("10%\r20%\r30%"), "10% 20% 30%");
        assert_eq!(flatten("naïve — ok"), "naïve — ok");
    }

    #[test]
    fn plain_mode_writes_exact_lines_and_no_control_bytes() {
        let (p, buf, ms) = plain();
        ms.store(1230, Ordering::SeqCst);
        p.phase("step 3/5", 3);
        ms.store(1300, Ordering::SeqCst);
        p.host_action("lab-controller-0", "create container nova_api");
        p.host_action("lab-compute-1", "create container nova_compute");
        ms.store(1400, Ordering::SeqCst);
        p.host_action("lab-controller-0", "health nova_api"); // keeps its start time
        ms.store(1870, Ordering::SeqCst);
        p.host_done(
            "lab-controller-0",
            "step 3 done (2 containers recreated)",
            true,
        );
        ms.store(2100, Ordering::SeqCst);
        p.println("lab-compute-1: FAILED create container nova_compute: \u{1b}[1mexit\u{1b}[0m 125\r\nno space left\n");
        p.host_done("lab-compute-1", "step 3", false);
        ms.store(2350, Ordering::SeqCst);
        p.host_done("lab-compute-2", "step 3 done (nothing to do)", true);
        ms.store(2400, Ordering::SeqCst);
        p.phase("step 4/5", 0);
        p.phase("step 5/5", 1);
        ms.store(2500, Ordering::SeqCst);
        p.finish();
        p.finish(); // idempotent
        let text = buf.text();
        assert_eq!(
            text,
            "[  1.23s] step 3/5 started: 3 hosts\n\
             [  1.87s] lab-controller-0: step 3 done (2 containers recreated) 0.57s\n\
             [  2.10s] lab-compute-1: FAILED create container nova_compute: exit 125 no space left\n\
             [  2.10s] lab-compute-1: FAILED step 3 0.80s\n\
             [  2.35s] lab-compute-2: step 3 done (nothing to do) 1.12s\n\
             [  2.40s] step 3/5 finished: 2 ok, 1 failed in 1.17s\n\
             [  2.40s] step 4/5: nothing to do\n\
             [  2.40s] step 5/5 started: 1 host\n\
             [  2.50s] step 5/5 finished: 0 ok, 0 failed, 1 unfinished in 0.10s\n"
        );
        assert_no_control(&text);
        assert!(!p.is_interactive());
    }

    #[test]
    fn progress_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Progress>();
    }

    #[test]
    fn interactive_mode_runs_without_a_terminal() {
        // The bars draw nowhere here, but every call must work.
        let p = Progress::with(
            monotonic_clock(),
            Sink::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
                bar: None,
                spinners: HashMap::new(),
            },
        );
        assert!(p.is_interactive());
        p.phase("step 1/5: 2 containers", 2);
        p.host_action("a", "create container x");
        p.host_action("b", "write files");
        p.host_action("a", "health x");
        p.host_done("a", "done", true);
        p.println("line");
        p.host_done("b", "failed", false);
        if let Sink::Bars { bar, spinners, .. } = &p.lock().sink {
            assert_eq!(bar.as_ref().unwrap().position(), 2);
            assert!(spinners.is_empty());
        }
        p.finish();
        let st = p.lock();
        match &st.sink {
            Sink::Bars { bar, .. } => assert!(bar.is_none()),
            Sink::Plain(_) => unreachable!(),
        }
        drop(st);
    }

    #[test]
    fn templates_parse() {
        style(PHASE_TEMPLATE);
        style(HOST_TEMPLATE);
    }
}
