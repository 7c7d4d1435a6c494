#!/bin/bash
# The rig: two hosts and a client in namespaces, real QEMU guests, clean teardown.
set -u
. "$(dirname "$0")/lib.sh"
require_facilities

P=trig
P2=trig2
rig() { "$RIG" --prefix "$P" "$@"; }
trap '"$RIG" --prefix $P down >/dev/null 2>&1; "$RIG" --prefix $P2 down >/dev/null 2>&1' EXIT
rig down >/dev/null 2>&1

t0=$SECONDS
if ! rig up; then
	fail "up boots the primary guest" "colo-rig up failed"
	finish
fi
pass "up boots the primary guest and its echo answers from the client ($((SECONDS - t0)) s)"
eval "$(rig env)"

echo_reply=$(rig exec cli timeout 5 socat -T2 - "TCP:$RIG_GUEST_IP:7" <<<"hello colo")
check "TCP echo from the client" [ "$echo_reply" = "hello colo" ]
udp_reply=$(rig exec cli timeout 5 socat -T2 - "UDP:$RIG_GUEST_IP:7" <<<"udp colo")
check "UDP echo from the client" [ "$udp_reply" = "udp colo" ]
http=$(rig exec cli timeout 5 socat -T2 - "TCP:$RIG_GUEST_IP:80" <<<$'GET / HTTP/1.0\r\n\r')
check "HTTP from the client" grep -q '^HTTP/1.[01] 200' <<<"$http"

counter_advances() {
	local a b
	a=$(grep -c colo-heartbeat "$RIG_PRI_SERIAL")
	sleep 1.5
	b=$(grep -c colo-heartbeat "$RIG_PRI_SERIAL")
	[ "$b" -gt "$a" ]
}
check "primary serial heartbeat counter advances" counter_advances

sec_status=$(qmp "$RIG_SEC_QMP_DEBUG" '{"execute":"query-status"}')
check "secondary VM starts paused" grep -q '"running": false' <<<"$sec_status"
version=$(qmp "$RIG_PRI_QMP_DEBUG" '{"execute":"query-version"}')
check "QEMU is the fixed build (query-version package contains colo)" \
	grep -q '"package": "[^"]*colo' <<<"$version"
sec_port_detached() { ! ip -n "$RIG_NS_SEC" -o link show vm0 | grep -q ' master '; }
check "secondary VM port is not on the LAN" sec_port_detached
rep_link_works() { rig exec pri ping -c1 -W2 "$RIG_SEC_REP_IP" >/dev/null; }
check "replication link works" rep_link_works

st=$(rig status)
check "status names every VM's QMP socket, serial log and RAM file" \
	bash -c 'for f in "$@"; do grep -qF "$f" <<<"$0" || exit 1; [ -e "$f" ] || exit 1; done' \
	"$st" "$RIG_PRI_QMP" "$RIG_SEC_QMP" "$RIG_PRI_SERIAL" "$RIG_PRI_RAM" "$RIG_SEC_RAM"

# A second rig beside the first.
if "$RIG" --prefix "$P2" up --no-wait >/dev/null 2>&1 &&
	ip netns list | grep -q "^$P2-pri" && ip netns list | grep -q "^$P-pri"; then
	pass "two rigs with different prefixes coexist"
else
	fail "two rigs with different prefixes coexist"
fi
"$RIG" --prefix "$P2" down >/dev/null 2>&1

pri_pid=$(cat "$RIG_RUN/primary/qemu.pid")
rig kill primary --hang >/dev/null 2>&1
check "kill primary --hang stops the primary QEMU" \
	bash -c "[ \"\$(awk '{print \$3}' /proc/$pri_pid/stat)\" = T ]"
rig kill primary >/dev/null 2>&1
check "kill primary kills the primary QEMU" wait_for 5 bash -c "[ ! -d /proc/$pri_pid ]"

# down after a crash: the run dir is gone, namespaces and QEMU remain.
sec_pid=$(cat "$RIG_RUN/secondary/qemu.pid")
rm -rf "$RIG_RUN"
rig down >/dev/null 2>&1
left=$(ip netns list | grep -c "^$P-" || true)
check "down removes every namespace even without its run dir" [ "$left" = 0 ]
qemu_gone() { ! pid_alive "$sec_pid" && ! pgrep -f "name colo-rig-$P-[ps]" >/dev/null; }
check "down kills every QEMU" qemu_gone
check "down removes the RAM files" bash -c "! ls /dev/shm/colo-rig-$P >/dev/null 2>&1"
check "down twice is fine" rig down
finish
