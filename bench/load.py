#!/usr/bin/env python3
"""load.py MODE ...: the bench's load clients (stdlib only; run inside the rig's
client namespace). Every mode prints one JSON object on stdout; exit 0 unless the
client could not run at all (a broken connection is reported, not fatal).

  rr HOST PORT [--clients N] [--size B] [--seconds S] [--raw FILE]
      TCP request/response through the echo service: N connections, each with one
      request of B bytes outstanding (closed loop, next request as soon as the
      echo is complete and checked). Reports requests/s and latency p50/p99/max
      over all requests completed in S seconds; --raw writes every latency (ms).
  stream HOST PORT [--seconds S] [--window BYTES]
      bulk TCP through the echo service on one connection: a position-dependent
      pattern, every echoed byte checked in order; MB/s of echoed bytes (MB=1e6).
  drill HOST PORT --ready FILE --kill-ns-file FILE [--size B] [--pace-ms M]
        [--wait S] [--after S]
      failover probe: one TCP connection, one B-byte request outstanding, the next
      sent M ms after each reply (every reply checked: nothing lost, duplicated or
      changed). Writes FILE (--ready) after 5 replies; the caller then kills
      the primary and writes the kill time (CLOCK_REALTIME ns) into --kill-ns-file.
      The client then waits up to S s for service to come back and keeps going
      for --after s (then waits for the request in flight). Reports gap_ms = the
      first reply received more than 20 ms after the kill - the kill time (replies
      within 20 ms are still the primary's: in flight, or sent while SIGKILL reaches
      every process), the longest silence, resets and lost requests."""
import json
import os
import selectors
import socket
import sys
import time

# Replies received this soon after the kill are still the primary's (in flight, or sent
# while SIGKILL reaches every process of the host); no system here detects a failure in
# under 300 ms, so nothing the secondary sends can arrive this early.
IN_FLIGHT_NS = 20_000_000

PERIOD = 65521  # prime: a lost or duplicated chunk cannot line up by accident
_P = bytes(((i * 7 + (i >> 8) * 13) & 0xFF) for i in range(PERIOD)) * 3


def pattern(off, n):
    k = off % PERIOD
    return _P[k:k + n]


def pct(v, p):
    if not v:
        return None
    return round(v[min(len(v) - 1, int(len(v) * p / 100))], 3)


def opts(argv, spec):
    """spec: name -> default (type from the default). Returns dict."""
    o = dict(spec)
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--") or a[2:] not in spec:
            raise SystemExit(f"load.py: unknown option {a}")
        k = a[2:]
        d = spec[k]
        o[k] = type(d)(argv[i + 1]) if d is not None else argv[i + 1]
        i += 2
    return o


def connect(host, port):
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def rr(host, port, argv):
    o = opts(argv, {"clients": 4, "size": 64, "seconds": 15.0, "raw": None})
    n, size, secs = o["clients"], o["size"], o["seconds"]
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(n):
        s = connect(host, port)
        s.setblocking(False)
        st = {"s": s, "id": i, "seq": 0, "msg": b"", "got": b"", "t0": 0.0, "dead": None}
        conns.append(st)
        sel.register(s, selectors.EVENT_READ, st)
    lat = []
    errors = []

    def send(st):
        st["seq"] += 1
        head = f"c{st['id']} r{st['seq']} ".encode()
        st["msg"] = (head + b"x" * size)[:size] if size > len(head) else head
        st["got"] = b""
        st["t0"] = time.monotonic()
        try:
            st["s"].sendall(st["msg"])  # 64 bytes: fits the socket buffer
        except OSError as e:
            st["dead"] = f"send: {e}"

    t_start = time.monotonic()
    end = t_start + secs
    for st in conns:
        send(st)
    while True:
        now = time.monotonic()
        if now >= end or all(st["dead"] for st in conns):
            break
        for key, _ in sel.select(timeout=min(0.2, end - now)):
            st = key.data
            try:
                d = st["s"].recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                st["dead"] = f"recv: {e}"
                sel.unregister(st["s"])
                continue
            if not d:
                st["dead"] = "closed by the peer"
                sel.unregister(st["s"])
                continue
            st["got"] += d
            if len(st["got"]) >= len(st["msg"]):
                t1 = time.monotonic()
                if st["got"] != st["msg"]:
                    st["dead"] = f"reply differs at request {st['seq']}"
                    sel.unregister(st["s"])
                    continue
                if t1 <= end:
                    lat.append((t1 - st["t0"]) * 1000.0)
                send(st)
    elapsed = min(time.monotonic(), end) - t_start
    for st in conns:
        if st["dead"]:
            errors.append(f"client {st['id']}: {st['dead']}")
        st["s"].close()
    if o["raw"]:
        with open(o["raw"], "w") as f:
            f.write("".join(f"{x:.4f}\n" for x in lat))
    lat.sort()
    cdf = [pct(lat, q / 2) for q in range(1, 200)] if lat else []
    return {"mode": "rr", "clients": n, "size": size, "seconds": round(elapsed, 3),
            "requests": len(lat), "rps": round(len(lat) / elapsed, 1) if elapsed > 0 else None,
            "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99),
            "max_ms": round(lat[-1], 3) if lat else None,
            "mean_ms": round(sum(lat) / len(lat), 4) if lat else None,
            "cdf_ms_at_0.5pct_steps": cdf, "errors": errors}


