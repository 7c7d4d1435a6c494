#!/bin/bash
# More of the agents' net path on real VMs (docs/net.md, issue 6), with the pair
# protected:
#   1. UDP request/response through the guest's UDP echo (port 7): every reply
#      matches its request, none lost; prints the round-trip times.
#   2. New TCP connections opened between checkpoints (short echo connections) do
#      not trigger comparator checkpoints: the count before and after is printed.
#   3. A nondeterministic service (TCP 9000, random hex lines, for 30 s): the client
#      gets well-formed, unrepeated replies, and the comparator's mismatches led to
#      checkpoints (reason "comparator" > 0). Both VMs draw from the guest kernel's
#      CRNG, whose state a checkpoint makes equal, so their replies often agree: 100
#      lines in ~1 s once gave 0 mismatches, once 1; 30 s gave 47. Hence the duration.
#   4. A hung primary host (SIGSTOP) mid-stream: every byte of the echo stream
#      intact, no reset; prints the client-visible gap. Destructive, so last.
set -u
. "$(dirname "$0")/agent-lib.sh"
require_facilities
trap 'rig_down' EXIT

STREAM=$(dirname "$0")/net-stream.py
MORE=$(dirname "$0")/net-more.py
NET_ARGS=(--net-tap vm0 --net-bridge br0)
UDP_N=${TNET2_UDP:-200}
CONN_N=${TNET2_CONNS:-20}
RAND_S=${TNET2_RAND_SECONDS:-30}
SIZE=${TNET2_SIZE:-10000000}

stream() { ip netns exec "$RIG_NS_CLI" python3 "$STREAM" "$RIG_GUEST_IP" 7 "$@"; }
more() { ip netns exec "$RIG_NS_CLI" python3 "$MORE" "$1" "$RIG_GUEST_IP" "$2" "$3"; }
net_status() { "$COLOCTL" status --socket "$1" 2>/dev/null | grep -E '^  (comparator|net) '; }
checkpoints() { "$COLOCTL" status --socket "$PRI_CTL" 2>/dev/null | grep -E '^  checkpoints' | tr -s ' '; }
# by_reason REASON: the primary's committed checkpoints for that reason ("" if no answer).
by_reason() {
	"$COLOCTL" status --json --socket "$PRI_CTL" 2>/dev/null | python3 -c '
import json, sys
print(json.load(sys.stdin)["status"]["checkpoints"]["by_reason"][sys.argv[1]])' "$1" 2>/dev/null
}
int_or_fail() { [[ $1 =~ ^[0-9]+$ ]]; }

rig_up tnet2
SEC_EXTRA=("${NET_ARGS[@]}" --fence-cmd 'echo "fence: $COLO_ROLE fences $COLO_PEER"')
if ! start_pair "${NET_ARGS[@]}"; then
	fail "pair protected with the net path"
	show_logs
	finish
fi
check "the net link is up" wait_for 10 bash -c "'$COLOCTL' status --socket '$PRI_CTL' | grep -q 'link up'"
# Let the guest's boot-time traffic settle before counting.
sleep 2

# ---- 1. UDP request/response ----------------------------------------------------------
c0=$(by_reason comparator)
t0=$(now_ms)
out=$(more udp 7 "$UDP_N")
t1=$(now_ms)
c1=$(by_reason comparator)
if grep -q '^ok' <<<"$out"; then
	pass "udp: $UDP_N requests answered by matching replies, none lost, in $((t1 - t0)) ms ($out)"
else
	fail "udp: every request answered by its own reply" "$out"
	show_logs
fi
check "udp: still protected" is_state "$PRI_CTL" protected
note "udp: comparator checkpoints $c0 -> $c1; $(checkpoints)"
note "primary: $(net_status "$PRI_CTL" | tr '\n' ' ' | tr -s ' ')"

# ---- 2. new TCP connections between checkpoints ----------------------------------------
c0=$(by_reason comparator)
t0=$(now_ms)
out=$(more conns 7 "$CONN_N")
t1=$(now_ms)
sleep 1 # a late timeout/mismatch request would show up by now
c1=$(by_reason comparator)
if grep -q '^ok' <<<"$out"; then
	pass "conns: $CONN_N short echo connections intact in $((t1 - t0)) ms ($out)"
else
	fail "conns: short echo connections intact" "$out"
	show_logs
fi
if int_or_fail "$c0" && int_or_fail "$c1" && [ "$c1" -eq "$c0" ]; then
	pass "conns: no comparator checkpoint for $CONN_N new connections (count $c0 -> $c1)"
else
	fail "conns: no comparator checkpoint for $CONN_N new connections" "count '$c0' -> '$c1'"
	grep -E 'net: .*(waited|mismatch|full)' "$PRI_LOG" | tail -5 | cut -c25- | sed 's/^/    why: /'
fi
note "conns: $(checkpoints)"

# ---- 3. nondeterministic service (random hex, TCP 9000) --------------------------------
c0=$(by_reason comparator)
t0=$(now_ms)
out=$(more rand 9000 "$RAND_S")
t1=$(now_ms)
c1=$(by_reason comparator)
if grep -q '^ok' <<<"$out"; then
	pass "random: well-formed, unrepeated replies for $((t1 - t0)) ms ($out)"
else
	fail "random: well-formed, unrepeated replies" "$out"
	show_logs
fi
if int_or_fail "$c0" && int_or_fail "$c1" && [ "$c1" -gt "$c0" ]; then
	pass "random: mismatches led to comparator checkpoints (count $c0 -> $c1, +$((c1 - c0)) in $((t1 - t0)) ms)"
else
	fail "random: mismatches led to comparator checkpoints" "count '$c0' -> '$c1'"
fi
check "random: still protected" is_state "$PRI_CTL" protected
note "random: $(checkpoints)"
note "primary: $(net_status "$PRI_CTL" | tr '\n' ' ' | tr -s ' ')"
grep -E 'net: .*mismatch' "$PRI_LOG" | head -2 | cut -c25- | sed 's/^/    why: /'

# ---- 4. hung primary (SIGSTOP) mid-stream (destructive: last) ---------------------------
mark=/tmp/tnet2-mark.$$
echo 0 >"$mark"
stream "$SIZE" "$mark" >/tmp/tnet2-stream.$$ 2>&1 &
cli=$!
wait_for 60 bash -c "[ \$(cat '$mark') -ge $((SIZE / 4)) ]"
note "hanging the primary's host at $(cat "$mark") echoed bytes"
rig kill primary --hang >/dev/null 2>&1
wait "$cli"
out=$(cat /tmp/tnet2-stream.$$)
rm -f "$mark" /tmp/tnet2-stream.$$
if grep -q '^ok' <<<"$out"; then
	pass "hang: $SIZE bytes intact across the failover, no reset; client-visible gap ${out#*gap_ms=}"
else
	fail "hang: stream intact across the failover" "$out"
	show_logs
fi
check "hang: the secondary is active" is_state "$SEC_CTL" active
check "hang: the secondary's tap joined br0" \
	bash -c "ip netns exec '$RIG_NS_SEC' ip -o link show vm0 | grep -q 'master br0'"
note "secondary after takeover: $(net_status "$SEC_CTL" | tr '\n' ' ' | tr -s ' ')"
finish
