//! The shell scripts the SSH host runs for each [`Command`], and the line protocol
//! their output follows. Pure: built here, run by [`super::ssh`], parsed by apply with
//! [`parse_report`]. The fake host ([`super::fake`]) answers in the same protocol.
//!
//! Container scripts print, per podman action, `A<TAB>name<TAB>op<TAB>status<TAB>ms`;
//! on failure its last output lines as `E<TAB>name<TAB>line`; per healthcheck
//! `H<TAB>name<TAB>healthy|unhealthy<TAB>ms`; and for an unhealthy container its last
//! log lines as `L<TAB>name<TAB>line`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Command, StepContainer};
use crate::change::ContainerOp;
use crate::state::{
    safe_container_name, unit_name, ContainerDef, DesiredDir, Plane, TaskDef, UNIT_DIR,
};
use crate::transport::shell_quote;

impl Command<'_> {
    /// The one shell script that does this command on a host.
    pub fn script(&self) -> String {
        match self {
            Command::RemoveContainers { names, plane } => removal_script(names, *plane),
            Command::FixDirectories { dirs } => dirs_script(dirs),
            Command::EnableUnits { units } => format!(
                "systemctl daemon-reload && systemctl enable {}",
                units
                    .iter()
                    .map(|u| shell_quote(u))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Command::RunStep {
                containers,
                health_timeout,
                ..
            } => step_script(containers, *health_timeout),
            Command::RunTask { task } => task_script(task),
            Command::RemoveFiles { paths } => {
                format!("rm -f -- {}", crate::transport::shell_quote_all(paths))
            }
            Command::WriteStamp { plane } => crate::facts::stamp_command(*plane),
            Command::ReadFile { path } => {
                format!("cat {} 2>/dev/null || true", shell_quote(path))
            }
            Command::CheckUndercloud { script } => script.to_string(),
        }
    }
}

/// `podman run` arguments for a definition (after `podman`).
pub fn run_args(def: &ContainerDef) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "run".into(),
        "--detach".into(),
        "--name".into(),
        def.name.clone(),
    ];
    for (k, v) in &def.labels {
        a.push("--label".into());
        a.push(format!("{k}={v}"));
    }
    a.push(format!("--network={}", network_name(def)));
    if def.privileged {
        a.push("--privileged".into());
    }
    if let Some(pid) = &def.pid {
        a.push(format!("--pid={pid}"));
    }
    if let Some(ns) = &def.cgroupns {
        a.push(format!("--cgroupns={ns}"));
    }
    if let Some(user) = &def.user {
        a.push(format!("--user={user}"));
    }
    if !def.restart.is_empty() {
        a.push(format!("--restart={}", def.restart));
    }
    for (name, addr) in &def.hosts {
        a.push(format!("--add-host={name}:{addr}"));
    }
    for (k, v) in &def.environment {
        a.push("--env".into());
        a.push(format!("{k}={v}"));
    }
    for v in &def.volumes {
        a.push("--volume".into());
        a.push(v.clone());
    }
    if let Some(h) = &def.healthcheck {
        a.push(format!("--health-cmd={}", h.test));
        a.push(format!("--health-interval={}", h.interval));
        a.push(format!("--health-timeout={}", h.timeout));
        a.push(format!("--health-retries={}", h.retries));
        a.push(format!("--health-start-period={}", h.start_period));
    }
    a.push(def.image.clone());
    a.extend(def.command.iter().cloned());
    a
}

fn network_name(def: &ContainerDef) -> String {
    serde_json::to_value(def.network)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "host".into())
}

/// Shell helpers of every container script: `act NAME OP CMD...` runs a podman command,
/// prints its `A` line, and on failure its last output lines as `E` lines.
const PRELUDE: &str = r#"set +e
ms() { date +%s%3N; }
act() {
  n=$1; o=$2; shift 2; t=$(ms)
  out=$("$@" 2>&1); rc=$?
  printf 'A\t%s\t%s\t%s\t%s\n' "$n" "$o" "$rc" "$(( $(ms) - t ))"
  [ "$rc" = 0 ] || printf '%s\n' "$out" | tail -n 20 | sed "s|^|E	$n	|"
  return $rc
}
"#;

