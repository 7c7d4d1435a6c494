#!/bin/bash
# make demo: a real COLO pair on one machine, narrated, with a failover drill.
#
# Two hosts (network namespaces), two QEMU guests, two colo-agents. The primary guest
# serves a client; the secondary VM is kept in lock-step by checkpoints; then the
# primary host is killed and the secondary takes over. Until the network comparator
# (net/) lands, protection covers memory and device state: the proof is the guest's
# serial heartbeat counter, which lives in guest memory and must carry on from the
# primary's last value on the secondary, never going back. With the comparator (net/),
# a TCP client streaming through the guest's echo service carries on too: every
# byte checked, no reset.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/${COLO_BUILD:-build}
AGENT=$BUILD/colo-agent
COLOCTL=$BUILD/coloctl
P=demo
NET=(--net-tap vm0 --net-bridge br0)
STREAM=$ROOT/tests/integration/net-stream.py
STREAM_BYTES=${COLO_DEMO_BYTES:-10000000}
RIG() { "$ROOT/tests/rig/colo-rig" --prefix $P "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { echo "   $*"; }

trap 'RIG down >/dev/null 2>&1 || true' EXIT
RIG down >/dev/null 2>&1 || true

step "1. Two hosts and a client (network namespaces), the primary VM booted, the secondary paused"
RIG up --preload "$BUILD/libcolo-uffd.so"
eval "$(RIG env)"
PRI_CTL=$RIG_RUN/primary/agent.sock SEC_CTL=$RIG_RUN/secondary/agent.sock
PRI_LOG=$RIG_RUN/primary/agent.log SEC_LOG=$RIG_RUN/secondary/agent.log
say "client $RIG_CLIENT_IP -> guest $RIG_GUEST_IP; replication link $RIG_PRI_REP_IP <-> $RIG_SEC_REP_IP"
say "TCP echo from the client: $(RIG exec cli socat -T2 - TCP:"$RIG_GUEST_IP":7 <<<'hello from the client')"

step "2. Start the agents: secondary (listens), then primary (initial sync of the guest's RAM)"
ip netns exec "$RIG_NS_SEC" "$AGENT" --role secondary --qmp-socket "$RIG_SEC_QMP" \
	--ram-file "$RIG_SEC_RAM" --repl-addr "$RIG_SEC_REP_IP:7700" \
	--heartbeat-bind "$RIG_SEC_REP_IP:7701" --heartbeat-peer "$RIG_PRI_REP_IP:7701" \
	--control-socket "$SEC_CTL" "${NET[@]}" >"$SEC_LOG" 2>&1 &
disown # the drill kills it on purpose; no job notices
for _ in $(seq 50); do [ -S "$SEC_CTL" ] && break; sleep 0.1; done
ip netns exec "$RIG_NS_PRI" "$AGENT" --role primary --qmp-socket "$RIG_PRI_QMP" \
	--ram-file "$RIG_PRI_RAM" --repl-addr "$RIG_SEC_REP_IP:7700" \
	--heartbeat-bind "$RIG_PRI_REP_IP:7701" --heartbeat-peer "$RIG_SEC_REP_IP:7701" \
	--control-socket "$PRI_CTL" "${NET[@]}" >"$PRI_LOG" 2>&1 &
disown
# The agent's own state is the first "state" in the reply (the peer's comes later).
. "$(dirname "$0")/coloctl-lib.sh" # state CTL
for _ in $(seq 300); do [ "$(state "$PRI_CTL")" = protected ] && break; sleep 0.1; done
[ "$(state "$PRI_CTL")" = protected ] || { say "the pair did not reach 'protected'; logs: $PRI_LOG $SEC_LOG"; tail -5 "$PRI_LOG" "$SEC_LOG"; exit 1; }
say "both agents report: primary $(state "$PRI_CTL"), secondary $(state "$SEC_CTL")"
grep -m3 -E 'protected|sync' "$PRI_LOG" | sed 's/^/   primary log: /' || true

step "3. Protected: checkpoints every 2 s at most, plus on demand (coloctl checkpoint)"
for _ in 1 2 3; do "$COLOCTL" checkpoint --socket "$PRI_CTL" >/dev/null || true; sleep 0.3; done
say "live view (coloctl watch), 6 s:"
timeout 6 "$COLOCTL" watch --socket "$PRI_CTL" 2>/dev/null | sed 's/^/   /' || true
"$COLOCTL" status --socket "$PRI_CTL" | sed 's/^/   /'

step "4. Failover drill: a client streams $STREAM_BYTES bytes through the guest's echo service;"
echo "   a quarter of the way in, SIGKILL every process on the primary host (its QEMU and its agent)"
mark=$(mktemp)
echo 0 >"$mark"
RIG exec cli python3 "$STREAM" "$RIG_GUEST_IP" 7 "$STREAM_BYTES" "$mark" >"$mark.out" 2>&1 &
client=$!
for _ in $(seq 600); do [ "$(cat "$mark")" -ge $((STREAM_BYTES / 4)) ] && break; sleep 0.1; done
say "client has $(cat "$mark") bytes echoed and checked; killing the primary host now"
before=$(sed -n 's/^colo-heartbeat \([0-9]*\).*/\1/p' "$RIG_PRI_SERIAL" | tail -1)
# The secondary VM runs between checkpoints too: only its lines after the kill count.
sec_lines=$(wc -l <"$RIG_SEC_SERIAL")
t_kill=$(date +%s%N)
RIG kill primary
for _ in $(seq 200); do [ "$(state "$SEC_CTL")" = active ] && break; sleep 0.02; done
t_active=$(date +%s%N)
say "secondary state: $(state "$SEC_CTL"), seen by polling $(((t_active - t_kill) / 1000000)) ms after the kill" \
	"(detection bound: heartbeat 50 ms x 6 misses = 300 ms)"
grep -E -- '->' "$SEC_LOG" | tail -4 | sed 's/^/   secondary log: /'
sleep 3
after=$(tail -n +$((sec_lines + 1)) "$RIG_SEC_SERIAL" | sed -n 's/^colo-heartbeat \([0-9]*\).*/\1/p')
after_first=$(head -1 <<<"$after")
after_last=$(tail -1 <<<"$after")
say "guest heartbeat counter: primary's last line $before; the secondary continued with ${after_first:-nothing} .. ${after_last:-nothing}"

wait "$client" || true
stream_result=$(cat "$mark.out")
rm -f "$mark" "$mark.out"
say "client: $stream_result"

step "5. Summary"
"$COLOCTL" status --socket "$SEC_CTL" | sed 's/^/   /' || true
if [ -n "${after_first:-}" ] && [ "$after_first" -ge "$((before - 2))" ] && [ "$after_first" -le "$((before + 1))" ] &&
	[ "$after_last" -gt "$after_first" ]; then
	say "RESULT: the guest carried on on the secondary from its last checkpoint (counter $before -> $after_first, now $after_last)."
	say "        It may repeat at most the work since the last checkpoint (<= 2 s), never go back further."
else
	say "RESULT: FAILED - the secondary's counter (${after_first:-none}) does not continue the primary's ($before)."
	exit 1
fi
if grep -q '^ok' <<<"$stream_result"; then
	say "RESULT: the TCP client got all $STREAM_BYTES bytes back intact and in order across the failover,"
	say "        with no reset: bytes lost 0, client-visible gap $(sed -n 's/.*gap_ms=\([0-9]*\).*/\1/p' <<<"$stream_result") ms"
	say "        (gap_ms: longest time the client waited for an echoed byte; detection is 300 ms of it)."
else
	say "RESULT: FAILED - the client's stream broke: $stream_result"
	exit 1
fi

step "6. Tear down"
RIG down
trap - EXIT
