#!/usr/bin/env python3
"""The Vagrant lab's machines and its generated inventory (Python 3.11 stdlib only).

    vagrant/inventory.py machines                 the machines of settings.env, as JSON
                                                  (the Vagrantfile and lab.sh read it)
    vagrant/inventory.py generate --ssh-config FILE [--nodes K] [--out FILE]
                         [--host-keys DIR --known-hosts FILE]
        inventories/vagrant.toml from the settings and `vagrant ssh-config undercloud`
        (FILE, or - for stdin): the undercloud's address and port are where Vagrant
        reaches it; every other address, MAC and BMC system id comes from the settings.
        --nodes K: only the first K nodes (default: all but VAGRANT_LAB_SPARE).
        --var KEY=VALUE: one more line of [vars] (acceptance.sh's "a variable changed").
        --host-keys DIR: DIR/<name>.pub, the host keys lab.sh generated; with
        --known-hosts, every address of every machine is written there.

The inventory is never edited by hand: tests/vagrant.rs regenerates it from the recorded
`vagrant ssh-config` (tests/fixtures/vagrant/ssh-config) and compares.
"""
import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS = os.path.join(HERE, "settings.env")
UUID_PREFIX = "2c0d5a52-7b6e-4f1a-9c3e-"  # the VMs' libvirt UUIDs: this + 12 hex digits


class SettingsError(Exception):
    pass


def settings(path=SETTINGS, env=os.environ):
    s = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            k, sep, v = line.partition("=")
            if not sep or not re.fullmatch(r"VAGRANT_LAB_[A-Z_]+", k.strip()):
                raise SettingsError(f"{path}:{n}: not KEY=VALUE with a VAGRANT_LAB_ key: {line}")
            s[k.strip()] = v.strip()
    for k in s:
        if env.get(k):
            s[k] = env[k]
    return s


def whole(s, key, lo, hi):
    try:
        v = int(s[key], 10)
    except (KeyError, ValueError):
        v = None
    if v is None or not lo <= v <= hi:
        raise SettingsError(f"{key}={s.get(key)!r}: a whole number from {lo} to {hi} (vagrant/settings.env)")
    return v


def prefix(s, key):
    p = s.get(key, "")
    if not re.fullmatch(r"\d{1,3}\.\d{1,3}\.\d{1,3}", p) or any(int(o) > 255 for o in p.split(".")):
        raise SettingsError(f"{key}={p!r}: the first three octets of a /24 (vagrant/settings.env)")
    return p


def machines(s):
    """The undercloud, then every node VM, with what every consumer needs."""
    nodes = whole(s, "VAGRANT_LAB_NODES", 1, 80)
    spare = whole(s, "VAGRANT_LAB_SPARE", 0, nodes - 1)
    cp = prefix(s, "VAGRANT_LAB_CTLPLANE")
    out = [{
        "name": "undercloud", "kind": "undercloud", "role": None, "octet": 2,
        "ctlplane_ip": f"{cp}.2", "mac": "52:54:00:18:00:02", "uuid": f"{UUID_PREFIX}{2:012x}",
        "memory": whole(s, "VAGRANT_LAB_UNDERCLOUD_MEMORY", 512, 65536),
        "cpus": whole(s, "VAGRANT_LAB_UNDERCLOUD_CPUS", 1, 64), "in_inventory": True,
    }]
    for i in range(nodes):
        octet = 10 + i
        out.append({
            "name": "vagrant-controller-0" if i == 0 else f"vagrant-compute-{i - 1}",
            "kind": "node", "role": "Controller" if i == 0 else "Compute", "octet": octet,
            "ctlplane_ip": f"{cp}.{octet}", "mac": f"52:54:00:18:00:{octet:02x}",
            "uuid": f"{UUID_PREFIX}{octet:012x}",
            "memory": whole(s, "VAGRANT_LAB_NODE_MEMORY", 512, 65536),
            "cpus": whole(s, "VAGRANT_LAB_NODE_CPUS", 1, 64), "in_inventory": i < nodes - spare,
        })
    return out


