#!/usr/bin/env python3
"""qmp_pauses.py SOCKET SECONDS [--raw FILE] [--ready FILE]: observe a QEMU's
STOP and RESUME events on a free QMP socket for SECONDS and report the pauses.

The same observer is used for every system the bench compares (colo's primary
through the rig's qmp-debug.sock, QEMU COLO's primary through a spare -qmp
socket): pause = RESUME.timestamp - STOP.timestamp, both QEMU's own event
timestamps, so the figure does not depend on the observer's scheduling.

Prints one JSON object on stdout:
  {"socket":..., "seconds":..., "n":N, "stops":S, "resumes":R,
   "p50_ms":.., "p99_ms":.., "max_ms":.., "mean_ms":.., "per_s":.., "open_stop": bool}
--raw FILE writes every pause (ms), one a line. --ready FILE is created once the
observer is subscribed (after qmp_capabilities), so a caller can start a load
knowing no event is missed. Exit 1 if the socket cannot be used."""
import json
import os
import socket
import sys
import time


def pct(v, p):
    v = sorted(v)
    if not v:
        return None
    return round(v[min(len(v) - 1, int(len(v) * p / 100))], 3)


def ts(ev):
    t = ev.get("timestamp") or {}
    return t.get("seconds", 0) + t.get("microseconds", 0) / 1e6


def main():
    args = sys.argv[1:]
    raw = ready = None
    if "--raw" in args:
        i = args.index("--raw")
        raw = args[i + 1]
        del args[i:i + 2]
    if "--ready" in args:
        i = args.index("--ready")
        ready = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path, seconds = args[0], float(args[1])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + 10
    while True:
        try:
            s.connect(path)
            break
        except OSError as e:
            if time.monotonic() > deadline:
                print(json.dumps({"socket": path, "error": f"connect: {e}"}))
                return 1
            time.sleep(0.1)
    f = s.makefile("rwb", buffering=0)
    s.settimeout(10)
    greeting = f.readline()
    if b"QMP" not in greeting:
        print(json.dumps({"socket": path, "error": f"no QMP greeting: {greeting[:200]!r}"}))
        return 1
    f.write(b'{"execute":"qmp_capabilities"}\n')
    stops, resumes, pauses = 0, 0, []
    stop_at = None
    subscribed = False
    end = None
    buf = b""
    s.settimeout(0.2)
    t_conn = time.monotonic()
    while True:
        now = time.monotonic()
        if end is not None and now >= end:
            break
        if end is None and now - t_conn > 10:
            break  # QEMU does not answer qmp_capabilities (hung?)
        try:
            data = s.recv(65536)
        except socket.timeout:
            data = None
        except OSError:
            break
        if data == b"":
            break  # QEMU went away
        if data:
            buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if not subscribed and "return" in msg:
                subscribed = True
                end = time.monotonic() + seconds
                if ready:
                    with open(ready, "w") as r:
                        r.write("ready\n")
                continue
            ev = msg.get("event")
            if ev == "STOP":
                stops += 1
                stop_at = ts(msg)
            elif ev == "RESUME":
                resumes += 1
                if stop_at is not None:
                    pauses.append((ts(msg) - stop_at) * 1000.0)
                stop_at = None
    if raw:
        with open(raw, "w") as r:
            r.write("".join(f"{p:.3f}\n" for p in pauses))
    out = {
        "socket": path, "seconds": seconds, "n": len(pauses), "stops": stops,
        "resumes": resumes, "p50_ms": pct(pauses, 50), "p99_ms": pct(pauses, 99),
        "max_ms": round(max(pauses), 3) if pauses else None,
        "mean_ms": round(sum(pauses) / len(pauses), 3) if pauses else None,
        "per_s": round(len(pauses) / seconds, 3) if seconds else None,
        "open_stop": stop_at is not None,
    }
    if not subscribed:
        out["error"] = "qmp_capabilities got no answer in 10 s (QEMU hung?)"
    if stop_at is not None:
        # A STOP with no RESUME by the end: the VM was still paused, for at least this long.
        out["open_stop_ms"] = round((time.time() - stop_at) * 1000.0, 1)
    print(json.dumps(out))
    return 0 if subscribed else 1


if __name__ == "__main__":
    sys.exit(main())
