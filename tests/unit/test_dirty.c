/* Unit tests of the dirty-page tracker (checkpoint/dirty.c) without QEMU.
 *
 * A stand-in for QEMU, the "guest": a child process that maps a RAM file in
 * /dev/shm shared (as memory-backend-file,share=on does) and registers it either
 * with the code libcolo-uffd.so uses (checkpoint/dirty_wp.h), or by running this
 * binary again with the real build/libcolo-uffd.so in LD_PRELOAD. The test process
 * scans it from outside through /proc/<pid>/pagemap, as the agent does, and tells
 * the guest over a socket which pages to write. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/dirty.h"
#include "checkpoint/dirty_wp.h"
#include "checkpoint/ram.h"
#include "tests/harness/test.h"

#define PS DIRTY_PAGE_SIZE
#define MIB (1ull << 20)
#define MAX_MSG 1024 /* u64 words per message to the guest */
#define HELPER_ENV "COLO_TEST_DIRTY_HELPER"

/* How the guest registers its RAM. */
enum reg {
	REG_WP,		   /* dirty_wp_open() + dirty_wp_protect(), like the library */
	REG_NONE,	   /* not at all: QEMU started without the library */
	REG_PRELOAD,	   /* libcolo-uffd.so, the guest calls mmap() */
	REG_PRELOAD64,	   /* libcolo-uffd.so, the guest calls mmap64() */
	REG_PRELOAD_OTHER, /* libcolo-uffd.so, COLO_UFFD_RAM names another file */
	REG_PRELOAD_NOENV, /* libcolo-uffd.so, COLO_UFFD_RAM unset */
};

/* Messages to the guest: op, then arguments. Each is answered with one byte. */
enum op {
	OP_WRITE = 1, /* pfns...: write one byte in each */
	OP_CHURN,     /* seed: write pseudo-random pages until OP_STOP */
	OP_STOP,
	OP_DROP_UFFD, /* close the userfaultfd: the registration goes with it */
};

struct guest {
	pid_t pid;
	int sock;
	uint64_t size;
	char path[64]; /* the RAM file */
	char log[64];  /* the guest's stderr (preload modes) */
};

/* Files to remove however the test ends (REQUIRE exits). */
static char cleanup_paths[8][64];

static void cleanup(void)
{
	for (size_t i = 0; i < 8; i++)
		if (cleanup_paths[i][0])
			unlink(cleanup_paths[i]);
}

static void remember(const char *path)
{
	static bool registered;
	if (!registered && atexit(cleanup) == 0)
		registered = true;
	for (size_t i = 0; i < 8; i++) {
		if (!cleanup_paths[i][0]) {
			snprintf(cleanup_paths[i], sizeof(cleanup_paths[i]), "%s", path);
			return;
		}
	}
}

static void make_file(char *path, size_t len, const char *tmpl, uint64_t size)
{
	snprintf(path, len, "%s", tmpl);
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	remember(path);
	REQUIRE(ftruncate(fd, (off_t)size) == 0);
	close(fd);
}

/* ---- the guest (child side) ------------------------------------------------------ */

static int guest_uffd = -1;

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Write 8-byte counters at random places until a message (OP_STOP) arrives. */
static void churn(int sock, volatile uint8_t *ram, uint64_t npages, uint64_t seed)
{
	uint64_t s = seed | 1, ctr = 0, msg[MAX_MSG];

	if (send(sock, "k", 1, 0) != 1)
		_exit(1);
	for (;;) {
		for (int i = 0; i < 256; i++) {
			uint64_t x = xorshift(&s);
			uint64_t off = (x % npages) * PS + ((x >> 40) % (PS / 8)) * 8;
			*(volatile uint64_t *)(ram + off) = ++ctr;
		}
		if (recv(sock, msg, sizeof(msg), MSG_DONTWAIT) > 0)
			return;
	}
}

