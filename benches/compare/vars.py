#!/usr/bin/env python3
"""vars.py MANIFEST ANSIBLE_DIR RENDER_DIR: ansible host_vars per host from provision's
render (directories; files by service; per service the shell line that does what
provision does to its containers: podman.py), and site.yml: the directories, then one
`copy` task per service notifying that service's handler; one handler per service, in
deploy-step order, which removes and runs the service's containers with provision's
arguments and waits for their healthchecks."""
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
    by_service = {}
    for f in files:
        by_service.setdefault(f["service"], []).append(f)
    json.dump({"render_dir": os.path.abspath(render), "overcloud_files": by_service,
               "overcloud_dirs": dirs,
               "overcloud_restart": {s: line for s, (_, line) in restarts.items()}},
              open(os.path.join(a, "host_vars", name + ".json"), "w"))

# One copy task per service, in deploy-step order, each notifying its own handler: a
# single task looping over every file with `notify: "restart {{ item.service }}"` would
# fire the handlers of every item when any item changed (ansible notifies a loop's items
# when the task as a whole changed), restarting everything on every change. Handlers
# run in the order they are listed: by deploy step, as provision's steps. A service with
# files but no container on a host has nothing to restart there.
order = sorted(services, key=lambda s: (services[s], s))
tasks = "".join(
    f"""    - name: files {s}
      copy:
        src: "{{{{ render_dir }}}}/{{{{ inventory_hostname }}}}{{{{ item.path }}}}"
        dest: "{{{{ item.path }}}}"
        mode: "{{{{ item.mode }}}}"
        owner: "{{{{ item.owner }}}}"
        group: "{{{{ item.group }}}}"
      loop: "{{{{ overcloud_files['{s}'] | default([]) }}}}"
      loop_control: {{label: "{{{{ item.path }}}}"}}
""" + (f"      notify: restart {s}\n" if s != "none" else "")
    for s in order)
handlers = "".join(
    f"    - name: restart {s}\n"
    f"      shell: \"{{{{ overcloud_restart['{s}'] }}}}\"\n"
    f"      when: \"'{s}' in overcloud_restart\"\n"
    for s in order if s != "none")
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
{tasks}  handlers:
{handlers}""")
