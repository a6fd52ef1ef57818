//! Fuzzing the inventory loader and validate (proptest): thousands of hostile
//! inventories, made by mutating the repository's real ones (byte flips, truncation,
//! lines deleted, duplicated or spliced from another inventory, values swapped between
//! keys, wrong types, huge numbers, unicode, deep nesting; now and then the secrets
//! file instead) and by generating `[[nodes]]` from the inventory's grammar, each
//! written to a temporary folder beside the real roles and templates and evaluated
//! through the library entry `provision validate` uses ([`evaluate`] on the
//! filesystem), its diagnostics rendered as the CLI prints them. Every case must end
//! without a panic, in bounded time, with every diagnostic located inside its file's
//! text (a line and column that exist), and with no secret value in what is printed.
//!
//! The runs are deterministic (a fixed seed) and of a fixed size, so the suite takes
//! the same time every run; `FUZZ_SEED=N` explores other cases and `FUZZ_CASES=N`
//! changes their number. A case that once failed is kept under tests/fixtures/fuzz-*
//! and replayed first.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use provision::diagnostics::{describe, Diagnostic, Diagnostics, LISTED};
use provision::evaluate::evaluate;
use provision::model::LoadOptions;
use provision::source::{FsTree, SourceMap};

/// The seeds: the repository's inventories and their secrets files.
const SEEDS: &[(&str, &str)] = &[
    ("lab.toml", "lab.secrets.toml"),
    ("vagrant.toml", "vagrant.secrets.toml"),
    ("example-production.toml", "example-production.secrets.toml"),
];

/// Cases of each kind in one run: the two tests run side by side, each about 80 s of
/// the suite's release build on two cores (20,000 mutated cases took 78 s, 20,000
/// generated ones 85 s; docs/reliability.md has the figures).
const MUTATED_CASES: u32 = 20_000;
const GENERATED_CASES: u32 = 18_000;

/// Longest a case may take: a normal one takes milliseconds.
const CASE_BOUND: Duration = Duration::from_secs(10);

