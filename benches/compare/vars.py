#!/usr/bin/env python3
"""vars.py MANIFEST ANSIBLE_DIR RENDER_DIR: ansible host_vars (files, directories) per
host from provision's manifest.json, and site.yml with one handler per service."""
import json
import os
import sys

manifest, a, render = sys.argv[1:4]
m = json.load(open(manifest))
services = set()
for name, h in m["hosts"].items():
    files = [
        {"path": f["path"], "mode": f["mode"], "owner": f["owner"], "group": f["group"],
         "service": f.get("service") or "none"}
        for f in h["files"]
    ]
    services.update(f["service"] for f in files)
    dirs = [{"path": d["path"], "mode": d["mode"], "owner": d["owner"], "group": d["group"]}
            for d in h["directories"]]
    # copy does not create the parents of a file (provision does): 0755 root, first.
    known = {d["path"] for d in dirs}
    parents = sorted({os.path.dirname(f["path"]) for f in files} - known)
    dirs = [{"path": p, "mode": "0755", "owner": "root", "group": "root"} for p in parents] + dirs
    json.dump({"render_dir": os.path.abspath(render), "overcloud_files": files,
               "overcloud_dirs": dirs},
              open(os.path.join(a, "host_vars", name + ".json"), "w"))

handlers = "".join(
    f"    - name: restart {s}\n      command: /bin/true\n      changed_when: false\n"
    for s in sorted(services))
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
