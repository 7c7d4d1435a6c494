/* colo-uffd.c - libcolo-uffd.so, loaded into QEMU with LD_PRELOAD: registers guest
 * RAM for userfaultfd write-protect in async mode, so the colo agent can read and
 * clear the dirty log from outside with PAGEMAP_SCAN (docs/dirty-tracking.md).
 *
 *   LD_PRELOAD=.../libcolo-uffd.so COLO_UFFD_RAM=/dev/shm/vm.ram qemu-system-x86_64 \
 *       -object memory-backend-file,id=ram0,size=128M,mem-path=/dev/shm/vm.ram,share=on \
 *       -machine memory-backend=ram0 ...
 *
 * Which mapping is RAM: a shared, writable mmap at offset 0 of the file named by
 * COLO_UFFD_RAM, compared by st_dev/st_ino (QEMU may create the file after we load,
 * so it is stat()ed at each candidate mmap, not at load time). Whoever starts QEMU
 * knows the path; guessing it from QEMU's command line (",," escapes, JSON -object,
 * -readconfig) inside QEMU would be fragile.
 *
 * Rules: never break QEMU. The real mmap's result and errno are returned unchanged;
 * any failure is one line on stderr ("colo-uffd: ... dirty tracking unavailable")
 * and QEMU carries on untracked. The agent then refuses to protect the VM: it
 * checks from outside that every page of the mapping is registered
 * (PM_SCAN_CHECK_WPASYNC), and finds this library's name in /proc/<pid>/maps to
 * say which of "not preloaded" or "preloaded but not registered" happened.
 *
 * The userfaultfd stays open for QEMU's lifetime: closing it would unregister the
 * RAM. Nobody reads it: in async mode the kernel resolves write faults itself.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../dirty_wp.h"

#define ENV_RAM "COLO_UFFD_RAM"

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef void *(*mmap64_fn)(void *, size_t, int, int, int, off64_t);

static mmap_fn real_mmap;
static mmap64_fn real_mmap64;
static char ram_path[PATH_MAX];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int uffd = -1;
static bool uffd_failed; /* say it once, do not retry on every mmap */

/* One line on stderr without stdio: we may be inside any libc call of QEMU's. */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	memcpy(line, "colo-uffd: ", 11);
	va_start(ap, fmt);
	n = vsnprintf(line + 11, sizeof(line) - 12, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n = 11 + (n < (int)sizeof(line) - 12 ? n : (int)sizeof(line) - 13);
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

/* Before this runs (another library's constructor), mmap goes straight to the
 * kernel; resolving here, once and single-threaded, avoids dlsym() recursing into
 * mmap from inside our own wrapper. */
__attribute__((constructor)) static void colo_uffd_init(void)
{
	const char *p = getenv(ENV_RAM);

	real_mmap = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
	real_mmap64 = (mmap64_fn)dlsym(RTLD_NEXT, "mmap64");
	if (!p || !*p) {
		say(ENV_RAM " is not set (the RAM backend file); dirty tracking unavailable");
		return;
	}
	if (strlen(p) >= sizeof(ram_path)) {
		say(ENV_RAM " is too long; dirty tracking unavailable");
		return;
	}
	strcpy(ram_path, p);
}

static void *raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

/* The RAM mapping: shared, writable, from offset 0 of the file named in the env. */
static bool is_ram(size_t len, int prot, int flags, int fd, off_t off)
{
	struct stat fs, ps;
	int type = flags & MAP_TYPE;

	if (!ram_path[0] || fd < 0 || off != 0 || len == 0 || !(prot & PROT_WRITE) ||
	    (type != MAP_SHARED && type != MAP_SHARED_VALIDATE))
		return false;
	if (fstat(fd, &fs) < 0 || !S_ISREG(fs.st_mode) || stat(ram_path, &ps) < 0)
		return false;
	return fs.st_dev == ps.st_dev && fs.st_ino == ps.st_ino;
}

static void track(void *addr, size_t len)
{
	const char *step = "";
	int rc = 0, fd;

	pthread_mutex_lock(&lock);
	if (uffd < 0 && !uffd_failed) {
		rc = dirty_wp_open(&step);
		if (rc >= 0)
			uffd = rc;
		else
			uffd_failed = true;
	}
	fd = uffd;
	if (fd >= 0)
		rc = dirty_wp_protect(fd, addr, len, &step);
	pthread_mutex_unlock(&lock);
	if (rc < 0)
		say("%s failed for %s: %s; dirty tracking unavailable", step, ram_path,
		    strerror(-rc));
	else if (fd >= 0)
		say("tracking writes to %s (%zu MiB at %p, userfaultfd %d)", ram_path, len >> 20,
		    addr, fd);
}

static void after_mmap(void *p, size_t len, int prot, int flags, int fd, off_t off)
{
	int saved = errno;

	if (p != MAP_FAILED && is_ram(len, prot, flags, fd, off))
		track(p, len);
	errno = saved;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = real_mmap ? real_mmap(addr, len, prot, flags, fd, off)
			    : raw_mmap(addr, len, prot, flags, fd, off);
	after_mmap(p, len, prot, flags, fd, off);
	return p;
}

/* QEMU 7.2 calls mmap64 (glibc has it as an alias of mmap on 64-bit). */
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	void *p = real_mmap64 ? real_mmap64(addr, len, prot, flags, fd, off)
			      : raw_mmap(addr, len, prot, flags, fd, (off_t)off);
	after_mmap(p, len, prot, flags, fd, (off_t)off);
	return p;
}
