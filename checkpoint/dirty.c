/* dirty.c - the dirty-page tracker: PAGEMAP_SCAN on QEMU's pagemap
 * (docs/dirty-tracking.md).
 *
 * Why no write is lost: with PM_SCAN_WP_MATCHING the kernel reads each page's
 * "written" state and write-protects it again in one step under the page-table
 * lock, the same lock the write-fault path takes to un-protect a page. A write is
 * therefore ordered before the scan of its page (reported now) or after it (it
 * faults on the fresh protection and is reported by the next scan). The TLB is
 * flushed before the lock is dropped and before the ioctl returns, so a write
 * through a stale writable TLB entry lands before the caller reads the page it was
 * just told about. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "checkpoint/dirty.h"
#include "checkpoint/dirty_wp.h"
#include "lib/log.h"

/* Regions per PAGEMAP_SCAN call (24 bytes each). A scan that finds more loops on
 * walk_end; a checkpoint's dirty set is usually a few hundred regions. */
#define SCAN_VEC_LEN 4096
/* Mappings of the RAM file considered (QEMU maps it once). */
#define MAX_CANDIDATES 4
#define PRELOAD_NAME "libcolo-uffd.so"

struct dirty_tracker {
	pid_t pid;
	int pagemap;
	uint64_t addr; /* QEMU's virtual address of RAM offset 0 */
	uint64_t size;
	struct page_region vec[SCAN_VEC_LEN];
};

/* What /proc/<pid>/maps says about the RAM file and the preload library. */
struct ram_vmas {
	uint64_t cand[MAX_CANDIDATES]; /* start of each mapping covering [0, size) */
	int ncand;
	uint64_t run_base, run_next; /* the mapping being assembled (run_next 0: none) */
	bool run_counted;	     /* it is in cand[] already */
	uint64_t longest;	     /* bytes of the longest mapping seen, for errors */
	bool preloaded;
};

struct file_id {
	dev_t dev;
	ino_t ino;
	char real[PATH_MAX];
	uint64_t size;
};

struct vma_line {
	uint64_t start, end, off, ino;
	unsigned maj, min;
	const char *path;
};

static int parse_vma(char *line, struct vma_line *v)
{
	int pos = 0;

	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %*s %" SCNx64 " %x:%x %" SCNu64 " %n", &v->start,
		   &v->end, &v->off, &v->maj, &v->min, &v->ino, &pos) != 6 || pos == 0)
		return -EINVAL;
	v->path = line + pos;
	line[strcspn(line, "\n")] = '\0';
	return 0;
}

/* Same file: inode and device; the path as well when the device numbers differ
 * (btrfs and overlayfs show another device in maps than stat() does). */
static bool same_file(const struct vma_line *v, const struct file_id *f)
{
	if (v->ino != f->ino)
		return false;
	if (v->maj == major(f->dev) && v->min == minor(f->dev))
		return true;
	return strcmp(v->path, f->real) == 0;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t ls = strlen(s), lt = strlen(tail);
	return ls >= lt && strcmp(s + ls - lt, tail) == 0;
}

/* QEMU maps the file with one mmap; madvise() may have split it into several VMAs,
 * contiguous in address and offset. Assemble them into mappings of [0, size). */
static void add_vma(struct ram_vmas *r, const struct vma_line *v, uint64_t size)
{
	if (v->off == 0) {
		r->run_base = v->start;
		r->run_next = v->end;
		r->run_counted = false;
	} else if (r->run_next != v->start || v->off != v->start - r->run_base) {
		r->run_next = 0;
		return;
	} else {
		r->run_next = v->end;
	}
	uint64_t len = r->run_next - r->run_base;
	if (len > r->longest)
		r->longest = len;
	if (len >= size && !r->run_counted && r->ncand < MAX_CANDIDATES) {
		r->cand[r->ncand++] = r->run_base;
		r->run_counted = true;
	}
}

static int read_maps(pid_t pid, const struct file_id *f, struct ram_vmas *r)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return errno == ENOENT ? -ESRCH : -errno;
	while (getline(&line, &cap, fp) > 0) {
		struct vma_line v;
		if (parse_vma(line, &v) < 0)
			continue;
		if (ends_with(v.path, "/" PRELOAD_NAME))
			r->preloaded = true;
		if (same_file(&v, f))
			add_vma(r, &v, f->size);
		else
			r->run_next = 0; /* something else in between: not one mapping */
	}
	free(line);
	fclose(fp);
	return 0;
}

