#!/usr/bin/env bash
# provision apply vs ansible-core (copy + handlers) vs pyinfra (files.put + conditional
# shell), on the local lab (lab/lab.sh), side by side in one run, for each N of the
# arguments (default "10 50"): the lab with N nodes (lab/state/lab-N.toml: 1 Controller
# + N-1 Computes); every tool makes the nodes match the same render (provision render of
# that inventory), through the undercloud (ProxyJump for ansible and pyinfra too):
#   - the files, with their modes and owners (one handler per service notified by them);
#   - the containers of every service whose files changed, as provision does them: for
#     ansible and pyinfra, the service's handler runs `podman rm --force --time 10
#     --ignore NAME && podman run ...` with provision's exact arguments (built from the
#     rendered container definition by benches/compare/podman.py, as run_args in
#     src/host/script.rs) and polls `podman healthcheck run NAME` until it passes
#     (at most 50 tries, 0.2 s apart). Handlers run in deploy-step order. ansible: one
#     copy task per service (benches/compare/vars.py says why); pyinfra: a service
#     restarts when one of its files' content changed (benches/compare/deploy.py).
# Three figures per tool:
#   cold        every node emptied first: its managed containers removed (podman rm -f
#               -t 0), /etc/overcloud, /var/lib/overcloud, /var/log/overcloud emptied, and
#               the registries.conf.d and logrotate.d drop-ins removed
#   no-op       the same again (nothing to write, nothing to restart)
#   one change  [config.nova.DEFAULT] reserved_host_memory_mb = 1234 added to a copy of
#               the inventory: every nova*.conf and its container definition change, so
#               every nova container is recreated (provision applies that inventory;
#               ansible and pyinfra push its render). Before each repetition but the
#               first, the base is applied again (not timed).
# provision: the median of COMPARE_PROVISION_RUNS (3) runs of each figure; ansible-core
# and pyinfra: the median of COMPARE_OTHER_RUNS (3) runs at N <= 10, one run above
# (COMPARE_OTHER_RUNS_LARGE, 1). After every cold and one-change run, the first and last
# node are checked against the render: every file (sha256, mode, uid, gid) and every
# container (`podman ps -a --format json`: the render's names only, each running, with
# the render's provision.config_hash label). Every no-op run is checked to change
# nothing. Any difference or tool failure is printed with the table.
# Before the figures, one untimed provision apply does provision's bare-metal stage
# (adopting and introspecting every node, once; ansible and pyinfra have none).
# Also per N: the podman floor (podman_floor below: the cold and one-change runs'
# container work alone, the tasks the run runs included, by a bare script per node;
# the table gives provision's ratio to it), the floor, `provision ping` (a handshake per host + one command), and
# `provision plan` on converged nodes (median of 3), and where provision's median cold
# and one-change runs spent their time (their event logs, benches/compare/events.py).
#
#   benches/compare.sh [N...]     (starts the lab, stops it after; ansible-core and pyinfra
#                                  are installed from PyPI into .cache/compare-venv)
#   COMPARE_KEEP=1 keeps the work directory (logs, event logs, renders) and names it.
#   COMPARE_OTHERS=0 measures provision alone (no ansible, no pyinfra);
#   COMPARE_PROVISION=PATH measures another provision binary (an earlier commit's, built
#   in a worktree), for side-by-side figures of two commits.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(10 50)
prov_runs=${COMPARE_PROVISION_RUNS:-3}
other_runs_small=${COMPARE_OTHER_RUNS:-3}
other_runs_large=${COMPARE_OTHER_RUNS_LARGE:-1}

