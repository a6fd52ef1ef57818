#!/usr/bin/env python3
"""Writes example-production.toml scaled to N computes (3 controllers, 3 Ceph nodes).

    scale_inventory.py N OUT.toml

The computes get consecutive ctlplane addresses in 192.168.0.0/16 (the networks are
widened to /16 to hold them); OUT.toml points back at the repository's roles,
templates and example secrets.
"""
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent


def main() -> None:
    n, out = int(sys.argv[1]), pathlib.Path(sys.argv[2])
    text = (REPO / "inventories/example-production.toml").read_text()
    head = text.split("\n[[nodes]]", 1)[0]
    nodes = "\n[[nodes]]" + text.split("\n[[nodes]]", 1)[1]
    keep = [b for b in nodes.split("\n[[nodes]]") if b.strip() and 'role = "Compute"' not in b]
    head = head.replace('templates = "../templates"', f'templates = "{REPO}/templates"')
    head = head.replace('roles = "../roles"', f'roles = "{REPO}/roles"')
    head = head.replace('file = "example-production.secrets.toml"', f'file = "{REPO}/inventories/example-production.secrets.toml"')
    head = re.sub(r"(\[roles\.Compute\]\ncount = )\d+", lambda m: m.group(1) + str(n), head)
    # Widen every network to a /16 so N hosts fit; host numbers stay mirrored.
    head = re.sub(r'cidr = "(\d+)\.(\d+)\.\d+\.0/24"', r'cidr = "\1.\2.0.0/16"', head)
    head = re.sub(r'allocation_end = "(\d+)\.(\d+)\.\d+\.250"', r'allocation_end = "\1.\2.250.250"', head)
    blocks = ["\n[[nodes]]" + b for b in keep]
    for i in range(n):
        off = 512 + i  # from 192.168.26.0: clear of the controllers and Ceph nodes
        ip = f"192.168.{24 + off // 256}.{off % 256}"
        blocks.append(
            f'\n[[nodes]]\nrole = "Compute"\nctlplane_ip = "{ip}"\nmacs = ["52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"]\n'
            f'bmc = {{ driver = "redfish", address = "10.101.{i // 250}.{i % 250 + 1}", system_id = "System.Embedded.1", username = "root", password = {{ secret = "bmc_password" }} }}\n'
        )
    out.write_text(head + "".join(blocks))


if __name__ == "__main__":
    main()
