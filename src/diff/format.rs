//! The three outputs of `provision diff`: text for a terminal, markdown for a
//! pull-request comment, JSON for bots (docs/diff.md).

use std::fmt::Write as _;

use crate::change::plural;

use super::{compact_hosts, ContainerAction, FileAction, Report, ReportKind, RevisionInfo};

/// GitHub cuts comments at 65,536 characters; keep a margin for the marker.
pub const MARKDOWN_LIMIT: usize = 60_000;

fn side(r: &RevisionInfo) -> String {
    match &r.commit {
        Some(c) => format!("{} ({})", r.rev, &c[..c.len().min(10)]),
        None => r.rev.clone(),
    }
}

fn on_hosts(hosts: &[String]) -> String {
    format!(
        "on {}: {}",
        plural(hosts.len(), "host"),
        compact_hosts(hosts)
    )
}

fn symbol(a: FileAction) -> &'static str {
    match a {
        FileAction::Create => "+",
        FileAction::Modify => "~",
        FileAction::Delete => "-",
    }
}

/// The closing line, like Terraform's "Plan: ...".
pub fn summary_line(r: &Report) -> String {
    let verb = match r.kind {
        ReportKind::Diff => "Diff",
        ReportKind::Plan => "Plan",
    };
    if !r.has_changes() {
        return match r.kind {
            ReportKind::Diff => {
                "No changes. Every host's desired state is the same at both revisions.".into()
            }
            ReportKind::Plan => "No changes. Every host matches its desired state.".into(),
        };
    }
    let s = &r.summary;
    if let Some(counts) = &r.changes {
        return format!(
            "{verb}: {} on {} of {}.",
            counts.phrase(crate::change::Tense::Planned),
            s.hosts_changed,
            plural(s.hosts_total, "host")
        );
    }
    let mut parts = Vec::new();
    if s.nodes_to_provision > 0 {
        parts.push(format!(
            "{} to provision",
            plural(s.nodes_to_provision, "node")
        ));
    }
    if s.hosts_added > 0 || s.hosts_removed > 0 {
        parts.push(format!(
            "{} to add, {} to remove",
            plural(s.hosts_added, "host"),
            s.hosts_removed
        ));
    }
    let mut files = format!(
        "{} on {}",
        plural(s.file_changes, "file change"),
        plural(s.hosts_changed, "host")
    );
    if s.secrets_changed > 0 {
        let _ = write!(files, " ({} with a changed secret)", s.secrets_changed);
    }
    parts.push(files);
    if s.directory_changes > 0 {
        parts.push(plural(s.directory_changes, "directory change"));
    }
    parts.push(format!("{} to restart", plural(s.restarts, "container")));
    if s.containers_created > 0 {
        parts.push(format!("{} to create", s.containers_created));
    }
    if s.containers_removed > 0 {
        parts.push(format!("{} to remove", s.containers_removed));
    }
    format!("{verb}: {}.", parts.join(", "))
}

/// The first lines of the text and its summary: what is compared, and the bare metal.
fn heading(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "{}: {} -> {}",
        r.inventory,
        side(&r.base),
        side(&r.head)
    );
    if !r.nodes.is_empty() {
        let _ = writeln!(out, "\nBare metal:");
        for n in &r.nodes {
            let sign = if n.change == "remove" { "-" } else { "+" };
            let _ = writeln!(
                out,
                "  {sign} {} {} ({}): {}",
                n.change, n.node, n.role, n.action
            );
        }
    }
}

/// At most this many paths are listed per group of hosts in [`summary`].
pub const SUMMARY_PATHS: usize = 25;

/// The lines a unified diff adds and removes: `+3 -1`.
fn line_counts(diff: &str) -> String {
    let (mut added, mut removed) = (0, 0);
    for l in diff.lines().skip_while(|l| !l.starts_with("@@")) {
        if l.starts_with('+') {
            added += 1;
        } else if l.starts_with('-') {
            removed += 1;
        }
    }
    match (added, removed) {
        (0, 0) => String::new(),
        (a, 0) => format!("+{a}"),
        (0, d) => format!("-{d}"),
        (a, d) => format!("+{a} -{d}"),
    }
}

/// At most this many names are listed on one line of [`summary`].
pub const SUMMARY_NAMES: usize = 12;

/// `a, b, c`, or the first [`SUMMARY_NAMES`] and how many more.
fn some(names: &[&str]) -> String {
    if names.len() <= SUMMARY_NAMES {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..SUMMARY_NAMES].join(", "),
        names.len() - SUMMARY_NAMES
    )
}

