//! Facts: what a host actually has of what provision manages, and the commands that
//! read them. One batched command stats and hashes every managed path and lists the
//! managed containers; a second, only when some files differ, fetches those files'
//! contents for the plan's diffs. Pure: the commands are run by a [`crate::host::Host`],
//! and their output is parsed here.

use std::collections::BTreeMap;

use crate::state::{HostState, Plane};
use crate::transport::{shell_quote, shell_quote_all};

/// What a managed path is on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualPath {
    pub kind: String,
    pub mode: u32,
    pub uid: String,
    pub gid: String,
    pub user: String,
    pub group: String,
    pub sha256: Option<String>,
}

impl ActualPath {
    pub fn is_dir(&self) -> bool {
        self.kind == "directory"
    }
    pub fn is_file(&self) -> bool {
        self.kind == "regular file" || self.kind == "regular empty file"
    }
    /// Whether its owner is `user` and its group `group` (names or numbers, as the
    /// inventory and catalogue write them).
    pub fn owned_by(&self, user: &str, group: &str) -> bool {
        (user == self.user || user == self.uid) && (group == self.group || group == self.gid)
    }
}

/// A managed container on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualContainer {
    pub state: String,
    pub config_hash: String,
    /// podman's status line, e.g. `Up 2 minutes (healthy)`.
    pub status: String,
}

/// What a container's healthcheck last said, from podman's status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Its healthcheck failed its retries.
    Unhealthy,
    /// Its healthcheck has not passed since the container started.
    Starting,
    /// No healthcheck, or none reported (a container read from the running stamp,
    /// which is trusted only when no stamped container is unhealthy or starting).
    Unknown,
}

impl Health {
    pub fn word(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Starting => "starting",
            Health::Unknown => "none",
        }
    }
}

impl ActualContainer {
    /// The health in its status line: `Up 2 minutes (healthy)`.
    pub fn health(&self) -> Health {
        // `(unhealthy)` before `(healthy)`: neither is a substring of the other with
        // the parentheses, but the order keeps it obvious.
        if self.status.contains("(unhealthy)") {
            Health::Unhealthy
        } else if self.status.contains("(healthy)") {
            Health::Healthy
        } else if self.status.contains("(starting)") {
            Health::Starting
        } else {
            Health::Unknown
        }
    }
}

/// A host's actual state.
#[derive(Debug, Clone, Default)]
pub struct ActualHost {
    pub paths: BTreeMap<String, ActualPath>,
    pub containers: BTreeMap<String, ActualContainer>,
    /// Contents of the files whose hash differs from the desired one.
    pub contents: BTreeMap<String, Vec<u8>>,
    /// Whether the containers were read from the stamp apply left (every stamped
    /// container still running under the same id) rather than from `podman ps`.
    pub from_stamp: bool,
    /// The tasks that succeeded on the host, by id, with the inputs they ran with
    /// (recorded on the undercloud; filled in by the survey).
    pub tasks: BTreeMap<String, TaskRun>,
    /// The files found in the folders that hold only their desired files
    /// ([`HostState::exact_dirs`]).
    pub listed: Vec<String>,
}

/// A task's last success on a host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskRun {
    pub image: String,
    pub definition_hash: String,
    pub files_hash: String,
    /// The hosts of the services whose hosts are its input, when it ran.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub hosts_of: std::collections::BTreeMap<String, Vec<String>>,
    /// RFC 3339, UTC.
    pub time: String,
    pub run_id: String,
}

/// The command that writes the running stamp of a host of `plane` from podman.
pub fn stamp_command(plane: Plane) -> String {
    format!(
        "podman ps --filter label=managed_by=provision --filter status=running --no-trunc \
           --format '{{{{.Names}}}} {{{{.ID}}}} {{{{index .Labels \"provision.config_hash\"}}}}' > {s}.tmp \
         && mv {s}.tmp {s}",
        s = plane.running_stamp()
    )
}

/// Where podman (root, default run root) keeps each container's run files: its health
/// log, `<this>/<id>/healthcheck.log` (`{"Status":"healthy",...}`), and the pid of its
/// process, `<this>/<id>/userdata/pidfile`.
const CONTAINER_RUN_DIRS: &str = "/run/containers/storage/overlay-containers";

