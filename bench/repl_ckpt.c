/* repl_ckpt.c - the replication engine's own figures (issue 4), through the real
 * helpers (forked by repl_start, talking TCP over loopback), with fake VMs instead
 * of QEMU:
 *
 *   build/bench/repl_ckpt [ram_MiB (1024)] [big_MiB (256)] [runs (200)] [dirty_MiB (1)]
 *                         [big_runs (5)] [save_ms (0)]
 *
 *   1. initial sync of a RAM full of random data (wall time, GB/s);
 *   2. page transfer: big_runs checkpoints of big_MiB dirty pages each (after one
 *      warm-up); rate = bytes_sent / transfer_us (primary resumes -> secondary's
 *      ACK: every byte sent, received, checksummed and verified), next to plain
 *      loopback TCP measured right after, as the host's load moves both;
 *   3. pause: `runs` checkpoints with dirty_MiB of random pages dirtied on the
 *      primary (and 16 pages on the secondary) before each; prints the primary's
 *      pause minus suspend (the agent's stop + device-state save, here a 13 KB
 *      write into the save fd), i.e. the engine's share: request handling, dirty
 *      scan, copy into the shadow, device-state mapping, resume round trip.
 *      save_ms > 0 emulates QEMU's device save taking that long, announced with
 *      repl_suspend_stopped() as an agent does: the copy then overlaps the save
 *      and "pause - suspend" is what is left of the engine after it.
 *
 * A "VM" is a child process mapping a RAM file in /dev/shm shared and registered
 * for async write-protect as libcolo-uffd.so registers QEMU's RAM; it writes pages
 * only when told, so it is "stopped" otherwise. Prints min/p50/p90/p99/max. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/dirty_wp.h"
#include "checkpoint/repl_int.h"
#include "checkpoint/replicate.h"
#include "lib/log.h"
#include "lib/loop.h"

#define PS 4096u
#define DEV_LEN 13000u

struct vm {
	pid_t pid;
	int sock;
	char path[64];
	uint64_t size;
};

/* RAM files to remove however the bench ends. */
static char files[2][64];

static void remove_files(void)
{
	for (int i = 0; i < 2; i++)
		if (files[i][0])
			unlink(files[i]);
}

static _Noreturn void die(const char *what, int err)
{
	fprintf(stderr, "repl_ckpt: %s: %s\n", what, strerror(err));
	exit(1);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Child: register the RAM, then per message {n, seed} write n distinct pages. */
static _Noreturn void vm_main(int sock, const char *path, uint64_t size)
{
	const char *step = "open";
	int fd = open(path, O_RDWR);
	uint8_t *ram = fd < 0 ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int uffd = ram == MAP_FAILED ? -1 : dirty_wp_open(&step);
	char ok = uffd >= 0 && dirty_wp_protect(uffd, ram, size, &step) == 0 ? 'r' : 'x';
	if (ok != 'r')
		fprintf(stderr, "vm: %s: %s\n", step, strerror(errno));
	if (send(sock, &ok, 1, 0) != 1 || ok != 'r')
		_exit(1);
	uint64_t msg[2], npages = size / PS;
	while (recv(sock, msg, sizeof(msg), 0) == sizeof(msg)) {
		/* A stride coprime with npages visits distinct pages from a random start. */
		uint64_t s = msg[1] | 1, pfn = xorshift(&s) % npages, stride = 2654435761u % npages;
		for (uint64_t i = 0; i < msg[0] && i < npages; i++) {
			*(volatile uint64_t *)(ram + pfn * PS + (i % 512) * 8) = xorshift(&s);
			pfn = (pfn + stride) % npages;
		}
		if (send(sock, "k", 1, 0) != 1)
			_exit(1);
	}
	_exit(0);
}

static void vm_start(struct vm *v, uint64_t size, bool random)
{
	int sv[2];
	char ok = 0;
	snprintf(v->path, sizeof(v->path), "/dev/shm/colo-bench-repl-XXXXXX");
	int fd = mkstemp(v->path);
	if (fd >= 0)
		snprintf(files[files[0][0] ? 1 : 0], sizeof(files[0]), "%s", v->path);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		die("RAM file", errno);
	if (random) {
		uint64_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), s = 42;
		if (p == MAP_FAILED)
			die("mmap", errno);
		for (uint64_t i = 0; i < size / 8; i++)
			p[i] = xorshift(&s);
		munmap(p, size);
	}
	close(fd);
	v->size = size;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", errno);
	v->pid = fork();
	if (v->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		vm_main(sv[1], v->path, size);
	}
	close(sv[1]);
	v->sock = sv[0];
	if (recv(v->sock, &ok, 1, 0) != 1 || ok != 'r')
		die("registering the fake VM's RAM (Linux >= 6.7 needed)", EOPNOTSUPP);
}

