//! Bad input at scale: `provision validate` (and every command that loads an inventory)
//! lists the first 50 errors and the first 50 warnings, then one line counting the rest
//! and saying what to do; `--all-errors` lists every one; the exit code and the count
//! stay whole. Each test runs the real binary on example-production.toml with its
//! computes replaced by N generated ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn provision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run provision")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// example-production.toml (its paths made absolute) with `n` computes, the `i`th
/// with MAC `mac(i)`, and `extra(i)` added to its table.
fn inventory(n: usize, mac: impl Fn(usize) -> String, extra: impl Fn(usize) -> String) -> String {
    let repo = repo();
    let text = std::fs::read_to_string(repo.join("inventories/example-production.toml"))
        .expect("example-production.toml");
    let (head, nodes) = text.split_once("\n[[nodes]]").expect("nodes");
    let head = head
        .replace(
            "templates = \"../templates\"",
            &format!("templates = \"{}\"", repo.join("templates").display()),
        )
        .replace(
            "roles = \"../roles\"",
            &format!("roles = \"{}\"", repo.join("roles").display()),
        )
        .replace(
            "file = \"example-production.secrets.toml\"",
            &format!(
                "file = \"{}\"",
                repo.join("inventories/example-production.secrets.toml")
                    .display()
            ),
        )
        .replace(
            "[roles.Compute]\ncount = 20",
            &format!("[roles.Compute]\ncount = {n}"),
        );
    assert!(
        head.contains(&format!("[roles.Compute]\ncount = {n}")),
        "{head}"
    );
    let mut out = head;
    for block in nodes.split("\n[[nodes]]") {
        if !block.contains("role = \"Compute\"") {
            out.push_str("\n[[nodes]]");
            out.push_str(block);
        }
    }
    assert!(n < 150, "the computes' addresses are 192.168.24.100 and up");
    for i in 0..n {
        out.push_str(&format!(
            "\n[[nodes]]\nrole = \"Compute\"\nctlplane_ip = \"192.168.24.{}\"\nmacs = [\"{}\"]\n{}bmc = {{ driver = \"redfish\", address = \"10.101.0.{}\", system_id = \"System.Embedded.1\", username = \"root\", password = {{ secret = \"bmc_password\" }} }}\n",
            100 + i,
            mac(i),
            extra(i),
            i + 1
        ));
    }
    out
}

fn good_mac(i: usize) -> String {
    format!("52:54:01:00:00:{i:02x}")
}

/// A MAC with a `zz` pair: one error per node.
fn bad_mac(i: usize) -> String {
    format!("52:54:zz:00:00:{i:02x}")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the inventory");
    path
}

/// The error blocks of a report: each begins with `error: ` at the start of a line
/// (the summary line, `error: X is not valid`, is not one).
fn error_blocks(report: &str) -> Vec<&str> {
    report
        .split("\nerror: ")
        .skip(usize::from(!report.starts_with("error: ")))
        .filter(|b| !b.contains(" is not valid: "))
        .collect()
}

#[test]
fn validate_lists_the_first_50_errors_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(
        dir.path(),
        "bad.toml",
        &inventory(120, bad_mac, |_| String::new()),
    );
    let o = provision(&["validate", inv.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    let blocks = error_blocks(&err);
    assert_eq!(blocks.len(), 50, "{err}");
    // The first 50 in file order: the first node's and the 50th's, not the 51st's.
    assert!(blocks[0].contains(&bad_mac(0)), "{}", blocks[0]);
    assert!(blocks[49].contains(&bad_mac(49)), "{}", blocks[49]);
    assert!(!err.contains(&bad_mac(50)), "{err}");
    for b in &blocks {
        assert!(
            b.contains("is not a MAC address") && b.contains("--> "),
            "{b}"
        );
    }
    let more: Vec<&str> = err.lines().filter(|l| l.contains("more error")).collect();
    assert_eq!(
        more,
        ["... and 70 more errors (not shown); fix these first, or pass --all-errors to list every one"],
        "{err}"
    );
    assert!(
        err.trim_end().ends_with(&format!(
            "error: {} is not valid: 120 errors found",
            inv.display()
        )),
        "{err}"
    );
}

#[test]
fn all_errors_lists_every_one() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(
        dir.path(),
        "bad.toml",
        &inventory(120, bad_mac, |_| String::new()),
    );
    let o = provision(&["validate", "--all-errors", inv.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(error_blocks(&err).len(), 120, "{err}");
    assert!(err.contains(&bad_mac(119)), "{err}");
    assert!(!err.contains("more error"), "{err}");
    assert!(err.contains("is not valid: 120 errors found"), "{err}");
}

#[test]
fn the_count_line_is_singular_and_absent_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let fifty = write(
        dir.path(),
        "fifty.toml",
        &inventory(50, bad_mac, |_| String::new()),
    );
    let o = provision(&["validate", fifty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(error_blocks(&err).len(), 50, "{err}");
    assert!(!err.contains("more error"), "{err}");
    assert!(err.contains("is not valid: 50 errors found"), "{err}");

    let one_more = write(
        dir.path(),
        "51.toml",
        &inventory(51, bad_mac, |_| String::new()),
    );
    let o = provision(&["validate", one_more.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(error_blocks(&err).len(), 50, "{err}");
    assert!(
        err.contains("\n... and 1 more error (not shown); fix these first, or pass --all-errors to list every one\n"),
        "{err}"
    );
    assert!(err.contains("is not valid: 51 errors found"), "{err}");
}

/// render (like plan and apply) loads through the same function: capped the same way,
/// and its count line names the command that lists every error.
#[test]
fn render_caps_the_same_way_and_points_to_validate() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(
        dir.path(),
        "bad.toml",
        &inventory(120, bad_mac, |_| String::new()),
    );
    let out = dir.path().join("out");
    let o = provision(&[
        "render",
        inv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(error_blocks(&err).len(), 50, "{err}");
    assert!(
        err.contains(&format!(
            "\n... and 70 more errors (not shown); fix these first, or run `provision validate --all-errors {}` to list every one\n",
            inv.display()
        )),
        "{err}"
    );
    assert!(err.contains("is not valid: 120 errors found"), "{err}");
    assert!(!out.exists(), "nothing rendered from an invalid inventory");
}

/// Warnings are capped too, and a valid inventory still exits 0 with its whole count:
/// 60 computes each override an option [unchecked_options] lists, one warning each.
#[test]
fn warnings_are_capped_and_counted_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut text_ = inventory(60, good_mac, |i| {
        format!("config = {{ nova = {{ vendor_x = {{ option_{i} = \"{i}\" }} }} }}\n")
    });
    text_.push_str("\n[unchecked_options]\nnova = [\"vendor_x.*\"]\n");
    let inv = write(dir.path(), "warn.toml", &text_);
    let o = provision(&["validate", inv.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let warnings = err
        .lines()
        .filter(|l| l.starts_with("warning: `[vendor_x] option_"))
        .count();
    assert_eq!(warnings, 50, "{err}");
    assert!(
        err.contains(
            "\n... and 10 more warnings (not shown); pass --all-errors to list every one\n"
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!("warning: {}: 60 warnings", inv.display())),
        "{err}"
    );
    assert!(
        text(&o.stdout).contains(": 60 warnings."),
        "{}",
        text(&o.stdout)
    );

    let o = provision(&["validate", "--all-errors", inv.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let err = text(&o.stderr);
    let warnings = err
        .lines()
        .filter(|l| l.starts_with("warning: `[vendor_x] option_"))
        .count();
    assert_eq!(warnings, 60, "{err}");
    assert!(!err.contains("more warning"), "{err}");
}
