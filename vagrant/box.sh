#!/usr/bin/env bash
# The Vagrant lab's box, built here from Debian 13 ("trixie") packages: nothing is
# downloaded but Debian's packages (no machine without internet can fetch a public box).
#
#   vagrant/box.sh build [--force]   build it (or reuse the cached one) and `vagrant box add` it
#   vagrant/box.sh key               print the cache key (what a rebuild depends on)
#
# What is in it:
#   - Debian's kernel (linux-image-amd64) and systemd as PID 1, openssh-server, podman
#     (runc, conmon), rsyslog, curl (the BMC calls the undercloud makes), iproute2,
#     util-linux (lsblk: introspection), systemd-networkd (DHCP on every NIC but the
#     addresses a config drive sets), extlinux on the disk's MBR: the disk boots by
#     itself, so an iPXE `sanboot` of the local disk boots it (as a node's local boot
#     does after Ironic deployed it).
#   - the user `vagrant` with Vagrant's public insecure key (what `vagrant up` logs in
#     with first; vagrant replaces it) and sudo without a password, as every box has.
#   - provision-config-drive.service: on every boot, before sshd and the network, if a
#     disk labelled `config-2` exists (the lab's config drive, vagrant/lab.sh makes one per
#     VM, as Ironic gives a node one), it applies its files: the host name, root's
#     authorized key, the SSH host key (generated on the hypervisor, so known_hosts is
#     known before the VM ever boots: no trust on first use), and static addresses.
#     Without a config drive, sshd's host keys are generated on first boot.
#   - the lab's container images in a read-only image store (/var/lib/provision-images,
#     listed in /etc/containers/storage.conf's additionalimagestores): one small image
#     from Debian 13 with dnsmasq and rsyslog (real: the undercloud's DHCP/TFTP and log
#     receiver run them), busybox and the lab's stand-in scripts (lab/lab.sh), tagged
#     under every image name of the catalogue (localhost/provision-vagrant/<image>:latest).
#     The overcloud's OpenStack services run as the lab's stand-ins in the VMs (see
#     vagrant/README.md: real OpenStack runs in the process lab, tests/cloud.rs).
#
# Cache: .cache/vagrant/ (gitignored): box-<key>.box, the box; rebuilt when the key
# changes: this script, the package lists, the mirror, the stand-in scripts, the
# catalogue's image names and users, Vagrant's insecure key. A second build with nothing
# changed returns in well under a second (the box is added again only if vagrant lacks it).
set -euo pipefail
umask 022

VAGRANT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$VAGRANT_DIR")"
CACHE="$REPO/.cache/vagrant"
BOX_NAME=provision/debian13
SUITE=trixie
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# sparse: the qcow2 holds only what is written. The undercloud needs 10 GB free under
# /var/lib (provision's minimum).
DISK_GB=20
IMAGE_REPO=localhost/provision-vagrant
INSECURE_KEY=/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys/vagrant.pub

# the VM's own system
PACKAGES=(linux-image-amd64 systemd systemd-sysv udev dbus openssh-server sudo
    podman runc conmon netavark rsyslog curl iproute2 iputils-ping procps kmod util-linux
    e2fsprogs extlinux ca-certificates less)
# the one container image's (every catalogue name is a tag of it)
IMAGE_PACKAGES=(dnsmasq-base rsyslog procps busybox-static iproute2)

