//! What a report may show of one file: the one redaction of `provision plan` (the host's
//! content against the desired one) and `provision diff` (one revision's desired content
//! against another's).
//!
//! Every known secret value (in any of its forms: as is, URL-encoded, JSON-escaped,
//! shell-quoted) is replaced by `(secret)` on both sides. A line of the old side is then
//! shown as it is unless it may hold a secret nobody knows any more (a rotated password
//! on a host): a line whose key carries a secret in the new file
//! (INI `option =` within its section, env `NAME=`, YAML `key:` and JSON `"key":` within
//! their parents), or, for a line with no key the new file has, whose place or beginning
//! in the new file carries one, is hidden as `(line N of the host's file hidden: it held
//! a secret)`. Any other line (`cpu_allocation_ratio = 4.0` next to a password) is
//! shown. A line equal to one of the new file's is always shown (it shows nothing the
//! new side does not).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use crate::inventory::finder::Finder;
use crate::inventory::Secrets;
use crate::state::FileKind;

/// What replaces a secret's value.
pub const SECRET: &str = "(secret)";

/// The known secret values of one side, ready to find in many files.
pub struct Redactor {
    forms: Vec<String>,
    /// One finder of every form (`None` without secrets, or if it could not be built:
    /// then each form is looked for in turn).
    finder: Option<Finder>,
}

impl Redactor {
    pub fn new(secrets: &Secrets) -> Redactor {
        let forms = secrets.all_forms().to_vec();
        let finder = Finder::new(&forms);
        Redactor { forms, finder }
    }

    /// Where a secret's value is in `text`: every match, overlapping ones included
    /// (some possibly twice).
    fn matches(&self, text: &str) -> Vec<(usize, usize)> {
        match &self.finder {
            Some(f) => {
                let mut found = Vec::new();
                f.each(text, |_, start, end| found.push((start, end)));
                found
            }
            None => self
                .forms
                .iter()
                .flat_map(|f| {
                    text.match_indices(f.as_str())
                        .map(|(i, m)| (i, i + m.len()))
                })
                .collect(),
        }
    }

    /// The lines of `text` with every secret value replaced: each with the number of the
    /// line of `text` it starts on (a value spanning lines becomes one `(secret)`) and
    /// whether it held one. Overlapping values are hidden together (the union of every
    /// match), so no part of one is left. A line without a secret borrows its text.
    fn lines<'t>(&self, text: &'t str) -> Vec<Line<'t>> {
        let mut found = self.matches(text);
        found.sort_unstable();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for (start, end) in found {
            match spans.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => spans.push((start, end)),
            }
        }
        let mut out = Vec::with_capacity(text.len() / 32 + 1);
        let mut cur = Current {
            number: 1,
            start: 0,
            owned: None,
            secret: false,
            skipped: 0,
        };
        let mut at = 0;
        for (start, end) in spans {
            cur.plain(text, at, start, &mut out);
            let owned = cur
                .owned
                .get_or_insert_with(|| text[cur.start..start].to_string());
            owned.push_str(SECRET);
            cur.secret = true;
            // A value spanning lines: the next line is numbered as in `text`.
            cur.skipped += text[start..end].matches('\n').count();
            at = end;
        }
        cur.plain(text, at, text.len(), &mut out);
        let last = cur.text(text, text.len());
        if !last.is_empty() {
            out.push(Line {
                number: cur.number,
                text: last,
                secret: cur.secret,
            });
        }
        out
    }
}

/// The line [`Redactor::lines`] is making: borrowed from `start` in the text while no
/// secret is in it, owned once one is.
struct Current {
    number: usize,
    start: usize,
    owned: Option<String>,
    secret: bool,
    /// The lines of the text a secret's value spanned into it.
    skipped: usize,
}

impl Current {
    /// Its text, the text being read up to `end`.
    fn text<'t>(&mut self, text: &'t str, end: usize) -> Cow<'t, str> {
        match self.owned.take() {
            Some(o) => Cow::Owned(o),
            None => Cow::Borrowed(&text[self.start..end]),
        }
    }

    /// Adds `text[from..to]` (no secret in it) to the line, ending a line at each newline.
    fn plain<'t>(&mut self, text: &'t str, from: usize, to: usize, out: &mut Vec<Line<'t>>) {
        let mut at = from;
        while let Some(nl) = text[at..to].find('\n') {
            let nl = at + nl;
            if let Some(o) = self.owned.as_mut() {
                o.push_str(&text[at..nl]);
            }
            let line = Line {
                number: self.number,
                text: self.text(text, nl),
                secret: self.secret,
            };
            out.push(line);
            self.number += self.skipped + 1;
            self.skipped = 0;
            self.secret = false;
            self.start = nl + 1;
            at = nl + 1;
        }
        if let Some(o) = self.owned.as_mut() {
            o.push_str(&text[at..to]);
        }
    }
}