venv=$root/.cache/compare-venv
if [[ ! -x $venv/bin/ansible-playbook || ! -x $venv/bin/pyinfra ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q ansible-core pyinfra
fi
cargo build --release --locked -q
prov=${COMPARE_PROVISION:-$root/target/release/provision}
others=${COMPARE_OTHERS:-1}
lib=$root/benches/compare

work=$(mktemp -d /tmp/provision-compare.XXXXXX)
cleanup() {
    lab/lab.sh down >/dev/null 2>&1 || true
    if [[ -n ${COMPARE_KEEP:-} ]]; then echo "[compare] work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }
log() { echo "[compare $(date +%T)] $*" >&2; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1fx", a / b}'; }

# run_ssh HOST CMD: on a node through the undercloud (the generated ssh_config jumps)
run_ssh() { timeout 120 ssh -F "$work/ssh_config" "$1" "$2"; }

# empty_nodes WHAT: every node's managed containers removed and its three directories
# emptied, then checked: no managed container and no file left (directories may stay: a
# check that wanted nothing at all left failed on every node of a 50-node run, for a
# reason not diagnosed then; what is left is printed); nodes whose SSH failed (50
# connections at once through the undercloud, while podman removes ~300 containers on 2
# cores, can time out in the banner exchange) are tried again, at most 5 rounds; any left
# is reported in the checks
empty_nodes() {
    local what=$1 round h pending=$nodes
    for round in 1 2 3 4 5; do
        : >"$work/empty.failed"
        for h in $pending; do
            { run_ssh "$h" 'podman ps -aq --filter label=managed_by=provision | xargs -r podman rm -f -t 0 >/dev/null 2>&1; rm -rf /etc/overcloud/* /var/lib/overcloud/* /var/lib/overcloud/.provision-running /var/lib/overcloud/.provision-files /var/log/overcloud/* /etc/containers/registries.conf.d/50-provision.conf /etc/logrotate.d/provision 2>/dev/null
                left=$(podman ps -aq --filter label=managed_by=provision; find /etc/overcloud /var/lib/overcloud /var/log/overcloud -mindepth 1 ! -type d | head -3)
                [ -z "$left" ] || { echo $left; exit 1; }' \
                >"$work/empty.$h" 2>&1 || echo "$h" >>"$work/empty.failed"; } &
        done
        wait
        pending=$(cat "$work/empty.failed")
        [[ -n $pending ]] || return 0
        log "emptying: $(echo $pending | wc -w) nodes not emptied (round $round; $(echo $pending | awk '{print $1}'): $(head -c 200 "$work/empty.$(echo $pending | awk '{print $1}')")), again"
        sleep 2
    done
    checks+=("$n hosts, before $what: NOT EMPTIED: $(for h in $pending; do echo "$h ($(head -c 120 "$work/empty.$h"))"; done | tr '\n' ' ')")
}

# check WHAT RENDER: the first and last node against the render (files and containers)
check() {
    local what=$1 render=$2 h out bad=0 lines=()
    for h in $(echo "$nodes" | awk '{print $1, $NF}'); do
        python3 "$lib/check.py" expect "$render/manifest.json" "$h" >"$work/expect"
        awk '{print $NF}' "$work/expect" |
            run_ssh "$h" 'while read -r p; do s=$(sha256sum "$p" 2>/dev/null | cut -d" " -f1); echo "$s $(stat -c "%a %u %g" "$p" 2>/dev/null) $p"; done' \
            >"$work/got" || true
        run_ssh "$h" 'podman ps -a --format json' >"$work/ps.json" || true
        if ! out=$(python3 "$lib/check.py" compare "$render" "$h" "$work/expect" "$work/got" "$work/ps.json"); then
            bad=1
            log "CHECK FAILED: $what: $out"
        fi
        lines+=("$out")
    done
    if [[ $bad == 1 ]]; then
        checks+=("$n hosts, $what: DIFFERENT: ${lines[*]}")
    else
        checks+=("$n hosts, $what: ${lines[*]}")
    fi
}

# invoke TOOL VARIANT (base | changed) RUNNAME: one run, output in $work/out
invoke() {
    local tool=$1 variant=$2 name=$3
    case $tool in
    provision)
        timeout 900 "$prov" apply "$work/$variant.toml" --yes --run-dir "$work/runs/$name" ;;
    ansible)
        (cd "$work/ansible" && ANSIBLE_CONFIG=$work/ansible/ansible.cfg \
            timeout 3600 "$venv/bin/ansible-playbook" site.yml) ;;
    pyinfra)
        (cd "$work/pyinfra" && COMPARE_MANIFEST=$work/$variant/manifest.json COMPARE_RENDER=$work/$variant \
            COMPARE_LIB=$lib timeout 3600 "$venv/bin/pyinfra" -y --parallel "$n" inventory.py "$lib/deploy.py") ;;
    esac
}

# timed TOOL VARIANT RUNNAME: sets secs (wall time) and did (what the tool says it did);
# a failure is recorded in checks.
timed() {
    local tool=$1 variant=$2 name=$3 start rc=0
    [[ $tool != ansible ]] || python3 "$lib/vars.py" "$work/$variant/manifest.json" "$work/ansible" "$work/$variant"
    start=$(now)
    invoke "$tool" "$variant" "$name" >"$work/out" 2>&1 || rc=$?
    secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}')
    echo "$start $secs" >"$work/runs/$name.time"
    { echo "=== $name ($variant): exit $rc, $secs s"; cat "$work/out"; } >>"$work/$tool.log"
    case $tool in
    provision) did=$(grep -E '^(Apply complete|Apply FAILED|No changes)' "$work/out" | tail -1 || true) ;;
    ansible)   did=$(awk '/PLAY RECAP/ {r = 1; next} r && / : ok=/ {for (i = 1; i <= NF; i++) {split($i, kv, "="); s[kv[1]] += kv[2]}} END {printf "recap: changed=%d failed=%d unreachable=%d (tasks and handlers, all hosts)", s["changed"], s["failed"], s["unreachable"]}' "$work/out") ;;
    pyinfra)   did=$(sed 's/\x1b\[[0-9;]*m//g' "$work/out" | awk '/^ *restart / {gsub(/ - /, " 0 "); gsub(/ -$/, " 0"); r += $(NF - 2)} /Grand total/ {gsub(/-/, "0"); c = $(NF - 2); e = $(NF - 1); u = $NF} END {printf "operations: %d changed (of which %d restarts), %d errors, %d no change (all hosts)", c, r, e, u}') ;;
    esac
    if [[ $rc != 0 ]]; then
        log "$tool $name FAILED (exit $rc): $did"
        tail -n 15 "$work/out" | sed 's/^/    /' >&2
        checks+=("$n hosts, $tool $name: FAILED (exit $rc): $did; last lines: $(tail -n 3 "$work/out" | tr '\n' ' ' | cut -c1-300)")
    fi
    return 0
}

