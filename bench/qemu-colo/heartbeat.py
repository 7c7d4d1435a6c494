#!/usr/bin/env python3
"""heartbeat.py: the external heartbeat QEMU's COLO leaves to the operator.

QEMU's COLO has no heartbeat of its own (docs/COLO-FT.txt: "HeartBeat has not been
implemented yet, so you need to trigger failover process by using
'x-colo-lost-heartbeat' command"). This is the smallest one that behaves like colo's
agents: a UDP datagram every INTERVAL ms over the replication link, loss declared
after MISSES intervals without one (50 ms x 6 = 300 ms by default).

  heartbeat.py beat --bind IP --peer IP:PORT [--interval-ms 50] [--qmp SOCKET --state FILE]
      run on the primary host: send a heartbeat every interval, forever. Killing
      the primary host (every process in its namespace) stops it. With --qmp, it also
      holds that QMP socket of the primary QEMU and counts its checkpoints (STOP
      events) into --state (QCOLO_PRI_CHECKPOINTS=N), as the watcher does on the
      secondary: QEMU 7.2 reports no checkpoint count (query-migrate has no RAM
      statistics in the colo state).

  heartbeat.py watch --listen IP:PORT --qmp SOCKET --log FILE --state FILE
                     [--interval-ms 50] [--misses 6] [--tap vm0] [--bridge br0]
                     [--redirectors f2,f1] [--chardevs red1,red0]
      run on the secondary host, holding the secondary QEMU's QMP socket SOCKET:
      counts the secondary's checkpoints (its STOP events; COLO stops the SVM once per
      checkpoint) into FILE --state; arms at the first heartbeat; on loss performs
      the secondary failover of QEMU's docs/COLO-FT.txt ("Secondary Failover"):
        x-colo-lost-heartbeat, object-del the redirectors, then what the network
        needs on this rig: the secondary's tap onto the host bridge, announce-self
        (RARP from the guest's MAC so the switch learns the new port), and finally
        chardev-remove of the redirectors' sockets,
      logging a timestamp for every step to --log, then exits.

Log lines: `<UTC time> <epoch ms> <event> [details]`; events: watching, armed,
primary-lost, lost-heartbeat-sent, redirectors-removed, tap-on-bridge, announced,
chardevs-removed, failover-done (and qmp-event / error lines)."""
import argparse
import json
import os
import select
import socket
import subprocess
import sys
import time


def now_ms():
    return time.time_ns() // 1_000_000


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def beat(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.bind, 0))
    peer = hostport(a.peer)
    n = 0
    period = a.interval_ms / 1000
    nxt = time.monotonic()
    st = {"stops": 0, "resumes": 0}

    def on_event(msg):
        if msg["event"] == "STOP":
            st["stops"] += 1
        elif msg["event"] == "RESUME":
            st["resumes"] += 1

    q = Qmp(a.qmp, on_event) if a.qmp else None
    last_state = 0.0
    while True:
        n += 1
        try:
            s.sendto(f"qcolo-hb {n}".encode(), peer)
        except OSError:
            pass  # the link may be down for a moment; keep beating
        nxt += period
        while True:
            left = nxt - time.monotonic()
            if left <= 0:
                break
            if q is None:
                time.sleep(left)
                continue
            r, _, _ = select.select([q], [], [], left)
            if r:
                try:
                    q.pump()
                except (OSError, EOFError, ValueError):
                    q = None  # QEMU gone: keep beating, stop counting
        if a.state and time.monotonic() - last_state > 0.2:
            tmp = a.state + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"QCOLO_PRI_CHECKPOINTS={st['stops']}\nQCOLO_PRI_RESUMES={st['resumes']}\n")
            os.replace(tmp, a.state)
            last_state = time.monotonic()


