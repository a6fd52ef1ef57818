#!/usr/bin/env python3
"""Checks one node against the render, for benches/compare.sh.

    check.py expect MANIFEST HOST
        the node's files, one a line: sha256 mode(decimal) uid gid path (sorted by path)
    check.py compare RENDER HOST EXPECT GOT PS_JSON
        EXPECT: the lines above; GOT: the same lines read on the node (`sha256 octal-mode
        uid gid path`); PS_JSON: the node's `podman ps -a --format json`. Every rendered
        container definition (RENDER/HOST/var/lib/overcloud/containers/*.json) must be
        there, running, with the definition's `provision.config_hash` label, and no other
        container. Prints one line (what matched, or every difference, the first 8
        of each kind); exit 1 on any difference.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import podman  # noqa: E402

IDS = {"root": "0"}


def expect(manifest, host):
    h = json.load(open(manifest))["hosts"][host]
    for f in sorted(h["files"], key=lambda f: f["path"]):
        print(f["sha256"], int(f["mode"], 8), IDS.get(f["owner"], f["owner"]),
              IDS.get(f["group"], f["group"]), f["path"])


def short(r):
    return f"{r[0][:12]} {int(r[1]):o} {r[2]}:{r[3]}"


def compare(render, host, expect_path, got_path, ps_path):
    problems = []
    e = {r[4]: tuple(r) for r in (l.split() for l in open(expect_path)) if len(r) == 5}
    g = {}
    for r in (l.split() for l in open(got_path)):
        if len(r) == 5:
            try:
                g[r[4]] = (r[0], str(int(r[1], 8)), r[2], r[3], r[4])
            except ValueError:
                pass
    missing = sorted(set(e) - set(g))
    differ = sorted(p for p in set(e) & set(g) if e[p] != g[p])
    if missing:
        problems.append(f"{len(missing)} files missing: {' '.join(missing[:8])}")
    if differ:
        problems.append(f"{len(differ)} files differ (sha256/mode/uid/gid): "
                        + " ".join(f"{p} want {short(e[p])} got {short(g[p])}" for p in differ[:8]))

    defs = podman.container_defs(render, host)
    try:
        ps = json.load(open(ps_path))
    except (OSError, ValueError) as err:
        ps = []
        problems.append(f"podman ps -a --format json unreadable: {err}")
    actual = {}
    for c in ps or []:
        names = c.get("Names") or []
        name = names[0] if names else c.get("Id", "?")[:12]
        actual[name] = c
    absent = sorted(set(defs) - set(actual))
    extra = sorted(set(actual) - set(defs))
    wrong_hash = sorted(
        n for n in set(defs) & set(actual)
        if (actual[n].get("Labels") or {}).get("provision.config_hash")
        != defs[n]["labels"].get("provision.config_hash"))
    not_running = sorted(f"{n}={actual[n].get('State')}" for n in set(defs) & set(actual)
                         if actual[n].get("State") != "running")
    if absent:
        problems.append(f"{len(absent)} containers missing: {' '.join(absent[:8])}")
    if extra:
        problems.append(f"{len(extra)} containers not in the render: {' '.join(extra[:8])}")
    if wrong_hash:
        problems.append(f"{len(wrong_hash)} containers with another config_hash: {' '.join(wrong_hash[:8])}")
    if not_running:
        problems.append(f"{len(not_running)} containers not running: {' '.join(not_running[:8])}")
    if problems:
        print(f"{host}: DIFFERENT: " + "; ".join(problems))
        return 1
    print(f"{host}: {len(e)} files and {len(defs)} containers (running, same config_hash) as rendered")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "expect":
        expect(*sys.argv[2:4])
    elif sys.argv[1] == "compare":
        sys.exit(compare(*sys.argv[2:7]))
    else:
        sys.exit(__doc__)
