#!/usr/bin/env bash
# The Vagrant lab's acceptance run: from nothing to a deployed cloud on VMs and back, each
# step timed. Runs as root; about 40-60 minutes on qemu's TCG with 2 cores (vagrant/README.md).
#
#   vagrant/acceptance.sh            down, up, apply from powered-off nodes, apply again
#                                    (no change), a variable changed, a node added, down
#   vagrant/acceptance.sh --keep     the same, but leave the lab up at the end
#
# What it checks, besides each apply's exit code:
#   - every node was powered on through its BMC: sushy-tools' log has the Redfish
#     power-on (POST .../Actions/ComputerSystem.Reset) and the one-time PXE boot (PATCH)
#     of each node's system id, and the second apply sent none;
#   - every node booted from the network: the undercloud's dnsmasq log (real dnsmasq, in the
#     rendered container) has its DHCPACK (its MAC, its inventory address, its name) and the
#     TFTP transfer of boot.ipxe to that address;
#   - every node then booted its own disk and runs its role: its host name over SSH, and
#     its containers running;
#   - the second apply changes nothing; the variable changes only nova.conf on the computes;
#     the added node is provisioned (power-on, DHCP, TFTP) and deployed, and no other node
#     is powered again.
set -euo pipefail

VAGRANT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$VAGRANT_DIR")"
STATE="$VAGRANT_DIR/.vagrant/lab"
INV="$REPO/inventories/vagrant.toml"
STEP_INV="$REPO/inventories/vagrant-acceptance.toml"
P="$REPO/target/release/provision"
LOGS="$REPO/.cache/vagrant/acceptance"
keep=""
[[ ${1:-} == --keep ]] && keep=1

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf 'acceptance: %s\n' "$*" >&2; }
fail() { printf 'acceptance: FAILED: %s\n' "$*" >&2; exit 1; }
TIMES=()
step() { # NAME COMMAND...: run, time, record
    local name=$1 t
    shift
    say "== $name"
    t="$(now)"
    "$@" || fail "$name (exit $?)"
    TIMES+=("$(printf '%-44s %7s s' "$name" "$(since "$t")")")
    say "$name: $(since "$t") s"
}

[[ $(id -u) == 0 ]] || fail "run as root"
mkdir -p "$LOGS"
[[ -x $P ]] || (cd "$REPO" && cargo build --release --quiet)
cd "$REPO"

uc() { ssh -F "$STATE/ssh_config" undercloud "$@"; }
node_uuids() { # of an inventory: name uuid
    awk -F'"' '/^name = / { n = $2 } /system_id = / { for (i = 1; i <= NF; i++) if ($i ~ /system_id = $/) print n, $(i + 1) }' "$1"
}
sushy_lines() { wc -l < "$STATE/logs/sushy.log"; }
sushy_since() { tail -n +"$(($1 + 1))" "$STATE/logs/sushy.log"; }

# Under TCG a podman healthcheck takes tens of seconds on a loaded 1-CPU node, so the
# steps wait longer for health than apply's default 120 s (settings.env).
HEALTH_TIMEOUT="${VAGRANT_LAB_HEALTH_TIMEOUT:-$(awk -F= '{ sub(/#.*/, "") } $1 == "VAGRANT_LAB_HEALTH_TIMEOUT" { gsub(/[ \t]/, "", $2); print $2 }' "$VAGRANT_DIR/settings.env")}"
[[ $HEALTH_TIMEOUT =~ ^[1-9][0-9]*$ ]] || fail "VAGRANT_LAB_HEALTH_TIMEOUT must be a number of seconds, not '$HEALTH_TIMEOUT' (vagrant/settings.env)"

apply() { # LOG INVENTORY
    "$P" apply "$2" --yes --health-timeout "$HEALTH_TIMEOUT" > "$LOGS/$1" 2>&1 || { tail -n 40 "$LOGS/$1" >&2; return 1; }
    tail -n 3 "$LOGS/$1" >&2
}

