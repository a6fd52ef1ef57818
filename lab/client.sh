#!/usr/bin/env bash
# The OpenStack command-line client for the lab's cloud: python-openstackclient 7.4.0
# (OpenStack 2025.1, the release the lab runs; what Debian 13 packages) from PyPI into
# a venv, .cache/client-venv. Prints the path of its `openstack` program.
#
#   lab/client.sh                 install (or reuse) and print the path
#   $(lab/client.sh) --os-cloud lab token issue
#
# Idempotent: with the venv built from the same pins it returns at once.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.cache/client-venv"
# osc-placement 4.6.0 (2025.1): `openstack resource provider list`
pins=("python-openstackclient==7.4.0" "osc-placement==4.6.0")
stamp="$venv/.provision-client.sha256"
want="$( (printf '%s\n' "${pins[@]}"; python3 --version) | sha256sum | cut -d' ' -f1)"
if [[ ! -x $venv/bin/openstack || ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
    start=$(date +%s)
    echo "client.sh: installing ${pins[*]} into $venv" >&2
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
    echo "$want" > "$stamp"
    echo "client.sh: done in $(( $(date +%s) - start ))s" >&2
fi
echo "$venv/bin/openstack"
