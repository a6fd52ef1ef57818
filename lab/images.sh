#!/usr/bin/env bash
# Real OpenStack 2025.1 service images for the lab, from Debian 13 ("trixie") packages
# (keystone 27, glance 30, placement 13, nova 31, neutron 26, cinder 26, MariaDB 11.8
# with Galera 4, RabbitMQ 4.0, ...), made to offer what the catalogue (written for
# kolla's 2025.1 images) relies on. See lab/README.md, "Real service images".
#
#   lab/images.sh build [--store DIR] [--rebuild]   build (or reuse) and import them
#   lab/images.sh list                              every catalogue image and its recipe
#
# --store DIR: the podman image store to import into (graphroot), default lab/state/images,
# the lab's shared read-only store (every lab host lists it in additionalimagestores).
# --rebuild: build the root filesystem again even if the cache has it (new Debian updates).
#
# ONE shared root filesystem, not one per service. All the catalogue's services are
# Python programs on the same OpenStack libraries (oslo.*, keystonemiddleware,
# SQLAlchemy, ...) plus a few daemons: one root filesystem holding all of them is about
# 1.9 GB; one per service would hold those libraries ~20 times over (a keystone-only
# root filesystem alone is 630 MB, see /work/shared/LAB-NOTES.md). So:
#   - disk: one 1.9 GB layer in the store instead of ~20 x 0.6-1 GB;
#   - build time: one mmdebstrap run (189-205 s from nothing on this 2-core machine;
#     217 s again with the .deb cache: unpacking and configuring dominate, not the
#     download) instead of one per service, each downloading and unpacking the same packages;
#   - import time: one `podman import` (37-75 s for the 1.8 GB tar) instead of ~20;
#   - cache invalidation: any change of the package list or of the root filesystem
#     recipe rebuilds the one tar (a per-service split would rebuild only one image,
#     but a change to a shared library touches them all anyway); the cheap parts (the
#     healthcheck scripts, the lab's stand-in, each image's user and entry point) are
#     not in that tar: they are a small layer and metadata on top, rebuilt in seconds.
# Every catalogue image name (image = "..." in templates/*/service.toml and
# templates/undercloud/*/service.toml) is then its own image on top of that one layer,
# with kolla's USER and entry point for that image: no copy of the layer.
#
# Layout in the store:
#   localhost/provision-lab/debian-openstack-rootfs:<key>   the imported root filesystem
#   localhost/provision-lab/debian-openstack:latest         + /usr/local/bin (healthchecks,
#                                                             stand-in), ENV, ENTRYPOINT
#   localhost/provision-lab/<image>:latest                  + USER (kolla's), per image
#
# Caches (.cache/lab-images/, gitignored): rootfs-<key>.tar, keyed by a digest of the
# package list, the mirror and suite, and the root filesystem recipe below (recipe-<key>
# and packages-<key> beside it: the recipe and the versions it got), and debs/, the
# .debs of the last build (a changed package list downloads only what is new). The store
# holds a stamp (.lab-real-images.sha256): a second build with nothing changed checks it
# and returns in well under a second.
#
# mmdebstrap --variant=apt, without recommends; while it installs the packages, its
# /usr/sbin/policy-rc.d ("exit 101") and fake start-stop-daemon keep every maintainer
# script from starting a daemon (it removes both at the end), and the build runs in a PID
# namespace of its own, so nothing it started can outlive it.
#
# Runs as root on Debian 12 (installs mmdebstrap with apt-get when missing). Reaches only
# the Debian mirror of /etc/apt/sources.list.d/debian.sources (LAB_IMAGES_MIRROR
# overrides it).
set -euo pipefail
umask 022

LAB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$LAB")"
STATE="$LAB/state"
CACHE="$REPO/.cache/lab-images"
IMAGE_REPO=localhost/provision-lab
COMMON_IMAGE="$IMAGE_REPO/debian-openstack:latest"
ROOTFS_IMAGE="$IMAGE_REPO/debian-openstack-rootfs"
SUITE=trixie
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
STAMP_NAME=.lab-real-images.sha256

