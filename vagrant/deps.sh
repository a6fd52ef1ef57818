#!/usr/bin/env bash
# The Vagrant lab's packages, from Debian's registry (idempotent; a second run with
# everything installed returns at once):
#   vagrant 2.3.4 and vagrant-libvirt 0.11.2, libvirt 9.0 (libvirtd, virtlogd), qemu's
#   system emulator from bookworm-backports (this image has qemu-utils 10.0.2 from
#   there, so bookworm's qemu-system-x86 7.2 cannot install beside it), iPXE's ROMs
#   (the NICs' network boot), mmdebstrap and extlinux (the box), python3-libvirt (the
#   BMCs: sushy-tools' libvirt driver), genisoimage is not needed (the config drive is
#   an ext4 image made by mkfs.ext4 -d), podman with runc and conmon (box.sh imports the
#   node image into the box's image store with it), python3-venv (sushy-tools' venv),
#   dnsmasq-base (libvirt runs it for the management network's DHCP), curl and
#   openssh-client (lab.sh asks the BMCs and the VMs).
#
#   vagrant/deps.sh          install what is missing
#   vagrant/deps.sh --check  exit 1 if something is missing (prints what)
set -euo pipefail
PKGS=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients ipxe-qemu
      mmdebstrap extlinux syslinux-common python3-libvirt e2fsprogs fdisk qemu-utils
      podman runc conmon python3-venv dnsmasq-base curl openssh-client)
BACKPORTS_PKGS=(qemu-system-x86)
missing=()
for p in "${PKGS[@]}" "${BACKPORTS_PKGS[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2> /dev/null)" == "install ok installed" ]] || missing+=("$p")
done
if [[ ${1:-} == --check ]]; then
    ((${#missing[@]} == 0)) || { echo "vagrant/deps.sh: missing: ${missing[*]}" >&2; exit 1; }
    exit 0
fi
((${#missing[@]} == 0)) && exit 0
[[ $(id -u) == 0 ]] || { echo "vagrant/deps.sh: run as root (apt-get)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
src=/etc/apt/sources.list.d/provision-bookworm-backports.sources
if [[ ! -f $src ]] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2> /dev/null || true)
    cat > "$src" <<SRC
Types: deb
URIs: ${uri:-http://deb.debian.org/debian}
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
echo "vagrant/deps.sh: installing ${missing[*]}" >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${PKGS[@]}" > /dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports "${BACKPORTS_PKGS[@]}" > /dev/null
