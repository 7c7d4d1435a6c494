#!/bin/bash
# The agents' net path on real VMs (docs/net.md): a client in the client namespace
# streams data through the guest's TCP echo service (port 7) and checks every byte
#   1. with the pair protected (output compared, input mirrored);
#   2. while the primary's host is SIGKILLed mid-stream: no reset, no byte lost or
#      duplicated; prints the client-visible gap.
set -u
. "$(dirname "$0")/agent-lib.sh"
require_facilities
trap 'rig_down' EXIT

STREAM=$(dirname "$0")/net-stream.py
NET_ARGS=(--net-tap vm0 --net-bridge br0)
SIZE1=${TNET_SIZE1:-2000000}
SIZE2=${TNET_SIZE2:-10000000}

# stream BYTES [MARK]: run the checking client in the client namespace.
stream() { ip netns exec "$RIG_NS_CLI" python3 "$STREAM" "$RIG_GUEST_IP" 7 "$@"; }
net_status() { "$COLOCTL" status --socket "$1" 2>/dev/null | grep -E '^  (comparator|net) '; }

rig_up tnet
SEC_EXTRA=("${NET_ARGS[@]}" --fence-cmd 'echo "fence: $COLO_ROLE fences $COLO_PEER"')
if ! start_pair "${NET_ARGS[@]}"; then
	fail "pair protected with the net path"
	show_logs
	finish
fi
check "the primary installed its NFQUEUE rules" \
	bash -c "ip netns exec $RIG_NS_PRI iptables-legacy -S COLO-vm0 >/dev/null"
check "the net link is up" wait_for 10 bash -c "'$COLOCTL' status --socket '$PRI_CTL' | grep -q 'link up'"

# ---- 1. protected stream --------------------------------------------------------------
t0=$(now_ms)
out=$(stream "$SIZE1")
t1=$(now_ms)
if grep -q '^ok' <<<"$out"; then
	pass "protected: $SIZE1 bytes echoed intact in $((t1 - t0)) ms ($out)"
else
	fail "protected: stream intact" "$out"
	show_logs
fi
note "primary:   $(net_status "$PRI_CTL" | tr '\n' ' ' | tr -s ' ')"
note "secondary: $(net_status "$SEC_CTL" | tr '\n' ' ' | tr -s ' ')"
note "checkpoints: $("$COLOCTL" status --socket "$PRI_CTL" | grep -E '^  checkpoints' | tr -s ' ')"
grep -E 'net: .*(waited|mismatch|full)' "$PRI_LOG" | head -3 | cut -c25- | sed 's/^/    why: /'

# ---- 2. SIGKILL of the primary mid-stream ----------------------------------------------
mark=/tmp/tnet-mark.$$
echo 0 >"$mark"
stream "$SIZE2" "$mark" >/tmp/tnet-stream.$$ 2>&1 &
cli=$!
wait_for 60 bash -c "[ \$(cat '$mark') -ge $((SIZE2 / 4)) ]"
note "killing the primary's host at $(cat "$mark") echoed bytes"
rig kill primary >/dev/null 2>&1
wait "$cli"
out=$(cat /tmp/tnet-stream.$$)
rm -f "$mark" /tmp/tnet-stream.$$
if grep -q '^ok' <<<"$out"; then
	pass "kill: $SIZE2 bytes intact across the failover, no reset; client-visible gap ${out#*gap_ms=}"
else
	fail "kill: stream intact across the failover" "$out"
	show_logs
fi
check "kill: the secondary is active" is_state "$SEC_CTL" active
check "kill: the secondary's tap joined br0" \
	bash -c "ip netns exec '$RIG_NS_SEC' ip -o link show vm0 | grep -q 'master br0'"
note "secondary after takeover: $(net_status "$SEC_CTL" | tr '\n' ' ' | tr -s ' ')"

# ---- 3. the live secondary's rewriting rules go when its agent exits -------------------
sec_rules() { ip netns exec "$RIG_NS_SEC" iptables-legacy -S COLO-vm0 >/dev/null 2>&1; }
check "live: the secondary rewrites through its own NFQUEUE rules" sec_rules
kill -TERM "$SEC_PID"
wait "$SEC_PID"
check "live: SIGTERM removes them (agent exit $?)" bash -c "! ip netns exec '$RIG_NS_SEC' iptables-legacy -S COLO-vm0 >/dev/null 2>&1"
finish