/// The plan in short, for a person at a terminal (`provision apply` shows it; `apply
/// --diff`, and the run's `plan.txt`, have the [`text`] with every file's diff): the
/// hosts whose changes are the same as one group, each with its role, what apply will do
/// there counted (summed over the group's hosts), the paths with the lines each adds and
/// removes on the group's first host (at most [`SUMMARY_PATHS`]), and its containers,
/// tasks and units; no diff line.
pub fn summary(r: &Report) -> String {
    let mut out = String::new();
    heading(&mut out, r);
    if !r.has_changes() {
        let _ = writeln!(out, "\n{}", summary_line(r));
        return out;
    }
    for h in &r.hosts_added {
        let _ = writeln!(out, "\n+ host {} ({})", h.name, h.role);
    }
    for h in &r.hosts_removed {
        let _ = writeln!(out, "\n- host {} ({})", h.name, h.role);
    }
    let mut grouped: std::collections::BTreeSet<&str> = Default::default();
    for g in &r.host_groups {
        let Some(first) = g.hosts.first() else {
            continue;
        };
        grouped.extend(g.hosts.iter().map(String::as_str));
        let on = |hosts: &[String]| hosts.contains(first);
        let mut roles: Vec<&str> = g
            .hosts
            .iter()
            .filter_map(|h| r.roles.get(h).map(String::as_str))
            .collect();
        roles.sort();
        roles.dedup();
        let who = format!(
            "{}: {}",
            plural(g.hosts.len(), "host"),
            compact_hosts(&g.hosts)
        );
        let who = if roles.is_empty() {
            who
        } else {
            format!("{} ({who})", roles.join(", "))
        };
        let what = if r.host_counts.is_empty() {
            let files = g.files.iter().filter(|p| !p.ends_with('/')).count();
            let dirs = g.files.len() - files;
            let mut parts = vec![plural(files, "file change")];
            if dirs > 0 {
                parts.push(plural(dirs, "directory change"));
            }
            if !g.restarts.is_empty() {
                parts.push(plural(g.restarts.len(), "container change"));
            }
            format!("{} each", parts.join(", "))
        } else {
            let mut c = crate::change::Counts::default();
            for h in &g.hosts {
                if let Some(hc) = r.host_counts.get(h) {
                    c.merge(hc);
                }
            }
            c.brief(crate::change::Tense::Planned)
        };
        let _ = writeln!(out, "\n{who}: {what}");
        let mut listed = 0;
        for p in &g.files {
            listed += 1;
            if listed > SUMMARY_PATHS {
                break;
            }
            if p.ends_with('/') {
                let d = r
                    .directories
                    .iter()
                    .find(|d| format!("{}/", d.path) == *p && on(&d.hosts));
                if let Some(d) = d {
                    let what = match (&d.before, &d.after) {
                        (Some(b), Some(a)) => format!("{b} -> {a}"),
                        (None, Some(a)) => a.clone(),
                        (Some(b), None) => format!("{b} (no longer managed)"),
                        (None, None) => String::new(),
                    };
                    let _ = writeln!(out, "  {} {p}  {what}", symbol(d.action));
                }
                continue;
            }
            let Some(f) = r.files.iter().find(|f| &f.path == p && on(&f.hosts)) else {
                continue;
            };
            let mut notes = vec![line_counts(&f.diff)];
            if let Some([a, b]) = &f.mode {
                notes.push(format!("mode {a} -> {b}"));
            }
            if let Some([a, b]) = &f.owner {
                notes.push(format!("owner {a} -> {b}"));
            }
            if f.secret_changed {
                notes.push("secret changed".into());
            }
            if let Some(n) = &f.note {
                notes.push(n.clone());
            }
            notes.retain(|n| !n.is_empty());
            let _ = writeln!(out, "  {} {p}  {}", symbol(f.action), notes.join(", "));
        }
        if g.files.len() > SUMMARY_PATHS {
            let _ = writeln!(
                out,
                "  ... and {} (the full plan lists every one, with its diff)",
                plural(g.files.len() - SUMMARY_PATHS, "more path")
            );
        }
        let mut by_verb: Vec<(&str, Vec<&str>)> = Vec::new();
        for c in r.containers.iter().filter(|c| on(&c.hosts)) {
            let verb = match c.action {
                ContainerAction::Create => "create",
                ContainerAction::Restart => "recreate",
                ContainerAction::Recover => "recreate (unhealthy)",
                ContainerAction::Start => "start",
                ContainerAction::AwaitHealth => "wait for the health of",
                ContainerAction::Remove => "remove",
            };
            match by_verb.iter_mut().find(|(v, _)| *v == verb) {
                Some((_, names)) => names.push(&c.container),
                None => by_verb.push((verb, vec![&c.container])),
            }
        }
        if !by_verb.is_empty() {
            let said: Vec<String> = by_verb
                .iter()
                .map(|(v, names)| format!("{v} {}", some(names)))
                .collect();
            let _ = writeln!(out, "  containers: {}", said.join("; "));
        }
        let tasks: Vec<String> = r
            .tasks
            .iter()
            .filter(|t| on(&t.hosts))
            .map(|t| format!("{} ({})", t.task, t.why))
            .collect();
        if !tasks.is_empty() {
            let tasks: Vec<&str> = tasks.iter().map(String::as_str).collect();
            let _ = writeln!(out, "  tasks: {}", some(&tasks));
        }
        let units: Vec<&str> = r
            .units
            .iter()
            .filter(|u| on(&u.hosts))
            .map(|u| u.unit.as_str())
            .collect();
        if !units.is_empty() {
            let _ = writeln!(out, "  units to enable: {}", some(&units));
        }
    }
    // A host whose changes show no line (a node to provision, before it is read).
    let mut others: Vec<String> = r
        .host_counts
        .iter()
        .filter(|(h, c)| c.total() > 0 && !grouped.contains(h.as_str()))
        .map(|(h, _)| h.clone())
        .collect();
    super::group::sort_hosts(&mut others);
    for h in others {
        let role = r
            .roles
            .get(&h)
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\n{h}{role}: {}",
            r.host_counts[&h].brief(crate::change::Tense::Planned)
        );
    }
    let _ = writeln!(out, "\n{}", summary_line(r));
    out
}

