/* test_xen_pair.h - shared by the Xen helper's unit tests: two agents (fake, in
 * this process) whose replicators exec the Xen helper linked against the
 * STAND-IN libxenguest (tests/xen-standin/, build/tests/colo-xen-helper-standin).
 * The stand-in's synthetic domains are files in a temporary directory; the test
 * writes "guest" pages into them and compares them. NOT evidence that Xen works:
 * it tests our helper, runner, protocol and commit rule. */
#ifndef COLO_TEST_XEN_PAIR_H
#define COLO_TEST_XEN_PAIR_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checkpoint/repl_int.h"
#include "checkpoint/replicate.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "tests/harness/test.h"

#define XP_PS 4096u
static size_t xp_pages = 256; /* guest pages of both synthetic domains */
#define XP_PRI_DOM 11u
#define XP_SEC_DOM 12u
#define XP_DEV_LEN 5000u
#define XP_MAX_CK 16

struct xside {
	struct xpair *pair;
	enum repl_role role;
	struct replicator *r;
	uint8_t *mem;
	int suspends, resumes, loads, commits, failovers, failed, logdirty_on, logdirty_off;
	enum repl_failure why;
	char reason[1100];
	uint64_t marks[XP_MAX_CK];
};

struct xpair {
	struct loop *loop;
	struct xside pri, sec;
	char dir[64];
	uint16_t port;
	int max_ckpts;     /* the primary checkpoints again after each commit until this */
	int pri_writes;    /* pages the primary guest writes between checkpoints */
	int sec_writes;    /* pages the secondary guest writes before it stops */
	uint8_t *snap[XP_MAX_CK]; /* the primary's memory at each suspend */
	int diffs, compares, dev_mismatch;
	bool defer_logdirty; /* leave on_logdirty unanswered (the test answers) */
	int logdirty_err;    /* answer on_logdirty(enable) with this error */
	int kill_sec_at;     /* > 0: SIGKILL the secondary's helper in the primary's suspend k */
	int kill_pri_at;     /* > 0: SIGKILL the primary's helper right after answering the
			      * secondary's suspend k */
	bool logdirty_owed;
	uint64_t seed;
};

static inline uint64_t xp_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static inline void xp_scribble(struct xpair *p, uint8_t *mem, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t x = xp_rand(&p->seed);
		memcpy(mem + (x % xp_pages) * XP_PS + ((x >> 32) % (XP_PS / 8)) * 8, &x, 8);
	}
}

static inline uint16_t xp_free_port(void)
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

static inline uint8_t *xp_domain(struct xpair *p, unsigned domid, bool random)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/dom%u.mem", p->dir, domid);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	REQUIRE(ftruncate(fd, xp_pages * XP_PS) == 0);
	uint8_t *m = mmap(NULL, xp_pages * XP_PS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	REQUIRE(m != MAP_FAILED);
	if (random)
		for (size_t i = 0; i < xp_pages * XP_PS / 8; i += 3)
			((uint64_t *)(void *)m)[i] = xp_rand(&p->seed);
	return m;
}

/* The helper next to this test binary, unless COLO_XEN_HELPER says otherwise. */
static inline const char *xp_helper(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 64);
	REQUIRE(n > 0);
	path[n] = '\0';
	*strrchr(path, '/') = '\0';
	strcat(path, "/colo-xen-helper-standin");
	return path;
}

/* The fake device model's run state, read by the stand-in (dom<D>.qemu). */
static inline void xp_qemu(struct xside *s, bool running)
{
	char path[128];
	unsigned domid = s->role == REPL_PRIMARY ? XP_PRI_DOM : XP_SEC_DOM;
	snprintf(path, sizeof(path), "%s/dom%u.qemu", s->pair->dir, domid);
	FILE *f = fopen(path, "w");
	REQUIRE(f);
	fputc(running ? '1' : '0', f);
	fclose(f);
}

/* No line of the stand-in's trace says Xen would have refused or been corrupted. */
static inline bool xp_no_violation(struct xpair *p, unsigned domid);

static inline void xp_dev(uint8_t *buf, int k)
{
	for (size_t i = 0; i < XP_DEV_LEN; i++)
		buf[i] = (uint8_t)(i * 13 + (size_t)k * 5 + 3);
}