log() { printf 'images: %s\n' "$*" >&2; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
sha() { sha256sum | cut -d' ' -f1; }

# ------------------------------------------------------------------- the recipe

# What the catalogue's services need to really run. Ceph (ceph-mon, ceph-osd) is not
# installed: its image name exists (the same root filesystem) so containers can be
# created and the lab's stand-in runs in them, but the lab runs no Ceph cluster.
PACKAGES=(
    # identity, image, placement, compute control plane (nova-novncproxy serves
    # /usr/share/novnc, which Debian's nova-novncproxy only recommends)
    keystone python3-keystone glance-api placement-api
    nova-api nova-conductor nova-scheduler nova-novncproxy novnc
    # the hypervisor side: nova-compute with its KVM/QEMU flavour (libvirt, QEMU, the
    # libvirt Python binding: kolla's nova-compute and nova-libvirt images)
    nova-compute nova-compute-kvm
    # networking: the API/RPC server and the ML2/OVS agents
    neutron-server neutron-openvswitch-agent neutron-dhcp-agent neutron-l3-agent neutron-metadata-agent
    # block storage (volume with the RBD driver: python3-rbd comes with it)
    cinder-api cinder-scheduler cinder-volume
    # dashboard (Apache + mod_wsgi, as kolla's Debian images)
    openstack-dashboard apache2 libapache2-mod-wsgi-py3
    # infrastructure services: Galera (galera-4, SST with mariadb-backup and socat)
    mariadb-server galera-4 mariadb-backup socat
    rabbitmq-server memcached haproxy keepalived rsyslog dnsmasq openvswitch-switch
    # uwsgi of the WSGI APIs (Debian: the http router and Python are plugins)
    uwsgi-core uwsgi-plugin-python3
    python3-pymysql python3-memcache python3-openstackclient
    # kolla-toolbox, the image of the bootstrap tasks: the mariadb client (the database
    # task runs `mariadb`), openstacksdk (keystone registration), PyMySQL
    mariadb-client python3-openstacksdk
    # kolla's base image tools: PID 1 (dumb-init), rootwrap (sudo), healthchecks
    # (iproute2's ss, procps' pgrep, lsof, curl), modprobe (kmod)
    dumb-init sudo curl procps iproute2 lsof kmod
)

# kolla's users (kolla/common/users.py, USERS, on kolla's stable/2025.1 branch): uid =
# gid. Debian's packages create most of these with other ids (keystone 110, glance 64062,
# mysql 100, ...): the image remaps them to kolla's ids and chowns every file they own,
# since the catalogue's file owners, log owners and groups are kolla's ids. kolla's
# memcached user is Debian's "memcache": renamed.
KOLLA_USERS=(
    "kolla 42400"
    "ansible 42401"
    "cinder 42407"
    "glance 42415"
    "horizon 42420"
    "keystone 42425"
    "mysql 42434"
    "neutron 42435"
    "nova 42436"
    "rabbitmq 42439"
    "haproxy 42454"
    "memcached 42457"
    "placement 42482"
)
# Debian's name of a kolla user, where it differs
DEBIAN_NAME_memcached=memcache

# Each catalogue image: kolla's USER for it (the last USER of docker/<image>/Dockerfile.j2
# on kolla's stable/2025.1; root where kolla sets none) and its entry point (kolla's base
# image: dumb-init --single-child; mariadb-server: dumb-init without --single-child, so
# that a stop signals every process). "-" for images kolla does not build (rsyslog: the
# catalogue builds it FROM kolla's base; ceph: Ceph's upstream image, root).
IMAGES=(
    # image                      user       entry    installed
    "ceph                        root       single   no"
    "cinder-api                  root       single   yes"
    "cinder-scheduler            cinder     single   yes"
    "cinder-volume               cinder     single   yes"
    "dnsmasq                     root       single   yes"
    "glance-api                  glance     single   yes"
    "haproxy                     root       single   yes"
    "horizon                     root       single   yes"
    "keepalived                  root       single   yes"
    "keystone                    root       single   yes"
    "kolla-toolbox               ansible    single   yes"
    "mariadb-server              mysql      all      yes"
    "memcached                   memcached  single   yes"
    "neutron-dhcp-agent          neutron    single   yes"
    "neutron-l3-agent            neutron    single   yes"
    "neutron-metadata-agent      neutron    single   yes"
    "neutron-openvswitch-agent   neutron    single   yes"
    "neutron-server              neutron    single   yes"
    "nova-api                    root       single   yes"
    "nova-compute                nova       single   yes"
    "nova-conductor              nova       single   yes"
    "nova-libvirt                root       single   yes"
    "nova-novncproxy             nova       single   yes"
    "nova-scheduler              nova       single   yes"
    "openvswitch-db-server       root       single   yes"
    "openvswitch-vswitchd        root       single   yes"
    "placement-api               root       single   yes"
    "rabbitmq                    rabbitmq   single   yes"
    "rsyslog                     root       single   yes"
)

# dpkg path excludes, as kolla's base image (docker/base/dpkg_reducing_disk_footprint)
DPKG_EXCLUDES=(
    "path-exclude=/usr/share/doc/*" "path-include=/usr/share/doc/*/copyright"
    "path-exclude=/usr/share/man/*" "path-exclude=/usr/share/groff/*"
    "path-exclude=/usr/share/info/*" "path-exclude=/usr/share/lintian/*"
    "path-exclude=/usr/share/linda/*" "path-exclude=/usr/share/locale/*"
    "path-include=/usr/share/locale/en*"
)

# The root filesystem recipe, run inside the new root filesystem (chroot) after every
# package is installed: where Debian's packages differ from kolla's images in what the
# catalogue uses, this makes the image match kolla's (the catalogue is not changed).
# Its text is part of the cache key. USERS holds "name uid debian-name" lines.
IFS= read -r -d '' CUSTOMIZE <<'EOF' || true
#!/bin/bash
set -euo pipefail
# 1. kolla's users and groups, with kolla's ids; Debian's packaged ones remapped
groupadd -f kolla
maps=()
while read -r name id deb; do
    [[ -n $name ]] || continue
    home=/var/lib/$name
    [[ $name == memcached ]] && home=/run/memcache   # kolla: configure_user(homedir=)
    if getent group "$deb" > /dev/null; then
        old=$(getent group "$deb" | cut -d: -f3)
        [[ $deb == "$name" ]] || groupmod -n "$name" "$deb"
        [[ $old == "$id" ]] || { groupmod -g "$id" "$name"; maps+=("g $old $id"); }
    else
        groupadd -g "$id" "$name"
    fi
    if getent passwd "$deb" > /dev/null; then
        old=$(id -u "$deb")
        [[ $deb == "$name" ]] || usermod -l "$name" "$deb"
        usermod -u "$id" -g "$id" -d "$home" "$name"
        [[ $old == "$id" ]] || maps+=("u $old $id")
    else
        useradd -M -l -u "$id" -g "$id" -d "$home" -s /usr/sbin/nologin "$name"
    fi
    [[ $name == kolla ]] || usermod -a -G kolla "$name"
    mkdir -p "$home"
    chown "$id:$id" "$home"
done <<< "$USERS"
# every file of the old ids (one walk; chown clears setuid/setgid bits: restored)
printf '%s\n' "${maps[@]}" | python3 -c '
import os, stat, sys
uids, gids = {}, {}
for line in sys.stdin.read().split("\n"):
    if line:
        kind, old, new = line.split()
        (uids if kind == "u" else gids)[int(old)] = int(new)
dev, n = os.lstat("/").st_dev, 0
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.lstat(os.path.join(top, d)).st_dev == dev]
    for name in dirs + files:
        p = os.path.join(top, name)
        st = os.lstat(p)
        u, g = uids.get(st.st_uid, -1), gids.get(st.st_gid, -1)
        if u != -1 or g != -1:
            os.lchown(p, u, g)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o6000:
                os.chmod(p, stat.S_IMODE(st.st_mode))
            n += 1