/// Text for a terminal.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    heading(&mut out, r);
    if !r.has_changes() {
        let _ = writeln!(out, "\n{}", summary_line(r));
        return out;
    }
    if !r.hosts_added.is_empty() || !r.hosts_removed.is_empty() {
        out.push('\n');
    }
    for h in &r.hosts_added {
        let _ = writeln!(
            out,
            "+ host {} ({}): {}, {}",
            h.name,
            h.role,
            plural(h.files, "file"),
            plural(h.containers, "container")
        );
    }
    for h in &r.hosts_removed {
        let _ = writeln!(
            out,
            "- host {} ({}): its {} and {} go away",
            h.name,
            h.role,
            plural(h.files, "file"),
            plural(h.containers, "container")
        );
    }
    for f in &r.files {
        let _ = writeln!(out, "\n{} {}  [{}]", symbol(f.action), f.path, f.service);
        let _ = writeln!(out, "  {}", on_hosts(&f.hosts));
        if let Some([a, b]) = &f.mode {
            let _ = writeln!(out, "  mode {a} -> {b}");
        }
        if let Some([a, b]) = &f.owner {
            let _ = writeln!(out, "  owner {a} -> {b}");
        }
        if f.secret_changed {
            let _ = writeln!(out, "  (secret changed)");
        }
        if let Some(note) = &f.note {
            let _ = writeln!(out, "  ({note})");
        }
        if !f.diff.is_empty() {
            for line in f.diff.lines() {
                let _ = writeln!(out, "  {line}");
            }
            if f.hosts.len() > 1 && f.action == FileAction::Modify {
                let _ = writeln!(out, "  (context lines from {})", f.hosts[0]);
            }
        }
    }
    if !r.directories.is_empty() {
        let _ = writeln!(out, "\nDirectories:");
        for d in &r.directories {
            let what = match (&d.before, &d.after) {
                (Some(b), Some(a)) => format!("{b} -> {a}"),
                (None, Some(a)) => a.clone(),
                (Some(b), None) => format!("{b} (no longer managed)"),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "  {} {}  {what}  {}",
                symbol(d.action),
                d.path,
                on_hosts(&d.hosts)
            );
        }
    }
    if !r.containers.is_empty() {
        let _ = writeln!(out, "\nContainers:");
        for c in &r.containers {
            let verb = match c.action {
                ContainerAction::Restart | ContainerAction::Start | ContainerAction::Recover => {
                    "~ restart"
                }
                ContainerAction::AwaitHealth => "? health ",
                ContainerAction::Create => "+ create ",
                ContainerAction::Remove => "- remove ",
            };
            let _ = writeln!(out, "  {verb} {} {}", c.container, on_hosts(&c.hosts));
            if c.action == ContainerAction::Recover {
                let _ = writeln!(
                    out,
                    "      running UNHEALTHY, its configuration current: recreated, its healthcheck waited for"
                );
            }
            if c.action == ContainerAction::AwaitHealth {
                let _ = writeln!(
                    out,
                    "      running, its healthcheck not passed since it started: waited for (it fails the step if it does not pass)"
                );
            }
            if c.action == ContainerAction::Start {
                let _ = writeln!(
                    out,
                    "      stopped, its configuration current: started again, not recreated"
                );
            }
            if c.action == ContainerAction::Remove && r.kind == ReportKind::Plan {
                let plane = if c.hosts.len() == 1 && r.undercloud.as_ref() == c.hosts.first() {
                    crate::state::Plane::Undercloud
                } else {
                    crate::state::Plane::Overcloud
                };
                let _ = writeln!(
                    out,
                    "      stopped and removed with {1}/{0}/, {2}/{0}.json and its unit; {3}/{0}/ stays",
                    c.container,
                    plane.config_root(),
                    plane.container_defs(),
                    plane.log_root(),
                );
            }
        }
    }
    if !r.tasks.is_empty() {
        let _ = writeln!(out, "\nTasks (before their step's containers):");
        for t in &r.tasks {
            let _ = writeln!(out, "  > run {} {} ({})", t.task, on_hosts(&t.hosts), t.why);
        }
    }
    if !r.units.is_empty() {
        let _ = writeln!(out, "\nUnits:");
        for u in &r.units {
            let _ = writeln!(out, "  + enable {} {}", u.unit, on_hosts(&u.hosts));
        }
    }
    let _ = writeln!(out, "\n{}", summary_line(r));
    out
}