static int stat_ram(const char *ram_path, uint64_t ram_size, struct file_id *f)
{
	struct stat st;

	if (stat(ram_path, &st) < 0) {
		int rc = -errno;
		log_err("dirty: RAM file %s: %s; is it QEMU's memory-backend-file mem-path?",
			ram_path, strerror(-rc));
		return rc;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != ram_size) {
		log_err("dirty: RAM file %s has %lld bytes, the VM has %" PRIu64
			" bytes of RAM; wrong file or wrong RAM size",
			ram_path, (long long)st.st_size, ram_size);
		return -EINVAL;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->size = ram_size;
	if (!realpath(ram_path, f->real))
		snprintf(f->real, sizeof(f->real), "%s", ram_path);
	return 0;
}

/* Is every page of [addr, addr + size) registered for async write-protect? A walk
 * with PM_SCAN_CHECK_WPASYNC and no output buffer checks each VMA and changes
 * nothing: the kernel fails it with EPERM at the first VMA that is not registered. */
static int probe_wp(int pagemap, uint64_t addr, uint64_t size)
{
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = PM_SCAN_CHECK_WPASYNC,
		.start = addr,
		.end = addr + size,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	return ioctl(pagemap, PAGEMAP_SCAN, &a) < 0 ? -errno : 0;
}

static int open_pagemap(pid_t pid)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno == ENOENT) {
		log_err("dirty: no process %d (has QEMU exited?)", (int)pid);
		return -ESRCH;
	}
	int rc = errno == EPERM ? -EACCES : -errno;
	log_err("dirty: cannot open %s: %s; the agent needs ptrace access to QEMU (run it "
		"as root or as QEMU's user)",
		path, strerror(-rc));
	return rc;
}

static void log_not_tracked(const struct dirty_tracker *t, const char *ram_path,
			    const struct ram_vmas *r)
{
	if (!r->preloaded)
		log_err("dirty: QEMU pid %d was started without " PRELOAD_NAME
			" (LD_PRELOAD); refusing to start protection",
			(int)t->pid);
	else
		log_err("dirty: QEMU pid %d has " PRELOAD_NAME " loaded but its mapping of %s is "
			"not registered for dirty tracking (COLO_UFFD_RAM unset or naming another "
			"file, or the kernel refused: see the 'colo-uffd:' line on QEMU's stderr); "
			"refusing to start protection",
			(int)t->pid, ram_path);
}

/* Pick the registered mapping among the candidates (normally exactly one). */
static int choose_mapping(struct dirty_tracker *t, const char *ram_path, const struct ram_vmas *r)
{
	int rc = -EPERM;

	for (int i = 0; i < r->ncand && rc == -EPERM; i++) {
		rc = probe_wp(t->pagemap, r->cand[i], t->size);
		t->addr = r->cand[i];
	}
	if (rc == 0)
		return 0;
	if (rc == -EPERM) {
		log_not_tracked(t, ram_path, r);
		return -ENOTSUP;
	}
	if (rc == -ENOTTY || rc == -EINVAL) {
		log_err("dirty: this kernel has no PAGEMAP_SCAN (Linux >= 6.7 needed): dirty "
			"pages cannot be tracked; refusing to start protection");
		return -ENOTTY;
	}
	log_err("dirty: PAGEMAP_SCAN on QEMU pid %d failed: %s", (int)t->pid, strerror(-rc));
	return rc;
}

static int find_mapping(struct dirty_tracker *t, const char *ram_path, const struct file_id *f)
{
	struct ram_vmas r = { 0 };
	int rc = read_maps(t->pid, f, &r);

	if (rc < 0) {
		log_err("dirty: cannot read the mappings of QEMU pid %d: %s", (int)t->pid,
			strerror(-rc));
		return rc;
	}
	if (r.ncand == 0 && r.longest == 0) {
		log_err("dirty: QEMU pid %d has no mapping of %s; is it the QEMU of this VM, with "
			"-object memory-backend-file,mem-path=%s,share=on?",
			(int)t->pid, ram_path, ram_path);
		return -ENOENT;
	}
	if (r.ncand == 0) {
		log_err("dirty: QEMU pid %d maps only %" PRIu64 " of the %" PRIu64
			" bytes of %s; refusing to track part of the RAM",
			(int)t->pid, r.longest, t->size, ram_path);
		return -EINVAL;
	}
	return choose_mapping(t, ram_path, &r);
}