/// The first three octets of each seed's provisioning network.
const CTLPLANE: &[&str] = &["127.0.10", "192.168.24", "192.168.24"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary folder laid out as the repository: `inventories/` (the case's inventory
/// and every secrets file), `roles` and `templates` (links to the real ones).
struct Workspace {
    _dir: tempfile::TempDir,
    inventories: PathBuf,
    seeds: Vec<(String, Vec<u8>)>,
    secret_files: Vec<(String, Vec<u8>)>,
    /// Every secret value of the seeds' secrets files (at least 6 characters).
    secret_values: Vec<String>,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        for d in ["roles", "templates"] {
            std::os::unix::fs::symlink(repo().join(d), root.join(d)).expect("link");
        }
        let inventories = root.join("inventories");
        std::fs::create_dir(&inventories).expect("inventories/");
        let read = |name: &str| {
            std::fs::read(repo().join("inventories").join(name)).expect("a seed inventory")
        };
        let seeds: Vec<(String, Vec<u8>)> = SEEDS
            .iter()
            .map(|(inv, _)| (inv.to_string(), read(inv)))
            .collect();
        let secret_files: Vec<(String, Vec<u8>)> = SEEDS
            .iter()
            .map(|(_, s)| (s.to_string(), read(s)))
            .collect();
        let mut secret_values = Vec::new();
        for (name, bytes) in &secret_files {
            let text = String::from_utf8(bytes.clone()).expect("UTF-8");
            let table: toml::Table = toml::from_str(&text).expect(name);
            for v in table.values() {
                if let toml::Value::String(s) = v {
                    if s.chars().count() >= 6 {
                        secret_values.push(s.clone());
                    }
                }
            }
        }
        assert!(secret_values.len() > 10, "{secret_values:?}");
        for (name, text) in &seeds {
            let text = String::from_utf8_lossy(text);
            for s in &secret_values {
                assert!(!text.contains(s.as_str()), "{name} holds a secret value");
            }
        }
        Workspace {
            _dir: dir,
            inventories,
            seeds,
            secret_files,
            secret_values,
        }
    }
}

/// One change to a file's bytes. Positions are [`Index`]es: a fraction of whatever
/// the file's length is when the change applies.
#[derive(Debug, Clone)]
enum Mutation {
    FlipByte(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    DeleteLine(Index),
    DuplicateLine(Index, Index),
    /// A line of another seed put in place of one of this file.
    SpliceLine(Index, Index, Index),
    /// The values of two `key = value` lines swapped.
    SwapValues(Index, Index),
    /// The value of a `key = value` line replaced.
    ReplaceValue(Index, String),
    /// The key of a `key = value` line replaced.
    ReplaceKey(Index, String),
    InsertText(Index, String),
    /// A value nested `depth` deep (arrays or inline tables) in place of one.
    Nest(Index, usize, bool),
}

/// Values of the wrong type, out of range, huge or strange.
fn hostile_value() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "1",
        "0",
        "-1",
        "true",
        "false",
        "1.5",
        "-0.0",
        "nan",
        "inf",
        "-inf",
        "\"\"",
        "[]",
        "{}",
        "[1, \"a\"]",
        "{ a = 1 }",
        "[[]]",
        "1979-05-27T07:32:00Z",
        "07:32:00",
        "99999999999999999999",
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551615",
        "1e308",
        "1e309",
        "0x7fffffffffffffff",
        "0o777",
        "0b1",
        "65535",
        "65536",
        "256",
        "-256",
        "4294967296",
        "\"256.256.256.256\"",
        "\"::ffff:999.1.1.1\"",
        "\"192.168.24.0/33\"",
        "\"0.0.0.0/0\"",
        "\"::/0\"",
        "\"fe80::1%eth0\"",
        "\"52:54:00:00:00:00:00\"",
        "\"ff:ff:ff:ff:ff:ff\"",
        "\"52-54-00-AA-BB-CC\"",
        "\"../../../../etc/passwd\"",
        "\"/\"",
        "\".\"",
        "\"{{ 7*7 }}\"",
        "\"{% for i in range(999999999) %}x{% endfor %}\"",
        "\"$(reboot)\"",
        "\"; rm -rf /\"",
        "\"a\\nb\"",
        "\"\\u0000\"",
        "\"\\u202e\"",
        "\"é\"",
        "\"😀\"",
        "\"\u{200b}\"",
        "\"e\u{301}\"",
        "'literal'",
        "'''multi\nline'''",
        "\"\"\"\n\"\"\"",
        "{ secret = \"bmc_password\" }",
        "{ secret = \"\" }",
        "{ secret = 1 }",
        "{ secret = \"no_such_secret\" }",
        "[\"Compute\", \"Compute\"]",
    ])
    .prop_map(str::to_string);
    let big = any::<i64>().prop_map(|n| n.to_string());
    let text = prop::collection::vec(any::<char>(), 0..24).prop_map(|cs| {
        let s: String = cs.into_iter().collect();
        format!("\"{}\"", s.escape_default())
    });
    let long = (1usize..20_000).prop_map(|n| format!("\"{}\"", "x".repeat(n)));
    prop_oneof![6 => fixed, 2 => big, 2 => text, 1 => long]
}

