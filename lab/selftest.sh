#!/usr/bin/env bash
# Checks a running lab (lab/lab.sh up, 6 nodes or more, powered on) end to end with
# OpenSSH and curl, and prints what it measured:
#
#   lab/selftest.sh [--no-power]
#
# 1. every host answers over SSH with the lab key and strict known_hosts (plain and hashed);
# 2. a node is reached through the undercloud (ssh -J, with lab/state/ssh_config);
# 3. the nodes refuse TCP forwarding (only the undercloud is a jump host);
# 4. a file written in /etc/overcloud, /var/lib/overcloud, /root of one host is seen on no
#    other host and not on this machine;
# 5. podman runs the lab's base image on a node; the stand-in (the lab image's service
#    program) runs as a service user with a file mount, turns healthy, logs the file it
#    read, and stops at once;
# 6. the BMC refuses a wrong password; a Redfish ForceOff stops a node's sshd, On brings
#    it back (skipped with --no-power).
set -euo pipefail
LAB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
S="$LAB/state"
BMC=http://127.0.10.1:8000
AUTH="admin:lab-bmc-only"
# (ssh keeps the first value given for an option: known_hosts variants go before these)
BASE=(ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null
    -i "$S/id_ed25519" -o IdentitiesOnly=yes -o ConnectTimeout=5)
