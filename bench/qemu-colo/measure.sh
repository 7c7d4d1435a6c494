#!/bin/bash
# measure.sh [--prefix P] [--idle S] [--bulk BYTES]: the measurements of docs/qemu-colo.md on
# QEMU COLO that is up (bench/qemu-colo.sh up ...). Prints one line per measurement:
#   idle:    the primary's pauses over S s (default 20) with no client traffic
#            (bench/qmp_pauses.py on QCOLO_PRI_QMP_OBS: RESUME - STOP event timestamps)
#            and the checkpoints counted on both sides over that time
#   udp:     200 UDP echo requests, one at a time (tests/integration/net-more.py udp)
#   tcp-rr:  200 16-byte requests on one TCP echo connection, one at a time, 10 ms
#            apart, with the primary's pauses in a 15 s window holding them
#   conns:   50 short TCP echo connections (net-more.py conns)
#   bulk:    BYTES (default 2000000) streamed through TCP echo, every byte checked
#            (tests/integration/net-stream.py), elapsed time, pauses in a 30 s window
#   status:  both sides' COLO mode after all of it
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
P=qc IDLE=20 BULK=2000000
while [ $# -gt 0 ]; do
	case $1 in
	--prefix) P=$2; shift 2 ;;
	--idle) IDLE=$2; shift 2 ;;
	--bulk) BULK=$2; shift 2 ;;
	*) echo "measure: unknown option $1" >&2; exit 2 ;;
	esac
done
QC() { "$ROOT/bench/qemu-colo.sh" --prefix "$P" "$@"; }
eval "$(QC env)" || exit 1
CLI() { ip netns exec "$QCOLO_NS_CLI" "$@"; }
ckpts() { QC status | sed -n "s/^QCOLO_$1_CHECKPOINTS=//p"; }
pauses() { # SECONDS: observe the primary's pauses in the background; prints to $pfile
	pfile=$(mktemp)
	timeout $(($1 + 10)) python3 "$ROOT/bench/qmp_pauses.py" "$QCOLO_PRI_QMP_OBS" "$1" >"$pfile" 2>&1 &
	ppid=$!
	sleep 0.5
}

echo "mode: $QCOLO_MODE ($(grep -c . "$QCOLO_SETTINGS") settings in $QCOLO_SETTINGS)"
a=$(ckpts PRI) b=$(ckpts SEC)
pauses "$IDLE"
wait $ppid
echo "idle ${IDLE}s: pauses $(cat "$pfile"); checkpoints primary $(($(ckpts PRI) - a)) secondary $(($(ckpts SEC) - b))"

echo "udp: $(CLI python3 "$ROOT/tests/integration/net-more.py" udp "$QCOLO_GUEST_IP" 7 200)"

pauses 15
rr=$(CLI timeout 60 python3 - "$QCOLO_GUEST_IP" <<'EOF'
import socket, sys, time
s = socket.create_connection((sys.argv[1], 7), timeout=20)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rtt = []
for i in range(200):
    msg = f"rr{i:013d}\n".encode()
    t0 = time.monotonic()
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        d = s.recv(64)
        if not d:
            print(f"FAIL closed after {i}"); sys.exit(1)
        got += d
    if got != msg:
        print(f"FAIL reply {i} differs"); sys.exit(1)
    rtt.append((time.monotonic() - t0) * 1000)
    time.sleep(0.01)
v = sorted(rtt)
p = lambda q: round(v[min(len(v) - 1, int(len(v) * q / 100))], 2)
print(f"ok n=200 p50_ms={p(50)} p99_ms={p(99)} max_ms={round(v[-1], 2)} total_s={round(sum(rtt)/1000, 2)}")
EOF
)
wait $ppid
echo "tcp-rr: $rr; pauses in the 15 s window holding it: $(cat "$pfile")"

echo "conns: $(CLI timeout 120 python3 "$ROOT/tests/integration/net-more.py" conns "$QCOLO_GUEST_IP" 7 50)"

pauses 30
t0=$(date +%s%N)
bulk=$(CLI timeout 70 python3 "$ROOT/tests/integration/net-stream.py" "$QCOLO_GUEST_IP" 7 "$BULK")
t1=$(date +%s%N)
wait $ppid
echo "bulk $BULK bytes: $bulk; elapsed $(((t1 - t0) / 1000000)) ms; pauses in the 30 s window holding it: $(cat "$pfile")"
echo "status: $(QC status | grep -E 'COLO_MODE|CHECKPOINTS' | tr '\n' ' ')"
grep -h -v 'waiting for connection\|Unable to connect character device' "$QCOLO_PRI_LOG" "$QCOLO_SEC_LOG" | sort | uniq -c | sed 's/^/qemu log: /'
