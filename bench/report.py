#!/usr/bin/env python3
"""report.py WORK OUT DOC: turn bench/run.sh's work directory into results.

Writes OUT/<date>-<host>[-quick].json (every setting and every summarised sample),
OUT/<date>-<host>[-quick].md (the tables), the PNG plots next to them (gnuplot,
bench/plots.gp), and, for a full (non --quick) run, the "latest results" section of
DOC (docs/benchmarks.md) between its markers. Nothing is filled in that was not
measured: a missing figure is printed as "not measured" with the reason."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime

SYSTEMS = [("a", "(a) unreplicated"), ("b", "(b) colo"), ("c", "(c) QEMU COLO, defaults"),
           ("c_tuned", "(c') QEMU COLO, tuned")]
NAME = dict(SYSTEMS)
BEGIN = "<!-- bench:latest:begin (written by bench/report.py) -->"
END = "<!-- bench:latest:end -->"


def pct(v, p):
    v = sorted(v)
    if not v:
        return None
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def rnd(x, n=2):
    return None if x is None else round(x, n)


def load_json(path):
    try:
        with open(path) as f:
            txt = f.read().strip()
        return json.loads(txt.splitlines()[-1]) if txt else None
    except (OSError, ValueError, IndexError):
        return None


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def read_floats(path):
    try:
        with open(path) as f:
            return [float(x) for x in f if x.strip()]
    except (OSError, ValueError):
        return []


CKPT_RE = re.compile(r"checkpoint (\d+) committed: reason (\S+) pause ([\d.]+) ms \(suspend ([\d.]+), "
                     r"capture ([\d.]+)\) transfer ([\d.]+) ms pages (\d+) bytes (\d+)")


def colo_split(d):
    """Per-checkpoint figures from the primary agent's log lines (system b)."""
    path = os.path.join(d, "ckpt.log")
    if not os.path.exists(path):
        return None
    rows = []
    for line in open(path):
        m = CKPT_RE.search(line)
        if m:
            seq, reason, pause, susp, cap, xfer, pages, byts = m.groups()
            pause, susp, cap, xfer = float(pause), float(susp), float(cap), float(xfer)
            rows.append({"reason": reason, "pause": pause, "suspend": susp, "capture": cap,
                         "resume": max(0.0, pause - susp - cap), "transfer": xfer,
                         "pages": int(pages), "bytes": int(byts)})
    if not rows:
        return {"n": 0}
    out = {"n": len(rows), "reasons": {}}
    for r in rows:
        out["reasons"][r["reason"]] = out["reasons"].get(r["reason"], 0) + 1
    for k in ("pause", "suspend", "capture", "resume", "transfer", "pages", "bytes"):
        v = [r[k] for r in rows]
        out[k] = {"p50": rnd(pct(v, 50), 3), "p99": rnd(pct(v, 99), 3), "max": rnd(max(v), 3),
                  "mean": rnd(sum(v) / len(v), 3)}
    return out


def ctl_delta(d):
    """coloctl status --json before/after: checkpoints by reason and bytes (system b)."""
    b, e = load_json(os.path.join(d, "ctl-begin.json")), load_json(os.path.join(d, "ctl-end.json"))
    if not b or not e or not b.get("ok") or not e.get("ok"):
        return None
    cb, ce = b["status"]["checkpoints"], e["status"]["checkpoints"]
    by = {k: ce["by_reason"][k] - cb["by_reason"].get(k, 0) for k in ce["by_reason"]}
    return {"committed": ce["committed"] - cb["committed"], "by_reason": by,
            "coalesced": ce.get("coalesced", 0) - cb.get("coalesced", 0),
            "comparator_end": e["status"].get("comparator")}


def read_env(path):
    out = {}
    for line in (read(path, "") or "").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k.strip()] = v.strip().strip('"')
    return out


