#!/bin/bash
# Build the rig's fixed QEMU 7.2 (x86_64 system emulator) from Debian 12's source
# package, once per recipe, cached outside the checkout.
#
# Usage: tests/rig/build-qemu.sh
#   stdout: only the absolute path of the qemu-system-x86_64 binary (on success)
#   stderr: progress lines "build-qemu: ..."
#
# Cache:  ${COLO_RIG_CACHE:-/var/cache/colo-rig}/
#           qemu-<key>/bin/qemu-system-x86_64   the install (nothing else is kept)
#           qemu-<key>/colo-rig-build.txt        source version, configure args
#           qemu-<key>.log                       full build log
#           qemu.lock                            flock: one build at a time
# <key> = first 12 hex digits of sha256(build-qemu.sh + qemu-fix.py): editing either
# file gives a new build.  Old qemu-* entries are not removed.
#
# The build (root needed only for it: apt sources, build deps):
#   deb-src bookworm main (added as /etc/apt/sources.list.d/colo-rig-src.list when no
#   such source is configured), `apt-get source qemu/bookworm`, tests/rig/qemu-fix.py (the
#   xen-load-devices-state yank fix + no edk2 blob unpacking; fails loudly when the
#   source no longer matches), configure with a minimal x86_64-softmmu feature set,
#   ninja -j2, install into a temp dir in the cache, rename into place.
# At run time pass `-L /usr/share/qemu -L /usr/share/seabios` (packages
# qemu-system-data, seabios) and `romfile=` on -device e1000: no firmware is installed.
# Caution, measured here: with accel=kvm this QEMU 7.2 (and Debian's own 7.2 binary)
# never gets a Linux guest past the kernel decompressor (no serial output; the BIOS
# runs); accel=tcg boots it.  Also, xen-save-devices-state resumes a VM that was
# running: `stop` first for a consistent checkpoint.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
fixer="$here/qemu-fix.py"
repo=$(cd "$here/../.." && pwd)

CACHE=${COLO_RIG_CACHE:-/var/cache/colo-rig}
PKGVERSION=colo-rig-yankfix
JOBS=2

