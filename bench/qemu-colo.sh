#!/bin/bash
# qemu-colo.sh: QEMU 7.2's built-in COLO on the rig, as the bench's peer (issue 8, system (c)).
#
# QEMU 7.2.22 as Debian ships it, the rig's hosts (tests/rig/colo-rig up --hosts-only)
# and the rig's guest (same kernel, initrd, append line, memory, 1 vCPU, e1000, MAC),
# set up as QEMU's docs/COLO-FT.txt describes. Which binary: Debian's own
# (/usr/bin/qemu-system-x86_64, `--qemu debian`) deadlocks its primary at the first
# checkpoint under TCG (a missing big-lock in migration/colo.c; KVM does not work on
# these machines), so the default (`--qemu fixed`) is Debian's 7.2.22 source with only
# that call fixed, built once by bench/qemu-colo/build-qemu.sh. docs/qemu-colo.md.
#
#
#   primary  (<p>-pri): tap vm0 on br0 (the LAN); filter-mirror m0 (guest-bound packets
#            -> the secondary), filter-redirector redire1 (guest output -> colo-compare),
#            colo-compare comp0 in iothread1 (primary vs secondary output; released on
#            match, checkpoint on mismatch or timeout), filter-redirector redire0
#            (compare's output -> the tap). Proxy sockets on the replication link
#            10.77.0.1:9003 (mirror) and :9004 (secondary's output); loopback 9001/9005.
#   secondary (<p>-sec): started with -incoming tcp:10.77.0.2:9998; tap vm0 NOT on br0;
#            filter-redirector f1 (mirror -> guest), f2 (guest output -> primary's compare),
#            filter-rewriter rew0 (TCP sequence offsets). No disk: the guest runs from
#            its initrd, so no block replication (quorum/replication/NBD) is needed.
#   COLO starts by migrate with the x-colo capability once the primary guest has booted.
#
# Modes (every setting printed by `up` and written to $QCOLO_SETTINGS):
#   defaults: QEMU 7.2's defaults for every COLO parameter, as the docs' example leaves
#             them: x-checkpoint-delay 20000 ms, colo-compare compare_timeout 3000 ms,
#             expired_scan_cycle 1000 ms, max_queue_size 1024, max-bandwidth 128 MiB/s,
#             chardev sockets without nodelay, kernel TCP defaults (delayed ACKs).
#   tuned:    see tuned_settings below and docs/qemu-colo.md for what each was measured to do.
#
# QEMU's COLO has no heartbeat ("HeartBeat has not been implemented yet"): `up` starts
# a watcher on the secondary host (bench/qemu-colo/heartbeat.py; 50 ms x 6 misses, as
# colo's agents) that performs the secondary failover when the primary host dies.
#
# Usage: bench/qemu-colo.sh --prefix P COMMAND  (see usage below; docs/qemu-colo.md)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELP=$ROOT/bench/qemu-colo
RIG_BIN=$ROOT/tests/rig/colo-rig
DEBIAN_QEMU=/usr/bin/qemu-system-x86_64
PREFIX=${COLO_RIG_PREFIX:-qc}

# Ports (per namespace, so two rigs never collide).
P_MIRROR=9003 P_COMPARE_SEC=9004 P_COMPARE_PRI=9001 P_COMPARE_OUT=9005 P_MIGRATE=9998 P_HB=7711

say() { echo "qemu-colo: $*" >&2; }
die() {
	echo "qemu-colo: error: $*" >&2
	exit 1
}

usage() {
	cat <<EOF
usage: bench/qemu-colo.sh [--prefix P] COMMAND [ARGS]   (prefix default: qc)

commands:
  up [--tuned] [--append A] [--mem MB] [--accel tcg|kvm] [--qemu fixed|debian|PATH]
     [--checkpoint-delay MS] [--compare-timeout MS] [--scan-cycle MS]
     [--max-queue N] [--max-bandwidth BYTES_PER_S] [--nodelay on|off] [--quickack on|off]
                     hosts (colo-rig up --hosts-only), both QEMUs, COLO, the heartbeat
                     watcher; waits until both sides are in COLO mode and the guest's
                     echo answers from <p>-cli; prints QCOLO_* shell variables on stdout.
                     The single-setting options override the mode's value (for measuring
                     one setting at a time). --qemu: 'fixed' (default) = Debian's 7.2.22
                     source + the one-call COLO/TCG deadlock fix (bench/qemu-colo/
                     build-qemu.sh, built once, cached); 'debian' = /usr/bin's binary,
                     whose primary deadlocks at the first checkpoint under TCG.
  status             COLO mode, run state, checkpoint counts of both sides (QCOLO_* vars)
  failover [--kill] [--timeout S]
                     wait (default 15 s) until the watcher has done the secondary failover
                     and print its timestamps (QCOLO_T_* vars, epoch ms); --kill first kills
                     every process on the primary host (colo-rig kill primary)
  env                print the QCOLO_* variables of the running setup again
  down               remove everything (colo-rig --prefix P down)
