/* test_repl_vm.h - shared by the replication unit tests: a fake VM and a fake agent
 * pair, so both helpers run for real (forked by repl_start, over local TCP) without
 * QEMU.
 *
 * The fake VM ("guest") is a child process that maps a RAM file in /dev/shm shared,
 * as QEMU's memory-backend-file,share=on does, and registers it for async
 * write-protect with the code libcolo-uffd.so uses (checkpoint/dirty_wp.h), so the
 * helpers track it through /proc/<pid>/pagemap exactly as they track QEMU. "Running"
 * means writing random pages (~64 per millisecond) until told to stop.
 *
 * The fake agent answers the callbacks at once: suspend = stop the guest's writes
 * (+ a synthetic device state on the primary), resume = nothing yet, load = check the
 * device state, compare both RAMs while both guests are stopped, then let both run
 * again. Hooks let a test break things at precise points. */
#ifndef COLO_TEST_REPL_VM_H
#define COLO_TEST_REPL_VM_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/dirty_wp.h"
#include "checkpoint/repl_int.h"
#include "checkpoint/replicate.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "tests/harness/test.h"

#define VM_PS 4096u
#define DEV_STATE_LEN 13000u
#define MARK_BASE 1000u

enum { G_CHURN = 1, G_STOP, G_WRITE };

struct guest {
	pid_t pid;
	int sock;
	uint64_t size;
	char path[64];
	bool running;
};

static inline uint64_t vm_xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static char vm_files[16][64];

static inline void vm_cleanup(void)
{
	for (int i = 0; i < 16; i++)
		if (vm_files[i][0])
			unlink(vm_files[i]);
}

/* The harness's timeout (SIGALRM) or a ^C would skip atexit: unlink is
 * async-signal-safe, so the handler removes the files, then dies of the signal. */
static inline void vm_on_signal(int sig)
{
	vm_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static inline void vm_remember(const char *path)
{
	static bool registered;
	if (!registered && atexit(vm_cleanup) == 0) {
		registered = true;
		signal(SIGALRM, vm_on_signal);
		signal(SIGINT, vm_on_signal);
		signal(SIGTERM, vm_on_signal);
	}
	for (int i = 0; i < 16; i++)
		if (!vm_files[i][0]) {
			snprintf(vm_files[i], sizeof(vm_files[i]), "%s", path);
			return;
		}
}

/* One random 8-byte write in each of n random pages. */
static inline void vm_scribble(volatile uint8_t *ram, uint64_t npages, uint64_t *s, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t x = vm_xorshift(s);
		*(volatile uint64_t *)(ram + (x % npages) * VM_PS + ((x >> 40) % (VM_PS / 8)) * 8) = x;
	}
}

static inline void vm_churn(int sock, volatile uint8_t *ram, uint64_t npages, uint64_t seed)
{
	uint64_t s = seed | 1, msg[2];
	if (send(sock, "k", 1, 0) != 1)
		_exit(1);
	for (;;) {
		vm_scribble(ram, npages, &s, 64);
		usleep(1000);
		if (recv(sock, msg, sizeof(msg), MSG_DONTWAIT) > 0)
			return; /* G_STOP: acknowledged by the caller loop */
	}
}

static inline _Noreturn void vm_serve(int sock, volatile uint8_t *ram, uint64_t npages)
{
	uint64_t msg[3];
	for (;;) {
		ssize_t n = recv(sock, msg, sizeof(msg), 0);
		if (n < 8)
			_exit(0);
		if (msg[0] == G_CHURN)
			vm_churn(sock, ram, npages, msg[1]);
		else if (msg[0] == G_WRITE)
			vm_scribble(ram, npages, &msg[2], (int)msg[1]);
		if (send(sock, "k", 1, 0) != 1)
			_exit(1);
	}
}