check_booted() { # INVENTORY SUSHY_MARK NAME...: power-on, DHCP, TFTP, SSH, containers
    local inv=$1 mark=$2 name uuid ip mac dns bmc
    shift 2
    # read once into variables: `producer | grep -q` fails under pipefail when grep stops early
    dns="$(uc cat /var/log/undercloud/dnsmasq/dnsmasq.log)"
    bmc="$(sushy_since "$mark")"
    for name in "$@"; do
        uuid="$(node_uuids "$inv" | awk -v n="$name" '$1 == n { print $2 }')"
        [[ -n $uuid ]] || fail "$name has no system id in $inv"
        grep -q "POST /redfish/v1/Systems/$uuid/Actions/ComputerSystem.Reset" <<< "$bmc" ||
            fail "$name: no power-on of system $uuid in sushy-tools' log"
        grep -q "PATCH /redfish/v1/Systems/$uuid " <<< "$bmc" ||
            fail "$name: no one-time PXE boot (PATCH) of system $uuid in sushy-tools' log"
        ip="$(awk -v n="$name" -F'"' '/^name = / { c = $2 } /^ctlplane_ip = / && c == n { print $2 }' "$inv")"
        mac="$(awk -v n="$name" -F'"' '/^name = / { c = $2 } /^macs = / && c == n { print $2 }' "$inv")"
        grep -q "DHCPACK(.*) $ip $mac $name" <<< "$dns" ||
            fail "$name: no DHCPACK $ip $mac $name in the undercloud's dnsmasq log"
        grep -q "sent /var/lib/tftpboot/boot.ipxe to $ip" <<< "$dns" ||
            fail "$name: no TFTP transfer of boot.ipxe to $ip in the undercloud's dnsmasq log"
        [[ "$(ssh -F "$STATE/ssh_config" "$name" hostname)" == "$name" ]] || fail "$name: wrong host name"
        local running
        running="$(ssh -F "$STATE/ssh_config" "$name" podman ps --format '{{.Names}}' | wc -l)"
        ((running > 0)) || fail "$name: no container runs"
        say "$name: powered on by its BMC ($uuid), DHCP $ip for $mac, boot.ipxe over TFTP, local disk booted, $running containers"
    done
}

step "down (from nothing)" vagrant/lab.sh down
step "up: box, VMs, BMCs (nodes powered off)" vagrant/lab.sh up
mapfile -t nodes < <(node_uuids "$INV" | cut -d' ' -f1)
for n in "${nodes[@]}"; do
    [[ "$(virsh -c qemu:///system domstate "provision-$n")" == "shut off" ]] || fail "$n is not powered off before apply"
done

mark="$(sushy_lines)"
step "apply from powered-off nodes (${#nodes[@]} nodes)" apply apply-1.log "$INV"
check_booted "$INV" "$mark" "${nodes[@]}"

mark="$(sushy_lines)"
step "apply again (no change)" apply apply-2.log "$INV"
grep -q "^No changes\." "$LOGS/apply-2.log" || fail "the second apply changed something: $(tail -n 5 "$LOGS/apply-2.log")"
calls="$(sushy_since "$mark" | grep "POST\|PATCH" || true)"
[[ -z $calls ]] || fail "the second apply called a BMC: $calls"

python3 vagrant/inventory.py generate --ssh-config "$STATE/ssh-config" \
    --var cpu_allocation_ratio=8.0 --out "$STEP_INV"
"$P" plan "$STEP_INV" > "$LOGS/plan-3.log" 2>&1 || true
grep -q "nova_compute/nova.conf" "$LOGS/plan-3.log" || fail "the plan of the changed variable lacks nova.conf: $(tail -n 20 "$LOGS/plan-3.log")"
mark="$(sushy_lines)"
step "a variable changed (cpu_allocation_ratio)" apply apply-3.log "$STEP_INV"
calls="$(sushy_since "$mark" | grep "POST\|PATCH" || true)"
[[ -z $calls ]] || fail "the variable's apply called a BMC: $calls"
for n in "${nodes[@]}"; do
    [[ $n == vagrant-compute-* ]] || continue
    ssh -F "$STATE/ssh_config" "$n" grep -q '^cpu_allocation_ratio = 8.0' /etc/overcloud/nova_compute/nova.conf ||
        fail "$n: nova.conf has no cpu_allocation_ratio = 8.0"
done

total="$(python3 vagrant/inventory.py machines | grep -c '"kind": "node"')"
python3 vagrant/inventory.py generate --ssh-config "$STATE/ssh-config" --nodes "$total" \
    --var cpu_allocation_ratio=8.0 --out "$STEP_INV"
added="$(node_uuids "$STEP_INV" | cut -d' ' -f1 | tail -n 1)"
"$P" plan "$STEP_INV" > "$LOGS/plan-4.log" 2>&1 || true
grep -q "+ provision $added" "$LOGS/plan-4.log" || fail "the plan does not provision $added: $(head -n 20 "$LOGS/plan-4.log")"
mark="$(sushy_lines)"
step "a node added ($added)" apply apply-4.log "$STEP_INV"
check_booted "$STEP_INV" "$mark" "$added"
others="$(sushy_since "$mark" | grep "POST\|PATCH" | grep -vc "$(node_uuids "$STEP_INV" | awk -v n="$added" '$1 == n { print $2 }')" || true)"
((others == 0)) || fail "adding $added called $others other BMC requests"
rm -f "$STEP_INV"

if [[ -z $keep ]]; then
    step "down" vagrant/lab.sh down
fi
say "passed; the steps' times:"
printf '  %s\n' "${TIMES[@]}" >&2
printf '%s\n' "${TIMES[@]}" > "$LOGS/times.txt"