# snapshot FILE: every file's mtime under /etc/overcloud and /var/lib/overcloud, and
# every container's id, on the first and last node (a rewritten file or a recreated
# container shows). Not the files stamp, provision's own record of its files' stats:
# the first no-op after a run that wrote files records their new stats (the run's own
# survey read them before it wrote them); a later no-op leaves it as it was.
snapshot() {
    local h
    for h in $(echo "$nodes" | awk '{print $1, $NF}'); do
        echo "== $h"
        run_ssh "$h" 'find /etc/overcloud /var/lib/overcloud -type f ! -name .provision-files -printf "%T@ %p\n" | sort -k2; podman ps -a --format "{{.ID}} {{.Names}}" | sort -k2' || echo "ssh failed"
    done >"$1"
}

# is_noop TOOL: whether the run in $work/out changed nothing: no file rewritten and no
# container recreated on the first and last node (snapshots before and after), and the
# tool reports nothing done (pyinfra: no restart; it re-chowns files owned by ids
# without a name on the host on every run, see benches/compare/deploy.py)
is_noop() {
    cmp -s "$work/snap.before" "$work/snap.after" || return 1
    case $1 in
    provision) grep -q '^No changes' "$work/out" ;;
    ansible)   [[ $did == "recap: changed=0 failed=0 unreachable=0"* ]] ;;
    pyinfra)   [[ $did == *"(of which 0 restarts), 0 errors"* ]] ;;
    esac
}