/// Bits of TOML to insert anywhere.
fn hostile_text() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "\n[[nodes]]\n",
        "\n[nodes]\n",
        "\n[cloud]\n",
        "\n[networks.ctlplane]\n",
        "\n[roles.Compute]\ncount = 9999999\n",
        "\n[roles.Nope]\n",
        "\n[[nodes]]\nrole = \"Compute\"\n",
        "\n[vars]\nx = 1\n",
        "\n[config.nova.DEFAULT]\ndebug = \"maybe\"\n",
        "\n[config.nova]\nDEFAULT = 1\n",
        "\n[unchecked_options]\nnova = [\".\"]\n",
        "\n[lab]\n",
        "\n[secrets]\nfile = \"/dev/null\"\n",
        "\n[secrets]\nfile = \"..\"\n",
        "\n[[cloud]]\n",
        "\na.b.c = 1\n",
        "\n\"\" = 1\n",
        "\n\"\\u0000\" = 1\n",
        "=",
        "[",
        "]",
        "{",
        "}",
        "\"",
        "'",
        "#",
        "\\",
        "\r",
        "\r\n",
        "\t",
        "\u{feff}",
        "\u{0}",
        "é",
        "😀",
        "\u{202e}",
        "\u{fffd}",
        "\u{10ffff}",
    ])
    .prop_map(str::to_string);
    let chars = prop::collection::vec(any::<char>(), 1..12).prop_map(|cs| cs.into_iter().collect());
    prop_oneof![4 => fixed, 1 => chars]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let i = any::<Index>;
    prop_oneof![
        3 => (i(), any::<u8>()).prop_map(|(a, x)| Mutation::FlipByte(a, x)),
        1 => (i(), any::<u8>()).prop_map(|(a, x)| Mutation::SetByte(a, x)),
        1 => i().prop_map(Mutation::Truncate),
        3 => i().prop_map(Mutation::DeleteLine),
        2 => (i(), i()).prop_map(|(a, b)| Mutation::DuplicateLine(a, b)),
        2 => (i(), i(), i()).prop_map(|(a, b, c)| Mutation::SpliceLine(a, b, c)),
        3 => (i(), i()).prop_map(|(a, b)| Mutation::SwapValues(a, b)),
        5 => (i(), hostile_value()).prop_map(|(a, v)| Mutation::ReplaceValue(a, v)),
        1 => (i(), prop::sample::select(vec![
            "rolle", "name", "macs", "mac", "bmc", "count", "role", "cidr", "vip", "ctlplane_ip",
            "\"\"", "\"é\"", "\"a.b\"", "1", "true", "x.y", "nodes", "password",
        ])).prop_map(|(a, k)| Mutation::ReplaceKey(a, k.to_string())),
        3 => (i(), hostile_text()).prop_map(|(a, t)| Mutation::InsertText(a, t)),
        1 => (i(), 1usize..400, any::<bool>()).prop_map(|(a, d, t)| Mutation::Nest(a, d, t)),
    ]
}

/// The spans of the lines of `bytes` (without their `\n`).
fn lines(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            out.push((start, i));
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.push((start, bytes.len()));
    }
    out
}

/// Where the value of a `key = value` line starts, if it is one.
fn value_at(line: &[u8]) -> Option<usize> {
    let eq = line.windows(3).position(|w| w == b" = ")?;
    (!line.starts_with(b"#")).then_some(eq + 3)
}

/// The `key = value` lines of `bytes`: (line start, value start, line end).
fn assignments(bytes: &[u8]) -> Vec<(usize, usize, usize)> {
    lines(bytes)
        .into_iter()
        .filter_map(|(s, e)| value_at(&bytes[s..e]).map(|v| (s, s + v, e)))
        .collect()
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation, seeds: &[(String, Vec<u8>)]) {
    let len = bytes.len();
    match m {
        Mutation::FlipByte(at, x) if len > 0 => bytes[at.index(len)] ^= x | 1,
        Mutation::SetByte(at, x) if len > 0 => bytes[at.index(len)] = *x,
        Mutation::Truncate(at) => bytes.truncate(at.index(len + 1)),
        Mutation::DeleteLine(l) => {
            let ls = lines(bytes);
            if !ls.is_empty() {
                let (s, e) = ls[l.index(ls.len())];
                bytes.drain(s..(e + 1).min(len));
            }
        }
        Mutation::DuplicateLine(l, to) => {
            let ls = lines(bytes);
            if !ls.is_empty() {
                let (s, e) = ls[l.index(ls.len())];
                let mut line = bytes[s..e].to_vec();
                line.push(b'\n');
                let (at, _) = ls[to.index(ls.len())];
                bytes.splice(at..at, line);
            }
        }
        Mutation::SpliceLine(l, seed, from) => {
            let ls = lines(bytes);
            let other = &seeds[seed.index(seeds.len())].1;
            let ols = lines(other);
            if !ls.is_empty() && !ols.is_empty() {
                let (s, e) = ls[l.index(ls.len())];
                let (os, oe) = ols[from.index(ols.len())];
                bytes.splice(s..e, other[os..oe].to_vec());
            }
        }
        Mutation::SwapValues(a, b) => {
            let asg = assignments(bytes);
            if asg.len() >= 2 {
                let (x, y) = (a.index(asg.len()), b.index(asg.len()));
                let (first, second) = (asg[x.min(y)], asg[x.max(y)]);
                if first != second {
                    let v1 = bytes[first.1..first.2].to_vec();
                    let v2 = bytes[second.1..second.2].to_vec();
                    bytes.splice(second.1..second.2, v1);
                    bytes.splice(first.1..first.2, v2);
                }
            }
        }
        Mutation::ReplaceValue(l, v) => {
            let asg = assignments(bytes);
            if !asg.is_empty() {
                let (_, vs, e) = asg[l.index(asg.len())];
                bytes.splice(vs..e, v.bytes());
            }
        }
        Mutation::ReplaceKey(l, k) => {
            let asg = assignments(bytes);
            if !asg.is_empty() {
                let (s, vs, _) = asg[l.index(asg.len())];
                bytes.splice(s..vs - 3, k.bytes());
            }
        }
        Mutation::InsertText(at, t) => {
            let at = at.index(len + 1);
            bytes.splice(at..at, t.bytes());
        }
        Mutation::Nest(l, depth, table) => {
            let asg = assignments(bytes);
            if !asg.is_empty() {
                let (_, vs, e) = asg[l.index(asg.len())];
                let inner = String::from_utf8_lossy(&bytes[vs..e]).into_owned();
                let v = if *table {
                    format!("{}{inner}{}", "{ a = ".repeat(*depth), " }".repeat(*depth))
                } else {
                    format!("{}{inner}{}", "[".repeat(*depth), "]".repeat(*depth))
                };
                bytes.splice(vs..e, v.into_bytes());
            }
        }
        _ => {}
    }
}