def stream(host, port, argv):
    o = opts(argv, {"seconds": 10.0, "window": 256 * 1024})
    s = connect(host, port)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent = got = 0
    window = o["window"]
    t_start = time.monotonic()
    end = t_start + o["seconds"]
    err = None
    longest = 0.0
    last_rx = t_start
    while time.monotonic() < end and not err:
        want_write = sent - got < window
        sel.modify(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0))
        for _key, mask in sel.select(timeout=0.1):
            if mask & selectors.EVENT_WRITE:
                n = min(16384, window - (sent - got))
                try:
                    sent += s.send(pattern(sent, n))
                except BlockingIOError:
                    pass
                except OSError as e:
                    err = f"send at {sent}: {e}"
            if mask & selectors.EVENT_READ:
                try:
                    d = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    err = f"recv after {got}: {e}"
                    break
                if not d:
                    err = f"closed by the peer after {got} bytes"
                    break
                if d != pattern(got, len(d)):
                    err = f"byte at {got}+ differs (lost, duplicated or changed)"
                    break
                now = time.monotonic()
                longest = max(longest, now - last_rx)
                last_rx = now
                got += len(d)
    elapsed = time.monotonic() - t_start
    s.close()
    return {"mode": "stream", "seconds": round(elapsed, 3), "bytes": got,
            "mb_per_s": round(got / elapsed / 1e6, 3), "longest_silence_ms": round(longest * 1000, 1),
            "errors": [err] if err else []}


def drill(host, port, argv):
    o = opts(argv, {"ready": None, "kill-ns-file": None, "size": 64, "pace-ms": 2.0,
                    "wait": 15.0, "after": 1.0})
    size, pace = o["size"], o["pace-ms"] / 1000.0
    s = connect(host, port)
    s.settimeout(0.05)
    rx_times = []  # CLOCK_REALTIME of each completed reply
    seq = 0
    err = None
    resets = 0
    sent_bytes = got_bytes = 0
    kill_ns = None
    t_ready = None
    deadline = None
    outstanding = None
    stopping = False
    while True:
        if kill_ns is None and os.path.exists(o["kill-ns-file"]):
            try:
                kill_ns = int(open(o["kill-ns-file"]).read().strip() or 0) or None
            except ValueError:
                kill_ns = None
            if kill_ns:
                deadline = time.monotonic() + o["wait"]
        if deadline is not None:
            back = [t for t in rx_times if t * 1e9 > kill_ns + IN_FLIGHT_NS]
            if back and time.time() - back[0] >= o["after"]:
                stopping = True  # finish the request in flight, then stop
            if time.monotonic() > deadline:
                break
        if stopping and outstanding is None:
            break
        if stopping and time.monotonic() > deadline + 2:
            break
        if outstanding is None:
            seq += 1
            head = f"drill {seq} ".encode()
            msg = (head + b"y" * size)[:size] if size > len(head) else head
            try:
                s.sendall(msg)
            except OSError as e:
                err = f"send {seq}: {e}"
                resets += 1
                break
            sent_bytes += len(msg)
            outstanding = [msg, b""]
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except OSError as e:
            err = f"recv at request {seq}: {e}"
            resets += 1
            break
        if not d:
            err = f"closed by the peer at request {seq}"
            resets += 1
            break
        outstanding[1] += d
        if len(outstanding[1]) >= len(outstanding[0]):
            if outstanding[1] != outstanding[0]:
                err = f"reply {seq} differs: {outstanding[1][:40]!r}"
                break
            got_bytes += len(outstanding[1])
            rx_times.append(time.time())
            outstanding = None
            if t_ready is None and len(rx_times) >= 5:
                t_ready = time.time()
                with open(o["ready"], "w") as f:
                    f.write("ready\n")
            time.sleep(pace)
    s.close()
    res = {"mode": "drill", "requests_answered": len(rx_times), "bytes_sent": sent_bytes,
           "bytes_echoed": got_bytes, "resets": resets, "errors": [err] if err else [],
           "kill_ns": kill_ns, "gap_ms": None, "longest_silence_ms": None}
    if kill_ns:
        k = kill_ns / 1e9
        back = [t for t in rx_times if t > k + IN_FLIGHT_NS / 1e9]
        before = [t for t in rx_times if t <= k + IN_FLIGHT_NS / 1e9]
        if back:
            res["gap_ms"] = round((back[0] - k) * 1000, 1)
            res["last_reply_before_kill_ms"] = round((k - before[-1]) * 1000, 1) if before else None
        ts = [t for t in rx_times if t > k - 5]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        res["longest_silence_ms"] = round(max(gaps) * 1000, 1) if gaps else None
        res["answered_after_kill"] = len(back)
    # bytes lost: requests sent whose echo never came (a reset or a stall to the end)
    res["bytes_lost"] = sent_bytes - got_bytes
    return res


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("rr", "stream", "drill"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    try:
        res = {"rr": rr, "stream": stream, "drill": drill}[mode](host, port, sys.argv[4:])
    except OSError as e:
        print(json.dumps({"mode": mode, "errors": [f"cannot run: {e}"]}))
        return 1
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