static _Noreturn void serve(int sock, volatile uint8_t *ram, uint64_t npages)
{
	uint64_t msg[MAX_MSG];

	for (;;) {
		ssize_t n = recv(sock, msg, sizeof(msg), 0);
		if (n < 8)
			_exit(0);
		size_t cnt = (size_t)n / 8;
		if (msg[0] == OP_WRITE) {
			for (size_t i = 1; i < cnt; i++)
				if (msg[i] < npages)
					ram[msg[i] * PS + 8]++;
		} else if (msg[0] == OP_CHURN) {
			churn(sock, ram, npages, cnt > 1 ? msg[1] : 1);
		} else if (msg[0] == OP_DROP_UFFD) {
			close(guest_uffd);
			guest_uffd = -1;
		}
		if (send(sock, "k", 1, 0) != 1)
			_exit(1);
	}
}

static _Noreturn void guest_main(int sock, const char *path, uint64_t size, enum reg reg)
{
	const char *step = "open";
	int fd = open(path, O_RDWR);
	void *ram = MAP_FAILED;
	char status = 'x';

	if (fd >= 0)
		ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ram != MAP_FAILED && reg == REG_WP) {
		guest_uffd = dirty_wp_open(&step);
		if (guest_uffd < 0 || dirty_wp_protect(guest_uffd, ram, size, &step) < 0)
			ram = MAP_FAILED;
	}
	if (ram != MAP_FAILED)
		status = 'r';
	else
		fprintf(stderr, "guest: %s: %s\n", step, strerror(errno));
	if (send(sock, &status, 1, 0) != 1 || status != 'r')
		_exit(1);
	serve(sock, ram, size / PS);
}

/* This binary run again with libcolo-uffd.so preloaded: the helper maps the RAM
 * through the library's mmap/mmap64 and then serves like a forked guest. Runs
 * before main(), so the harness never starts. */
__attribute__((constructor)) static void preload_helper(void)
{
	const char *env = getenv(HELPER_ENV);
	char path[64];
	unsigned long long size;
	int sock, mode;

	if (!env)
		return;
	if (sscanf(env, "%d %llu %d %63s", &sock, &size, &mode, path) != 4)
		_exit(2);
	int fd = open(path, O_RDWR);
	void *ram = mode == REG_PRELOAD64
			    ? mmap64(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
			    : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char status = ram != MAP_FAILED ? 'r' : 'x';
	if (send(sock, &status, 1, 0) != 1 || status != 'r')
		_exit(1);
	serve(sock, ram, size / PS);
}

/* ---- the guest (parent side) ----------------------------------------------------- */

static void preload_lib(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	REQUIRE(n > 0);
	exe[n] = '\0';
	/* build/tests/test_dirty -> build/libcolo-uffd.so (build/san/... with SAN=1) */
	snprintf(out, len, "%s/../libcolo-uffd.so", dirname(exe));
	if (access(out, R_OK) != 0)
		fprintf(stderr, "    %s is missing: run make first\n", out);
	REQUIRE(access(out, R_OK) == 0);
}

static _Noreturn void exec_helper(struct guest *g, int sock, enum reg reg, const char *lib)
{
	char helper[160], preload[PATH_MAX + 16], ram[112], asan[256], other[80];
	char *envp[6];
	int n = 0;

	snprintf(helper, sizeof(helper), HELPER_ENV "=%d %llu %d %s", sock,
		 (unsigned long long)g->size, (int)reg, g->path);
	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", lib);
	/* ASan wants to be first in the library list; the library is not instrumented. */
	snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
		 getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "",
		 getenv("ASAN_OPTIONS") ? ":" : "");
	snprintf(other, sizeof(other), "%s.other", g->path);
	snprintf(ram, sizeof(ram), "COLO_UFFD_RAM=%s", reg == REG_PRELOAD_OTHER ? other : g->path);
	envp[n++] = helper;
	envp[n++] = preload;
	envp[n++] = asan;
	if (reg != REG_PRELOAD_NOENV)
		envp[n++] = ram;
	envp[n] = NULL;
	int log = open(g->log, O_WRONLY | O_TRUNC);
	if (log >= 0)
		dup2(log, STDERR_FILENO);
	execle("/proc/self/exe", "test_dirty-helper", (char *)NULL, envp);
	_exit(127);
}