/// One case: an inventory's bytes and its secrets file's.
#[derive(Debug, Clone)]
struct Case {
    inventory: Vec<u8>,
    secrets_name: String,
    secrets: Vec<u8>,
}

/// The counts of one run, for the record.
#[derive(Default)]
struct Tally {
    cases: AtomicUsize,
    valid: AtomicUsize,
    diagnostics: AtomicUsize,
    slowest_ms: AtomicUsize,
}

fn check_location(
    d: &Diagnostic,
    loc: &provision::diagnostics::Location,
    sources: &SourceMap,
) -> Result<(), String> {
    let Some(span) = &loc.span else {
        return Ok(());
    };
    let Some(src) = sources.get(&loc.file) else {
        return Err(format!(
            "`{}` points into {}, a file not kept for diagnostics",
            d.message,
            loc.file.display()
        ));
    };
    let text = &*src.text;
    if span.start > span.end || span.end > text.len() {
        return Err(format!(
            "`{}`: span {span:?} outside {} ({} bytes)",
            d.message,
            loc.file.display(),
            text.len()
        ));
    }
    let (line, col) = src.line_col(span.start);
    let shown = describe(loc, sources);
    if shown != format!("{}:{line}:{col}", loc.file.display()) {
        return Err(format!("`{}` described as {shown}", d.message));
    }
    let line_text = src.line(line).unwrap_or("");
    let line_count = text.lines().count().max(1);
    if line > line_count + 1 || col > line_text.chars().count() + 1 {
        return Err(format!(
            "`{}` at {line}:{col}, outside the text ({line_count} lines; line {line} has {} characters)",
            d.message,
            line_text.chars().count()
        ));
    }
    Ok(())
}

/// Every diagnostic located inside its text; one about the inventory always located
/// (but one saying it cannot be read).
fn check_diagnostics(
    diags: &Diagnostics,
    sources: &SourceMap,
    inventory: &Path,
) -> Result<(), String> {
    for d in &diags.items {
        if d.message.trim().is_empty() {
            return Err(format!("a diagnostic with no message at {:?}", d.location));
        }
        check_location(d, &d.location, sources)?;
        for (_, loc) in &d.notes {
            check_location(d, loc, sources)?;
        }
        if d.location.file == inventory
            && d.location.span.is_none()
            && !d.message.starts_with("cannot read the inventory")
        {
            return Err(format!("`{}` names the inventory but no line", d.message));
        }
    }
    Ok(())
}

