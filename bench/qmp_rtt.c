/* qmp_rtt - round-trip time of query-status through qmp/ against a real QEMU.
 *
 *   build/bench/qmp_rtt [QEMU-BINARY] [N]     (QEMU from COLO_QEMU when omitted)
 *
 * Starts QEMU paused (-S, TCG, no guest: the vCPU would compete for the 2 cores),
 * then times N sequential query-status calls (each waits for its reply before the
 * next is sent, timeout armed as the engine would), and N pipelined ones (up to 64
 * in flight). Prints p50/p99/max of the sequential round trips. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "qmp/qmp.h"

#define WARMUP 200
#define WINDOW 64

static pid_t qemu_pid;
static char dir[64], sock[128];

static void cleanup(void)
{
	if (qemu_pid > 0) {
		kill(qemu_pid, SIGKILL);
		waitpid(qemu_pid, NULL, 0);
		qemu_pid = 0;
	}
	unlink(sock);
	rmdir(dir);
}

static int start_qemu(const char *qemu)
{
	char qmp[200];
	snprintf(dir, sizeof(dir), "/tmp/colo-bench-qmp-XXXXXX");
	if (!mkdtemp(dir))
		return -errno;
	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", sock);
	char *argv[] = { (char *)qemu, "-machine", "pc,accel=tcg", "-m", "64M", "-nodefaults",
			 "-display", "none", "-no-user-config", "-L", "/usr/share/qemu", "-L",
			 "/usr/share/seabios", "-S", "-qmp", qmp, NULL };
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(qemu, argv);
		_exit(127);
	}
	qemu_pid = pid;
	return 0;
}

struct bench {
	struct loop *loop;
	struct qmp *c;
	bool ready, broken;
	int done, err;
};

static void on_ready(struct qmp *c, void *arg)
{
	((struct bench *)arg)->ready = true;
}

static void on_broken(struct qmp *c, int err, const char *why, void *arg)
{
	((struct bench *)arg)->broken = true;
}

static void on_reply(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct bench *b = arg;
	b->done++;
	if (res->err && !b->err)
		b->err = res->err;
}

static int connect_qemu(struct bench *b)
{
	struct qmp_handlers h = { .ready = on_ready, .broken = on_broken, .arg = b };
	int r = -ENOENT;
	for (int i = 0; i < 500 && r < 0; i++) {
		r = qmp_connect(b->loop, sock, &h, &b->c);
		if (r < 0)
			usleep(20000);
	}
	if (r < 0)
		return r;
	while (!b->ready && !b->broken)
		loop_run_once(b->loop, -1);
	return b->ready ? 0 : -ECONNRESET;
}

/* One query-status, waited for; returns its round trip in ns. */
static int64_t one_call(struct bench *b)
{
	int before = b->done;
	uint64_t t0 = mono_ns();
	if (qmp_exec(b->c, "query-status", NULL, -1, 5000, on_reply, b) < 0)
		return -1;
	while (b->done == before && !b->broken)
		loop_run_once(b->loop, -1);
	return b->err ? -1 : (int64_t)(mono_ns() - t0);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static double pipelined_ms(struct bench *b, int n)
{
	int sent = 0;
	b->done = 0;
	uint64_t t0 = mono_ns();
	while (b->done < n && !b->broken && !b->err) {
		while (sent < n && sent - b->done < WINDOW &&
		       qmp_exec(b->c, "query-status", NULL, -1, 5000, on_reply, b) == 0)
			sent++;
		loop_run_once(b->loop, -1);
	}
	return b->err || b->broken ? -1 : (double)(mono_ns() - t0) / 1e6;
}

int main(int argc, char **argv)
{
	const char *qemu = argc > 1 ? argv[1] : getenv("COLO_QEMU");
	int n = argc > 2 ? atoi(argv[2]) : 10000;
	struct bench b = { 0 };
	int rc = 1;
	if (!qemu || n <= 0) {
		fprintf(stderr, "usage: qmp_rtt [QEMU-BINARY] [N]   (or set COLO_QEMU)\n");
		return 2;
	}
	log_init("qmp_rtt", LOG_WARN);
	atexit(cleanup);
	int64_t *rtt = calloc((size_t)n, sizeof(*rtt));
	if (!rtt || loop_new(&b.loop) < 0 || start_qemu(qemu) < 0 || connect_qemu(&b) < 0) {
		fprintf(stderr, "qmp_rtt: cannot start or reach QEMU %s\n", qemu);
		goto out;
	}
	for (int i = 0; i < WARMUP; i++)
		if (one_call(&b) < 0)
			goto fail;
	for (int i = 0; i < n; i++)
		if ((rtt[i] = one_call(&b)) < 0)
			goto fail;
	qsort(rtt, (size_t)n, sizeof(*rtt), cmp_i64);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += (double)rtt[i];
	printf("query-status round trip, %d sequential calls: p50 %.1f us, p99 %.1f us, "
	       "max %.1f us, mean %.1f us\n", n, (double)rtt[n / 2] / 1e3,
	       (double)rtt[(size_t)n * 99 / 100] / 1e3, (double)rtt[n - 1] / 1e3,
	       sum / n / 1e3);
	double ms = pipelined_ms(&b, n);
	if (ms < 0)
		goto fail;
	printf("query-status pipelined (%d in flight), %d calls: %.1f ms, %.0f calls/s\n",
	       WINDOW, n, ms, n / (ms / 1e3));
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "qmp_rtt: a call failed (error %d)\n", b.err);
out:
	qmp_free(b.c);
	loop_free(b.loop);
	free(rtt);
	return rc;
}