static void guest_start(struct guest *g, uint64_t size, enum reg reg)
{
	char lib[PATH_MAX] = "";
	int sv[2];
	char status = 0;

	*g = (struct guest){ .size = size, .sock = -1 };
	make_file(g->path, sizeof(g->path), "/dev/shm/colo-test-dirty-XXXXXX", size);
	make_file(g->log, sizeof(g->log), "/tmp/colo-test-dirty-log-XXXXXX", 0);
	if (reg >= REG_PRELOAD)
		preload_lib(lib, sizeof(lib));
	if (reg == REG_PRELOAD_OTHER) {
		char other[80];
		snprintf(other, sizeof(other), "%s.other", g->path);
		int fd = open(other, O_CREAT | O_RDWR, 0600);
		REQUIRE(fd >= 0);
		remember(other);
		close(fd);
	}
	REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	fflush(NULL);
	g->pid = fork();
	REQUIRE(g->pid >= 0);
	if (g->pid == 0) {
		close(sv[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (reg >= REG_PRELOAD)
			exec_helper(g, sv[1], reg, lib);
		guest_main(sv[1], g->path, size, reg);
	}
	close(sv[1]);
	g->sock = sv[0];
	REQUIRE(recv(g->sock, &status, 1, 0) == 1 && status == 'r');
}

static void guest_cmd(struct guest *g, const uint64_t *msg, size_t words)
{
	char ack = 0;
	REQUIRE(send(g->sock, msg, words * 8, 0) == (ssize_t)(words * 8));
	REQUIRE(recv(g->sock, &ack, 1, 0) == 1 && ack == 'k');
}

static void guest_op(struct guest *g, enum op op, uint64_t arg)
{
	uint64_t msg[2] = { op, arg };
	guest_cmd(g, msg, 2);
}

static void guest_write(struct guest *g, const uint64_t *pfns, size_t n)
{
	uint64_t msg[MAX_MSG];
	for (size_t done = 0; done < n;) {
		size_t k = n - done < MAX_MSG - 1 ? n - done : MAX_MSG - 1;
		msg[0] = OP_WRITE;
		memcpy(msg + 1, pfns + done, k * 8);
		guest_cmd(g, msg, k + 1);
		done += k;
	}
}

static void guest_stop(struct guest *g)
{
	if (g->sock >= 0)
		close(g->sock); /* EOF: the guest exits */
	if (g->pid > 0)
		waitpid(g->pid, NULL, 0);
	g->sock = -1;
	g->pid = 0;
}

static void guest_log(const struct guest *g, char *buf, size_t len)
{
	int fd = open(g->log, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;
	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

/* ---- helpers --------------------------------------------------------------------- */

static void require_kernel(void)
{
	const char *step;
	int fd = dirty_wp_open(&step);
	if (fd == -EINVAL || fd == -EOPNOTSUPP || fd == -ENOSYS)
		test_skip("kernel lacks userfaultfd async write-protect (Linux >= 6.7): %s", step);
	REQUIRE(fd >= 0);
	close(fd);

	static char page[PS] __attribute__((aligned(PS)));
	struct pm_scan_arg a = { .size = sizeof(a), .start = (uintptr_t)page,
				 .end = (uintptr_t)page + PS, .category_mask = PAGE_IS_WRITTEN,
				 .return_mask = PAGE_IS_WRITTEN };
	int pm = open("/proc/self/pagemap", O_RDONLY);
	REQUIRE(pm >= 0);
	int rc = ioctl(pm, PAGEMAP_SCAN, &a) < 0 ? -errno : 0;
	close(pm);
	if (rc == -ENOTTY)
		test_skip("kernel lacks PAGEMAP_SCAN (Linux >= 6.7)");
	REQUIRE(rc == 0);
}

/* Run fn with stderr going to a buffer (and echoed), to check the log line. */
struct capture {
	int saved, fd;
	char path[64];
};

static void capture_begin(struct capture *c)
{
	make_file(c->path, sizeof(c->path), "/tmp/colo-test-dirty-err-XXXXXX", 0);
	c->fd = open(c->path, O_RDWR);
	REQUIRE(c->fd >= 0);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	dup2(c->fd, STDERR_FILENO);
}

static void capture_end(struct capture *c, char *buf, size_t len)
{
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	ssize_t n = pread(c->fd, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(c->fd);
	fprintf(stderr, "%s", buf);
}

static struct dirty_tracker *attach(const struct guest *g)
{
	struct dirty_tracker *t = NULL;
	int rc = dirty_open(g->pid, g->path, g->size, &t);
	CHECK_EQ(rc, 0);
	REQUIRE(t);
	return t;
}

static struct dirty_set *new_set(uint64_t size)
{
	struct dirty_set *s = NULL;
	REQUIRE(dirty_set_new(size / PS, &s) == 0);
	return s;
}

/* The set holds exactly the n ascending, distinct pfns given. */
static void check_exact(struct dirty_set *s, const uint64_t *pfns, size_t n)
{
	uint64_t got[512], cursor = 0;
	size_t k, at = 0;

	CHECK_EQ(dirty_set_count(s), n);
	while ((k = dirty_set_pfns(s, &cursor, got, 512)) > 0) {
		for (size_t i = 0; i < k && at < n; i++, at++)
			if (got[i] != pfns[at]) {
				CHECK_EQ(got[i], pfns[at]);
				return;
			}
		if (k < 512)
			break;
	}
	CHECK_EQ(at, n);
}

/* Scan into a fresh set and check it holds exactly pfns. */
static void scan_expect(struct dirty_tracker *t, uint64_t size, const uint64_t *pfns, size_t n)
{
	struct dirty_set *s = new_set(size);
	CHECK_EQ(dirty_scan(t, s), (int64_t)n);
	check_exact(s, pfns, n);
	dirty_set_free(s);
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_scan_reports_exactly_the_written_pages(void)
{
	const uint64_t size = 64 * MIB;
	/* Singles, a run across a 64-page bitmap word, neighbours, the first page. */
	const uint64_t a[] = { 0, 1, 7, 60, 61, 62, 63, 64, 65, 66, 1000, 4096, 8191, 12345 };
	const uint64_t b[] = { 1, 2, 999, 16383 };
	struct guest g;

	require_kernel();
	guest_start(&g, size, REG_WP);
	struct dirty_tracker *t = attach(&g);
	CHECK_EQ(dirty_npages(t), size / PS);
	scan_expect(t, size, NULL, 0); /* registered before any write: nothing yet */
	guest_write(&g, a, sizeof(a) / 8);
	scan_expect(t, size, a, sizeof(a) / 8);
	scan_expect(t, size, NULL, 0); /* the scan cleared them */
	guest_write(&g, b, sizeof(b) / 8);
	guest_write(&g, b, sizeof(b) / 8); /* twice: still once */
	scan_expect(t, size, b, sizeof(b) / 8);
	dirty_close(t);
	guest_stop(&g);
}

static void test_scan_accumulates_into_the_set(void)
{
	const uint64_t size = 16 * MIB;
	const uint64_t a[] = { 3, 5 }, b[] = { 5, 9 }, all[] = { 3, 5, 9 };
	struct guest g;

	require_kernel();
	guest_start(&g, size, REG_WP);
	struct dirty_tracker *t = attach(&g);
	struct dirty_set *s = new_set(size);
	guest_write(&g, a, 2);
	CHECK_EQ(dirty_scan(t, s), 2);
	guest_write(&g, b, 2);
	CHECK_EQ(dirty_scan(t, s), 2); /* pages this scan found, 5 included */
	check_exact(s, all, 3);
	struct dirty_set *wrong = NULL;
	REQUIRE(dirty_set_new(size / PS + 1, &wrong) == 0);
	CHECK_EQ(dirty_scan(t, wrong), -EINVAL);
	dirty_set_free(wrong);
	dirty_set_free(s);
	dirty_close(t);
	guest_stop(&g);
}

static void test_unregistered_qemu_is_refused(void)
{
	struct guest g;
	struct capture c;
	struct dirty_tracker *t = NULL;
	char log[2048], want[160];

	require_kernel();
	guest_start(&g, 16 * MIB, REG_NONE);
	capture_begin(&c);
	int rc = dirty_open(g.pid, g.path, g.size, &t);
	capture_end(&c, log, sizeof(log));
	CHECK_EQ(rc, -ENOTSUP);
	CHECK(t == NULL);
	snprintf(want, sizeof(want),
		 "QEMU pid %d was started without libcolo-uffd.so (LD_PRELOAD); refusing to "
		 "start protection",
		 (int)g.pid);
	CHECK(strstr(log, want) != NULL);
	guest_stop(&g);
}

static void test_end_of_ram(void)
{
	const uint64_t size = 8 * MIB, n = size / PS;
	const uint64_t last[] = { n - 65, n - 64, n - 3, n - 2, n - 1 };
	struct guest g;

	require_kernel();
	guest_start(&g, size, REG_WP);
	struct dirty_tracker *t = attach(&g);
	guest_write(&g, last, 5);
	struct dirty_set *s = new_set(size);
	CHECK_EQ(dirty_scan(t, s), 5);
	check_exact(s, last, 5);
	struct stream_range r[4];
	uint64_t cursor = 0;
	CHECK_EQ(dirty_set_ranges(s, &cursor, r, 4), 2);
	CHECK(r[0].first == n - 65 && r[0].count == 2);
	CHECK(r[1].first == n - 3 && r[1].count == 3); /* the run ends at the last page */
	dirty_set_free(s);
	dirty_close(t);
	guest_stop(&g);
}

static void test_large_sparse_ram(void)
{
	const uint64_t size = 1024 * MIB, n = size / PS;
	uint64_t pfns[600];
	size_t k = 0;
	struct guest g;

	require_kernel();
	/* Spread over the whole GiB, both ends included: a sparse file, so only the
	 * written pages take memory. */
	for (uint64_t p = 0; p < n; p += 449)
		pfns[k++] = p;
	pfns[k++] = n - 1;
	REQUIRE(k <= 600);
	guest_start(&g, size, REG_WP);
	struct dirty_tracker *t = attach(&g);
	guest_write(&g, pfns, k);
	scan_expect(t, size, pfns, k);
	scan_expect(t, size, NULL, 0);
	guest_write(&g, pfns + 100, 3);
	scan_expect(t, size, pfns + 100, 3);
	dirty_close(t);
	guest_stop(&g);
}

static void test_more_regions_than_one_call_returns(void)
{
	/* Every other page: one region per page, more than the tracker's buffer of
	 * 4096 regions, so the scan must resume at walk_end. */
	const uint64_t size = 64 * MIB, n = size / PS;
	static uint64_t odd[8192], all[16384];
	struct guest g;

	require_kernel();
	for (uint64_t i = 0; i < n / 2; i++)
		odd[i] = 2 * i + 1;
	for (uint64_t i = 0; i < n; i++)
		all[i] = i;
	guest_start(&g, size, REG_WP);
	struct dirty_tracker *t = attach(&g);
	guest_write(&g, odd, n / 2);
	scan_expect(t, size, odd, n / 2);
	guest_write(&g, all, n); /* all of RAM, like the first scan after a boot */
	scan_expect(t, size, all, n);
	scan_expect(t, size, NULL, 0);
	dirty_close(t);
	guest_stop(&g);
}

static void copy_pages(uint8_t *copy, const struct ram_map *m, const struct dirty_set *s)
{
	uint64_t pfns[256], cursor = 0;
	size_t k;

	do {
		k = dirty_set_pfns(s, &cursor, pfns, 256);
		for (size_t i = 0; i < k; i++)
			memcpy(copy + pfns[i] * PS, ram_map_page(m, pfns[i]), PS);
	} while (k == 256);
}

/* The pre-copy property: copy what each scan reports while the guest keeps writing;
 * once it stops and a last scan is copied, the copy equals RAM. A write lost
 * between a scan and its re-protection would leave a difference. */
static void test_no_write_lost_while_running(void)
{
	const uint64_t size = 16 * MIB, n = size / PS;
	struct ram_map *m = NULL;
	struct guest g;

	require_kernel();
	guest_start(&g, size, REG_WP);
	struct dirty_tracker *t = attach(&g);
	struct dirty_set *s = new_set(size);
	REQUIRE(ram_map_open(g.path, size, RAM_READ, &m) == 0);
	uint8_t *copy = malloc(size);
	REQUIRE(copy);
	CHECK_EQ(dirty_scan(t, s), 0);
	memcpy(copy, ram_map_base(m), size);
	guest_op(&g, OP_CHURN, 12345);
	/* Scan for 300 ms while the guest writes (pausing a little so it gets ahead),
	 * then once more with the guest stopped. */
	int64_t seen = 0, rounds = 0;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (bool last = false;; rounds++) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!last && (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >= 300) {
			guest_op(&g, OP_STOP, 0);
			last = true;
		}
		dirty_set_clear(s);
		int64_t got = dirty_scan(t, s);
		REQUIRE(got >= 0);
		seen += got;
		copy_pages(copy, m, s);
		if (last)
			break;
		usleep(200);
	}
	fprintf(stderr, "    %lld pages reported by %lld scans\n", (long long)seen, (long long)rounds);
	CHECK(seen > (int64_t)n); /* the guest did write while we scanned */
	CHECK(memcmp(copy, ram_map_base(m), size) == 0);
	free(copy);
	ram_map_close(m);
	dirty_set_free(s);
	dirty_close(t);
	guest_stop(&g);
}

static void test_agent_writes_are_not_guest_writes(void)
{
	const uint64_t size = 8 * MIB;
	const uint64_t a[] = { 10 };
	struct ram_map *m = NULL;
	struct guest g;

	require_kernel();
	guest_start(&g, size, REG_WP);
	struct dirty_tracker *t = attach(&g);
	guest_write(&g, a, 1); /* present in QEMU's page tables too */
	scan_expect(t, size, a, 1);
	REQUIRE(ram_map_open(g.path, size, RAM_WRITE, &m) == 0);
	memset(ram_map_page(m, 10), 0xab, PS); /* applying a checkpoint */
	memset(ram_map_page(m, 11), 0xcd, PS);
	scan_expect(t, size, NULL, 0);
	guest_write(&g, a, 1); /* and the guest writing after it is seen */
	scan_expect(t, size, a, 1);
	ram_map_close(m);
	dirty_close(t);
	guest_stop(&g);
}

static void test_lost_registration_is_an_error(void)
{
	const uint64_t size = 8 * MIB;
	struct guest g;

	require_kernel();
	guest_start(&g, size, REG_WP);
	struct dirty_tracker *t = attach(&g);
	struct dirty_set *s = new_set(size);
	guest_op(&g, OP_DROP_UFFD, 0); /* closing the uffd unregisters the RAM */
	CHECK_EQ(dirty_scan(t, s), -ENOTSUP);
	guest_stop(&g);
	CHECK_EQ(dirty_scan(t, s), -ESRCH); /* QEMU gone */
	dirty_set_free(s);
	dirty_close(t);
}

static void test_wrong_file_or_size_is_refused(void)
{
	const uint64_t size = 8 * MIB;
	struct dirty_tracker *t = NULL;
	char other[64];
	struct guest g;

	require_kernel();
	guest_start(&g, size, REG_WP);
	CHECK_EQ(dirty_open(g.pid, g.path, size * 2, &t), -EINVAL);
	make_file(other, sizeof(other), "/dev/shm/colo-test-dirty-other-XXXXXX", size);
	CHECK_EQ(dirty_open(g.pid, other, size, &t), -ENOENT); /* not mapped by the guest */
	CHECK_EQ(dirty_open(g.pid, "/nonexistent/ram", size, &t), -ENOENT);
	CHECK_EQ(dirty_open(g.pid, g.path, size + 1, &t), -EINVAL);
	CHECK_EQ(dirty_open(0, g.path, size, &t), -EINVAL);
	CHECK(t == NULL);
	pid_t gone = g.pid;
	guest_stop(&g);
	CHECK_EQ(dirty_open(gone, g.path, size, &t), -ESRCH);
}

static void preload_case(enum reg reg)
{
	const uint64_t size = 32 * MIB;
	const uint64_t a[] = { 0, 77, 8191 };
	char log[4096];
	struct guest g;

	require_kernel();
	guest_start(&g, size, reg);
	struct dirty_tracker *t = attach(&g);
	scan_expect(t, size, NULL, 0);
	guest_write(&g, a, 3);
	scan_expect(t, size, a, 3);
	dirty_close(t);
	guest_stop(&g);
	guest_log(&g, log, sizeof(log));
	fprintf(stderr, "%s", log);
	CHECK(strstr(log, "colo-uffd: tracking writes to ") != NULL);
}

static void test_preload_library_mmap(void)
{
	preload_case(REG_PRELOAD);
}

static void test_preload_library_mmap64(void)
{
	preload_case(REG_PRELOAD64);
}

static void preload_refused(enum reg reg, const char *guest_says)
{
	struct dirty_tracker *t = NULL;
	struct capture c;
	char log[4096];
	struct guest g;
	const uint64_t a[] = { 5 };

	require_kernel();
	guest_start(&g, 8 * MIB, reg);
	guest_write(&g, a, 1); /* the mapping works: QEMU is not broken */
	capture_begin(&c);
	int rc = dirty_open(g.pid, g.path, g.size, &t);
	capture_end(&c, log, sizeof(log));
	CHECK_EQ(rc, -ENOTSUP);
	CHECK(strstr(log, "has libcolo-uffd.so loaded but its mapping of") != NULL);
	CHECK(strstr(log, "refusing to start protection") != NULL);
	guest_stop(&g);
	guest_log(&g, log, sizeof(log));
	fprintf(stderr, "%s", log);
	CHECK(strstr(log, guest_says) != NULL);
	CHECK(strstr(log, "tracking writes") == NULL);
}

static void test_preload_other_file_is_refused(void)
{
	preload_refused(REG_PRELOAD_OTHER, ""); /* the library has nothing to say */
}

static void test_preload_without_env_is_refused(void)
{
	preload_refused(REG_PRELOAD_NOENV,
			"colo-uffd: COLO_UFFD_RAM is not set (the RAM backend file); dirty "
			"tracking unavailable");
}

static const struct test tests[] = {
	TEST(test_scan_reports_exactly_the_written_pages),
	TEST(test_scan_accumulates_into_the_set),
	TEST(test_unregistered_qemu_is_refused),
	TEST(test_end_of_ram),
	TEST(test_large_sparse_ram),
	TEST(test_more_regions_than_one_call_returns),
	TEST(test_no_write_lost_while_running),
	TEST(test_agent_writes_are_not_guest_writes),
	TEST(test_lost_registration_is_an_error),
	TEST(test_wrong_file_or_size_is_refused),
	TEST(test_preload_library_mmap),
	TEST(test_preload_library_mmap64),
	TEST(test_preload_other_file_is_refused),
	TEST(test_preload_without_env_is_refused),
	{ 0 },
};

TEST_MAIN(tests)
