#!/usr/bin/env bash
# Benchmark of validate on bad input: example-production scaled to N computes with an
# error on every one (benches/scale_inventory.py --errors KIND: `mac`, a MAC that is
# not one; `mixed`, five kinds in turn), timed listing the first 50 errors (the
# default) and listing all (--all-errors). Reports the median of 5 runs, the peak
# memory, the time per node (flat when the growth is linear) and the lines printed.
#
#   benches/validate-bad.sh [N ...]        (default: 5000 20000 50000 200000)
#   KINDS="mac" benches/validate-bad.sh    (default: mac mixed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked -q
bin="${CARGO_TARGET_DIR:-target}/release/provision"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sizes=("$@"); ((${#sizes[@]})) || sizes=(5000 20000 50000 200000)
read -r -a kinds <<< "${KINDS:-mac mixed}"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
measure() { # command... -> "seconds max_rss_mb" (the command must exit 1: invalid)
    local times=() rss=0
    for _ in 1 2 3 4 5; do
        local out code=0
        /usr/bin/time -o "$work/time" -f '%e %M' "$@" >/dev/null 2>&1 || code=$?
        ((code == 1)) || { echo "validate-bad.sh: exit $code, not 1: $*" >&2; exit 1; }
        out=$(tail -n1 "$work/time")
        times+=("${out% *}")
        local kb=${out#* }
        ((kb > rss)) && rss=$kb
    done
    printf '%s %s\n' "$(printf '%s\n' "${times[@]}" | median)" "$((rss / 1024))"
}

printf '| errors | computes | errors found | validate (s) | µs per node | peak RSS (MB) | lines printed | --all-errors (s) | lines printed |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for kind in "${kinds[@]}"; do
    for n in "${sizes[@]}"; do
        inv="$work/bad-$kind-$n.toml"
        python3 benches/scale_inventory.py "$n" "$inv" --errors "$kind"
        "$bin" validate "$inv" >/dev/null 2>"$work/err" || true
        found=$(sed -n 's/.* is not valid: \([0-9,]*\) errors\{0,1\} found$/\1/p' "$work/err")
        lines=$(wc -l < "$work/err")
        "$bin" validate --all-errors "$inv" >/dev/null 2>"$work/err" || true
        all_lines=$(wc -l < "$work/err")
        read -r vt vm < <(measure "$bin" validate "$inv")
        read -r at _ < <(measure "$bin" validate --all-errors "$inv")
        per=$(awk -v t="$vt" -v n="$n" 'BEGIN {printf "%.1f", t * 1e6 / n}')
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
            "$kind" "$n" "$found" "$vt" "$per" "$vm" "$lines" "$at" "$all_lines"
    done
done
