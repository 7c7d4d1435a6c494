#!/bin/bash
# Build the rig's default guest, or find it in the cache: Debian 12's kernel
# (linux-image package, downloaded and unpacked, not installed) and a
# busybox-static initramfs with e1000.ko, colo-guestd and /init from guest/.
#
# Usage: tests/rig/build-guest.sh
# Prints only the absolute output directory on stdout; it holds
#   vmlinuz         the package's bzImage (xz-compressed kernel)
#   vmlinux         the same kernel uncompressed (ELF with a PVH entry point):
#                   QEMU's -kernel boots it directly, skipping the in-guest
#                   decompression (~5 s less under TCG; far more under a KVM
#                   whose page faults are slow)
#   initrd.img      gzip'd newc cpio: busybox, e1000.ko, colo-guestd, /init, /www
#   kernel-version  uname -r of the kernel, one line
# Progress and errors go to stderr, prefixed "build-guest: ".
#
# Cache: ${COLO_RIG_CACHE:-/var/cache/colo-rig}/guest-<key>/, key = first 12
# hex digits of a sha256 over the recipe (this script and every file under
# guest/, names and contents). Builds are serialised by flock on
# $CACHE/guest.lock, done in a temporary directory and renamed into place.
# The key does not cover the mirror's kernel or the host's busybox: remove
# the guest-* directory to pick up newer ones.
# Needs root (apt-get download into the cache), network access to the Debian
# mirror, and the packages of tools/deps.sh (build, rig-runtime).
set -euo pipefail

say() { echo "build-guest: $*" >&2; }
die() { say "error: $*"; exit 1; }
# Run a command with its output, prefixed, on stderr; its exit status is kept.
run() { "$@" 2>&1 | sed -u 's/^/build-guest:   /' >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${COLO_RIG_CACHE:-/var/cache/colo-rig}

key=$(cd "$here" && { echo build-guest.sh; find guest -type f; } | LC_ALL=C sort |
	xargs -d '\n' sha256sum | sha256sum | cut -c1-12)
[ ${#key} = 12 ] || die "cannot hash the recipe files in $here"
mkdir -p "$cache" || die "cannot create cache directory $cache"
cache=$(cd "$cache" && pwd)
out=$cache/guest-$key

is_complete() {
	[ -s "$1/vmlinuz" ] && [ -s "$1/vmlinux" ] && [ -s "$1/initrd.img" ] && [ -s "$1/kernel-version" ]
}

if is_complete "$out"; then
	echo "$out"
	exit 0
fi

exec 9>"$cache/guest.lock"
if ! flock -n 9; then
	say "waiting for another build ($cache/guest.lock)"
	flock 9
fi
if is_complete "$out"; then	# built while we waited
	echo "$out"
	exit 0
fi
# Temporary directories of builds that died: nobody else holds the lock.
rm -rf "$cache"/tmp.guest-* "$out"

t_start=$(date +%s.%N)
tmp=$(mktemp -d "$cache/tmp.guest-$key.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
say "building guest-$key in $tmp"

for tool in apt-cache apt-get dpkg gcc cpio gzip xz zstd od dd readelf; do
	command -v "$tool" >/dev/null || die "$tool not found (run tools/deps.sh)"
done
busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox not found (install busybox-static: tools/deps.sh rig-runtime)"
# (grep without -q reads all input: an early exit would SIGPIPE readelf and
# fail the pipeline under pipefail)
if readelf -l "$busybox" | grep 'program interpreter' >/dev/null; then
	die "$busybox is dynamically linked (install busybox-static, not busybox)"
fi

# --- kernel package: whatever linux-image-amd64 currently points at ---------
apt_updated=0
apt_update() {
	[ $apt_updated = 0 ] || return 1
	apt_updated=1
	say "apt-get update"
	run apt-get update -qq || die "apt-get update failed"
}
resolve_kernel() {
	# (awk reads all its input: no SIGPIPE upstream under pipefail)
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '!f && $1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; f = 1 }'
}
kpkg=$(resolve_kernel)
if [ -z "$kpkg" ] && apt_update; then
	kpkg=$(resolve_kernel)
fi
[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 (is a Debian 12 mirror in sources.list?)"
say "kernel package $kpkg ($(apt-cache show --no-all-versions "$kpkg" 2>/dev/null |
	awk '!f && $1 == "Version:" { print $2; f = 1 }'))"

mkdir -p "$tmp/dl"
download() {
	(cd "$tmp/dl" && run apt-get download -q -o APT::Sandbox::User=root "$kpkg")
}
if ! download; then
	# Lists older than the mirror (point release): refresh them once.
	apt_update || die "apt-get download $kpkg failed"
	download || die "apt-get download $kpkg failed"
fi
deb=$(find "$tmp/dl" -name '*.deb' -print -quit)
[ -n "$deb" ] || die "apt-get download produced no .deb"

say "unpacking $(basename "$deb")"
dpkg -x "$deb" "$tmp/pkg" || die "dpkg -x $(basename "$deb") failed"
vmlinuz=$(find "$tmp/pkg/boot" -maxdepth 1 -name 'vmlinuz-*' -print -quit 2>/dev/null || true)
[ -n "$vmlinuz" ] || die "no /boot/vmlinuz-* in $kpkg"
kver=${vmlinuz##*/vmlinuz-}
case "$kver" in
6.1.*) ;;
*) say "warning: kernel $kver is not a 6.1 kernel (not a Debian 12 mirror?)" ;;
esac
ko=$(find "$tmp/pkg" -path "*/lib/modules/$kver/*" -name 'e1000.ko*' -print -quit)
[ -n "$ko" ] || die "no e1000.ko in $kpkg"
cp "$vmlinuz" "$tmp/vmlinuz"
cp "$ko" "$tmp/${ko##*/}"
vmlinuz=$tmp/vmlinuz ko=$tmp/${ko##*/}
rm -rf "$tmp/pkg" "$tmp/dl"	# ~400 MB unpacked: free it now

# --- initramfs tree -----------------------------------------------------------
root=$tmp/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,etc,lib/modules}
chmod 1777 "$root/tmp"

case "$ko" in
*.ko) cp "$ko" "$root/lib/modules/e1000.ko" ;;
*.ko.xz) xz -dc "$ko" >"$root/lib/modules/e1000.ko" ;;
*.ko.zst) zstd -qdc "$ko" >"$root/lib/modules/e1000.ko" ;;
*.ko.gz) gzip -dc "$ko" >"$root/lib/modules/e1000.ko" ;;
*) die "unknown module format: $ko" ;;
esac

