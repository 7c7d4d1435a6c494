#!/usr/bin/env python3
"""net-stream.py HOST PORT BYTES [MARK_FILE]: stream BYTES of a known pattern
through a TCP echo service and check every byte that comes back, in order.

Prints one line `ok bytes=N gap_ms=G stalls=...` (exit 0), or `FAIL ...` (exit 1):
a reset, a byte lost, duplicated or changed (the first differing offset), or a
stall longer than 30 s. gap_ms: the longest time the client saw no echoed byte
while it still had bytes outstanding (the client-visible failover gap). When
MARK_FILE is given, the client writes the number of bytes echoed so far into it
every 100 ms, so the test can kill the primary mid-stream."""
import selectors
import socket
import sys
import time


PERIOD = 65521  # prime: a lost or duplicated chunk cannot line up by accident
_P = bytes(((i * 7 + (i >> 8) * 13) & 0xFF) for i in range(PERIOD)) * 3


def pattern(off, n):
    # Position-dependent bytes, n <= 65536 at a time.
    k = off % PERIOD
    return _P[k:k + n]


def main():
    host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    mark = sys.argv[4] if len(sys.argv) > 4 else None
    s = socket.create_connection((host, port), timeout=10)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent = got = 0
    window = 256 * 1024  # outstanding bytes: keeps the echo service from blocking
    last_rx = time.monotonic()
    gap = 0.0
    gaps = []
    last_mark = 0.0
    chunk_cache = {}
    while got < total:
        want_write = sent < total and sent - got < window
        sel.modify(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0))
        ev = sel.select(timeout=0.1)
        now = time.monotonic()
        for _key, mask in ev:
            if mask & selectors.EVENT_WRITE:
                n = min(16384, total - sent, window - (sent - got))
                buf = pattern(sent, n)
                try:
                    k = s.send(buf)
                except BlockingIOError:
                    k = 0
                except OSError as e:
                    print(f"FAIL send at {sent}: {e}")
                    return 1
                sent += k
            if mask & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    data = None
                except OSError as e:
                    print(f"FAIL recv after {got} bytes: {e} (reset?)")
                    return 1
                if data is not None:
                    if not data:
                        print(f"FAIL closed by the peer after {got} of {total} bytes")
                        return 1
                    exp = pattern(got, len(data))
                    if data != exp:
                        off = next(i for i in range(len(data)) if data[i] != exp[i])
                        print(f"FAIL byte {got + off} differs (lost, duplicated or changed)")
                        return 1
                    g = now - last_rx
                    if g > 0.2:
                        gaps.append(round(g * 1000))
                    gap = max(gap, g)
                    got += len(data)
                    last_rx = now
        if got < total and now - last_rx > 30:
            print(f"FAIL stalled for 30 s after {got} bytes")
            return 1
        if mark and now - last_mark > 0.1:
            with open(mark, "w") as f:
                f.write(f"{got}\n")
            last_mark = now
    print(f"ok bytes={got} gap_ms={round(gap * 1000)} stalls_over_200ms={gaps}")
    return 0


sys.exit(main())