EOF
}

rig() { "$RIG_BIN" --prefix "$PREFIX" "$@"; }
qmp() { python3 "$HELP/qmp.py" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# jget JSON EXPR: a field of a JSON reply (EXPR is python on `r`).
jget() { python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

load() {
	eval "$(rig env)" || die "no rig with prefix '$PREFIX'"
	QENV=$RIG_RUN/qemu-colo.env
	[ -f "$QENV" ] || die "QEMU COLO is not up on rig '$PREFIX' (no $QENV)"
	# shellcheck disable=SC1090
	. "$QENV"
}

# ---- up ----------------------------------------------------------------------------

defaults_settings() {
	CKPT_DELAY="" COMPARE_TIMEOUT="" SCAN_CYCLE="" MAX_QUEUE="" MAX_BW="" NODELAY=off QUICKACK=off
}
# Tuned: every value below was measured against the defaults (docs/qemu-colo.md).
tuned_settings() {
	CKPT_DELAY=2000         # periodic checkpoint at least every 2 s, as ours
	COMPARE_TIMEOUT=100     # a primary packet waits at most 100 ms for its secondary twin
	SCAN_CYCLE=20           # ... checked every 20 ms
	MAX_QUEUE=""            # QEMU's 1024 packets per connection queue
	MAX_BW=10737418240      # 10 GiB/s: no rate limit on the initial sync
	NODELAY=on              # TCP_NODELAY on the proxy chardev sockets (QEMU option)
	QUICKACK=on             # no delayed ACKs on the replication link's route (host option)
}

write_settings() {
	local f=$1
	{
		echo "mode: $MODE"
		echo "qemu: $QEMU ($("$QEMU" --version | head -1))"
		echo "guest: kernel $RIG_KERNEL initrd $RIG_INITRD append '$RIG_APPEND' mem ${RIG_MEM_MB} MiB accel $RIG_ACCEL"
		echo "x-checkpoint-delay: ${CKPT_DELAY:-20000 (QEMU default)} ms"
		echo "colo-compare compare_timeout: ${COMPARE_TIMEOUT:-3000 (QEMU default)} ms"
		echo "colo-compare expired_scan_cycle: ${SCAN_CYCLE:-1000 (QEMU default)} ms"
		echo "colo-compare max_queue_size: ${MAX_QUEUE:-1024 (QEMU default)} packets"
		echo "colo-compare iothread: iothread1 (mandatory in 7.2)"
		echo "max-bandwidth: ${MAX_BW:-134217728 (QEMU default, 128 MiB/s)} bytes/s"
		echo "proxy chardev sockets nodelay (TCP_NODELAY): $NODELAY"
		echo "replication-link route quickack (no delayed ACKs, both hosts): $QUICKACK"
		echo "migration socket TCP_NODELAY: off (QEMU 7.2 never sets it; no option)"
		echo "x-colo capability: on (primary and secondary); other capabilities: QEMU defaults"
		echo "heartbeat: UDP every 50 ms primary->secondary on $P_HB, loss after 6 misses (300 ms)"
	} >"$f"
}

# start_qemu ROLE NS DIR ARGS...: the rig's machine (start_vm in colo-rig) plus ARGS.
start_qemu() {
	local role=$1 ns=$2 dir=$3
	shift 3
	local ram=(-machine "pc,accel=$RIG_ACCEL")
	if [ "${QCOLO_RAM:-anon}" = file ]; then
		ram=(-machine "pc,accel=$RIG_ACCEL,memory-backend=ram0"
			-object "memory-backend-file,id=ram0,size=${RIG_MEM_MB}M,mem-path=$SHM_DIR/$role.ram,share=on")
	fi
	ip netns exec "$ns" setsid "$QEMU" \
		-name "colo-rig-$PREFIX-$role" \
		"${ram[@]}" -cpu max -smp 1 -m "${RIG_MEM_MB}M" \
		-nodefaults -display none -no-user-config \
		-L /usr/share/qemu -L /usr/share/seabios \
		-kernel "$RIG_KERNEL" -initrd "$RIG_INITRD" -append "$RIG_APPEND" \
		-netdev tap,id=hn0,ifname=vm0,script=no,downscript=no,vhost=off \
		-device "e1000,id=e0,netdev=hn0,mac=$RIG_GUEST_MAC,romfile=" \
		-qmp "unix:$dir/qmp.sock,server=on,wait=off" \
		-qmp "unix:$dir/qmp-debug.sock,server=on,wait=off" \
		-qmp "unix:$dir/qmp-obs.sock,server=on,wait=off" \
		-qmp "unix:$dir/qmp-hb.sock,server=on,wait=off" \
		"$@" \
		-serial "file:$dir/serial.log" \
		-pidfile "$dir/qemu.pid" >"$dir/qemu.log" 2>&1 </dev/null &
	# Not -daemonize: a daemonized QEMU sends its stderr (COLO's error reports) to
	# /dev/null. The QMP socket appears once QEMU is set up (the primary waits for the
	# secondary's connection to compare1 first).
	local pid=$!
	for _ in $(seq 300); do
		[ -S "$dir/qmp.sock" ] && [ -s "$dir/qemu.pid" ] && return 0
		kill -0 $pid 2>/dev/null || die "$role QEMU failed to start: $(tail -5 "$dir/qemu.log")"
		sleep 0.1
	done
	die "$role QEMU did not come up in 30 s: $(tail -5 "$dir/qemu.log")"
}

wait_until() { # SECONDS CMD...
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -ge "$deadline" ] && return 1
		sleep 0.2
	done
}

colo_mode() { qmp --timeout 3 "$1" query-colo-status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["mode"])' 2>/dev/null; }
is_colo_mode() { [ "$(colo_mode "$1")" = "$2" ]; }
echo_answers() {
	[ "$(ip netns exec "$RIG_NS_CLI" timeout 2 socat -T1 - "TCP:$RIG_GUEST_IP:7" <<<"qemu-colo-ping" 2>/dev/null)" = qemu-colo-ping ]
}
watcher_armed() { grep -qs ' armed' "$1"; }

cmd_up() {
	local append="" mem=128 accel=tcg qemu_choice=${QCOLO_QEMU:-fixed}
	MODE=defaults
	local o_ckpt="" o_ct="" o_scan="" o_q="" o_bw="" o_nd="" o_qa=""
	while [ $# -gt 0 ]; do
		case $1 in
		--tuned) MODE=tuned; shift ;;
		--defaults) MODE=defaults; shift ;;
		--append) append=$2; shift 2 ;;
		--mem) mem=$2; shift 2 ;;
		--accel) accel=$2; shift 2 ;;
		--qemu) qemu_choice=$2; shift 2 ;;
		--checkpoint-delay) o_ckpt=$2; shift 2 ;;
		--compare-timeout) o_ct=$2; shift 2 ;;
		--scan-cycle) o_scan=$2; shift 2 ;;
		--max-queue) o_q=$2; shift 2 ;;
		--max-bandwidth) o_bw=$2; shift 2 ;;
		--nodelay) o_nd=$2; shift 2 ;;
		--quickack) o_qa=$2; shift 2 ;;
		*) die "up: unknown option '$1'" ;;
		esac
	done
	"${MODE}_settings"
	CKPT_DELAY=${o_ckpt:-$CKPT_DELAY} COMPARE_TIMEOUT=${o_ct:-$COMPARE_TIMEOUT}
	SCAN_CYCLE=${o_scan:-$SCAN_CYCLE} MAX_QUEUE=${o_q:-$MAX_QUEUE} MAX_BW=${o_bw:-$MAX_BW}
	NODELAY=${o_nd:-$NODELAY} QUICKACK=${o_qa:-$QUICKACK}
	case $qemu_choice in
	debian) QEMU=$DEBIAN_QEMU ;;
	fixed) QEMU=$("$HELP/build-qemu.sh") || die "building the fixed QEMU failed" ;;
	*) QEMU=$qemu_choice ;;
	esac
	[ -x "$QEMU" ] || die "$QEMU not found"

	local rigargs=(up --hosts-only --accel "$accel" --mem "$mem")
	[ -n "$append" ] && rigargs+=(--append "$append")
	COLO_QEMU=$QEMU rig "${rigargs[@]}" >&2 || die "colo-rig up --hosts-only failed"
	trap 'say "up failed; tearing down"; rig down >&2 || true' EXIT
	eval "$(rig env)"
	SHM_DIR=$(dirname "$RIG_PRI_RAM")
	local t0=$SECONDS PD=$RIG_RUN/primary SD=$RIG_RUN/secondary
	local settings=$RIG_RUN/qemu-colo-settings.txt
	write_settings "$settings"

	if [ "$QUICKACK" = on ]; then
		ip netns exec "$RIG_NS_PRI" ip route replace 10.77.0.0/24 dev rep0 src "$RIG_PRI_REP_IP" quickack 1
		ip netns exec "$RIG_NS_SEC" ip route replace 10.77.0.0/24 dev rep0 src "$RIG_SEC_REP_IP" quickack 1
	fi
	local nd=""
	[ "$NODELAY" = on ] && nd=",nodelay=on"
	local cmp="colo-compare,id=comp0,primary_in=compare0-0,secondary_in=compare1,outdev=compare_out0,iothread=iothread1"
	[ -n "$COMPARE_TIMEOUT" ] && cmp+=",compare_timeout=$COMPARE_TIMEOUT"
	[ -n "$SCAN_CYCLE" ] && cmp+=",expired_scan_cycle=$SCAN_CYCLE"
	[ -n "$MAX_QUEUE" ] && cmp+=",max_queue_size=$MAX_QUEUE"

	# The secondary first: the primary waits (wait=on, as in the docs) for it to connect
	# to compare1 before it runs; the secondary's chardevs reconnect every second.
	start_qemu secondary "$RIG_NS_SEC" "$SD" \
		-chardev "socket,id=red0,host=$RIG_PRI_REP_IP,port=$P_MIRROR,reconnect=1$nd" \
		-chardev "socket,id=red1,host=$RIG_PRI_REP_IP,port=$P_COMPARE_SEC,reconnect=1$nd" \
		-object filter-redirector,id=f1,netdev=hn0,queue=tx,indev=red0 \
		-object filter-redirector,id=f2,netdev=hn0,queue=rx,outdev=red1 \
		-object filter-rewriter,id=rew0,netdev=hn0,queue=all \
		-incoming "tcp:$RIG_SEC_REP_IP:$P_MIGRATE"
	start_qemu primary "$RIG_NS_PRI" "$PD" \
		-chardev "socket,id=mirror0,host=$RIG_PRI_REP_IP,port=$P_MIRROR,server=on,wait=off$nd" \
		-chardev "socket,id=compare1,host=$RIG_PRI_REP_IP,port=$P_COMPARE_SEC,server=on,wait=on$nd" \
		-chardev "socket,id=compare0,host=127.0.0.1,port=$P_COMPARE_PRI,server=on,wait=off$nd" \
		-chardev "socket,id=compare0-0,host=127.0.0.1,port=$P_COMPARE_PRI$nd" \
		-chardev "socket,id=compare_out,host=127.0.0.1,port=$P_COMPARE_OUT,server=on,wait=off$nd" \
		-chardev "socket,id=compare_out0,host=127.0.0.1,port=$P_COMPARE_OUT$nd" \
		-object filter-mirror,id=m0,netdev=hn0,queue=tx,outdev=mirror0 \
		-object filter-redirector,netdev=hn0,id=redire0,queue=rx,indev=compare_out \
		-object filter-redirector,netdev=hn0,id=redire1,queue=rx,outdev=compare0 \
		-object iothread,id=iothread1 \
		-object "$cmp"
	say "QEMUs started ($RIG_ACCEL); waiting for the primary guest to boot"
	wait_until 180 grep -qs 'colo-guest: ready' "$PD/serial.log" ||
		die "primary guest not ready; serial: $PD/serial.log ($(tail -2 "$PD/serial.log" | tr '\n' '|'))"

	# COLO: x-colo on both sides, the parameters on the primary, then migrate.
	qmp "$SD/qmp.sock" '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-colo","state":true}]}}' >/dev/null ||
		die "secondary: x-colo capability refused"
	local params="{}"
	params=$(python3 -c 'import json,sys
p={}
if sys.argv[1]: p["x-checkpoint-delay"]=int(sys.argv[1])
if sys.argv[2]: p["max-bandwidth"]=int(sys.argv[2])
print(json.dumps(p))' "$CKPT_DELAY" "$MAX_BW")
	qmp "$PD/qmp.sock" \
		'{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-colo","state":true}]}}' \
		"{\"execute\":\"migrate-set-parameters\",\"arguments\":$params}" \
		"{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:$RIG_SEC_REP_IP:$P_MIGRATE\"}}" >/dev/null ||
		die "primary: migrate with x-colo failed"
	local tm=$SECONDS
	wait_until 120 is_colo_mode "$PD/qmp.sock" primary ||
		die "primary never entered COLO mode (query-migrate: $(qmp "$PD/qmp.sock" query-migrate 2>&1 | head -c 400))"
	wait_until 30 is_colo_mode "$SD/qmp.sock" secondary || die "secondary never entered COLO mode"
	say "both sides in COLO mode ($((SECONDS - tm)) s after migrate)"
	qmp "$PD/qmp.sock" query-migrate-parameters >"$RIG_RUN/qemu-colo-parameters.json"

	# The heartbeat: beats from the primary host, watcher (and failover) on the secondary's.
	local flog=$SD/failover.log wstate=$SD/watcher.state
	: >"$flog"
	ip netns exec "$RIG_NS_PRI" setsid python3 "$HELP/heartbeat.py" beat --bind "$RIG_PRI_REP_IP" \
		--peer "$RIG_SEC_REP_IP:$P_HB" --interval-ms 50 --qmp "$PD/qmp-hb.sock" \
		--state "$PD/checkpoints.state" >"$PD/heartbeat.log" 2>&1 </dev/null &
	ip netns exec "$RIG_NS_SEC" setsid python3 "$HELP/heartbeat.py" watch --listen "$RIG_SEC_REP_IP:$P_HB" \
		--qmp "$SD/qmp-hb.sock" --log "$flog" --state "$wstate" --interval-ms 50 --misses 6 \
		--tap vm0 --bridge br0 >"$SD/watcher.out" 2>&1 </dev/null &
	wait_until 10 watcher_armed "$flog" || die "heartbeat watcher not armed ($(cat "$SD/watcher.out"))"
	wait_until 30 echo_answers || die "the guest's echo service does not answer from $RIG_NS_CLI through COLO"

	cat >"$RIG_RUN/qemu-colo.env" <<EOF
QCOLO_PREFIX=$PREFIX
QCOLO_MODE=$MODE
QCOLO_QEMU=$QEMU
QCOLO_RUN=$RIG_RUN
QCOLO_SETTINGS=$settings
QCOLO_PARAMETERS=$RIG_RUN/qemu-colo-parameters.json
QCOLO_GUEST_IP=$RIG_GUEST_IP
QCOLO_NS_CLI=$RIG_NS_CLI
QCOLO_NS_PRI=$RIG_NS_PRI
QCOLO_NS_SEC=$RIG_NS_SEC
QCOLO_PRI_PID=$(cat "$PD/qemu.pid")
QCOLO_SEC_PID=$(cat "$SD/qemu.pid")
QCOLO_PRI_QMP=$PD/qmp.sock
QCOLO_PRI_QMP_OBS=$PD/qmp-obs.sock
QCOLO_PRI_QMP_DEBUG=$PD/qmp-debug.sock
QCOLO_SEC_QMP=$SD/qmp.sock
QCOLO_SEC_QMP_OBS=$SD/qmp-obs.sock
QCOLO_SEC_QMP_DEBUG=$SD/qmp-debug.sock
QCOLO_PRI_SERIAL=$PD/serial.log
QCOLO_SEC_SERIAL=$SD/serial.log
QCOLO_PRI_LOG=$PD/qemu.log
QCOLO_SEC_LOG=$SD/qemu.log
QCOLO_FAILOVER_LOG=$flog
QCOLO_WATCHER_STATE=$wstate
QCOLO_PRI_STATE=$PD/checkpoints.state
EOF
	trap - EXIT
	say "up in $((SECONDS - t0)) s, mode $MODE; settings:"
	sed 's/^/    /' "$settings" >&2
	cat "$RIG_RUN/qemu-colo.env"
}

