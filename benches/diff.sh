#!/usr/bin/env bash
# Benchmark of `provision diff` between two revisions of example-production.toml scaled
# to N computes (default 1000): a temporary git repository, a base commit, and a head
# commit changing a template (haproxy), a role variable (every compute's nova.conf) and a
# secret. Timed on one core (taskset -c 0), median of 5 runs, with peak memory.
#
#   benches/diff.sh [N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_dir="$(pwd)"
n="${1:-1000}"
cargo build --release --locked -q
bin="$repo_dir/target/release/provision"
work="$(mktemp -d)"
trap '[[ -n ${DIFF_KEEP:-} ]] && echo "kept $work" >&2 || rm -rf "$work"' EXIT
g() { git -c user.name=bench -c user.email=bench@example.invalid -c commit.gpgsign=false "$@"; }

mkdir -p "$work/cloud/inventories"
cp -r roles templates "$work/cloud/"
cp inventories/example-production.secrets.toml "$work/cloud/inventories/"
python3 benches/scale_inventory.py "$n" "$work/cloud/inventories/prod.toml"
# The scaled inventory points at absolute paths; make them relative to the repository copy.
sed -i -e "s#templates = \".*\"#templates = \"../templates\"#" -e "s#roles = \".*\"#roles = \"../roles\"#" \
       -e "s#file = \".*secrets.toml\"#file = \"example-production.secrets.toml\"#" "$work/cloud/inventories/prod.toml"
cd "$work/cloud"
g init -q -b main && g add -A && g commit -q -m base
sed -i 's/timeout http-keep-alive 10s/timeout http-keep-alive 30s/' templates/haproxy/haproxy.cfg.j2
sed -i 's/^\[roles.Compute.config.nova.DEFAULT\]$/[roles.Compute.vars]\nnova_reserved_host_memory_mb = 2048\n\n&/' inventories/prod.toml
sed -i 's/^keystone_db_password = .*/keystone_db_password = "rotated-for-bench"/' inventories/example-production.secrets.toml
g commit -q -am head

hosts=$("$bin" validate inventories/prod.toml | sed -n 's/.*, \([0-9]*\) nodes.*/\1/p')
times=() rss=0
for _ in 1 2 3 4 5; do
    /usr/bin/time -o "$work/time" -f '%e %M' taskset -c 0 "$bin" diff inventories/prod.toml --base HEAD~1 --head HEAD > "$work/out.txt"
    read -r t kb < "$work/time"
    times+=("$t"); ((kb > rss)) && rss=$kb
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "| hosts | diff, one core (s) | peak RSS (MB) | summary |"
echo "|---:|---:|---:|---|"
echo "| $hosts | $median | $((rss / 1024)) | $(tail -n1 "$work/out.txt") |"
