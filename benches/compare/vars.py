#!/usr/bin/env python3
"""vars.py MANIFEST ANSIBLE_DIR RENDER_DIR: ansible host_vars per host from provision's
render (files, directories, and per service the shell line that does what provision does
to its containers: podman.py), and site.yml: the files with `copy`, each notifying its
service's handler; one handler per service, in deploy-step order, which removes and runs
the service's containers with provision's arguments and waits for their healthchecks."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import podman  # noqa: E402

manifest, a, render = sys.argv[1:4]
m = json.load(open(manifest))
services = {}  # service -> deploy step
for name, h in m["hosts"].items():
    files = [
        {"path": f["path"], "mode": f["mode"], "owner": f["owner"], "group": f["group"],
         "service": f.get("service") or "none"}
        for f in h["files"]
    ]
    restarts = podman.restarts_by_service(render, name)
    for f in files:
        services.setdefault(f["service"], 99)
    for s, (step, _) in restarts.items():
        services[s] = min(services.get(s, 99), step)
    dirs = [{"path": d["path"], "mode": d["mode"], "owner": d["owner"], "group": d["group"]}
            for d in h["directories"]]
    # copy does not create the parents of a file (provision does): 0755 root, first.
    known = {d["path"] for d in dirs}
    parents = sorted({os.path.dirname(f["path"]) for f in files} - known)
    dirs = [{"path": p, "mode": "0755", "owner": "root", "group": "root"} for p in parents] + dirs
    json.dump({"render_dir": os.path.abspath(render), "overcloud_files": files,
               "overcloud_dirs": dirs,
               "overcloud_restart": {s: line for s, (_, line) in restarts.items()}},
              open(os.path.join(a, "host_vars", name + ".json"), "w"))

# Handlers run in the order they are listed: by deploy step, as provision's steps. A
# service with files but no container on a host has nothing to restart there.
handlers = "".join(
    f"    - name: restart {s}\n"
    f"      shell: \"{{{{ overcloud_restart['{s}'] }}}}\"\n"
    f"      when: \"'{s}' in overcloud_restart\"\n"
    for s in sorted(services, key=lambda s: (services[s], s)))
open(os.path.join(a, "site.yml"), "w").write(f"""- hosts: overcloud
  gather_facts: false
  tasks:
    - name: directories
      file:
        path: "{{{{ item.path }}}}"
        state: directory
        mode: "{{{{ item.mode }}}}"
        owner: "{{{{ item.owner }}}}"
        group: "{{{{ item.group }}}}"
      loop: "{{{{ overcloud_dirs }}}}"
      loop_control: {{label: "{{{{ item.path }}}}"}}
    - name: files
      copy:
        src: "{{{{ render_dir }}}}/{{{{ inventory_hostname }}}}{{{{ item.path }}}}"
        dest: "{{{{ item.path }}}}"
        mode: "{{{{ item.mode }}}}"
        owner: "{{{{ item.owner }}}}"
        group: "{{{{ item.group }}}}"
      loop: "{{{{ overcloud_files }}}}"
      loop_control: {{label: "{{{{ item.path }}}}"}}
      notify: "restart {{{{ item.service }}}}"
  handlers:
{handlers}""")
