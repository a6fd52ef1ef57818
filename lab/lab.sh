#!/usr/bin/env bash
# The local lab: an undercloud and N overcloud nodes, each a real OpenSSH sshd on its own
# loopback address (127.0.10.x) with a private view of the directories the provisioner
# writes, a Redfish BMC per node (sushy-tools, fake driver) that powers the node's sshd on
# and off, and real podman on every host. See lab/README.md.
#
#   lab/lab.sh up [--nodes N] [--spare K] [--powered-off] [--real-images]
#                                               build and start (N default 6; K spare
#                                               nodes after them: BMC and sshd, in no
#                                               inventory, for a test's scale-out)
#   lab/lab.sh down [--purge]                   stop what up started (by recorded PID)
#   lab/lab.sh status                           hosts, sshd, SSH, BMC
#   lab/lab.sh ssh HOST [COMMAND...]            ssh to a lab host (name or address)
#
# --real-images (or LAB_REAL_IMAGES=1): the catalogue's images are the real OpenStack
# services of lab/images.sh (Debian 13 packages) instead of busybox stand-in images.
# Runs as root on Debian 12. Installs what it needs (apt-get, pip into .cache/lab-venv).
set -euo pipefail
umask 022

LAB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$LAB")"
STATE="$LAB/state"
VENV="$REPO/.cache/lab-venv"
PY="$VENV/bin/python"
LIB="$LAB/lablib.py"
UNDERCLOUD_ADDR=127.0.10.1
SUSHY_PORT=8000
NOTIFIER_PORT=8001
IMAGE_REPO=localhost/provision-lab
BASE_IMAGE="$IMAGE_REPO/base:latest"
# Mount points of every host's private directories (see NS_SCRIPT), created on this
# machine when missing (empty directories; down removes those it created).
MOUNTPOINTS=(/etc/overcloud /var/lib/overcloud /var/log/overcloud /etc/undercloud /var/lib/undercloud
    /var/log/undercloud /var/lib/provision /etc/containers /etc/logrotate.d
    /etc/ceph /lib/modules
    /run/overcloud /run/containers /run/libpod /run/runc /run/netns /run/openvswitch /run/udev)

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

need_root() { [[ $(id -u) == 0 ]] || die "run as root (it starts sshd, mounts, podman)"; }

# ------------------------------------------------------------------ installation

PACKAGES=(openssh-server openssh-client podman runc conmon busybox-static iproute2 util-linux python3 python3-venv)

ensure_packages() {
    local missing=() p installed
    installed=" $(dpkg-query -W -f='${Package}=${db:Status-Status} ' "${PACKAGES[@]}" 2>/dev/null || true) "
    for p in "${PACKAGES[@]}"; do
        [[ $installed == *" $p=installed "* ]] || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing Debian packages: ${missing[*]}"
    # Never let a package's maintainer script start a service (e.g. the machine's own
    # sshd on port 22): a temporary policy-rc.d, only if the machine has none.
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1
    fi
    local rc=0
    {
        apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    } || rc=$?
    [[ -n $made_policy ]] && rm -f "$policy"
    ((rc == 0)) || die "apt-get install ${missing[*]} failed ($rc)"
}

ensure_venv() {
    local req="$LAB/requirements.txt" stamp="$VENV/.lab-requirements.sha256" want
    want="$(sha256sum < "$req" | cut -d' ' -f1)"
    if [[ -x $VENV/bin/sushy-emulator && -f $stamp && "$(cat "$stamp")" == "$want" ]] &&
        "$PY" -c 'import bcrypt' 2>/dev/null; then
        return 0
    fi
    log "installing sushy-tools into $VENV (pip)"
    # Debian's python3 (python3-venv): a venv that does not depend on a pyenv install
    if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        rm -rf "$VENV"
        /usr/bin/python3 -m venv "$VENV"
    fi
    "$PY" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
}

# ------------------------------------------------------------------------ hosts

# The host table written by `lablib.py gen`: name address kind system_id mac
hosts_table() { grep -v '^#' "$STATE/hosts.tsv"; }

pid_alive_as() { # PID MARKER: the process is alive and its command line contains MARKER
    local pid=$1 marker=$2 cl
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    cl="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ $cl == *"$marker"* ]]
}

