#!/usr/bin/env bash
# Transport benchmark on the local lab (lab/lab.sh), 2-core machine figures in
# docs/performance.md:
#   1. sessions: connect to the undercloud, then to N nodes THROUGH it, all at once,
#      and run `true` on each: provision (russh) with each key exchange offered first,
#      and OpenSSH's client (ssh -J, one process per node, all at once) beside it;
#   2. uploads: 100 small files to each of 10 nodes, atomically (temp file, checksum,
#      fsync, rename), over one connection per node: one command per file, then one
#      batch (one command) per node.
# Median of 5 runs each.
#
#   benches/transport.sh [N]      (default 50; starts the lab with N nodes, stops it after)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n="${1:-50}"
cargo build --release --locked -q --example ssh_bench
bench=target/release/examples/ssh_bench
lab/lab.sh up --nodes "$n" >/dev/null
trap 'lab/lab.sh down >/dev/null' EXIT
inv="lab/state/lab-$n.toml"
[[ $n == 6 ]] && inv=inventories/lab.toml

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

echo "| what | key exchange | median (s) |"
echo "|---|---|---:|"
for kex in curve25519-sha256 mlkem768x25519-sha256,curve25519-sha256 diffie-hellman-group14-sha256; do
    runs=()
    for _ in 1 2 3 4 5; do runs+=("$(PROVISION_KEX="$kex" "$bench" "$inv" sessions | field total)"); done
    echo "| provision: undercloud + $n nodes through it, connect and run \`true\` | ${kex%%,*} first | $(printf '%s\n' "${runs[@]}" | median) |"
done

# OpenSSH beside it: one ssh process per node, all at once, through the undercloud.
ssh_opts=(-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$PWD/lab/state/known_hosts" -i "$PWD/lab/state/id_ed25519" -o ControlMaster=no)
jump="ssh ${ssh_opts[*]} -W %h:%p root@127.0.10.1"
addrs=$(awk -F'\t' '$3 == "node" {print $2}' lab/state/hosts.tsv)
runs=()
for _ in 1 2 3 4 5; do
    start=$(date +%s.%N)
    for a in $addrs; do ssh "${ssh_opts[@]}" -o ProxyCommand="$jump" "root@$a" true & done
    wait
    runs+=("$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}')")
done
echo "| OpenSSH client (ssh with ProxyCommand ssh -W), $n nodes at once, run \`true\` | OpenSSH default (sntrup761x25519) | $(printf '%s\n' "${runs[@]}" | median) |"

runs=()
for _ in 1 2 3 4 5; do runs+=("$("$bench" "$inv" upload 10 100 | field upload)"); done
echo "| provision: 100 small files to each of 10 nodes, one atomic upload per file (after connecting) | curve25519-sha256 first | $(printf '%s\n' "${runs[@]}" | median) |"
runs=()
for _ in 1 2 3 4 5; do runs+=("$("$bench" "$inv" batch 10 100 | field upload)"); done
echo "| provision: 100 small files to each of 10 nodes, one atomic batch per node (after connecting) | curve25519-sha256 first | $(printf '%s\n' "${runs[@]}" | median) |"
