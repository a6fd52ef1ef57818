//! SIGINT and SIGTERM during `provision apply`. Before anything is changed, the first
//! ends the run at once (nothing was changed; the lock goes with the connection).
//! Once changes start, the first asks the run to stop ([`Interrupt`]): what is in
//! flight finishes (bounded by its own timeouts), nothing new starts, the run is
//! recorded as interrupted and the lock released; the second aborts at once (files are
//! written atomically, so none is left half-written, and the lock is released when
//! the connection to the undercloud closes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use provision::interrupt::Interrupt;
use provision::report::Reporter;
use tokio::signal::unix::{signal, SignalKind};

/// The exit code of an interrupted run (128 + SIGINT), as shells expect.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Watches SIGINT and SIGTERM for one apply.
#[derive(Clone)]
pub struct Signals {
    interrupt: Interrupt,
    /// Set once changes start: from then on the first signal stops gracefully.
    changing: Arc<AtomicBool>,
    /// Where to print, once the run shows progress.
    reporter: Arc<OnceLock<Arc<Reporter>>>,
}

impl Signals {
    /// Starts watching (on the current tokio runtime). `None` if the handlers cannot
    /// be installed: the default (immediate) behaviour stays.
    pub fn watch(interrupt: Interrupt) -> Option<Signals> {
        let mut int = signal(SignalKind::interrupt()).ok()?;
        let mut term = signal(SignalKind::terminate()).ok()?;
        let s = Signals {
            interrupt,
            changing: Arc::new(AtomicBool::new(false)),
            reporter: Arc::new(OnceLock::new()),
        };
        let me = s.clone();
        tokio::spawn(async move {
            // At most two signals matter: the second ends the process.
            for _ in 0..2 {
                let name = tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                };
                me.received(name);
            }
        });
        Some(s)
    }

    /// From now on, changes are being made: a signal stops gracefully.
    pub fn changing(&self, reporter: Arc<Reporter>) {
        let _ = self.reporter.set(reporter);
        self.changing.store(true, Ordering::SeqCst);
    }

    fn say(&self, text: &str) {
        match self.reporter.get() {
            Some(r) => r.progress().println(text),
            None => eprintln!("{text}"),
        }
    }

    fn received(&self, name: &str) {
        if !self.changing.load(Ordering::SeqCst) {
            eprintln!(
                "\n{name}: apply stopped before changing anything: nothing was changed (the lock on the undercloud is released as the connection closes)."
            );
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        if self.interrupt.request(name) {
            self.say(&format!(
                "{name}: stopping: what is in flight finishes (within its own timeout), nothing new starts; the run is then recorded as interrupted and the lock released. Press Ctrl-C again (or send SIGTERM) to abort at once."
            ));
        } else {
            self.say(&format!(
                "{name} again: aborting now. No file is left half-written (every file is written to a temporary name and renamed); a command in flight on a host may still finish there. The lock is released as the connection closes; this run is NOT recorded: `provision status` shows what the hosts hold, and the next apply does what is left."
            ));
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    }
}