static inline _Noreturn void vm_main(int sock, const char *path, uint64_t size)
{
	const char *step = "open";
	int fd = open(path, O_RDWR);
	void *ram = fd < 0 ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ram != MAP_FAILED) {
		int uffd = dirty_wp_open(&step);
		if (uffd < 0 || dirty_wp_protect(uffd, ram, size, &step) < 0)
			ram = MAP_FAILED;
	}
	char status = ram != MAP_FAILED ? 'r' : 'x';
	if (status == 'x')
		fprintf(stderr, "guest: %s: %s\n", step, strerror(errno));
	if (send(sock, &status, 1, 0) != 1 || status != 'r')
		_exit(1);
	vm_serve(sock, ram, size / VM_PS);
}

/* A RAM file of size bytes: the first `data_pages` pages random from seed, the rest
 * zero. */
static inline void vm_file(struct guest *g, uint64_t size, uint64_t data_pages, uint64_t seed)
{
	snprintf(g->path, sizeof(g->path), "/dev/shm/colo-test-repl-XXXXXX");
	int fd = mkstemp(g->path);
	REQUIRE(fd >= 0);
	vm_remember(g->path);
	REQUIRE(ftruncate(fd, (off_t)size) == 0);
	if (data_pages) {
		uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		REQUIRE(p != MAP_FAILED);
		uint64_t s = seed | 1;
		for (uint64_t i = 0; i < data_pages * VM_PS / 8; i++)
			((uint64_t *)(void *)p)[i] = vm_xorshift(&s);
		munmap(p, size);
	}
	close(fd);
	g->size = size;
}

static inline void vm_start(struct guest *g, uint64_t size, uint64_t data_pages, uint64_t seed)
{
	int sv[2];
	char st = 0;
	vm_file(g, size, data_pages, seed);
	REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(sv[0]);
		vm_main(sv[1], g->path, size);
	}
	close(sv[1]);
	g->pid = pid;
	g->sock = sv[0];
	g->running = false;
	if (recv(g->sock, &st, 1, 0) != 1 || st != 'r')
		test_skip("cannot register a mapping for async write-protect (Linux >= 6.7 needed)");
}

static inline void vm_cmd(struct guest *g, uint64_t op, uint64_t a, uint64_t b)
{
	uint64_t msg[3] = { op, a, b };
	char k;
	REQUIRE(send(g->sock, msg, sizeof(msg), 0) == sizeof(msg));
	REQUIRE(recv(g->sock, &k, 1, 0) == 1);
}

static inline void vm_run(struct guest *g, uint64_t seed)
{
	if (!g->running)
		vm_cmd(g, G_CHURN, seed, 0);
	g->running = true;
}

static inline void vm_pause(struct guest *g)
{
	if (g->running)
		vm_cmd(g, G_STOP, 0, 0);
	g->running = false;
}

static inline void vm_stop(struct guest *g)
{
	if (g->pid > 0) {
		kill(g->pid, SIGKILL);
		waitpid(g->pid, NULL, 0);
		close(g->sock);
	}
	g->pid = 0;
	unlink(g->path);
}