sshd_pid() { # HOSTDIR -> prints the PID of the host's sshd listener if it runs
    local d=$1 pid
    pid="$(cat "$d/sshd.pid" 2>/dev/null)" || return 1
    pid_alive_as "$pid" "$d/sshd_config" || return 1
    echo "$pid"
}

write_host() { # NAME ADDRESS KIND MAC: keys, sshd_config, the private directories, podman config
    local name=$1 addr=$2 kind=$3 mac=${4:--}
    local d="$STATE/hosts/$name" k="$STATE/keys/$name"
    mkdir -p "$k" "$d/fs/etc/overcloud" "$d/fs/var/lib/overcloud" "$d/fs/var/log/overcloud" \
        "$d/fs/etc/undercloud" "$d/fs/var/lib/undercloud" "$d/fs/var/log/undercloud" "$d/fs/etc/logrotate.d" \
        "$d/fs/var/lib/provision" "$d/fs/root" "$d/fs/etc/containers" "$d/fs/etc/ceph" "$d/fs/lib/modules" "$d/fs/run" "$d/storage"
    chmod 700 "$d/fs/root"
    # A node's NIC as the provisioner's introspection sees it: /sys/class/net/eth0/address
    # holds the inventory's MAC (the hosts share this machine's network namespace, so
    # their real NICs are this machine's; this stands in for the node's hardware).
    if [[ $kind == node && $mac != - ]]; then
        mkdir -p "$d/fs/sys-class-net/eth0"
        printf '%s\n' "$mac" > "$d/fs/sys-class-net/eth0/address"
    fi
    if [[ ! -s $k/ssh_host_ed25519_key ]]; then
        rm -f "$k/ssh_host_ed25519_key" "$k/ssh_host_ed25519_key.pub"
        ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$k/ssh_host_ed25519_key"
    fi
    local forwarding=no
    [[ $kind == undercloud ]] && forwarding=yes
    cat > "$d/sshd_config" <<EOF
# $name ($kind), generated by lab/lab.sh up: a lab host's own sshd.
ListenAddress $addr:22
HostKey $k/ssh_host_ed25519_key
PidFile $d/sshd.pid
PermitRootLogin prohibit-password
AuthorizedKeysFile $STATE/id_ed25519.pub
# The lab may live under a world-writable folder (a CI clone in /tmp): sshd's strict
# modes would then refuse the key file. Lab-only hosts on loopback: not checked.
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
MaxStartups 200:30:400
MaxSessions 200
AllowTcpForwarding $forwarding
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
LogLevel INFO
EOF
    # podman: its own storage (graphroot here; runroot and tmp_dir on the per-boot tmpfs,
    # at the usual short paths: a long runroot makes conmon miss the exit, 20 s per run),
    # runc + cgroupfs + no default ulimits (what works on this machine), host networking
    # as TripleO's containers use, and the lab's images from a shared read-only store.
    cat > "$d/fs/etc/containers/containers.conf" <<EOF
# $name: podman settings of the lab (lab/lab.sh)
[containers]
default_ulimits = []
netns = "host"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "/run/libpod"
EOF
    cat > "$d/fs/etc/containers/storage.conf" <<EOF
# $name: container storage of this host only; the lab's images are read from the
# shared read-only store $STATE/images.
[storage]
driver = "overlay"
graphroot = "$d/storage"
runroot = "/run/containers/storage"

[storage.options]
additionalimagestores = ["$STATE/images"]
EOF
    printf 'unqualified-search-registries = []\n' > "$d/fs/etc/containers/registries.conf"
    printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' > "$d/fs/etc/containers/policy.json"
}

