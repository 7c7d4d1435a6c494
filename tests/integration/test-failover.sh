#!/bin/bash
# Failover on real VMs, each case on a fresh rig:
#   1. the primary's host is SIGKILLed mid-run: the secondary takes over (after a fence
#      command that succeeds) and the guest's serial counter carries on, no reboot;
#   2. the kill lands inside a checkpoint: the same;
#   3. the primary's host hangs (SIGSTOP): the secondary takes over within interval x
#      misses + 200 ms; when the old primary wakes up it stops its VM (fenced);
#   4. the fence command fails: no takeover until the operator confirms;
#   5. `coloctl failover` (planned drill): the primary stops, the secondary continues
#      from exactly where the primary stopped;
#   6. only the primary's QEMU dies: its agent exits 1, the secondary takes over.
set -u
. "$(dirname "$0")/agent-lib.sh"
require_facilities
trap 'rig_down' EXIT

BOUND_MS=$((HB_INTERVAL * HB_MISSES + 200))

# continuity NAME SEC_LINES_BEFORE PRI_LAST: the secondary's counter after the takeover
# goes up by one per line (no reboot, nothing repeated out of order), starts no more
# than max-interval's worth (2 s) behind the primary's last value, and passes it.
continuity() {
	local name=$1 from=$2 pri_last=$3 new first last
	sleep 3
	new=$(tail -n +"$((from + 1))" "$RIG_SEC_SERIAL")
	first=$(sed -n 's/^colo-heartbeat \([0-9]*\).*/\1/p' <<<"$new" | head -1)
	last=$(sed -n 's/^colo-heartbeat \([0-9]*\).*/\1/p' <<<"$new" | tail -1)
	if grep -q 'Linux version\|colo-guest: ready' <<<"$new"; then
		fail "$name: no reboot" "the secondary guest booted again"
	elif [ -z "$first" ] || [ "$first" -lt $((pri_last - 2)) ] || [ "$last" -le "$pri_last" ] ||
		! sed -n 's/^colo-heartbeat \([0-9]*\).*/\1/p' <<<"$new" |
		awk 'NR > 1 && $1 != prev + 1 && $1 != prev { exit 1 } { prev = $1 }'; then
		fail "$name: counter continuity" "primary's last $pri_last; secondary after takeover: $(tr '\n' ' ' <<<"$new" | tail -c 300)"
	else
		pass "$name: counter continues: primary's last $pri_last, secondary $first .. $last, no reboot"
	fi
}

vm_paused() { [ "$(qmp_status "$1")" = paused ]; }

# ---- 1. SIGKILL mid-run -------------------------------------------------------------
rig_up tfail
SEC_EXTRA=(--fence-cmd 'echo "fence: $COLO_ROLE fences $COLO_PEER"') # succeeds
if ! start_pair; then
	fail "kill: pair protected"
	show_logs
	finish
fi
SEC_EXTRA=()
sleep 2.5
pri_last=$(last_counter "$RIG_PRI_SERIAL")
sec_lines=$(wc -l <"$RIG_SEC_SERIAL")
t_kill=$(now_ms)
rig kill primary >/dev/null 2>&1
if wait_state "$SEC_CTL" active 5 && t_act=$(log_ms "$SEC_LOG" '-> active'); then
	took=$((t_act - t_kill))
	if [ $took -le $BOUND_MS ]; then
		pass "kill: secondary active $took ms after SIGKILL (bound $BOUND_MS ms)"
	else
		fail "kill: secondary active within $BOUND_MS ms" "took $took ms"
	fi
else
	fail "kill: secondary active" "state $(state "$SEC_CTL")"
	show_logs
fi
check "kill: the secondary VM runs" [ "$(qmp_status "$RIG_SEC_QMP_DEBUG")" = running ]
check "kill: the fence command ran and succeeded first" grep -q "fence: secondary fences $RIG_PRI_REP_IP" "$SEC_LOG"
check "kill: announce-self was sent (takeover -> active)" grep -q 'takeover -> active' "$SEC_LOG"
continuity "kill" "$sec_lines" "$(last_counter "$RIG_PRI_SERIAL")"

# ---- 2. SIGKILL inside a checkpoint -------------------------------------------------
# Checkpoints back to back; the kill follows a checkpoint request by 4 ms (the
# primary's pause alone is 3-8 ms here), straight to the pids: no script in between.
rig_up tfail
if start_pair --max-interval 30 --min-interval 0; then
	sleep 1
	pids=$(ip netns pids "$RIG_NS_PRI" | tr '\n' ' ')
	pri_last=$(last_counter "$RIG_PRI_SERIAL")
	sec_lines=$(wc -l <"$RIG_SEC_SERIAL")
	"$COLOCTL" checkpoint --socket "$PRI_CTL" >/dev/null 2>&1 &
	sleep 0.004
	# shellcheck disable=SC2086
	kill -KILL $pids
	if wait_state "$SEC_CTL" active 5; then
		inside=$(grep -E 'repl secondary: [a-z]+ -> (checkpointing|protected|failed|failover)' "$SEC_LOG" |
			tail -2 | head -1)
		if grep -q -- '-> checkpointing' <<<"$inside"; then
			pass "kill inside a checkpoint: landed inside one (${inside##*reason: }"
		else
			pass "kill inside a checkpoint: landed between checkpoints this time (${inside:24:60})"
		fi
		note "secondary: $(grep -E 'helper:.*(discard|partial|apply|broken)' "$SEC_LOG" | tail -1 | cut -c25-)"
	else
		fail "kill inside a checkpoint: secondary active" "state $(state "$SEC_CTL")"
		show_logs
	fi
	continuity "kill inside a checkpoint" "$sec_lines" "$pri_last"