static inline void *vm_map(const struct guest *g)
{
	int fd = open(g->path, O_RDONLY);
	REQUIRE(fd >= 0);
	void *p = mmap(NULL, g->size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	REQUIRE(p != MAP_FAILED);
	return p;
}

/* 0 if both RAM files are byte-identical, else the first differing page + 1. */
static inline uint64_t vm_diff(const struct guest *a, const struct guest *b)
{
	const uint8_t *pa = vm_map(a), *pb = vm_map(b);
	uint64_t diff = 0;
	for (uint64_t pfn = 0; pfn < a->size / VM_PS && !diff; pfn++)
		if (memcmp(pa + pfn * VM_PS, pb + pfn * VM_PS, VM_PS))
			diff = pfn + 1;
	munmap((void *)pa, a->size);
	munmap((void *)pb, b->size);
	return diff;
}

static inline uint16_t vm_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	REQUIRE(fd >= 0);
	REQUIRE(bind(fd, (struct sockaddr *)&sa, len) == 0);
	REQUIRE(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* ---- the fake agents --------------------------------------------------------------- */

struct side;
struct pair;
typedef void (*side_hook)(struct pair *p, struct side *s);

struct side {
	struct pair *pair;
	enum repl_role role;
	struct guest vm;
	struct replicator *r;
	int suspends, resumes, loads, commits, failovers, failed;
	int commits_at_fail, commits_at_failover;
	enum repl_failure why;
	char reason[1100];
	struct repl_stats last;
	uint64_t marks[64];
	bool load_deferred;
	side_hook on_load_hook, on_suspend_hook, on_resume_hook;
};

struct pair {
	struct loop *loop;
	struct side pri, sec;
	uint16_t port;
	uint64_t config_hash;
	int diffs;        /* RAM comparisons that found a difference */
	int compares;
	int dev_mismatch; /* device states not as the primary saved them */
	bool compare;     /* compare RAMs at each load */
	bool keep_primary_stopped; /* run the primary only after the secondary's load */
	bool use_stopped; /* the primary calls repl_suspend_stopped() */
	int save_writes;  /* ... and then writes this many pages "during the save" */
	int max_ckpts;    /* the primary checkpoints again after each commit until this */
	uint64_t seed;
};

static inline void dev_pattern(uint8_t *buf, size_t len, int k)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 31 + (size_t)k * 7 + 1);
}