/// Evaluates one case as `provision validate` does and checks what it reports.
fn run_case(ws: &Workspace, case: &Case, tally: &Tally) -> Result<(), TestCaseError> {
    let inventory = ws.inventories.join("case.toml");
    std::fs::write(&inventory, &case.inventory).expect("write the case");
    for (name, bytes) in &ws.secret_files {
        let bytes = if *name == case.secrets_name {
            &case.secrets
        } else {
            bytes
        };
        std::fs::write(ws.inventories.join(name), bytes).expect("write the secrets");
    }
    let started = Instant::now();
    let outcome = evaluate(&inventory, &FsTree, &LoadOptions::default());
    let (report, checked) = match &outcome {
        Ok(ev) => {
            tally.valid.fetch_add(1, Ordering::Relaxed);
            tally
                .diagnostics
                .fetch_add(ev.warnings.len(), Ordering::Relaxed);
            let report = format!(
                "{}{}",
                ev.render_warnings(),
                ev.render_warnings_listed(Some(LISTED), "pass --all-errors")
            );
            (
                report,
                check_diagnostics(&ev.warnings, &ev.sources, &inventory),
            )
        }
        Err(f) => {
            tally
                .diagnostics
                .fetch_add(f.diags.len() + f.warnings.len(), Ordering::Relaxed);
            if f.diags.is_empty() {
                return Err(TestCaseError::fail(keep_failure(
                    case,
                    "a failed evaluation with no error",
                )));
            }
            let report = format!(
                "{}{}",
                f.render(),
                f.render_listed(Some(LISTED), "fix these first", "pass --all-errors")
            );
            let checked = check_diagnostics(&f.diags, &f.sources, &inventory)
                .and_then(|()| check_diagnostics(&f.warnings, &f.sources, &inventory));
            (report, checked)
        }
    };
    let took = started.elapsed();
    tally.cases.fetch_add(1, Ordering::Relaxed);
    tally
        .slowest_ms
        .fetch_max(took.as_millis() as usize, Ordering::Relaxed);
    let fail = |why: &str| Err(TestCaseError::fail(keep_failure(case, why)));
    if let Err(why) = checked {
        return fail(&why);
    }
    if took > CASE_BOUND {
        return fail(&format!("the case took {took:?}"));
    }
    for s in &ws.secret_values {
        if report.contains(s.as_str()) {
            return fail("a secret value is in the report");
        }
    }
    Ok(())
}

