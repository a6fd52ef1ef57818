#!/usr/bin/env bash
# provision apply vs ansible-core (copy module) vs pyinfra (files.put), on the local lab
# (lab/lab.sh), side by side in one run, for each N of the arguments (default "10 50"):
# the lab with N nodes (lab/state/lab-N.toml: 1 Controller + N-1 Computes), every tool
# pushes the same files (provision render of that inventory) through the undercloud
# (ProxyJump for ansible and pyinfra too), and three figures per tool:
#   cold      /etc/overcloud, /var/lib/overcloud, /var/log/overcloud emptied on every node first
#   no-op     the same again (nothing to write)
#   one change  [config.nova.DEFAULT] reserved_host_memory_mb = 1234 added to a copy of the
#             inventory: every nova*.conf and its container definition change (provision
#             applies that inventory; ansible and pyinfra push its render)
# After each tool's cold apply the files of two nodes are checked against the render
# (sha256, mode, owner, group over ssh). One run of each figure (not a median).
#
#   benches/compare.sh [N...]     (starts the lab, stops it after; ansible-core and pyinfra
#                                  are installed from PyPI into .cache/compare-venv)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(10 50)

venv=$root/.cache/compare-venv
if [[ ! -x $venv/bin/ansible-playbook || ! -x $venv/bin/pyinfra ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q ansible-core pyinfra
fi
cargo build --release --locked -q
prov=$root/target/release/provision

work=$(mktemp -d /tmp/provision-compare.XXXXXX)
cleanup() {
    lab/lab.sh down >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }
log() { echo "[compare] $*" >&2; }

# run_ssh HOST CMD: on a node through the undercloud (the generated ssh_config jumps)
run_ssh() { timeout 60 ssh -F "$work/ssh_config" "$1" "$2"; }

empty_nodes() {
    local pids=() h
    for h in $nodes; do
        run_ssh "$h" 'rm -rf /etc/overcloud/* /var/lib/overcloud/* /var/log/overcloud/*' &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
}

# check TOOL RENDER: the files of the first and last node are the render's
check() {
    local tool=$1 render=$2 h
    for h in $(echo "$nodes" | awk '{print $1, $NF}'); do
        python3 - "$render/manifest.json" "$h" >"$work/expect" <<'EOF'
import json, sys
ids = {"root": "0"}
h = json.load(open(sys.argv[1]))["hosts"][sys.argv[2]]
for f in sorted(h["files"], key=lambda f: f["path"]):
    print(f["sha256"], int(f["mode"], 8), ids.get(f["owner"], f["owner"]),
          ids.get(f["group"], f["group"]), f["path"])
EOF
        awk '{print $NF}' "$work/expect" |
            run_ssh "$h" 'while read -r p; do s=$(sha256sum "$p" | cut -d" " -f1); echo "$s $(stat -c "%a %u %g" "$p") $p"; done' \
            >"$work/got" || true
        if ! python3 - "$work/expect" "$work/got" <<'EOF'
import sys
e = [l.split() for l in open(sys.argv[1])]
g = [l.split() for l in open(sys.argv[2])]
g = [(r[0], str(int(r[1], 8)), r[2], r[3], r[4]) for r in g if len(r) == 5]
e = [(r[0], r[1], r[2], r[3], r[4]) for r in e]
sys.exit(0 if e == g else 1)
EOF
        then
            log "CHECK FAILED: $tool on $h: files differ from the render"
            diff "$work/expect" "$work/got" | head -5 >&2 || true
            checks+=("$tool on $h: DIFFERENT")
            return 1
        fi
    done
    checks+=("$tool: $(echo "$nodes" | awk '{print $1, "and", $NF}') identical to the render ($(wc -l <"$work/expect") files on the last)")
}

run_provision() { "$prov" apply "$1" --yes >>"$work/provision.log" 2>&1; }
run_ansible() {
    (cd "$work/ansible" && ANSIBLE_CONFIG=$work/ansible/ansible.cfg \
        "$venv/bin/ansible-playbook" site.yml >>"$work/ansible.log" 2>&1)
}
run_pyinfra() {
    (cd "$work/pyinfra" && COMPARE_MANIFEST=$1/manifest.json COMPARE_RENDER=$1 \
        timeout 1800 "$venv/bin/pyinfra" -y --parallel "$n" inventory.py "$root/benches/compare/deploy.py" \
        >>"$work/pyinfra.log" 2>&1)
}

rows=()
checks=()
for n in "${sizes[@]}"; do
    log "lab with $n nodes"
    lab/lab.sh up --nodes "$n" >/dev/null
    inv=lab/state/lab-$n.toml
    [[ $n == 6 ]] && inv=inventories/lab.toml
    rm -rf "${work:?}"/*
    nodes=$(python3 benches/compare/gen.py "$work" lab/state "$inv")
    "$prov" render "$work/base.toml" --out "$work/base" >/dev/null
    "$prov" render "$work/changed.toml" --out "$work/changed" >/dev/null
    changed_files=$(diff -rq "$work/base" "$work/changed" | grep -vc manifest.json || true)
    total_files=$(python3 -c 'import json,sys; print(sum(len(h["files"]) for h in json.load(open(sys.argv[1]))["hosts"].values()))' "$work/base/manifest.json")

    declare -A t=()
    for tool in provision ansible pyinfra; do
        log "$tool: $n nodes, cold"
        empty_nodes
        case $tool in
        provision) start=$(now); run_provision "$work/base.toml"; t[$tool.cold]=$(elapsed "$start")
                   check provision "$work/base" || true
                   start=$(now); run_provision "$work/base.toml"; t[$tool.noop]=$(elapsed "$start")
                   start=$(now); run_provision "$work/changed.toml"; t[$tool.change]=$(elapsed "$start") ;;
        ansible)   python3 benches/compare/vars.py "$work/base/manifest.json" "$work/ansible" "$work/base"
                   start=$(now); run_ansible; t[$tool.cold]=$(elapsed "$start")
                   check ansible "$work/base" || true
                   start=$(now); run_ansible; t[$tool.noop]=$(elapsed "$start")
                   python3 benches/compare/vars.py "$work/changed/manifest.json" "$work/ansible" "$work/changed"
                   start=$(now); run_ansible; t[$tool.change]=$(elapsed "$start") ;;
        pyinfra)   start=$(now); run_pyinfra "$work/base"; t[$tool.cold]=$(elapsed "$start")
                   check pyinfra "$work/base" || true
                   start=$(now); run_pyinfra "$work/base"; t[$tool.noop]=$(elapsed "$start")
                   start=$(now); run_pyinfra "$work/changed"; t[$tool.change]=$(elapsed "$start") ;;
        esac
        check "$tool (after one change)" "$work/changed" || true
        log "$tool: cold ${t[$tool.cold]} s, no-op ${t[$tool.noop]} s, one change ${t[$tool.change]} s"
    done
    for tool in provision ansible pyinfra; do
        rows+=("| $n | $tool | ${t[$tool.cold]} | ${t[$tool.noop]} | ${t[$tool.change]} |")
    done
    for other in ansible pyinfra; do
        rows+=("| $n | $other / provision | $(awk -v a="${t[$other.cold]}" -v b="${t[provision.cold]}" 'BEGIN{printf "%.1fx", a/b}') | $(awk -v a="${t[$other.noop]}" -v b="${t[provision.noop]}" 'BEGIN{printf "%.1fx", a/b}') | $(awk -v a="${t[$other.change]}" -v b="${t[provision.change]}" 'BEGIN{printf "%.1fx", a/b}') |")
    done
    checks+=("$n nodes: $total_files files of the manifest pushed by each tool; the one change rewrites $changed_files files")
    unset t
    lab/lab.sh down >/dev/null
done

echo "| hosts | tool | cold apply (s) | no-op (s) | one change (s) |"
echo "|---:|---|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "ansible-core $("$venv/bin/ansible" --version | head -1 | sed 's/.*core //; s/]//'), pyinfra $("$venv/bin/pyinfra" --version | sed 's/.*v//'); all three jump through the undercloud (127.0.10.1)."
printf -- '- %s\n' "${checks[@]}"