static inline void xs_suspend(struct replicator *r, int save_fd, void *arg)
{
	struct xside *s = arg;
	struct xpair *p = s->pair;
	uint8_t buf[XP_DEV_LEN];
	if (s->role == REPL_PRIMARY) {
		/* The checkpoint is the memory as it is now (the domain is suspended). */
		if (s->suspends < XP_MAX_CK) {
			p->snap[s->suspends] = malloc(xp_pages * XP_PS);
			memcpy(p->snap[s->suspends], s->mem, xp_pages * XP_PS);
		}
		xp_dev(buf, s->suspends);
		CHECK_EQ(write(save_fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
		if (p->kill_sec_at && p->kill_sec_at == s->suspends)
			kill(repl_helper_pid(p->sec.r), SIGKILL);
	} else {
		CHECK_EQ(save_fd, -1);
		xp_scribble(p, s->mem, p->sec_writes); /* its guest ran until now */
	}
	s->suspends++;
	xp_qemu(s, false);
	repl_suspend_done(r, 0, 1000 + (uint64_t)s->suspends - 1);
	if (s->role == REPL_SECONDARY && p->kill_pri_at && p->kill_pri_at == s->suspends)
		kill(repl_helper_pid(p->pri.r), SIGKILL);
}

static inline void xs_resume(struct replicator *r, void *arg)
{
	struct xside *s = arg;
	s->resumes++;
	xp_qemu(s, true);
	repl_resume_done(r, 0);
}

static inline void xs_load(struct replicator *r, int fd, uint64_t mark, void *arg)
{
	struct xside *s = arg;
	struct xpair *p = s->pair;
	uint8_t got[XP_DEV_LEN + 1], want[XP_DEV_LEN];
	xp_dev(want, s->loads);
	if (read(fd, got, sizeof(got)) != (ssize_t)XP_DEV_LEN || memcmp(got, want, sizeof(want)))
		p->dev_mismatch++;
	if (s->loads < XP_MAX_CK)
		s->marks[s->loads] = mark;
	/* libxenguest applied the checkpoint's pages before postcopy (our LOAD). */
	if (s->loads < XP_MAX_CK && p->snap[s->loads]) {
		p->compares++;
		if (memcmp(p->snap[s->loads], s->mem, xp_pages * XP_PS)) {
			fprintf(stderr, "    checkpoint %d: secondary memory differs\n", s->loads);
			p->diffs++;
		}
	}
	s->loads++;
	xp_qemu(s, true); /* the agent's LOAD: load the device state, then cont */
	repl_load_done(r, 0);
}

static inline void xs_committed(struct replicator *r, const struct repl_stats *st, void *arg)
{
	struct xside *s = arg;
	struct xpair *p = s->pair;
	CHECK_EQ(st->seq, (uint64_t)s->commits);
	s->commits++;
	if (s->role == REPL_PRIMARY && s->commits <= p->max_ckpts) {
		xp_scribble(p, s->mem, p->pri_writes); /* the guest runs until the next one */
		/* -EPIPE / -ENOTCONN: the helper is already going (a fault test) */
		int rc = repl_checkpoint(r);
		CHECK(rc == 0 || rc == -EPIPE || rc == -ENOTCONN);
	}
}

static inline void xs_failover_ready(struct replicator *r, void *arg)
{
	((struct xside *)arg)->failovers++;
}

static inline void xs_failed(struct replicator *r, enum repl_failure why, const char *reason,
			     void *arg)
{
	struct xside *s = arg;
	s->failed++;
	s->why = why;
	snprintf(s->reason, sizeof(s->reason), "%s", reason);
}

static inline void xs_logdirty(struct replicator *r, bool enable, void *arg)
{
	struct xside *s = arg;
	*(enable ? &s->logdirty_on : &s->logdirty_off) += 1;
	if (s->pair->defer_logdirty)
		s->pair->logdirty_owed = true;
	else
		repl_logdirty_done(r, enable ? s->pair->logdirty_err : 0);
}

static const struct repl_ops xp_ops = {
	.on_suspend = xs_suspend, .on_resume = xs_resume, .on_load = xs_load,
	.on_committed = xs_committed, .on_failover_ready = xs_failover_ready,
	.on_failed = xs_failed, .on_logdirty = xs_logdirty,
};

#define XP_RUN_UNTIL(p, cond, ms)                              \
	do {                                                   \
		uint64_t until_ = mono_ms() + (uint64_t)(ms);  \
		while (!(cond) && mono_ms() < until_)          \
			loop_run_once((p)->loop, 20);          \
	} while (0)

static inline struct repl_config xp_cfg(struct xpair *p, enum repl_role role)
{
	return (struct repl_config){ .role = role, .vm = REPL_VM_XEN,
				     .xen_domid = role == REPL_PRIMARY ? XP_PRI_DOM : XP_SEC_DOM,
				     .xen_helper = xp_helper(), .ram_size = xp_pages * XP_PS,
				     .config_hash = 0x5eed, .peer_host = "127.0.0.1",
				     .peer_port = p->port, .connect_timeout_ms = 5000,
				     .xen_store_evtchn = 17, .xen_console_evtchn = 18,
				     .xen_store_domid = 0, .xen_console_domid = 0 };
}

/* The secondary up; fault: COLO_XEN_STANDIN_FAULT for the stand-in, or NULL. */
static inline void xp_start_secondary(struct xpair *p, const char *fault)
{
	p->seed = 0x9e3779b97f4a7c15ull;
	snprintf(p->dir, sizeof(p->dir), "/dev/shm/colo-test-xen-XXXXXX");
	REQUIRE(mkdtemp(p->dir));
	setenv("COLO_XEN_STANDIN_DIR", p->dir, 1);
	if (fault)
		setenv("COLO_XEN_STANDIN_FAULT", fault, 1);
	else
		unsetenv("COLO_XEN_STANDIN_FAULT");
	REQUIRE(access(xp_helper(), X_OK) == 0);
	log_init("test", LOG_WARN);
	REQUIRE(loop_new(&p->loop) == 0);
	p->port = xp_free_port();
	p->pri = (struct xside){ .pair = p, .role = REPL_PRIMARY };
	p->sec = (struct xside){ .pair = p, .role = REPL_SECONDARY };
	p->pri.mem = xp_domain(p, XP_PRI_DOM, true);
	p->sec.mem = xp_domain(p, XP_SEC_DOM, false);
	xp_qemu(&p->pri, true);
	xp_qemu(&p->sec, false);
	struct repl_config sc = xp_cfg(p, REPL_SECONDARY);
	REQUIRE(repl_start(p->loop, &sc, &xp_ops, &p->sec, &p->sec.r) == 0);
}

/* Both sides up. */
static inline void xp_start(struct xpair *p, const char *fault)
{
	xp_start_secondary(p, fault);
	struct repl_config pc = xp_cfg(p, REPL_PRIMARY);
	REQUIRE(repl_start(p->loop, &pc, &xp_ops, &p->pri, &p->pri.r) == 0);
}

/* The callbacks one stand-in domain saw, one per line. */
static inline size_t xp_trace(struct xpair *p, unsigned domid, char *out, size_t n)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/dom%u.trace", p->dir, domid);
	FILE *f = fopen(path, "r");
	size_t len = f ? fread(out, 1, n - 1, f) : 0;
	out[len] = '\0';
	if (f)
		fclose(f);
	return len;
}

static inline bool xp_no_violation(struct xpair *p, unsigned domid)
{
	static char t[1 << 16];
	xp_trace(p, domid, t, sizeof(t));
	const char *v = strstr(t, "VIOLATION");
	if (v)
		fprintf(stderr, "    dom%u: %.*s\n", domid, (int)strcspn(v, "\n"), v);
	return !v;
}

static inline void xp_stop(struct xpair *p)
{
	char path[128];
	repl_free(p->pri.r);
	repl_free(p->sec.r);
	loop_free(p->loop);
	for (int i = 0; i < XP_MAX_CK; i++)
		free(p->snap[i]);
	munmap(p->pri.mem, xp_pages * XP_PS);
	munmap(p->sec.mem, xp_pages * XP_PS);
	const char *names[] = { "dom11.mem", "dom12.mem", "dom11.trace", "dom12.trace",
				"dom11.qemu", "dom12.qemu" };
	for (size_t i = 0; i < 6; i++) {
		snprintf(path, sizeof(path), "%s/%s", p->dir, names[i]);
		unlink(path);
	}
	rmdir(p->dir);
}

#endif