# measure TOOL RUNS: cold, no-op and one-change figures (medians) into t[TOOL.*]
measure() {
    local tool=$1 runs=$2 i cold=() noop=() change=() cold_did noop_did change_did noop_bad=0
    for ((i = 1; i <= runs; i++)); do
        log "$tool: $n nodes, cold $i/$runs"
        empty_nodes "$tool cold $i"
        timed "$tool" base "$n-$tool-cold-$i"; cold+=("$secs"); [[ $i == 1 ]] && cold_did=$did
        check "$tool cold $i" "$work/base"
    done
    for ((i = 1; i <= runs; i++)); do
        log "$tool: $n nodes, no-op $i/$runs"
        snapshot "$work/snap.before"
        timed "$tool" base "$n-$tool-noop-$i"; noop+=("$secs"); [[ $i == 1 ]] && noop_did=$did
        snapshot "$work/snap.after"
        is_noop "$tool" || { noop_bad=1; checks+=("$n hosts, $tool no-op $i: CHANGED SOMETHING: $did; first/last node: $(diff "$work/snap.before" "$work/snap.after" | grep -c '^>' || true) files or containers new or rewritten: $( (diff "$work/snap.before" "$work/snap.after" || true) | grep '^>' | head -n 3 | tr '\n' ' ')"); }
    done
    for ((i = 1; i <= runs; i++)); do
        if ((i > 1)); then
            log "$tool: $n nodes, back to the base (not timed)"
            timed "$tool" base "$n-$tool-revert-$i"
        fi
        log "$tool: $n nodes, one change $i/$runs"
        timed "$tool" changed "$n-$tool-change-$i"; change+=("$secs"); [[ $i == 1 ]] && change_did=$did
        check "$tool one change $i" "$work/changed"
    done
    t[$tool.cold]=$(median "${cold[@]}")
    t[$tool.noop]=$(median "${noop[@]}")
    t[$tool.change]=$(median "${change[@]}")
    [[ $noop_bad == 1 ]] || checks+=("$n hosts, $tool no-op: no file rewritten, no container recreated (first/last node), in all $runs runs: $noop_did")
    details+=("$n hosts, $tool ($runs runs each; s): cold ${cold[*]} [$cold_did]; no-op ${noop[*]} [$noop_did]; one change ${change[*]} [$change_did]")
    log "$tool: cold ${t[$tool.cold]} s, no-op ${t[$tool.noop]} s, one change ${t[$tool.change]} s"
}

# explain FIGURE: where provision's median run of FIGURE (cold | change) went
explain() {
    local fig=$1 i best="" bestd=1e9 m d
    m=${t[provision.$fig]}
    for ((i = 1; i <= prov_runs; i++)); do
        read -r _ d <"$work/runs/$n-provision-$fig-$i.time"
        if awk -v a="$d" -v b="$m" -v c="$bestd" 'BEGIN {x = a - b; if (x < 0) x = -x; exit !(x < c)}'; then
            best=$i; bestd=$(awk -v a="$d" -v b="$m" 'BEGIN {x = a - b; if (x < 0) x = -x; print x}')
        fi
    done
    local run=$work/runs/$n-provision-$fig-$best start secs
    read -r start secs <"$run.time"
    if [[ -f $run/events.jsonl ]]; then
        analysis+=("$n hosts, provision $fig (run $best): $(python3 "$lib/events.py" "$run/events.jsonl" "$start" "$(awk -v a="$start" -v b="$secs" 'BEGIN {printf "%.3f", a + b}')")")
    else
        analysis+=("$n hosts, provision $fig (run $best): no event log")
    fi
}

# floor: provision ping, and plan on converged nodes (they hold the one change, measure's
# last figure), median of 3 each
floor() {
    local i s p=() q=() rc
    for ((i = 1; i <= 3; i++)); do
        s=$(now); rc=0; timeout 300 "$prov" ping "$work/base.toml" >"$work/out" 2>&1 || rc=$?
        p+=("$(awk -v a="$s" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}')")
        [[ $rc == 0 ]] || checks+=("$n hosts, provision ping: FAILED (exit $rc): $(tail -n 2 "$work/out" | tr '\n' ' ')")
        s=$(now); rc=0; timeout 300 "$prov" plan "$work/changed.toml" --detailed-exitcode >"$work/out" 2>&1 || rc=$?
        q+=("$(awk -v a="$s" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}')")
        [[ $rc == 0 ]] || checks+=("$n hosts, provision plan on converged nodes: exit $rc (0 = no changes): $(tail -n 2 "$work/out" | tr '\n' ' ')")
    done
    floors+=("$n hosts: provision ping $(median "${p[@]}") s (runs ${p[*]}), provision plan (no changes) $(median "${q[@]}") s (runs ${q[*]}), provision apply no-op ${t[provision.noop]} s ($(ratio "${t[provision.noop]}" "$(median "${p[@]}")") of ping)")
}