class Qmp:
    def __init__(self, path, on_event):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""
        self.on_event = on_event
        self._read_msg()  # greeting
        self.cmd("qmp_capabilities")

    def fileno(self):
        return self.s.fileno()

    def _read_msg(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("QMP closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def pump(self):
        """Read what is available (called when the socket is readable)."""
        d = self.s.recv(65536)
        if not d:
            raise EOFError("QMP closed")
        self.buf += d
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if "event" in msg:
                self.on_event(msg)

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.s.sendall((json.dumps(req) + "\n").encode())
        while True:
            msg = self._read_msg()
            if "event" in msg:
                self.on_event(msg)
                continue
            if "error" in msg:
                raise RuntimeError(f"{name}: {msg['error'].get('desc')}")
            return msg.get("return")


def watch(a):
    logf = open(a.log, "a", buffering=1)

    def log(ev, detail=""):
        t = now_ms()
        logf.write(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t / 1000)) +
                   f".{t % 1000:03d}Z {t} {ev}{' ' + detail if detail else ''}\n")
        return t

    st = {"stops": 0, "resumes": 0, "colo_exit": ""}

    def on_event(msg):
        ev = msg["event"]
        if ev == "STOP":
            st["stops"] += 1
        elif ev == "RESUME":
            st["resumes"] += 1
        elif ev == "COLO_EXIT":
            st["colo_exit"] = json.dumps(msg.get("data"), separators=(",", ":"))
            log("qmp-event", "COLO_EXIT " + st["colo_exit"])

    def write_state(extra=""):
        tmp = a.state + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"QCOLO_SEC_CHECKPOINTS={st['stops']}\nQCOLO_SEC_RESUMES={st['resumes']}\n"
                    f"QCOLO_WATCHER_STATE={extra}\n")
        os.replace(tmp, a.state)

    q = Qmp(a.qmp, on_event)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(hostport(a.listen))
    log("watching", f"listen={a.listen} interval_ms={a.interval_ms} misses={a.misses}")
    write_state("waiting")
    limit = a.interval_ms * a.misses
    last_hb = None
    last_state = 0
    while True:
        r, _, _ = select.select([u, q], [], [], a.interval_ms / 1000 / 5)
        if u in r:
            u.recvfrom(256)
            if last_hb is None:
                log("armed", "first heartbeat from the primary")
            last_hb = now_ms()
        if q in r:
            q.pump()
        t = now_ms()
        if last_hb is not None and t - last_hb > limit:
            break
        if t - last_state > 200:
            write_state("armed" if last_hb is not None else "waiting")
            last_state = t
    log("primary-lost", f"no heartbeat for {t - last_hb} ms (limit {limit} ms)")
    write_state("failing-over")
    try:
        q.cmd("x-colo-lost-heartbeat")
        log("lost-heartbeat-sent")
        for f in a.redirectors.split(","):
            q.cmd("object-del", id=f)
        log("redirectors-removed", a.redirectors)
        subprocess.run(["ip", "link", "set", a.tap, "master", a.bridge], check=True)
        log("tap-on-bridge", f"{a.tap} -> {a.bridge}")
        q.cmd("announce-self", initial=50, max=550, rounds=5, step=100)
        log("announced", "announce-self initial=50 max=550 rounds=5 step=100")
        for c in a.chardevs.split(","):
            q.cmd("chardev-remove", id=c)
        log("chardevs-removed", a.chardevs)
        status = q.cmd("query-status")
        colo = q.cmd("query-colo-status")
        log("failover-done", f"status={status.get('status')} colo={json.dumps(colo, separators=(',', ':'))}")
        write_state("done")
    except Exception as e:  # noqa: BLE001 - report whatever QEMU said
        log("error", str(e))
        write_state("failed")
        return 1
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("beat")
    b.add_argument("--bind", required=True)
    b.add_argument("--peer", required=True)
    b.add_argument("--interval-ms", type=int, default=50)
    b.add_argument("--qmp")
    b.add_argument("--state")
    w = sub.add_parser("watch")
    w.add_argument("--listen", required=True)
    w.add_argument("--qmp", required=True)
    w.add_argument("--log", required=True)
    w.add_argument("--state", required=True)
    w.add_argument("--interval-ms", type=int, default=50)
    w.add_argument("--misses", type=int, default=6)
    w.add_argument("--tap", default="vm0")
    w.add_argument("--bridge", default="br0")
    w.add_argument("--redirectors", default="f2,f1")
    w.add_argument("--chardevs", default="red1,red0")
    a = p.parse_args()
    return beat(a) if a.mode == "beat" else watch(a)


sys.exit(main())
