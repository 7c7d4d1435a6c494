#!/bin/bash
# Dirty-page tracking against the rig's real QEMU (docs/dirty-tracking.md): both
# QEMUs run with libcolo-uffd.so preloaded, the primary guest dirties 4 MiB/s
# (colo.dirty=4), and build/bench/dirty_rate reads the log from outside as the agent
# does. A QEMU started without the library, or with it but without COLO_UFFD_RAM, is
# refused. TCG: KVM with this QEMU hangs in SeaBIOS on these hosts.
set -u
. "$(dirname "$0")/lib.sh"
require_facilities

P=tdirty
RATE=$BUILD_DIR/bench/dirty_rate
LIB=$BUILD_DIR/libcolo-uffd.so
TMP=$(mktemp -d /dev/shm/colo-test-dirty-XXXXXX)
BARE_PIDS=()
rig() { "$RIG" --prefix "$P" "$@"; }
cleanup() {
	local pid
	for pid in "${BARE_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
	rig down >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT
rig down >/dev/null 2>&1

if [ ! -x "$RATE" ] || [ ! -f "$LIB" ]; then
	fail "build" "$RATE or $LIB missing: run make"
	finish
fi

# in_range VALUE LOW HIGH
in_range() { [ -n "$1" ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }

t0=$SECONDS
if ! rig up --accel tcg --preload "$LIB" --append colo.dirty=4 >"$TMP/up.log" 2>&1; then
	fail "rig up with --preload boots the primary guest" "$(tail -3 "$TMP/up.log")"
	finish
fi
pass "rig up with --preload and colo.dirty=4 boots the primary guest ($((SECONDS - t0)) s)"
eval "$(rig env)"
pri_pid=$(cat "$RIG_RUN/primary/qemu.pid")
sec_pid=$(cat "$RIG_RUN/secondary/qemu.pid")

check "the library tells QEMU's stderr it tracks the primary's RAM" \
	grep -q "colo-uffd: tracking writes to $RIG_PRI_RAM" "$RIG_RUN/primary/qemu.log"
check "the library tells QEMU's stderr it tracks the secondary's RAM" \
	grep -q "colo-uffd: tracking writes to $RIG_SEC_RAM" "$RIG_RUN/secondary/qemu.log"

# The guest dirtier has started (it prints before it runs).
wait_for 30 grep -q "dirty: started" "$RIG_PRI_SERIAL" ||
	fail "the guest's dirtier starts" "no 'dirty: started' in $RIG_PRI_SERIAL"

out=$("$RATE" "$pri_pid" "$RIG_PRI_RAM" "$RIG_MEM_MB" 5 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/    /'
first=$(sed -n 's/^first scan: \([0-9]*\) pages.*/\1/p' <<<"$out")
rate=$(sed -n 's/^rate: \([0-9]*\) pages\/s.*/\1/p' <<<"$out")
check "dirty_rate attaches to the primary QEMU" [ "$rc" = 0 ]
# Booting loads the kernel and initrd and runs init: well over 8 MiB written.
check "the first scan reports what the boot wrote (${first:-?} pages)" \
	in_range "${first:-}" 2048 $((RIG_MEM_MB * 256))
# 4 MiB/s = 1024 pages/s, plus ~200/s of an idle TCG guest; the guest may fall
# a little behind on a loaded host (it drops backlog over 100 ms).
check "the primary's dirty rate matches colo.dirty=4 (${rate:-?} pages/s, want 700..2500)" \
	in_range "${rate:-}" 700 2500

out=$("$RATE" "$sec_pid" "$RIG_SEC_RAM" "$RIG_MEM_MB" 2 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/    /'
srate=$(sed -n 's/^rate: \([0-9]*\) pages\/s.*/\1/p' <<<"$out")
check "the paused secondary dirties nothing after its first scan (${srate:-?} pages/s)" \
	in_range "${srate:-}" 0 0

# A bare QEMU like the rig's (paused, no network), with or without the library.
# start_bare NAME ENV...
start_bare() {
	local name=$1
	shift
	: >"$TMP/$name.ram"
	env "$@" "$COLO_QEMU" -name "colo-test-dirty-$name" \
		-machine pc,accel=tcg,memory-backend=ram0 -m 64M \
		-object "memory-backend-file,id=ram0,size=64M,mem-path=$TMP/$name.ram,share=on" \
		-nodefaults -display none -no-user-config -S \
		-L /usr/share/qemu -L /usr/share/seabios \
		-pidfile "$TMP/$name.pid" -daemonize >"$TMP/$name.log" 2>&1 || return 1
	BARE_PIDS+=("$(cat "$TMP/$name.pid")")
}

# refused NAME MESSAGE: dirty_rate exits 3 and logs MESSAGE.
refused() {
	local pid out rc
	pid=$(cat "$TMP/$1.pid")
	out=$("$RATE" "$pid" "$TMP/$1.ram" 64 1 2>&1)
	rc=$?
	printf '%s\n' "$out" | sed 's/^/    /'
	[ "$rc" = 3 ] && grep -qF "${2//PID/$pid}" <<<"$out"
}

if start_bare plain; then
	check "a QEMU started without libcolo-uffd.so is refused" refused plain \
		"QEMU pid PID was started without libcolo-uffd.so (LD_PRELOAD); refusing to start protection"
else
	fail "a bare QEMU starts" "$(tail -3 "$TMP/plain.log")"
fi
if start_bare noenv "LD_PRELOAD=$LIB"; then
	check "a QEMU with the library but no COLO_UFFD_RAM is refused" refused noenv \
		"QEMU pid PID has libcolo-uffd.so loaded but its mapping of"
	check "the library said why on QEMU's stderr" \
		grep -q "colo-uffd: COLO_UFFD_RAM is not set (the RAM backend file); dirty tracking unavailable" \
		"$TMP/noenv.log"
	check "QEMU runs on without tracking" kill -0 "$(cat "$TMP/noenv.pid")"
else
	fail "QEMU with the library but no COLO_UFFD_RAM starts" "$(tail -3 "$TMP/noenv.log")"
fi
finish
