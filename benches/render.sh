#!/usr/bin/env bash
# Benchmark of the offline pipeline: validate (parse, model, render in memory) and
# render (the same, plus writing every file and the manifest) of example-production
# scaled to N computes. Reports the median of 5 runs and the peak memory.
#
#   benches/render.sh [N ...]        (default: 20 100 1000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked -q
bin=target/release/provision
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sizes=("$@"); ((${#sizes[@]})) || sizes=(20 100 1000)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
measure() { # command... -> "seconds max_rss_mb"
    local times=() rss=0
    for _ in 1 2 3 4 5; do
        local out
        rm -rf "$work"/out*  # render into a fresh folder; deleting the last one is not timed
        /usr/bin/time -o "$work/time" -f '%e %M' "$@" >/dev/null 2>&1
        out=$(tail -n1 "$work/time")
        times+=("${out% *}")
        local kb=${out#* }
        ((kb > rss)) && rss=$kb
    done
    printf '%s %s\n' "$(printf '%s\n' "${times[@]}" | median)" "$((rss / 1024))"
}

printf '| hosts | files | validate (s) | validate peak RSS (MB) | render to disk (s) | render peak RSS (MB) |\n'
printf '|---:|---:|---:|---:|---:|---:|\n'
for n in "${sizes[@]}"; do
    inv="$work/prod$n.toml"
    python3 benches/scale_inventory.py "$n" "$inv"
    files=$("$bin" validate "$inv" | sed -n 's/.* \([0-9]*\) files.*/\1/p')
    read -r vt vm < <(measure "$bin" validate "$inv")
    read -r rt rm_ < <(measure "$bin" render "$inv" --out "$work/out$n")
    printf '| %s | %s | %s | %s | %s | %s |\n' "$((n + 6))" "$files" "$vt" "$vm" "$rt" "$rm_"
done