# Inside the host's new mount and UTS namespaces (private propagation): its host name, the
# private directories (with /etc/ceph and /lib/modules, empty: bind sources of the
# catalogue's containers), a fresh tmpfs (each power-on is a boot) for /run/overcloud, for
# podman's and runc's runtime state (/run/containers, /run/libpod, /run/runc), for the
# directories the catalogue creates or mounts in /run (/run/netns, /run/openvswitch,
# /run/udev), and for /dev/shm (podman's locks), then sshd.
NS_SCRIPT='
d=$1
hostname "$2"
mount --bind "$d/fs/etc/overcloud" /etc/overcloud
mount --bind "$d/fs/var/lib/overcloud" /var/lib/overcloud
mount --bind "$d/fs/var/log/overcloud" /var/log/overcloud
mount --bind "$d/fs/etc/undercloud" /etc/undercloud
mount --bind "$d/fs/var/lib/undercloud" /var/lib/undercloud
mount --bind "$d/fs/var/log/undercloud" /var/log/undercloud
mount --bind "$d/fs/var/lib/provision" /var/lib/provision
mount --bind "$d/fs/root" /root
mount --bind "$d/fs/etc/containers" /etc/containers
mount --bind "$d/fs/etc/logrotate.d" /etc/logrotate.d
mount --bind "$d/fs/etc/ceph" /etc/ceph
mount --bind "$d/fs/lib/modules" /lib/modules
[ ! -d "$d/fs/sys-class-net" ] || mount --bind "$d/fs/sys-class-net" /sys/class/net
mount -t tmpfs -o mode=0755,size=512m lab-run "$d/fs/run"
for r in overcloud containers libpod runc netns openvswitch udev; do
    mkdir -p "$d/fs/run/$r"
    mount --bind "$d/fs/run/$r" "/run/$r"
done
mount -t tmpfs -o mode=1777,size=256m lab-shm /dev/shm
exec /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
'

host_start() { # NAME [fresh]: start the host's sshd (no-op when it runs); waits until it listens
    local name=$1 fresh=${2:-} d="$STATE/hosts/$1" pid i
    [[ -f $d/sshd_config ]] || die "no lab host $name"
    exec 9> "$d/.lock"
    flock -w 30 9 || die "$name: lock busy"
    if sshd_pid "$d" > /dev/null; then exec 9>&-; return 0; fi
    # what a previous boot left (sessions of a listener that died): a clean power cycle
    [[ -n $fresh ]] || "$PY" "$LIB" kill-host "$d" > /dev/null
    rm -f "$d/sshd.pid" "$d/mntns"
    : >> "$d/sshd.log"
    unshare --mount --uts --propagation private -- /bin/sh -euc "$NS_SCRIPT" sh "$d" "$name" 9>&- ||
        die "$name: starting sshd failed (log: $d/sshd.log)"
    # sshd writes its PidFile once its socket is bound: wait for it (bounded)
    for ((i = 0; i < 250; i++)); do
        pid="$(sshd_pid "$d")" && break
        sleep 0.02
    done
    [[ -n ${pid:-} ]] || die "$name: sshd did not start within 5 s: $(tail -n 3 "$d/sshd.log")"
    readlink "/proc/$pid/ns/mnt" > "$d/mntns"
    exec 9>&-
}

host_stop() { # NAME: end the host's sshd and every process of its namespace (power cut)
    local name=$1 d="$STATE/hosts/$1"
    [[ -d $d ]] || return 0
    exec 9> "$d/.lock"
    flock -w 30 9 || die "$name: lock busy"
    "$PY" "$LIB" kill-host "$d" > /dev/null
    rm -f "$d/sshd.pid" "$d/mntns"
    exec 9>&-
}

# ----------------------------------------------------------------------- images

