#!/bin/bash
# colo-agent on real VMs: refusing the wrong VM (wrong QMP socket, not QEMU, another
# size, wrong run state, unreachable peer) with a clear error, a non-zero exit and the
# VM untouched; a protected pair (status, coloctl checkpoint and watch); the
# secondary's death leaving the primary degraded and running.
set -u
. "$(dirname "$0")/agent-lib.sh"
require_facilities

trap 'rig_down' EXIT
rig_up tagent
t0=$SECONDS

# expect_refusal NAME REGEX ARGS...: exit 1, REGEX in the output, primary VM untouched.
expect_refusal() {
	local name=$1 re=$2 out rc before
	shift 2
	before=$(last_counter "$RIG_PRI_SERIAL")
	out=$(ip netns exec "$RIG_NS_PRI" timeout 30 "$AGENT" "$@" 2>&1)
	rc=$?
	if [ $rc = 1 ] && grep -qE "$re" <<<"$out" && [ ! -e "$PRI_CTL" ] &&
		[ "$(qmp_status "$RIG_PRI_QMP_DEBUG")" = running ] &&
		[ "$(qmp_status "$RIG_SEC_QMP_DEBUG")" = prelaunch ]; then
		pass "$name: exit 1, VMs untouched ($(grep -oE "$re" <<<"$out" | head -1))"
	else
		fail "$name" "rc=$rc, VMs $(qmp_status "$RIG_PRI_QMP_DEBUG")/$(qmp_status "$RIG_SEC_QMP_DEBUG"), output: $(tail -2 <<<"$out")"
	fi
	[ "$(last_counter "$RIG_PRI_SERIAL")" -ge "$before" ] || fail "$name: guest counter went back"
}

# shellcheck disable=SC2046
expect_refusal "wrong QMP socket" "cannot connect to QEMU's QMP socket /nonexistent" \
	$(pri_args) --qmp-socket /nonexistent/qmp.sock

# Something that is not QEMU behind the socket.
fake=$RIG_RUN/not-qemu.sock
ip netns exec "$RIG_NS_PRI" socat "UNIX-LISTEN:$fake,fork" SYSTEM:'echo SSH-2.0-OpenSSH_9.2p1' &
fake_pid=$!
wait_for 5 test -S "$fake"
# shellcheck disable=SC2046
expect_refusal "a peer that is not QEMU" "is it QEMU's QMP socket" $(pri_args) --qmp-socket "$fake"
kill $fake_pid 2>/dev/null

# shellcheck disable=SC2046
expect_refusal "--ram-size of another VM" "another VM" $(pri_args) --ram-size 256M
other_ram=$RIG_RUN/other.ram
truncate -s 64M "$other_ram"
# shellcheck disable=SC2046
expect_refusal "RAM file of another size" "RAM file of another VM" $(pri_args) --ram-file "$other_ram"
rm -f "$other_ram"
# The primary's running VM offered as a secondary.
# shellcheck disable=SC2046
expect_refusal "a running VM as the secondary" "must wait paused" $(sec_args) \
	--qmp-socket "$RIG_PRI_QMP" --ram-file "$RIG_PRI_RAM" --control-socket "$PRI_CTL"
# Nobody listens for replication: the primary is never protected.
# shellcheck disable=SC2046
expect_refusal "unreachable secondary" "never protected" $(pri_args) \
	--repl-addr "$RIG_SEC_REP_IP:7799" --connect-timeout 1000

# A protected pair.
if start_pair; then
	pass "both agents protected ($((SECONDS - t0)) s after the refusal checks began)"
else
	fail "both agents protected" "primary $(state "$PRI_CTL"), secondary $(state "$SEC_CTL")"
	show_logs
	finish
fi
check "control sockets are mode 0600" \
	bash -c "[ \"\$(stat -c %a '$PRI_CTL')\" = 600 ] && [ \"\$(stat -c %a '$SEC_CTL')\" = 600 ]"
out=$("$COLOCTL" checkpoint --socket "$PRI_CTL")
check "coloctl checkpoint waits for the commit ($out)" grep -q "committed" <<<"$out"
out=$("$COLOCTL" checkpoint --socket "$SEC_CTL" 2>&1)
check "coloctl checkpoint on the secondary is refused" grep -q "taken by the primary" <<<"$out"
status=$("$COLOCTL" status --socket "$PRI_CTL")
check "status shows checkpoints by reason and pauses" \
	bash -c "grep -q 'operator 1' <<<\"\$0\" && grep -qE 'p50 [0-9.]+ ms' <<<\"\$0\"" "$status"
note "$(head -7 <<<"$status")"
lines=$(timeout 3.5 "$COLOCTL" watch --socket "$PRI_CTL" | grep -c 'primary protected\|primary checkpointing')
check "coloctl watch prints a line per second ($lines in 3.5 s)" [ "$lines" -ge 3 ]
sleep 3 # a few periodic checkpoints
committed=$("$COLOCTL" status --json --socket "$PRI_CTL" | sed -n 's/.*"committed":\([0-9]*\).*/\1/p')
check "periodic checkpoints happen (max interval 2 s): $committed committed" [ "$committed" -ge 2 ]

# The secondary's host dies: the primary runs on, degraded.
before=$(last_counter "$RIG_PRI_SERIAL")
t_kill=$(now_ms)
rig kill secondary >/dev/null 2>&1
if wait_state "$PRI_CTL" degraded 5 && t_deg=$(log_ms "$PRI_LOG" '-> degraded'); then
	pass "secondary killed: primary degraded after $((t_deg - t_kill)) ms"
else
	fail "secondary killed: primary degraded" "state $(state "$PRI_CTL")"
	show_logs
fi
sleep 2.5
check "the degraded primary's VM runs: counter $before -> $(last_counter "$RIG_PRI_SERIAL")" \
	[ "$(last_counter "$RIG_PRI_SERIAL")" -gt "$before" ]
check "the degraded primary's VM is running (QMP)" [ "$(qmp_status "$RIG_PRI_QMP_DEBUG")" = running ]
check "the primary agent keeps running" kill -0 "$PRI_PID"

# SIGTERM: a clean exit, the VM still runs.
kill -TERM "$PRI_PID"
wait "$PRI_PID"
rc=$?
check "SIGTERM: the primary agent exits 0 (rc $rc)" [ $rc = 0 ]
check "SIGTERM: the control socket is removed" [ ! -e "$PRI_CTL" ]
check "SIGTERM: the VM still runs" [ "$(qmp_status "$RIG_PRI_QMP_DEBUG")" = running ]
finish
