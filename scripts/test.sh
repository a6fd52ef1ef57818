#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine (Debian 12, root):
#
#   scripts/test.sh
#
# 1. installs what the tests need: Debian packages (apt-get), the OpenStack projects
#    whose option definitions validate rendered configs (pip, into a venv under .cache/);
# 2. starts the local lab (lab/lab.sh up --real-images --spare 1: real sshd hosts on
#    127.0.10.x, one spare node for tests/cloud.rs's scale-out, sushy-tools Redfish BMCs,
#    podman, and OpenStack 2025.1 images built from Debian 13 packages, cached under
#    .cache/lab-images) unless it is running, installs the openstack client
#    (lab/client.sh: python-openstackclient and osc-placement into .cache/client-venv),
#    builds provision and runs every Rust test (unit, integration against the lab, the
#    real cloud of tests/cloud.rs, CLI), then stops the lab it started;
# 3. renders every inventory in inventories/ and checks every oslo.config file with
#    oslo-config-validator against the projects' current release, haproxy.cfg,
#    rsyslog.conf (the forwarder and the undercloud's receiver), the undercloud's
#    dnsmasq.conf, registries.conf.d and logrotate.d with haproxy, rsyslogd, dnsmasq,
#    podman and logrotate themselves, the containers' systemd units with systemd-analyze verify.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$(pwd)"
log() { printf '\n== %s\n' "$*" >&2; }

log "system packages"
need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v haproxy >/dev/null || need+=(haproxy)
command -v rsyslogd >/dev/null || need+=(rsyslog)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)      # checks and runs the undercloud's dnsmasq.conf
command -v podman >/dev/null || need+=(podman)             # parses the rendered registries.conf.d
command -v logrotate >/dev/null || need+=(logrotate)       # reads the rendered logrotate.d files
command -v git >/dev/null || need+=(git)
command -v systemd-analyze >/dev/null || need+=(systemd)   # verifies the rendered units
# `vagrant validate` of vagrant/Vagrantfile in a fresh clone (tests/vagrant.rs); its
# libvirt provider block needs the plugin. The VMs themselves: vagrant/acceptance.sh.
command -v vagrant >/dev/null || need+=(vagrant)
[[ "$(dpkg-query -W -f='${Status}' vagrant-libvirt 2>/dev/null)" == "install ok installed" ]] || need+=(vagrant-libvirt)
if ((${#need[@]})); then
    if [[ ! -d /var/lib/apt/lists/partial ]] || [[ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v partial)" ]]; then
        apt-get update -qq
    fi
    apt-get install -y -qq "${need[@]}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

log "python venv for oslo-config-validator"
tests/config-check/setup.sh

log "format"
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --check || { echo "cargo fmt --check: run cargo fmt" >&2; exit 1; }
fi

log "build"
cargo build --release --locked 2>&1 | tail -n 3

log "option catalogue self-check: the services' own oslo-config-validator and oslo.config agree with provision validate (scripts/oslo-schema/generate.sh 2025.1 --self-check-only; venv cached under .cache/oslo-schema)"
scripts/oslo-schema/generate.sh 2025.1 --self-check-only

log "render every inventory and validate the configs"
out="$repo/.cache/render"
status=0
for inv in inventories/*.toml; do
    case "$inv" in *.secrets.toml) continue ;; esac
    name="$(basename "$inv" .toml)"
    rm -rf "$out/$name"
    target/release/provision render "$inv" --out "$out/$name"
    tests/config-check/check_rendered.py "$out/$name" || status=1
    tests/config-check/check_native.sh "$out/$name" || status=1
done

log "the local lab (real sshd hosts, Redfish BMCs, podman, real images): lab/lab.sh up --real-images --spare 1"
lab_started=""
trap '[[ -n $lab_started ]] && lab/lab.sh down >/dev/null 2>&1 || true' EXIT
if ! lab/lab.sh status >/dev/null 2>&1; then
    lab_started=1   # before up: a failed start is torn down too
    lab/lab.sh up --real-images --spare 1
elif [[ ! -f lab/state/images/.lab-real-images.sha256 ]] || ! grep -q '^lab-novacompute-3	' lab/state/hosts.tsv; then
    echo "test.sh: the running lab lacks the real images or the spare node that" \
        "tests/cloud.rs needs: lab/lab.sh down && lab/lab.sh up --real-images --spare 1" >&2
fi

log "the openstack client: lab/client.sh"
lab/client.sh >/dev/null

log "Rust tests"
cargo test --release --locked || status=1
exit "$status"