def qm_delta(d, nobs):
    """qemu-colo.sh status before/after (query-migrate on QEMU COLO's primary):
    checkpoints (dirty-sync-count delta) and RAM bytes transferred."""
    b, e = read_env(os.path.join(d, "qcolo-status-begin.env")), read_env(os.path.join(d, "qcolo-status-end.env"))
    out = {"mode_begin": b.get("QCOLO_PRI_COLO_MODE"), "mode_end": e.get("QCOLO_PRI_COLO_MODE")}
    try:
        nck = int(e["QCOLO_PRI_CHECKPOINTS"]) - int(b["QCOLO_PRI_CHECKPOINTS"])
        out["checkpoints"] = nck
    except (KeyError, ValueError):
        nck = None
        out["why_ckpt"] = "no QCOLO_PRI_CHECKPOINTS in qemu-colo.sh status"
    try:
        xfer = int(e["QCOLO_PRI_RAM_TRANSFERRED"]) - int(b["QCOLO_PRI_RAM_TRANSFERRED"])
        out["ram_transferred_delta"] = xfer
        n = nck if nck else nobs
        if n:
            out["bytes_per_ckpt"] = round(xfer / n)
    except (KeyError, ValueError):
        out["why"] = "no QCOLO_PRI_RAM_TRANSFERRED in qemu-colo.sh status"
    return out


def phase_summary(sysdir, sysname, sub):
    d = os.path.join(sysdir, sub)
    if not os.path.isdir(d):
        return None
    r = {"dir": sub}
    if os.path.exists(os.path.join(d, "failed")):
        r["failed"] = read(os.path.join(d, "failed"))
    obs = load_json(os.path.join(d, "obs.json"))
    if obs:
        r["pauses"] = obs
        r["pauses_raw_ms"] = read_floats(os.path.join(d, "obs.raw"))
    if sysname == "b":
        r["colo_split"] = colo_split(d)
        r["colo_ctl"] = ctl_delta(d)
    if sysname.startswith("c"):
        n = obs.get("n") if obs else None
        r["qemu_migrate"] = qm_delta(d, n)
    lb, le = read(os.path.join(d, "link-begin.bytes")), read(os.path.join(d, "link-end.bytes"))
    if lb and le and lb.isdigit() and le.isdigit():
        n = (obs or {}).get("n")
        r["link"] = {"bytes": int(le) - int(lb), "per_ckpt": round((int(le) - int(lb)) / n) if n else None}
    for w in ("rr", "stream"):
        j = load_json(os.path.join(d, f"{w}.json"))
        if j:
            r[w] = j
    return r


GAP_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) \S+ \w+: secondary: (\S+) -> (\S+)")


