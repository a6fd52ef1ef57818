"""What provision does to a container, as shell, for the ansible and pyinfra handlers of
benches/compare.sh (one handler per service, fired when that service's files changed).

A container's definition is read from the render, `<render>/<host>/var/lib/overcloud/
containers/<name>.json`; `run_args` builds the same `podman` argv as `run_args` in
src/host/script.rs (same order: labels and environment sorted by key, as Rust's
BTreeMap), and `restart_script` is what provision runs to (re)create it:

    podman rm --force --time 10 --ignore NAME && podman run ... &&
    (when it has a healthcheck) poll `podman healthcheck run NAME` until it exits 0:
    at most 50 tries, 0.2 s apart, else exit 1.

    python3 podman.py RENDER HOST     prints each container's argv as JSON (one a line),
                                      for checking against provision's own
    python3 podman.py floor RENDER HOST [FROM]
                                      prints the podman floor's script for HOST (below)

The podman floor (benches/compare.sh) is the container work of a run and nothing else:
per deploy step in order, the step's tasks one after the other (their `podman run --rm`
arguments from the manifest, as provision runs them), then the step's containers started
at once with the same `podman run` arguments, then each one's healthcheck run until it
passes (at most 50 tries, 0.2 s apart; the first try passes for a container that is
ready). Without FROM it creates every container of RENDER and runs no task (a cold run,
after the containers were removed: the undercloud's record of the tasks that ran stays,
so provision runs none either); with FROM, only the containers whose config hash
differs from FROM's are recreated (`podman rm --force --time 10 --ignore` first), and
the tasks whose image or digests (definition, mounted files) differ from FROM's run
again, as a one-change run does.
"""
import glob
import json
import os
import shlex
import sys

DEFS = "var/lib/overcloud/containers"
HEALTH_TRIES = 50
HEALTH_SLEEP = "0.2"


def container_defs(render, host):
    """The rendered container definitions of `host`, by container name."""
    defs = {}
    for path in sorted(glob.glob(os.path.join(render, host, DEFS, "*.json"))):
        with open(path) as f:
            d = json.load(f)
        defs[d["name"]] = d
    return defs


def run_args(d):
    """`podman` arguments (after `podman`) for one definition, as provision's run_args."""
    a = ["run", "--detach", "--name", d["name"]]
    for k, v in sorted(d.get("labels", {}).items()):
        a += ["--label", f"{k}={v}"]
    a.append(f"--network={d.get('network') or 'host'}")
    if d.get("privileged"):
        a.append("--privileged")
    for key in ("pid", "cgroupns", "user"):
        if d.get(key) is not None:
            a.append(f"--{key}={d[key]}")
    if d.get("restart"):
        a.append(f"--restart={d['restart']}")
    for k, v in sorted(d.get("environment", {}).items()):
        a += ["--env", f"{k}={v}"]
    for v in d.get("volumes", []):
        a += ["--volume", v]
    h = d.get("healthcheck")
    if h:
        a += [
            f"--health-cmd={h['test']}",
            f"--health-interval={h['interval']}",
            f"--health-timeout={h['timeout']}",
            f"--health-retries={h['retries']}",
            f"--health-start-period={h['start_period']}",
        ]
    a.append(d["image"])
    a += d.get("command", [])
    return a


def restart_script(d):
    """One shell line: remove, run, then wait for the healthcheck (exit 1 if it never
    passes)."""
    n = shlex.quote(d["name"])
    run = " ".join(shlex.quote(x) for x in run_args(d))
    s = f"podman rm --force --time 10 --ignore {n} >/dev/null && podman {run} >/dev/null"
    if d.get("healthcheck"):
        s += (
            f" && i=0 && until podman healthcheck run {n} >/dev/null 2>&1; do"
            f" i=$((i+1)); if [ $i -ge {HEALTH_TRIES} ]; then"
            f" echo {shlex.quote(d['name'] + ': not healthy after ' + str(HEALTH_TRIES) + ' tries')} >&2;"
            f" exit 1; fi; sleep {HEALTH_SLEEP}; done"
        )
    return s


def restarts_by_service(render, host):
    """{service: (deploy step, shell line restarting its containers in name order)}."""
    by = {}
    for name, d in container_defs(render, host).items():
        by.setdefault(d.get("service") or name, []).append(d)
    return {
        s: (min(d.get("step", 0) for d in ds), " && ".join(restart_script(d) for d in ds))
        for s, ds in by.items()
    }


def task_defs(render, host):
    """The host's tasks in the render's manifest, in the order they run, by id."""
    with open(os.path.join(render, "manifest.json")) as f:
        m = json.load(f)
    return {t["id"]: t for t in m["hosts"].get(host, {}).get("tasks", [])}


def floor_script(render, host, base=None):
    """The podman floor's shell script for `host` (see the module's docstring)."""
    defs = container_defs(render, host)
    tasks = {}
    if base is not None:
        old = container_defs(base, host)
        h = lambda d: d.get("labels", {}).get("provision.config_hash")
        defs = {n: d for n, d in defs.items() if n not in old or h(old[n]) != h(d)}
        was = task_defs(base, host)
        key = lambda t: (t["image"], t["definition_hash"], t["files_hash"])
        tasks = {i: t for i, t in task_defs(render, host).items() if i not in was or key(was[i]) != key(t)}
    lines = ["set +e"]
    for step in sorted({d.get("step", 0) for d in defs.values()} | {t["step"] for t in tasks.values()}):
        for t in (t for t in tasks.values() if t["step"] == step):
            run = "podman " + " ".join(shlex.quote(x) for x in t["podman_args"]) + " >/dev/null"
            lines.append(f"{run} || echo {shlex.quote(t['id'])}: run failed >&2")
        ds = [d for d in defs.values() if d.get("step", 0) == step]
        for d in ds:
            n = shlex.quote(d["name"])
            run = "podman " + " ".join(shlex.quote(x) for x in run_args(d)) + " >/dev/null"
            if base is not None:
                run = f"podman rm --force --time 10 --ignore {n} >/dev/null && {run}"
            lines.append(f"{{ {run} || echo {n}: run failed >&2; }} &")
        lines.append("wait")
        for d in ds:
            if not d.get("healthcheck"):
                continue
            n = shlex.quote(d["name"])
            lines.append(
                f"( i=0; until podman healthcheck run {n} >/dev/null 2>&1; do i=$((i+1));"
                f" [ $i -lt {HEALTH_TRIES} ] || {{ echo {n}: not healthy >&2; exit 1; }}; sleep {HEALTH_SLEEP}; done ) &"
            )
        lines.append("wait")
    lines.append("true")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1] == "floor":
        print(floor_script(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None), end="")
    else:
        for name, d in container_defs(sys.argv[1], sys.argv[2]).items():
            print(json.dumps([name] + run_args(d)))