def parse_ssh_config(text, host="undercloud"):
    """HostName and Port of `host` in `vagrant ssh-config` output."""
    cur, found = None, {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) != 2:
            continue
        k, v = parts[0].lower(), parts[1].strip()
        if k == "host":
            cur = v
        elif cur == host and k in ("hostname", "port", "user", "identityfile"):
            found[k] = v
    if "hostname" not in found:
        raise SettingsError(f"`vagrant ssh-config` has no HostName for {host}: is it up? (vagrant/lab.sh up)")
    port = found.get("port", "22")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"`vagrant ssh-config`: {host}'s Port {port!r} is not a port")
    return found["hostname"], int(port)


def toml_str(v):
    return json.dumps(v)  # a TOML basic string is a JSON string for these values


def inventory(s, uc_address, uc_port, count=None, variables=()):
    ms = machines(s)
    cp = prefix(s, "VAGRANT_LAB_CTLPLANE")
    nodes = [m for m in ms if m["kind"] == "node"]
    if count is None:
        nodes = [m for m in nodes if m["in_inventory"]]
    else:
        if not 1 <= count <= len(nodes):
            raise SettingsError(f"--nodes {count}: from 1 to {len(nodes)} (VAGRANT_LAB_NODES)")
        nodes = nodes[:count]
    roles = {}
    for m in nodes:
        roles[m["role"]] = roles.get(m["role"], 0) + 1
    uc = ms[0]
    L = []
    w = L.append
    w("# vagrant.toml: the Vagrant lab (vagrant/README.md). GENERATED by vagrant/inventory.py from")
    w("# vagrant/settings.env and `vagrant ssh-config undercloud`: do not edit; change the settings and")
    w("# run vagrant/lab.sh up (or vagrant/inventory.py generate).")
    w("#")
    w("# The nodes are VMs that PXE-boot from the undercloud's dnsmasq, powered by Redfish BMCs")
    w("# (sushy-tools' libvirt driver on the hypervisor, reached from the undercloud).")
    w("")
    w("[cloud]")
    w('name = "vagrant"')
    w('domain = "vagrant.test"')
    w('templates = "../templates"')
    w('roles = "../roles"')
    w("# the box's image store (vagrant/box.sh): nothing is pulled")
    w('registry = "localhost/provision-vagrant"')
    w('tag = "latest"')
    w("# the VMs run systemd: a unit per container, started at boot")
    w('container_units = "systemd"')
    w("")
    w("[ssh]")
    w('user = "root"')
    w('private_key = "../vagrant/.vagrant/lab/id_ed25519"')
    w('known_hosts = "../vagrant/.vagrant/lab/known_hosts"')
    w("port = 22")
    w("connect_timeout = 10")
    w("")
    w("[undercloud]")
    w('name = "undercloud"')
    w("# where Vagrant reaches it (its management NIC), from `vagrant ssh-config undercloud`")
    w(f"address = {toml_str(uc_address)}")
    w(f"ssh_port = {uc_port}")
    w(f"ctlplane_ip = {toml_str(uc['ctlplane_ip'])}")
    w('network = "ctlplane"')
    w("")
    w("[secrets]")
    w('file = "vagrant.secrets.toml"')
    w("")
    w("[networks.ctlplane]")
    w(f'cidr = "{cp}.0/24"')
    w(f'gateway = "{cp}.1"')
    w(f'allocation_start = "{cp}.10"')
    w(f'allocation_end = "{cp}.99"')
    for name, third, vip, gw in (("internal_api", 2, True, False), ("storage", 1, True, False),
                                 ("storage_mgmt", 3, False, False), ("tenant", 0, False, False)):
        w("")
        w(f"[networks.{name}]")
        w(f'cidr = "172.16.{third}.0/24"')
        w(f'allocation_start = "172.16.{third}.10"')
        w(f'allocation_end = "172.16.{third}.99"')
        if vip:
            w(f'vip = "172.16.{third}.5"')
    w("")
    w("[networks.external]")
    w('cidr = "10.0.0.0/24"')
    w('gateway = "10.0.0.1"')
    w('allocation_start = "10.0.0.10"')
    w('allocation_end = "10.0.0.99"')
    w('vip = "10.0.0.5"')
    w("")
    w("[vars]")
    w('nova_virt_type = "qemu"')
    for k, v in variables:
        w(f"{k} = {v}")
    w("")
    w("# the VMs' size (vagrant/settings.env), not a real server's")
    for role in ("Controller", "Compute"):
        if role not in roles:
            continue
        w("")
        w(f"[roles.{role}]")
        w(f"count = {roles[role]}")
        w("requirements = { memory_mb = 1024, cpus = 1, disks = 1, disk_gb = 4 }")
    for m in nodes:
        w("")
        w("[[nodes]]")
        w(f"name = {toml_str(m['name'])}")
        w(f"role = {toml_str(m['role'])}")
        w(f"ctlplane_ip = {toml_str(m['ctlplane_ip'])}")
        w(f"macs = [{toml_str(m['mac'])}]")
        w(f'bmc = {{ driver = "redfish", scheme = "http", address = "{cp}.1", port = 8000, '
          f"system_id = {toml_str(m['uuid'])}, username = \"admin\", password = {{ secret = \"vagrant_bmc_password\" }} }}")
    w("")
    w("[lab]")
    w("# The VMs run the undercloud's dnsmasq (DHCP, TFTP) and rsyslog for real, from the box's")
    w("# Debian 13 image; every OpenStack service runs the lab's stand-in (lab/README.md): real")
    w("# OpenStack runs in the process lab (tests/cloud.rs), see vagrant/README.md.")
    w('real_images = ["dnsmasq", "rsyslog"]')
    w('stand_in_command = ["/usr/local/bin/stand-in"]')
    w('stand_in_healthcheck = "stand-in-healthcheck"')
    w("# Under TCG a `podman healthcheck run` costs seconds of a node's one vCPU: podman's")
    w("# timers every 30 s for a dozen containers kept the controller saturated (load 20)")
    w("# until checks timed out and healthy stand-ins showed unhealthy (docs/performance.md).")
    w(f"stand_in_health_interval = {whole(s, 'VAGRANT_LAB_HEALTH_INTERVAL', 1, 86400)}")
    w(f"stand_in_health_timeout = {whole(s, 'VAGRANT_LAB_HEALTH_CHECK_TIMEOUT', 1, 3600)}")
    w('stand_in_task_command = ["/usr/local/bin/stand-in-task"]')
    return "\n".join(L) + "\n", nodes