const STAMP_BEGIN: &str = "--- running stamp ---";
const STAMP_END: &str = "--- end running stamp ---";

impl ActualHost {
    /// A digest of what was found (paths with kind, mode, owner and hash; containers
    /// with state and config hash): equal digests mean nothing managed has changed.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (p, a) in &self.paths {
            h.update(
                format!(
                    "P {p} {} {:o} {}:{} {}\n",
                    a.kind,
                    a.mode,
                    a.uid,
                    a.gid,
                    a.sha256.as_deref().unwrap_or("-")
                )
                .as_bytes(),
            );
        }
        for (n, c) in &self.containers {
            h.update(format!("C {n} {} {}\n", c.state, c.config_hash).as_bytes());
        }
        for (id, t) in &self.tasks {
            h.update(
                format!(
                    "T {id} {} {} {} {:?}\n",
                    t.image, t.definition_hash, t.files_hash, t.hosts_of
                )
                .as_bytes(),
            );
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

const PODMAN_BEGIN: &str = "--- podman ps ---";
const PODMAN_END: &str = "--- end podman ps ---";

/// The managed containers in `podman ps -a --format json` output (podman 4: `Names` a
/// list, `State` a word such as `running`, `Status` e.g. `Up 2 minutes (healthy)`).
fn parse_podman_json(text: &str) -> BTreeMap<String, ActualContainer> {
    let mut out = BTreeMap::new();
    let Ok(serde_json::Value::Array(items)) =
        serde_json::from_str::<serde_json::Value>(text.trim())
    else {
        return out;
    };
    for c in items {
        let name = c["Names"]
            .as_array()
            .and_then(|n| n.first())
            .and_then(|n| n.as_str())
            .or_else(|| c["Names"].as_str());
        let Some(name) = name else { continue };
        out.insert(
            name.to_string(),
            ActualContainer {
                state: c["State"].as_str().unwrap_or("unknown").to_string(),
                config_hash: c["Labels"]["provision.config_hash"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                status: c["Status"].as_str().unwrap_or("").to_string(),
            },
        );
    }
    out
}

/// The quick check and its record, one POSIX awk (mawk, gawk and the one true awk run
/// it) on `stat`'s lines of the files (`S`, path, kind, mode, uid, gid, user, group,
/// `size:inode:mtime:ctime`), so that a host whose files are all as recorded runs no
/// other process:
/// - each line is passed through; for a regular file whose stat equals the one the
///   stamp (`-v stamp=`, or none) recorded, the recorded hash is printed as `sha256sum`
///   would; the other regular files are hashed by one `sha256sum`, whose lines are
///   printed too;
/// - with `-v out=` (the stamp to record), the trusted entries and those of the files
///   hashed now whose ctime is more than a second in the past are written there, mode
///   0600, in the stat's order, only when that differs from what the stamp holds (a
///   no-op apply writes nothing). A file changed within the same timestamp tick as its
///   read could keep its stat through a second write: it is hashed again next time, as
///   git does with a racy index entry.
const QUICK_CHECK: &str = r#"function q(s) { gsub(/'/, "'\\''", s); return "'" s "'" }
BEGIN { FS = "\t"; old = ""; got = -1; src = stamp; if (src == "") src = out
  if (src != "") { while ((got = (getline l < src)) > 0) { old = old l "\n"
      if (stamp != "") { n = split(l, f, "\t"); if (n == 3 && length(f[3]) == 64) { st[f[1]] = f[2]; h[f[1]] = f[3] } } }
    close(src) } }
$1 == "S" { print
  if ($3 == "regular file" || $3 == "regular empty file") {
    i++; at[$2] = i; sv[$2] = $9
    if (($2 in st) && st[$2] == $9) { print h[$2] "  " $2; e[i] = $2 "\t" $9 "\t" h[$2] "\n" } else todo = todo " " q($2)
  } }
END {
  if (todo != "") {
    if (out != "") { d = "date +%s"; d | getline now; close(d) }
    c = "sha256sum --" todo " 2>/dev/null"
    while ((c | getline l) > 0) { print l
      if (out != "" && length(l) > 66 && substr(l, 65, 2) == "  ") { p = substr(l, 67)
        if (p in at) { split(sv[p], t, ":"); if (t[4] + 0 < now - 1) e[at[p]] = p "\t" sv[p] "\t" substr(l, 1, 64) "\n" } } }
    close(c) }
  if (out != "") { r = ""; for (j = 1; j <= i; j++) if (j in e) r = r e[j]
    if (r != old || got < 0) { w = "umask 077; rm -f " q(out ".tmp") "; cat > " q(out ".tmp") " && mv -f " q(out ".tmp") " " q(out); printf "%s", r | w; close(w) } } }"#;

const STAT: &str = "S\t%n\t%F\t%a\t%u\t%g\t%U\t%G\t%s:%i:%.9Y:%.9Z";

/// The part of [`gather_command`] that stats and hashes `files`: with
/// [`ReadFacts::quick_check`], the stamp at `stamp` stands for the hash of each file
/// whose stat it recorded; with [`ReadFacts::record_files`], the stamp is rewritten
/// when it would change. Two processes (`stat`, `awk`) when every file is as
/// recorded: this runs on every host at every plan and apply.
fn hash_command(files: &[&str], how: ReadFacts, stamp: &str) -> String {
    if files.is_empty() {
        return String::new();
    }
    let fl = shell_quote_all(files);
    if !how.quick_check && !how.record_files {
        return format!("stat -c '{STAT}' -- {fl} 2>/dev/null; sha256sum -- {fl} 2>/dev/null; ");
    }
    let st = shell_quote(stamp);
    format!(
        "stat -c '{STAT}' -- {fl} 2>/dev/null | awk -v stamp={src} -v out={out} {a}; ",
        src = if how.quick_check {
            st.clone()
        } else {
            "''".to_string()
        },
        out = if how.record_files {
            st
        } else {
            "''".to_string()
        },
        a = shell_quote(QUICK_CHECK),
    )
}

/// The one command that reads everything about `files` and `dirs`: one `stat` of all,
/// one `sha256sum` of the files (with [`ReadFacts::quick_check`], only of those whose
/// stat differs from the files stamp's record), one `podman ps` (or the running stamp).
pub fn gather_command(files: &[&str], dirs: &[&str], how: ReadFacts, plane: Plane) -> String {
    let dl = shell_quote_all(dirs);
    let stat_dirs = if dirs.is_empty() {
        String::new()
    } else {
        format!("stat -c '{STAT}' -- {dl} 2>/dev/null; ")
    };
    let hash = hash_command(files, how, plane.files_stamp());
    let podman = format!(
        "command -v podman >/dev/null 2>&1 && {{ echo '{PODMAN_BEGIN}'; \
           podman ps -a --filter label=managed_by=provision --format json 2>/dev/null; echo; echo '{PODMAN_END}'; }}"
    );
    // The stamp, if every container in it still runs under the same id (runc or crun
    // holds its state, and the process of podman's pidfile of it lives) and none of
    // them is unhealthy or not yet healthy (podman's health log of it, where it has
    // one, begins `{"Status":"healthy"`): else podman is asked, whose status line
    // carries the health. Shell builtins only (`read`, `case`, `[`): no process per
    // container, where a grep, head and tr of each took 0.1 s of a controller's
    // 27 containers, on every host at once.
    let containers = if how.trust_stamp {
        format!(
            "ok=0; if [ -s {s} ]; then ok=1; while read -r n id h; do \
               [ -e /run/runc/$id/state.json ] || [ -e /run/crun/$id/status ] || {{ ok=0; break; }}; \
               pid=; read -r pid < {CONTAINER_RUN_DIRS}/$id/userdata/pidfile 2>/dev/null; \
               case $pid in ''|*[!0-9]*) ok=0; break ;; esac; \
               [ -d /proc/$pid ] || {{ ok=0; break; }}; \
               hl={CONTAINER_RUN_DIRS}/$id/healthcheck.log; \
               if [ -e \"$hl\" ]; then l=; read -r l < \"$hl\"; \
                 case $l in '{{\"Status\":\"healthy\"'*) ;; *) ok=0; break ;; esac; fi; \
             done < {s}; fi; \
             if [ $ok = 1 ]; then echo '{STAMP_BEGIN}'; while read -r n id h; do echo \"$n $id $h\"; done < {s}; \
               echo '{STAMP_END}'; else {podman}; fi",
            s = plane.running_stamp()
        )
    } else {
        podman
    };
    format!("{stat_dirs}{hash}{containers}; true")
}

/// [`gather_command`] for everything `desired` manages.
pub fn host_command(desired: &HostState, how: ReadFacts) -> String {
    let files: Vec<&str> = desired.files.keys().map(String::as_str).collect();
    let dirs: Vec<&str> = desired
        .directories
        .iter()
        .map(|d| d.path.as_str())
        .collect();
    let gather = gather_command(&files, &dirs, how, desired.plane);
    if desired.exact_dirs.is_empty() {
        return gather;
    }
    // Every file of the folders that hold only their desired files (names on one line
    // each; a name with a newline is listed as `?` and removed by no one).
    let exact: Vec<String> = desired.exact_dirs.iter().map(|d| shell_quote(d)).collect();
    format!(
        "{gather}; find {} -mindepth 1 -maxdepth 1 ! -type d -printf 'X\\t%p\\n' 2>/dev/null; true",
        exact.join(" ")
    )
}

/// Parses the output of [`gather_command`].
pub fn parse_gather(out: &str) -> ActualHost {
    let mut host = ActualHost::default();
    if let Some((files, rest)) = out.split_once(STAMP_BEGIN) {
        for line in rest.split(STAMP_END).next().unwrap_or("").lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [name, _id, hash] = f.as_slice() {
                host.containers.insert(
                    name.to_string(),
                    ActualContainer {
                        state: "running".into(),
                        config_hash: hash.to_string(),
                        status: String::new(),
                    },
                );
            }
        }
        host.from_stamp = true;
        return parse_paths(host, files);
    }
    let (out, podman) = match out.split_once(PODMAN_BEGIN) {
        Some((files, rest)) => (files, rest.split(PODMAN_END).next().unwrap_or("")),
        None => (out, ""),
    };
    host.containers = parse_podman_json(podman);
    parse_paths(host, out)
}

fn parse_paths(mut host: ActualHost, out: &str) -> ActualHost {
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["S", path, kind, mode, uid, gid, user, group, ..] => {
                host.paths.insert(
                    path.to_string(),
                    ActualPath {
                        kind: kind.to_string(),
                        mode: u32::from_str_radix(mode, 8).unwrap_or(0),
                        uid: uid.to_string(),
                        gid: gid.to_string(),
                        user: user.to_string(),
                        group: group.to_string(),
                        sha256: None,
                    },
                );
            }
            ["X", path] => host.listed.push(path.to_string()),
            [one] => {
                // sha256sum: "<64 hex>  <path>"
                if let Some((sha, path)) = one.split_once("  ") {
                    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                        if let Some(p) = host.paths.get_mut(path) {
                            p.sha256 = Some(sha.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    host
}

/// The paths of `desired` whose content differs from the desired one (their hash is
/// another): the files whose contents a plan fetches for its diffs.
pub fn differing_files<'a>(desired: &'a HostState, actual: &ActualHost) -> Vec<&'a str> {
    desired
        .files
        .values()
        .filter(|f| {
            actual
                .paths
                .get(&f.path)
                .and_then(|a| a.sha256.as_deref())
                .map(|h| h != f.sha256())
                .unwrap_or(false)
        })
        .map(|f| f.path.as_str())
        .collect()
}

/// The command that prints each of `paths` as its size in bytes on a line, then its
/// content; `-` on a line for one that is gone (removed since the facts were read), so
/// that the files after it are still read as theirs.
pub fn contents_command(paths: &[&str]) -> String {
    paths
        .iter()
        .map(|p| {
            format!(
                "if [ -f {q} ] && [ -r {q} ]; then wc -c < {q}; cat {q}; else echo -; fi",
                q = shell_quote(p)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses the output of [`contents_command`] into `actual.contents`.
pub fn parse_contents(actual: &mut ActualHost, paths: &[&str], out: &[u8]) {
    let mut rest = out;
    for path in paths {
        let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
            break;
        };
        let head = String::from_utf8_lossy(&rest[..nl]).trim().to_string();
        rest = &rest[nl + 1..];
        if head == "-" {
            continue; // gone: no content
        }
        let size: usize = head.parse().unwrap_or(0);
        let take = size.min(rest.len());
        actual
            .contents
            .insert(path.to_string(), rest[..take].to_vec());
        rest = &rest[take..];
    }
}

/// How a host's facts are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadFacts {
    /// Fetch the contents of the files that differ (for the plan's diffs): a second
    /// round trip, only when some differ.
    pub contents: bool,
    /// Read the containers from the running stamp while it holds
    /// ([`Plane::running_stamp`]), else from `podman ps`.
    pub trust_stamp: bool,
    /// Hash only the files whose stat differs from the files stamp's record
    /// ([`Plane::files_stamp`]); the others keep their recorded hash. `plan
    /// --full-check` turns it off.
    pub quick_check: bool,
    /// Rewrite the files stamp from what this read found (apply's survey; a plan
    /// writes nothing on a host).
    pub record_files: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn parses_stat_hash_and_podman_lines() {
        let out = "S\t/etc/overcloud/a.conf\tregular file\t640\t0\t42436\troot\tnova\n\
                   S\t/var/log/overcloud/nova\tdirectory\t750\t42436\t42436\tnova\tnova\n\
                   abc123abc123abc123abc123abc123abc123abc123abc123abc123abc123abcd  /etc/overcloud/a.conf\n\
                   --- podman ps ---\n[{\"Names\": [\"nova_compute\"], \"State\": \"running\", \"Status\": \"Up 2 minutes (healthy)\",\n\
                   \"Labels\": {\"managed_by\": \"provision\", \"provision.config_hash\": \"deadbeef\"}}]\n\n--- end podman ps ---\n";
        let h = parse_gather(out);
        let a = &h.paths["/etc/overcloud/a.conf"];
        assert_eq!(
            (a.mode, a.uid.as_str(), a.gid.as_str(), a.sha256.as_deref()),
            (
                0o640,
                "0",
                "42436",
                Some("abc123abc123abc123abc123abc123abc123abc123abc123abc123abc123abcd")
            )
        );
        assert_eq!(h.paths["/var/log/overcloud/nova"].kind, "directory");
        assert_eq!(
            h.containers["nova_compute"],
            ActualContainer {
                state: "running".into(),
                config_hash: "deadbeef".into(),
                status: "Up 2 minutes (healthy)".into(),
            }
        );
    }

    #[test]
    fn a_trusted_stamp_stands_for_podman_ps() {
        let out = "S\t/etc/a\tregular file\t640\t0\t0\troot\troot\n\
                   --- running stamp ---\nkeystone 0123abcd hash1\nhaproxy ffff0000 hash2\n\
                   --- end running stamp ---\n";
        let h = parse_gather(out);
        assert!(h.from_stamp);
        assert_eq!(h.paths["/etc/a"].mode, 0o640);
        assert_eq!(h.containers.len(), 2);
        assert_eq!(
            (
                h.containers["keystone"].state.as_str(),
                h.containers["keystone"].config_hash.as_str()
            ),
            ("running", "hash1")
        );
        let how = ReadFacts {
            trust_stamp: true,
            ..ReadFacts::default()
        };
        let c = gather_command(&["/etc/a"], &[], how, Plane::Overcloud);
        assert!(
            c.contains("/run/runc/$id/state.json") && c.contains("podman ps -a"),
            "{c}"
        );
        crate::host::script::assert_sh_syntax(&c);
        assert!(!parse_gather("S\t/etc/a\tregular file\t640\t0\t0\troot\troot\n").from_stamp);
    }

    #[test]
    fn the_command_quotes_paths() {
        let c = gather_command(
            &["/etc/a b"],
            &["/var/x"],
            ReadFacts::default(),
            Plane::Overcloud,
        );
        assert!(c.contains("sha256sum -- '/etc/a b' 2>/dev/null"), "{c}");
        assert!(c.contains("'/etc/a b'"), "{c}");
        assert!(
            c.contains("podman ps -a --filter label=managed_by=provision --format json"),
            "{c}"
        );
    }

    /// Runs the real hash command under each awk this machine has (mawk, gawk): a
    /// recorded hash stands while the stat is unchanged and only then; a racy entry is
    /// not recorded.
    #[test]
    fn the_quick_check_trusts_only_an_unchanged_stat() {
        use std::os::unix::fs::MetadataExt;
        let awks: Vec<&str> = ["/usr/bin/mawk", "/usr/bin/gawk", "/usr/bin/original-awk"]
            .into_iter()
            .filter(|a| std::path::Path::new(a).exists())
            .collect();
        assert!(!awks.is_empty(), "no awk to run the quick check");
        for awk in awks {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("bin");
            std::fs::create_dir(&bin).unwrap();
            std::os::unix::fs::symlink(awk, bin.join("awk")).unwrap();
            let stamp = dir.path().join("stamp");
            let stamp_s = stamp.display().to_string();
            let (a, b) = (dir.path().join("a.conf"), dir.path().join("b.conf"));
            std::fs::write(&a, "alpha\n").unwrap();
            std::fs::write(&b, "beta\n").unwrap();
            let (a_s, b_s) = (a.display().to_string(), b.display().to_string());
            let files = [a_s.as_str(), b_s.as_str()];
            let run = |how: ReadFacts| -> ActualHost {
                let out = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(hash_command(&files, how, &stamp_s))
                    .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                    .output()
                    .unwrap();
                assert!(
                    out.stderr.is_empty(),
                    "{awk}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                parse_gather(&String::from_utf8_lossy(&out.stdout))
            };
            let sha = |s: &str| crate::state::hex(&<sha2::Sha256 as sha2::Digest>::digest(s));
            let record = ReadFacts {
                quick_check: true,
                record_files: true,
                ..ReadFacts::default()
            };
            let quick = ReadFacts {
                quick_check: true,
                ..ReadFacts::default()
            };
            // Just written: hashed, but racy (ctime within the last second): not recorded.
            let h = run(record);
            assert_eq!(
                h.paths[&a_s].sha256.as_deref(),
                Some(sha("alpha\n").as_str()),
                "{awk}"
            );
            assert_eq!(
                std::fs::read_to_string(&stamp).unwrap(),
                "",
                "{awk}: racy entries recorded"
            );
            // Set both ctimes back past the racy second: wait it out, then record.
            std::thread::sleep(std::time::Duration::from_millis(2100));
            run(record);
            let rec = std::fs::read_to_string(&stamp).unwrap();
            assert_eq!(rec.lines().count(), 2, "{awk}: {rec}");
            // Hashes of files that hold secrets: root's only (a weak password could be
            // guessed offline against a known template).
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&stamp).unwrap().permissions().mode() & 0o777,
                0o600,
                "{awk}"
            );
            let m = std::fs::metadata(&a).unwrap();
            assert!(
                rec.contains(&format!("{a_s}\t{}:{}:", m.len(), m.ino()))
                    && rec.contains(&sha("alpha\n")),
                "{awk}: {rec}"
            );
            // Recording again with nothing changed leaves the stamp as it was: the same
            // inode and modification time (a no-op apply writes nothing).
            let before = std::fs::metadata(&stamp).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            run(record);
            let after = std::fs::metadata(&stamp).unwrap();
            assert_eq!(
                (after.ino(), after.modified().unwrap()),
                (before.ino(), before.modified().unwrap()),
                "{awk}: the stamp was rewritten with nothing changed"
            );
            assert_eq!(std::fs::read_to_string(&stamp).unwrap(), rec, "{awk}");
            // A planted hash shows through while the stat is unchanged: it is trusted.
            let planted = rec.replace(&sha("beta\n"), &"0".repeat(64));
            std::fs::write(&stamp, &planted).unwrap();
            assert_eq!(
                run(quick).paths[&b_s].sha256.as_deref(),
                Some("0".repeat(64).as_str()),
                "{awk}"
            );
            // ...and a full check (no quick check) sees past it.
            assert_eq!(
                run(ReadFacts::default()).paths[&b_s].sha256.as_deref(),
                Some(sha("beta\n").as_str()),
                "{awk}"
            );
            // An edit in place that keeps the size and puts the mtime back is still seen
            // (its ctime moved); so is a file replaced under the same name (new inode).
            let mtime = std::fs::metadata(&b).unwrap().modified().unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&b)
                .unwrap()
                .write_all(b"BETA\n")
                .unwrap();
            let f = std::fs::File::options().write(true).open(&b).unwrap();
            f.set_modified(mtime).unwrap();
            drop(f);
            assert_eq!(std::fs::metadata(&b).unwrap().modified().unwrap(), mtime);
            assert_eq!(
                run(quick).paths[&b_s].sha256.as_deref(),
                Some(sha("BETA\n").as_str()),
                "{awk}"
            );
            let ino = std::fs::metadata(&a).unwrap().ino();
            let tmp = dir.path().join("a.new");
            std::fs::write(&tmp, "ALPHA\n").unwrap();
            std::fs::rename(&tmp, &a).unwrap();
            assert_ne!(std::fs::metadata(&a).unwrap().ino(), ino);
            assert_eq!(
                run(quick).paths[&a_s].sha256.as_deref(),
                Some(sha("ALPHA\n").as_str()),
                "{awk}"
            );
            // A plan (quick check, no recording) leaves the stamp as it was.
            assert_eq!(std::fs::read_to_string(&stamp).unwrap(), planted, "{awk}");
        }
    }

    /// Names with a quote and spaces go through the quick check's own `sha256sum` and
    /// its stamp; recording without the quick check (`plan --full-check` semantics for
    /// the read, apply's for the record) replaces a stale stamp.
    #[test]
    fn the_quick_check_quotes_names_and_replaces_a_stale_stamp() {
        let awks: Vec<&str> = ["/usr/bin/mawk", "/usr/bin/gawk", "/usr/bin/original-awk"]
            .into_iter()
            .filter(|a| std::path::Path::new(a).exists())
            .collect();
        assert!(!awks.is_empty(), "no awk to run the quick check");
        let sha = |s: &str| crate::state::hex(&<sha2::Sha256 as sha2::Digest>::digest(s));
        for awk in awks {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("bin");
            std::fs::create_dir(&bin).unwrap();
            std::os::unix::fs::symlink(awk, bin.join("awk")).unwrap();
            let odd = dir.path().join("it's a 'file'.conf");
            std::fs::write(&odd, "odd\n").unwrap();
            let odd_s = odd.display().to_string();
            let stamp = dir.path().join("stamp");
            let stamp_s = stamp.display().to_string();
            std::fs::write(
                &stamp,
                "/gone\t1:2:3:4\t".to_string() + &"1".repeat(64) + "\n",
            )
            .unwrap();
            let run = |how: ReadFacts| -> ActualHost {
                let out = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(hash_command(&[odd_s.as_str()], how, &stamp_s))
                    .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                    .output()
                    .unwrap();
                assert!(
                    out.stderr.is_empty(),
                    "{awk}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                parse_gather(&String::from_utf8_lossy(&out.stdout))
            };
            std::thread::sleep(std::time::Duration::from_millis(2100));
            let record_only = ReadFacts {
                record_files: true,
                ..ReadFacts::default()
            };
            let h = run(record_only);
            assert_eq!(
                h.paths[&odd_s].sha256.as_deref(),
                Some(sha("odd\n").as_str()),
                "{awk}"
            );
            let rec = std::fs::read_to_string(&stamp).unwrap();
            assert!(
                !rec.contains("/gone"),
                "{awk}: the stale entry stayed: {rec}"
            );
            assert!(
                rec.starts_with(&format!("{odd_s}\t")) && rec.contains(&sha("odd\n")),
                "{awk}: {rec}"
            );
            // Trusted from the stamp: a planted hash shows that no sha256sum ran.
            std::fs::write(&stamp, rec.replace(&sha("odd\n"), &"2".repeat(64))).unwrap();
            let quick = ReadFacts {
                quick_check: true,
                ..ReadFacts::default()
            };
            assert_eq!(
                run(quick).paths[&odd_s].sha256.as_deref(),
                Some("2".repeat(64).as_str()),
                "{awk}"
            );
        }
    }

    #[test]
    fn a_file_gone_between_the_two_reads_leaves_the_others_theirs() {
        let mut actual = ActualHost::default();
        let paths = ["/a", "/gone", "/b"];
        parse_contents(&mut actual, &paths, b"2\nA\n-\n3\nBB\n");
        assert_eq!(actual.contents["/a"], b"A\n");
        assert!(!actual.contents.contains_key("/gone"));
        assert_eq!(actual.contents["/b"], b"BB\n");
        let cmd = contents_command(&paths);
        assert!(cmd.contains("else echo -; fi"), "{cmd}");
    }
}
