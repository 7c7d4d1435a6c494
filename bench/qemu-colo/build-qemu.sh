#!/bin/bash
# Build Debian 12's QEMU 7.2 (7.2.22, Debian's patches) with COLO usable under TCG,
# once per recipe, cached outside the checkout. Why: Debian's own binary deadlocks its
# primary at the first COLO checkpoint under TCG (see colo-tcg-fix.py and
# docs/qemu-colo.md), and KVM does not boot guests on these machines (docs/rig.md).
#
# Usage: bench/qemu-colo/build-qemu.sh
#   stdout: only the path of qemu-system-x86_64; stderr: progress
# Cache:  ${COLO_RIG_CACHE:-/var/cache/colo-rig}/qemu-colo-<key>/bin/qemu-system-x86_64
#         (+ build.txt), qemu-colo-<key>.log; <key> = hash of this script + the fix.
# The build: `apt-get source qemu/bookworm` (deb-src as set up by tests/rig/build-qemu.sh),
# colo-tcg-fix.py (the one-call COLO fix + no edk2 unpacking), configure with the features
# COLO needs (replication: COLO aborts without CONFIG_REPLICATION), ninja -j2. ~4 min.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fixer=$here/colo-tcg-fix.py
CACHE=${COLO_RIG_CACHE:-/var/cache/colo-rig}
PKGVERSION=qemu-colo-fix

say() { echo "qemu-colo-build: $*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}

key=$(cat "${BASH_SOURCE[0]}" "$fixer" | sha256sum | cut -c1-12)
mkdir -p "$CACHE"
dest=$CACHE/qemu-colo-$key
bin=$dest/bin/qemu-system-x86_64
log=$CACHE/qemu-colo-$key.log
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
exec 9>>"$CACHE/qemu-colo.lock"
flock 9
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
[ "$(id -u)" = 0 ] || die "not cached; building needs root (apt)"
rm -rf "$CACHE"/tmp.qemu-colo-*
work=$(mktemp -d "$CACHE/tmp.qemu-colo-$key.XXXXXX")
trap 'rm -rf "$work"' EXIT
: >"$log"
run() {
	local step=$1
	shift
	say "$step"
	echo "=== $step: $*" >>"$log"
	"$@" >>"$log" 2>&1 || {
		tail -30 "$log" >&2
		die "$step failed; log: $log"
	}
}
start=$SECONDS
say "building into $dest (log: $log)"
# Same build dependencies as the rig's QEMU (tools/deps.sh group rig-qemu-build).
run "apt-get source qemu/bookworm" bash -c "cd '$work' && apt-get source qemu/bookworm"
src=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'qemu-*' | head -1)
[ -n "$src" ] && [ -f "$src/configure" ] || die "no unpacked source in $work"
run "applying colo-tcg-fix.py" python3 "$fixer" "$src"
args=(--prefix="$dest" --target-list=x86_64-softmmu --without-default-features
	--enable-tcg --enable-kvm --enable-replication --disable-docs --disable-werror
	--enable-fdt=system --disable-install-blobs --with-pkgversion="$PKGVERSION")
mkdir "$work/build"
run "configure" bash -c 'cd "$1" && shift && "$@"' _ "$work/build" "$src/configure" "${args[@]}"
run "compiling (ninja -j2 qemu-system-x86_64; a few minutes)" ninja -C "$work/build" -j 2 qemu-system-x86_64
grep -q '^#define CONFIG_REPLICATION' "$work/build/config-host.h" || die "CONFIG_REPLICATION is off: COLO would abort"
install -D -m 755 "$work/build/qemu-system-x86_64" "$work/install/bin/qemu-system-x86_64"
"$work/install/bin/qemu-system-x86_64" -version >>"$log"
{
	echo "source: $(basename "$src") (Debian 12 apt-get source qemu/bookworm, Debian's patches applied)"
	echo "edits: bench/qemu-colo/colo-tcg-fix.py"
	echo "configure: ${args[*]}"
	echo "built: $(date -u +%FT%TZ) in $((SECONDS - start)) s"
} >"$work/install/build.txt"
rm -rf "$dest"
mv -T "$work/install" "$dest"
say "built in $((SECONDS - start)) s"
echo "$bin"
