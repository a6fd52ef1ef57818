# pyinfra deploy for benches/compare.sh: provision's rendered files of this host
# (COMPARE_MANIFEST, COMPARE_RENDER), files.put per file with mode/user/group, then per
# service whose files changed (in deploy-step order) what provision does to its
# containers: podman rm, podman run with provision's arguments, wait for the healthcheck
# (benches/compare/podman.py, found through COMPARE_LIB).
import json
import os
import sys

from pyinfra import host
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

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
    op = files.put(name=f"put {f['path']}", src=f"{render}/{host.name}{f['path']}",
                   dest=f["path"], mode=f["mode"], user=f["owner"], group=f["group"])
    by_service.setdefault(f.get("service") or "none", []).append(op)

restarts = podman.restarts_by_service(render, host.name)
for service, (step, line) in sorted(restarts.items(), key=lambda kv: (kv[1][0], kv[0])):
    ops = by_service.get(service)
    if ops:
        server.shell(name=f"restart {service}", commands=[line], _if=any_changed(*ops))