def drill_summary(sysdir, sysname):
    drills = []
    for path in sorted(glob.glob(os.path.join(sysdir, "drill-*.cond")),
                       key=lambda p: int(re.search(r"drill-(\d+)", p).group(1))):
        n = int(re.search(r"drill-(\d+)", path).group(1))
        d = os.path.join(sysdir, f"drill-{n}")
        j = load_json(os.path.join(d, "drill.json")) or {}
        rec = {"n": n, "condition": read(path), "gap_ms": j.get("gap_ms"),
               "longest_silence_ms": j.get("longest_silence_ms"), "resets": j.get("resets"),
               "bytes_lost": j.get("bytes_lost"), "errors": j.get("errors"),
               "answered_after_kill": j.get("answered_after_kill")}
        for fp in (os.path.join(sysdir, f"drill-{n}.failed"), os.path.join(d, "failed")):
            if os.path.exists(fp):
                rec["failed"] = read(fp)
        kill_ns = j.get("kill_ns")
        slog = os.path.join(d, "secondary-agent.log")
        if kill_ns and os.path.exists(slog):
            steps = {}
            for line in open(slog):
                m = GAP_RE.match(line)
                if m:
                    t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
                    ms = round(t * 1000 - kill_ns / 1e6, 1)
                    if ms >= -1:  # log stamps are whole ms
                        steps.setdefault(m.group(3), ms)
            rec["secondary_steps_ms_after_kill"] = steps
        hb = os.path.join(d, "heartbeat.log")
        if kill_ns and os.path.exists(hb):
            steps = {}
            for line in open(hb):
                parts = line.split()
                if len(parts) >= 3 and parts[1].isdigit():
                    ms = int(parts[1]) - kill_ns // 1_000_000
                    if ms >= 0 and parts[2] != "qmp-event":
                        steps.setdefault(parts[2], ms)
            rec["heartbeat_steps_ms_after_kill"] = steps
        drills.append(rec)
    gaps = [x["gap_ms"] for x in drills if x.get("gap_ms") is not None]
    return {"wanted": int(read(os.path.join(sysdir, "drills-wanted"), "0") or 0),
            "cut": read(os.path.join(sysdir, "drills-cut")),
            "drills": drills, "n": len(drills), "n_with_gap": len(gaps),
            "gap_p50_ms": rnd(pct(gaps, 50), 1), "gap_max_ms": rnd(max(gaps), 1) if gaps else None,
            "resets": sum(x.get("resets") or 0 for x in drills),
            "bytes_lost": sum(x.get("bytes_lost") or 0 for x in drills),
            "no_kill": sum(1 for x in drills if "failed" in x),
            "no_recovery": sum(1 for x in drills if x.get("gap_ms") is None and "failed" not in x)}


def fmt(x, unit="", nd=2, why="not measured"):
    if x is None:
        return why
    if isinstance(x, float):
        x = round(x, nd)
    return f"{x}{unit}"