static inline void side_suspend(struct replicator *r, int save_fd, void *arg)
{
	struct side *s = arg;
	uint8_t buf[DEV_STATE_LEN];
	vm_pause(&s->vm);
	if (s->role == REPL_PRIMARY && s->pair->use_stopped) {
		repl_suspend_stopped(r); /* pages copied while "QEMU saves" below */
		if (s->pair->save_writes) { /* a save that writes guest RAM after the copy */
			usleep(20000);
			vm_cmd(&s->vm, G_WRITE, s->pair->save_writes, s->pair->seed++);
		}
	}
	if (s->on_suspend_hook)
		s->on_suspend_hook(s->pair, s);
	if (s->role == REPL_PRIMARY) {
		dev_pattern(buf, sizeof(buf), s->suspends);
		CHECK_EQ(write(save_fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	} else {
		CHECK_EQ(save_fd, -1);
	}
	s->suspends++;
	repl_suspend_done(r, 0, MARK_BASE + (uint64_t)s->suspends - 1);
}

static inline void side_resume(struct replicator *r, void *arg)
{
	struct side *s = arg;
	s->resumes++;
	if (s->on_resume_hook)
		s->on_resume_hook(s->pair, s);
	if (!s->pair->keep_primary_stopped)
		vm_run(&s->vm, s->pair->seed++);
	repl_resume_done(r, 0);
}

static inline void check_device_state(struct pair *p, int fd, int k)
{
	uint8_t got[DEV_STATE_LEN + 1], want[DEV_STATE_LEN];
	ssize_t n = read(fd, got, sizeof(got));
	dev_pattern(want, sizeof(want), k);
	if (n != (ssize_t)DEV_STATE_LEN || memcmp(got, want, sizeof(want)))
		p->dev_mismatch++;
}

/* Finish a load: let both guests run again. */
static inline void side_load_finish(struct pair *p)
{
	vm_run(&p->sec.vm, p->seed++);
	vm_run(&p->pri.vm, p->seed++);
	repl_load_done(p->sec.r, 0);
}

static inline void side_load(struct replicator *r, int load_fd, uint64_t mark, void *arg)
{
	struct side *s = arg;
	struct pair *p = s->pair;
	check_device_state(p, load_fd, s->loads);
	if (s->loads < 64)
		s->marks[s->loads] = mark;
	s->loads++;
	/* Both guests are stopped here: the primary since its capture, the secondary
	 * since its suspend. The secondary's RAM must be the primary's, byte for byte. */
	if (p->compare && !p->pri.vm.running) {
		p->compares++;
		uint64_t d = vm_diff(&p->pri.vm, &p->sec.vm);
		if (d) {
			fprintf(stderr, "    checkpoint %d: page %llu differs\n", s->loads - 1,
				(unsigned long long)d - 1);
			p->diffs++;
		}
	}
	if (s->on_load_hook)
		s->on_load_hook(p, s);
	if (!s->load_deferred)
		side_load_finish(p);
}

static inline void side_committed(struct replicator *r, const struct repl_stats *st, void *arg)
{
	struct side *s = arg;
	s->commits++;
	s->last = *st;
	CHECK_EQ(st->seq, (uint64_t)s->commits - 1);
	if (s->role == REPL_PRIMARY && s->commits <= s->pair->max_ckpts)
		CHECK_EQ(repl_checkpoint(r), 0);
}

static inline void side_failover_ready(struct replicator *r, void *arg)
{
	struct side *s = arg;
	s->failovers++;
	s->commits_at_failover = s->commits;
}

static inline void side_failed(struct replicator *r, enum repl_failure why, const char *reason,
			       void *arg)
{
	struct side *s = arg;
	s->failed++;
	s->commits_at_fail = s->commits;
	s->why = why;
	snprintf(s->reason, sizeof(s->reason), "%s", reason);
}

static const struct repl_ops side_ops = {
	.on_suspend = side_suspend,
	.on_resume = side_resume,
	.on_load = side_load,
	.on_committed = side_committed,
	.on_failover_ready = side_failover_ready,
	.on_failed = side_failed,
};

#define RUN_UNTIL(loop, cond, ms)                              \
	do {                                                   \
		uint64_t until_ = mono_ms() + (uint64_t)(ms);  \
		while (!(cond) && mono_ms() < until_)          \
			loop_run_once((loop), 10);             \
	} while (0)

static inline int side_start(struct pair *p, struct side *s, uint64_t config_hash)
{
	struct repl_config cfg = {
		.role = s->role, .ram_path = s->vm.path, .ram_size = s->vm.size,
		.qemu_pid = s->vm.pid, .config_hash = config_hash, .peer_host = "127.0.0.1",
		.peer_port = p->port, .connect_timeout_ms = 5000,
	};
	return repl_start(p->loop, &cfg, &side_ops, s, &s->r);
}

/* Two guests of ram_size bytes (the primary's first data_pages random, the
 * secondary's random garbage that the initial sync must replace), both helpers. */
static inline void pair_init(struct pair *p, uint64_t ram_size, uint64_t data_pages)
{
	*p = (struct pair){ .config_hash = 0x5eed, .compare = true, .keep_primary_stopped = true,
			    .seed = 77 };
	log_init("test", getenv("COLO_TEST_DEBUG") ? LOG_DEBUG : LOG_WARN);
	REQUIRE(loop_new(&p->loop) == 0);
	p->pri = (struct side){ .pair = p, .role = REPL_PRIMARY };
	p->sec = (struct side){ .pair = p, .role = REPL_SECONDARY };
	vm_start(&p->pri.vm, ram_size, data_pages, 1);
	vm_start(&p->sec.vm, ram_size, ram_size / VM_PS / 2, 2);
	p->port = vm_free_port();
}

static inline void pair_start(struct pair *p, uint64_t ram_size, uint64_t data_pages)
{
	pair_init(p, ram_size, data_pages);
	REQUIRE(side_start(p, &p->sec, p->config_hash) == 0);
	REQUIRE(side_start(p, &p->pri, p->config_hash) == 0);
}

static inline void pair_stop(struct pair *p)
{
	repl_free(p->pri.r);
	repl_free(p->sec.r);
	vm_stop(&p->pri.vm);
	vm_stop(&p->sec.vm);
	loop_free(p->loop);
}

static inline bool pid_gone(int pid)
{
	char path[64], st = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return true;
	/* a zombie whose parent is gone is dead too */
	int n = fscanf(f, "%*d %*s %c", &st);
	fclose(f);
	return n == 1 && (st == 'Z' || st == 'X');
}

#endif