SSH=("${BASE[@]}" -o "UserKnownHostsFile=$S/known_hosts")
fails=0
ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; fails=$((fails + 1)); }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[[ -f $S/hosts.tsv ]] || { echo "the lab is not up: lab/lab.sh up" >&2; exit 2; }
mapfile -t HOSTS < <(grep -v '^#' "$S/hosts.tsv" | cut -f1,2)
((${#HOSTS[@]} >= 3)) || { echo "need an undercloud and 2 nodes" >&2; exit 2; }
name_of() { cut -f1 <<< "$1"; }
addr_of() { cut -f2 <<< "$1"; }
N1="$(addr_of "${HOSTS[1]}")" N2="$(addr_of "${HOSTS[2]}")"
N2_NAME="$(name_of "${HOSTS[2]}")"

# 1
for h in "${HOSTS[@]}"; do
    a="$(addr_of "$h")" n="$(name_of "$h")"
    got="$("${SSH[@]}" "root@$a" hostname 2>&1)" && [[ $got == "$n" ]] &&
        ok "ssh root@$a: hostname $got" || bad "ssh root@$a: $got"
done
got="$("${BASE[@]}" -o "UserKnownHostsFile=$S/known_hosts.hashed" "root@$N1" true 2>&1)" &&
    ok "ssh root@$N1 with hashed known_hosts" || bad "hashed known_hosts: $got"
got="$("${BASE[@]}" -o "UserKnownHostsFile=/dev/null" "root@$N1" true 2>&1)" &&
    bad "an unknown host key was accepted" || ok "an unknown host key is refused"
got="$("${SSH[@]}" "root@127.0.10.1" 'for i in 1 2 3 4 5 6 7 8 9 10; do true; done; echo $HOME; ls -A ~ | wc -l' 2>&1 | tr '\n' ' ')"
[[ $got == "/root 0 " ]] && ok "root's home is empty on the undercloud ($got)" || bad "home: $got"

# 2, 3
got="$(ssh -F "$S/ssh_config" -J root@127.0.10.1 "root@$N2" 'echo $SSH_CONNECTION' 2>&1)" &&
    ok "ssh -J root@127.0.10.1 root@$N2: $got" || bad "jump: $got"
got="$("${SSH[@]}" -o "ProxyCommand=${SSH[*]} -W %h:%p root@127.0.10.1" "root@$N2" hostname 2>&1)" &&
    ok "ProxyCommand ssh -W through the undercloud: $got" || bad "ProxyCommand: $got"
got="$("${SSH[@]}" -W "$N2:22" "root@$N1" < /dev/null 2>&1)" &&
    bad "a node forwarded TCP" || ok "nodes refuse TCP forwarding"

# 4
stamp="selftest-$$"
"${SSH[@]}" "root@$N1" "echo $stamp > /etc/overcloud/$stamp && echo $stamp > /var/lib/overcloud/$stamp && echo $stamp > /root/$stamp && echo $stamp > /run/overcloud/$stamp"
seen=""
for h in "${HOSTS[@]}"; do
    a="$(addr_of "$h")"
    [[ $a == "$N1" ]] && continue
    out="$("${SSH[@]}" "root@$a" "ls /etc/overcloud/$stamp /var/lib/overcloud/$stamp /root/$stamp /run/overcloud/$stamp 2>/dev/null || true")"
    [[ -n $out ]] && seen+=" $a"
done
ls /etc/overcloud/$stamp /var/lib/overcloud/$stamp /root/$stamp /run/overcloud/$stamp > /dev/null 2>&1 && seen+=" this-machine"
back="$("${SSH[@]}" "root@$N1" "cat /etc/overcloud/$stamp /var/lib/overcloud/$stamp /root/$stamp /run/overcloud/$stamp | sort -u")"
[[ -z $seen && $back == "$stamp" ]] && ok "files written on $N1 are private to it" ||
    bad "isolation: seen on:$seen, read back '$back'"
"${SSH[@]}" "root@$N1" "rm -f /etc/overcloud/$stamp /var/lib/overcloud/$stamp /root/$stamp /run/overcloud/$stamp"

# 5
t="$(now)"
got="$("${SSH[@]}" "root@$N2" 'podman --version && podman run --rm localhost/provision-lab/base:latest /bin/true && echo ran' 2>&1 | tr '\n' ' ')"
[[ $got == *ran* ]] && ok "podman on $N2: ${got% ran } ran base:latest in $(since "$t") s" || bad "podman: $got"

# 5b: the stand-in, as the provisioner will run a service (user, file mount, healthcheck);
# the script goes as the command line, not stdin (podman run would read the rest of it)
t="$(now)"
script="$(cat <<'EOF'
c=selftest-stand-in-$ID f=/etc/overcloud/selftest-$ID.conf
trap 'podman rm -f $c >/dev/null 2>&1; rm -f $f' EXIT
echo '[DEFAULT]' > $f && chown root:42436 $f && chmod 0640 $f
podman run -d --name $c --user nova --label managed_by=selftest --health-cmd stand-in-healthcheck \
    --health-interval disable -v $f:/etc/nova/nova.conf:ro \
    localhost/provision-lab/nova-compute:latest /usr/local/bin/stand-in nova-compute >/dev/null || exit 1
healthy=
for i in $(seq 1 40); do
    podman healthcheck run $c >/dev/null 2>&1 && { healthy=1; break; }
    sleep 0.25
done
[ -n "$healthy" ] && echo "healthy after $i tries," ||
    echo "NOT healthy: $(podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' $c)"
podman logs $c 2>&1 | grep -q '^stand-in: read /etc/nova/nova.conf (10 bytes, sha256 ' &&
    echo "logs the read line," || echo "no read line in: $(podman logs $c 2>&1 | tr '\n' ' ')"
a=$(date +%s%N); podman stop -t 5 $c >/dev/null; b=$(date +%s%N)
echo "podman stop $(( (b - a) / 1000000 )) ms"
podman rm $c >/dev/null && echo removed
EOF
)"
got="$("${SSH[@]}" "root@$N1" "ID=$$; $script" 2>&1)"
got="$(tr '\n' ' ' <<< "$got")"
stop_ms="$(sed -n 's/.*podman stop \([0-9]*\) ms.*/\1/p' <<< "$got")"
[[ $got == *"healthy after"*"logs the read line"*removed* && ${stop_ms:-99999} -lt 1000 ]] &&
    ok "stand-in on $N1 (--user nova, a file mount): ${got% removed }, removed; in $(since "$t") s" || bad "stand-in: $got"

# 6
code="$(curl -s -o /dev/null -w '%{http_code}' -u admin:wrong "$BMC/redfish/v1/Systems")"
[[ $code == 401 ]] && ok "the BMC refuses a wrong password (401)" || bad "wrong BMC password: $code"
if [[ ${1:-} != --no-power ]]; then
    sid="lab-node-${N2##*.}"
    reset() {
        curl -s -o /dev/null -w '%{http_code}' -u "$AUTH" -H 'Content-Type: application/json' \
            -X POST -d "{\"ResetType\": \"$1\"}" "$BMC/redfish/v1/Systems/$sid/Actions/ComputerSystem.Reset"
    }
    t="$(now)"
    code="$(reset ForceOff)"
    gone=""
    for ((i = 0; i < 100; i++)); do
        "${SSH[@]}" "root@$N2" true 2> /dev/null || { gone=1; break; }
        sleep 0.25
    done
    [[ $code == 204 && -n $gone ]] && ok "ForceOff $sid: sshd of $N2_NAME gone after $(since "$t") s" ||
        bad "ForceOff $sid: http $code, still answering after $(since "$t") s"
    t="$(now)"
    code="$(reset On)"
    back=""
    for ((i = 0; i < 100; i++)); do
        "${SSH[@]}" "root@$N2" true 2> /dev/null && { back=1; break; }
        sleep 0.25
    done
    [[ $code == 204 && -n $back ]] && ok "On $sid: $N2_NAME answers again after $(since "$t") s" ||
        bad "On $sid: http $code, not answering after $(since "$t") s"
fi

if ((fails)); then
    echo "selftest: $fails failed"
    exit 1
fi
echo "selftest: all passed"
