/* dirty_rate.c - the dirty rate of a running QEMU as the agent sees it: attach to
 * its RAM like the agent (dirty_open), take the log since QEMU mapped its RAM, then
 * scan once a second. Used by tests/integration/test-dirty.sh; handy by hand.
 *
 *   build/bench/dirty_rate PID RAM_FILE RAM_MiB [SECONDS (5)]
 *
 * Prints "first scan: ..." (pages written since QEMU started), one line per
 * second, and at the end "rate: N pages/s (X MiB/s) over S s, scan p50 ...".
 * Exit status: 0, 3 when tracking is not active (QEMU started without
 * libcolo-uffd.so: the agent would refuse to protect it), 1 on other errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint/dirty.h"
#include "lib/log.h"

#define MAX_SECONDS 3600

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* One timed scan into a cleared set; pages, or exits on error. */
static int64_t scan(struct dirty_tracker *t, struct dirty_set *s, double *ms)
{
	dirty_set_clear(s);
	double t0 = now_s();
	int64_t got = dirty_scan(t, s);
	*ms = (now_s() - t0) * 1e3;
	if (got < 0) {
		fprintf(stderr, "dirty_rate: scan failed: %s\n", strerror((int)-got));
		exit(1);
	}
	return got;
}

static void measure(struct dirty_tracker *t, struct dirty_set *s, int seconds)
{
	double ms[MAX_SECONDS], first_ms;
	int64_t first = scan(t, s, &first_ms), total = 0;
	double start = now_s();
	struct timespec next;

	printf("first scan: %lld pages (%.1f MiB) written since QEMU mapped its RAM, %.3f ms\n",
	       (long long)first, (double)first * DIRTY_PAGE_SIZE / (1 << 20), first_ms);
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (int i = 0; i < seconds; i++) {
		next.tv_sec++;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		int64_t got = scan(t, s, &ms[i]);
		total += got;
		printf("  %2d s: %6lld pages  scan %.3f ms\n", i + 1, (long long)got, ms[i]);
	}
	double elapsed = now_s() - start;
	qsort(ms, (size_t)seconds, sizeof(double), cmp_double);
	printf("rate: %.0f pages/s (%.2f MiB/s) over %.1f s, scan p50 %.3f ms max %.3f ms\n",
	       (double)total / elapsed, (double)total * DIRTY_PAGE_SIZE / (1 << 20) / elapsed,
	       elapsed, ms[seconds / 2], ms[seconds - 1]);
}

int main(int argc, char **argv)
{
	struct dirty_tracker *t = NULL;
	struct dirty_set *s = NULL;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: dirty_rate PID RAM_FILE RAM_MiB [SECONDS (5)]\n");
		return 2;
	}
	long pid = strtol(argv[1], NULL, 10);
	unsigned long long mib = strtoull(argv[3], NULL, 10);
	int seconds = argc > 4 ? atoi(argv[4]) : 5;
	if (pid <= 0 || mib == 0 || mib > (1ull << 30) || seconds < 1 || seconds > MAX_SECONDS) {
		fprintf(stderr, "dirty_rate: bad arguments\n");
		return 2;
	}
	log_init("dirty_rate", LOG_INFO);
	int rc = dirty_open((pid_t)pid, argv[2], mib << 20, &t);
	if (rc < 0)
		return rc == -ENOTSUP ? 3 : 1;
	if (dirty_set_new((mib << 20) / DIRTY_PAGE_SIZE, &s) < 0)
		return 1;
	measure(t, s, seconds);
	dirty_set_free(s);
	dirty_close(t);
	return 0;
}