print(f"remapped {n} files", file=sys.stderr)
'
# kolla's base: the system id range covers kolla's ids (adduser --system accepts them)
sed -i -e 's/^#*LAST_SYSTEM_UID=.*/LAST_SYSTEM_UID=59999/' \
    -e 's/^#*LAST_SYSTEM_GID=.*/LAST_SYSTEM_GID=59999/' /etc/adduser.conf

# 2. mariadb-server: an empty data directory, as kolla's image (Debian's postinst made
# one; the catalogue's mariadb-start runs mariadb-install-db itself), /run/mysqld for
# mysql; Galera's provider where the catalogue's default (vars.mariadb_wsrep_provider,
# the path of kolla's RHEL-based images) looks for it; and no client socket from
# Debian's /etc/mysql/my.cnf, which clients read after /etc/my.cnf (the catalogue's, with
# socket /var/lib/mysql/mysql.sock) and which would otherwise win.
rm -rf /var/lib/mysql/* /var/lib/mysql/.[!.]*
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld && chmod 755 /run/mysqld
mkdir -p /usr/lib64 && ln -sfn ../lib/galera /usr/lib64/galera
test -e /usr/lib64/galera/libgalera_smm.so
cat > /etc/mysql/mariadb.cnf <<'CNF'
# provision lab image: Debian's [client-server] socket (/run/mysqld/mysqld.sock) is
# removed, so that clients use the socket of /etc/my.cnf (read first). The server
# runs with --defaults-file=/etc/my.cnf and reads nothing here.
!includedir /etc/mysql/conf.d/
!includedir /etc/mysql/mariadb.conf.d/
CNF
sed -i -e 's|^\(socket[[:space:]]*=.*\)|# \1 (provision lab image: /etc/my.cnf sets the socket)|' \
    /etc/mysql/mariadb.conf.d/50-client.cnf /etc/mysql/mariadb.conf.d/50-server.cnf

# 3. rabbitmq: an empty home and data directory, as kolla's image. The catalogue's
# command is `rabbitmq-server` as the rabbitmq user: Debian's wrapper runs the broker as
# its child with the output in /var/log/rabbitmq/startup_log, so a stop signal (dumb-init
# --single-child signals the wrapper) would not reach it; the wrapper of RabbitMQ's own
# packages (kolla's) execs it, its output on the container's stdout.
rm -rf /var/lib/rabbitmq/* /var/lib/rabbitmq/.[!.]*
w=/usr/lib/rabbitmq/bin/rabbitmq-script-wrapper
sed -i 's|^\( *\)/usr/lib/rabbitmq/bin/rabbitmq-server "\$@" *> *"/var/log/rabbitmq/startup_log".*$|\1exec /usr/lib/rabbitmq/bin/rabbitmq-server "$@"|' "$w"
grep -q '^ *exec /usr/lib/rabbitmq/bin/rabbitmq-server "\$@"$' "$w"

# 4. glance: the catalogue's glance-api-uwsgi.ini loads glance.wsgi.api (glance 30.0.0
# has glance/wsgi/api.py, but no glance/wsgi/__init__.py until 30.2.0, so Debian's
# 30.0.0 package does not install it; kolla's 2025.1 images install the branch, which
# has it). The same module: the glance API application from glance.common.wsgi_app.
d=/usr/lib/python3/dist-packages/glance/wsgi
if [[ ! -e $d/api.py ]]; then
    mkdir -p "$d"
    : > "$d/__init__.py"
    cat > "$d/api.py" <<'PY'
"""glance-api as a WSGI application (uwsgi module = glance.wsgi.api:application).

Added by the provision lab image: Debian's glance 30.0.0 lacks this module."""
from glance.common import wsgi_app

application = wsgi_app.init_app()
PY
fi
python3 -m compileall -q "$d"

# 5. horizon: the catalogue's horizon-start and horizon.conf use kolla's paths:
# /var/lib/kolla/venv/bin/python and .../manage.py, and openstack_dashboard/wsgi.py in
# site-packages (Debian moved manage.py and wsgi.py to /usr/share/openstack-dashboard).
# Debian's local_settings.d would override the catalogue's local_settings.py (CACHES
# locmem, STATIC_ROOT, ...): kolla's has none. Apache: no Listen of its own (kolla's
# openstack-base empties ports.conf; horizon.conf listens), mod_headers on (kolla).
mkdir -p /var/lib/kolla/venv/bin
ln -sfn /usr/bin/python3 /var/lib/kolla/venv/bin/python
ln -sfn /usr/bin/python3 /var/lib/kolla/venv/bin/python3
install -m 755 /usr/share/openstack-dashboard/manage.py /var/lib/kolla/venv/bin/manage.py
ln -sfn /usr/share/openstack-dashboard/wsgi.py /usr/lib/python3/dist-packages/openstack_dashboard/wsgi.py
rm -f /etc/openstack-dashboard/local_settings.d/_*_debian_*.py
: > /etc/apache2/ports.conf
ln -sfn ../mods-available/headers.load /etc/apache2/mods-enabled/headers.load

# 6. nova-compute: Debian's nova-compute-kvm ships /etc/nova/nova-compute.conf
# (compute_driver = libvirt.LibvirtDriver, virt_type = kvm), which oslo.config reads
# after /etc/nova/nova.conf for the nova-compute program, so it would override the
# catalogue's nova.conf; kolla's images have no such file.
rm -f /etc/nova/nova-compute.conf

# 7. /run as an image build leaves it (mmdebstrap would empty it): the directories
# the packages made, none of the build's pid files or sockets; kolla's run directories
# (mysqld, memcached's home) and Apache's (horizon-start expects /run/apache2)
find /run -mindepth 1 \( -type s -o -name '*.pid' -o -name '*.lock' \) -delete
mkdir -p /run/apache2 /run/lock/apache2
chown memcached:memcached /run/memcache && chown mysql:mysql /run/mysqld

# 8. no secrets or state of the build left in the image
rm -f /etc/ssh/ssh_host_* /var/log/*.log /var/log/apt/* 2> /dev/null || true
EOF

# The lab's healthcheck commands, kolla's (docker/base/healthcheck_*) semantics: exit 0
# healthy, 1 not, with the reason on stderr. Written for the lab image.
IFS= read -r -d '' HC_LISTEN <<'EOF' || true
#!/bin/bash
# healthcheck_listen PROCESS PORT...: healthy (0) when a process whose command line
# matches PROCESS (pgrep -f, an extended regular expression) has a listening TCP socket
# or a bound UDP socket on one of the PORTs; else 1. kolla's semantics (lab image).
(($# >= 2)) || { echo "usage: healthcheck_listen PROCESS PORT..." >&2; exit 1; }
process=$1
shift
ports=" $* "
pids=" $(pgrep -d ' ' -f -- "$process") "
[[ -n ${pids// /} ]] || { echo "healthcheck_listen: no process matches '$process'" >&2; exit 1; }
ss -Hlntup | awk -v ports="$ports" -v pids="$pids" '
    { local = ""
      for (i = 1; i <= NF; i++) if ($i ~ /:[0-9]+$/) { local = $i; break }
      port = local; sub(/.*:/, "", port)
      if (local == "" || index(ports, " " port " ") == 0) next
      s = $0
      while (match(s, /pid=[0-9]+/)) {
          if (index(pids, " " substr(s, RSTART + 4, RLENGTH - 4) " ")) { found = 1; exit }
          s = substr(s, RSTART + RLENGTH)
      } }
    END { exit !found }' && exit 0
echo "healthcheck_listen: no process matching '$process' (pids${pids% }) listens on port(s)${ports% }" >&2
exit 1
EOF
IFS= read -r -d '' HC_PORT <<'EOF' || true
#!/bin/bash
# healthcheck_port PROCESS PORT...: healthy (0) when a process whose command line
# matches PROCESS (pgrep -f) has a TCP connection whose local or remote port is one of
# the PORTs (e.g. 5672: connected to rabbitmq); else 1. kolla's semantics (lab image).
(($# >= 2)) || { echo "usage: healthcheck_port PROCESS PORT..." >&2; exit 1; }
process=$1
shift
ports=" $* "
pids=" $(pgrep -d ' ' -f -- "$process") "
[[ -n ${pids// /} ]] || { echo "healthcheck_port: no process matches '$process'" >&2; exit 1; }
ss -Hntp | awk -v ports="$ports" -v pids="$pids" '
    { hit = 0; n = 0
      for (i = 1; i <= NF && n < 2; i++) if ($i ~ /:[0-9]+$/) {
          n++; port = $i; sub(/.*:/, "", port)
          if (index(ports, " " port " ")) hit = 1
      }
      if (!hit) next
      s = $0
      while (match(s, /pid=[0-9]+/)) {
          if (index(pids, " " substr(s, RSTART + 4, RLENGTH - 4) " ")) { found = 1; exit }
          s = substr(s, RSTART + RLENGTH)
      } }
    END { exit !found }' && exit 0
echo "healthcheck_port: no process matching '$process' (pids${pids% }) has a connection on port(s)${ports% }" >&2
exit 1
EOF
IFS= read -r -d '' HC_CURL <<'EOF' || true
#!/bin/bash
# healthcheck_curl [CURL ARGS...] URL: healthy (0) when curl gets a response below 400
# within HEALTHCHECK_CURL_MAX_TIME seconds (10); prints the status, the peer and the
# time; else 1. kolla's semantics and variables (lab image): TLS unchecked (-k), no
# URL globbing (-g), no ~/.curlrc (-q).
# (kolla's defaults; curl expands the \n of the write-out format itself)
[[ -n ${HEALTHCHECK_CURL_MAX_TIME:-} ]] || HEALTHCHECK_CURL_MAX_TIME=10
[[ -n ${HEALTHCHECK_CURL_USER_AGENT:-} ]] || HEALTHCHECK_CURL_USER_AGENT=curl-healthcheck
[[ -n ${HEALTHCHECK_CURL_WRITE_OUT:-} ]] ||
    HEALTHCHECK_CURL_WRITE_OUT='\n%{http_code} %{remote_ip}:%{remote_port} %{time_total} seconds\n'
[[ -n ${HEALTHCHECK_CURL_OUTPUT:-} ]] || HEALTHCHECK_CURL_OUTPUT=/dev/null
export NSS_SDB_USE_CACHE=no
curl -q -g -k -s -S --fail -o "$HEALTHCHECK_CURL_OUTPUT" \
    --max-time "$HEALTHCHECK_CURL_MAX_TIME" \
    --user-agent "$HEALTHCHECK_CURL_USER_AGENT" \
    --write-out "$HEALTHCHECK_CURL_WRITE_OUT" \
    "$@" || exit 1
EOF
IFS= read -r -d '' HC_SOCKET <<'EOF' || true
#!/bin/bash
# healthcheck_socket PROCESS SOCKET: healthy (0) when a process named PROCESS (lsof's
# command name: its first 15 characters) has the unix socket SOCKET open; else 1.
# kolla's semantics (lab image).
(($# == 2)) || { echo "usage: healthcheck_socket PROCESS SOCKET" >&2; exit 1; }
lsof -Fc -Ua "$2" 2> /dev/null | grep -q "^c${1:0:15}" && exit 0
echo "healthcheck_socket: no process '$1' has $2 open" >&2
exit 1
EOF
IFS= read -r -d '' HC_FILEMOD <<'EOF' || true
#!/bin/bash
# healthcheck_filemod FILE SECONDS: healthy (0) when FILE exists and was modified in the
# last SECONDS seconds; else 1. kolla's semantics (lab image).
(($# == 2)) || { echo "usage: healthcheck_filemod FILE SECONDS" >&2; exit 1; }
[[ -f $1 ]] || { echo "$1 does not exist for file modification check" >&2; exit 1; }
age=$(($(date +%s) - $(stat -c %Y "$1")))
((age <= $2)) && exit 0
echo "healthcheck_filemod: $1 modified ${age} s ago (limit $2 s)" >&2
exit 1
EOF

# haproxy in the lab: the catalogue's haproxy.cfg sets maxconn 40000, for which haproxy
# raises its open-files limit to about 80000 and, failing (strict-limits, haproxy's
# default), exits. kolla's containers get 1048576 (docker's and podman's default); the
# lab's machines have a hard limit of 20000 that no container can raise (setrlimit is
# refused: hence default_ulimits = []). So below 1048576 the lab image's haproxy (first
# in PATH: the catalogue runs `haproxy`) adds a configuration file holding only
# `no strict-limits`: haproxy warns and runs with the limit it has. The rendered
# haproxy.cfg is used unchanged.
IFS= read -r -d '' LAB_HAPROXY <<'EOF' || true
#!/bin/sh
# haproxy (provision lab image, lab/images.sh): /usr/sbin/haproxy, with `no strict-limits`
# when the open-files limit is below what kolla's containers get (1048576).
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 1048576 ]; then
    exec /usr/sbin/haproxy -f /usr/local/etc/haproxy/lab-limits.cfg "$@"
fi
exec /usr/sbin/haproxy "$@"
EOF
IFS= read -r -d '' LAB_HAPROXY_LIMITS <<'EOF' || true
# provision lab image (lab/images.sh): read before the catalogue's haproxy.cfg when the
# container's open-files limit is below 1048576, which haproxy cannot raise here.
global
    no strict-limits
EOF

# The common image on top of the root filesystem: kolla's environment (PATH with
# kolla's venv first: horizon-start's /var/lib/kolla/venv/bin/python), Debian's uwsgi
# plugins for kolla's uwsgi configuration (kolla's pip-built uwsgi has http and python
# built in: Debian's loads them as plugins, and UWSGI_PLUGINS applies to every uwsgi,
# the emperor's vassals included), kolla's entry point.
common_containerfile() { # ROOTFS_REF
    cat <<EOF
FROM $1
COPY bin/ /usr/local/bin/
COPY sbin/ /usr/local/sbin/
COPY etc/ /usr/local/etc/
ENV PATH=/var/lib/kolla/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LANG=C.UTF-8 \\
    KOLLA_BASE_DISTRO=debian \\
    UWSGI_PLUGINS=http,python3
LABEL org.opencontainers.image.description="provision lab: OpenStack 2025.1 from Debian $SUITE packages (lab/images.sh)"
ENTRYPOINT ["dumb-init", "--single-child", "--"]
CMD ["/bin/bash"]
EOF
}

image_containerfile() { # NAME USER ENTRY INSTALLED
    local ep='"dumb-init", "--single-child", "--"'
    [[ $3 == all ]] && ep='"dumb-init", "--"'
    cat <<EOF
FROM $COMMON_IMAGE
USER $2
ENTRYPOINT [$ep]
LABEL provision-lab.image="$1" provision-lab.service-installed="$4"
EOF
}

# -------------------------------------------------------------------- helpers

need_root() { [[ $(id -u) == 0 ]] || die "run as root (mmdebstrap, podman storage)"; }

mirror_uri() { # the Debian mirror of apt's own sources (not -security)
    if [[ -n ${LAB_IMAGES_MIRROR:-} ]]; then echo "$LAB_IMAGES_MIRROR"; return; fi
    local f=/etc/apt/sources.list.d/debian.sources uri
    [[ -f $f ]] || die "no $f: set LAB_IMAGES_MIRROR"
    uri="$(awk 'BEGIN { RS = ""; FS = "\n" }
        { u = ""; s = ""
          for (i = 1; i <= NF; i++) {
              if ($i ~ /^URIs:/) { u = $i; sub(/^URIs:[ \t]*/, "", u); sub(/[ \t].*/, "", u) }
              if ($i ~ /^Suites:/) s = $i }
          if (u != "" && s !~ /-security/) { print u; exit } }' "$f")"
    [[ -n $uri ]] || die "no mirror URI in $f: set LAB_IMAGES_MIRROR"
    echo "$uri"
}