say() { echo "build-qemu: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ -f "$fixer" ] || die "missing $fixer"
key=$(cat "$self" "$fixer" | sha256sum | cut -c1-12)
mkdir -p "$CACHE" 2>/dev/null || die "cannot create cache dir $CACHE (set COLO_RIG_CACHE?)"
CACHE=$(cd "$CACHE" && pwd)
dest="$CACHE/qemu-$key"
bin="$dest/bin/qemu-system-x86_64"
log="$CACHE/qemu-$key.log"

# Fast path: no lock, no subprocess beyond the hash.
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

exec 9>>"$CACHE/qemu.lock"
if ! flock -n 9; then
  say "another build holds $CACHE/qemu.lock; waiting"
  flock 9
fi
if [ -x "$bin" ]; then # built by whoever held the lock
  echo "$bin"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "qemu-$key is not cached and building it needs root (apt); run as root once"

# Leftovers of an interrupted build (we hold the lock, so nobody else is building).
rm -rf "$CACHE"/tmp.qemu-*
work=$(mktemp -d "$CACHE/tmp.qemu-$key.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
: >"$log"

start=$SECONDS
step=""
run() { # run STEP-DESCRIPTION CMD...: append output to the log; on failure show its tail
  step=$1; shift
  say "$step"
  echo "=== $step: $*" >>"$log"
  if ! "$@" >>"$log" 2>&1; then
    say "FAILED: $step; last 30 lines of $log:"
    tail -n 30 "$log" >&2
    say "full log: $log"
    exit 1
  fi
}

say "building qemu-$key into $dest (log: $log)"

# --- build dependencies
run "installing build deps (tools/deps.sh build rig-qemu-build rig-runtime)" \
  bash "$repo/tools/deps.sh" build rig-qemu-build rig-runtime

# --- source: deb-src for bookworm main
# (output captured first: grep -q closing the pipe early would fail the pipeline under pipefail)
srcs_configured() { # a deb-src for bookworm main, in any .list or deb822 .sources file
  local uris
  uris=$(apt-get update --print-uris 2>/dev/null) || true
  grep -q "/dists/bookworm/main/source/Sources" <<<"$uris"
}
srcs_fetched() { # its index already downloaded
  local t
  # shellcheck disable=SC2016
  t=$(apt-get indextargets --format '$(CODENAME) $(COMPONENT)' 'Identifier: Sources' 2>/dev/null) || true
  grep -qx "bookworm main" <<<"$t"
}
if ! srcs_configured; then
  say "adding deb-src bookworm main: /etc/apt/sources.list.d/colo-rig-src.list"
  echo "deb-src http://deb.debian.org/debian bookworm main" >/etc/apt/sources.list.d/colo-rig-src.list
fi
updated=0
if ! srcs_fetched; then
  run "apt-get update (no Sources index for bookworm main yet)" apt-get update
  updated=1
fi
# qemu/bookworm: never a newer QEMU from another deb-src line (backports, trixie...).
get_source() { (cd "$work" && apt-get -o APT::Sandbox::User=root source qemu/bookworm); }
step="apt-get source qemu/bookworm"
say "$step"
echo "=== $step" >>"$log"
if ! get_source >>"$log" 2>&1; then
  [ $updated = 1 ] && run "apt-get source qemu/bookworm" false
  run "apt-get update (apt-get source failed; index stale?)" apt-get update
  run "apt-get source qemu/bookworm (after update)" get_source
fi
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | head -n 1)
[ -n "$src" ] && [ -f "$src/configure" ] || run "locating the unpacked source" false
srcver=$(cd "$work" && ls qemu_*.dsc | sed 's/^qemu_//; s/\.dsc$//')
say "source: qemu $srcver (upstream $(cat "$src/VERSION"))"
rm -f "$work"/qemu_*  # tarballs and dsc: no longer needed

# --- the fix (fails loudly if the source changed shape)
run "applying tests/rig/qemu-fix.py" python3 "$fixer" "$src"
run "checking the fix is in place" grep -q "yank_register_instance(MIGRATION_YANK_INSTANCE, errp)" \
  <(sed -n '/^void qmp_xen_load_devices_state(/,/^}/p' "$src/migration/savevm.c")

# --- configure / build / install
# --prefix is the final place (QEMU is relocatable anyway); the install is staged in
# $work (same filesystem) and renamed into place.
configure_args=(
  --prefix="$dest"
  --target-list=x86_64-softmmu
  --without-default-features
  --enable-tcg --enable-kvm
  --disable-docs --disable-werror
  --enable-fdt=system
  --disable-install-blobs
  --with-pkgversion="$PKGVERSION"
)
mkdir "$work/build"
# shellcheck disable=SC2016
run "configure" bash -c 'cd "$1" && shift && "$@"' _ "$work/build" "$src/configure" "${configure_args[@]}"
# Only the emulator: `ninja` alone would also build ~740 test objects (softfloat tests,
# qtest), and `ninja install` needs them.  The binary is all the rig uses (firmware and
# option ROMs come from -L at run time), so it is installed by hand.
run "compiling (ninja -j$JOBS qemu-system-x86_64; a few minutes)" \
  ninja -C "$work/build" -j "$JOBS" qemu-system-x86_64
staged="$work/install"
run "installing" install -D -m 755 "$work/build/qemu-system-x86_64" "$staged/bin/qemu-system-x86_64"
run "checking the binary runs" "$staged/bin/qemu-system-x86_64" -version
run "checking the binary carries the package version $PKGVERSION" grep -q "$PKGVERSION" "$staged/bin/qemu-system-x86_64"

{
  echo "recipe key: $key"
  echo "source: qemu $srcver (upstream $(cat "$src/VERSION")), from Debian 12 'apt-get source qemu/bookworm'"
  echo "edits: tests/rig/qemu-fix.py (xen-load-devices-state yank fix, no edk2 blob unpacking)"
  echo "configure: ${configure_args[*]}"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - start)) s"
  echo "run with: -L /usr/share/qemu -L /usr/share/seabios, romfile= on -device e1000"
} >"$staged/colo-rig-build.txt"

rm -rf "$dest" # only a partial leftover could be here (no executable bin, lock held)
mv -T "$staged" "$dest"
say "done in $((SECONDS - start)) s: $bin"
echo "$bin"
