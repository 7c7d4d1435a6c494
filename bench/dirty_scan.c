/* dirty_scan.c - time of one dirty scan (read and clear the log: dirty_scan(), i.e.
 * PAGEMAP_SCAN with write-protect) of a 1 GiB guest RAM, as the primary does at
 * every checkpoint. Target (issue 4): <= 0.5 ms for 1 GiB.
 *
 *   build/bench/dirty_scan [ram_MiB (1024)] [runs (500)]
 *
 * The "guest" is a child process mapping a RAM file in /dev/shm shared and
 * registered exactly as libcolo-uffd.so registers QEMU's (checkpoint/dirty_wp.h).
 * Before each timed scan it writes k pages at random places (k = 0, 64, 256 = 1 MiB,
 * 4096 = 16 MiB); the scan is timed from the agent's side. Two RAM states:
 *   populated  every page written once before (a guest that has run a while)
 *   sparse     never-touched pages (every PTE holds a write-protect marker)
 * Prints min/p50/p99/max in ms; asserts nothing. The host's other load shows in
 * p50 and above: min is the kernel's own cost. */
#include <errno.h>
#include <fcntl.h>
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

#define PS DIRTY_PAGE_SIZE
#define MAX_BATCH 1024 /* u64 per message */

struct guest {
	pid_t pid;
	int sock;
	char path[64];
	uint64_t size;
};

static _Noreturn void die(const char *what, int err)
{
	fprintf(stderr, "dirty_scan: %s: %s\n", what, strerror(err));
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Child: map, register, then write one byte in each pfn of each message. */
static _Noreturn void guest_main(int sock, const char *path, uint64_t size, bool populate)
{
	const char *step = "open";
	uint64_t msg[MAX_BATCH];
	int fd = open(path, O_RDWR);
	volatile uint8_t *ram = MAP_FAILED;
	int uffd = -1;

	if (fd >= 0)
		ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ram == MAP_FAILED)
		die("guest mmap", errno);
	if (populate)
		for (uint64_t off = 0; off < size; off += PS)
			ram[off] = 1;
	uffd = dirty_wp_open(&step);
	if (uffd < 0 || dirty_wp_protect(uffd, (void *)ram, size, &step) < 0)
		die(step, errno);
	if (send(sock, "r", 1, 0) != 1)
		_exit(1);
	for (;;) {
		ssize_t n = recv(sock, msg, sizeof(msg), 0);
		if (n <= 0)
			_exit(0);
		for (size_t i = 0; i < (size_t)n / 8; i++)
			ram[msg[i] * PS]++;
		if (send(sock, "k", 1, 0) != 1)
			_exit(1);
	}
}

static void guest_start(struct guest *g, uint64_t size, bool populate)
{
	int sv[2], fd;
	char c = 0;

	g->size = size;
	snprintf(g->path, sizeof(g->path), "/dev/shm/colo-bench-dirty-XXXXXX");
	fd = mkstemp(g->path);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		die("RAM file in /dev/shm", errno);
	close(fd);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		die("socketpair", errno);
	g->pid = fork();
	if (g->pid < 0)
		die("fork", errno);
	if (g->pid == 0) {
		close(sv[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		guest_main(sv[1], g->path, size, populate);
	}
	close(sv[1]);
	g->sock = sv[0];
	if (recv(g->sock, &c, 1, 0) != 1 || c != 'r')
		die("guest did not start", EIO);
}

static void guest_stop(struct guest *g)
{
	close(g->sock);
	waitpid(g->pid, NULL, 0);
	unlink(g->path);
}

static void guest_write(struct guest *g, const uint64_t *pfns, size_t n)
{
	char ack;
	for (size_t done = 0; done < n;) {
		size_t k = n - done < MAX_BATCH ? n - done : MAX_BATCH;
		if (send(g->sock, pfns + done, k * 8, 0) != (ssize_t)(k * 8) ||
		    recv(g->sock, &ack, 1, 0) != 1)
			die("guest", EIO);
		done += k;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void run(struct guest *g, struct dirty_tracker *t, struct dirty_set *s, size_t k,
		int runs, const char *state)
{
	uint64_t *pfns = malloc((k ? k : 1) * sizeof(uint64_t));
	double *ms = malloc((size_t)runs * sizeof(double));
	unsigned seed = 42;
	uint64_t npages = g->size / PS;
	int64_t reported = 0;

	if (!pfns || !ms)
		die("malloc", ENOMEM);
	for (int r = 0; r < runs; r++) {
		for (size_t i = 0; i < k; i++)
			pfns[i] = ((uint64_t)rand_r(&seed) << 16 ^ (uint64_t)rand_r(&seed)) % npages;
		guest_write(g, pfns, k);
		dirty_set_clear(s);
		double t0 = now_ms();
		int64_t got = dirty_scan(t, s);
		ms[r] = now_ms() - t0;
		if (got < 0)
			die("dirty_scan", (int)-got);
		reported += got;
	}
	qsort(ms, (size_t)runs, sizeof(double), cmp_double);
	printf("%-10s %5zu pages (%5.2f MiB)  min %.3f  p50 %.3f  p99 %.3f  max %.3f ms  "
	       "(%.0f pages/scan)\n",
	       state, k, (double)k * PS / (1 << 20), ms[0], ms[runs / 2], ms[runs * 99 / 100],
	       ms[runs - 1], (double)reported / runs);
	free(pfns);
	free(ms);
}

static void bench_state(uint64_t size, int runs, bool populate)
{
	static const size_t dirty[] = { 0, 64, 256, 4096 };
	struct dirty_tracker *t = NULL;
	struct dirty_set *s = NULL;
	struct guest g;
	int rc;

	guest_start(&g, size, populate);
	rc = dirty_open(g.pid, g.path, size, &t);
	if (rc < 0)
		die("dirty_open", -rc);
	rc = dirty_set_new(size / PS, &s);
	if (rc < 0)
		die("dirty_set_new", -rc);
	dirty_scan(t, s); /* the log since registration: not a checkpoint */
	for (size_t i = 0; i < sizeof(dirty) / sizeof(dirty[0]); i++)
		run(&g, t, s, dirty[i], runs, populate ? "populated" : "sparse");
	dirty_set_free(s);
	dirty_close(t);
	guest_stop(&g);
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
	int runs = argc > 2 ? atoi(argv[2]) : 500;

	if (mib == 0 || runs < 1) {
		fprintf(stderr, "usage: dirty_scan [ram_MiB (1024)] [runs (500)]\n");
		return 2;
	}
	printf("dirty_scan: one dirty_scan() of %llu MiB of guest RAM, %d runs per line\n",
	       (unsigned long long)mib, runs);
	bench_state(mib << 20, runs, true);
	bench_state(mib << 20, runs, false);
	return 0;
}
