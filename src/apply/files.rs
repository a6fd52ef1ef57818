//! The files side of apply: which files and directories differ from the desired ones
//! (content, mode, owner), and the commands that fix them. Pure; run by [`super`].

use crate::plan::gather::ActualHost;
use crate::state::{DesiredDir, DesiredFile, HostState};
use crate::transport::shell_quote;

fn owner_matches(want: &str, name: &str, id: &str) -> bool {
    want == name || want == id
}

/// The files whose content, mode or owner differ from the desired ones.
pub fn files_to_write<'a>(desired: &'a HostState, actual: &ActualHost) -> Vec<&'a DesiredFile> {
    desired
        .files
        .values()
        .filter(|f| match actual.paths.get(&f.path) {
            None => true,
            Some(a) => {
                a.sha256.as_deref() != Some(f.sha256().as_str())
                    || a.mode != f.mode
                    || !owner_matches(&f.owner, &a.user, &a.uid)
                    || !owner_matches(&f.group, &a.group, &a.gid)
            }
        })
        .collect()
}

/// The directories missing or with another mode or owner.
pub fn dirs_to_fix<'a>(desired: &'a HostState, actual: &ActualHost) -> Vec<&'a DesiredDir> {
    desired
        .directories
        .iter()
        .filter(|d| match actual.paths.get(&d.path) {
            None => true,
            Some(a) => {
                a.kind != "directory"
                    || format!("{:o}", a.mode) != d.mode.trim_start_matches('0')
                    || !owner_matches(&d.owner, &a.user, &a.uid)
                    || !owner_matches(&d.group, &a.group, &a.gid)
            }
        })
        .collect()
}

/// One command creating or fixing `dirs`; it stops at the first failure, with that
/// command's error on stderr and a non-zero status. (`set -e` would not do: it ignores
/// failures inside `&&` lists.)
pub fn dirs_script(dirs: &[&DesiredDir]) -> String {
    let cmd: Vec<String> = dirs
        .iter()
        .map(|d| {
            let p = shell_quote(&d.path);
            format!(
                "{{ mkdir -p {p} && chmod {} {p} && chown {}:{} {p}; }} || exit 1",
                shell_quote(&d.mode),
                shell_quote(&d.owner),
                shell_quote(&d.group)
            )
        })
        .collect();
    cmd.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::gather::ActualPath;
    use crate::state::FileKind;

    fn file(path: &str, content: &str) -> DesiredFile {
        DesiredFile {
            path: path.into(),
            content: content.into(),
            mode: 0o640,
            owner: "root".into(),
            group: "42425".into(),
            service: "keystone".into(),
            kind: FileKind::Template {
                template: "x.j2".into(),
            },
            secret: false,
        }
    }

    fn found(sha: &str, mode: u32, group: (&str, &str)) -> ActualPath {
        ActualPath {
            kind: "regular file".into(),
            mode,
            uid: "0".into(),
            gid: group.1.into(),
            user: "root".into(),
            group: group.0.into(),
            sha256: Some(sha.into()),
        }
    }

    #[test]
    fn only_differing_files_are_written() {
        let mut hs = HostState::default();
        for (p, c) in [
            ("/a", "same"),
            ("/b", "new"),
            ("/c", "mode"),
            ("/d", "owner"),
            ("/e", "missing"),
        ] {
            hs.files.insert(p.into(), file(p, c));
        }
        let mut act = ActualHost::default();
        let sha = |p: &str| hs.files[p].sha256();
        act.paths
            .insert("/a".into(), found(&sha("/a"), 0o640, ("keystone", "42425")));
        act.paths
            .insert("/b".into(), found("00", 0o640, ("keystone", "42425")));
        act.paths
            .insert("/c".into(), found(&sha("/c"), 0o644, ("keystone", "42425")));
        act.paths
            .insert("/d".into(), found(&sha("/d"), 0o640, ("root", "0")));
        let w: Vec<&str> = files_to_write(&hs, &act)
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(w, vec!["/b", "/c", "/d", "/e"]);
    }

    #[test]
    fn dirs_script_quotes() {
        let d = DesiredDir {
            path: "/var/log/overcloud/a b".into(),
            mode: "0750".into(),
            owner: "42425".into(),
            group: "42425".into(),
        };
        let s = dirs_script(&[&d, &d]);
        assert_eq!(
            s.lines().next().unwrap(),
            "{ mkdir -p '/var/log/overcloud/a b' && chmod 0750 '/var/log/overcloud/a b' && chown 42425:42425 '/var/log/overcloud/a b'; } || exit 1"
        );
        // A real shell stops at the first failure, with its status and error.
        let bad = DesiredDir {
            path: "/proc/version/x".into(),
            ..d.clone()
        };
        let ok = DesiredDir {
            path: std::env::temp_dir()
                .join("provision-dirs-test")
                .display()
                .to_string(),
            mode: "0755".into(),
            owner: "0".into(),
            group: "0".into(),
        };
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(dirs_script(&[&bad, &ok]))
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("/proc/version"));
    }
}
