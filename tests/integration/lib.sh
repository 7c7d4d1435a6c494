# shellcheck shell=bash disable=SC2034
# lib.sh - shared helpers for integration test scripts (bash).
# A script sources this, calls `begin NAME`, then `pass`/`fail`/`skip` per check;
# output lines follow tests/run-tests.sh's format. `finish` exits non-zero on failure.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=$ROOT/${COLO_BUILD:-build}
RIG=$ROOT/tests/rig/colo-rig
T_NAME=${0##*/}
T_FAILED=0

pass() { echo "PASS $T_NAME: $1"; }
fail() {
	echo "FAIL $T_NAME: $1${2:+: $2}"
	T_FAILED=1
}
skip() { echo "SKIP $T_NAME: $1: $2"; }
# check NAME CMD...: pass if CMD succeeds.
check() {
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name" "command failed: $*"; fi
}
finish() { exit $T_FAILED; }
note() { echo "    $*"; }

# Facilities: a missing one skips the whole script with the reason.
require_facilities() {
	if [ "$(id -u)" != 0 ]; then
		skip all "needs root (network namespaces, taps)"
		exit 0
	fi
	if ! ip netns add "colo-probe-$$" 2>/dev/null; then
		skip all "network namespaces are not available here"
		exit 0
	fi
	ip netns delete "colo-probe-$$"
	if [ -z "${COLO_QEMU:-}" ] || [ -z "${COLO_GUEST:-}" ]; then
		skip all "COLO_QEMU/COLO_GUEST unset: run through 'make test-integration'"
		exit 0
	fi
}

# qmp SOCKET JSON-COMMAND: print QEMU's reply line to the command (no events).
qmp() {
	printf '{"execute":"qmp_capabilities"}\n%s\n' "$2" |
		timeout 5 socat -t2 - "UNIX-CONNECT:$1" | grep -v '"event"' | sed -n 3p
}

# wait_for SECONDS CMD...: retry CMD every 0.1 s until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.1
	done
}

# True while pid exists and is not a zombie.
pid_alive() { [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
