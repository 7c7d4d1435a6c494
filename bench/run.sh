#!/bin/bash
# bench/run.sh: `make bench`. colo side by side with an unreplicated VM and QEMU 7.2's
# built-in COLO, on one rig (tests/rig/colo-rig), the same guest, accelerator and
# workloads for every system. See docs/benchmarks.md for what is measured and how.
#
#   (a)  unreplicated: the rig's primary VM alone, no agents, no preload
#   (b)  colo: both colo-agents with the net path (--net-tap vm0 --net-bridge br0)
#   (c)  QEMU COLO, its defaults             (bench/qemu-colo.sh up)
#   (c') QEMU COLO, the best tuning found    (bench/qemu-colo.sh up --tuned)
#
# Needs root and the rig's artefacts; `make bench` sets COLO_BUILD, COLO_QEMU and
# COLO_GUEST. Results: bench/results/<date>-<host>.{md,json} + PNG plots, and the
# latest table in docs/benchmarks.md.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMDLINE="bench/run.sh${*:+ $*}"

usage() {
	cat <<EOF
usage: bench/run.sh [options]

  --only LIST        systems to run, comma-separated from a,b,c (default a,b,c;
                     c runs both QEMU COLO setups, defaults and tuned)
  --drills N         failover drills per system (default 10; QEMU COLO's default
                     setup gets min(N, 4), its tuned setup N, both cut short if
                     the time budget would be exceeded, and said so)
  --rates LIST       guest dirty rates in MiB/s, comma-separated (default 1,8,32)
  --quick            short phases, one rate, one drill: for iterating on the
                     harness; results go to /tmp/colo-bench-quick/*-quick.*
                     (unless --out) and docs/benchmarks.md is not touched
  --prefix P         rig prefix (default bn)
  --out DIR          results directory (default bench/results; --quick: /tmp/colo-bench-quick)
  --budget S         time budget in seconds (default 1140: 19 min)
  --keep-work        keep the raw work directory (printed at the end)
  -h, --help         this text

environment: COLO_BUILD (default build), COLO_QEMU, COLO_GUEST (default: the rig's
build scripts), as set by \`make bench\`.
EOF
}

ONLY=a,b,c DRILLS=10 RATES=1,8,32 QUICK=0 P=bn OUT="" BUDGET=1140 KEEP=0
while [ $# -gt 0 ]; do
	case $1 in
	--only) ONLY=$2; shift 2 ;;
	--drills) DRILLS=$2; shift 2 ;;
	--rates) RATES=$2; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--prefix) P=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--budget) BUDGET=$2; shift 2 ;;
	--keep-work) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench: unknown option '$1'" >&2; usage >&2; exit 2 ;;
	esac
done
[[ $DRILLS =~ ^[0-9]+$ ]] || { echo "bench: --drills takes a number" >&2; exit 2; }
[[ $ONLY =~ ^[abc](,[abc])*$ ]] || { echo "bench: --only takes a list of a,b,c" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench: must run as root (network namespaces, QEMU)" >&2; exit 1; }

# Phase lengths (seconds).
if [ $QUICK = 1 ]; then
	IDLE_S=6 DIRTY_S=5 RR_S=5 STREAM_S=3 SETTLE_S=1
	[ "$RATES" = 1,8,32 ] && RATES=8
	[ "$DRILLS" = 10 ] && DRILLS=1
	OUT=${OUT:-/tmp/colo-bench-quick}
else
	# 22 s per dirty rate: at least one periodic checkpoint even at QEMU COLO's default
	# x-checkpoint-delay (20 s).
	IDLE_S=22 DIRTY_S=22 RR_S=15 STREAM_S=8 SETTLE_S=2
fi
OUT=${OUT:-$ROOT/bench/results}
RR_CLIENTS=4 RR_SIZE=64
IFS=, read -r -a RATE_LIST <<<"$RATES"
has() { [[ ,$ONLY, == *,$1,* ]]; }

# ---- environment -----------------------------------------------------------------
BUILD=${COLO_BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
AGENT=$BUILD/colo-agent COLOCTL=$BUILD/coloctl PRELOAD=$BUILD/libcolo-uffd.so
. "$ROOT/tools/coloctl-lib.sh" # state CTL
export COLO_QEMU=${COLO_QEMU:-$("$ROOT/tests/rig/build-qemu.sh")}
export COLO_GUEST=${COLO_GUEST:-$("$ROOT/tests/rig/build-guest.sh")}
for f in "$AGENT" "$COLOCTL" "$PRELOAD"; do
	[ -e "$f" ] || { echo "bench: $f missing: build first (make all, or COLO_BUILD=...)" >&2; exit 1; }
done
RIGCMD=$ROOT/tests/rig/colo-rig
QCOLO=$ROOT/bench/qemu-colo.sh
LOAD=$ROOT/bench/load.py
OBS=$ROOT/bench/qmp_pauses.py
NET=(--net-tap vm0 --net-bridge br0)
rig() { "$RIGCMD" --prefix "$P" "$@"; }

WORK=$(mktemp -d /tmp/colo-bench-XXXXXX)
T0=$SECONDS
log() { printf '[bench %4ds] %s\n' $((SECONDS - T0)) "$*" >&2; }
cleanup() {
	[ -x "$QCOLO" ] && "$QCOLO" --prefix "$P" down >/dev/null 2>&1
	rig down >/dev/null 2>&1
	if [ $KEEP = 0 ] && [ -n "${WORK:-}" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Phase timing: phases.tsv gets "name<TAB>seconds".
PH_NAME="" PH_T=0
phase() {
	local now=$SECONDS
	if [ -n "$PH_NAME" ]; then
		printf '%s\t%d\n' "$PH_NAME" $((now - PH_T)) >>"$WORK/phases.tsv"
		log "phase '$PH_NAME' took $((now - PH_T)) s (elapsed $((now - T0)) s of a ${BUDGET} s budget)"
	fi
	PH_NAME=${1:-} PH_T=$now
	[ -n "$PH_NAME" ] && log "== phase $PH_NAME"
}
left() { echo $((BUDGET - (SECONDS - T0))); }

# ---- measurement pieces -------------------------------------------------------------

# observe SOCK SECONDS DIR NAME: background pause observer; sets OBS_PID. Waits until it
# has subscribed (so no event is missed).
observe() {
	rm -f "$3/$4.ready"
	python3 "$OBS" "$1" "$2" --raw "$3/$4.raw" --ready "$3/$4.ready" >"$3/$4.json" 2>"$3/$4.err" &
	OBS_PID=$!
	local i
	for i in $(seq 100); do
		[ -f "$3/$4.ready" ] && return 0
		kill -0 $OBS_PID 2>/dev/null || break
		sleep 0.05
	done
	log "warning: the pause observer on $1 did not subscribe: $(cat "$3/$4.json" "$3/$4.err" 2>/dev/null | head -c 300)"
	return 1
}

# jfields FILE KEY...: "key=value ..." from a one-line JSON file.
jfields() {
	python3 -c 'import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("unreadable:", e); sys.exit()
print(" ".join(f"{k}={d.get(k)}" for k in sys.argv[2:]))' "$@" 2>&1
}
# link_bytes NS PORT: bytes acknowledged so far on the TCP connections from NS to
# destination port PORT (ss's bytes_acked): the replication stream's own byte count.
link_bytes() {
	ip netns exec "$1" ss -tinH state established "( dport = :$2 )" 2>/dev/null |
		grep -o 'bytes_acked:[0-9]*' | cut -d: -f2 | awk '{s += $1} END {print s + 0}'
}
client() { ip netns exec "$RIG_NS_CLI" python3 "$LOAD" "$@"; }

# workload_rr DIR / workload_stream DIR: the client loads, in the client namespace.
workload_rr() {
	client rr "$RIG_GUEST_IP" 7 --clients $RR_CLIENTS --size $RR_SIZE --seconds "$RR_S" \
		--raw "$1/rr.raw" >"$1/rr.json" 2>"$1/rr.err"
	log "  rr: $(jfields "$1/rr.json" rps p50_ms p99_ms errors)"
}
workload_stream() {
	client stream "$RIG_GUEST_IP" 7 --seconds "$STREAM_S" >"$1/stream.json" 2>"$1/stream.err"
	log "  stream: $(jfields "$1/stream.json" mb_per_s longest_silence_ms errors)"
}

# sys_* hooks per system, set by use_system.
# drill DIR: a failover drill on the rig that is up: the probe client runs, the primary
# host is killed (every process in its namespace, SIGKILL: what `colo-rig kill primary`
# does, timed right before the kill(2)), the probe reports the gap.
drill() {
	local d=$1
	mkdir -p "$d"
	rm -f "$d/ready" "$d/kill_ns"
	client drill "$RIG_GUEST_IP" 7 --ready "$d/ready" --kill-ns-file "$d/kill_ns" --size 64 \
		--pace-ms 2 --wait 15 --after 1 >"$d/drill.json" 2>"$d/drill.err" &
	local cpid=$! i
	for i in $(seq 200); do # up to 20 s for 5 replies
		[ -f "$d/ready" ] && break
		kill -0 $cpid 2>/dev/null || break
		sleep 0.1
	done
	if [ ! -f "$d/ready" ]; then
		log "  drill: the probe client never got going: $(cat "$d/drill.json" "$d/drill.err" | head -c 300)"
		echo "no kill: the probe did not get 5 replies in 20 s ($(head -c 200 "$d/drill.json"))" >"$d/failed"
		kill $cpid 2>/dev/null
		wait $cpid 2>/dev/null
		return 1
	fi
	sleep 0.5
	local pids t_kill
	pids=$(ip netns pids "$RIG_NS_PRI")
	t_kill=$(date +%s%N)
	# shellcheck disable=SC2086
	kill -KILL $pids
	echo "$t_kill" >"$d/kill_ns"
	sys_after_kill "$d" "$t_kill"
	wait $cpid
	log "  drill: $(jfields "$d/drill.json" gap_ms longest_silence_ms resets bytes_lost errors)"
}

# ---- system (a): unreplicated -----------------------------------------------------
a_up() { # a_up RATE
	rig down >/dev/null 2>&1
	local app=()
	[ "$1" != 0 ] && app=(--append "colo.dirty=$1")
	rig up --accel tcg "${app[@]}" >"$WORK/rig-up.log" 2>&1 || { log "rig up failed: $(tail -3 "$WORK/rig-up.log")"; return 1; }
	eval "$(rig env)"
	echo "$RIG_ACCEL" >"$WORK/accel"
	OBS_SOCK=$RIG_PRI_QMP_DEBUG
}
a_stats() { :; }
a_down() { rig down >/dev/null 2>&1; }

# ---- system (b): colo -------------------------------------------------------------
b_up() { # b_up RATE
	rig down >/dev/null 2>&1
	local app=()
	[ "$1" != 0 ] && app=(--append "colo.dirty=$1")
	rig up --accel tcg --preload "$PRELOAD" "${app[@]}" >"$WORK/rig-up.log" 2>&1 ||
		{ log "rig up failed: $(tail -3 "$WORK/rig-up.log")"; return 1; }
	eval "$(rig env)"
	echo "$RIG_ACCEL" >"$WORK/accel"
	PRI_CTL=$RIG_RUN/primary/agent.sock SEC_CTL=$RIG_RUN/secondary/agent.sock
	PRI_LOG=$RIG_RUN/primary/agent.log SEC_LOG=$RIG_RUN/secondary/agent.log
	ip netns exec "$RIG_NS_SEC" "$AGENT" --role secondary --qmp-socket "$RIG_SEC_QMP" \
		--ram-file "$RIG_SEC_RAM" --repl-addr "$RIG_SEC_REP_IP:7700" \
		--heartbeat-bind "$RIG_SEC_REP_IP:7701" --heartbeat-peer "$RIG_PRI_REP_IP:7701" \
		--control-socket "$SEC_CTL" "${NET[@]}" >"$SEC_LOG" 2>&1 &
	disown
	local i
	for i in $(seq 50); do [ -S "$SEC_CTL" ] && break; sleep 0.1; done
	ip netns exec "$RIG_NS_PRI" "$AGENT" --role primary --qmp-socket "$RIG_PRI_QMP" \
		--ram-file "$RIG_PRI_RAM" --repl-addr "$RIG_SEC_REP_IP:7700" \
		--heartbeat-bind "$RIG_PRI_REP_IP:7701" --heartbeat-peer "$RIG_SEC_REP_IP:7701" \
		--control-socket "$PRI_CTL" "${NET[@]}" >"$PRI_LOG" 2>&1 &
	disown
	for i in $(seq 300); do [ "$(state "$PRI_CTL")" = protected ] && break; sleep 0.1; done
	if [ "$(state "$PRI_CTL")" != protected ]; then
		log "colo pair did not reach protected: $(tail -3 "$PRI_LOG" "$SEC_LOG" | tr '\n' '|')"
		return 1
	fi
	OBS_SOCK=$RIG_PRI_QMP_DEBUG
}
# b_stats DIR begin|end: coloctl status and the position in the agent's log.
b_stats() {
	"$COLOCTL" status --json --socket "$PRI_CTL" >"$1/ctl-$2.json" 2>/dev/null
	link_bytes "$RIG_NS_PRI" 7700 >"$1/link-$2.bytes"
	wc -l <"$PRI_LOG" >"$1/log-$2.line"
	if [ "$2" = end ]; then
		sed -n "$(($(cat "$1/log-begin.line") + 1)),$(cat "$1/log-end.line")p" "$PRI_LOG" |
			grep -E 'checkpoint [0-9]+ committed: reason' >"$1/ckpt.log" || true
	fi
}
b_after_kill() { # secondary's state transitions, with their log timestamps
	sleep 2.5
	cp "$SEC_LOG" "$1/secondary-agent.log" 2>/dev/null
}
b_down() { rig down >/dev/null 2>&1; }

# ---- system (c): QEMU COLO through bench/qemu-colo.sh ---------------------------------
C_TUNED=()
c_up() { # c_up RATE
	rig down >/dev/null 2>&1
	timeout 60 "$QCOLO" --prefix "$P" down >/dev/null 2>&1
	local app=()
	[ "$1" != 0 ] && app=(--append "colo.dirty=$1")
	local rc=0
	timeout -k 5 90 "$QCOLO" --prefix "$P" up --accel tcg "${C_TUNED[@]}" "${app[@]}" >"$WORK/qcolo-up.env" 2>"$WORK/qcolo-up.log" || rc=$?
	if [ $rc != 0 ]; then
		[ $rc = 124 ] && echo "bench: qemu-colo.sh up timed out after 90 s" >>"$WORK/qcolo-up.log"
		log "qemu-colo.sh up failed (exit $rc): $(tail -3 "$WORK/qcolo-up.log" | tr '\n' '|')"
		cp "$WORK/qcolo-up.log" "$WORK/$SYS/qcolo-up-failed-$(date +%s).log" 2>/dev/null
		return 1
	fi
	eval "$(grep -E '^QCOLO_[A-Z0-9_]*=' "$WORK/qcolo-up.env")"
	RIG_NS_CLI=$QCOLO_NS_CLI RIG_NS_PRI=$QCOLO_NS_PRI RIG_GUEST_IP=$QCOLO_GUEST_IP
	OBS_SOCK=${QCOLO_PRI_QMP_OBS:-}
	[ -n "$OBS_SOCK" ] || { log "qemu-colo.sh printed no QCOLO_PRI_QMP_OBS"; return 1; }
	[ -f "$WORK/$SYS/settings.txt" ] || cp "$QCOLO_SETTINGS" "$WORK/$SYS/settings.txt" 2>/dev/null
	[ -f "$WORK/$SYS/parameters.json" ] || cp "$QCOLO_PARAMETERS" "$WORK/$SYS/parameters.json" 2>/dev/null
	return 0
}
# c_stats DIR begin|end: qemu-colo.sh status (checkpoints = the primary's dirty-sync-count
# delta, RAM bytes transferred, from query-migrate).
c_stats() {
	timeout 20 "$QCOLO" --prefix "$P" status >"$1/qcolo-status-$2.env" 2>"$1/qcolo-status-$2.err"
	link_bytes "$RIG_NS_PRI" 9998 >"$1/link-$2.bytes"
}
c_after_kill() { # the heartbeat watcher on the secondary host does the failover
	timeout 30 "$QCOLO" --prefix "$P" failover --timeout 15 >"$1/failover.env" 2>"$1/failover.err"
	local f
	f=$(sed -n 's/^QCOLO_FAILOVER_LOG=//p' "$1/failover.env")
	[ -n "$f" ] && cp "$f" "$1/heartbeat.log" 2>/dev/null
}
c_down() { timeout 60 "$QCOLO" --prefix "$P" down >/dev/null 2>&1; rig down >/dev/null 2>&1; }

use_system() {
	SYS=$1
	case $1 in
	a) sys_up() { a_up "$@"; }; sys_stats() { a_stats "$@"; }; sys_after_kill() { :; }; sys_down() { a_down; } ;;
	b) sys_up() { b_up "$@"; }; sys_stats() { b_stats "$@"; }; sys_after_kill() { b_after_kill "$@"; }; sys_down() { b_down; } ;;
	c | c_tuned)
		C_TUNED=()
		[ "$1" = c_tuned ] && C_TUNED=(--tuned)
		sys_up() { c_up "$@"; }; sys_stats() { c_stats "$@"; }; sys_after_kill() { c_after_kill "$@"; }; sys_down() { c_down; } ;;
	esac
}

# ---- scenarios --------------------------------------------------------------------

# scen_main SYS: idle pauses, then rr and stream (observer running), then one drill.
scen_main() {
	local d=$WORK/$SYS/idle
	[ "$SYS" != a ] && mkdir -p "$d"
	sys_up 0 || { mkdir -p "$d"; echo "up failed" >"$d/failed"; return 1; }
	sleep "$SETTLE_S"
	if [ "$SYS" != a ]; then
		sys_stats "$d" begin
		observe "$OBS_SOCK" "$IDLE_S" "$d" obs && wait $OBS_PID
		sys_stats "$d" end
		log "  idle pauses: $(head -c 200 "$d/obs.json")"
	fi
	for w in rr stream; do
		local wd=$WORK/$SYS/$w
		mkdir -p "$wd"
		local secs=$RR_S
		[ $w = stream ] && secs=$STREAM_S
		sys_stats "$wd" begin
		observe "$OBS_SOCK" "$secs" "$wd" obs
		local op=$OBS_PID
		"workload_$w" "$wd"
		wait $op
		sys_stats "$wd" end
	done
	if [ "$SYS" != a ] && [ "$DRILLS_DONE" -lt "$DRILLS_WANT" ]; then
		DRILLS_DONE=$((DRILLS_DONE + 1))
		echo idle >"$WORK/$SYS/drill-$DRILLS_DONE.cond"
		drill "$WORK/$SYS/drill-$DRILLS_DONE"
	fi
	sys_down
}

# scen_rate SYS RATE: the guest dirtying RATE MiB/s: pauses; then a drill if wanted.
scen_rate() {
	local d=$WORK/$SYS/dirty-$2
	mkdir -p "$d"
	sys_up "$2" || { echo "up failed" >"$d/failed"; return 1; }
	sleep "$SETTLE_S"
	sys_stats "$d" begin
	observe "$OBS_SOCK" "$DIRTY_S" "$d" obs && wait $OBS_PID
	sys_stats "$d" end
	log "  dirty $2 MiB/s pauses: $(head -c 200 "$d/obs.json")"
	if [ "$DRILLS_DONE" -lt "$DRILLS_WANT" ]; then
		DRILLS_DONE=$((DRILLS_DONE + 1))
		echo "dirty-$2" >"$WORK/$SYS/drill-$DRILLS_DONE.cond"
		drill "$WORK/$SYS/drill-$DRILLS_DONE"
	fi
	sys_down
}

# scen_drills SYS RESERVE: fresh idle rigs, one drill each, until DRILLS_WANT or until
# less than RESERVE seconds of the budget would be left.
scen_drills() {
	local per=25 t
	while [ "$DRILLS_DONE" -lt "$DRILLS_WANT" ]; do
		if [ "$(left)" -lt $(($2 + per)) ]; then
			log "  time budget: stopping $SYS's drills at $DRILLS_DONE of $DRILLS_WANT"
			echo "$DRILLS_DONE of $DRILLS_WANT drills: stopped by the time budget" >"$WORK/$SYS/drills-cut"
			break
		fi
		t=$SECONDS
		DRILLS_DONE=$((DRILLS_DONE + 1))
		echo idle >"$WORK/$SYS/drill-$DRILLS_DONE.cond"
		if sys_up 0; then
			sleep "$SETTLE_S"
			drill "$WORK/$SYS/drill-$DRILLS_DONE"
		else
			echo "up failed" >"$WORK/$SYS/drill-$DRILLS_DONE.failed"
		fi
		sys_down
		per=$((SECONDS - t + 2))
	done
}

run_system() { # run_system SYS DRILLS RESERVE
	use_system "$1"
	mkdir -p "$WORK/$1"
	DRILLS_WANT=$2 DRILLS_DONE=0
	[ "$1" = a ] && DRILLS_WANT=0
	phase "$1: main (idle, rr, stream)"
	scen_main
	if [ "$1" != a ]; then
		phase "$1: dirty rates"
		local r
		for r in "${RATE_LIST[@]}"; do
			if [ "$(left)" -lt $(($3 + 40)) ]; then
				log "  time budget: skipping $1's dirty rate $r"
				echo "skipped by the time budget" >"$WORK/$1/dirty-$r.skipped"
				continue
			fi
			scen_rate "$1" "$r"
		done
		phase "$1: drills"
		scen_drills "$1" "$3"
	fi
	echo "$DRILLS_WANT" >"$WORK/$1/drills-wanted"
}

# ---- run ------------------------------------------------------------------------------
# All in one function, parsed before it runs: editing this file during a run cannot
# change what the run does.
main() {
log "work dir $WORK; systems $ONLY; drills $DRILLS; rates $RATES; budget ${BUDGET}s"
{
	echo "cmdline=$CMDLINE"
	echo "date=$(date -u +%FT%TZ)"
	echo "host=$(hostname)"
	echo "nproc=$(nproc)"
	echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "kernel=$(uname -r)"
	echo "rig_qemu=$COLO_QEMU"
	echo "rig_qemu_version=$("$COLO_QEMU" --version | head -1)"
	echo "debian_qemu_version=$(/usr/bin/qemu-system-x86_64 --version 2>/dev/null | head -1)"
	echo "guest=$COLO_GUEST"
	echo "git=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo +dirty)"
	echo "quick=$QUICK"
	echo "only=$ONLY"
	echo "drills=$DRILLS"
	echo "rates=$RATES"
	echo "idle_s=$IDLE_S"
	echo "dirty_s=$DIRTY_S"
	echo "rr_s=$RR_S"
	echo "stream_s=$STREAM_S"
	echo "settle_s=$SETTLE_S"
	echo "rr_clients=$RR_CLIENTS"
	echo "rr_size=$RR_SIZE"
	echo "budget_s=$BUDGET"
	echo "colo_agent_args=${NET[*]} (plus the rig's addresses, sockets and RAM files)"
	echo "colo_agent_defaults=$("$AGENT" --help 2>&1 | awk '/^  --(max-interval|min-interval|heartbeat-interval|heartbeat-misses|net-compare-timeout) /{o=$1} /default:/ && o {sub(/^ *default: */, ""); printf "%s %s; ", o, $0; o=""}')"
} >"$WORK/meta.txt"

