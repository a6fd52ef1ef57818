#!/usr/bin/env bash
# Creates (or refreshes) the Python virtualenv with the OpenStack projects whose
# option definitions check_rendered.py validates rendered INI files against.
#
#   PROVISION_VENV   venv folder (default: <repo>/.cache/oslo-venv)
#
# Idempotent: when the venv exists and was built from the same requirements.txt
# it returns at once. A from-scratch install takes about a minute.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${PROVISION_VENV:-$repo/.cache/oslo-venv}"
req="$here/requirements.txt"
stamp="$venv/.provision-requirements.sha256"
want="$( (cat "$req"; python3 --version) | sha256sum | cut -d' ' -f1)"

if [[ -x "$venv/bin/oslo-config-validator" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

start=$(date +%s)
echo "setup.sh: installing $req into $venv" >&2
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
# option data generated from the previous install is stale now
rm -rf "$venv/.provision-optdata"
echo "$want" > "$stamp"
echo "setup.sh: done in $(( $(date +%s) - start ))s" >&2