# Every image the catalogue names (image = "..." of each service.toml), and the images
# of its bootstrap tasks (EXTRA_IMAGES: the toolbox of the [database] and [keystone]
# tasks, which lablib.py image-names of this branch does not list yet)
EXTRA_IMAGES=(kolla-toolbox)
catalogue_images() {
    { python3 "$LAB/lablib.py" image-names "$REPO" && printf '%s\n' "${EXTRA_IMAGES[@]}"; } | sort -u
}

# The catalogue's service users and their uids (user + log_owner of each service.toml):
# lab.sh's image_users, the same list the busybox stand-in image holds. Authoritative:
# each is the image's user with that uid = gid.
catalogue_users() { "$LAB/lab.sh" _image-users; }

users_lines() { # "name uid debian-name" for the customize script: kolla's + the catalogue's
    local cu e name id var
    cu="$(catalogue_users)" || die "lab/lab.sh _image-users failed"
    declare -A want=()
    while read -r name id; do [[ -n $name ]] && want[$name]=$id; done <<< "$cu"
    for e in "${KOLLA_USERS[@]}"; do
        read -r name id <<< "$e"
        if [[ -n ${want[$name]:-} ]]; then
            [[ ${want[$name]} == "$id" ]] ||
                log "warning: the catalogue's $name is uid ${want[$name]}, kolla's is $id: the image takes the catalogue's"
            id=${want[$name]}
            unset "want[$name]"
        fi
        var="DEBIAN_NAME_$name"
        echo "$name $id ${!var:-$name}"
    done
    for name in $(printf '%s\n' "${!want[@]}" | sort); do
        echo "$name ${want[$name]} $name"
    done
}