/// One line as shown.
struct Line<'t> {
    /// Its number in the text it comes from, from 1.
    number: usize,
    text: Cow<'t, str>,
    /// It held a secret's value.
    secret: bool,
}

/// The key of every line of a file, as far as one is recognised: INI sections, and
/// YAML/JSON parents by indentation.
#[derive(Default)]
struct Keys {
    section: String,
    parents: Vec<(usize, String)>,
}

impl Keys {
    /// The key of `line` (`[section]/parent/name`), or `None` for a line without one (a
    /// comment, a section header, a line that is not `name = value`, `name: value`).
    #[cfg(test)]
    fn of(&mut self, line: &str) -> Option<String> {
        let mut key = String::new();
        self.key_into(line, &mut key).then_some(key)
    }

    /// [`Keys::of`] into `key` (cleared first), without allocating one for every line
    /// of a file: whether `line` has a key.
    fn key_into(&mut self, line: &str, key: &mut String) -> bool {
        key.clear();
        let trimmed = line.trim();
        if trimmed.is_empty()
            || trimmed.starts_with('#')
            || trimmed.starts_with(';')
            || trimmed.starts_with("//")
        {
            return false;
        }
        if trimmed.starts_with('[') && trimmed.ends_with(']') && !trimmed.contains('=') {
            self.section = trimmed.to_string();
            self.parents.clear();
            return false;
        }
        let indent = line.len() - line.trim_start().len();
        while self.parents.last().is_some_and(|(i, _)| *i >= indent) {
            self.parents.pop();
        }
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let body = body.strip_prefix("- ").unwrap_or(body);
        let Some(sep) = body.find(['=', ':']) else {
            return false;
        };
        let name = body[..sep].trim().trim_matches(['"', '\'']);
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '@'));
        if !valid {
            return false;
        }
        let value = body[sep + 1..].trim();
        key.push_str(&self.section);
        for (_, p) in &self.parents {
            key.push('/');
            key.push_str(p);
        }
        key.push('/');
        key.push_str(name);
        if value.is_empty() || value == "{" || value == "[" {
            self.parents.push((indent, name.to_string()));
        }
        true
    }
}

/// What the new side tells about the old side's lines that it does not show as they
/// are (the candidates to hide), given the keys of those lines (`wanted`).
struct Carried<'a> {
    /// Of `wanted`, the keys the new side has, and those whose value carries a secret.
    has: HashSet<&'a str>,
    secret: HashSet<&'a str>,
    /// The numbers of the new side's lines that carry a secret.
    numbers: BTreeSet<usize>,
    /// Of a new line carrying a secret without a key, its beginning up to the secret
    /// (`stats auth admin:`).
    stems: Vec<String>,
}

impl<'a> Carried<'a> {
    fn of(lines: &[Line<'_>], wanted: &HashSet<&'a str>) -> Carried<'a> {
        let mut keys = Keys::default();
        let mut key = String::new();
        let mut c = Carried {
            has: HashSet::new(),
            secret: HashSet::new(),
            numbers: BTreeSet::new(),
            stems: Vec::new(),
        };
        for l in lines {
            let has_key = keys.key_into(&l.text, &mut key);
            let known = if has_key {
                wanted.get(key.as_str()).copied()
            } else {
                None
            };
            if let Some(k) = known {
                c.has.insert(k);
            }
            if !l.secret {
                continue;
            }
            c.numbers.insert(l.number);
            if has_key {
                if let Some(k) = known {
                    c.secret.insert(k);
                }
            } else {
                let stem = l.text.split(SECRET).next().unwrap_or("").trim_start();
                if !stem.trim().is_empty() {
                    c.stems.push(stem.to_string());
                }
            }
        }
        c
    }