# run_floor KIND: the podman floor's KIND script (cold | change | revert, written by
# podman_floor) on every node at once; sets secs; a node whose script failed, or said
# that a container's run failed or never became healthy, is recorded in checks (not
# podman's own `level=error` lines about systemd, which the lab's hosts do not run:
# podman prints them and goes on, for provision's runs as for the floor's)
run_floor() {
    local kind=$1 h start
    : >"$work/floor/failed"
    start=$(now)
    for h in $nodes; do
        { run_ssh "$h" 'sh -s' <"$work/floor/$kind.$h" >"$work/floor/out.$h" 2>&1 &&
            ! grep -qE ': (run failed|not healthy)$' "$work/floor/out.$h" || echo "$h" >>"$work/floor/failed"; } &
    done
    wait
    secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}')
    for h in $(cat "$work/floor/failed"); do
        checks+=("$n hosts, podman floor $kind: $h FAILED: $(grep -E ': (run failed|not healthy)$' "$work/floor/out.$h" | head -c 200 | tr '\n' ' ' || true)")
    done
}

# podman_floor: the container work of provision's cold and one-change runs and nothing
# else (benches/compare/podman.py floor: per step, the same `podman run` arguments at
# once, then each container's healthcheck until it passes), on every node in parallel
# over the same SSH connections, median of COMPARE_PROVISION_RUNS runs each.
#   cold    from the converged base with every managed container removed (untimed, as
#           are the files, which the floor does not write): create them all
#   change  from the base: recreate the containers the one change recreates, with the
#           changed render's arguments; untimed before each run but the first, put back
#           the base's (revert)
podman_floor() {
    local i h cold=() change=()
    mkdir -p "$work/floor"
    for h in $nodes; do
        python3 "$lib/podman.py" floor "$work/base" "$h" >"$work/floor/cold.$h"
        python3 "$lib/podman.py" floor "$work/changed" "$h" "$work/base" >"$work/floor/change.$h"
        python3 "$lib/podman.py" floor "$work/base" "$h" "$work/changed" >"$work/floor/revert.$h"
    done
    log "podman floor: $n nodes, back to the base (not timed)"
    timed provision base "$n-floor-base"
    for ((i = 1; i <= prov_runs; i++)); do
        log "podman floor: $n nodes, cold $i/$prov_runs"
        for h in $nodes; do
            run_ssh "$h" 'podman ps -aq --filter label=managed_by=provision | xargs -r podman rm -f -t 0 >/dev/null 2>&1; true' &
        done
        wait
        run_floor cold; cold+=("$secs")
    done
    for ((i = 1; i <= prov_runs; i++)); do
        if ((i > 1)); then run_floor revert; fi
        log "podman floor: $n nodes, one change $i/$prov_runs"
        run_floor change; change+=("$secs")
    done
    t[floor.cold]=$(median "${cold[@]}")
    t[floor.change]=$(median "${change[@]}")
    details+=("$n hosts, podman floor ($prov_runs runs each; s): cold ${cold[*]}; one change ${change[*]}")
    log "podman floor: cold ${t[floor.cold]} s, one change ${t[floor.change]} s"
}

