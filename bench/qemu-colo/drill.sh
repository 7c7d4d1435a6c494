#!/bin/bash
# drill.sh [--prefix P] [--bytes N]: one failover drill against QEMU COLO that is up
# (bench/qemu-colo.sh up): a client in <p>-cli streams N bytes (default 4000000) through
# the guest's TCP echo (tests/integration/net-stream.py, every byte checked); a quarter
# of the way in, every process on the primary host is SIGKILLed (qemu-colo.sh failover
# --kill); the watcher fails over to the secondary. Prints the failover timestamps
# (QCOLO_T_*) and the client's verdict (DRILL_CLIENT=ok|FAIL ..., gap_ms = the longest
# time the client waited for an echoed byte). Leaves the rig up (primary dead).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
P=qc BYTES=4000000
while [ $# -gt 0 ]; do
	case $1 in
	--prefix) P=$2; shift 2 ;;
	--bytes) BYTES=$2; shift 2 ;;
	*) echo "drill: unknown option $1" >&2; exit 2 ;;
	esac
done
QC() { "$ROOT/bench/qemu-colo.sh" --prefix "$P" "$@"; }
eval "$(QC env)" || exit 1
mark=$(mktemp) out=$(mktemp)
echo 0 >"$mark"
ip netns exec "$QCOLO_NS_CLI" python3 "$ROOT/tests/integration/net-stream.py" "$QCOLO_GUEST_IP" 7 "$BYTES" "$mark" >"$out" 2>&1 &
client=$!
for _ in $(seq 600); do
	[ "$(cat "$mark")" -ge $((BYTES / 4)) ] 2>/dev/null && break
	kill -0 $client 2>/dev/null || break
	sleep 0.1
done
echo "DRILL_BYTES_BEFORE_KILL=$(cat "$mark")"
QC failover --kill --timeout 15
wait $client
echo "DRILL_CLIENT=\"$(cat "$out")\""
rm -f "$mark" "$out"
