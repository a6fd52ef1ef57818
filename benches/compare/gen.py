#!/usr/bin/env python3
"""Generates the ansible-core and pyinfra inputs for benches/compare.sh.

    gen.py WORK STATE_DIR INVENTORY

WORK/ssh_config      the lab's ssh_config plus `ProxyJump lab-undercloud` on every node
                     (ansible and pyinfra both jump through the undercloud, as provision does)
WORK/base.toml       a copy of INVENTORY with its relative paths made absolute
WORK/changed.toml    a copy of INVENTORY (relative paths made absolute) with one oslo
                     option added to nova's DEFAULT section: the one-change apply
WORK/ansible/        ansible.cfg, hosts.ini (site.yml and host_vars are written by vars.py)
WORK/pyinfra/        inventory.py (deploy.py is benches/compare/deploy.py)
Prints the nodes' names, the inventory's order (the first and last are checked).
"""
import os
import re
import sys

work, state, inventory = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
inv_dir = os.path.dirname(os.path.abspath(inventory))

# Nodes of the inventory, by ctlplane address, named as the lab names them (hosts.tsv).
names = {}
with open(os.path.join(state, "hosts.tsv")) as f:
    for line in f:
        cols = line.rstrip("\n").split("\t")
        if len(cols) >= 2 and re.match(r"^\d+\.\d+\.\d+\.\d+$", cols[1]):
            names[cols[1]] = cols[0]
text = open(inventory).read()
addrs = re.findall(r'^ctlplane_ip\s*=\s*"([^"]+)"', text, re.M)
nodes = [(names[a], a) for a in addrs]

# ssh_config: the lab's, with every node jumping through the undercloud.
out = []
host = None
for line in open(os.path.join(state, "ssh_config")):
    m = re.match(r"^Host\s+(\S+)", line)
    if m:
        host = m.group(1)
    out.append(line)
    if re.match(r"^\s+HostName\s", line) and host not in ("*", "lab-undercloud"):
        out.append("    ProxyJump lab-undercloud\n")
ssh_config = os.path.join(work, "ssh_config")
open(ssh_config, "w").writelines(out)


# The changed inventory: absolute paths, plus one option.
def absolutize(m):
    key, val = m.group(1), m.group(2)
    if val.startswith("/"):
        return m.group(0)
    return f'{key} = "{os.path.normpath(os.path.join(inv_dir, val))}"'


# The lab's generated lab-N.toml (lab/lablib.py) has no `[lab]` section and no
# `container_units = "none"`: without them every container would run its real service's
# command (not in the lab's images) and systemd units would be rendered into
# /etc/systemd/system, which the lab's hosts share with the machine. Both come from
# inventories/lab.toml when missing.
ref = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../inventories/lab.toml")).read()
if not re.search(r"^container_units\s*=", text, re.M):
    units = re.search(r"^container_units\s*=.*$", ref, re.M).group(0)
    text = re.sub(r"^\[cloud\]\n", lambda m: m.group(0) + units + "\n", text, count=1, flags=re.M)
if not re.search(r"^\[lab\]", text, re.M):
    lab = re.search(r"^\[lab\]\n(?:(?!\[).*\n?)*", ref, re.M).group(0)
    text = text.rstrip("\n") + "\n\n" + lab.rstrip("\n") + "\n"

# Both copies have the same absolute paths (rendered headers name the template path), so
# they differ only by the option.
base = re.sub(r'^(templates|roles|private_key|known_hosts|file)\s*=\s*"([^"]*)"', absolutize, text, flags=re.M)
open(os.path.join(work, "base.toml"), "w").write(base)
open(os.path.join(work, "changed.toml"), "w").write(
    base + "\n[config.nova.DEFAULT]\nreserved_host_memory_mb = 1234\n")

# ansible-core
a = os.path.join(work, "ansible")
os.makedirs(os.path.join(a, "host_vars"), exist_ok=True)
n = len(nodes)
with open(os.path.join(a, "ansible.cfg"), "w") as f:
    f.write(f"""[defaults]
inventory = {a}/hosts.ini
forks = {n}
host_key_checking = True
gathering = explicit
interpreter_python = /usr/bin/python3
retry_files_enabled = False
stdout_callback = default
display_skipped_hosts = False
display_ok_hosts = False
remote_tmp = /tmp/.ansible-tmp

[ssh_connection]
pipelining = True
ssh_args = -F {ssh_config} -o ControlMaster=auto -o ControlPersist=60s
control_path_dir = {work}/cp
""")
with open(os.path.join(a, "hosts.ini"), "w") as f:
    f.write("[overcloud]\n")
    for name, addr in nodes:
        # ansible_host = the ssh_config alias, so the config's ProxyJump applies.
        f.write(f"{name} ansible_host={name} ansible_user=root\n")

# pyinfra
p = os.path.join(work, "pyinfra")
os.makedirs(p, exist_ok=True)
with open(os.path.join(p, "inventory.py"), "w") as f:
    f.write("overcloud = [\n")
    for name, addr in nodes:
        f.write(
            f"    ({name!r}, {{'ssh_hostname': {name!r}, 'ssh_user': 'root',"
            f" 'ssh_config_file': {ssh_config!r}, 'ssh_key': {os.path.join(state, 'id_ed25519')!r},"
            f" 'ssh_known_hosts_file': {os.path.join(state, 'known_hosts')!r},"
            f" 'ssh_strict_host_key_checking': 'yes'}}),\n"
        )
    f.write("]\n")
print(" ".join(name for name, _ in nodes))
