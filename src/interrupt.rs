//! The operator's request to stop a run (the first SIGINT or SIGTERM): a flag the
//! stages read before starting anything. What is in flight finishes, bounded by its
//! own timeout; nothing new starts; the run is then recorded as interrupted. The
//! command line sets it from its signal handler; the library only reads it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Shared by every stage of one run; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    requested: AtomicBool,
    /// What asked: `SIGINT`, `SIGTERM`.
    why: Mutex<Option<String>>,
}

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Asks the run to stop, because of `why` (`SIGINT`). `true` the first time.
    pub fn request(&self, why: &str) -> bool {
        let first = !self.0.requested.swap(true, Ordering::SeqCst);
        if first {
            if let Ok(mut w) = self.0.why.lock() {
                *w = Some(why.to_string());
            }
        }
        first
    }

    /// Whether the run was asked to stop: start nothing new.
    pub fn requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }

    /// What asked, once requested.
    pub fn why(&self) -> Option<String> {
        if !self.requested() {
            return None;
        }
        self.0
            .why
            .lock()
            .ok()
            .and_then(|w| w.clone())
            .or_else(|| Some("an interrupt".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::Interrupt;

    #[test]
    fn the_first_request_counts() {
        let i = Interrupt::new();
        assert!(!i.requested());
        assert_eq!(i.why(), None);
        let seen_by_a_stage = i.clone();
        assert!(i.request("SIGTERM"));
        assert!(!i.request("SIGINT"));
        assert!(seen_by_a_stage.requested());
        assert_eq!(seen_by_a_stage.why().as_deref(), Some("SIGTERM"));
    }
}
