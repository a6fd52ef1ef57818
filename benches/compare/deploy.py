# pyinfra deploy for benches/compare.sh: provision's rendered files of this host
# (COMPARE_MANIFEST, COMPARE_RENDER), files.put per file with mode/user/group, then per
# service whose files changed (in deploy-step order) what provision does to its
# containers: podman rm, podman run with provision's arguments, wait for the healthcheck
# (benches/compare/podman.py, found through COMPARE_LIB).
#
# "Changed" is the content: a file missing on the host or whose SHA-1 differs from the
# render's (pyinfra's own File and Sha1File facts, the ones files.put reads, so cached).
# Not files.put's changed status: pyinfra compares owners by name (`stat -c %U`), and the
# kolla uids/gids of the catalogue (42436...) have no name on the hosts (`UNKNOWN`), so
# files.put re-chowns those files on every run and reports them changed; with
# `_if=any_changed(...)` every such service would restart on every no-op.
import hashlib
import json
import os
import sys

from pyinfra import host
from pyinfra.facts.files import File, Sha1File
from pyinfra.operations import files, server

sys.path.insert(0, os.environ["COMPARE_LIB"])
import podman  # noqa: E402

render = os.environ["COMPARE_RENDER"]
h = json.load(open(os.environ["COMPARE_MANIFEST"]))["hosts"][host.name]

# The parents of the files first (0755 root), as for ansible; then the manifest's.
parents = sorted({os.path.dirname(f["path"]) for f in h["files"]} - {d["path"] for d in h["directories"]})
dirs = [{"path": p, "mode": "0755", "owner": "root", "group": "root"} for p in parents]
for d in dirs + h["directories"]:
    files.directory(name=f"dir {d['path']}", path=d["path"], present=True,
                    mode=d["mode"], user=d["owner"], group=d["group"])

by_service = {}
for f in h["files"]:
    src = f"{render}/{host.name}{f['path']}"
    files.put(name=f"put {f['path']}", src=src,
              dest=f["path"], mode=f["mode"], user=f["owner"], group=f["group"])
    changed = not host.get_fact(File, path=f["path"]) or \
        host.get_fact(Sha1File, path=f["path"]) != hashlib.sha1(open(src, "rb").read()).hexdigest()
    by_service.setdefault(f.get("service") or "none", []).append(changed)

restarts = podman.restarts_by_service(render, host.name)
for service, (step, line) in sorted(restarts.items(), key=lambda kv: (kv[1][0], kv[0])):
    if any(by_service.get(service, [])):
        server.shell(name=f"restart {service}", commands=[line])
