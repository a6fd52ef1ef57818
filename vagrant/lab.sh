#!/usr/bin/env bash
# The Vagrant lab: VMs under libvirt (qemu's TCG where KVM cannot run guests), an
# undercloud and bare-metal nodes that only their BMCs power on. See vagrant/README.md.
#
#   vagrant/lab.sh up       packages, libvirtd, the box, disks and config drives, the VMs,
#                           the BMCs; nodes left powered off; inventories/vagrant.toml
#   vagrant/lab.sh status   what runs
#   vagrant/lab.sh down     destroy the VMs, their volumes and networks; stop the BMCs
#                           (and libvirtd/virtlogd if this script started them)
#   vagrant/lab.sh ssh NAME a shell on a VM as root (nodes through the undercloud)
#
# State: vagrant/.vagrant/lab/ (gitignored): the lab's SSH key, each VM's host key,
# known_hosts, ssh_config, the BMC's config, logs and console logs, PIDs of what it started.
# Runs as root. Every wait is bounded; only processes whose PID it recorded are stopped.
set -euo pipefail
umask 022

VAGRANT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$VAGRANT_DIR")"
STATE="$VAGRANT_DIR/.vagrant/lab"
VENV="$REPO/.cache/vagrant-venv"
POOL_DIR=/var/lib/libvirt/images
SUSHY_PORT=8000
VIRSH=(virsh -q -c qemu:///system)
export VAGRANT_DEFAULT_PROVIDER=libvirt LIBVIRT_DEFAULT_URI=qemu:///system
# no call home: Vagrant's version check and box update check reach the internet
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_BOX_UPDATE_CHECK_DISABLE=1

log() { printf 'vagrant-lab: %s\n' "$*" >&2; }
die() { printf 'vagrant-lab: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
need_root() { [[ $(id -u) == 0 ]] || die "run as root (libvirt, loop devices for the box)"; }

machines() { # name kind ctlplane_ip mac uuid in_inventory, one per line
    python3 "$VAGRANT_DIR/inventory.py" machines | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    print(m["name"], m["kind"], m["ctlplane_ip"], m["mac"], m["uuid"], int(m["in_inventory"]))'
}
setting() { # KEY: its value (the environment overrides settings.env)
    local v="${!1:-}"
    [[ -n $v ]] && { echo "$v"; return; }
    awk -F= -v k="$1" '{ sub(/#.*/, "") } $1 == k { gsub(/[ \t]/, "", $2); print $2 }' "$VAGRANT_DIR/settings.env"
}
CTLPLANE="$(setting VAGRANT_LAB_CTLPLANE)"
BMC_ADDR="$CTLPLANE.1"

pid_alive_as() { # PID MARKER: alive and its command line contains MARKER
    local pid=$1 marker=$2 cl
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    cl="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null)" || return 1
    [[ $cl == *"$marker"* ]]
}

wait_for() { # SECONDS WHAT COMMAND...: run COMMAND every second until it succeeds
    local limit=$1 what=$2 i
    shift 2
    for ((i = 0; i < limit; i++)); do
        "$@" > /dev/null 2>&1 && return 0
        sleep 1
    done
    die "$what: not within $limit s"
}

stop_pid() { # NAME MARKER: TERM the recorded PID if it is still that program, then KILL
    local name=$1 marker=$2 f="$STATE/pids/$1.pid" pid i
    pid="$(cat "$f" 2> /dev/null)" || return 0
    if pid_alive_as "$pid" "$marker"; then
        kill -TERM "$pid" 2> /dev/null || true
        for ((i = 0; i < 100 ; i++)); do pid_alive_as "$pid" "$marker" || break; sleep 0.1; done
        pid_alive_as "$pid" "$marker" && kill -KILL "$pid" 2> /dev/null || true
        log "stopped $name (pid $pid)"
    fi
    rm -f "$f"
}

# ------------------------------------------------------------------ libvirt

start_libvirt() { # libvirtd and virtlogd, started by hand (PID 1 here is not systemd)
    mkdir -p "$STATE/pids" "$STATE/logs"
    if ! pgrep -x virtlogd > /dev/null; then
        virtlogd -d -p "$STATE/pids/virtlogd.pid"
        log "started virtlogd (pid $(cat "$STATE/pids/virtlogd.pid"))"
    fi
    if ! "${VIRSH[@]}" version > /dev/null 2>&1; then
        if [[ "$(cat "$STATE/accel")" == qemu && -e /dev/kvm ]]; then
            # KVM that cannot run guests (the probe): libvirt must not try it. It probes
            # qemu's capabilities with accel=kvm:tcg, and a qemu that aborts in KVM's setup
            # leaves libvirtd waiting on its QMP socket forever (every defineXML then
            # hangs: seen here). So libvirtd runs in a mount namespace of its own where
            # /dev/kvm is an empty file only root may open: libvirt finds KVM unusable for
            # its qemu user (libvirt-qemu), probes TCG only, and keeps that result (with
            # /dev/kvm merely pointing at /dev/null, KVM looked usable but never was, so
            # every lookup probed again). Nothing outside that namespace changes.
            # libvirt would move that file into each VM's own /dev namespace and fail
            # ("Unable to move ... mount to /dev/kvm"): its qemu.conf in that namespace
            # (a copy with `namespaces = []`, bound over the system's) turns them off.
            rm -f /var/cache/libvirt/qemu/capabilities/*.xml
            : > "$STATE/no-kvm"
            chmod 0000 "$STATE/no-kvm"
            { cat /etc/libvirt/qemu.conf; printf '\n# vagrant/lab.sh: no per-VM /dev namespace\nnamespaces = []\n'; } > "$STATE/qemu.conf"
            unshare --mount --propagation private -- sh -c \
                'mount --bind "$2" /dev/kvm && mount --bind "$3" /etc/libvirt/qemu.conf && exec libvirtd -d -p "$1"' \
                sh "$STATE/pids/libvirtd.pid" "$STATE/no-kvm" "$STATE/qemu.conf"
        else
            libvirtd -d -p "$STATE/pids/libvirtd.pid"
        fi
        wait_for 30 "libvirtd answers" "${VIRSH[@]}" version
        log "started libvirtd (pid $(cat "$STATE/pids/libvirtd.pid")$([[ "$(cat "$STATE/accel")" == qemu ]] && echo ", without /dev/kvm"))"
    fi
    if ! "${VIRSH[@]}" pool-info default > /dev/null 2>&1; then
        mkdir -p "$POOL_DIR"
        "${VIRSH[@]}" pool-define-as default dir --target "$POOL_DIR" > /dev/null
    fi
    # (not `virsh | grep -q`: under pipefail grep's early exit fails the pipe)
    [[ "$("${VIRSH[@]}" pool-info default)" == *running* ]] ||
        "${VIRSH[@]}" pool-start default > /dev/null 2>&1 || true
    [[ "$("${VIRSH[@]}" pool-info default)" == *running* ]] || die "libvirt's storage pool 'default' does not run"
}

probe_accel() { # .vagrant/lab/accel: kvm if the box's kernel prints under KVM, else qemu
    local want
    want="$(setting VAGRANT_LAB_ACCEL)"
    case $want in
        kvm | qemu) echo "$want" > "$STATE/accel"; log "accelerator: $want (VAGRANT_LAB_ACCEL)"; return ;;
        auto) ;;
        *) die "VAGRANT_LAB_ACCEL=$want: auto, kvm or qemu" ;;
    esac
    [[ -f $STATE/accel ]] && { log "accelerator: $(cat "$STATE/accel") (probed before; rm $STATE/accel to probe again)"; return; }
    local kernel="$REPO/.cache/vagrant/vmlinuz" out="$STATE/logs/kvm-probe.log" pid i ok=""
    if [[ -c /dev/kvm && -f $kernel ]]; then
        : > "$out"
        timeout 25 qemu-system-x86_64 -enable-kvm -cpu host -m 256 -display none -no-reboot \
            -kernel "$kernel" -append "console=ttyS0 panic=-1" -serial "file:$out" \
            > "$STATE/logs/kvm-probe.qemu" 2>&1 &
        pid=$!
        for ((i = 0; i < 20; i++)); do
            grep -q "Linux version" "$out" 2> /dev/null && { ok=1; break; }
            kill -0 "$pid" 2> /dev/null || break
            sleep 1
        done
        kill "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
    fi
    if [[ -n $ok ]]; then
        echo kvm > "$STATE/accel"
        log "accelerator: kvm (the box's kernel printed under KVM)"
    else
        echo qemu > "$STATE/accel"
        log "accelerator: qemu TCG (KVM: $(if [[ -c /dev/kvm ]]; then echo "$(tail -c 200 "$STATE/logs/kvm-probe.qemu" 2> /dev/null | tr '\n' ' ')the kernel printed nothing in 20 s"; else echo "no /dev/kvm"; fi))"
    fi
}

# -------------------------------------------------------- keys, disks, config drives

make_keys() {
    mkdir -p "$STATE/hostkeys"
    [[ -s $STATE/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C provision-vagrant-lab -f "$STATE/id_ed25519"
    local name
    while read -r name _; do
        [[ -s $STATE/hostkeys/$name ]] ||
            ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$STATE/hostkeys/$name"
    done < <(machines)
}

config_drive() { # NAME KIND CTLPLANE_IP MAC: an ext4 image labelled config-2 in the pool
    local name=$1 kind=$2 ip=$3 mac=$4 d img="$POOL_DIR/provision-$1-config.img"
    d="$(mktemp -d)"
    mkdir -p "$d/provision/network"
    echo "$name" > "$d/provision/hostname"
    cp "$STATE/id_ed25519.pub" "$d/provision/authorized_keys"
    cp "$STATE/hostkeys/$name" "$d/provision/ssh_host_ed25519_key"
    cp "$STATE/hostkeys/$name.pub" "$d/provision/ssh_host_ed25519_key.pub"
    if [[ $kind == undercloud ]]; then
        # its provisioning NIC: static (it is the network's DHCP server)
        cat > "$d/provision/network/10-ctlplane.network" <<EOF
[Match]
MACAddress=$mac

[Network]
Address=$ip/24
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
    fi
    rm -f "$img"
    truncate -s 16M "$img"
    mkfs.ext4 -q -L config-2 -d "$d" "$img"
    rm -rf "$d"
}

node_disk() { # NAME: a copy-on-write disk over the box's image
    local img="$POOL_DIR/provision-$1-disk.qcow2"
    [[ -f $img ]] && return 0
    qemu-img create -q -f qcow2 -F qcow2 -b "$POOL_DIR/provision-box-base.qcow2" "$img"
}

prepare_volumes() {
    local box base="$POOL_DIR/provision-box-base.qcow2" key
    key="$(cat "$REPO/.cache/vagrant/added")"
    box="$REPO/.cache/vagrant/box-$key.box"
    if [[ "$(cat "$STATE/base-key" 2> /dev/null)" != "$key" || ! -f $base ]]; then
        # a new box: the nodes' disks start again from it
        local name
        while read -r name kind _; do
            [[ $kind == node ]] && rm -f "$POOL_DIR/provision-$name-disk.qcow2"
        done < <(machines)
        tar -xOf "$box" box.img > "$base.tmp"
        mv "$base.tmp" "$base"
        echo "$key" > "$STATE/base-key"
    fi
    local name kind ip mac
    while read -r name kind ip mac _; do
        config_drive "$name" "$kind" "$ip" "$mac"
        [[ $kind == node ]] && node_disk "$name"
    done < <(machines)
    "${VIRSH[@]}" pool-refresh default > /dev/null
}

# ------------------------------------------------------------------- the BMCs

ensure_venv() { # sushy-tools on Debian's python3, which has python3-libvirt
    local req="$REPO/lab/requirements.txt" stamp="$VENV/.requirements.sha256" want
    want="$(sha256sum < "$req" | cut -d' ' -f1)"
    [[ -x $VENV/bin/sushy-emulator && "$(cat "$stamp" 2> /dev/null)" == "$want" ]] && return 0
    log "installing sushy-tools into $VENV (pip; libvirt from Debian's python3-libvirt)"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    "$VENV/bin/python" -c 'import libvirt, bcrypt' || die "the venv lacks libvirt or bcrypt"
    echo "$want" > "$stamp"
}

bmc_password() {
    awk -F'"' '/^vagrant_bmc_password *=/ { print $2 }' "$REPO/inventories/vagrant.secrets.toml"
}

start_bmc() {
    pid_alive_as "$(cat "$STATE/pids/sushy.pid" 2> /dev/null)" sushy-emulator && return 0
    ensure_venv
    mkdir -p "$STATE/bmc"
    local pw uuids
    pw="$(bmc_password)"
    [[ -n $pw ]] || die "no vagrant_bmc_password in inventories/vagrant.secrets.toml"
    PW="$pw" "$VENV/bin/python" -c '
import bcrypt, os, sys
h = bcrypt.hashpw(os.environ["PW"].encode(), bcrypt.gensalt(rounds=5)).decode()
open(sys.argv[1], "w").write("admin:" + h + "\n")' "$STATE/bmc/htpasswd"
    chmod 600 "$STATE/bmc/htpasswd"
    # lab.sh's own Redfish calls read the credentials from a file, not a command line
    (umask 077; printf 'machine %s login admin password %s\n' "$BMC_ADDR" "$pw" > "$STATE/bmc/netrc")
    uuids="$(machines | awk '$2 == "node" { printf "%s\"%s\"", (n++ ? ", " : ""), $5 }')"
    cat > "$STATE/bmc/sushy.conf" <<EOF
# sushy-tools for the Vagrant lab (vagrant/lab.sh): the libvirt driver, the nodes only
SUSHY_EMULATOR_LISTEN_IP = "$BMC_ADDR"
SUSHY_EMULATOR_LISTEN_PORT = $SUSHY_PORT
SUSHY_EMULATOR_LIBVIRT_URI = "qemu:///system"
SUSHY_EMULATOR_AUTH_FILE = "$STATE/bmc/htpasswd"
SUSHY_EMULATOR_ALLOWED_INSTANCES = [$uuids]
SUSHY_EMULATOR_IGNORE_BOOT_DEVICE = False
EOF
    mkdir -p "$STATE/pids" "$STATE/logs"
    setsid "$VENV/bin/sushy-emulator" --config "$STATE/bmc/sushy.conf" < /dev/null \
        >> "$STATE/logs/sushy.log" 2>&1 &
    echo $! > "$STATE/pids/sushy.pid"
    wait_for 30 "sushy-emulator on $BMC_ADDR:$SUSHY_PORT" \
        curl -sf --max-time 10 --netrc-file "$STATE/bmc/netrc" "http://$BMC_ADDR:$SUSHY_PORT/redfish/v1/Systems"
    log "Redfish BMCs on http://$BMC_ADDR:$SUSHY_PORT (sushy-tools, libvirt driver, pid $(cat "$STATE/pids/sushy.pid"))"
}

redfish() { # METHOD PATH [JSON]
    curl -sS -f --max-time 60 --netrc-file "$STATE/bmc/netrc" -X "$1" -H 'Content-Type: application/json' \
        ${3:+-d "$3"} "http://$BMC_ADDR:$SUSHY_PORT$2"
}

power_state() { redfish GET "/redfish/v1/Systems/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["PowerState"])'; }

# ------------------------------------------------------------------- ssh

write_ssh_config() { # ssh -F vagrant/.vagrant/lab/ssh_config NAME
    {
        echo "# the Vagrant lab (vagrant/lab.sh): ssh -F $STATE/ssh_config NAME"
        echo "Host *"
        echo "    User root"
        echo "    IdentityFile $STATE/id_ed25519"
        echo "    IdentitiesOnly yes"
        echo "    UserKnownHostsFile $STATE/known_hosts"
        echo "    GlobalKnownHostsFile /dev/null"
        echo "    StrictHostKeyChecking yes"
        echo "    BatchMode yes"
        echo "    ConnectTimeout 10"
        echo "    LogLevel ERROR"
        local name kind ip
        while read -r name kind ip _; do
            printf 'Host %s\n    HostName %s\n' "$name" "$ip"
            [[ $kind == node ]] && printf '    ProxyJump undercloud\n'
        done < <(machines)
    } > "$STATE/ssh_config"
}

# --------------------------------------------------------------------- commands

cmd_up() {
    need_root
    local t0 t
    t0="$(now)"
    mkdir -p "$STATE/pids" "$STATE/logs"
    "$VAGRANT_DIR/deps.sh"
    t="$(now)"
    "$VAGRANT_DIR/box.sh" build
    probe_accel
    start_libvirt
    make_keys
    prepare_volumes
    log "keys, disks and config drives ($(since "$t") s)"
    cd "$VAGRANT_DIR"
    t="$(now)"
    vagrant up undercloud > "$STATE/logs/vagrant-up-undercloud.log" 2>&1 ||
        { tail -n 20 "$STATE/logs/vagrant-up-undercloud.log" >&2; die "vagrant up undercloud failed"; }
    log "undercloud up ($(since "$t") s)"
    vagrant ssh-config undercloud > "$STATE/ssh-config" 2> "$STATE/logs/ssh-config.err" ||
        die "vagrant ssh-config undercloud: $(cat "$STATE/logs/ssh-config.err")"
    python3 "$VAGRANT_DIR/inventory.py" generate --ssh-config "$STATE/ssh-config" \
        --out "$REPO/inventories/vagrant.toml" --host-keys "$STATE/hostkeys" --known-hosts "$STATE/known_hosts"
    write_ssh_config
    t="$(now)"
    wait_for 300 "the undercloud's sshd as root with the lab's key" \
        ssh -F "$STATE/ssh_config" undercloud true
    log "the undercloud answers as root on $CTLPLANE.2 and its management address ($(since "$t") s)"
    start_bmc
    # the nodes: defined and started by vagrant, then powered off through their BMCs
    local nodes=() name kind uuid
    while read -r name kind _ _ uuid _; do [[ $kind == node ]] && nodes+=("$name"); done < <(machines)
    t="$(now)"
    # vagrant defines and starts each node; each is powered off through its BMC as soon
    # as it runs (a node booting its disk under TCG would slow the others' definition)
    vagrant up "${nodes[@]}" > "$STATE/logs/vagrant-up-nodes.log" 2>&1 &
    local vpid=$! i rc=0
    declare -A off=()
    for ((i = 0; i < 1800; i++)); do
        while read -r name kind _ _ uuid _; do
            [[ $kind == node && -z ${off[$name]:-} ]] || continue
            [[ "$("${VIRSH[@]}" domstate "provision-$name" 2> /dev/null)" == running ]] || continue
            redfish POST "/redfish/v1/Systems/$uuid/Actions/ComputerSystem.Reset" '{"ResetType": "ForceOff"}' > /dev/null &&
                off[$name]=1
        done < <(machines)
        kill -0 "$vpid" 2> /dev/null || break
        sleep 1
    done
    wait "$vpid" || rc=$?
    ((rc == 0)) || { tail -n 20 "$STATE/logs/vagrant-up-nodes.log" >&2; die "vagrant up ${nodes[*]} failed ($rc)"; }
    while read -r name kind _ _ uuid _; do
        [[ $kind == node ]] || continue
        [[ "$(power_state "$uuid")" == Off ]] ||
            redfish POST "/redfish/v1/Systems/$uuid/Actions/ComputerSystem.Reset" '{"ResetType": "ForceOff"}' > /dev/null
    done < <(machines)
    while read -r name kind _ _ uuid _; do
        [[ $kind == node ]] || continue
        wait_for 30 "$name powered off" bash -c "[[ \"\$(virsh -c qemu:///system domstate provision-$name)\" == 'shut off' ]]"
    done < <(machines)
    log "${#nodes[@]} nodes defined and powered off through their BMCs ($(since "$t") s)"
    log "up in $(since "$t0") s: provision apply inventories/vagrant.toml --yes"
}

cmd_down() {
    need_root
    [[ -d $STATE ]] || { log "nothing to stop"; return 0; }
    stop_pid sushy sushy-emulator
    # libvirtd is needed to destroy what it defined (it may have been stopped)
    [[ -f $STATE/accel ]] && ! "${VIRSH[@]}" version > /dev/null 2>&1 && start_libvirt
    if "${VIRSH[@]}" version > /dev/null 2>&1; then
        (cd "$VAGRANT_DIR" && vagrant destroy -f > "$STATE/logs/vagrant-destroy.log" 2>&1) ||
            log "vagrant destroy: $(tail -n 3 "$STATE/logs/vagrant-destroy.log")"
        # what vagrant lost track of (an interrupted up): the lab's own domains, by name
        local name
        while read -r name _; do
            if "${VIRSH[@]}" dominfo "provision-$name" > /dev/null 2>&1; then
                "${VIRSH[@]}" destroy "provision-$name" > /dev/null 2>&1 || true
                "${VIRSH[@]}" undefine "provision-$name" > /dev/null 2>&1 || true
                log "removed the domain provision-$name"
            fi
            rm -rf "$VAGRANT_DIR/.vagrant/machines/$name"
            rm -f "$POOL_DIR/provision-$name-config.img" "$POOL_DIR/provision-$name-disk.qcow2" \
                "$POOL_DIR/provision-$name.img"
        done < <(machines)
        rm -f "$POOL_DIR/provision-box-base.qcow2" "$STATE/base-key"
        local net
        for net in provision-ctlplane provision-mgmt; do
            "${VIRSH[@]}" net-info "$net" > /dev/null 2>&1 || continue
            "${VIRSH[@]}" net-destroy "$net" > /dev/null 2>&1 || true
            "${VIRSH[@]}" net-undefine "$net" > /dev/null 2>&1 || true
        done
        "${VIRSH[@]}" pool-refresh default > /dev/null 2>&1 || true
    fi
    stop_pid libvirtd libvirtd
    stop_pid virtlogd virtlogd
    log "down"
}

cmd_status() {
    "${VIRSH[@]}" version > /dev/null 2>&1 || { echo "libvirtd: not running"; return 1; }
    local name kind ip _mac uuid
    while read -r name kind ip _mac uuid _; do
        printf '%-22s %-10s %-15s %s\n' "$name" "$kind" "$ip" "$("${VIRSH[@]}" domstate "provision-$name" 2> /dev/null || echo 'not defined')"
    done < <(machines)
    pid_alive_as "$(cat "$STATE/pids/sushy.pid" 2> /dev/null)" sushy-emulator &&
        echo "BMCs: http://$BMC_ADDR:$SUSHY_PORT (pid $(cat "$STATE/pids/sushy.pid"))" || echo "BMCs: not running"
}

case ${1:-} in
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    status) shift; cmd_status "$@" ;;
    ssh) shift; [[ -n ${1:-} ]] || die "ssh NAME"; exec ssh -F "$STATE/ssh_config" "$@" ;;
    *) echo "usage: vagrant/lab.sh up | status | down | ssh NAME [COMMAND]" >&2; exit 2 ;;
esac
