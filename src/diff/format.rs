//! The three outputs of `provision diff`: text for a terminal, markdown for a
//! pull-request comment, JSON for bots (docs/diff.md).

use std::fmt::Write as _;

use super::{compact_hosts, ContainerAction, FileAction, Report, ReportKind, RevisionInfo};

/// GitHub cuts comments at 65,536 characters; keep a margin for the marker.
pub const MARKDOWN_LIMIT: usize = 60_000;

fn side(r: &RevisionInfo) -> String {
    match &r.commit {
        Some(c) => format!("{} ({})", r.rev, &c[..c.len().min(10)]),
        None => r.rev.clone(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn on_hosts(hosts: &[String]) -> String {
    format!(
        "on {}: {}",
        plural(hosts.len(), "host", "hosts"),
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
            "{verb}: {} on {} of {} hosts.",
            counts.phrase(crate::change::Tense::Planned),
            s.hosts_changed,
            s.hosts_total
        );
    }
    let mut parts = Vec::new();
    if s.nodes_to_provision > 0 {
        parts.push(format!(
            "{} to provision",
            plural(s.nodes_to_provision, "node", "nodes")
        ));
    }
    if s.hosts_added > 0 || s.hosts_removed > 0 {
        parts.push(format!(
            "{} to add, {} to remove",
            plural(s.hosts_added, "host", "hosts"),
            s.hosts_removed
        ));
    }
    let mut files = format!(
        "{} on {}",
        plural(s.file_changes, "file change", "file changes"),
        plural(s.hosts_changed, "host", "hosts")
    );
    if s.secrets_changed > 0 {
        let _ = write!(files, " ({} with a changed secret)", s.secrets_changed);
    }
    parts.push(files);
    if s.directory_changes > 0 {
        parts.push(plural(
            s.directory_changes,
            "directory change",
            "directory changes",
        ));
    }
    parts.push(format!(
        "{} to restart",
        plural(s.restarts, "container", "containers")
    ));
    if s.containers_created > 0 {
        parts.push(format!("{} to create", s.containers_created));
    }
    if s.containers_removed > 0 {
        parts.push(format!("{} to remove", s.containers_removed));
    }
    format!("{verb}: {}.", parts.join(", "))
}

/// Text for a terminal.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
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
            plural(h.files, "file", "files"),
            plural(h.containers, "container", "containers")
        );
    }
    for h in &r.hosts_removed {
        let _ = writeln!(
            out,
            "- host {} ({}): its {} and {} go away",
            h.name,
            h.role,
            plural(h.files, "file", "files"),
            plural(h.containers, "container", "containers")
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
                ContainerAction::Restart | ContainerAction::Start => "~ restart",
                ContainerAction::Create => "+ create ",
                ContainerAction::Remove => "- remove ",
            };
            let _ = writeln!(out, "  {verb} {} {}", c.container, on_hosts(&c.hosts));
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
                "| `{}` | {} | added: {} files, {} containers |",
                h.name, h.role, h.files, h.containers
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
                "**… output truncated: {} more changed files not shown. Run `provision diff` locally for everything.**",
                r.files.len() - shown
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
