#!/usr/bin/env python3
"""qmp.py SOCKET COMMAND... : run QMP commands on one connection, print each reply.

Each COMMAND is either a bare command name (`query-status`) or a full JSON object
(`{"execute": "migrate", "arguments": {...}}`). Prints one line per command: the
JSON of its "return" value. Events are skipped. Exit 1 (message on stderr) when the
socket cannot be used or a command returns an error; the commands after a failed
one are not run. Options (before SOCKET): --timeout S (default 10)."""
import json
import socket
import sys


def main():
    args = sys.argv[1:]
    timeout = 10.0
    if args[:1] == ["--timeout"]:
        timeout = float(args[1])
        args = args[2:]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path, cmds = args[0], args[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError as e:
        print(f"qmp.py: {path}: {e}", file=sys.stderr)
        return 1
    f = s.makefile("rwb", buffering=0)

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise EOFError("QMP connection closed")
            msg = json.loads(line)
            if "event" in msg:
                continue
            return msg

    try:
        reply()  # greeting
        f.write(b'{"execute":"qmp_capabilities"}\n')
        reply()
        for c in cmds:
            req = json.loads(c) if c.lstrip().startswith("{") else {"execute": c}
            f.write((json.dumps(req) + "\n").encode())
            r = reply()
            if "error" in r:
                print(f"qmp.py: {req.get('execute')}: {r['error'].get('desc')}", file=sys.stderr)
                return 1
            print(json.dumps(r.get("return")))
    except (OSError, EOFError, ValueError) as e:
        print(f"qmp.py: {path}: {e}", file=sys.stderr)
        return 1
    return 0


sys.exit(main())