/// Markdown for a pull-request comment: the summary table first, then collapsible
/// diffs; cut with a marker before GitHub's limit, keeping the summary.
pub fn markdown(r: &Report) -> String {
    let mut head = String::new();
    let _ = writeln!(
        head,
        "### provision {}: `{}`\n",
        if r.kind == ReportKind::Plan {
            "plan"
        } else {
            "diff"
        },
        r.inventory
    );
    let _ = writeln!(head, "`{}` → `{}`\n", side(&r.base), side(&r.head));
    let _ = writeln!(head, "**{}**\n", summary_line(r));
    if !r.has_changes() {
        return head;
    }
    if !r.nodes.is_empty() {
        let _ = writeln!(head, "| node | role | bare metal |\n|---|---|---|");
        for n in &r.nodes {
            let _ = writeln!(
                head,
                "| `{}` | {} | {}: {} |",
                n.node, n.role, n.change, n.action
            );
        }
        head.push('\n');
    }
    if !r.hosts_added.is_empty() || !r.hosts_removed.is_empty() {
        let _ = writeln!(head, "| host | role | change |\n|---|---|---|");
        for h in &r.hosts_added {
            let _ = writeln!(
                head,
                "| `{}` | {} | added: {}, {} |",
                h.name,
                h.role,
                plural(h.files, "file"),
                plural(h.containers, "container")
            );
        }
        for h in &r.hosts_removed {
            let _ = writeln!(head, "| `{}` | {} | removed |", h.name, h.role);
        }
        head.push('\n');
    }
    if !r.host_groups.is_empty() {
        let _ = writeln!(head, "| hosts | files changed | restarts |\n|---|---|---|");
        for g in &r.host_groups {
            let files: Vec<String> = g.files.iter().map(|f| format!("`{f}`")).collect();
            let restarts: Vec<String> = g.restarts.iter().map(|c| format!("`{c}`")).collect();
            let _ = writeln!(
                head,
                "| {} ({}) | {} | {} |",
                compact_hosts(&g.hosts),
                g.hosts.len(),
                if files.is_empty() {
                    "—".into()
                } else {
                    files.join("<br>")
                },
                if restarts.is_empty() {
                    "—".into()
                } else {
                    restarts.join(" ")
                }
            );
        }
        head.push('\n');
    }
    let mut body = String::new();
    for (shown, f) in r.files.iter().enumerate() {
        let mut block = String::new();
        let mut title = format!(
            "{} <code>{}</code> {}",
            symbol(f.action),
            f.path,
            on_hosts(&f.hosts)
        );
        if f.secret_changed {
            title.push_str(" (secret changed)");
        }
        if let Some(note) = &f.note {
            title.push_str(&format!(" ({note})"));
        }
        let _ = writeln!(block, "<details><summary>{title}</summary>\n");
        if let Some([a, b]) = &f.mode {
            let _ = writeln!(block, "mode `{a}` → `{b}`\n");
        }
        if let Some([a, b]) = &f.owner {
            let _ = writeln!(block, "owner `{a}` → `{b}`\n");
        }
        if !f.diff.is_empty() {
            let fence = if f.diff.contains("```") {
                "````"
            } else {
                "```"
            };
            let _ = writeln!(block, "{fence}diff\n{}{fence}\n", f.diff);
        }
        block.push_str("</details>\n\n");
        if head.len() + body.len() + block.len() > MARKDOWN_LIMIT {
            let _ = writeln!(
                body,
                "**… output truncated: {} more not shown. Run `provision diff` locally for everything.**",
                plural(r.files.len() - shown, "changed file")
            );
            break;
        }
        body.push_str(&block);
    }
    head + &body
}

/// JSON for bots (docs/diff.md).
pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default() + "\n"
}