# ---- status, failover, env, down ----------------------------------------------------------

side_status() { # ROLE(PRI|SEC) SOCKET
	local r=$1 sock=$2 cs st
	if cs=$(qmp --timeout 3 "$sock" query-colo-status 2>/dev/null) && st=$(qmp --timeout 3 "$sock" query-status 2>/dev/null); then
		echo "QCOLO_${r}_COLO_MODE=$(jget "$cs" 'r["mode"]')"
		echo "QCOLO_${r}_COLO_LAST_MODE=$(jget "$cs" 'r.get("last-mode","")')"
		echo "QCOLO_${r}_COLO_REASON=$(jget "$cs" 'r.get("reason","")')"
		echo "QCOLO_${r}_RUNSTATE=$(jget "$st" 'r["status"]')"
	else
		echo "QCOLO_${r}_COLO_MODE=unreachable"
		echo "QCOLO_${r}_RUNSTATE=unreachable"
	fi
}

cmd_status() {
	load
	echo "QCOLO_MODE=$QCOLO_MODE"
	side_status PRI "$QCOLO_PRI_QMP"
	local mig
	if mig=$(qmp --timeout 3 "$QCOLO_PRI_QMP" query-migrate 2>/dev/null); then
		echo "QCOLO_PRI_MIGRATION=$(jget "$mig" 'r.get("status","")')"
	fi
	# QEMU 7.2 has no checkpoint counter (query-migrate shows no RAM statistics in the
	# colo state): the heartbeat process on the primary host and the watcher on the
	# secondary's hold a QMP socket each and count the STOP events (one per checkpoint).
	[ -f "$QCOLO_PRI_STATE" ] && cat "$QCOLO_PRI_STATE"
	side_status SEC "$QCOLO_SEC_QMP"
	# The watcher holds the secondary's third QMP socket and counts its STOP events.
	[ -f "$QCOLO_WATCHER_STATE" ] && cat "$QCOLO_WATCHER_STATE"
	return 0
}