/// The script that removes containers no longer desired, and their configuration
/// (`<config root>/NAME`, the container definition and its unit; logs stay), on a host
/// of `plane`. Names that are not safe path components are skipped.
pub fn removal_script(names: &[String], plane: Plane) -> String {
    let mut s = String::from(PRELUDE);
    for name in names.iter().filter(|n| safe_container_name(n)) {
        let n = shell_quote(name);
        let unit = format!("{UNIT_DIR}/{}", unit_name(name));
        s.push_str(&format!(
            "if [ -e {unit} ]; then systemctl disable {u} >/dev/null 2>&1; rm -f {unit}; reload=1; fi\n\
             act {n} remove podman rm --force --time 10 --ignore {n} && rm -rf {c}/{n} {d}/{n}.json\n",
            c = plane.config_root(),
            d = shell_quote(plane.container_defs()),
            u = unit_name(name),
        ));
    }
    s.push_str("[ -z \"$reload\" ] || systemctl daemon-reload\n");
    s
}

/// The script for one deploy step on one host: every task, one after the other, then
/// the healthchecks of the containers it (re)started, polled until they pass or
/// `health_timeout` ends; for each that did not pass, its last log lines. A round of
/// healthchecks runs at most `nproc`+1 `podman healthcheck run` at once, and rounds
/// back off (0.2, 0.5, 1, then every 2 s): eleven at once every 0.2 s starved a 1-vCPU
/// VM until every check exceeded its own 10 s timeout (docs/performance.md, the Vagrant
/// lab). Output lines:
/// `A`, `E`, `H<TAB>name<TAB>healthy|unhealthy<TAB>ms`, `L<TAB>name<TAB>line`.
pub fn step_script(containers: &[StepContainer<'_>], health_timeout: Duration) -> String {
    let mut s = String::from(PRELUDE);
    // The step's containers start at once (parallel podman calls are safe and ~1.6x
    // faster than one after the other, lab/README.md); a marker file tells which came
    // up, for the healthchecks.
    s.push_str("d=$(mktemp -d \"${TMPDIR:-/tmp}/provision-step.XXXXXX\") || exit 1\ntrap 'rm -rf \"$d\"' EXIT\n");
    let mut health = Vec::new();
    for c in containers
        .iter()
        .filter(|c| safe_container_name(&c.def.name))
    {
        let name = &c.def.name;
        let n = shell_quote(name);
        let line = match c.op {
            ContainerOp::Create => {
                format!("act {n} create podman {}", quote_all(&run_args(c.def)))
            }
            ContainerOp::Recreate { .. } | ContainerOp::Recover { .. } => format!(
                "act {n} remove podman rm --force --time 10 --ignore {n} && act {n} recreate podman {}",
                quote_all(&run_args(c.def))
            ),
            ContainerOp::Start { .. } => format!("act {n} start podman start {n}"),
            // Nothing to do to it but wait for its healthcheck, below.
            ContainerOp::AwaitHealth { .. } => format!("act {n} check true"),
        };
        s.push_str(&format!("{{ {line} && touch \"$d/up.{name}\"; }} &\n"));
        // Only containers whose podman actions succeeded are waited for.
        if c.def.healthcheck.is_some() {
            health.push(name.clone());
        }
    }
    s.push_str("wait\n");
    if !health.is_empty() {
        s.push_str(&format!(
            r#"pending=""
for c in {names}; do [ -e "$d/up.$c" ] && pending="$pending $c"; done
t0=$(ms); end=$(( $(date +%s) + {secs} ))
j=$(( $(nproc 2>/dev/null || echo 1) + 1 )); round=0
while [ -n "$pending" ]; do
  i=0
  for c in $pending; do
    ( podman healthcheck run "$c" >/dev/null 2>&1 && touch "$d/ok.$c" ) &
    i=$(( i + 1 )); [ "$i" -lt "$j" ] || {{ wait; i=0; }}
  done
  wait
  next=""
  for c in $pending; do
    if [ -e "$d/ok.$c" ]; then printf 'H\t%s\thealthy\t%s\n' "$c" "$(( $(ms) - t0 ))"; else next="$next $c"; fi
  done
  pending=$next
  [ -n "$pending" ] || break
  [ "$(date +%s)" -lt "$end" ] || break
  case $round in 0) sleep 0.2 ;; 1) sleep 0.5 ;; 2) sleep 1 ;; *) sleep 2 ;; esac
  round=$(( round + 1 ))
done
for c in $pending; do
  printf 'H\t%s\tunhealthy\t%s\n' "$c" "$(( $(ms) - t0 ))"
  podman healthcheck run "$c" 2>&1 | tail -n 3 | sed "s/^/L	$c	healthcheck: /"
  podman logs --tail 20 "$c" 2>&1 | sed "s/^/L	$c	/"
done
"#,
            names = health.join(" "),
            secs = health_timeout.as_secs().max(1),
        ));
    }
    s.push_str("true\n");
    s
}

