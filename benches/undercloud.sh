#!/usr/bin/env bash
# The undercloud stage's cost on the local lab (lab/lab.sh up; 6 nodes):
#   services from empty   the undercloud's own services removed (containers, /etc,
#                         /var/lib and /var/log/undercloud, the registries drop-in),
#                         then `provision apply`: checks, the undercloud's files and
#                         containers (dnsmasq, log_receiver), a no-op on the nodes
#   no-op                 `provision apply` with everything converged (the undercloud is
#                         read with the nodes, in parallel)
# Prints the median of RUNS (default 5) wall-clock seconds of each, and the undercloud
# stage's phases as apply's progress reports them.
#
#   benches/undercloud.sh [RUNS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-5}"
lab/lab.sh status >/dev/null 2>&1 || { echo "the lab is not up: lab/lab.sh up" >&2; exit 1; }
cargo build --release --locked -q
bin=target/release/provision inv=inventories/lab.toml
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wall() { /usr/bin/time -o "$work/t" -f '%e' "$@" > "$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }; tail -n1 "$work/t"; }
empty_undercloud() {
    ssh -F lab/state/ssh_config lab-undercloud \
        'podman ps -aq --filter label=managed_by=provision | xargs -r podman rm -f -t 0 >/dev/null 2>&1;
         rm -rf /etc/undercloud/* /var/lib/undercloud/* /var/log/undercloud/* /etc/containers/registries.conf.d/50-provision.conf'
}
"$bin" apply "$inv" --yes > /dev/null 2>&1
cold=() noop=()
for ((i = 0; i < runs; i++)); do
    empty_undercloud
    cold+=("$(wall "$bin" apply "$inv" --yes)")
    grep -E 'undercloud (host preparation|step).*finished' "$work/out" | sed 's/^/    /' > "$work/phases"
    noop+=("$(wall "$bin" apply "$inv" --yes)")
    grep -q "No changes" "$work/out" || { echo "no-op run changed something:" >&2; cat "$work/out" >&2; exit 1; }
done
echo "undercloud services from empty: $(printf '%s\n' "${cold[@]}" | median) s (runs: ${cold[*]}); last run's phases:"
cat "$work/phases"
echo "no-op (undercloud + 6 nodes): $(printf '%s\n' "${noop[@]}" | median) s (runs: ${noop[*]})"