log_ms() { # EVENT: epoch ms of the first such line of the failover log
	awk -v e="$1" '$3 == e { print $2; exit }' "$QCOLO_FAILOVER_LOG"
}

cmd_failover() {
	local kill=0 timeout=15
	while [ $# -gt 0 ]; do
		case $1 in
		--kill) kill=1; shift ;;
		--timeout) timeout=$2; shift 2 ;;
		*) die "failover: unknown option '$1'" ;;
		esac
	done
	load
	local t_kill=""
	if [ $kill = 1 ]; then
		t_kill=$(now_ms)
		rig kill primary >&2
	fi
	local result=timeout deadline=$((SECONDS + timeout))
	while [ $SECONDS -lt $deadline ]; do
		if grep -qs ' failover-done' "$QCOLO_FAILOVER_LOG"; then result="done"; break; fi
		if grep -qs ' error' "$QCOLO_FAILOVER_LOG"; then result=failed; break; fi
		sleep 0.05
	done
	echo "QCOLO_FAILOVER_RESULT=$result"
	echo "QCOLO_FAILOVER_LOG=$QCOLO_FAILOVER_LOG"
	[ -n "$t_kill" ] && echo "QCOLO_T_KILL_MS=$t_kill"
	echo "QCOLO_T_LOST_MS=$(log_ms primary-lost)"
	echo "QCOLO_T_LOST_HEARTBEAT_SENT_MS=$(log_ms lost-heartbeat-sent)"
	echo "QCOLO_T_REDIRECTORS_REMOVED_MS=$(log_ms redirectors-removed)"
	echo "QCOLO_T_TAP_ON_BRIDGE_MS=$(log_ms tap-on-bridge)"
	echo "QCOLO_T_ANNOUNCED_MS=$(log_ms announced)"
	echo "QCOLO_T_DONE_MS=$(log_ms failover-done)"
	[ "$result" = "done" ] || {
		say "failover $result; log: $QCOLO_FAILOVER_LOG"
		tail -5 "$QCOLO_FAILOVER_LOG" >&2
		return 1
	}
}

cmd_env() {
	load
	cat "$QENV"
}

cmd_down() { rig down >&2; }

while [ $# -gt 0 ]; do
	case $1 in
	--prefix) PREFIX=$2; shift 2 ;;
	-h | --help | help) usage; exit 0 ;;
	*) break ;;
	esac
done
[ "$(id -u)" = 0 ] || die "must run as root (namespaces, taps)"
[ $# -ge 1 ] || { usage >&2; exit 2; }
cmd=$1
shift
case $cmd in
up) cmd_up "$@" ;;
status) cmd_status ;;
failover) cmd_failover "$@" ;;
env) cmd_env ;;
down) cmd_down ;;
*) usage >&2; exit 2 ;;
esac