static void vm_write(struct vm *v, uint64_t pages, uint64_t seed)
{
	uint64_t msg[2] = { pages, seed };
	char k;
	if (send(v->sock, msg, sizeof(msg), 0) != sizeof(msg) || recv(v->sock, &k, 1, 0) != 1)
		die("fake VM", EPIPE);
}

static void vm_stop(struct vm *v)
{
	kill(v->pid, SIGKILL);
	waitpid(v->pid, NULL, 0);
	unlink(v->path);
}

/* ---- the fake agents ------------------------------------------------------------- */

struct bench {
	struct loop *loop;
	int save_ms; /* emulated device save of the primary */
	struct replicator *pri, *sec;
	int pri_commits, sec_commits, failed;
	struct repl_stats last;
	char reason[1100];
};

static int64_t saved(struct loop *loop, uint64_t id, void *arg)
{
	struct bench *b = arg;
	repl_suspend_done(b->pri, 0, 1);
	return LOOP_TIMER_DONE;
}

/* The primary's device state: 13 KB into the save fd, and with save_ms > 0 the time
 * QEMU's save takes, announced with repl_suspend_stopped() as the real agent would. */
static void on_suspend(struct replicator *r, int save_fd, void *arg)
{
	static uint8_t dev[DEV_LEN];
	struct bench *b = arg;
	uint64_t id;
	if (save_fd >= 0 && write(save_fd, dev, sizeof(dev)) != (ssize_t)sizeof(dev))
		die("writing the device state", errno);
	if (r == b->pri && b->save_ms) {
		repl_suspend_stopped(r);
		if (loop_timer_add(b->loop, b->save_ms, saved, b, &id) < 0)
			die("timer", ENOMEM);
		return;
	}
	repl_suspend_done(r, 0, 1);
}

static void on_resume(struct replicator *r, void *arg)
{
	repl_resume_done(r, 0);
}

static void on_load(struct replicator *r, int fd, uint64_t mark, void *arg)
{
	repl_load_done(r, 0);
}

static void on_committed(struct replicator *r, const struct repl_stats *st, void *arg)
{
	struct bench *b = arg;
	if (r == b->pri) {
		b->pri_commits++;
		b->last = *st;
	} else {
		b->sec_commits++;
	}
}

static void on_ready(struct replicator *r, void *arg)
{
}

static void on_failed(struct replicator *r, enum repl_failure why, const char *reason, void *arg)
{
	struct bench *b = arg;
	b->failed++;
	snprintf(b->reason, sizeof(b->reason), "%s", reason);
}

static const struct repl_ops ops = { on_suspend, on_resume, on_load, on_committed, on_ready,
				     on_failed, NULL };

static void run_until(struct bench *b, int pri, int sec)
{
	uint64_t until = mono_ms() + 120000;
	while ((b->pri_commits < pri || b->sec_commits < sec) && !b->failed && mono_ms() < until)
		loop_run_once(b->loop, 100);
	if (b->failed || b->pri_commits < pri)
		die(b->failed ? b->reason : "no progress within 120 s", EIO);
}

static uint16_t free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		die("free port", errno);
	close(fd);
	return ntohs(sa.sin_port);
}

