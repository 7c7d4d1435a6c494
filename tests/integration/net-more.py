#!/usr/bin/env python3
"""net-more.py MODE HOST ...: small checking clients for test-net-more.sh.

  udp HOST PORT COUNT      COUNT UDP requests with unique payloads, one at a time
                           (1 s timeout each, no retry): every reply must equal its
                           request. Prints `ok n=.. lost=0 p50_ms=.. p99_ms=.. max_ms=..`.
  rand HOST PORT SECONDS   lines to the random-hex service on one connection for
                           SECONDS (one outstanding at a time, 10 ms apart): every
                           reply must be one line of 32 lowercase hex digits, and no
                           reply may repeat.
  conns HOST PORT COUNT    COUNT short TCP echo connections, each a few bytes, each
                           checked and closed.
Prints one line starting `ok` (exit 0) or `FAIL` (exit 1)."""
import re
import socket
import sys
import time


def pct(v, p):
    v = sorted(v)
    return round(v[min(len(v) - 1, int(len(v) * p / 100))], 2) if v else 0


def udp(host, port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    rtt, lost, bad = [], 0, 0
    for i in range(count):
        msg = f"colo-udp {i} {time.monotonic_ns()}".encode()
        t0 = time.monotonic()
        s.sendto(msg, (host, port))
        while True:
            try:
                data, _ = s.recvfrom(2048)
            except socket.timeout:
                lost += 1
                break
            if data == msg:
                rtt.append((time.monotonic() - t0) * 1000)
                break
            if data.startswith(b"colo-udp ") and int(data.split()[1]) < i:
                continue  # a late reply to an earlier (timed-out) request
            bad += 1
            break
    res = (f"n={count} replied={len(rtt)} lost={lost} bad={bad} p50_ms={pct(rtt, 50)} "
           f"p99_ms={pct(rtt, 99)} max_ms={round(max(rtt), 2) if rtt else 0}")
    print(("ok " if lost == 0 and bad == 0 else "FAIL ") + res)
    return 0 if lost == 0 and bad == 0 else 1


def rand(host, port, seconds):
    s = socket.create_connection((host, port), timeout=30)
    f = s.makefile("rb")
    seen, rtt = set(), []
    hexre = re.compile(rb"^[0-9a-f]{32}\n$")
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        if i:
            time.sleep(0.01)
        t0 = time.monotonic()
        s.sendall(b"x\n")
        try:
            line = f.readline()
        except OSError as e:
            print(f"FAIL recv at line {i}: {e}")
            return 1
        rtt.append((time.monotonic() - t0) * 1000)
        if not line:
            print(f"FAIL closed by the peer after {i} lines")
            return 1
        if not hexre.match(line):
            print(f"FAIL line {i} is not 32 hex digits: {line[:80]!r}")
            return 1
        if line in seen:
            print(f"FAIL line {i} repeats an earlier reply: {line!r}")
            return 1
        seen.add(line)
        i += 1
    lines = i
    # Nothing extra may follow (a duplicated reply would be pending now).
    s.settimeout(0.5)
    try:
        extra = s.recv(4096)
    except socket.timeout:
        extra = b""
    if extra:
        print(f"FAIL {len(extra)} unexpected bytes after the last reply: {extra[:80]!r}")
        return 1
    print(f"ok lines={lines} unique={len(seen)} p50_ms={pct(rtt, 50)} p99_ms={pct(rtt, 99)} "
          f"max_ms={round(max(rtt), 2)}")
    return 0


def conns(host, port, count):
    rtt = []
    for i in range(count):
        msg = f"c{i}\n".encode()
        t0 = time.monotonic()
        try:
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = s.recv(64)
                if not d:
                    break
                got += d
            s.close()
        except OSError as e:
            print(f"FAIL connection {i}: {e}")
            return 1
        if got != msg:
            print(f"FAIL connection {i}: sent {msg!r}, got {got!r}")
            return 1
        rtt.append((time.monotonic() - t0) * 1000)
    print(f"ok conns={count} p50_ms={pct(rtt, 50)} p99_ms={pct(rtt, 99)} max_ms={round(max(rtt), 2)}")
    return 0


def main():
    mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    return {"udp": udp, "rand": rand, "conns": conns}[mode](host, port, n)


sys.exit(main())