fn seed_rng(salt: u8) -> TestRng {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(17);
    let mut bytes = [salt; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

fn config(cases: u32) -> Config {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        max_shrink_time: 60_000,
        ..Config::default()
    }
}

fn report_tally(what: &str, tally: &Tally, started: Instant) {
    eprintln!(
        "fuzz_inventory {what}: {} executions ({} valid, {} diagnostics checked), slowest case {} ms, {:.1} s in all",
        tally.cases.load(Ordering::Relaxed),
        tally.valid.load(Ordering::Relaxed),
        tally.diagnostics.load(Ordering::Relaxed),
        tally.slowest_ms.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

/// The kept regressions first, each a lab case: tests/fixtures/fuzz-NAME.toml is an
/// inventory evaluated with the lab's secrets, fuzz-NAME.secrets.toml a secrets file
/// evaluated with the lab's inventory.
fn replay_fixtures(ws: &Workspace, tally: &Tally) {
    let dir = repo().join("tests/fixtures");
    let mut found = Vec::new();
    for e in std::fs::read_dir(&dir).expect("tests/fixtures").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("fuzz-") && name.ends_with(".toml") {
            found.push((name, e.path()));
        }
    }
    found.sort();
    assert!(!found.is_empty(), "no tests/fixtures/fuzz-*.toml");
    for (name, path) in found {
        let bytes = std::fs::read(&path).expect("a fixture");
        let case = if name.ends_with(".secrets.toml") {
            Case {
                inventory: ws.seeds[0].1.clone(),
                secrets_name: SEEDS[0].1.to_string(),
                secrets: bytes,
            }
        } else {
            Case {
                inventory: bytes,
                secrets_name: SEEDS[0].1.to_string(),
                secrets: ws.secret_files[0].1.clone(),
            }
        };
        if let Err(e) = run_case(ws, &case, tally) {
            panic!("{}: {e}", path.display());
        }
    }
}

/// Keeps a failing case's files where the test's output says, to be made a fixture.
fn keep_failure(case: &Case, why: &str) -> String {
    static KEPT: AtomicUsize = AtomicUsize::new(0);
    let n = KEPT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let inventory = dir.join(format!("fuzz-failure-{}-{n}.toml", std::process::id()));
    let secrets = dir.join(format!(
        "fuzz-failure-{}-{n}.{}",
        std::process::id(),
        case.secrets_name
    ));
    let _ = std::fs::write(&inventory, &case.inventory);
    let _ = std::fs::write(&secrets, &case.secrets);
    format!(
        "{why} (the case: {} with {})",
        inventory.display(),
        secrets.display()
    )
}

#[test]
fn mutated_inventories_never_panic_and_every_error_is_located() {
    let ws = Workspace::new();
    let tally = Tally::default();
    let started = Instant::now();
    replay_fixtures(&ws, &tally);
    let n_seeds = ws.seeds.len();
    let strategy = (
        0..n_seeds,
        prop::collection::vec(mutation(), 1..5),
        prop::bool::weighted(0.1),
    );
    let mut runner = TestRunner::new_with_rng(config(MUTATED_CASES), seed_rng(1));
    let result = runner.run(&strategy, |(seed, mutations, on_secrets)| {
        let mut inventory = ws.seeds[seed].1.clone();
        let mut secrets = ws.secret_files[seed].1.clone();
        for m in &mutations {
            apply(
                if on_secrets {
                    &mut secrets
                } else {
                    &mut inventory
                },
                m,
                &ws.seeds,
            );
        }
        let case = Case {
            inventory,
            secrets_name: ws.secret_files[seed].0.clone(),
            secrets,
        };
        run_case(&ws, &case, &tally)
    });
    report_tally("mutated", &tally, started);
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("fuzz_inventory mutated: 0 panics, 0 failures");
}

/// A node table from the inventory's grammar: real keys (and a few wrong ones), values
/// mostly valid and near the valid ones otherwise (addresses on the seed's provisioning
/// network `ctlplane` and off it, MACs and BMCs that may collide, real and missing roles).
fn node(ctlplane: &'static str) -> impl Strategy<Value = String> {
    let role = prop_oneof![
        8 => Just("Compute"),
        2 => prop::sample::select(vec!["Controller", "CephStorage", "Networker"]),
        1 => prop::sample::select(vec!["compute", "Compute2", ""]),
    ];
    let ip = prop_oneof![
        8 => (100u8..=250).prop_map(move |n| format!("\"{ctlplane}.{n}\"")),
        1 => (0u8..=255).prop_map(|n| format!("\"172.16.2.{n}\"")),
        1 => hostile_value(),
    ];
    let mac = prop_oneof![
        8 => (0u8..=255).prop_map(|n| format!("\"52:54:00:aa:00:{n:02x}\"")),
        1 => (0u8..8).prop_map(|n| format!("\"52-54-00-AA-00-{n:02X}\"")),
        1 => hostile_value(),
    ];
    let macs = prop::collection::vec(mac, 1..3).prop_map(|m| format!("[{}]", m.join(", ")));
    let bmc = (
        prop_oneof![
            4 => Just("redfish"),
            2 => prop::sample::select(vec!["ipmi", "none"]),
            1 => prop::sample::select(vec!["idrac", ""]),
        ],
        prop::option::weighted(0.9, (0u8..=255).prop_map(|n| format!("\"10.100.9.{n}\""))),
        prop::option::weighted(
            0.2,
            prop_oneof![(0u32..70000).prop_map(|p| p.to_string()), hostile_value()],
        ),
        prop::option::weighted(
            0.9,
            prop::sample::select(vec!["\"System.Embedded.1\"", "\"1\"", "\"\""]),
        ),
        prop::option::weighted(
            0.9,
            prop::sample::select(vec![
                "{ secret = \"bmc_password\" }",
                "{ secret = \"lab_bmc_password\" }",
                "{ secret = \"missing\" }",
                "\"plain\"",
            ]),
        ),
    )
        .prop_map(|(driver, address, port, system_id, password)| {
            let mut parts = vec![format!("driver = \"{driver}\"")];
            if let Some(a) = address {
                parts.push(format!("address = {a}"));
            }
            if let Some(p) = port {
                parts.push(format!("port = {p}"));
            }
            if let Some(s) = system_id {
                parts.push(format!("system_id = {s}"));
            }
            parts.push("username = \"root\"".into());
            if let Some(p) = password {
                parts.push(format!("password = {p}"));
            }
            format!("{{ {} }}", parts.join(", "))
        });
    let name = prop::option::weighted(
        0.3,
        prop_oneof![
            (0u8..6).prop_map(|n| format!("\"node-{n}\"")),
            prop::sample::select(vec![
                "\"undercloud\"",
                "\"lab-undercloud\"",
                "\"UPPER\"",
                "\"a_b\"",
                "\"-x\"",
            ])
            .prop_map(str::to_string),
            hostile_value(),
        ],
    );
    let extra = prop::option::weighted(
        0.4,
        prop::sample::select(vec![
            "profile = \"control\"",
            "capabilities = { boot_mode = \"uefi\" }",
            "root_device = { serial = \"S3\" }",
            "root_device = { size_gb = -1 }",
            "addresses = { internal_api = \"172.16.2.200\" }",
            "addresses = { nowhere = \"10.0.0.1\" }",
            "addresses = { ctlplane = \"not an ip\" }",
            "vars = { x = { y = { z = 1 } } }",
            "config = { nova = { DEFAULT = { debug = true } } }",
            "config = { nova = { DEFAULT = { debug = \"loud\" } } }",
            "config = { novaa = { DEFAULT = { debug = true } } }",
            "config = { nova = { } }",
            "colour = \"blue\"",
        ]),
    );
    (
        prop::option::weighted(0.97, role),
        prop::option::weighted(0.97, ip),
        prop::option::weighted(0.97, macs),
        prop::option::weighted(0.95, bmc),
        name,
        extra,
    )
        .prop_map(|(role, ip, macs, bmc, name, extra)| {
            let mut t = String::from("\n[[nodes]]\n");
            if let Some(r) = role {
                t.push_str(&format!("role = \"{r}\"\n"));
            }
            if let Some(n) = name {
                t.push_str(&format!("name = {n}\n"));
            }
            if let Some(ip) = ip {
                t.push_str(&format!("ctlplane_ip = {ip}\n"));
            }
            if let Some(m) = macs {
                t.push_str(&format!("macs = {m}\n"));
            }
            if let Some(b) = bmc {
                t.push_str(&format!("bmc = {b}\n"));
            }
            if let Some(e) = extra {
                t.push_str(e);
                t.push('\n');
            }
            t
        })
}

#[test]
fn generated_nodes_never_panic_and_every_error_is_located() {
    let ws = Workspace::new();
    let tally = Tally::default();
    let started = Instant::now();
    // A seed whole, its roles' counts (optional) mostly left out, then generated
    // nodes, their addresses on the seed's provisioning network.
    let texts: Vec<String> = ws
        .seeds
        .iter()
        .map(|(_, b)| String::from_utf8(b.clone()).expect("UTF-8"))
        .collect();
    let uncounted: Vec<String> = texts
        .iter()
        .map(|t| {
            t.lines()
                .filter(|l| !l.starts_with("count = "))
                .flat_map(|l| [l, "\n"])
                .collect()
        })
        .collect();
    let strategy = (0..texts.len()).prop_flat_map(|seed| {
        (
            Just(seed),
            prop::collection::vec(node(CTLPLANE[seed]), 0..24),
            prop::bool::weighted(0.85),
        )
    });
    let mut runner = TestRunner::new_with_rng(config(GENERATED_CASES), seed_rng(2));
    let result = runner.run(&strategy, |(seed, nodes, drop_counts)| {
        let mut text = if drop_counts {
            uncounted[seed].clone()
        } else {
            texts[seed].clone()
        };
        for n in &nodes {
            text.push_str(n);
        }
        let case = Case {
            inventory: text.into_bytes(),
            secrets_name: ws.secret_files[seed].0.clone(),
            secrets: ws.secret_files[seed].1.clone(),
        };
        run_case(&ws, &case, &tally)
    });
    report_tally("generated", &tally, started);
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("fuzz_inventory generated: 0 panics, 0 failures");
}
