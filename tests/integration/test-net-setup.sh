#!/bin/bash
# net/colo-net-setup in network namespaces, no VM (docs/net.md §8): three namespaces
# with a unique prefix stand for the primary host (bridge br0, port vm0 for the VM,
# port eth0 for the LAN), the VM and the LAN. Checks: install twice = install once;
# with the rules and nobody reading the queues, the VM's IP traffic waits (no leak);
# with build/bench/compare_nfqueue --serve reading them, frames are queued and
# released on its verdict (it holds each 300 ms, so a ping's round trip is ~600 ms);
# remove leaves no rule; the secondary mode takes the VM's port off the bridge and
# puts it back.
set -u
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
	skip all "needs root (network namespaces, iptables)"
	exit 0
fi
for tool in ip iptables-legacy ip6tables-legacy ping; do
	if ! command -v "$tool" >/dev/null; then
		skip all "$tool not installed"
		exit 0
	fi
done

P=cnet$$
HOST=$P-host VM=$P-vm LAN=$P-lan
SETUP=$ROOT/net/colo-net-setup
SERVE=$BUILD_DIR/bench/compare_nfqueue
TMP=$(mktemp -d)
SERVE_PID=
cleanup() {
	[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null
	for ns in "$HOST" "$VM" "$LAN"; do ip netns delete "$ns" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT

in_host() { ip netns exec "$HOST" "$@"; }
in_vm() { ip netns exec "$VM" "$@"; }
setup() { # mode action
	in_host env COLO_NET_MODE="$1" COLO_NET_ACTION="$2" COLO_NET_TAP=vm0 COLO_NET_BRIDGE=br0 \
		COLO_NET_QUEUE_OUT=0 COLO_NET_QUEUE_IN=1 "$SETUP"
}
rules() { in_host sh -c 'iptables-legacy -S; ip6tables-legacy -S'; } # -S: no packet counters
ping_lan() { in_vm ping -c "${1:-1}" -i 0.5 -W 2 192.168.123.1 >"$TMP/ping" 2>&1; }

make_namespaces() {
	ip netns add "$HOST" && ip netns add "$VM" && ip netns add "$LAN" || return 1
	in_host ip link add br0 type bridge || return 1
	in_host ip link add vm0 type veth peer name vmp netns "$VM" || return 1
	in_host ip link add eth0 type veth peer name lanp netns "$LAN" || return 1
	in_host ip link set vm0 master br0 && in_host ip link set eth0 master br0 || return 1
	for l in lo br0 vm0 eth0; do in_host ip link set "$l" up || return 1; done
	in_vm ip addr add 192.168.123.10/24 dev vmp && in_vm ip link set vmp up || return 1
	ip netns exec "$LAN" ip addr add 192.168.123.1/24 dev lanp || return 1
	ip netns exec "$LAN" ip link set lanp up && in_vm ip link set lo up
}

if ! make_namespaces; then
	fail "namespaces $P-*" "could not create the bridge and veths"
	finish
fi
if ! in_host test -w /proc/sys/net/bridge/bridge-nf-call-iptables; then
	skip all "br_netfilter is not available"
	exit 0
fi
if [ ! -x "$SERVE" ]; then
	fail "build" "$SERVE missing: run make"
	finish
fi
wait_for 5 ping_lan || note "the bridge forwards slowly: $(tail -1 "$TMP/ping")"
check "the VM reaches the LAN through the bridge before install" ping_lan

check "primary install" setup primary install
rules >"$TMP/rules1"
check "primary install again" setup primary install
rules >"$TMP/rules2"
if cmp -s "$TMP/rules1" "$TMP/rules2" && [ "$(grep -c NFQUEUE "$TMP/rules1")" = 4 ]; then
	pass "install twice = install once (4 NFQUEUE rules: output and input, IPv4 and IPv6)"
else
	fail "install twice = install once" "$(diff "$TMP/rules1" "$TMP/rules2" | head -5)"
fi
check "check after install" setup primary check

if ping_lan; then
	fail "no reader: the VM's frames wait" "a ping got through with nobody reading the queue"
else
	pass "no reader: the VM's frames wait in the queue (nothing leaks)"
fi

in_host "$SERVE" --serve 0 1 6 300 >"$TMP/serve" 2>&1 &
SERVE_PID=$!
wait_for 5 grep -qs serving "$TMP/serve"
if ping_lan 3; then
	rtt_min=$(sed -n 's|.*= \([0-9.]*\)/.*|\1|p' "$TMP/ping")
	# 2 x 300 ms, less the loop's millisecond timer granularity.
	if [ "${rtt_min%.*}" -ge 590 ]; then
		pass "frames are queued to the test program and released on its verdict (rtt min $rtt_min ms, held 2 x 300 ms)"
	else
		fail "frames are held until the verdict" "rtt min $rtt_min ms < 590 ms"
	fi
else
	fail "frames are released on the verdict" "$(tail -2 "$TMP/ping")"
fi
wait "$SERVE_PID"
SERVE_PID=
served=$(sed -n 's/.*served \([0-9]*\) packets.*/\1/p' "$TMP/serve")
if [ "${served:-0}" -ge 6 ]; then
	pass "the test program saw both directions ($served packets)"
else
	fail "the test program saw both directions" "$(cat "$TMP/serve")"
fi

check "primary remove" setup primary remove
if rules | grep -q -e COLO -e NFQUEUE; then
	fail "remove leaves no rule" "$(rules | grep -e COLO -e NFQUEUE | head -3)"
else
	pass "remove leaves no rule"
fi
check "primary remove again (nothing installed)" setup primary remove
if setup primary check 2>/dev/null; then
	fail "check after remove" "says installed"
else
	pass "check after remove says not installed"
fi
check "the VM reaches the LAN again after remove" ping_lan

check "secondary install" setup secondary install
if ping_lan; then
	fail "secondary install isolates the VM" "ping got through"
else
	pass "secondary install takes the VM's port off the bridge"
fi
check "secondary remove (go live)" setup secondary remove
check "secondary install/remove idempotent" setup secondary remove
wait_for 5 ping_lan
check "after go-live the VM reaches the LAN" ping_lan
finish