say "compiling colo-guestd"
run gcc -static -O2 -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -s \
	-o "$root/bin/colo-guestd" "$here/guest/colo-guestd.c" || die "compiling colo-guestd failed"

cp "$busybox" "$root/bin/busybox"
"$busybox" --list-full | while read -r applet; do
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
install -m 755 "$here/guest/init" "$root/init"
cp -r "$here/guest/www" "$root/www"
find "$root/www" -type f -exec chmod 644 {} +
[ ! -d "$root/www/cgi-bin" ] || find "$root/www/cgi-bin" -type f -exec chmod 755 {} +
echo colo-guest >"$root/etc/hostname"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
# The kernel opens /dev/console for /init before devtmpfs is mounted.
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null ||
	say "note: cannot mknod dev/console here (the kernel's built-in one is used)"

# --- output -------------------------------------------------------------------
mkdir "$tmp/out"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9n >"$tmp/out/initrd.img"
cp "$vmlinuz" "$tmp/out/vmlinuz"
# The bzImage's payload (boot protocol >= 2.08): payload_offset at 0x248 and
# payload_length at 0x24c, counted from the protected-mode code, which starts
# after (setup_sects + 1) * 512 bytes. xz and zstd payloads end with a 4-byte
# size that is not part of the compressed stream.
le() { od -An -tu"$1" -j "$2" -N "$1" "$vmlinuz" | tr -d ' '; }
setup_sects=$(le 1 $((0x1f1)))
[ "$setup_sects" != 0 ] || setup_sects=4
poff=$(( (setup_sects + 1) * 512 + $(le 4 $((0x248))) ))
plen=$(le 4 $((0x24c)))
payload() { dd if="$vmlinuz" iflag=skip_bytes,count_bytes skip="$poff" count="$1" bs=1M status=none; }
case $(payload 4 | od -An -tx1 | tr -d ' ') in
fd377a58) payload $((plen - 4)) | xz -dc >"$tmp/out/vmlinux" ;;
28b52ffd) payload $((plen - 4)) | zstd -qdc >"$tmp/out/vmlinux" ;;
1f8b*) payload "$plen" | gzip -dc >"$tmp/out/vmlinux" ;;
*) die "unknown kernel payload compression in $(basename "$vmlinuz")" ;;
esac
[ "$(head -c 4 "$tmp/out/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
	die "uncompressed kernel is not an ELF file"
# XEN_ELFNOTE_PHYS32_ENTRY (18): the PVH entry QEMU needs to boot an ELF kernel.
readelf -n "$tmp/out/vmlinux" | grep -E 'PHYS32_ENTRY|\(0x00000012\)' >/dev/null ||
	die "uncompressed kernel has no PVH entry note (CONFIG_PVH)"
echo "$kver" >"$tmp/out/kernel-version"
chmod 755 "$tmp/out"
chmod 644 "$tmp/out"/*
is_complete "$tmp/out" || die "output incomplete"

mv -T "$tmp/out" "$out"
say "done: kernel $kver, initrd $(stat -c %s "$out/initrd.img") bytes," \
	"$(awk -v s="$t_start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"
echo "$out"
