#!/usr/bin/env python3
"""Apply the colo rig's edits to an unpacked Debian 12 QEMU 7.2 source tree.

Usage: qemu-fix.py SRCDIR

1. migration/savevm.c: qmp_xen_load_devices_state() ends with
   migration_incoming_state_destroy(), which unregisters MIGRATION_YANK_INSTANCE,
   but never registers it: QEMU aborts in util/yank.c (yank_unregister_instance:
   Assertion `entry' failed) after every load whose file opened, good or bad.
   Register it before qemu_loadvm_state() and return on failure, as
   load_snapshot() in the same file does.
2. meson.build: the dfsg tarball has no edk2 *.fd.bz2 blobs, so never unpack them.

Idempotent: an already edited tree is checked and left as it is.  Fails loudly
(exit 1, message on stderr) when the source does not look as expected, so a
changed source package never yields an unfixed QEMU silently.
"""
import os
import re
import sys

MARK = "colo-rig-yankfix"


def die(msg):
    sys.stderr.write("qemu-fix: FAILED: %s\n" % msg)
    sys.exit(1)


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        die("cannot read %s: %s" % (path, e))


def write(path, text):
    tmp = path + ".colo-rig-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def function_body(text, signature, path):
    """Return (start, end) of the function whose definition starts with signature."""
    hits = [m.start() for m in re.finditer(r"^" + re.escape(signature), text, re.M)]
    if len(hits) != 1:
        die("%s: expected exactly one definition '%s', found %d" % (path, signature, len(hits)))
    start = hits[0]
    end = text.find("\n}\n", start)
    if end < 0:
        die("%s: cannot find the end of '%s'" % (path, signature))
    return start, end + 3


def fix_savevm(src):
    path = src + "/migration/savevm.c"
    text = read(path)

    # The function we mirror: load_snapshot() registers the instance right
    # before qemu_loadvm_state() and lets migration_incoming_state_destroy()
    # unregister it.  If that changed, a human has to look again.
    ls, le = function_body(text, "bool load_snapshot(", path)
    snap = text[ls:le]
    want = ["if (!yank_register_instance(MIGRATION_YANK_INSTANCE, errp)) {",
            "ret = qemu_loadvm_state(f);",
            "migration_incoming_state_destroy();"]
    pos = [snap.find(w) for w in want]
    if min(pos) < 0 or pos != sorted(pos):
        die("%s: load_snapshot() no longer registers MIGRATION_YANK_INSTANCE before "
            "qemu_loadvm_state() and destroys after it; re-check the fix by hand" % path)
    if '#include "qemu/yank.h"' not in text:
        die("%s: does not include qemu/yank.h" % path)

    fs, fe = function_body(text, "void qmp_xen_load_devices_state(", path)
    body = text[fs:fe]
    if MARK in body:
        if body.count("yank_register_instance(MIGRATION_YANK_INSTANCE, errp)") != 1:
            die("%s: marker present but the fix is not intact" % path)
        print("qemu-fix: savevm.c: already fixed")
        return
    if "yank_register_instance" in body:
        die("%s: qmp_xen_load_devices_state() already registers a yank instance "
            "(upstream fixed it?); re-check the fix by hand" % path)
    anchor = "\n    ret = qemu_loadvm_state(f);\n"
    if body.count(anchor) != 1:
        die("%s: qmp_xen_load_devices_state(): expected one '%s' line, found %d"
            % (path, anchor.strip(), body.count(anchor)))
    if "\n    migration_incoming_state_destroy();\n" not in body[body.find(anchor):]:
        die("%s: qmp_xen_load_devices_state() no longer calls "
            "migration_incoming_state_destroy() after qemu_loadvm_state()" % path)
    if not re.search(r"\n    f = qemu_file_new_input\(", body[:body.find(anchor)]):
        die("%s: qmp_xen_load_devices_state(): 'f = qemu_file_new_input(' not found "
            "before qemu_loadvm_state()" % path)
    fix = ("\n"
           "    /* " + MARK + ": migration_incoming_state_destroy() below unregisters\n"
           "     * MIGRATION_YANK_INSTANCE; register it first, as load_snapshot() does,\n"
           "     * else QEMU aborts in yank_unregister_instance(). */\n"
           "    if (!yank_register_instance(MIGRATION_YANK_INSTANCE, errp)) {\n"
           "        qemu_fclose(f);\n"
           "        return;\n"
           "    }")
    body = body.replace(anchor, fix + anchor, 1)
    write(path, text[:fs] + body + text[fe:])
    print("qemu-fix: savevm.c: fixed qmp_xen_load_devices_state()")


def fix_meson(src):
    path = src + "/meson.build"
    text = read(path)
    old = "    unpack_edk2_blobs = bzip2.found()\n"
    new = "    unpack_edk2_blobs = false # " + MARK + ": dfsg source has no edk2 blobs\n"
    if new in text:
        print("qemu-fix: meson.build: already edited")
        return
    if text.count(old) != 1:
        die("%s: expected one line '%s', found %d" % (path, old.strip(), text.count(old)))
    write(path, text.replace(old, new, 1))
    print("qemu-fix: meson.build: edk2 blob unpacking disabled")


def main():
    if len(sys.argv) != 2:
        die("usage: qemu-fix.py SRCDIR")
    fix_savevm(sys.argv[1])
    fix_meson(sys.argv[1])


if __name__ == "__main__":
    main()