rows=()
checks=()
details=()
analysis=()
floors=()
for n in "${sizes[@]}"; do
    log "lab with $n nodes"
    lab/lab.sh up --nodes "$n" >/dev/null
    inv=lab/state/lab-$n.toml
    [[ $n == 6 ]] && inv=inventories/lab.toml
    rm -rf "${work:?}"/ansible "${work:?}"/pyinfra "$work"/base "$work"/changed
    mkdir -p "$work/runs"
    nodes=$(python3 "$lib/gen.py" "$work" lab/state "$inv")
    "$prov" render "$work/base.toml" --out "$work/base" >/dev/null
    "$prov" render "$work/changed.toml" --out "$work/changed" >/dev/null
    changed_files=$(diff -rq "$work/base" "$work/changed" | grep -vc manifest.json || true)
    read -r total_files total_containers < <(python3 -c 'import json,sys; h=json.load(open(sys.argv[1]))["hosts"].values(); print(sum(len(x["files"]) for x in h), sum(len(x["containers"]) for x in h))' "$work/base/manifest.json")
    changed_containers=$(python3 -c 'import json,sys; a,b=(json.load(open(p))["hosts"] for p in sys.argv[1:3]); k=lambda x: {c["name"]: c["labels"]["provision.config_hash"] for h, v in x.items() for c in v["containers"] for c in [dict(c, name=h + "/" + c["name"])]}; ka, kb=k(a), k(b); print(sum(1 for c in kb if ka.get(c) != kb[c]))' "$work/base/manifest.json" "$work/changed/manifest.json")
    other_runs=$other_runs_small
    ((n <= 10)) || other_runs=$other_runs_large

    # provision's bare-metal stage (adopt each node through its BMC, check its MAC,
    # introspect it; recorded on the undercloud, once per node) has no counterpart in
    # ansible or pyinfra: one untimed apply does it before the figures.
    log "provision: $n nodes, warm-up apply (bare-metal stage, not timed)"
    timed provision base "$n-provision-warmup"
    declare -A t=()
    measure provision "$prov_runs"
    explain cold
    explain change
    floor
    podman_floor
    floor_rows=("| $n | podman floor | ${t[floor.cold]} | | ${t[floor.change]} |"
        "| $n | provision / podman floor | $(ratio "${t[provision.cold]}" "${t[floor.cold]}") | | $(ratio "${t[provision.change]}" "${t[floor.change]}") |")
    if [[ $others == 0 ]]; then
        rows+=("| $n | provision | ${t[provision.cold]} | ${t[provision.noop]} | ${t[provision.change]} |" "${floor_rows[@]}")
        unset t
        lab/lab.sh down >/dev/null
        continue
    fi
    measure ansible "$other_runs"
    measure pyinfra "$other_runs"
    for tool in provision ansible pyinfra; do
        rows+=("| $n | $tool | ${t[$tool.cold]} | ${t[$tool.noop]} | ${t[$tool.change]} |")
    done
    rows+=("${floor_rows[@]}")
    for other in ansible pyinfra; do
        rows+=("| $n | $other / provision | $(ratio "${t[$other.cold]}" "${t[provision.cold]}") | $(ratio "${t[$other.noop]}" "${t[provision.noop]}") | $(ratio "${t[$other.change]}" "${t[provision.change]}") |")
    done
    checks+=("$n hosts: $total_files files and $total_containers containers in the render; the one change rewrites $changed_files files and recreates $changed_containers containers")
    unset t
    lab/lab.sh down >/dev/null
done

echo "| hosts | tool | cold apply (s) | no-op (s) | one change (s) |"
echo "|---:|---|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "provision: median of $prov_runs runs; ansible-core and pyinfra: median of $other_runs_small runs at <= 10 hosts, $other_runs_large above."
echo "ansible-core $("$venv/bin/ansible" --version | head -1 | sed 's/.*core //; s/]//'), pyinfra $("$venv/bin/pyinfra" --version | sed 's/.*v//'), $("$prov" --version 2>/dev/null || echo provision); all three jump through the undercloud (127.0.10.1)."
echo
echo "Floor (the same SSH connections, no work):"
printf -- '- %s\n' "${floors[@]}"
echo
echo "Checks:"
printf -- '- %s\n' "${checks[@]}"
echo
echo "Runs:"
printf -- '- %s\n' "${details[@]}"
echo
echo "Where provision's time goes (event log of the median run):"
printf -- '- %s\n' "${analysis[@]}"