check_tables() { # every catalogue image has a recipe, and its user exists
    local names n e found u users
    names="$CATALOGUE_IMAGES"
    for n in $names; do
        found=""
        for e in "${IMAGES[@]}"; do [[ ${e%% *} == "$n" ]] && found=1 && break; done
        [[ -n $found ]] || die "catalogue image '$n' has no entry in IMAGES (lab/images.sh): add its kolla USER"
    done
    users=" $(cut -d' ' -f1 <<< "$USERS_LINES" | tr '\n' ' ') "
    for e in "${IMAGES[@]}"; do
        read -r n u _ <<< "$e"
        [[ $u == root || $users == *" $u "* ]] || die "image $n: user $u is not in KOLLA_USERS (lab/images.sh)"
    done
}

# A digest of every input of a build, from their bytes alone (no program is asked):
# this script, lab.sh (the stand-ins, image_users), lablib.py (image-names), every
# service.toml, apt's sources and the keyring (the mirror), the versions of mmdebstrap
# and podman, the store. Unchanged, the stamp's images are what a build would make.
quick_key() { # STORE
    {
        echo "quick v1 $1 ${LAB_IMAGES_MIRROR:-}"
        dpkg-query -W -f='${Package} ${Version}\n' mmdebstrap podman 2> /dev/null || true
        cat "${BASH_SOURCE[0]}" "$LAB/lab.sh" "$LAB/lablib.py" "$KEYRING" \
            /etc/apt/sources.list.d/debian.sources \
            "$REPO"/templates/*/service.toml "$REPO"/templates/undercloud/*/service.toml 2> /dev/null || true
    } | sha
}