/// `podman run` arguments of a task (after `podman`): removed when it ends, killed by
/// conmon after its timeout, labelled with its id (not `managed_by`: it is no
/// long-running container of the host).
pub fn task_args(t: &TaskDef) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "run".into(),
        "--rm".into(),
        "--replace".into(),
        "--name".into(),
        t.container_name(),
        "--label".into(),
        format!("provision.task={}", t.id),
        "--network=host".into(),
        format!("--timeout={}", t.timeout_secs.max(1)),
    ];
    if let Some(user) = &t.user {
        a.push(format!("--user={user}"));
    }
    if let Some(env) = &t.env_file {
        a.push(format!("--env-file={env}"));
    }
    for v in &t.volumes {
        a.push("--volume".into());
        a.push(v.clone());
    }
    a.push(t.image.clone());
    a.extend(t.command.iter().cloned());
    a
}

/// The script of one task: `podman run --rm --replace`, so that a leftover container of
/// the same name (a killed run) is removed by the run itself, and podman removes the
/// task's container when it ends; only a run that failed (a timeout may leave it) is
/// followed by a removal. One podman call for a task that succeeds, where a removal
/// before and after cost two more, on a host that runs its tasks one after the other.
/// The run reports `A<TAB>id<TAB>task<TAB>status<TAB>ms`, and on failure its last 20
/// output lines as `E` lines.
pub fn task_script(t: &TaskDef) -> String {
    let mut s = String::from(PRELUDE);
    let n = shell_quote(&t.container_name());
    s.push_str(&format!(
        "act {} task timeout {} podman {}
",
        shell_quote(&t.id),
        t.timeout_secs.max(1) + 30,
        quote_all(&task_args(t))
    ));
    s.push_str(&format!(
        "rc=$?; [ $rc = 0 ] || podman rm --force --ignore {n} >/dev/null 2>&1; exit $rc
"
    ));
    s
}

fn quote_all(args: &[String]) -> String {
    crate::transport::shell_quote_all(args)
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

/// What the script reported about one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerReport {
    /// Each podman action: (op, exit status, milliseconds).
    pub actions: Vec<(String, i32, u64)>,
    /// The last output lines of a failed action.
    pub errors: Vec<String>,
    /// `Some(true)` healthy, `Some(false)` unhealthy, `None` not checked; milliseconds
    /// waited.
    pub healthy: Option<(bool, u64)>,
    /// Its last log lines, when unhealthy.
    pub logs: Vec<String>,
}

impl ContainerReport {
    /// Whether every action succeeded and the container is not unhealthy.
    pub fn ok(&self) -> bool {
        self.actions.iter().all(|a| a.1 == 0) && self.healthy.map(|h| h.0).unwrap_or(true)
    }
}

