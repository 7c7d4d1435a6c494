#!/bin/bash
# bench/net-latency.sh [COUNT]: the extra latency a matched request/response sees under
# COLO protection, side by side in one run on one rig: the same client and guest, first
# unprotected (no agents), then protected by both agents with the comparator.
# Needs root and the rig's artefacts: run as
#   COLO_BUILD=build COLO_QEMU=$(tests/rig/build-qemu.sh) COLO_GUEST=$(tests/rig/build-guest.sh) bench/net-latency.sh
set -u
. "$(dirname "$0")/../tests/integration/agent-lib.sh"
COUNT=${1:-10000} # long enough to span several periodic checkpoints (2 s)
MORE=$ROOT/tests/integration/net-more.py
NET_ARGS=(--net-tap vm0 --net-bridge br0)
trap 'rig_down' EXIT

udp_rr() { ip netns exec "$RIG_NS_CLI" python3 "$MORE" udp "$RIG_GUEST_IP" 7 "$COUNT"; }
field() { sed -n "s/.* $1=\\([0-9.]*\\).*/\\1/p" <<<"$2"; }

rig_up blat
plain=$(udp_rr)
SEC_EXTRA=("${NET_ARGS[@]}")
if ! start_pair "${NET_ARGS[@]}"; then
	echo "bench: the pair did not reach protected; logs: $PRI_LOG $SEC_LOG" >&2
	exit 1
fi
sleep 1
protected=$(udp_rr)
ckpts=$("$COLOCTL" status --socket "$PRI_CTL" | grep -E '^  checkpoints' | tr -s ' ')
printf '\nUDP echo request/response, %s requests, one at a time (TCG guest, %s)\n' "$COUNT" "$(date -u +%FT%TZ)"
printf '%-12s %10s %10s %10s\n' "" p50_ms p99_ms max_ms
for row in "unprotected:$plain" "protected:$protected"; do
	name=${row%%:*} out=${row#*:}
	printf '%-12s %10s %10s %10s\n' "$name" "$(field p50_ms "$out")" "$(field p99_ms "$out")" "$(field max_ms "$out")"
done
echo "primary during the protected run:$ckpts"
