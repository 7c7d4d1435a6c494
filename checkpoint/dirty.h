/* dirty.h - which guest pages QEMU wrote: the agent's side of dirty tracking
 * (docs/dirty-tracking.md).
 *
 * QEMU runs with LD_PRELOAD=libcolo-uffd.so and COLO_UFFD_RAM=<RAM backend file>;
 * the library registers the RAM mapping for userfaultfd write-protect in async mode,
 * so the kernel records every first write to a page (vCPU or device emulation,
 * TCG or KVM) with no fault handler. The tracker reads and clears that record from
 * outside QEMU with PAGEMAP_SCAN on /proc/<qemu-pid>/pagemap.
 *
 * Two objects:
 *   dirty_tracker  attached to one QEMU process's RAM mapping; dirty_scan() reads and
 *                  clears the log. Lifecycle: dirty_open() -> dirty_scan()* ->
 *                  dirty_close(). Not thread-safe; one tracker per QEMU.
 *   dirty_set      a set of page frame numbers of one RAM (a bitmap), where scans
 *                  accumulate and where the primary unions its own dirty pages with
 *                  the secondary's list.
 *
 * A pfn is a 4 KiB page index from the start of the RAM file: byte offset / 4096.
 * Errors are negative errno; the functions that attach to QEMU log one line saying
 * what is wrong and what to do.
 */
#ifndef COLO_CHECKPOINT_DIRTY_H
#define COLO_CHECKPOINT_DIRTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "checkpoint/stream.h"

#define DIRTY_PAGE_SIZE 4096u

/* --- dirty_set ------------------------------------------------------------------ */

struct dirty_set;

/* An empty set for a RAM of npages pages. -EINVAL for 0, -ENOMEM. */
int dirty_set_new(uint64_t npages, struct dirty_set **out);
void dirty_set_free(struct dirty_set *s);
void dirty_set_clear(struct dirty_set *s);
/* Add pfns [first, first + count). -ERANGE (nothing added) if it leaves the RAM. */
int dirty_set_add(struct dirty_set *s, uint64_t first, uint64_t count);
/* Add ranges as received from the peer (DIRTY_PFN_LIST). -ERANGE (nothing added)
 * if any leaves the RAM. */
int dirty_set_add_ranges(struct dirty_set *s, const struct stream_range *r, size_t n);
bool dirty_set_test(const struct dirty_set *s, uint64_t pfn);
/* Number of pfns in the set (kept up to date, O(1)). */
uint64_t dirty_set_count(const struct dirty_set *s);
uint64_t dirty_set_npages(const struct dirty_set *s);
/* Export in ascending order, resumably: start with *cursor = 0 and call again while
 * the return value is max; *cursor ends at npages. Returns the number written. */
size_t dirty_set_pfns(const struct dirty_set *s, uint64_t *cursor, uint64_t *pfns, size_t max);
size_t dirty_set_ranges(const struct dirty_set *s, uint64_t *cursor, struct stream_range *r,
			size_t max);

/* --- dirty_tracker -------------------------------------------------------------- */

struct dirty_tracker;

/* Attach to QEMU process pid (from the QMP socket's SO_PEERCRED), whose guest RAM is
 * the file ram_path of ram_size bytes (a nonzero multiple of DIRTY_PAGE_SIZE):
 * finds the mapping in /proc/<pid>/maps, opens /proc/<pid>/pagemap and checks that
 * every page of the mapping is registered for async write-protect. Errors (logged):
 *   -ENOTSUP   tracking is not active: QEMU was started without libcolo-uffd.so, or
 *              the library is loaded but did not register the RAM (COLO_UFFD_RAM
 *              unset or naming another file, or the kernel refused);
 *   -ENOTTY    the kernel has no PAGEMAP_SCAN (Linux < 6.7);
 *   -ENOENT    no mapping of ram_path in QEMU (or no such file);
 *   -EINVAL    the file or its mapping does not have ram_size bytes;
 *   -ESRCH     no such process; -EACCES not allowed to inspect it; -ENOMEM.
 * The log is NOT cleared: the first scan reports every page written since QEMU
 * mapped its RAM (after a boot, most of RAM). */
int dirty_open(pid_t pid, const char *ram_path, uint64_t ram_size, struct dirty_tracker **out);
void dirty_close(struct dirty_tracker *t);

/* Read and clear: add to `into` (an npages-sized set, not cleared here) every page
 * written since the previous scan, and write-protect those pages again, atomically
 * per page, so a write racing with the scan is reported now or by the next scan,
 * never lost. Returns the number of pages this scan reported (pages already in
 * `into` included), or:
 *   -ENOTSUP   the RAM is no longer registered (the log is lost: resync all RAM);
 *   -ESRCH     QEMU exited;
 *   -EINVAL    `into` has the wrong size; other -errno from the kernel.
 * After an error, the pages found before it are in `into` and protected again; the
 * rest are still marked written, so a later successful scan completes the set. */
int64_t dirty_scan(struct dirty_tracker *t, struct dirty_set *into);

uint64_t dirty_npages(const struct dirty_tracker *t);
/* QEMU's virtual address of the RAM (for diagnostics). */
uint64_t dirty_qemu_addr(const struct dirty_tracker *t);

#endif