C_AVAILABLE=1 C_WHY=""
if has c; then
	if [ ! -x "$QCOLO" ]; then
		C_AVAILABLE=0 C_WHY="bench/qemu-colo.sh is not present or not executable"
	fi
fi

# QEMU COLO's own QEMU (Debian's 7.2 source with the three fixes its COLO needs under TCG, docs/qemu-colo.md): built
# once and cached; a fresh build (~4 min) happens here, not inside a timed phase.
if has c && [ $C_AVAILABLE = 1 ] && [ -x "$ROOT/bench/qemu-colo/build-qemu.sh" ]; then
	phase "prepare: QEMU COLO's QEMU"
	if C_QEMU=$("$ROOT/bench/qemu-colo/build-qemu.sh" 2>"$WORK/qcolo-build.log"); then
		echo "c_qemu=$C_QEMU" >>"$WORK/meta.txt"
		echo "c_qemu_version=$("$C_QEMU" --version | head -1)" >>"$WORK/meta.txt"
	else
		C_AVAILABLE=0 C_WHY="bench/qemu-colo/build-qemu.sh failed: $(tail -2 "$WORK/qcolo-build.log" | tr '\n' ' ')"
	fi
fi

# Reserve time for the systems that come later.
has a && run_system a 0 $( (has b || has c) && echo 600 || echo 30)
if has b; then
	reserve=30
	has c && [ $C_AVAILABLE = 1 ] && reserve=$((BUDGET * 55 / 100))
	run_system b "$DRILLS" "$reserve"
fi
if has c; then
	if [ $C_AVAILABLE = 1 ]; then
		cdef=$DRILLS
		[ "$cdef" -gt 4 ] && cdef=4
		run_system c "$cdef" $((BUDGET * 30 / 100))
		run_system c_tuned "$DRILLS" 40
	else
		log "(c) QEMU COLO not run: $C_WHY"
	fi
	echo "$C_AVAILABLE $C_WHY" >"$WORK/c-available"
fi
phase "report"
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/meta.txt"
echo "accel=$(cat "$WORK/accel" 2>/dev/null || echo unknown)" >>"$WORK/meta.txt"
echo "total_s=$((SECONDS - T0))" >>"$WORK/meta.txt"
mkdir -p "$OUT"
python3 "$ROOT/bench/report.py" "$WORK" "$OUT" "$ROOT/docs/benchmarks.md" || log "report failed"
phase ""
log "done in $((SECONDS - T0)) s"
[ $KEEP = 1 ] && log "raw work directory kept: $WORK"
}
main; exit 0 # one line: bash has read all of it before it runs