# The stand-in for every overcloud service in the lab image (busybox sh): it reads every
# file mounted into the container under /etc (the files the provisioner delivers: a file
# bind mount, or the files of a read-only directory mount; not podman's own hosts,
# hostname, resolv.conf, passwd, group), prints one line per file, fails (exit 1) if one
# cannot be read (after 1 s: podman restarts a --restart always container with no
# backoff), then writes its ready file and waits for SIGTERM/SIGINT/SIGHUP (exits 0 at
# once: `podman stop` does not wait for its timeout). The ready file is in the
# container's own /tmp (its overlay, 1777: writable by any --user): /run is no good, the
# catalogue bind-mounts the host's /run into some containers, and the image's /run is
# root's only.
IFS= read -r -d '' STAND_IN <<'EOF' || true
#!/bin/sh
# stand-in: the lab's stand-in for an overcloud service (lab/lab.sh, build_image).
READY=/tmp/stand-in/ready
child=
# PID 1 of a container ignores a signal it has no handler for: handle them from the start
trap 'rm -f "$READY"; [ -n "$child" ] && kill "$child" 2>/dev/null; echo "stand-in: stopped"; exit 0' TERM INT HUP
rm -f "$READY"
echo "stand-in: started as uid $(id -u) gid $(id -g)${1:+, in place of: $*}"
files=$(
    skip=" /etc/hosts /etc/hostname /etc/resolv.conf /etc/passwd /etc/group "
    while read -r _id _parent _dev _root mp opts _rest; do
        case $mp in /etc/*) ;; *) continue ;; esac
        case $skip in *" $mp "*) continue ;; esac
        if [ -f "$mp" ]; then
            echo "$mp"
        elif [ -d "$mp" ]; then
            case ",$opts," in *,ro,*) find "$mp" -type f 2>/dev/null ;; esac
        fi
    done < /proc/self/mountinfo | sort -u
)
n=0
for f in $files; do
    if ! sum=$(sha256sum "$f" 2>&1); then
        echo "stand-in: cannot read $f: ${sum#sha256sum: }" >&2
        sleep 1 # podman restarts a --restart always container at once, with no backoff
        exit 1
    fi
    bytes=$(wc -c < "$f")
    echo "stand-in: read $f ($bytes bytes, sha256 ${sum%% *})"
    n=$((n + 1))
done
[ "$n" -gt 0 ] || echo "stand-in: no file mounted under /etc"
mkdir -p "${READY%/*}" && : > "$READY" || { echo "stand-in: cannot write $READY" >&2; exit 1; }
echo "stand-in: ready"
while :; do
    sleep 60 &  # short: a SIGKILLed stand-in in a --pid=host container orphans it
    child=$!
    wait "$child"
done
EOF
IFS= read -r -d '' STAND_IN_HEALTHCHECK <<'EOF' || true
#!/bin/sh
# stand-in-healthcheck: healthy (0) once the lab's stand-in is ready (lab/lab.sh).
[ -f /tmp/stand-in/ready ] && exit 0
echo "stand-in-healthcheck: not ready (no /tmp/stand-in/ready)" >&2
exit 1
EOF

# The stand-in for a bootstrap task (a container run to completion): it reads every file
# mounted under /etc, as the service's stand-in does, and exits 0 (1 if one cannot be
# read), so a task's files and user are checked without the service's real program.
IFS= read -r -d '' STAND_IN_TASK <<'EOF' || true
#!/bin/sh
# stand-in-task: the lab's stand-in for a bootstrap task (lab/lab.sh, build_image).
echo "stand-in-task: started as uid $(id -u) gid $(id -g)${1:+, in place of: $*}"
skip=" /etc/hosts /etc/hostname /etc/resolv.conf /etc/passwd /etc/group "
files=$(
    while read -r _id _parent _dev _root mp opts _rest; do
        case $mp in /etc/*) ;; *) continue ;; esac
        case $skip in *" $mp "*) continue ;; esac
        if [ -f "$mp" ]; then
            echo "$mp"
        elif [ -d "$mp" ]; then
            case ",$opts," in *,ro,*) find "$mp" -type f 2>/dev/null ;; esac
        fi
    done < /proc/self/mountinfo | sort -u
)
for f in $files; do
    if ! bytes=$(wc -c < "$f" 2>&1); then
        echo "stand-in-task: cannot read $f: $bytes" >&2
        exit 1
    fi
    echo "stand-in-task: read $f ($bytes bytes)"
done
echo "stand-in-task: done"
EOF

image_users() { # "NAME UID" of each service user of the catalogue: `user` + `log_owner`
    local f
    for f in "$REPO"/templates/*/service.toml "$REPO"/templates/undercloud/*/service.toml; do
        [[ -f $f ]] || continue
        awk -F'"' '/^\[/ { exit }
            /^user *=/ { u = $2 } /^log_owner *=/ { o = $2 }
            END { if (u != "" && u != "root" && o ~ /^[0-9]+$/) print u, o }' "$f"
    done | sort -u | awk '{ if (seen[$1]++) { print "lab: error: user " $1 " has two uids in templates/" > "/dev/stderr"; exit 1 } print }'
}

build_image() { # [real]: the base image from busybox-static, in the shared read-only store
    local real=${1:-} store="$STATE/images" b="$STATE/image-build" names users stamp want
    names="$("$PY" "$LIB" image-names "$REPO")"
    users="$(image_users)"
    want="$( (dpkg-query -W -f='${Version}' busybox-static; podman --version; echo "$names"
        echo "$users"; printf '%s\n' "$STAND_IN" "$STAND_IN_HEALTHCHECK" "$STAND_IN_TASK") | sha256sum | cut -d' ' -f1)"
    stamp="$store/.lab-image.sha256"
    # lab/images.sh leaves its own stamp when it put the real service images under the
    # catalogue's names: only an `up --real-images` keeps them
    if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]] &&
        [[ -n $real || ! -f $store/.lab-real-images.sha256 ]]; then
        return 0
    fi
    log "building $BASE_IMAGE from busybox-static"
    rm -rf "$store" "$b"
    mkdir -p "$b/rootfs" "$b/run" "$b/tmp" "$store"
    local r="$b/rootfs" applet
    mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,run,var/tmp,var/log,var/lib}
    chmod 1777 "$r/tmp" "$r/var/tmp"
    cp /bin/busybox "$r/bin/busybox"
    for applet in $(/bin/busybox --list-full); do
        [[ $applet == bin/busybox || -e $r/$applet ]] && continue
        mkdir -p "$r/$(dirname "$applet")"
        ln -s /bin/busybox "$r/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$r/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' > "$r/etc/group"
    # the catalogue's service users, as in the real (kolla) images: `--user nova` works
    # and its primary group (uid = gid) reads the files the provisioner gives that group
    local u uid
    while read -r u uid; do
        [[ -n $u ]] || continue
        printf '%s:x:%s:%s:%s:/var/lib/%s:/bin/false\n' "$u" "$uid" "$uid" "$u" "$u" >> "$r/etc/passwd"
        printf '%s:x:%s:\n' "$u" "$uid" >> "$r/etc/group"
    done <<< "$users"
    mkdir -p "$r/usr/local/bin"
    printf '%s' "$STAND_IN" > "$r/usr/local/bin/stand-in"
    printf '%s' "$STAND_IN_HEALTHCHECK" > "$r/usr/local/bin/stand-in-healthcheck"
    printf '%s' "$STAND_IN_TASK" > "$r/usr/local/bin/stand-in-task"
    chmod 755 "$r/usr/local/bin/stand-in" "$r/usr/local/bin/stand-in-healthcheck" \
        "$r/usr/local/bin/stand-in-task"
    tar --numeric-owner --owner=0 --group=0 -C "$r" -cf "$b/rootfs.tar" .
    cat > "$b/containers.conf" <<EOF
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    cat > "$b/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$store"
runroot = "$b/run"
EOF
    local pm=(env CONTAINERS_CONF="$b/containers.conf" CONTAINERS_STORAGE_CONF="$b/storage.conf"
        podman --tmpdir "$b/tmp")
    "${pm[@]}" import --quiet --change 'CMD ["/bin/sh"]' "$b/rootfs.tar" "$BASE_IMAGE" > /dev/null
    # the catalogue's images, as names of the base image (nothing can be pulled here)
    local n tags=()
    for n in $names; do tags+=("$IMAGE_REPO/$n:latest"); done
    ((${#tags[@]} == 0)) || "${pm[@]}" tag "$BASE_IMAGE" "${tags[@]}"
    rm -rf "$b"
    echo "$want" > "$stamp"
}

# -------------------------------------------------------------- BMC and notifier

start_daemon() { # NAME MARKER COMMAND...: background, PID recorded in state/pids/NAME.pid
    local name=$1 marker=$2
    shift 2
    mkdir -p "$STATE/pids" "$STATE/logs"
    setsid "$@" < /dev/null >> "$STATE/logs/$name.log" 2>&1 &
    local pid=$!
    echo "$pid" > "$STATE/pids/$name.pid"
    sleep 0.05
    pid_alive_as "$pid" "$marker" || die "$name exited at once: $(tail -n 5 "$STATE/logs/$name.log")"
}

stop_daemon() { # NAME MARKER: TERM the recorded PID (if it is still that program), then KILL
    local name=$1 marker=$2 f="$STATE/pids/$1.pid" pid i
    pid="$(cat "$f" 2>/dev/null)" || return 0
    if pid_alive_as "$pid" "$marker"; then
        kill -TERM "$pid" 2> /dev/null || true
        for ((i = 0; i < 50; i++)); do
            pid_alive_as "$pid" "$marker" || break
            sleep 0.1
        done
        if pid_alive_as "$pid" "$marker"; then
            kill -KILL "$pid" 2> /dev/null || true
            for ((i = 0; i < 20; i++)); do
                pid_alive_as "$pid" "$marker" || break
                sleep 0.05
            done
        fi
        pid_alive_as "$pid" "$marker" && die "$name (pid $pid) does not stop"
        log "stopped $name (pid $pid)"
    fi
    rm -f "$f"
}

# --------------------------------------------------------------------- commands

lab_running() { # any recorded process still alive?
    local d
    pid_alive_as "$(cat "$STATE/pids/sushy.pid" 2>/dev/null)" sushy-emulator && return 0
    pid_alive_as "$(cat "$STATE/pids/notifier.pid" 2>/dev/null)" "lablib.py notifier" && return 0
    for d in "$STATE"/hosts/*/; do
        [[ -d $d ]] && sshd_pid "${d%/}" > /dev/null && return 0
    done
    return 1
}

