# shellcheck shell=bash disable=SC2034
# agent-lib.sh - helpers for the agent integration tests (test-agent.sh,
# test-failover.sh): a rig with its own prefix, both agents started in their hosts'
# namespaces, their states through coloctl, log timestamps. Sourced, not run.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

AGENT=$BUILD_DIR/colo-agent
COLOCTL=$BUILD_DIR/coloctl
# Heartbeat defaults (50 ms x 6); the tests check the documented bound against them.
HB_INTERVAL=50
HB_MISSES=6

# rig_up PREFIX: a fresh rig (TCG: KVM does not boot guests with this QEMU here).
rig_up() {
	P=$1
	rig() { "$RIG" --prefix "$P" "$@"; }
	rig down >/dev/null 2>&1
	if ! rig up --accel tcg --preload "$BUILD_DIR/libcolo-uffd.so" >"/tmp/$P-rig.log" 2>&1; then
		fail "rig up" "$(tail -3 "/tmp/$P-rig.log")"
		finish
	fi
	eval "$(rig env)"
	PRI_LOG=$RIG_RUN/primary/agent.log
	SEC_LOG=$RIG_RUN/secondary/agent.log
	PRI_CTL=$RIG_RUN/primary/agent.sock
	SEC_CTL=$RIG_RUN/secondary/agent.sock
}

rig_down() { "$RIG" --prefix "$P" down >/dev/null 2>&1; }

# The agents' arguments for this rig (extra ones appended by the callers).
pri_args() {
	echo --role primary --qmp-socket "$RIG_PRI_QMP" --ram-file "$RIG_PRI_RAM" \
		--repl-addr "$RIG_SEC_REP_IP:7700" --heartbeat-bind "$RIG_PRI_REP_IP:7701" \
		--heartbeat-peer "$RIG_SEC_REP_IP:7701" --control-socket "$PRI_CTL"
}
sec_args() {
	echo --role secondary --qmp-socket "$RIG_SEC_QMP" --ram-file "$RIG_SEC_RAM" \
		--repl-addr "$RIG_SEC_REP_IP:7700" --heartbeat-bind "$RIG_SEC_REP_IP:7701" \
		--heartbeat-peer "$RIG_PRI_REP_IP:7701" --control-socket "$SEC_CTL"
}

# start_secondary/start_primary [EXTRA ARGS]: in the host's namespace, in the background
# (so `colo-rig kill` takes the agent with its QEMU, as a dying host would).
start_secondary() {
	# shellcheck disable=SC2046
	ip netns exec "$RIG_NS_SEC" "$AGENT" $(sec_args) "$@" >>"$SEC_LOG" 2>&1 &
	SEC_PID=$!
}
start_primary() {
	# shellcheck disable=SC2046
	ip netns exec "$RIG_NS_PRI" "$AGENT" $(pri_args) "$@" >>"$PRI_LOG" 2>&1 &
	PRI_PID=$!
}

# state CTL: the agent's state ("" if it does not answer).
. "$ROOT/tools/coloctl-lib.sh"
is_state() { [ "$(state "$1")" = "$2" ]; }
# wait_state CTL STATE SECONDS
wait_state() { wait_for "$3" is_state "$1" "$2"; }

# start_pair [PRIMARY EXTRA ARGS]: both agents, until both are protected; the
# secondary gets "${SEC_EXTRA[@]}".
SEC_EXTRA=()
start_pair() {
	start_secondary "${SEC_EXTRA[@]}"
	wait_for 5 test -S "$SEC_CTL" || return 1
	start_primary "$@"
	wait_state "$PRI_CTL" protected 30 && wait_state "$SEC_CTL" protected 10
}

# log_ms FILE REGEX: the timestamp (ms since the epoch) of the first matching log line.
log_ms() {
	local line
	line=$(grep -m1 -E -e "$2" "$1") || return 1
	echo $(($(date -d "${line:0:23}" +%s%N) / 1000000))
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# counters FILE: the guest's serial heartbeat counter values, in order.
counters() { sed -n 's/^colo-heartbeat \([0-9]*\).*/\1/p' "$1"; }
last_counter() { counters "$1" | tail -1; }

# qmp_status SOCKET: QEMU's run state via its debug QMP socket.
qmp_status() { qmp "$1" '{"execute":"query-status"}' | sed -n 's/.*"status": "\([a-z-]*\)".*/\1/p'; }

# show_logs: the agents' last lines, for a failure's context.
show_logs() {
	note "--- primary agent log (last lines)"
	tail -15 "$PRI_LOG" 2>/dev/null | sed 's/^/    /'
	note "--- secondary agent log (last lines)"
	tail -15 "$SEC_LOG" 2>/dev/null | sed 's/^/    /'
}