int dirty_open(pid_t pid, const char *ram_path, uint64_t ram_size, struct dirty_tracker **out)
{
	struct dirty_tracker *t = NULL;
	struct file_id f;
	int rc;

	if (pid <= 0 || ram_size == 0 || ram_size % DIRTY_PAGE_SIZE)
		return -EINVAL;
	rc = stat_ram(ram_path, ram_size, &f);
	if (rc < 0)
		return rc;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->pid = pid;
	t->size = ram_size;
	t->pagemap = -1;
	/* pagemap first: the fd pins this process's address space, so a pid reused
	 * after it cannot be what the probe below approves. */
	t->pagemap = open_pagemap(pid);
	if (t->pagemap < 0) {
		rc = t->pagemap;
		goto out;
	}
	rc = find_mapping(t, ram_path, &f);
	if (rc < 0)
		goto out;
	log_info("dirty: tracking %" PRIu64 " MiB of guest RAM of QEMU pid %d (%s at 0x%" PRIx64
		 ")",
		 ram_size >> 20, (int)pid, ram_path, t->addr);
	*out = t;
	return 0;
out:
	dirty_close(t);
	return rc;
}

void dirty_close(struct dirty_tracker *t)
{
	if (!t)
		return;
	if (t->pagemap >= 0)
		close(t->pagemap);
	free(t);
}

static int scan_error(const struct dirty_tracker *t, int rc)
{
	if (rc == -EPERM) {
		log_err("dirty: guest RAM of QEMU pid %d is no longer registered for dirty "
			"tracking; its dirty log is lost, resynchronise all RAM",
			(int)t->pid);
		return -ENOTSUP;
	}
	if (rc == -ESRCH)
		log_warn("dirty: QEMU pid %d has exited; no dirty log to read", (int)t->pid);
	else
		log_err("dirty: PAGEMAP_SCAN on QEMU pid %d failed: %s", (int)t->pid,
			strerror(-rc));
	return rc;
}

/* Add the n regions the kernel returned to `into`; the number of pages, or -EIO if
 * the kernel answered outside the range asked (never expected). */
static int64_t add_regions(const struct dirty_tracker *t, size_t n, struct dirty_set *into)
{
	int64_t pages = 0;

	for (size_t i = 0; i < n; i++) {
		const struct page_region *pr = &t->vec[i];
		if (pr->start < t->addr || pr->end <= pr->start)
			return -EIO;
		uint64_t first = (pr->start - t->addr) / DIRTY_PAGE_SIZE;
		uint64_t count = (pr->end - pr->start) / DIRTY_PAGE_SIZE;
		if (dirty_set_add(into, first, count) < 0)
			return -EIO;
		pages += (int64_t)count;
	}
	return pages;
}

int64_t dirty_scan(struct dirty_tracker *t, struct dirty_set *into)
{
	uint64_t start = t->addr, end = t->addr + t->size;
	int64_t pages = 0;

	if (dirty_set_npages(into) != t->size / DIRTY_PAGE_SIZE)
		return -EINVAL;
	/* A full output buffer ends the walk early: walk_end says where to resume. The
	 * pages after walk_end were neither reported nor protected again. */
	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
			.start = start,
			.end = end,
			.vec = (uintptr_t)t->vec,
			.vec_len = SCAN_VEC_LEN,
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};
		long n = ioctl(t->pagemap, PAGEMAP_SCAN, &a);
		if (n < 0)
			return scan_error(t, -errno);
		int64_t got = add_regions(t, (size_t)n, into);
		if (got < 0 || a.walk_end <= start || a.walk_end > end) {
			log_err("dirty: PAGEMAP_SCAN on QEMU pid %d answered outside the range "
				"asked; the dirty log cannot be trusted",
				(int)t->pid);
			return -EIO;
		}
		pages += got;
		start = a.walk_end;
	}
	return pages;
}

uint64_t dirty_npages(const struct dirty_tracker *t)
{
	return t->size / DIRTY_PAGE_SIZE;
}

uint64_t dirty_qemu_addr(const struct dirty_tracker *t)
{
	return t->addr;
}