cmd_up() {
    local nodes=6 spare=0 powered_off="" real_images=""
    [[ ${LAB_REAL_IMAGES:-} == 1 ]] && real_images=1
    while (($#)); do
        case $1 in
            --real-images) real_images=1; shift ;;
            --nodes) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--nodes N"; nodes=$2; shift 2 ;;
            --nodes=*) nodes=${1#--nodes=}; [[ $nodes =~ ^[0-9]+$ ]] || die "--nodes N"; shift ;;
            --spare) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--spare K"; spare=$2; shift 2 ;;
            --powered-off) powered_off=--powered-off; shift ;;
            *) die "up: unknown argument $1 (up [--nodes N] [--spare K] [--powered-off] [--real-images])" ;;
        esac
    done
    ((nodes >= 1 && nodes <= 189)) || die "--nodes: 1 to 189 (addresses 127.0.10.11 to .199)"
    need_root
    local t0 t
    t0="$(now)"
    ensure_packages
    ensure_venv
    [[ -x $PY ]] || die "no venv python"
    log "packages ready ($(since "$t0") s)"
    if lab_running; then
        log "the lab is running: stopping it first"
        cmd_down
    elif [[ -d $STATE/hosts || -d $STATE/pids ]]; then
        cmd_down > /dev/null 2>&1 # leftovers of an earlier run
    fi

    t="$(now)"
    mkdir -p "$STATE" "$STATE/keys" "$STATE/pids" "$STATE/logs"
    rm -rf "$STATE/hosts" "$STATE/bmc" "$STATE/logs"/*
    rm -f "$STATE"/lab-*.toml "$STATE/hosts.tsv"
    mkdir -p "$STATE/hosts"
    local m
    # sshd's privilege separation directory, and the mount points of the private ones
    for m in /run/sshd "${MOUNTPOINTS[@]}"; do
        if [[ ! -d $m ]]; then
            mkdir -p "$m"
            echo "$m" >> "$STATE/created-mountpoints"
        fi
    done
    if [[ ! -s $STATE/id_ed25519 || ! -s $STATE/id_ed25519.pub ]]; then
        rm -f "$STATE/id_ed25519" "$STATE/id_ed25519.pub"
        ssh-keygen -q -t ed25519 -N '' -C provision-lab -f "$STATE/id_ed25519"
    fi
    local inventory
    inventory="$("$PY" "$LIB" gen "$STATE" --nodes "$nodes" --spare "$spare" $powered_off ${real_images:+--real-images})"

    local name addr kind
    : > "$STATE/known_hosts.tmp"
    {
        echo "# lab hosts, generated by lab/lab.sh up: ssh -F lab/state/ssh_config HOST"
        echo "Host *"
        echo "    User root"
        echo "    IdentityFile $STATE/id_ed25519"
        echo "    IdentitiesOnly yes"
        echo "    UserKnownHostsFile $STATE/known_hosts"
        echo "    GlobalKnownHostsFile /dev/null"
        echo "    StrictHostKeyChecking yes"
        echo "    BatchMode yes"
        echo "    ConnectTimeout 5"
        echo "    LogLevel ERROR"
    } > "$STATE/ssh_config.tmp"
    while IFS=$'\t' read -r name addr kind _ mac; do
        write_host "$name" "$addr" "$kind" "$mac"
        printf '%s %s\n' "$addr" "$(cut -d' ' -f1,2 "$STATE/keys/$name/ssh_host_ed25519_key.pub")" >> "$STATE/known_hosts.tmp"
        printf 'Host %s\n    HostName %s\n' "$name" "$addr" >> "$STATE/ssh_config.tmp"
    done < <(hosts_table)
    mv "$STATE/known_hosts.tmp" "$STATE/known_hosts"
    mv "$STATE/ssh_config.tmp" "$STATE/ssh_config"
    cp "$STATE/known_hosts" "$STATE/known_hosts.hashed"
    ssh-keygen -q -H -f "$STATE/known_hosts.hashed" > /dev/null 2>&1
    rm -f "$STATE/known_hosts.hashed.old"
    log "configuration for $(hosts_table | wc -l) hosts ($(since "$t") s)"
    tenant_addresses

    t="$(now)"
    build_image ${real_images:+real}
    log "image $BASE_IMAGE ready ($(since "$t") s)"
    if [[ -n $real_images ]]; then
        t="$(now)"
        "$LAB/images.sh" build --store "$STATE/images" || die "lab/images.sh build failed"
        log "real service images ready ($(since "$t") s)"
    fi

    t="$(now)"
    mkdir -p "$STATE/bmc/sushy-state"
    start_daemon notifier "lablib.py notifier" "$PY" -u "$LIB" notifier "$STATE"
    "$PY" "$LIB" wait-port "$UNDERCLOUD_ADDR" "$NOTIFIER_PORT" "$(cat "$STATE/pids/notifier.pid")" 10 ||
        die "notifier: $(tail -n 5 "$STATE/logs/notifier.log")"
    start_daemon sushy sushy-emulator "$VENV/bin/sushy-emulator" --config "$STATE/bmc/sushy.conf"
    "$PY" "$LIB" wait-port "$UNDERCLOUD_ADDR" "$SUSHY_PORT" "$(cat "$STATE/pids/sushy.pid")" 30 ||
        die "sushy-emulator: $(tail -n 5 "$STATE/logs/sushy.log")"
    "$PY" "$LIB" check-bmc "$STATE"
    log "Redfish BMC on http://$UNDERCLOUD_ADDR:$SUSHY_PORT, power notifier on :$NOTIFIER_PORT ($(since "$t") s)"

    t="$(now)"
    local started=()
    while IFS=$'\t' read -r name addr kind _; do
        if [[ $kind == undercloud || -z $powered_off ]]; then
            host_start "$name" fresh
            started+=("$name")
        fi
    done < <(hosts_table)
    log "started ${#started[@]} sshd ($(since "$t") s)"
    t="$(now)"
    "$PY" "$LIB" check-ssh "$STATE" "${started[@]}"
    log "all ${#started[@]} answer over SSH ($(since "$t") s)"
    log "up: $(hosts_table | wc -l) hosts${powered_off:+ (nodes powered off)}, inventory ${inventory#"$REPO/"}, in $(since "$t0") s"
}

# Each node's address on the tenant network (127.0.14.<its ctlplane octet>, as provision
# allocates them in inventories/lab.toml) on the loopback device: the Open vSwitch
# agent's VXLAN endpoint (local_ip) must be an address some interface holds (neutron's
# get_device_by_ip), while every 127.0.0.0/8 address is reachable without one. Added as
# /32s beside lo's 127.0.0.1/8 (routing does not change), each one recorded and removed
# by `down`.
TENANT_PREFIX=127.0.14
tenant_addresses() {
    local name addr kind octet a n=0 kept=0 held err
    touch "$STATE/lo-addresses"
    # Read lo's addresses once into a variable: `ip ... | grep -q` under pipefail fails
    # when grep stops reading early (ip gets SIGPIPE), which sent a present address on
    # to `ip addr add` and "Address already assigned".
    held=$(ip -o addr show dev lo)
    while IFS=$'\t' read -r name addr kind _; do
        [[ $kind == node ]] || continue
        octet=${addr##*.}
        a="$TENANT_PREFIX.$octet"
        # Already there (left by a lab that was not brought down, or another of ours):
        # used as it is, and not recorded, so `down` removes only what this lab added.
        if [[ $held == *" $a/32 "* ]]; then kept=$((kept + 1)); continue; fi
        if ! err=$(ip addr add "$a/32" dev lo 2>&1); then
            [[ $err == *"already assigned"* || $err == *"File exists"* ]] \
                && { kept=$((kept + 1)); continue; }
            die "ip addr add $a/32 dev lo failed: $err"
        fi
        echo "$a" >> "$STATE/lo-addresses"
        n=$((n + 1))
    done < <(hosts_table)
    log "tenant addresses on lo: $n added, $kept already there ($(wc -l < "$STATE/lo-addresses") recorded)"
}

remove_tenant_addresses() {
    [[ -f $STATE/lo-addresses ]] || return 0
    local a
    while read -r a; do
        [[ $a == "$TENANT_PREFIX".* ]] || continue
        ip addr del "$a/32" dev lo 2> /dev/null || true
    done < "$STATE/lo-addresses"
    rm -f "$STATE/lo-addresses"
}

cmd_down() {
    local purge=""
    [[ ${1:-} == --purge ]] && purge=1
    need_root
    [[ -d $STATE ]] || { log "nothing to stop"; return 0; }
    [[ -x $PY ]] || die "no lab venv at $VENV: cannot stop by recorded PIDs"
    # the notifier first: no power event may start an sshd while we stop them
    stop_daemon notifier "lablib.py notifier"
    stop_daemon sushy sushy-emulator
    local dirs=() d
    for d in "$STATE"/hosts/*/; do [[ -d $d ]] && dirs+=("${d%/}"); done
    if ((${#dirs[@]})); then
        local killed
        killed="$("$PY" "$LIB" kill-host "${dirs[@]}")"
        log "stopped ${#dirs[@]} hosts ($killed processes)"
    fi
    rm -rf "$STATE/hosts" "$STATE/bmc" "$STATE/pids" "$STATE/hosts.tsv" "$STATE/inventory"
    remove_tenant_addresses
    if [[ -f $STATE/created-mountpoints ]]; then
        while read -r d; do rmdir "$d" 2> /dev/null || true; done < "$STATE/created-mountpoints"
        rm -f "$STATE/created-mountpoints"
    fi
    if [[ -n $purge ]]; then
        rm -rf "$STATE"
        log "purged $STATE"
    fi
    log "down"
}

cmd_status() {
    [[ -x $PY && -f $STATE/hosts.tsv ]] || { echo "lab: not up"; return 3; }
    "$PY" "$LIB" status "$STATE"
}

cmd_ssh() {
    (($#)) || die "ssh HOST [COMMAND...]"
    exec ssh -F "$STATE/ssh_config" "$@"
}

# internal, for lab/images.sh: `_stand-in DIR` writes the stand-in scripts there;
# `_image-users` prints image_users (the catalogue's service users and their uids)
cmd_stand_in() {
    local d=${1:-}
    [[ -n $d ]] || die "_stand-in DIR"
    mkdir -p "$d"
    printf '%s' "$STAND_IN" > "$d/stand-in"
    printf '%s' "$STAND_IN_HEALTHCHECK" > "$d/stand-in-healthcheck"
    printf '%s' "$STAND_IN_TASK" > "$d/stand-in-task"
    chmod 755 "$d/stand-in" "$d/stand-in-healthcheck" "$d/stand-in-task"
}

cmd_host() { # internal, for the power notifier: _host start|stop NAME
    need_root
    case ${1:-} in
        start) host_start "$2"; echo "started $2 (pid $(sshd_pid "$STATE/hosts/$2"))" ;;
        stop) host_stop "$2"; echo "stopped $2" ;;
        *) die "_host start|stop NAME" ;;
    esac
}

case ${1:-} in
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    status) shift; cmd_status "$@" ;;
    ssh) shift; cmd_ssh "$@" ;;
    _host) shift; cmd_host "$@" ;;
    _stand-in) shift; cmd_stand_in "$@" ;;
    _image-users) shift; image_users ;;
    *) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