static void start(struct bench *b, struct vm *pri, struct vm *sec)
{
	uint16_t port = free_port();
	struct repl_config c = { .role = REPL_SECONDARY, .ram_path = sec->path, .ram_size = sec->size,
				 .qemu_pid = sec->pid, .config_hash = 1, .peer_host = "127.0.0.1",
				 .peer_port = port, .connect_timeout_ms = 5000 };
	if (repl_start(b->loop, &c, &ops, b, &b->sec) < 0)
		die("repl_start secondary", errno);
	c.role = REPL_PRIMARY;
	c.ram_path = pri->path;
	c.qemu_pid = pri->pid;
	if (repl_start(b->loop, &c, &ops, b, &b->pri) < 0)
		die("repl_start primary", errno);
}

/* ---- the machine's own figure, for scale ---------------------------------------------- */

/* Plain loopback TCP, 256 KiB writes from a 64 MiB buffer into 256 KiB reads, with
 * the helpers' socket options: what this host gives right now (other load on a
 * shared machine moves it a lot). */
static double raw_tcp_gbps(uint64_t bytes)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int one = 1, l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, len) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) < 0)
		die("raw TCP", errno);
	pid_t pid = fork();
	if (pid == 0) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		size_t size = 64u << 20, chunk = 256u << 10;
		uint8_t *b = malloc(size);
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!b || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(1);
		memset(b, 7, size);
		for (uint64_t sent = 0; sent < bytes;) {
			ssize_t n = write(s, b + sent % size, chunk);
			if (n <= 0)
				_exit(1);
			sent += (uint64_t)n;
		}
		_exit(0);
	}
	int c = accept(l, NULL, NULL);
	static uint8_t rb[256u << 10];
	uint64_t got = 0, t0 = mono_ns();
	ssize_t n;
	while (got < bytes && (n = read(c, rb, sizeof(rb))) > 0)
		got += (uint64_t)n;
	double gbps = (double)got / (double)(mono_ns() - t0);
	waitpid(pid, NULL, 0);
	close(c);
	close(l);
	return gbps;
}

