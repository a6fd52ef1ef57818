# pyinfra deploy for benches/compare.sh: provision's rendered files of this host
# (COMPARE_MANIFEST, COMPARE_RENDER), files.put per file with mode/user/group, a
# `true` per service whose files changed (the handler).
import json
import os

from pyinfra import host
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

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

for service, ops in sorted(by_service.items()):
    server.shell(name=f"restart {service}", commands=["/bin/true"], _if=any_changed(*ops))