def known_hosts(s, uc_address, uc_port, keys_dir):
    lines = []
    for m in machines(s):
        pub = os.path.join(keys_dir, f"{m['name']}.pub")
        with open(pub, encoding="utf-8") as f:
            key = " ".join(f.read().split()[:2])
        addrs = [m["ctlplane_ip"]]
        if m["kind"] == "undercloud":
            addrs.insert(0, uc_address if uc_port == 22 else f"[{uc_address}]:{uc_port}")
        for a in addrs:
            lines.append(f"{a} {key}")
    return "\n".join(lines) + "\n"


def write(path, text, mode=0o644):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("machines")
    g = sub.add_parser("generate")
    g.add_argument("--ssh-config", required=True)
    g.add_argument("--nodes", type=int)
    g.add_argument("--out")
    g.add_argument("--host-keys")
    g.add_argument("--known-hosts")
    g.add_argument("--var", action="append", default=[], metavar="KEY=VALUE",
                   help="one more [vars] line (VALUE in TOML: 8.0, true, \"text\"), e.g. for a change to apply")
    a = p.parse_args()
    try:
        s = settings()
        if a.cmd == "machines":
            print(json.dumps(machines(s), indent=1))
            return 0
        text = sys.stdin.read() if a.ssh_config == "-" else open(a.ssh_config, encoding="utf-8").read()
        addr, port = parse_ssh_config(text)
        variables = []
        for kv in a.var:
            k, sep, v = kv.partition("=")
            if not sep or not re.fullmatch(r"[a-z][a-z0-9_]*", k) or not re.fullmatch(
                    r'-?[0-9]+(\.[0-9]+)?|true|false|"[^"\\\n]*"', v):
                raise SettingsError(f"--var {kv!r}: KEY=VALUE, a lower-case key and a TOML number, boolean or \"string\"")
            variables.append((k, v))
        inv, nodes = inventory(s, addr, port, a.nodes, variables)
        if a.out:
            write(a.out, inv)
        else:
            sys.stdout.write(inv)
        if a.known_hosts:
            if not a.host_keys:
                raise SettingsError("--known-hosts needs --host-keys DIR")
            write(a.known_hosts, known_hosts(s, addr, port, a.host_keys))
        print(f"inventory: undercloud at {addr}:{port}, {len(nodes)} nodes"
              f" ({', '.join(n['name'] for n in nodes)})", file=sys.stderr)
        return 0
    except (SettingsError, OSError) as e:
        print(f"vagrant/inventory.py: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