/* ---- figures ------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void print_dist(const char *what, uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	printf("%-34s min %6.3f  p50 %6.3f  p90 %6.3f  p99 %6.3f  max %6.3f ms\n", what,
	       (double)v[0] / 1000, (double)v[n / 2] / 1000, (double)v[n * 9 / 10] / 1000,
	       (double)v[n * 99 / 100] / 1000, (double)v[n - 1] / 1000);
}

static void checkpoint(struct bench *b, struct vm *pri, struct vm *sec, uint64_t pages,
		       uint64_t seed)
{
	vm_write(pri, pages, seed);
	vm_write(sec, 16, seed + 1);
	int want = b->pri_commits + 1, sec_want = b->sec_commits + 1;
	if (repl_checkpoint(b->pri) < 0)
		die("repl_checkpoint", EBUSY);
	run_until(b, want, sec_want);
}

/* CPU seconds (user + system) a process used so far. */
static double cpu_s(int pid)
{
	char path[64], buf[1024];
	unsigned long ut = 0, st = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the name may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void phase_transfer(struct bench *b, struct vm *pri, struct vm *sec, uint64_t big_mib,
			   int n)
{
	double cpu_p, cpu_s0, bytes = 0;
	double best = 0, sum = 0;
	/* The first big checkpoint also allocates the secondary's receive buffers (kept
	 * for the next ones, up to 256 MiB): a one-off, left out of the figures. */
	checkpoint(b, pri, sec, big_mib << 8, 999);
	printf("warm-up: %.1f MiB in %.1f ms (fresh receive buffers)\n",
	       (double)b->last.bytes_sent / (1 << 20), (double)b->last.transfer_us / 1000);
	cpu_p = cpu_s(repl_helper_pid(b->pri));
	cpu_s0 = cpu_s(repl_helper_pid(b->sec));
	for (int i = 0; i < n; i++) {
		checkpoint(b, pri, sec, big_mib << 8, 1000 + (uint64_t)i);
		bytes += (double)b->last.bytes_sent;
		double gbps = (double)b->last.bytes_sent / ((double)b->last.transfer_us * 1000);
		sum += gbps;
		best = gbps > best ? gbps : best;
		printf("transfer: %llu pages, %.1f MiB in %.1f ms = %.2f GB/s (capture %.1f ms)\n",
		       (unsigned long long)b->last.pages_sent, (double)b->last.bytes_sent / (1 << 20),
		       (double)b->last.transfer_us / 1000, gbps, (double)b->last.capture_us / 1000);
	}
	/* Load-independent: CPU per byte of each helper (capture and apply included). */
	double pc = cpu_s(repl_helper_pid(b->pri)) - cpu_p, sc = cpu_s(repl_helper_pid(b->sec)) - cpu_s0;
	printf("page transfer: mean %.2f GB/s, best %.2f GB/s (plain loopback TCP right after: %.2f GB/s)\n",
	       sum / n, best, raw_tcp_gbps(1ull << 30));
	printf("CPU per GB: primary helper %.2f s (capture + checksum + send), secondary helper %.2f s (receive + verify + apply)\n",
	       pc / (bytes / 1e9), sc / (bytes / 1e9));
}

static void phase_pause(struct bench *b, struct vm *pri, struct vm *sec, int runs, uint64_t mib)
{
	uint64_t *eng = calloc((size_t)runs, 8), *pause = calloc((size_t)runs, 8),
		 *cap = calloc((size_t)runs, 8), *susp = calloc((size_t)runs, 8);
	uint64_t pages = 0;
	for (int i = 0; i < runs; i++) {
		checkpoint(b, pri, sec, mib << 8, 5000 + (uint64_t)i);
		eng[i] = b->last.pause_us - b->last.suspend_us;
		pause[i] = b->last.pause_us;
		cap[i] = b->last.capture_us;
		susp[i] = b->last.suspend_us;
		pages += b->last.pages_sent;
	}
	printf("%d checkpoints, %.0f pages sent on average (%llu MiB dirtied by the primary, 16 pages by the secondary)\n",
	       runs, (double)pages / runs, (unsigned long long)mib);
	print_dist("pause - suspend (engine's share)", eng, runs);
	print_dist("pause (suspend -> resume done)", pause, runs);
	print_dist("suspend (fake agent's save)", susp, runs);
	print_dist("capture (scan + copy)", cap, runs);
	free(eng);
	free(pause);
	free(cap);
	free(susp);
}

int main(int argc, char **argv)
{
	struct bench b = { 0 };
	uint64_t ram_mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 1024;
	uint64_t big_mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 256;
	int runs = argc > 3 ? atoi(argv[3]) : 200;
	uint64_t dirty_mib = argc > 4 ? strtoull(argv[4], NULL, 0) : 1;
	int big_runs = argc > 5 ? atoi(argv[5]) : 5;
	b.save_ms = argc > 6 ? atoi(argv[6]) : 0;
	struct vm pri, sec;
	if (!ram_mib || big_mib > ram_mib || runs < 1 || !dirty_mib || big_runs < 1)
		die("usage: repl_ckpt [ram_MiB] [big_MiB] [runs] [dirty_MiB] [big_runs] [save_ms]", EINVAL);
	log_init("repl_ckpt", getenv("COLO_BENCH_LOG") ? LOG_INFO : LOG_WARN);
	atexit(remove_files);
	if (loop_new(&b.loop) < 0)
		die("loop", ENOMEM);
	vm_start(&pri, ram_mib << 20, true);
	vm_start(&sec, ram_mib << 20, false);
	uint64_t t0 = mono_ns();
	start(&b, &pri, &sec);
	run_until(&b, 1, 1);
	double ms = (double)(mono_ns() - t0) / 1e6;
	printf("initial sync: %llu MiB of random data in %.0f ms (%.2f GB/s, helper start-up included)\n",
	       (unsigned long long)ram_mib, ms, (double)(ram_mib << 20) / (ms * 1e6));
	phase_transfer(&b, &pri, &sec, big_mib, big_runs);
	phase_pause(&b, &pri, &sec, runs, dirty_mib);
	repl_free(b.pri);
	repl_free(b.sec);
	vm_stop(&pri);
	vm_stop(&sec);
	loop_free(b.loop);
	return 0;
}
