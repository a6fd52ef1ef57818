#!/usr/bin/env bash
# Checks the non-oslo configs of a render folder with the software that reads them:
#   haproxy.cfg    haproxy -c
#   rsyslog.conf   rsyslogd -N1 (the overcloud's forwarder, the undercloud's receiver)
#   dnsmasq.conf   dnsmasq --test (the undercloud's DHCP/PXE/DNS)
#   registries.conf.d/*.conf   podman info with it as its registries.conf
#   logrotate.d/provision      logrotate -d (debug: reads it, rotates nothing)
#   *.service      systemd-analyze verify (any warning fails: it exits 0 on unknown keys)
# Each distinct file is checked once. Ends with "N passed, M failed".
#
#   check_native.sh RENDER_DIR
set -uo pipefail
dir="$1"
pass=0 fail=0
declare -A seen
check() { # label file command...
    local label="$1" file="$2"; shift 2
    local sum; sum=$(grep -v '^#' "$file" | sed 's/[0-9.]*//g' | sha256sum | cut -c1-16)
    [[ -n "${seen[$label$sum]:-}" ]] && return
    seen[$label$sum]=1
    local out
    if out=$("$@" 2>&1); then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        printf 'FAIL %s %s\n%s\n' "$label" "$file" "$out" >&2
    fi
}
while IFS= read -r -d '' f; do
    check haproxy "$f" haproxy -c -q -f "$f"
done < <(find "$dir" -path '*/etc/overcloud/haproxy/haproxy.cfg' -print0)
while IFS= read -r -d '' f; do
    # rsyslogd -N1 checks the syntax and loads the modules; the work directory must exist.
    work=$(mktemp -d)
    check rsyslog "$f" rsyslogd -N1 -f <(sed "s#workDirectory=\"/var/lib/rsyslog\"#workDirectory=\"$work\"#" "$f")
    rm -rf "$work"
done < <(find "$dir" \( -path '*/etc/overcloud/rsyslog/*.conf' -o -path '*/etc/undercloud/log_receiver/*.conf' \) -print0)
while IFS= read -r -d '' f; do
    # dnsmasq --test parses every option (the hosts file it names is read at start only)
    check dnsmasq "$f" dnsmasq --test --conf-file="$f"
done < <(find "$dir" -path '*/etc/undercloud/dnsmasq/dnsmasq.conf' -print0)
# podman parses a registries.conf.d file like a registries.conf (same format, v2)
registries() {
    local t rc; t=$(mktemp -d)
    CONTAINERS_REGISTRIES_CONF="$1" podman --root "$t/root" --runroot "$t/run" --storage-driver vfs info --format '{{json .Registries}}' >/dev/null
    rc=$?; rm -rf "$t"; return $rc
}
while IFS= read -r -d '' f; do
    check registries "$f" registries "$f"
done < <(find "$dir" -path '*/etc/containers/registries.conf.d/*.conf' -print0)
rotation() {
    local t rc; t=$(mktemp -d)
    logrotate -d -s "$t/state" "$1" >/dev/null 2>&1
    rc=$?; rm -rf "$t"; return $rc
}
while IFS= read -r -d '' f; do
    check logrotate "$f" rotation "$f"
done < <(find "$dir" -path '*/etc/logrotate.d/provision' -print0)
# systemd-analyze verify exits 0 on unknown keys, with a warning: silence is success.
verify_unit() { local out; out=$(systemd-analyze verify "$1" 2>&1); [[ -z $out ]] || { echo "$out"; return 1; }; }
if command -v systemd-analyze >/dev/null; then
    while IFS= read -r -d '' f; do
        check unit "$f" verify_unit "$f"
    done < <(find "$dir" -path '*/etc/systemd/system/provision-*.service' -print0)
fi
echo "$pass passed, $fail failed"
((fail == 0))