def main():
    work, out, doc = sys.argv[1], sys.argv[2], sys.argv[3]
    meta = {}
    for line in (read(os.path.join(work, "meta.txt"), "") or "").splitlines():
        k, _, v = line.partition("=")
        meta[k] = v
    quick = meta.get("quick") == "1"
    date = meta.get("date", datetime.utcnow().strftime("%FT%TZ"))[:10]
    base = f"{date}-{meta.get('host', 'host')}" + ("-quick" if quick else "")
    phases = []
    for line in (read(os.path.join(work, "phases.tsv"), "") or "").splitlines():
        name, _, secs = line.partition("\t")
        phases.append({"phase": name, "seconds": int(secs)})
    c_av = read(os.path.join(work, "c-available"))
    res = {"meta": meta, "phases": phases, "systems": {}}
    if c_av is not None and not c_av.startswith("1"):
        res["c_not_run"] = c_av.partition(" ")[2]
    rates = [r for r in meta.get("rates", "").split(",") if r]
    for s, label in SYSTEMS:
        sd = os.path.join(work, s)
        if not os.path.isdir(sd):
            continue
        sysres = {"label": label, "phases": {}}
        for sub in ["idle", "rr", "stream"] + [f"dirty-{r}" for r in rates]:
            p = phase_summary(sd, s, sub)
            if p:
                sysres["phases"][sub] = p
            elif os.path.exists(os.path.join(sd, f"{sub}.skipped")):
                sysres["phases"][sub] = {"skipped": read(os.path.join(sd, f"{sub}.skipped"))}
        if s != "a":
            sysres["failover"] = drill_summary(sd, s)
        res["systems"][s] = sysres
    settings = {}
    for s in ("c", "c_tuned"):
        f = os.path.join(work, s, "settings.txt")
        if os.path.exists(f):
            settings[s] = read(f)
        pj = load_json(os.path.join(work, s, "parameters.json"))
        if pj is not None:
            res.setdefault("qemu_colo_parameters", {})[s] = pj
    if settings:
        res["qemu_colo_settings"] = settings

    # ---- plots ----
    os.makedirs(out, exist_ok=True)
    plots = {}
    pd = os.path.join(work, "plot")
    os.makedirs(pd, exist_ok=True)
    xs = [("idle", "0 (idle)")] + [(f"dirty-{r}", r) for r in rates]
    with open(os.path.join(pd, "pause.dat"), "w") as f:
        f.write("# x label " + " ".join(f"{s}_p50 {s}_p99 {s}_max" for s, _ in SYSTEMS[1:]) + "\n")
        for i, (sub, lab) in enumerate(xs):
            cols = []
            for s, _ in SYSTEMS[1:]:
                p = res["systems"].get(s, {}).get("phases", {}).get(sub, {}).get("pauses") or {}
                cols += [p.get("p50_ms"), p.get("p99_ms"), p.get("max_ms")]
            f.write(f'{i} "{lab}" ' + " ".join("?" if c is None else str(c) for c in cols) + "\n")
    have_lat = []
    for s, _ in SYSTEMS:
        lat = sorted(read_floats(os.path.join(work, s, "rr", "rr.raw")))
        if not lat:
            continue
        have_lat.append(s)
        n = len(lat)
        with open(os.path.join(pd, f"lat-{s}.dat"), "w") as f:
            step = max(1, n // 1000)
            for i in list(range(0, n, step)) + [n - 1]:
                f.write(f"{lat[i]} {(i + 1) / n}\n")
    with open(os.path.join(pd, "gaps.dat"), "w") as f:
        for j, (s, _) in enumerate(SYSTEMS[1:]):
            fo = res["systems"].get(s, {}).get("failover") or {}
            for dr in fo.get("drills", []):
                if dr.get("gap_ms") is not None:
                    f.write(f"{j} {dr['n']} {dr['gap_ms']}\n")
    gp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plots.gp")
    if shutil.which("gnuplot"):
        lat_files = " ".join(f"{s}" for s in have_lat)
        pngs = {"pause_vs_dirty": f"{base}-pause.png", "latency_cdf": f"{base}-latency.png",
                "failover_gaps": f"{base}-failover.png"}
        cmd = ["gnuplot", "-e", f"datadir='{pd}'; out_pause='{os.path.join(out, pngs['pause_vs_dirty'])}'; "
               f"out_lat='{os.path.join(out, pngs['latency_cdf'])}'; "
               f"out_gap='{os.path.join(out, pngs['failover_gaps'])}'; lat_systems='{lat_files}'; "
               f"nx={len(xs)}", gp]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            plots = pngs
        else:
            res["plot_error"] = r.stderr[-500:]
            print("report: gnuplot failed:", r.stderr[-500:], file=sys.stderr)
    else:
        res["plot_error"] = "gnuplot not installed (make deps)"
    res["plots"] = plots

    # ---- the markdown ----
    md = render(res, base, quick)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, base + ".json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=False)
        f.write("\n")
    with open(os.path.join(out, base + ".md"), "w") as f:
        f.write(md)
    print(f"report: {os.path.join(out, base)}.md, .json" + (f", {', '.join(plots.values())}" if plots else ""))
    if not quick and os.path.exists(doc):
        txt = open(doc).read()
        if BEGIN in txt and END in txt:
            rel = os.path.relpath(out, os.path.dirname(os.path.abspath(doc)))
            body = md.replace("](" + base, "](" + rel + "/" + base)
            body = "\n".join(l for l in body.splitlines() if not l.startswith("# "))
            body = (f"Run of {res['meta'].get('date', '?')} on {res['meta'].get('host', '?')}: "
                    f"[{base}.md]({rel}/{base}.md), raw figures in [{base}.json]({rel}/{base}.json).\n\n" + body.strip())
            new = txt.split(BEGIN)[0] + BEGIN + "\n" + body.strip() + "\n" + END + txt.split(END, 1)[1]
            with open(doc, "w") as f:
                f.write(new)
            print(f"report: {doc} updated")
    return 0


def g(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def render(res, base, quick):
    m = res["meta"]
    S = res["systems"]
    L = []
    L.append(f"# colo bench: {m.get('date', '?')} on {m.get('host', '?')}" + (" (--quick: NOT a benchmark run)" if quick else ""))
    L.append("")
    L.append(f"Command: `{m.get('cmdline')}` (through `make bench`: the same with COLO_BUILD, COLO_QEMU, "
             f"COLO_GUEST set). Total {m.get('total_s', '?')} s.")
    L.append("")
    L.append(f"- Accelerator: **{m.get('accel', '?')}** (KVM does not boot guests on this machine, docs/rig.md); "
             f"{m.get('nproc', '?')} CPUs; load average {m.get('loadavg_start', '?')} at the start, "
             f"{m.get('loadavg_end', '?')} at the end; kernel {m.get('kernel', '?')}; git {m.get('git', '?')}.")
    L.append(f"- Guest: the rig's default guest ({m.get('guest', '?')}), 1 vCPU, 128 MiB, e1000; "
             f"same for every system.")
    cq = (f"`{m['c_qemu_version']}` ({m.get('c_qemu')}: Debian's 7.2 source with the three fixes QEMU COLO needs under TCG, "
          f"bench/qemu-colo/build-qemu.sh, docs/qemu-colo.md)" if m.get("c_qemu_version") else "see its settings below")
    L.append(f"- QEMU for (a) and (b): `{m.get('rig_qemu_version', '?')}` (the rig's 7.2 build with the yank fix); "
             f"for (c): {cq}. Debian's own binary: `{m.get('debian_qemu_version', '?')}`.")
    L.append(f"- Phase lengths (s): idle pauses {m.get('idle_s')}, each dirty rate {m.get('dirty_s')}, rr {m.get('rr_s')}, "
             f"stream {m.get('stream_s')}, settle after protection {m.get('settle_s')}. rr: {m.get('rr_clients')} clients, "
             f"{m.get('rr_size')}-byte messages. Dirty rates (MiB/s, `colo.dirty=`, one rig boot each): {m.get('rates')}. "
             f"Drills requested: {m.get('drills')}.")
    if m.get("colo_agent_args"):
        L.append(f"- colo's agents (b): `{m['colo_agent_args']}`; every other option at its default "
                 f"({m.get('colo_agent_defaults', 'see colo-agent --help').strip().rstrip(';')}).")
    if "c_not_run" in res:
        L.append(f"- **(c) QEMU COLO was not run**: {res['c_not_run']}. Its columns are empty, not estimated.")
    L.append("- Shared machine: other jobs may have been running; load average above.")
    L.append("")

    # Goals
    L.append("## Goals (issue 8), reported, not pass/fail")
    L.append("")
    L.append("| goal | (b) colo | (c) QEMU COLO defaults | (c') QEMU COLO tuned |")
    L.append("|---|---|---|---|")

    def idle_p50(s):
        p = g(S, s, "phases", "idle", "pauses")
        if p and p.get("n") == 0 and not p.get("error"):
            return f"no checkpoint in {p.get('seconds')} s"
        return g(S, s, "phases", "idle", "pauses", "p50_ms")

    def rr_ratio(s):
        a, x = g(S, "a", "phases", "rr", "rr", "rps"), g(S, s, "phases", "rr", "rr", "rps")
        return None if not a or x is None else x / a

    def gapstr(s):
        fo = g(S, s, "failover")
        if not fo or not fo.get("n_with_gap"):
            if not fo or not fo.get("n"):
                return "not measured (no drill ran)"
            return (f"not measured: of {fo['n']} drills, {fo['no_recovery']} without recovery in 15 s, "
                    f"{fo['no_kill']} without service before the kill")
        return f"p50 {fo['gap_p50_ms']} ms, max {fo['gap_max_ms']} ms ({fo['n_with_gap']} drills)"

    cols = ["b", "c", "c_tuned"]

    def cell(s, f):
        if s not in S:
            return "not run"
        return f(s)
    L.append("| primary pause p50, idle guest: <= 5 ms | " + " | ".join(
        cell(s, lambda s: idle_p50(s) if isinstance(idle_p50(s), str) else fmt(idle_p50(s), " ms")) for s in cols) + " |")
    L.append("| request/response throughput: >= 90 % of (a) | " + " | ".join(
        cell(s, lambda s: fmt(None if rr_ratio(s) is None else round(100 * rr_ratio(s), 1), " %",
                              why="not measured" if "a" in S else "not measured ((a) not run)")) for s in cols) + " |")
    L.append("| failover gap (SIGKILL to first byte from the secondary, detection included): <= 300 ms | "
             + " | ".join(cell(s, gapstr) for s in cols) + " |")
    L.append("")

    # Pauses
    L.append("## Primary pause per checkpoint (QMP STOP -> RESUME, QEMU's event timestamps, same observer for all)")
    L.append("")
    L.append("| system | workload | checkpoints | per s | p50 ms | p99 ms | max ms |")
    L.append("|---|---|---|---|---|---|---|")
    subs = ["idle"] + [f"dirty-{r}" for r in (m.get("rates", "").split(",") if m.get("rates") else [])] + ["rr", "stream"]
    for s, label in SYSTEMS:
        if s not in S:
            continue
        for sub in subs:
            ph = g(S, s, "phases", sub)
            if ph is None:
                continue
            if "skipped" in ph or "failed" in ph:
                L.append(f"| {label} | {sub} | {ph.get('skipped') or ph.get('failed')} | | | | |")
                continue
            p = ph.get("pauses")
            if not p:
                L.append(f"| {label} | {sub} | not measured (no observer result) | | | | |")
                continue
            if p.get("error"):
                L.append(f"| {label} | {sub} | not measured ({p['error']}) | | | | |")
                continue
            hung = ""
            if p.get("open_stop"):
                hung = f" (+1 in progress at the end, paused {p.get('open_stop_ms', '?')} ms so far)"
            L.append(f"| {label} | {sub} | {p['n']}{hung} | {p['per_s']} | {fmt(p['p50_ms'], why='-')} | "
                     f"{fmt(p['p99_ms'], why='-')} | {fmt(p['max_ms'], why='-')} |")
    L.append("")
    L.append("(a) runs no checkpoints: its rows show that nothing stops the unreplicated VM. "
             "p99 over fewer than 100 checkpoints is the maximum's neighbour, read it as such.")
    L.append("")

    # colo split
    if "b" in S:
        L.append("## (b) colo: the pause split and the checkpoints (the primary agent's per-checkpoint log line)")
        L.append("")
        L.append("suspend = the agent's stop + device-state save; capture = dirty scan + copy; resume = pause - "
                 "suspend - capture (the `cont`); transfer = resume -> the secondary's ack (the VM runs). "
                 "p50 / p99 in ms; bytes per checkpoint p50 / mean.")
        L.append("")
        L.append("| workload | n | reasons | pause | suspend | capture | resume | transfer | pages p50 | bytes p50 / mean |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for sub in subs:
            sp = g(S, "b", "phases", sub, "colo_split")
            if not sp:
                continue
            if not sp.get("n"):
                L.append(f"| {sub} | 0 | | | | | | | | |")
                continue
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(sp["reasons"].items()))

            def pp(k):
                return f"{sp[k]['p50']} / {sp[k]['p99']}"
            L.append(f"| {sub} | {sp['n']} | {reasons} | {pp('pause')} | {pp('suspend')} | {pp('capture')} | "
                     f"{pp('resume')} | {pp('transfer')} | {sp['pages']['p50']:.0f} | "
                     f"{sp['bytes']['p50']:.0f} / {sp['bytes']['mean']:.0f} |")
        L.append("")

    # QEMU COLO bytes
    for s in ("c", "c_tuned"):
        if s not in S:
            continue
        L.append(f"## {NAME[s]}: checkpoints and bytes")
        L.append("")
        L.append("Checkpoints: the observer's STOP/RESUME pairs on the primary, and the primary's query-migrate "
                 "dirty-sync-count delta (one RAM sync per checkpoint). Reasons: not measured (QEMU 7.2 exposes no "
                 "per-reason counter; its checkpoints are periodic, x-checkpoint-delay, or forced by colo-compare on "
                 "a miscompare or a compare timeout). Bytes per checkpoint: see the next table (query-migrate reports no "
                 "RAM figures while in COLO state).")
        L.append("")
        L.append("| workload | STOP/RESUME pairs | dirty-sync-count delta | COLO mode |")
        L.append("|---|---|---|---|")
        for sub in subs:
            ph = g(S, s, "phases", sub)
            if not ph or "pauses" not in ph:
                continue
            q = ph.get("qemu_migrate") or {}
            L.append(f"| {sub} | {g(ph, 'pauses', 'n')} | {fmt(q.get('checkpoints'), why=q.get('why_ckpt', 'not measured'))} | "
                     f"{q.get('mode_begin')} -> {q.get('mode_end')} |")
        L.append("")
        if res.get("qemu_colo_settings", {}).get(s):
            L.append("Settings:")
            L.append("")
            L.append("```")
            L.append(res["qemu_colo_settings"][s])
            L.append("```")
            L.append("")

    # Bytes per checkpoint, the same way for every replicated system
    L.append("## Replication stream bytes per checkpoint")
    L.append("")
    L.append("The bytes the primary's replication TCP connection got acknowledged during the phase (`ss` "
             "bytes_acked, colo's port 7700, QEMU COLO's migration port 9998: RAM pages, device state and the "
             "stream's own framing; not the mirrored client packets, which use other connections), divided by "
             "the observer's checkpoint count.")
    L.append("")
    L.append("| system | workload | checkpoints | bytes | bytes per checkpoint |")
    L.append("|---|---|---|---|---|")
    for s, label in SYSTEMS[1:]:
        if s not in S:
            continue
        for sub in subs:
            ph = g(S, s, "phases", sub)
            if not ph or "pauses" not in ph:
                continue
            lk = ph.get("link")
            if not lk:
                L.append(f"| {label} | {sub} | {g(ph, 'pauses', 'n')} | not measured (no ss figures) | |")
                continue
            L.append(f"| {label} | {sub} | {g(ph, 'pauses', 'n')} | {lk['bytes']} | {fmt(lk['per_ckpt'], why='- (no checkpoint)')} |")
    L.append("")

    # Client
    L.append("## Clients (from the client namespace, through the guest's TCP echo service)")
    L.append("")
    L.append(f"rr: {m.get('rr_clients', '?')} connections, {m.get('rr_size', '?')}-byte messages, {m.get('rr_s', '?')} s, closed loop, one request outstanding per connection. "
             "stream: one connection, 256 KiB window, every echoed byte checked. Ratios are to (a) in the same run.")
    L.append("")
    L.append("| system | rr req/s | ratio | p50 ms | ratio | p99 ms | ratio | rr errors | stream MB/s | ratio | stream errors |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    a_rr = g(S, "a", "phases", "rr", "rr") or {}
    a_st = g(S, "a", "phases", "stream", "stream") or {}

    def ratio(x, y):
        return f"{x / y:.2f}" if x is not None and y else "-"
    for s, label in SYSTEMS:
        if s not in S:
            continue
        r = g(S, s, "phases", "rr", "rr")
        st = g(S, s, "phases", "stream", "stream")
        if not r:
            L.append(f"| {label} | not measured | | | | | | | | | |")
            continue
        L.append(f"| {label} | {r.get('rps')} | {ratio(r.get('rps'), a_rr.get('rps'))} | {r.get('p50_ms')} | "
                 f"{ratio(r.get('p50_ms'), a_rr.get('p50_ms'))} | {r.get('p99_ms')} | {ratio(r.get('p99_ms'), a_rr.get('p99_ms'))} | "
                 f"{len(r.get('errors') or [])} | {g(st, 'mb_per_s') if st else 'not measured'} | "
                 f"{ratio(g(st, 'mb_per_s'), a_st.get('mb_per_s'))} | {len((st or {}).get('errors') or [])} |")
    L.append("")

    # Failover
    L.append("## Failover drills")
    L.append("")
    L.append("Each drill: a probe client (one TCP connection, 64-byte requests 2 ms apart, every reply checked) "
             "runs; every process on the primary host gets SIGKILL (what `colo-rig kill primary` does; the time is "
             "taken right before kill(2)); gap = the first reply the client receives more than 20 ms after that "
             "(earlier ones are the primary's: in flight, or sent while SIGKILL reaches every process) - the kill time. Detection (heartbeat 50 ms x 6) is "
             "part of it. Bytes lost: bytes sent by the probe that never came back.")
    L.append("")
    L.append("| system | drills | gap p50 ms | gap max ms | no recovery in 15 s | no service before the kill | resets | bytes lost | conditions |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for s, label in SYSTEMS[1:]:
        if s not in S:
            continue
        fo = S[s]["failover"]
        conds = {}
        for dr in fo["drills"]:
            conds[dr["condition"]] = conds.get(dr["condition"], 0) + 1
        cs = ", ".join(f"{k} x{v}" for k, v in conds.items())
        note = f" ({fo['cut']})" if fo.get("cut") else ""
        L.append(f"| {label} | {fo['n']} of {fo['wanted']}{note} | {fmt(fo['gap_p50_ms'])} | {fmt(fo['gap_max_ms'])} | "
                 f"{fo['no_recovery']} | {fo['no_kill']} | {fo['resets']} | {fo['bytes_lost']} | {cs} |")
    L.append("")
    L.append("Per drill (ms after the kill):")
    L.append("")
    L.append("| system | drill | condition | gap | longest silence | resets | bytes lost | failover steps |")
    L.append("|---|---|---|---|---|---|---|---|")
    for s, label in SYSTEMS[1:]:
        if s not in S:
            continue
        for dr in S[s]["failover"]["drills"]:
            steps = dr.get("secondary_steps_ms_after_kill") or dr.get("heartbeat_steps_ms_after_kill") or {}
            st = ", ".join(f"{k} {v}" for k, v in steps.items())
            err = "; ".join(dr.get("errors") or []) or dr.get("failed", "")
            L.append(f"| {label} | {dr['n']} | {dr['condition']} | {fmt(dr['gap_ms'], why='no kill' if 'failed' in dr else 'no reply')} | "
                     f"{fmt(dr['longest_silence_ms'], why='-')} | {dr.get('resets')} | {dr.get('bytes_lost')} | {st}"
                     f"{' (' + err + ')' if err else ''} |")
    L.append("")

    # Phases
    L.append("## Phase timings")
    L.append("")
    L.append("| phase | seconds |")
    L.append("|---|---|")
    for p in res["phases"]:
        L.append(f"| {p['phase']} | {p['seconds']} |")
    L.append(f"| total (before the report) | {m.get('total_s', '?')} |")
    L.append("")
    if res.get("plots"):
        L.append("## Plots")
        L.append("")
        L.append(f"![pause against dirty rate]({res['plots']['pause_vs_dirty']})")
        L.append(f"![request/response latency CDF]({res['plots']['latency_cdf']})")
        L.append(f"![failover gaps]({res['plots']['failover_gaps']})")
        L.append("")
    elif res.get("plot_error"):
        L.append(f"Plots: not produced ({res['plot_error']}).")
        L.append("")
    L.append(f"Raw figures: `{base}.json`.")
    L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
