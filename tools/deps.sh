#!/bin/bash
# Install the Debian packages colo needs, only those missing, one line per group.
# Usage: tools/deps.sh [group...]   (default: every group)
# Groups are listed below; `make deps` runs this with no arguments.
set -euo pipefail

declare -A GROUPS_PKGS=(
  [build]="build-essential pkg-config"
  [libs]="libnl-3-dev libnl-nf-3-dev libnl-route-3-dev libyajl-dev libxen-dev libxxhash-dev"
  [test]="clang libclang-rt-14-dev python3"
  [rig-runtime]="iproute2 iptables iputils-ping kmod procps psmisc socat busybox-static cpio gzip xz-utils zstd qemu-system-data seabios"
  [bench]="qemu-system-x86 gnuplot-nox"
  [rig-qemu-build]="dpkg-dev ninja-build meson libglib2.0-dev libpixman-1-dev flex bison python3-venv pkgconf zlib1g-dev libfdt-dev bzip2"
)
ORDER=(build libs test rig-runtime bench rig-qemu-build)

want=("$@")
[ ${#want[@]} -eq 0 ] && want=("${ORDER[@]}")

if [ "$(id -u)" != 0 ]; then
  echo "deps: must run as root to install packages (try: sudo make deps)" >&2
  exit 1
fi

missing_of() {
  local p out=()
  for p in $1; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out+=("$p")
  done
  echo "${out[*]:-}"
}

updated=0
for g in "${want[@]}"; do
  pkgs=${GROUPS_PKGS[$g]:-}
  [ -n "$pkgs" ] || { echo "deps: unknown group '$g' (known: ${ORDER[*]})" >&2; exit 1; }
  miss=$(missing_of "$pkgs")
  if [ -z "$miss" ]; then
    echo "deps: $g: all present"
    continue
  fi
  echo "deps: $g: installing $miss"
  if [ $updated = 0 ]; then
    apt-get update -qq >/dev/null
    updated=1
  fi
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $miss >/dev/null
done