# The stamp: the full digest (root filesystem key, the layer on top, the names), the
# quick one, "rootfs KEY", then one image reference a line.
write_stamp() { # FILE WANT QUICK KEY NAME...
    local f=$1 want=$2 quick=$3 key=$4 n
    shift 4
    { echo "$want"; echo "$quick"; echo "rootfs $key"; for n in "$@"; do echo "$IMAGE_REPO/$n:latest"; done; } > "$f.tmp"
    mv "$f.tmp" "$f"
}

store_has() { # STORE REF...: the store's image list (containers/storage) names them all
    local f="$1/overlay-images/images.json" all r
    shift
    [[ -s $f ]] || return 1
    all="$(< "$f")"
    for r in "$@"; do [[ $all == *"\"$r\""* ]] || return 1; done
}

pid_alive_as() { # PID MARKER
    local pid=$1 marker=$2 cl
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    cl="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null)" || return 1
    [[ $cl == *"$marker"* ]]
}

lab_running() { # the lab of this checkout runs (its hosts read the store)
    local d
    pid_alive_as "$(cat "$STATE/pids/sushy.pid" 2> /dev/null)" sushy-emulator && return 0
    pid_alive_as "$(cat "$STATE/pids/notifier.pid" 2> /dev/null)" "lablib.py notifier" && return 0
    for d in "$STATE"/hosts/*/; do
        [[ -f $d/sshd.pid ]] && pid_alive_as "$(cat "$d/sshd.pid")" "${d%/}/sshd_config" && return 0
    done
    return 1
}

ensure_mmdebstrap() {
    command -v mmdebstrap > /dev/null && return 0
    log "installing mmdebstrap (apt-get)"
    {
        apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap > /dev/null
    } || die "apt-get install mmdebstrap failed"
}

# ------------------------------------------------------------------- commands

rootfs_recipe() { # everything the root filesystem tar is built from (its cache key)
    local mirror=$1
    echo "suite $SUITE"
    echo "mirror $mirror"
    echo "keyring $(sha256sum < "$KEYRING" | cut -d' ' -f1)"
    echo "mmdebstrap $(dpkg-query -W -f='${Version}' mmdebstrap 2> /dev/null || echo none)"
    echo "variant apt, no recommends, skip cleanup/run"
    printf 'package %s\n' "${PACKAGES[@]}"
    printf 'dpkg %s\n' "${DPKG_EXCLUDES[@]}"
    printf 'user %s\n' "${KOLLA_USERS[@]}"
    sed 's/^/remap /' <<< "$USERS_LINES"
    printf '%s' "$CUSTOMIZE"
}

build_rootfs() { # MIRROR KEY TAR: mmdebstrap, in a PID namespace of its own
    local mirror=$1 key=$2 tar=$3 b debs
    b="$(mktemp -d "${TMPDIR:-/tmp}/lab-images.XXXXXX")"
    debs="$CACHE/debs"
    mkdir -p "$debs"
    printf '%s' "$CUSTOMIZE" > "$b/customize"
    printf '%s\n' "$USERS_LINES" > "$b/users"
    # host-side hook: run the recipe in the chroot, record the versions, keep in the
    # .deb cache only what this build installed (the cache stays one build's size)
    cat > "$b/hook" <<EOF
#!/bin/bash
set -euo pipefail
r=\$1
install -m 755 "$b/customize" "\$r/tmp/lab-customize"
chroot "\$r" /usr/bin/env USERS="\$(cat "$b/users")" /bin/bash /tmp/lab-customize
rm -f "\$r/tmp/lab-customize"
chroot "\$r" dpkg-query -W -f='\${Package} \${Version} \${Architecture}\n' | sort > "$b/packages"
declare -A keep=()
while read -r p v a; do keep["\${p}_\${v/:/%3a}_\${a}.deb"]=1; done < "$b/packages"
for f in "\$r"/var/cache/apt/archives/*.deb; do
    [[ -e \$f ]] || continue
    [[ -n \${keep[\${f##*/}]:-} ]] || rm -f "\$f"