log() { printf 'box: %s\n' "$*" >&2; }
die() { printf 'box: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

mirror_uri() {
    [[ -n ${VAGRANT_BOX_MIRROR:-} ]] && { echo "$VAGRANT_BOX_MIRROR"; return; }
    awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2> /dev/null ||
        echo http://deb.debian.org/debian
}

image_names() { python3 "$REPO/lab/lablib.py" image-names "$REPO"; }
image_users() { "$REPO/lab/lab.sh" _image-users; }
stand_in_scripts() { # DIR
    "$REPO/lab/lab.sh" _stand-in "$1"
}

cache_key() {
    local t
    t="$(mktemp -d)"
    stand_in_scripts "$t" > /dev/null
    {
        echo "suite $SUITE mirror $(mirror_uri) disk $DISK_GB"
        sha256sum < "$KEYRING"
        dpkg-query -W -f='mmdebstrap ${Version}\n' mmdebstrap
        printf 'package %s\n' "${PACKAGES[@]}"
        printf 'image-package %s\n' "${IMAGE_PACKAGES[@]}"
        image_names
        image_users
        cat "$t"/*
        cat "$INSECURE_KEY"
        cat "${BASH_SOURCE[0]}"
    } | sha256sum | cut -c1-16
    rm -rf "$t"
}

# ---------------------------------------------------------------- the VM's files

write_system_files() { # ROOT: the files of the VM's own system
    local r=$1
    echo provision-box > "$r/etc/hostname"
    printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' > "$r/etc/hosts"
    printf 'LABEL=provision-root / ext4 errors=remount-ro 0 1\n' > "$r/etc/fstab"
    : > "$r/etc/machine-id"
    rm -f "$r/var/lib/dbus/machine-id"
    rm -f "$r"/etc/ssh/ssh_host_*
    # sshd: keys only; root by key (provision's user), vagrant by key
    cat > "$r/etc/ssh/sshd_config.d/provision.conf" <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
EOF
    # every NIC by DHCP, unless the config drive gave it a static address (10-*.network)
    mkdir -p "$r/etc/systemd/network"
    cat > "$r/etc/systemd/network/99-dhcp.network" <<'EOF'
[Match]
Name=eth*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
    # podman: runc and cgroupfs as in the process lab; the read-only image store
    mkdir -p "$r/etc/containers"
    cat > "$r/etc/containers/storage.conf" <<'EOF'
[storage]
driver = "overlay"
graphroot = "/var/lib/containers/storage"
runroot = "/run/containers/storage"

[storage.options]
additionalimagestores = ["/var/lib/provision-images"]
EOF
    cat > "$r/etc/containers/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
events_logger = "file"
EOF
    # the config drive
    install -m 0755 /dev/stdin "$r/usr/local/sbin/provision-config-drive" <<'EOF'
#!/bin/sh
# Applies the lab's config drive (a disk labelled config-2, vagrant/lab.sh), on every boot.
set -eu
dev=$(blkid -L config-2 2>/dev/null) || { [ -e /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A; exit 0; }
m=/run/provision-config-drive
mkdir -p "$m"
mount -o ro "$dev" "$m"
trap 'umount "$m"' EXIT
if [ -f "$m/provision/hostname" ]; then
    h=$(cat "$m/provision/hostname")
    echo "$h" > /etc/hostname
    hostname "$h"
    grep -q " $h\$" /etc/hosts || echo "127.0.1.1 $h" >> /etc/hosts
fi
if [ -f "$m/provision/authorized_keys" ]; then
    install -d -m 0700 /root/.ssh
    install -m 0600 "$m/provision/authorized_keys" /root/.ssh/authorized_keys
fi
if [ -f "$m/provision/ssh_host_ed25519_key" ]; then
    install -m 0600 "$m/provision/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
    install -m 0644 "$m/provision/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
fi
[ -e /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A
for f in "$m"/provision/network/*.network; do
    [ -e "$f" ] || continue
    install -m 0644 "$f" /etc/systemd/network/
done
EOF
    cat > "$r/etc/systemd/system/provision-config-drive.service" <<'EOF'
[Unit]
Description=Apply the provision lab's config drive (host name, keys, addresses)
DefaultDependencies=no
After=local-fs.target systemd-udev-settle.service
Before=ssh.service systemd-networkd.service network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/provision-config-drive
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
EOF
    # the vagrant user, as every box has it
    chroot "$r" useradd -m -s /bin/bash -U vagrant
    install -d -m 0700 -o 0 -g 0 "$r/home/vagrant/.ssh"
    install -m 0600 "$INSECURE_KEY" "$r/home/vagrant/.ssh/authorized_keys"
    chroot "$r" chown -R vagrant:vagrant /home/vagrant/.ssh
    echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$r/etc/sudoers.d/vagrant"
    chmod 0440 "$r/etc/sudoers.d/vagrant"
    chroot "$r" passwd -l root > /dev/null
    chroot "$r" systemctl enable -q systemd-networkd provision-config-drive serial-getty@ttyS0 > /dev/null 2>&1 ||
        chroot "$r" systemctl enable systemd-networkd provision-config-drive
    # the kernel's command line: the serial console (the VM's console log), eth0..N
    mkdir -p "$r/boot/extlinux"
    local k i
    k="$(cd "$r/boot" && ls vmlinuz-* | sort -V | tail -n 1)"
    i="initrd.img-${k#vmlinuz-}"
    [[ -f $r/boot/$i ]] || die "no $i in the root filesystem"
    cat > "$r/boot/extlinux/extlinux.conf" <<EOF
DEFAULT debian
TIMEOUT 1
PROMPT 0
LABEL debian
  LINUX /boot/$k
  INITRD /boot/$i
  APPEND root=LABEL=provision-root ro console=ttyS0,115200 net.ifnames=0 biosdevname=0 modprobe.blacklist=floppy quiet
EOF
}

# -------------------------------------------------------------- the image store

build_image_store() { # ROOT MIRROR: the one image, tagged under every catalogue name
    local r=$1 mirror=$2 b
    b="$(mktemp -d "${TMPDIR:-/tmp}/vagrant-images.XXXXXX")"
    mkdir -p "$b/stand-in"
    stand_in_scripts "$b/stand-in" > /dev/null
    image_users > "$b/users"
    cat > "$b/hook" <<EOF
#!/bin/bash
set -euo pipefail
r=\$1
install -m 0755 "$b"/stand-in/* "\$r/usr/local/bin/"
# the catalogue's service users at kolla's uids (the provisioner's file owners)
while read -r u uid; do
    [[ -n \$u ]] || continue
    grep -q "^\$u:" "\$r/etc/passwd" && sed -i "/^\$u:/d" "\$r/etc/passwd" "\$r/etc/group" "\$r/etc/shadow"
    printf '%s:x:%s:%s:%s:/var/lib/%s:/usr/sbin/nologin\\n' "\$u" "\$uid" "\$uid" "\$u" "\$u" >> "\$r/etc/passwd"
    printf '%s:x:%s:\\n' "\$u" "\$uid" >> "\$r/etc/group"
done < "$b/users"
rm -rf "\$r/var/cache/apt/archives/"*.deb "\$r/var/lib/apt/lists/"*
EOF
    chmod 755 "$b/hook"
    log "image: mmdebstrap $SUITE (${IMAGE_PACKAGES[*]})"
    unshare --fork --pid --mount-proc -- timeout 1200 mmdebstrap --mode=root --variant=apt \
        --format=tar --quiet --aptopt='APT::Install-Recommends "false"' \
        --include="$(IFS=,; echo "${IMAGE_PACKAGES[*]}")" \
        --customize-hook="$b/hook \"\$1\"" \
        "$SUITE" "$b/image.tar" "deb [signed-by=$KEYRING] $mirror $SUITE main" \
        > "$b/mmdebstrap.log" 2>&1 || { tail -n 20 "$b/mmdebstrap.log" >&2; die "image mmdebstrap failed"; }
    local store="$r/var/lib/provision-images"
    mkdir -p "$store" "$b/run" "$b/tmp"
    cat > "$b/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$store"
runroot = "$b/run"
EOF
    printf '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' > "$b/containers.conf"
    local pm=(env CONTAINERS_CONF="$b/containers.conf" CONTAINERS_STORAGE_CONF="$b/storage.conf"
        podman --tmpdir "$b/tmp")
    "${pm[@]}" import --quiet --change 'CMD ["/bin/sh"]' "$b/image.tar" "$IMAGE_REPO/base:latest" > /dev/null
    local n tags=()
    for n in $(image_names); do tags+=("$IMAGE_REPO/$n:latest"); done
    "${pm[@]}" tag "$IMAGE_REPO/base:latest" "${tags[@]}"
    # an image store, not a podman home: no libpod database (it would record this path)
    rm -rf "$store/libpod" "$store"/db.sql "$store"/*.lock 2> /dev/null || true
    log "image store: ${#tags[@]} names of one $(du -sm "$store" | cut -f1) MB image"
    rm -rf "$b"
}

# ------------------------------------------------------------------ the disk

make_disk() { # ROOT RAW: a bootable disk: one ext4 partition, extlinux, syslinux's MBR
    local r=$1 raw=$2 loop mnt
    rm -f "$raw"
    truncate -s "${DISK_GB}G" "$raw"
    printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$raw"
    local start=$((2048 * 512)) size
    size=$(($(stat -c %s "$raw") - start))
    loop="$(losetup --find --show --offset "$start" --sizelimit "$size" "$raw")"
    mnt="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "umount '$mnt' 2> /dev/null || true; losetup -d '$loop' 2> /dev/null || true" RETURN
    mkfs.ext4 -q -L provision-root -d "$r" "$loop"
    mount "$loop" "$mnt"
    extlinux --install "$mnt/boot/extlinux" > /dev/null 2>&1 || die "extlinux --install failed"
    umount "$mnt"
    losetup -d "$loop"
    dd if=/usr/lib/EXTLINUX/mbr.bin of="$raw" bs=440 count=1 conv=notrunc status=none
}

cmd_build() {
    local force=""
    [[ ${1:-} == --force ]] && force=1
    [[ $(id -u) == 0 ]] || die "run as root (mmdebstrap, a loop device for the disk)"
    "$VAGRANT_DIR/deps.sh" --check
    local key box t0 mirror
    t0="$(now)"
    key="$(cache_key)"
    box="$CACHE/box-$key.box"
    mkdir -p "$CACHE"
    if [[ -z $force && -f $box ]]; then
        local boxes
        boxes="$(vagrant box list 2> /dev/null || true)"
        if ! grep -q "^$BOX_NAME .*libvirt" <<< "$boxes" ||
            [[ "$(cat "$CACHE/added" 2> /dev/null)" != "$key" ]]; then
            vagrant box add --force --name "$BOX_NAME" "$box" > /dev/null
            echo "$key" > "$CACHE/added"
            log "added $BOX_NAME from the cache ($(since "$t0") s)"
        else
            log "$BOX_NAME is current (cache key $key, $(since "$t0") s)"
        fi
        return 0
    fi
    mirror="$(mirror_uri)"
    local b
    b="$(mktemp -d "${TMPDIR:-/tmp}/vagrant-box.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$b'" EXIT
    log "system: mmdebstrap $SUITE from $mirror (${#PACKAGES[@]} packages and their dependencies)"
    local t
    t="$(now)"
    unshare --fork --pid --mount-proc -- timeout 2400 mmdebstrap --mode=root --variant=apt \
        --format=directory --quiet --aptopt='APT::Install-Recommends "false"' \
        --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages' \
        "$SUITE" "$b/root" "deb [signed-by=$KEYRING] $mirror $SUITE main" \
        > "$b/mmdebstrap.log" 2>&1 || { tail -n 30 "$b/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
    log "system: $(du -sm "$b/root" | cut -f1) MB ($(since "$t") s)"
    write_system_files "$b/root"
    # the kernel, for vagrant/lab.sh's KVM probe (does a guest run under KVM here?)
    cp "$b/root/boot/$(cd "$b/root/boot" && ls vmlinuz-* | sort -V | tail -n 1)" "$CACHE/vmlinuz"
    t="$(now)"
    build_image_store "$b/root" "$mirror"
    log "images ($(since "$t") s)"
    t="$(now)"
    make_disk "$b/root" "$b/disk.raw"
    rm -rf "$b/root"
    mkdir -p "$b/box"
    qemu-img convert -q -f raw -O qcow2 "$b/disk.raw" "$b/box/box.img"
    rm -f "$b/disk.raw"
    printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$DISK_GB" > "$b/box/metadata.json"
    cat > "$b/box/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "qemu"
    libvirt.disk_bus = "virtio"
  end
end
EOF
    tar -C "$b/box" -cf "$box.tmp" metadata.json Vagrantfile box.img
    mv "$box.tmp" "$box"
    find "$CACHE" -maxdepth 1 -name 'box-*.box' ! -name "box-$key.box" -delete
    log "disk and box: $(du -m "$box" | cut -f1) MB ($(since "$t") s)"
    vagrant box add --force --name "$BOX_NAME" "$box" > /dev/null
    echo "$key" > "$CACHE/added"
    log "built and added $BOX_NAME (key $key) in $(since "$t0") s"
}

case ${1:-} in
    build) shift; cmd_build "$@" ;;
    key) cache_key ;;
    *) echo "usage: vagrant/box.sh build [--force] | key" >&2; exit 2 ;;
esac
