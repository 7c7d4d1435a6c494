#!/usr/bin/env python3
"""colo-tcg-fix.py SRCDIR: the two edits bench/qemu-colo/build-qemu.sh makes to Debian 12's
QEMU 7.2 source (apt-get source qemu/bookworm, 7.2.22 with Debian's patches).

1. migration/colo.c, colo_do_checkpoint_transaction(): the primary calls
   qemu_savevm_live_state() (the RAM part of a checkpoint) WITHOUT the big QEMU lock.
   Under TCG, the RAM bitmap sync in it ends in memory_global_after_dirty_log_sync() ->
   run_on_cpu(), which waits on a condition variable with the big lock as its mutex:
   a thread that does not hold the lock "re-acquires" it on wake-up and keeps it, and
   the COLO thread deadlocks on itself at the next qemu_mutex_lock_iothread() (seen with
   gdb on Debian's own binary: the first checkpoint hangs the primary for good, its
   monitor too). The edit takes the lock around that call, as the normal migration
   completion path does. The VM is stopped there, so the lock costs nothing.
2. net/filter-rewriter.c, colo_rewriter_receive_iov(): a zero-length frame (the
   secondary's e1000 emits one from xmit_seg() during bulk TCP, TSO) is copied into
   g_malloc0(0) == NULL and parse_packet_early() asserts `data': the secondary QEMU
   aborts (seen with gdb, net/colo.c:51). The edit passes empty frames on untouched
   (the next filter, the redirector, drops empty frames anyway).
3. Dirty tracking under TCG (both sides): a page's dirty bit for migration is cleared by
   the bitmap sync (an atomic exchange), but a vCPU's TLB entry that already maps the
   page as "dirty" keeps writing it without marking it again until that entry is
   flushed. Between checkpoints this loses writes: pages the secondary VM wrote are then
   not restored from the COLO cache, pages the primary wrote are not sent. Seen here:
   the secondary guest oopses/panics between checkpoints (list_add corruption, GPF in
   kmem_cache_alloc) and is only revived by the next checkpoint. Edits:
   softmmu/physmem.c tcg_log_global_after_sync() (run after every sync, on each vCPU
   thread) flushes that vCPU's TLB instead of doing nothing; migration/ram.c
   colo_flush_ram_cache() (the secondary's sync) calls memory_global_after_dirty_log_sync()
   like migration_bitmap_sync() does.
4. meson.build: the dfsg tarball has no edk2 blobs; never try to unpack them (as
   tests/rig/qemu-fix.py does for the rig's QEMU).
Idempotent; fails loudly when the source does not look as expected."""
import sys

MARK = "qemu-colo-fix"


def die(msg):
    sys.stderr.write(f"colo-tcg-fix: FAILED: {msg}\n")
    sys.exit(1)


def edit(path, old, new, what):
    text = open(path, encoding="utf-8").read()
    if new in text:
        print(f"colo-tcg-fix: {what}: already done")
        return
    if text.count(old) != 1:
        die(f"{path}: expected exactly one '{old.strip()}', found {text.count(old)}")
    open(path, "w", encoding="utf-8").write(text.replace(old, new))
    print(f"colo-tcg-fix: {what}: done")


def main():
    src = sys.argv[1]
    edit(src + "/migration/colo.c",
         "    qemu_savevm_live_state(s->to_dst_file);\n",
         f"    /* {MARK}: run_on_cpu() in the RAM sync needs the big lock (TCG) */\n"
         "    qemu_mutex_lock_iothread();\n"
         "    qemu_savevm_live_state(s->to_dst_file);\n"
         "    qemu_mutex_unlock_iothread();\n",
         "migration/colo.c: big lock around qemu_savevm_live_state()")
    edit(src + "/net/filter-rewriter.c",
         "    char *buf = g_malloc0(size);\n\n    iov_to_buf(iov, iovcnt, 0, buf, size);\n",
         f"    char *buf;\n\n    if (size == 0) {{\n        return 0; /* {MARK}: nothing to parse */\n    }}\n"
         "    buf = g_malloc0(size);\n    iov_to_buf(iov, iovcnt, 0, buf, size);\n",
         "net/filter-rewriter.c: pass empty frames on")
    edit(src + "/softmmu/physmem.c",
         "        run_on_cpu(cpuas->cpu, do_nothing, RUN_ON_CPU_NULL);\n",
         f"        run_on_cpu(cpuas->cpu, qemu_colo_fix_tlb_flush, RUN_ON_CPU_NULL); /* {MARK} */\n",
         "softmmu/physmem.c: flush the TLB after a dirty-log sync")
    edit(src + "/softmmu/physmem.c",
         "static void tcg_log_global_after_sync(MemoryListener *listener)\n{\n",
         "static void qemu_colo_fix_tlb_flush(CPUState *cpu, run_on_cpu_data d)\n{\n"
         "    tlb_flush(cpu); /* written pages are marked dirty again */\n}\n\n"
         "static void tcg_log_global_after_sync(MemoryListener *listener)\n{\n",
         "softmmu/physmem.c: the flush helper")
    edit(src + "/migration/ram.c",
         "    }\n\n    trace_colo_flush_ram_cache_begin(",
         f"    }}\n    memory_global_after_dirty_log_sync(); /* {MARK} */\n\n    trace_colo_flush_ram_cache_begin(",
         "migration/ram.c: after-sync hook in colo_flush_ram_cache()")
    edit(src + "/meson.build",
         "    unpack_edk2_blobs = bzip2.found()\n",
         f"    unpack_edk2_blobs = false # {MARK}: dfsg source has no edk2 blobs\n",
         "meson.build: no edk2 blob unpacking")


main()