    /// Whether an old line not shown as it is by the new side (`line`, whose key is
    /// `key`) may hold a secret not known by value.
    fn hides(&self, line: &Line<'_>, key: Option<&str>) -> bool {
        match key {
            Some(k) if self.has.contains(k) => self.secret.contains(k),
            // No key, or one the new side does not have (an option no longer written,
            // or not a key at all: a base64 value's `==`).
            _ => {
                self.numbers.contains(&line.number) || {
                    let t = line.text.trim_start();
                    self.stems.iter().any(|s| t.starts_with(s.as_str()))
                }
            }
        }
    }
}

/// One side of a file: its content and the secrets known to it.
pub struct Version<'a> {
    pub content: &'a str,
    pub secrets: &'a Redactor,
}

/// The old and new content of one file as a report shows them (see the module): `old`
/// is `None` for a file created, `new` for one deleted; `whose` names the old side in
/// the line that replaces a hidden one (`the host's file`).
///
/// Only an old line that is neither a known secret nor shown as it is by the new side
/// may be hidden: the keys of the file's lines are worked out only when there is one.
pub fn file(
    kind: &FileKind,
    old: Option<Version<'_>>,
    new: Option<Version<'_>>,
    whose: &str,
) -> (String, String) {
    let every = matches!(kind, FileKind::Key { .. });
    let new_text = new.as_ref().map(|v| super::shown(kind, v.content));
    let new_lines = match (&new, &new_text) {
        (Some(v), Some(text)) => v.secrets.lines(text),
        _ => Vec::new(),
    };
    let after = new_text
        .as_deref()
        .map(|t| join(&new_lines, t))
        .unwrap_or_default();
    let Some(old) = old else {
        return (String::new(), after);
    };
    let text = super::shown(kind, old.content);
    let mut lines = old.secrets.lines(&text);
    let shown: HashSet<&str> = new_lines.iter().map(|l| l.text.as_ref()).collect();
    let candidates: Vec<usize> = (0..lines.len())
        .filter(|&i| !lines[i].secret && !shown.contains(lines[i].text.as_ref()))
        .collect();
    if candidates.is_empty() {
        return (join(&lines, &text), after);
    }
    let hide: Vec<usize> = if every {
        candidates
    } else {
        // The candidates' keys, in their sections and parents.
        let mut keys = Keys::default();
        let mut key = String::new();
        let mut cand_keys: Vec<Option<String>> = Vec::with_capacity(candidates.len());
        let mut next = candidates.iter().peekable();
        for (i, l) in lines.iter().enumerate() {
            let Some(&&c) = next.peek() else {
                break;
            };
            let has_key = keys.key_into(&l.text, &mut key);
            if c == i {
                cand_keys.push(has_key.then(|| key.clone()));
                next.next();
            }
        }
        let wanted: HashSet<&str> = cand_keys.iter().flatten().map(String::as_str).collect();
        let carried = Carried::of(&new_lines, &wanted);
        candidates
            .iter()
            .zip(&cand_keys)
            .filter(|(&i, k)| carried.hides(&lines[i], k.as_deref()))
            .map(|(&i, _)| i)
            .collect()
    };
    for i in hide {
        let l = &mut lines[i];
        l.text = Cow::Owned(format!(
            "(line {} of {whose} hidden: it held a secret)",
            l.number
        ));
    }
    (join(&lines, &text), after)
}