else
	fail "kill inside a checkpoint: pair protected"
	show_logs
fi

# ---- 3. hung primary ------------------------------------------------------------------
rig_up tfail
if start_pair; then
	sleep 1
	t_kill=$(now_ms)
	rig kill primary --hang >/dev/null 2>&1
	if wait_state "$SEC_CTL" active 5 && t_act=$(log_ms "$SEC_LOG" '-> active'); then
		took=$((t_act - t_kill))
		if [ $took -le $BOUND_MS ]; then
			pass "hang: secondary active $took ms after SIGSTOP (bound $BOUND_MS ms)"
		else
			fail "hang: secondary active within $BOUND_MS ms" "took $took ms"
		fi
	else
		fail "hang: secondary active" "state $(state "$SEC_CTL")"
		show_logs
	fi
	# The old primary wakes up: it must see the secondary's takeover and stop its VM.
	# shellcheck disable=SC2046
	kill -CONT $(ip netns pids "$RIG_NS_PRI")
	if wait_state "$PRI_CTL" fenced 5; then
		check "hang: the woken primary is fenced and its VM is stopped" \
			wait_for 3 vm_paused "$RIG_PRI_QMP_DEBUG"
	else
		fail "hang: the woken primary fences itself" "state $(state "$PRI_CTL")"
		show_logs
	fi
else
	fail "hang: pair protected"
	show_logs
fi

# ---- 4. fence command failing -------------------------------------------------------
rig_up tfail
start_secondary --fence-cmd 'echo "fencing $COLO_PEER: no BMC here"; exit 1'
wait_for 5 test -S "$SEC_CTL"
start_primary
if wait_state "$PRI_CTL" protected 30 && wait_state "$SEC_CTL" protected 10; then
	rig kill primary >/dev/null 2>&1
	if wait_state "$SEC_CTL" fence-failed 5; then
		sleep 2
		check "fence fails: no takeover (still fence-failed after 2 s)" is_state "$SEC_CTL" fence-failed
		check "fence fails: the log says it is not taking over" grep -q 'NOT taking over' "$SEC_LOG"
		check "fence fails: no announce" bash -c "! grep -q -- '-> takeover' '$SEC_LOG'"
		check "fence fails: the command got the primary's address" \
			grep -q "fencing $RIG_PRI_REP_IP: no BMC here" "$SEC_LOG"
		out=$("$COLOCTL" failover --socket "$SEC_CTL" 2>&1)
		check "fence fails: coloctl failover runs the fence command again ($out)" \
			wait_for 5 bash -c "[ \$(grep -c 'fencing -> fence-failed' '$SEC_LOG') -ge 2 ]"
		out=$("$COLOCTL" failover --confirm-fenced --socket "$SEC_CTL" 2>&1)
		check "fence fails: --confirm-fenced takes over ($out)" wait_state "$SEC_CTL" active 5
	else
		fail "fence fails: secondary fence-failed" "state $(state "$SEC_CTL")"
		show_logs
	fi
else
	fail "fence fails: pair protected"
	show_logs
fi

# ---- 5. planned drill -----------------------------------------------------------------
rig_up tfail
if start_pair; then
	sleep 2
	sec_lines=$(wc -l <"$RIG_SEC_SERIAL")
	out=$("$COLOCTL" failover --socket "$SEC_CTL" 2>&1)
	check "drill: coloctl failover on the secondary is accepted ($out)" grep -q 'asked the primary' <<<"$out"
	if wait_state "$SEC_CTL" active 10 && wait_state "$PRI_CTL" handed-over 5; then
		pass "drill: secondary active, primary handed-over"
		check "drill: the primary's VM is stopped" [ "$(qmp_status "$RIG_PRI_QMP_DEBUG")" = paused ]
		check "drill: no fence command, no kill: the primary agent still runs" kill -0 "$PRI_PID"
		pri_last=$(last_counter "$RIG_PRI_SERIAL")
		sleep 3
		check "drill: the primary's counter stays at $pri_last" \
			[ "$(last_counter "$RIG_PRI_SERIAL")" = "$pri_last" ]
		new=$(tail -n +"$((sec_lines + 1))" "$RIG_SEC_SERIAL" | counters /dev/stdin)
		check "drill: the secondary continues from the primary's $pri_last: $(tr '\n' ' ' <<<"$new")" \
			bash -c "grep -qx $((pri_last + 1)) <<<\"\$0\" && grep -qx $((pri_last + 2)) <<<\"\$0\"" "$new"
	else
		fail "drill: handover" "primary $(state "$PRI_CTL"), secondary $(state "$SEC_CTL")"
		show_logs
	fi
else
	fail "drill: pair protected"
	show_logs
fi

# ---- 6. the primary's QEMU crashes, its agent lives -------------------------------------
rig_up tfail
if start_pair; then
	sleep 1
	t_kill=$(now_ms)
	kill -KILL "$(cat "$RIG_RUN/primary/qemu.pid")"
	wait "$PRI_PID"
	rc=$?
	check "QEMU crash: the primary agent exits 1 (rc $rc)" [ $rc = 1 ]
	check "QEMU crash: it says why" grep -q "lost QEMU's QMP connection" "$PRI_LOG"
	if wait_state "$SEC_CTL" active 5 && t_act=$(log_ms "$SEC_LOG" '-> active'); then
		pass "QEMU crash: secondary active $((t_act - t_kill)) ms after the primary's QEMU died"
	else
		fail "QEMU crash: secondary active" "state $(state "$SEC_CTL")"
		show_logs
	fi
else
	fail "QEMU crash: pair protected"
	show_logs
fi
finish