/// Parses a container script's output, by container name.
pub fn parse_report(out: &str) -> BTreeMap<String, ContainerReport> {
    let mut r: BTreeMap<String, ContainerReport> = BTreeMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.splitn(5, '\t').collect();
        match f.as_slice() {
            ["A", name, op, rc, ms] => r.entry(name.to_string()).or_default().actions.push((
                op.to_string(),
                rc.trim().parse().unwrap_or(-1),
                ms.trim().parse().unwrap_or(0),
            )),
            ["E", name, rest @ ..] => r
                .entry(name.to_string())
                .or_default()
                .errors
                .push(rest.join("\t")),
            ["H", name, state, ms] => {
                r.entry(name.to_string()).or_default().healthy =
                    Some((*state == "healthy", ms.trim().parse().unwrap_or(0)))
            }
            ["L", name, rest @ ..] => r
                .entry(name.to_string())
                .or_default()
                .logs
                .push(rest.join("\t")),
            _ => {}
        }
    }
    r
}

/// Asserts that a real `sh` parses `script` (syntax only, nothing runs): for the tests
/// of every module that builds shell.
#[cfg(test)]
pub fn assert_sh_syntax(script: &str) {
    let st = std::process::Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(script)
        .status()
        .expect("sh runs");
    assert!(st.success(), "sh -n refuses:\n{script}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{Healthcheck, NetworkMode};

    fn def(name: &str, step: u8, hash: &str) -> ContainerDef {
        let mut d = ContainerDef::named(name);
        d.step = step;
        d.image = "localhost/provision-lab/keystone:latest".into();
        d.command = vec!["/usr/local/bin/stand-in".into()];
        d.network = NetworkMode::Host;
        d.restart = "always".into();
        d.user = Some("42425".into());
        d.volumes = vec!["/etc/overcloud/k/k.conf:/etc/k/k.conf:ro".into()];
        d.labels.insert("provision.config_hash".into(), hash.into());
        d.labels.insert("managed_by".into(), "provision".into());
        d
    }

    #[test]
    fn run_args_carry_the_definition() {
        let mut d = def("keystone", 2, "abc");
        d.privileged = true;
        d.environment.insert("KOLLA".into(), "1".into());
        d.healthcheck = Some(Healthcheck {
            test: "stand-in-healthcheck".into(),
            interval: "30s".into(),
            timeout: "10s".into(),
            retries: 3,
            start_period: "5s".into(),
        });
        let a = run_args(&d).join(" ");
        assert_eq!(
            a,
            "run --detach --name keystone --label managed_by=provision \
             --label provision.config_hash=abc --network=host --privileged --user=42425 \
             --restart=always --env KOLLA=1 --volume /etc/overcloud/k/k.conf:/etc/k/k.conf:ro \
             --health-cmd=stand-in-healthcheck --health-interval=30s --health-timeout=10s \
             --health-retries=3 --health-start-period=5s \
             localhost/provision-lab/keystone:latest /usr/local/bin/stand-in"
        );
    }

    #[test]
    fn scripts_quote_and_parse_back() {
        let mut d = def("keystone", 2, "abc");
        d.healthcheck = Some(Healthcheck {
            test: "test -f '/run/x y'".into(),
            interval: "30s".into(),
            timeout: "10s".into(),
            retries: 3,
            start_period: "5s".into(),
        });
        let op = ContainerOp::Recreate {
            found_hash: "old".into(),
        };
        let s = step_script(
            &[StepContainer { def: &d, op: &op }],
            Duration::from_secs(7),
        );
        assert!(s.contains("act keystone remove podman rm --force --time 10 --ignore keystone && act keystone recreate podman run --detach"), "{s}");
        assert!(
            s.contains(r#"'--health-cmd=test -f '\''/run/x y'\'''"#),
            "{s}"
        );
        assert!(
            s.contains(r#"&& touch "$d/up.keystone"; } &"#) && s.contains("+ 7 ))"),
            "{s}"
        );
        assert!(s.contains("for c in keystone; do"), "{s}");
        // A real shell parses the script.
        assert_sh_syntax(&s);
        let out = "A\tkeystone\tremove\t0\t12\nA\tkeystone\trecreate\t125\t340\n\
                   E\tkeystone\tError: unable to find user keystone\n\
                   H\tkeystone\tunhealthy\t7000\nL\tkeystone\tstand-in: cannot read /etc/k.conf\n";
        let r = &parse_report(out)["keystone"];
        assert_eq!(
            r.actions,
            vec![("remove".into(), 0, 12), ("recreate".into(), 125, 340)]
        );
        assert_eq!(
            r.errors,
            vec!["Error: unable to find user keystone".to_string()]
        );
        assert_eq!(r.healthy, Some((false, 7000)));
        assert_eq!(
            r.logs,
            vec!["stand-in: cannot read /etc/k.conf".to_string()]
        );
        assert!(!r.ok());
    }

    /// Runs a step script with a MOCK `podman` first on PATH (a shell script: podman
    /// itself runs in the lab tests; this checks the script's own logic: parallel
    /// starts, markers, healthcheck rounds, the unhealthy report).
    #[test]
    fn the_step_script_runs_starts_in_parallel_and_reports_health() {
        let dir = tempfile::tempdir().unwrap();
        let counts = tempfile::tempdir().unwrap();
        let mock = dir.path().join("podman");
        std::fs::write(
            &mock,
            "#!/bin/sh\n# MOCK podman for the step-script test\n\
             case \"$1\" in\n\
             run) sleep 0.3; echo 0123 ;;\n\
             rm) exit 0 ;;\n\
             healthcheck) touch \"$T/in.$$\"; ls \"$T\" | grep -c '^in[.]' >> \"$T/counts\"; sleep 0.1; rm -f \"$T/in.$$\"\n\
               case \"$3\" in bad) echo unhealthy; exit 1 ;; esac; exit 0 ;;\n\
             logs) echo \"stand-in: cannot read /etc/bad.conf\" ;;\n\
             esac\n",
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&mock)
            .status()
            .unwrap();
        let mut defs = Vec::new();
        let names = ["a", "b", "c", "e", "f", "g", "h", "bad"];
        for n in names {
            let mut d = def(n, 1, "h");
            d.healthcheck = Some(Healthcheck {
                test: "true".into(),
                interval: "30s".into(),
                timeout: "10s".into(),
                retries: 3,
                start_period: "0s".into(),
            });
            defs.push(d);
        }
        let op = ContainerOp::Create;
        let tasks: Vec<StepContainer> = defs
            .iter()
            .map(|d| StepContainer { def: d, op: &op })
            .collect();
        let script = step_script(&tasks, Duration::from_secs(1));
        let t = std::time::Instant::now();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .env("T", counts.path())
            .output()
            .unwrap();
        let took = t.elapsed();
        let r = parse_report(&String::from_utf8_lossy(&out.stdout));
        // At most nproc+1 healthchecks ran at once (8 would have, unbounded).
        let nproc: usize =
            String::from_utf8_lossy(&std::process::Command::new("nproc").output().unwrap().stdout)
                .trim()
                .parse()
                .unwrap();
        let seen: Vec<usize> = std::fs::read_to_string(counts.path().join("counts"))
            .unwrap()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        assert!(seen.len() >= names.len(), "{seen:?}");
        let most = seen.iter().copied().max().unwrap();
        assert!(
            most <= nproc + 1 && most >= 1,
            "{most} at once, nproc {nproc}: {seen:?}"
        );
        for n in names.iter().filter(|n| **n != "bad") {
            assert_eq!(r[*n].actions.len(), 1, "{n}: {r:?}");
            assert_eq!(r[*n].actions[0].1, 0);
            assert_eq!(r[*n].healthy.map(|h| h.0), Some(true), "{n}");
            assert!(r[*n].ok());
        }
        assert_eq!(r["bad"].healthy.map(|h| h.0), Some(false));
        assert!(
            r["bad"]
                .logs
                .iter()
                .any(|l| l.contains("cannot read /etc/bad.conf")),
            "{:?}",
            r["bad"]
        );
        // 8 starts of 0.3 s each at once, then ~1 s of health rounds for `bad`.
        assert!(took < Duration::from_millis(2500), "{took:?}");
    }

    #[test]
    fn removal_skips_unsafe_names() {
        let names = ["old_svc".to_string(), "../etc".to_string()];
        let s = removal_script(&names, Plane::Overcloud);
        assert!(
            s.contains("rm -rf /etc/overcloud/old_svc /var/lib/overcloud/containers/old_svc.json"),
            "{s}"
        );
        assert!(!s.contains("../etc"), "{s}");
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