/// The lines joined, with a final newline if `source` has one.
fn join(lines: &[Line], source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&l.text);
    }
    if source.ends_with('\n') && !lines.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const DB: &str = "db-Pa55-current";
    const RABBIT: &str = "rabbit/pa:ss";

    fn secrets(values: &[(&str, &str)]) -> Secrets {
        let m: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Secrets::default().with_generated(&m)
    }

    fn known() -> Redactor {
        Redactor::new(&secrets(&[("db", DB), ("rabbit", RABBIT)]))
    }

    fn oslo() -> FileKind {
        FileKind::Oslo {
            id: "nova".into(),
            namespaces: Vec::new(),
        }
    }

    fn template() -> FileKind {
        FileKind::Template {
            template: "x.j2".into(),
        }
    }

    /// The plan's view: the host's `old` against the desired `new`, both with `known`.
    fn pair(kind: &FileKind, old: &str, new: &str, known: &Redactor) -> (String, String) {
        file(
            kind,
            Some(Version {
                content: old,
                secrets: known,
            }),
            Some(Version {
                content: new,
                secrets: known,
            }),
            "the host's file",
        )
    }

    fn hidden(n: usize) -> String {
        format!("(line {n} of the host's file hidden: it held a secret)")
    }

    #[test]
    fn ini_hides_only_the_lines_whose_option_carries_a_secret() {
        let new = format!(
            "[DEFAULT]\ncpu_allocation_ratio = 2.0\ntransport_url = rabbit://nova:{}@ctl:5672/\ndebug = false\n[database]\nconnection = mysql+pymysql://nova:{DB}@db/nova\n[api]\npassword_hint = none\n",
            "rabbit%2Fpa%3Ass"
        );
        let old = "[DEFAULT]\ncpu_allocation_ratio = 4.0\ntransport_url = rabbit://nova:rotated-rabbit-1@ctl:5672/\ndebug = false\n[database]\nconnection = mysql+pymysql://nova:db-Pa55-current@old-db/nova\n[api]\ntransport_url = rabbit://not-a-secret-here\n";
        let (before, after) = pair(&oslo(), old, &new, &known());
        let lines: Vec<&str> = before.lines().collect();
        assert_eq!(
            lines,
            [
                "[DEFAULT]",
                // not a secret: shown as it is, though the file holds secrets
                "cpu_allocation_ratio = 4.0",
                // a rotated password nobody knows any more: hidden
                hidden(3).as_str(),
                "debug = false",
                "[database]",
                // a known value: shown, redacted
                "connection = mysql+pymysql://nova:(secret)@old-db/nova",
                "[api]",
                // the same option in another section carries no secret
                "transport_url = rabbit://not-a-secret-here",
            ]
        );
        assert!(after.contains("transport_url = rabbit://nova:(secret)@ctl:5672/\n"));
        assert!(after.contains("cpu_allocation_ratio = 2.0\n"));
        for text in [&before, &after] {
            for v in [DB, RABBIT, "rabbit%2Fpa%3Ass", "rotated-rabbit-1"] {
                assert!(!text.contains(v), "{v} in {text}");
            }
        }
    }

    #[test]
    fn env_yaml_and_json_keys() {
        let k = known();
        // env: NAME=
        let (before, _) = pair(
            &template(),
            "export OS_PASSWORD=old-one\nOS_USERNAME=admin\n",
            &format!("export OS_PASSWORD={DB}\nOS_USERNAME=admin2\n"),
            &k,
        );
        assert_eq!(before, format!("{}\nOS_USERNAME=admin\n", hidden(1)));
        // YAML: key within its parents; the same key under another parent is shown
        let new = format!("clouds:\n  lab:\n    auth:\n      password: {DB}\n      username: admin\n  other:\n    password: plain\n");
        let old = "clouds:\n  lab:\n    region: one\n    auth:\n      username: admin\n      password: old-two\n  other:\n    password: plain-old\n";
        let (before, _) = pair(&template(), old, &new, &k);
        assert_eq!(
            before,
            format!("clouds:\n  lab:\n    region: one\n    auth:\n      username: admin\n{}\n  other:\n    password: plain-old\n", hidden(6))
        );
        // JSON: a container definition's environment
        let kind = FileKind::Container {
            container: "nova_api".into(),
        };
        let new = format!("{{\n  \"environment\": {{\n    \"DB_PASSWORD\": \"{DB}\",\n    \"TZ\": \"UTC\"\n  }},\n  \"image\": \"nova:2\"\n}}\n");
        let old = "{\n  \"environment\": {\n    \"DB_PASSWORD\": \"old-three\",\n    \"TZ\": \"CET\"\n  },\n  \"image\": \"nova:1\"\n}\n";
        let (before, after) = pair(&kind, old, &new, &k);
        assert_eq!(
            before,
            format!("{{\n  \"environment\": {{\n{}\n    \"TZ\": \"CET\"\n  }},\n  \"image\": \"nova:1\"\n}}\n", hidden(3))
        );
        assert!(after.contains("\"DB_PASSWORD\": \"(secret)\","));
    }

    #[test]
    fn a_line_without_a_key_is_hidden_at_the_place_or_beginning_of_a_secret() {
        let k = known();
        let new =
            format!("global\n  log stdout\nlisten stats\n  stats auth admin:{DB}\n  stats uri /\n");
        // The password line moved down by two: line 4 is at the new password's place,
        // line 6 begins as it does; a line the new file has is shown wherever it is.
        let old = "global\n  log stdout\n  maxconn 10\n  timeout 5s\nlisten stats\n  stats auth admin:old-four\n  stats uri /x\n";
        let (before, _) = pair(&template(), old, &new, &k);
        assert_eq!(
            before,
            format!(
                "global\n  log stdout\n  maxconn 10\n{}\nlisten stats\n{}\n  stats uri /x\n",
                hidden(4),
                hidden(6)
            ),
        );
        // A one-line key file.
        let (before, after) = pair(&template(), "AQAAold-key==\n", &format!("{DB}\n"), &k);
        assert_eq!(
            (before, after),
            (format!("{}\n", hidden(1)), "(secret)\n".to_string())
        );
    }

    #[test]
    fn key_material_hides_every_old_line_and_multi_line_values_are_redacted_whole() {
        let k = Redactor::new(&secrets(&[("pem", "-----BEGIN-----\nAAAA\n-----END-----")]));
        let kind = FileKind::Key {
            repository: "keystone/fernet".into(),
        };
        let (before, after) = pair(&kind, "old-key-1\nold-key-2\n", "{\n}\n", &k);
        assert_eq!(before, format!("{}\n{}\n", hidden(1), hidden(2)));
        assert_eq!(after, "{\n}\n");
        // A value over three lines is one `(secret)`; the lines after keep their numbers.
        let new = "a = 1\n-----BEGIN-----\nAAAA\n-----END-----\nb = 2\n";
        let old = "a = 1\n-----BEGIN-----\nAAAA\n-----END-----\nb = 3\nc = 4\n";
        let (before, after) = pair(&template(), old, new, &k);
        assert_eq!(after, "a = 1\n(secret)\nb = 2\n");
        assert_eq!(before, "a = 1\n(secret)\nb = 3\nc = 4\n");
        let old = "a = 1\nBEGIN old\nb = 3\n";
        let (before, _) = pair(&template(), old, new, &k);
        assert_eq!(before, format!("a = 1\n{}\nb = 3\n", hidden(2)));
    }

    #[test]
    fn overlapping_values_are_hidden_together() {
        let k = Redactor::new(&secrets(&[("a", "apa"), ("b", "passx")]));
        let (_, after) = pair(&template(), "", "x=1 apa passx 2\n", &k);
        assert_eq!(after, "x=1 (secret) (secret) 2\n");
        let (_, after) = pair(&template(), "", "x=1 apassxy\n", &k);
        assert_eq!(
            after, "x=1 (secret)y\n",
            "both values, overlapping: one span"
        );
        // No newline at the end stays so; a created file has no old side.
        let (before, after) = file(
            &template(),
            None,
            Some(Version {
                content: "k = apa",
                secrets: &k,
            }),
            "x",
        );
        assert_eq!((before.as_str(), after.as_str()), ("", "k = (secret)"));
    }

    #[test]
    fn the_redaction_is_the_one_it_replaced() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        // Lines from the shapes the redaction tells apart: sections, INI, env, YAML and
        // JSON keys, keyless lines with a secret at their beginning or place, comments,
        // a value over three lines, blank lines; each secret in several forms.
        const PEM: &str = "-----BEGIN-----\nAAAA\n-----END-----";
        let pool: Vec<String> = vec![
            "[DEFAULT]".into(),
            "[database]".into(),
            "debug = false".into(),
            "debug = true".into(),
            format!("connection = mysql+pymysql://nova:{DB}@db/nova"),
            "connection = mysql+pymysql://nova:old-pass@db/nova".into(),
            format!(
                "transport_url = rabbit://nova:{}@ctl:5672/",
                "rabbit%2Fpa%3Ass"
            ),
            "transport_url = rabbit://nova:rotated@ctl:5672/".into(),
            format!("password = {DB}"),
            "password = something-else".into(),
            format!("export OS_PASSWORD={RABBIT}"),
            "export OS_PASSWORD=old-one".into(),
            "clouds:".into(),
            "  lab:".into(),
            "    auth:".into(),
            format!("      password: {DB}"),
            "      password: old-two".into(),
            "      username: admin".into(),
            format!("  stats auth admin:{DB}"),
            "  stats auth admin:old-four".into(),
            format!("    \"DB_PASSWORD\": \"{DB}\","),
            "    \"DB_PASSWORD\": \"old-three\",".into(),
            "  \"provision.config_hash\": \"abc\",".into(),
            "# a comment".into(),
            String::new(),
            format!("a = 1\n{PEM}"),
            "AQAAold-key==".into(),
            format!("{DB}{RABBIT}"),
            "x = apa passx".into(),
        ];
        let known = |extra: &str| {
            Redactor::new(&secrets(&[
                ("db", DB),
                ("rabbit", RABBIT),
                ("pem", PEM),
                ("extra", extra),
            ]))
        };
        let sides = [known("apa"), known("passx")];
        let kinds = [
            oslo(),
            template(),
            FileKind::Key {
                repository: "k".into(),
            },
            FileKind::Container {
                container: "c".into(),
            },
        ];
        let text = proptest::collection::vec(0..pool.len(), 0..24);
        let strategy = (
            text.clone(),
            text,
            0..kinds.len(),
            any::<bool>(),
            any::<bool>(),
            0..2usize,
        );
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: 4000,
                failure_persistence: None,
                ..Config::default()
            },
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        );
        runner
            .run(&strategy, |(old, new, kind, newline, both, swap)| {
                let join = |idx: &[usize]| {
                    let mut t = idx
                        .iter()
                        .map(|&i| pool[i].as_str())
                        .collect::<Vec<_>>()
                        .join("\n");
                    if newline && !t.is_empty() {
                        t.push('\n');
                    }
                    t
                };
                let (old, new) = (join(&old), join(&new));
                let (o, n) = (&sides[swap], &sides[1 - swap]);
                let version = |content, secrets| Version { content, secrets };
                for (old_v, new_v) in [
                    (Some(version(&old, o)), Some(version(&new, n))),
                    (None, Some(version(&new, n))),
                    (Some(version(&old, o)), None),
                ]
                .into_iter()
                .filter(|_| both)
                .chain([(Some(version(&old, o)), Some(version(&new, n)))])
                {
                    let ours = file(
                        &kinds[kind],
                        old_v.as_ref().map(|v| version(v.content, v.secrets)),
                        new_v.as_ref().map(|v| version(v.content, v.secrets)),
                        "x",
                    );
                    let theirs = reference::file(&kinds[kind], old_v, new_v, "x");
                    prop_assert_eq!(ours, theirs, "old {:?} new {:?}", old, new);
                }
                Ok(())
            })
            .unwrap();
    }

    /// The implementation before the borrowed lines and the candidates: the oracle
    /// of `the_redaction_is_the_one_it_replaced`.
    mod reference {
        use super::super::*;
        use std::collections::BTreeSet;

        pub trait Lines {
            fn ref_lines(&self, text: &str) -> Vec<Line>;
        }

        impl Lines for Redactor {
            /// The lines of `text` with every secret value replaced: each with the number of the
            /// line of `text` it starts on (a value spanning lines becomes one `(secret)`) and
            /// whether it held one. Overlapping values are hidden together (the union of every
            /// match), so no part of one is left.
            fn ref_lines(&self, text: &str) -> Vec<Line> {
                let mut found = self.matches(text);
                found.sort_unstable();
                let mut spans: Vec<(usize, usize)> = Vec::new();
                for (start, end) in found {
                    match spans.last_mut() {
                        Some(last) if start <= last.1 => last.1 = last.1.max(end),
                        _ => spans.push((start, end)),
                    }
                }
                let mut out = Vec::new();
                let mut cur = Line {
                    number: 1,
                    text: String::new(),
                    secret: false,
                    skipped: 0,
                };
                let mut at = 0;
                for (start, end) in spans {
                    plain(&text[at..start], &mut cur, &mut out);
                    cur.text.push_str(SECRET);
                    cur.secret = true;
                    // A value spanning lines: the next line is numbered as in `text`.
                    cur.skipped += text[start..end].matches('\n').count();
                    at = end;
                }
                plain(&text[at..], &mut cur, &mut out);
                if !cur.text.is_empty() {
                    out.push(cur);
                }
                out
            }
        }

        /// Adds `segment` (no secret in it) to the current line, ending a line at each newline.
        fn plain(segment: &str, cur: &mut Line, out: &mut Vec<Line>) {
            for (i, part) in segment.split('\n').enumerate() {
                if i > 0 {
                    let next = Line {
                        number: cur.number + cur.skipped + 1,
                        text: String::new(),
                        secret: false,
                        skipped: 0,
                    };
                    out.push(std::mem::replace(cur, next));
                }
                cur.text.push_str(part);
            }
        }

        /// One line as shown.
        pub struct Line {
            /// Its number in the text it comes from, from 1.
            number: usize,
            text: String,
            /// It held a secret's value.
            secret: bool,
            /// The lines of the text a secret's value spanned into it.
            skipped: usize,
        }

        /// What the new side tells about the old one's lines (borrowed from them).
        struct Carried<'a> {
            /// The shown lines of the new side: an old line equal to one shows nothing new.
            shown: BTreeSet<&'a str>,
            /// The keys whose value carries a secret.
            keys: BTreeSet<String>,
            /// Every key of the new side.
            all_keys: BTreeSet<String>,
            /// The numbers of the lines that carry a secret.
            numbers: BTreeSet<usize>,
            /// Of a line carrying a secret without a key, its beginning up to the secret
            /// (`stats auth admin:`).
            stems: Vec<String>,
            /// Every line of the file is secret (generated key material).
            every: bool,
        }

        impl<'a> Carried<'a> {
            fn of(lines: &'a [Line], every: bool) -> Carried<'a> {
                let mut keys = Keys::default();
                let mut c = Carried {
                    shown: BTreeSet::new(),
                    keys: BTreeSet::new(),
                    all_keys: BTreeSet::new(),
                    numbers: BTreeSet::new(),
                    stems: Vec::new(),
                    every,
                };
                for l in lines {
                    c.shown.insert(&l.text);
                    let key = keys.of(&l.text);
                    if let Some(k) = &key {
                        c.all_keys.insert(k.clone());
                    }
                    if !l.secret {
                        continue;
                    }
                    c.numbers.insert(l.number);
                    match key {
                        Some(k) => {
                            c.keys.insert(k);
                        }
                        None => {
                            let stem = l.text.split(SECRET).next().unwrap_or("").trim_start();
                            if !stem.trim().is_empty() {
                                c.stems.push(stem.to_string());
                            }
                        }
                    }
                }
                c
            }

            /// Whether the old side's `line`, whose key is `key`, may hold a secret not known
            /// by value.
            fn hides(&self, line: &Line, key: Option<&str>) -> bool {
                if line.secret || self.shown.contains(line.text.as_str()) {
                    return false;
                }
                if self.every {
                    return true;
                }
                match key {
                    Some(k) if self.all_keys.contains(k) => self.keys.contains(k),
                    // No key, or one the new side does not have (an option no longer written,
                    // or not a key at all: a base64 value's `==`).
                    _ => {
                        self.numbers.contains(&line.number) || {
                            let t = line.text.trim_start();
                            self.stems.iter().any(|s| t.starts_with(s.as_str()))
                        }
                    }
                }
            }
        }

        /// One side of a file: its content and the secrets known to it.

        /// The old and new content of one file as a report shows them (see the module): `old`
        /// is `None` for a file created, `new` for one deleted; `whose` names the old side in
        /// the line that replaces a hidden one (`the host's file`).
        pub fn file(
            kind: &FileKind,
            old: Option<Version<'_>>,
            new: Option<Version<'_>>,
            whose: &str,
        ) -> (String, String) {
            let every = matches!(kind, FileKind::Key { .. });
            let (new_lines, after) = match &new {
                Some(v) => {
                    let text = crate::diff::shown(kind, v.content);
                    let lines = v.secrets.ref_lines(&text);
                    let after = join(&lines, &text);
                    (lines, after)
                }
                None => (Vec::new(), String::new()),
            };
            let Some(old) = old else {
                return (String::new(), after);
            };
            let carried = Carried::of(&new_lines, every);
            let text = crate::diff::shown(kind, old.content);
            let mut keys = Keys::default();
            let mut key = String::new();
            let mut lines = old.secrets.ref_lines(&text);
            for l in lines.iter_mut() {
                let has_key = keys.key_into(&l.text, &mut key);
                if carried.hides(l, has_key.then_some(key.as_str())) {
                    l.text = format!("(line {} of {whose} hidden: it held a secret)", l.number);
                }
            }
            (join(&lines, &text), after)
        }

        /// The lines joined, with a final newline if `source` has one.
        fn join(lines: &[Line], source: &str) -> String {
            let mut out = String::with_capacity(source.len());
            for (i, l) in lines.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&l.text);
            }
            if source.ends_with('\n') && !lines.is_empty() {
                out.push('\n');
            }
            out
        }
    }
}