done
rm -f "$debs"/*.deb
EOF
    chmod 755 "$b/hook"
    local opts=() o
    for o in "${DPKG_EXCLUDES[@]}"; do opts+=("--dpkgopt=$o"); done
    log "mmdebstrap $SUITE from $mirror: ${#PACKAGES[@]} packages and their dependencies"
    local rc=0
    unshare --fork --pid --mount-proc -- timeout 2400 mmdebstrap \
        --mode=root --variant=apt --format=tar --quiet \
        --aptopt='APT::Install-Recommends "false"' \
        "${opts[@]}" \
        --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        --skip=essential/unlink \
        --skip=cleanup/run \
        --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
        --setup-hook="sync-in $debs /var/cache/apt/archives/" \
        --customize-hook="$b/hook \"\$1\"" \
        --customize-hook="sync-out /var/cache/apt/archives $debs" \
        "$SUITE" "$tar.tmp" "deb [signed-by=$KEYRING] $mirror $SUITE main" \
        > "$b/mmdebstrap.log" 2>&1 || rc=$?
    if ((rc != 0)); then
        tail -n 30 "$b/mmdebstrap.log" >&2
        rm -f "$tar.tmp"
        rm -rf "$b"
        die "mmdebstrap failed ($rc)"
    fi
    mv "$b/packages" "$CACHE/packages-$key"
    mv "$tar.tmp" "$tar"
    rm -rf "$b"
}

pm_env() { # STORE BUILDDIR: the podman command of the store (lab.sh's build settings)
    local store=$1 b=$2
    mkdir -p "$b/run" "$b/tmp"
    cat > "$b/containers.conf" <<EOF
[containers]
default_ulimits = []

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
    PM=(env CONTAINERS_CONF="$b/containers.conf" CONTAINERS_STORAGE_CONF="$b/storage.conf"
        podman --tmpdir "$b/tmp")
}

cmd_build() {
    local store="$STATE/images" rebuild=""
    while (($#)); do
        case $1 in
            --store) [[ -n ${2:-} ]] || die "--store DIR"; store=$2; shift 2 ;;
            --store=*) store=${1#--store=}; shift ;;
            --rebuild) rebuild=1; shift ;;
            *) die "build: unknown argument $1 (build [--store DIR] [--rebuild])" ;;
        esac
    done
    need_root
    mkdir -p "$store"
    store="$(cd "$store" && pwd)"
    local t0 t
    t0="$(now)"
    local stamp="$store/$STAMP_NAME" quick
    # the fast path (nothing changed: well under a second): the stamp's second line is a
    # digest of every input's bytes, and the store still holds every image it lists
    quick="$(quick_key "$store")"
    if [[ -z $rebuild && -f $stamp && "$(sed -n 2p "$stamp")" == "$quick" ]] &&
        store_has "$store" $(sed -n '4,$p' "$stamp"); then
        log "up to date in $store (rootfs $(sed -n 's/^rootfs //p' "$stamp" | head -n 1); $(($(wc -l < "$stamp") - 3)) images; $(since "$t0") s)"
        return 0
    fi
    USERS_LINES="$(users_lines)" || die "the catalogue's users"
    CATALOGUE_IMAGES="$(catalogue_images)" || die "lab/lablib.py image-names failed"
    check_tables
    mkdir -p "$CACHE"
    exec 8> "$CACHE/.lock"
    flock -w 3000 8 || die "another lab/images.sh build holds $CACHE/.lock"

    # the store's stamp: the root filesystem key + everything on top of it
    local mirror key tar names overlay want fresh=""
    mirror="$(mirror_uri)"
    key="$(rootfs_recipe "$mirror" | sha | cut -c1-16)"
    tar="$CACHE/rootfs-$key.tar"
    names="$(tr '\n' ' ' <<< "$CATALOGUE_IMAGES")"
    SB="$(mktemp -d "${TMPDIR:-/tmp}/lab-images-ctx.XXXXXX")"
    trap 'rm -rf "$SB"' EXIT
    local sb=$SB
    mkdir -p "$sb/ctx/bin"
    printf '%s' "$HC_LISTEN" > "$sb/ctx/bin/healthcheck_listen"
    printf '%s' "$HC_PORT" > "$sb/ctx/bin/healthcheck_port"
    printf '%s' "$HC_CURL" > "$sb/ctx/bin/healthcheck_curl"
    printf '%s' "$HC_SOCKET" > "$sb/ctx/bin/healthcheck_socket"
    printf '%s' "$HC_FILEMOD" > "$sb/ctx/bin/healthcheck_filemod"
    mkdir -p "$sb/ctx/sbin" "$sb/ctx/etc/haproxy"
    printf '%s' "$LAB_HAPROXY" > "$sb/ctx/sbin/haproxy"
    chmod 755 "$sb/ctx/sbin/haproxy"
    printf '%s' "$LAB_HAPROXY_LIMITS" > "$sb/ctx/etc/haproxy/lab-limits.cfg"
    # the lab's stand-in, so that the lab's stand-in containers also run on these images
    "$LAB/lab.sh" _stand-in "$sb/ctx/bin"
    chmod 755 "$sb/ctx/bin"/*
    overlay="$( (cd "$sb/ctx" && find . -type f | sort | xargs sha256sum)
        common_containerfile "$ROOTFS_IMAGE:$key"
        for e in "${IMAGES[@]}"; do read -r n u ep inst <<< "$e"; image_containerfile "$n" "$u" "$ep" "$inst"; done)"
    want="$( (echo "rootfs $key"; echo "$overlay"; echo "$names"; podman --version) | sha)"
    if [[ -z $rebuild && -f $stamp && "$(head -n 1 "$stamp")" == "$want" ]]; then
        pm_env "$store" "$sb"
        local have missing=()
        have=" $("${PM[@]}" images --noheading --format '{{.Repository}}:{{.Tag}}' | tr '\n' ' ') "
        for n in $names; do [[ $have == *" $IMAGE_REPO/$n:latest "* ]] || missing+=("$n"); done
        if ((${#missing[@]} == 0)); then
            write_stamp "$stamp" "$want" "$quick" "$key" $names
            log "up to date in $store (rootfs $key, $(wc -w <<< "$names") images; $(since "$t0") s)"
            return 0
        fi
        log "stamp matches but ${#missing[@]} images are missing (${missing[*]}): importing again"
    fi
    if [[ $store == "$STATE/images" ]] && lab_running; then
        die "the lab is running on $store: lab/lab.sh down first (or build into another --store)"
    fi

    # the root filesystem tar: cached by key
    if [[ -n $rebuild || ! -s $tar ]]; then
        ensure_mmdebstrap
        t="$(now)"
        rootfs_recipe "$mirror" > "$CACHE/recipe-$key"
        build_rootfs "$mirror" "$key" "$tar"
        fresh=1
        log "built $tar ($(du -m "$tar" | cut -f1) MB, $(wc -l < "$CACHE/packages-$key") packages) in $(since "$t") s"
        # one root filesystem in the cache: the older ones go
        local old
        for old in "$CACHE"/rootfs-*.tar; do
            [[ $old == "$tar" ]] || rm -f "$old" "$CACHE/recipe-$(basename "${old#*rootfs-}" .tar)" "$CACHE/packages-$(basename "${old#*rootfs-}" .tar)"
        done
    else
        log "root filesystem $key from the cache ($tar, $(du -m "$tar" | cut -f1) MB)"
    fi

    # into the store: the root filesystem (unless it is there), then the images on top
    rm -f "$stamp"
    pm_env "$store" "$sb"
    # (a tar built just now, e.g. --rebuild for Debian's updates, replaces the store's
    # import of the same key: the old one goes with the prune below)
    if [[ -n $fresh ]] || ! "${PM[@]}" image exists "$ROOTFS_IMAGE:$key"; then
        t="$(now)"
        timeout 900 "${PM[@]}" import --quiet "$tar" "$ROOTFS_IMAGE:$key" > /dev/null ||
            die "podman import $tar failed"
        log "imported $ROOTFS_IMAGE:$key into $store in $(since "$t") s"
    fi
    t="$(now)"
    common_containerfile "$ROOTFS_IMAGE:$key" > "$sb/Containerfile"
    timeout 300 "${PM[@]}" build --quiet --pull=never --network=none -t "$COMMON_IMAGE" \
        -f "$sb/Containerfile" "$sb/ctx" > /dev/null || die "podman build $COMMON_IMAGE failed"
    mkdir -p "$sb/empty"
    local e n u ep inst count=0
    for e in "${IMAGES[@]}"; do
        read -r n u ep inst <<< "$e"
        [[ " $names " == *" $n "* ]] || continue
        image_containerfile "$n" "$u" "$ep" "$inst" > "$sb/Containerfile.$n"
        timeout 120 "${PM[@]}" build --quiet --pull=never --network=none -t "$IMAGE_REPO/$n:latest" \
            -f "$sb/Containerfile.$n" "$sb/empty" > /dev/null || die "podman build $n failed"
        count=$((count + 1))
    done
    log "$count catalogue images + $COMMON_IMAGE built on the root filesystem in $(since "$t") s"
    # what an earlier build left: untagged images, then older root filesystems
    "${PM[@]}" image prune --force > /dev/null 2>&1 || true
    local ref
    for ref in $("${PM[@]}" images --noheading --format '{{.Repository}}:{{.Tag}}' "$ROOTFS_IMAGE"); do
        [[ $ref == "$ROOTFS_IMAGE:$key" ]] && continue
        "${PM[@]}" rmi "$ref" > /dev/null 2>&1 && log "removed $ref" || log "kept $ref (still used)"
    done
    "${PM[@]}" image prune --force > /dev/null 2>&1 || true
    write_stamp "$stamp" "$want" "$quick" "$key" $names
    # lab.sh's busybox images are no longer what this store's catalogue names point to:
    # lab.sh up (without --real-images) sees this stamp and rebuilds its own.
    log "ready in $store: $count images on rootfs $key ($(since "$t0") s)"
}

cmd_list() {
    local e n u ep inst names
    names=" $(catalogue_images | tr '\n' ' ') "
    printf '%-28s %-10s %-26s %s\n' IMAGE USER ENTRYPOINT SERVICE
    for e in "${IMAGES[@]}"; do
        read -r n u ep inst <<< "$e"
        [[ $names == *" $n "* ]] || continue
        [[ $ep == all ]] && ep="dumb-init --" || ep="dumb-init --single-child --"
        [[ $inst == yes ]] && inst=installed || inst="not installed (image exists: stand-in only)"
        printf '%-28s %-10s %-26s %s\n' "$n" "$u" "$ep" "$inst"
    done
}

case ${1:-} in
    build) shift; cmd_build "$@" ;;
    list) shift; cmd_list "$@" ;;
    *) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
