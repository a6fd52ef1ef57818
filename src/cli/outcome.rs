//! What `provision apply` prints when a run ends: the verdict (naming the stage that
//! failed, or the interrupt), what changed, which hosts failed where and what to do
//! about it: "run apply again" only where running again can help.

use std::fmt::Write as _;
use std::time::Instant;

use provision::apply::{HostOutcome, Phase, RunOutcome};
use provision::change::plural;
use provision::model::UNDERCLOUD_ROLE;
use provision::plan::Tense;

pub fn print_outcome(o: &RunOutcome, started: Instant) {
    print!("{}", outcome_text(o, started.elapsed().as_secs_f64()));
}

/// The stage a failed host failed in, as the operator knows the run's stages.
fn stage_of(h: &HostOutcome, phase: Phase) -> &'static str {
    match phase {
        Phase::Gather => "the survey (before any change)",
        Phase::BareMetal => "the bare-metal stage",
        _ if h.role == UNDERCLOUD_ROLE => "the undercloud stage",
        _ => "the overcloud stage",
    }
}

/// The text [`print_outcome`] prints; pure, for tests.
pub fn outcome_text(o: &RunOutcome, seconds: f64) -> String {
    let mut s = String::new();
    let failed = o.failed();
    let mut stages: Vec<&str> = failed
        .iter()
        .filter_map(|h| h.failure.as_ref().map(|f| stage_of(h, f.phase)))
        .collect();
    stages.dedup();
    let verdict = if let Some(why) = &o.interrupted {
        format!("Apply INTERRUPTED ({why})")
    } else if o.ok() {
        "Apply complete".to_string()
    } else if o.undercloud_failed {
        "Apply FAILED in the undercloud stage".to_string()
    } else if !stages.is_empty() {
        format!("Apply FAILED in {}", stages.join(" and "))
    } else {
        "Apply FAILED".to_string()
    };
    for note in &o.notes {
        let _ = writeln!(s, "note: {note}");
    }
    let _ = writeln!(
        s,
        "\n{verdict}: {} on {} of {}, in {seconds:.2} s.",
        o.counts().phrase(Tense::Done),
        o.hosts_changed(),
        plural(o.hosts.len(), "host")
    );
    let unfinished = o.unfinished();
    if !unfinished.is_empty() {
        let _ = writeln!(
            s,
            "\nWhat was in flight finished; nothing new started. Not finished ({}):",
            plural(unfinished.len(), "host")
        );
        for h in &unfinished {
            let done = if h.changes() > 0 {
                format!("done: {}; ", h.done.brief(Tense::Done))
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "  {} ({}): {done}{}",
                h.host,
                h.role,
                h.unfinished.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(
            s,
            "Recorded on the undercloud as interrupted (`provision status` shows it). Run apply again to finish: it reads every host again, does only what is left, and waits again for the health of every container this run touched."
        );
    }
    if !failed.is_empty() {
        let _ = writeln!(s, "\n{} failed:", plural(failed.len(), "host"));
        let mut rerun_helps = false;
        for h in &failed {
            let Some(f) = &h.failure else { continue };
            let _ = writeln!(
                s,
                "  {} ({}), in {}: {}: {}",
                h.host,
                h.role,
                stage_of(h, f.phase),
                f.phase,
                f.action
            );
            for line in f.message.lines().take(30) {
                let _ = writeln!(s, "      {line}");
            }
            match &f.remedy {
                Some(r) => {
                    let _ = writeln!(s, "    What to do: {r}");
                }
                None => rerun_helps = true,
            }
        }
        if rerun_helps {
            let _ = writeln!(
                s,
                "Run apply again to resume{}: it reads every host again and does only what is left.",
                if failed.iter().any(|h| h.failure.as_ref().is_some_and(|f| f.remedy.is_some())) {
                    " once the hosts with a \"What to do\" above are fixed"
                } else {
                    ""
                }
            );
        }
    }
    if !o.nodes_powered_off.is_empty() {
        let _ = writeln!(
            s,
            "Powered off and forgot {} removed from the inventory.",
            plural(o.nodes_powered_off.len(), "node")
        );
    }
    for (n, e) in &o.power_off_failures {
        let _ = writeln!(s, "  {n}: NOT powered off: {e}");
    }
    if let Some(why) = &o.stopped {
        let _ = writeln!(s, "\nThe run stopped: {why}.");
    }
    if o.undercloud_failed {
        let _ = writeln!(
            s,
            "\nThe undercloud stage failed: the bare-metal and overcloud stages did not run."
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use provision::apply::Failure;

    fn host(name: &str, role: &str) -> HostOutcome {
        HostOutcome {
            host: name.into(),
            role: role.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_changed_host_key_gets_its_remedy_and_no_rerun_advice() {
        let mut o = RunOutcome::default();
        let mut c = host("lab-novacompute-0", "Compute");
        c.failure = Some(Failure {
            phase: Phase::Gather,
            action: "connecting and reading its state, before any change".into(),
            message: "lab-novacompute-0 (127.0.10.12:22): HOST KEY CHANGED".into(),
            remedy: Some("re-running cannot help: ... ssh-keygen -R ...".into()),
        });
        o.hosts.insert(c.host.clone(), c);
        o.hosts.insert(
            "lab-controller-0".into(),
            host("lab-controller-0", "Controller"),
        );
        o.stopped = Some("1 of 1 Compute hosts failed".into());
        let t = outcome_text(&o, 1.0);
        assert!(
            t.contains("Apply FAILED in the survey (before any change)"),
            "{t}"
        );
        assert!(t.contains("1 host failed:"), "{t}");
        assert!(t.contains(
            "  lab-novacompute-0 (Compute), in the survey (before any change): survey: connecting"
        ));
        assert!(t.contains("    What to do: re-running cannot help"), "{t}");
        assert!(!t.contains("Run apply again"), "{t}");
        assert!(t.contains("on 0 of 2 hosts"), "{t}");
    }

    #[test]
    fn a_transient_failure_says_run_again_and_an_interrupt_lists_what_is_left() {
        let mut o = RunOutcome::default();
        let mut c = host("c0", "Compute");
        c.failure = Some(Failure {
            phase: Phase::Step(4),
            action: "task nova/cell_v2_discover_hosts".into(),
            message: "c0: the connection was lost".into(),
            remedy: None,
        });
        let mut ctl = host("ctl0", "Controller");
        ctl.done.files_written = 1;
        ctl.unfinished = Some("step 3 and later not started".into());
        o.hosts.insert("c0".into(), c);
        o.hosts.insert("ctl0".into(), ctl);
        o.interrupted = Some("SIGINT".into());
        let t = outcome_text(&o, 1.0);
        assert!(
            t.contains("Apply INTERRUPTED (SIGINT): 1 file written"),
            "{t}"
        );
        assert!(t.contains("on 1 of 2 hosts"), "{t}");
        assert!(t.contains("Not finished (1 host):\n  ctl0 (Controller): done: 1 file written; step 3 and later not started"), "{t}");
        assert!(
            t.contains(
                "  c0 (Compute), in the overcloud stage: step 4: task nova/cell_v2_discover_hosts"
            ),
            "{t}"
        );
        assert!(t.contains("Run apply again to resume: it reads"), "{t}");
    }
}
