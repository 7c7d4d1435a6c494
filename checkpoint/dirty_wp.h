/* dirty_wp.h - the kernel interface of dirty tracking (docs/dirty-tracking.md),
 * shared by the three places that touch it:
 *   - checkpoint/preload/colo-uffd.c, inside QEMU: dirty_wp_open() + dirty_wp_protect()
 *     register guest RAM for userfaultfd write-protect in async mode;
 *   - checkpoint/dirty.c, in the agent: PAGEMAP_SCAN on /proc/<qemu>/pagemap;
 *   - tests and benches, which register a mapping exactly as QEMU's library does.
 *
 * Internal header, not an API: the functions are static inline because the preload
 * library is built on its own (no sanitizers, not linked with libcheckpoint.a) and
 * must share this code without sharing an object file.
 *
 * Debian 12's 6.1 UAPI headers predate PAGEMAP_SCAN and WP_ASYNC (Linux 6.7); the
 * definitions below are copied from the Linux UAPI (include/uapi/linux/fs.h and
 * userfaultfd.h) and used only when the system headers lack them. Whether the
 * running kernel has them is decided at run time (EINVAL / ENOTTY).
 */
#ifndef COLO_CHECKPOINT_DIRTY_WP_H
#define COLO_CHECKPOINT_DIRTY_WP_H

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#ifndef PAGEMAP_SCAN
struct page_region {
	uint64_t start;
	uint64_t end; /* exclusive */
	uint64_t categories;
};

struct pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end; /* written by the kernel: where the walk stopped */
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#endif

_Static_assert(sizeof(struct pm_scan_arg) == 96, "struct pm_scan_arg as in the Linux UAPI");
_Static_assert(sizeof(struct page_region) == 24, "struct page_region as in the Linux UAPI");

/* Everything the tracking needs: async write-protect (the kernel resolves the fault
 * itself and records the page as written; nobody reads the uffd), on shmem-backed
 * memory (memory-backend-file, share=on), including pages never touched yet. */
#define DIRTY_WP_FEATURES \
	(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_UNPOPULATED)

/* A userfaultfd from the syscall, or from /dev/userfaultfd where a seccomp filter or
 * vm.unprivileged_userfaultfd=0 refuses the syscall. User-mode-only is the last resort:
 * in async mode the kernel never delivers a fault to the uffd, so kernel-mode writes
 * (a read() into guest RAM) are tracked all the same. Returns an fd or -errno. */
static inline int dirty_wp_new_uffd(void)
{
	const int flags = O_CLOEXEC | O_NONBLOCK;
	int fd = (int)syscall(SYS_userfaultfd, flags);
	if (fd >= 0)
		return fd;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
		close(dev);
		if (fd >= 0)
			return fd;
	}
	fd = (int)syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
	return fd >= 0 ? fd : -errno;
}

/* Open a userfaultfd with the async write-protect features. Returns the fd, or
 * -errno with *step naming the call that failed (for the one log line). */
static inline int dirty_wp_open(const char **step)
{
	struct uffdio_api api = { .api = UFFD_API, .features = DIRTY_WP_FEATURES };
	int rc, fd;

	*step = "userfaultfd()";
	fd = dirty_wp_new_uffd();
	if (fd < 0)
		return fd;
	/* A kernel without one of the features refuses the whole call with EINVAL. */
	*step = "UFFDIO_API with WP_ASYNC|WP_HUGETLBFS_SHMEM|WP_UNPOPULATED (needs Linux >= 6.7)";
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		rc = -errno;
		goto out;
	}
	if ((api.features & DIRTY_WP_FEATURES) != DIRTY_WP_FEATURES) {
		rc = -EOPNOTSUPP;
		goto out;
	}
	return fd;
out:
	close(fd);
	return rc;
}

/* Register [addr, addr + len) (page-aligned) on uffd for write-protect and protect
 * it all: from here on, the first write to each page marks it PAGE_IS_WRITTEN.
 * 0, or -errno with *step naming the call that failed. */
static inline int dirty_wp_protect(int uffd, void *addr, size_t len, const char **step)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	*step = "UFFDIO_REGISTER (write-protect)";
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	/* With WP_UNPOPULATED this also marks pages not faulted in yet, so a page QEMU
	 * has never touched is reported the first time it is written. */
	*step = "UFFDIO_WRITEPROTECT";
	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0) {
		int rc = -errno;
		/* Registered but unprotected would look active and report nothing. */
		ioctl(uffd, UFFDIO_UNREGISTER, &reg.range);
		return rc;
	}
	return 0;
}

#endif
