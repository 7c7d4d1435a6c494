#!/bin/bash
# make demo: what colo can do today, on a real two-host rig, narrated.
# Today that is the rig (the COLO agents land with the colo/ issue): two hosts in
# network namespaces, the primary guest serving a client, the secondary VM waiting
# paused, and a clean teardown. The demo says plainly what is not protected yet.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RIG="$ROOT/tests/rig/colo-rig --prefix demo"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

trap '$RIG down >/dev/null 2>&1 || true' EXIT
$RIG down >/dev/null 2>&1 || true

step "1. Build the rig: client, primary host, secondary host, a LAN switch (network namespaces)"
$RIG up
eval "$($RIG env)"
$RIG status

step "2. The client talks to the guest's services at $RIG_GUEST_IP"
echo "   TCP echo (port 7):   $($RIG exec cli socat -T2 - TCP:"$RIG_GUEST_IP":7 <<<'hello from the client')"
echo "   HTTP (port 80):      $($RIG exec cli socat -T2 - TCP:"$RIG_GUEST_IP":80 <<<$'GET / HTTP/1.0\r\n\r' | sed -n 1p)"

step "3. The primary guest's heartbeat counter on its serial console"
sleep 3
tail -3 "$RIG_PRI_SERIAL" | sed 's/^/   /'

step "4. What is not there yet"
cat <<'TXT'
   The replication agents (colo-agent) do not run yet: the secondary VM stays paused and
   nothing is protected. A failover drill would lose the guest. This demo grows as the
   checkpoint/, colo/ and net/ parts land (see README.md, Status).
TXT

step "5. Tear down"
$RIG down
trap - EXIT
