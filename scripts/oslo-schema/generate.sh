#!/usr/bin/env bash
# Generates the option catalogue of one OpenStack release:
#
#   scripts/oslo-schema/generate.sh RELEASE [--self-check | --self-check-only]
#
# --self-check-only checks the committed catalogue without making it again (the suite
# runs this: scripts/test.sh).
# RELEASE names scripts/oslo-schema/releases/RELEASE.txt (pip requirements pinning the
# release's services and libraries). Builds a throwaway virtualenv in
# .cache/oslo-schema/RELEASE/venv (reused while it was built from the same requirements
# file: a sha256 stamp, as tests/config-check/setup.sh), installs the release into it
# and runs generate.py with its python, which writes
# templates/_common/oslo/schema/RELEASE.json. --self-check then runs selfcheck.py
# RELEASE (needs target/release/provision: cargo build --release).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

usage() { echo "usage: $0 RELEASE [--self-check | --self-check-only]   (RELEASE: $(cd "$here/releases" && ls *.txt | sed 's/\.txt$//' | tr '\n' ' '))" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
release="$1"; shift
selfcheck=0
generate=1
for a in "$@"; do
    case "$a" in
        --self-check) selfcheck=1 ;;
        --self-check-only) selfcheck=1; generate=0 ;;
        *) usage ;;
    esac
done
req="$here/releases/$release.txt"
[[ -f "$req" ]] || { echo "error: $req not found" >&2; usage; }

cache="$repo/.cache/oslo-schema/$release"
venv="$cache/venv"
stamp="$venv/.oslo-schema-requirements.sha256"
want="$( (cat "$req"; python3 --version) | sha256sum | cut -d' ' -f1)"

t0=$(date +%s)
if [[ -x "$venv/bin/oslo-config-generator" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "generate.sh: venv $venv is up to date" >&2
else
    echo "generate.sh: installing $req into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
fi
t1=$(date +%s)
echo "generate.sh: venv: $(( t1 - t0 ))s" >&2

if [[ $generate == 1 ]]; then
    "$venv/bin/python" "$here/generate.py" "$release" --cache "$cache"
fi
t2=$(date +%s)
echo "generate.sh: generation: $(( t2 - t1 ))s" >&2

if [[ $selfcheck == 1 ]]; then
    "$venv/bin/python" "$here/selfcheck.py" "$release"
    t3=$(date +%s)
    echo "generate.sh: self-check: $(( t3 - t2 ))s" >&2
fi
