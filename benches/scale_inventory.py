#!/usr/bin/env python3
"""Writes example-production.toml scaled to N computes (3 controllers, 3 Ceph nodes).

    scale_inventory.py N OUT.toml [--errors KIND]

The computes get consecutive ctlplane addresses in 192.168.0.0/16 (the networks are
widened to /16 to hold them; to /13 past 58,000 computes); OUT.toml points back at the
repository's roles, templates and example secrets.

--errors puts one error on every compute, for the bad-input benchmark
(benches/validate-bad.sh):

    mac    a MAC address that is not one (`52:54:zz:...`): one error per node
    mixed  one of five errors in turn: a bad MAC, a ctlplane address that is not an IP
           address, an unknown key (the node's table is refused), a MAC another node
           has, a BMC endpoint another node has
"""
import argparse
import ipaddress
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parent.parent
KINDS = ("mac", "mixed")


def node_ip(i: int) -> str:
    # From 192.168.26.0: clear of the controllers and Ceph nodes.
    return str(ipaddress.IPv4Address("192.168.24.0") + 512 + i)


def bmc_ip(i: int) -> str:
    return f"10.{101 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}"


def compute(i: int, errors: str | None) -> str:
    ip = node_ip(i)
    mac = f"52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
    bmc = bmc_ip(i)
    extra = ""
    kind = errors if errors != "mixed" else ("mac", "ip", "key", "dupmac", "dupbmc")[i % 5]
    if kind == "mac":
        mac = f"52:54:zz:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
    elif kind == "ip":
        ip = node_ip(i) + ".7"
    elif kind == "key":
        extra = f'colour = "blue"\n'
    elif kind == "dupmac" and i > 0:
        j = i - 1
        mac = f"52:54:01:{j >> 16 & 255:02x}:{j >> 8 & 255:02x}:{j & 255:02x}"
    elif kind == "dupbmc" and i > 0:
        bmc = bmc_ip(i - 1)
    return (
        f'\n[[nodes]]\nrole = "Compute"\nctlplane_ip = "{ip}"\nmacs = ["{mac}"]\n{extra}'
        f'bmc = {{ driver = "redfish", address = "{bmc}", system_id = "System.Embedded.1", username = "root", password = {{ secret = "bmc_password" }} }}\n'
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("n", type=int, help="number of computes")
    p.add_argument("out", type=pathlib.Path, help="the inventory to write")
    p.add_argument("--errors", choices=KINDS, help="put an error on every compute")
    a = p.parse_args()
    n, out = a.n, a.out
    text = (REPO / "inventories/example-production.toml").read_text()
    head = text.split("\n[[nodes]]", 1)[0]
    nodes = "\n[[nodes]]" + text.split("\n[[nodes]]", 1)[1]
    keep = [b for b in nodes.split("\n[[nodes]]") if b.strip() and 'role = "Compute"' not in b]
    head = head.replace('templates = "../templates"', f'templates = "{REPO}/templates"')
    head = head.replace('roles = "../roles"', f'roles = "{REPO}/roles"')
    head = head.replace('file = "example-production.secrets.toml"', f'file = "{REPO}/inventories/example-production.secrets.toml"')
    head = re.sub(r"(\[roles\.Compute\]\ncount = )\d+", lambda m: m.group(1) + str(n), head)
    # Widen every network to a /16 so N hosts fit (a /13 for more); host numbers stay
    # mirrored.
    prefix = 16 if n <= 58000 else 13
    span = 2 ** (32 - prefix)

    def widen(m: re.Match) -> str:
        net = ipaddress.IPv4Network(f"{m.group(1)}.{m.group(2)}.0.0/{prefix}")
        return f'cidr = "{net}"'

    def end(m: re.Match) -> str:
        net = ipaddress.IPv4Network(f"{m.group(1)}.{m.group(2)}.0.0/{prefix}")
        return f'allocation_end = "{net.network_address + span - 1286}"'

    head = re.sub(r'cidr = "(\d+)\.(\d+)\.\d+\.0/24"', widen, head)
    head = re.sub(r'allocation_end = "(\d+)\.(\d+)\.\d+\.250"', end, head)
    blocks = ["\n[[nodes]]" + b for b in keep]
    blocks.extend(compute(i, a.errors) for i in range(n))
    out.write_text(head + "".join(blocks))


if __name__ == "__main__":
    main()
