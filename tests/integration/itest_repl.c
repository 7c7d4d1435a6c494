/* Integration test of replication (checkpoint/replicate.h) against the rig's real
 * QEMUs (TCG): a minimal agent pair on qmp/ in one process, each replicator's helper
 * forked inside its host's network namespace so the replication link is the rig's
 * rep0 (10.77.0.1 -> 10.77.0.2). The guests dirty 4 MiB/s (colo.dirty=4).
 *
 *   phase A: initial sync + 4 checkpoints, the primary held stopped until the
 *            secondary has the checkpoint's RAM: both RAM files must hash the same;
 *   phase B: 20 checkpoints 250 ms apart with the primary resumed at once (the real
 *            agent's way): prints the pause figures (pause minus QEMU's device save);
 *   failover: the primary's QEMU killed, repl_failover() on the secondary, whose
 *            guest must go on counting its serial heartbeat from the checkpoint.
 *
 * Needs root, COLO_QEMU, COLO_GUEST, COLO_BUILD (make test-integration). The rig
 * (prefix trepl) is torn down on every path: atexit, the harness's SIGALRM, end. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "checkpoint/replicate.h"
#include "checkpoint/stream.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "qmp/qmp.h"
#include "tests/harness/test.h"

#define PREFIX "trepl"
#define REP_PORT 7070
#define CMD_MS 10000
#define PHASE_A 4
#define PHASE_B 20
#define MAX_CKPT (PHASE_A + PHASE_B)

static const char *rig_path = "tests/rig/colo-rig";
static volatile sig_atomic_t rig_up;

/* fork + exec: async-signal-safe, so the SIGALRM handler may use it too. */
static int run_rig(const char *cmd, const char *a1, const char *a2, const char *a3,
		   const char *a4, const char *a5, const char *a6, int out_fd)
{
	const char *argv[] = { rig_path, "--prefix", PREFIX, cmd, a1, a2, a3, a4, a5, a6, NULL };
	pid_t pid = fork();
	if (pid == 0) {
		if (out_fd >= 0)
			dup2(out_fd, STDOUT_FILENO);
		execv(rig_path, (char *const *)argv);
		_exit(127);
	}
	int st = 0;
	while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return pid > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void rig_down_at_exit(void);

static void rig_down(void)
{
	int null = open("/dev/null", O_WRONLY);
	run_rig("down", NULL, NULL, NULL, NULL, NULL, NULL, null);
	close(null);
	rig_up = 0;
}

static void rig_down_at_exit(void)
{
	if (rig_up)
		rig_down();
}

static void on_alarm(int sig)
{
	if (rig_up)
		rig_down();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- the rig's settings ----------------------------------------------------------- */

struct rig {
	char pri_qmp[256], sec_qmp[256], pri_ram[256], sec_ram[256], pri_serial[256],
		sec_serial[256], sec_rep_ip[64];
	unsigned mem_mb;
};

static void env_value(const char *text, const char *key, char *out, size_t n)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\n%s=", key);
	const char *p = strstr(text, pat);
	REQUIRE(p);
	p += strlen(pat);
	size_t len = strcspn(p, "\n");
	snprintf(out, n, "%.*s", (int)len, p);
}

static void read_env(struct rig *rg)
{
	char text[8192] = "\n", mem[16];
	char path[] = "/tmp/colo-itest-repl-env-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	unlink(path);
	REQUIRE(run_rig("env", NULL, NULL, NULL, NULL, NULL, NULL, fd) == 0);
	ssize_t n = pread(fd, text + 1, sizeof(text) - 2, 0);
	close(fd);
	REQUIRE(n > 0);
	text[n + 1] = '\0';
	env_value(text, "RIG_PRI_QMP", rg->pri_qmp, sizeof(rg->pri_qmp));
	env_value(text, "RIG_SEC_QMP", rg->sec_qmp, sizeof(rg->sec_qmp));
	env_value(text, "RIG_PRI_RAM", rg->pri_ram, sizeof(rg->pri_ram));
	env_value(text, "RIG_SEC_RAM", rg->sec_ram, sizeof(rg->sec_ram));
	env_value(text, "RIG_PRI_SERIAL", rg->pri_serial, sizeof(rg->pri_serial));
	env_value(text, "RIG_SEC_SERIAL", rg->sec_serial, sizeof(rg->sec_serial));
	env_value(text, "RIG_SEC_REP_IP", rg->sec_rep_ip, sizeof(rg->sec_rep_ip));
	env_value(text, "RIG_MEM_MB", mem, sizeof(mem));
	rg->mem_mb = (unsigned)atoi(mem);
}

static void setup_rig(struct rig *rg)
{
	char preload[512], log[] = "/tmp/colo-itest-repl-up-XXXXXX";
	const char *build = getenv("COLO_BUILD");
	if (geteuid() != 0)
		test_skip("needs root (network namespaces, taps, QEMU)");
	if (!getenv("COLO_QEMU") || !getenv("COLO_GUEST") || !build)
		test_skip("COLO_QEMU/COLO_GUEST/COLO_BUILD unset (run through 'make test-integration')");
	/* Two TCG guests on a shared 2-core host: booting alone takes up to a minute. */
	alarm(600);
	signal(SIGALRM, on_alarm);
	atexit(rig_down_at_exit);
	rig_down(); /* a rig left over by an earlier run */
	snprintf(preload, sizeof(preload), "%s/libcolo-uffd.so", build);
	int fd = mkstemp(log);
	REQUIRE(fd >= 0);
	rig_up = 1;
	uint64_t t0 = mono_ms();
	int rc = run_rig("up", "--accel", "tcg", "--preload", preload, "--append", "colo.dirty=4", fd);
	if (rc != 0) {
		char tail[2048] = "";
		ssize_t n = pread(fd, tail, sizeof(tail) - 1, 0);
		fprintf(stderr, "    colo-rig up failed: %.*s\n", n > 0 ? (int)n : 0, tail);
	}
	close(fd);
	unlink(log);
	REQUIRE(rc == 0);
	fprintf(stderr, "    rig up in %.1f s\n", (double)(mono_ms() - t0) / 1000);
	read_env(rg);
}

/* ---- one VM's agent ------------------------------------------------------------------ */

struct side {
	struct itest *t;
	const char *name;
	struct qmp *q;
	struct replicator *r;
	int fdset, commits, loads, failed, failovers;
	char reason[1100];
	struct repl_stats last;
	uint64_t t_stop0, t_stopped, t_cont0, t_conted;
	uint64_t t_save0, t_saved; /* QEMU's device save (primary) */
	int save_fd;
};

struct itest {
	struct loop *loop;
	struct rig rg;
	struct side pri, sec;
	bool compare;          /* this checkpoint: primary held stopped, RAMs compared */
	int compares, diffs, qmp_errors;
	uint64_t mark;
	uint64_t next_timer;
	int beat_at_capture;   /* the primary's heartbeat when it was last stopped */
	off_t sec_serial_at_load;
	uint64_t eng_us[PHASE_B], pause_us[PHASE_B], save_us[PHASE_B], stop_us[PHASE_B],
		cont_us[PHASE_B], helper_us[PHASE_B];
	int nb;
};

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Complete "colo-heartbeat N" lines in path[from..to) (to 0: to the end). */
static void heartbeats(const char *path, off_t from, off_t to, int *first, int *last, int *n,
		       bool *mono)
{
	char line[512];
	int prev = -1;
	*first = *last = *n = 0;
	*mono = true;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	fseeko(f, from, SEEK_SET);
	while ((!to || ftello(f) < to) && fgets(line, sizeof(line), f)) {
		int v;
		const char *p = strstr(line, "colo-heartbeat ");
		if (!p || !strchr(p, '\n') || sscanf(p, "colo-heartbeat %d", &v) != 1)
			continue;
		if (!*n)
			*first = v;
		if (prev >= 0 && v != prev + 1)
			*mono = false;
		prev = *last = v;
		(*n)++;
	}
	fclose(f);
}

static void qmp_failed(struct itest *t, const char *what, const struct qmp_result *res)
{
	fprintf(stderr, "    %s: %d %s\n", what, res->err, res->error_desc ? res->error_desc : "");
	t->qmp_errors++;
}

static void ignore_reply(struct qmp *c, struct qmp_result *res, void *arg)
{
	if (res->err)
		qmp_failed(arg, "QMP", res);
}

static void exec(struct side *s, const char *cmd, struct qmp_args *a, qmp_exec_cb cb)
{
	if (qmp_exec(s->q, cmd, a, -1, CMD_MS, cb, s->t) < 0)
		s->t->qmp_errors++;
}

static struct qmp_args *fdset_args(int set, bool save)
{
	char path[32];
	struct qmp_args *a = qmp_args_new();
	snprintf(path, sizeof(path), "/dev/fdset/%d", set);
	qmp_args_str(a, "filename", path);
	if (save)
		qmp_args_bool(a, "live", false);
	return a;
}

static void remove_fdset(struct side *s, int set)
{
	qmp_remove_fd(s->q, set, -1, CMD_MS, ignore_reply, s->t);
}

/* Primary: stop, add-fd, save, pipelined; the answer once the save is done. */
static void pri_saved(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct itest *t = arg;
	t->pri.t_saved = mono_ns();
	if (res->err)
		qmp_failed(t, "xen-save-devices-state", res);
	repl_suspend_done(t->pri.r, res->err ? -EIO : 0, ++t->mark);
	remove_fdset(&t->pri, t->pri.fdset);
}

/* The save is issued once the stop is done, so its time is QEMU's save alone. */
static void pri_stopped(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct itest *t = arg;
	struct side *s = &t->pri;
	if (res->err)
		qmp_failed(t, "stop", res);
	t->pri.t_stopped = t->pri.t_save0 = mono_ns();
	repl_suspend_stopped(t->pri.r); /* the pages are copied while QEMU saves */
	if (qmp_add_fd(s->q, s->save_fd, s->fdset, CMD_MS, ignore_reply, t) < 0)
		t->qmp_errors++;
	exec(s, "xen-save-devices-state", fdset_args(s->fdset, true), pri_saved);
}

static void pri_suspend(struct replicator *r, int save_fd, void *arg)
{
	struct itest *t = arg;
	struct side *s = &t->pri;
	s->fdset++;
	s->save_fd = save_fd; /* the replicator's until repl_suspend_done */
	s->t_stop0 = mono_ns();
	exec(s, "stop", NULL, pri_stopped);
}

static void pri_conted(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct itest *t = arg;
	if (res->err)
		qmp_failed(t, "cont", res);
	t->pri.t_conted = mono_ns();
	repl_resume_done(t->pri.r, res->err ? -EIO : 0);
}

static void pri_resume(struct replicator *r, void *arg)
{
	struct itest *t = arg;
	int first, n;
	bool mono;
	off_t at_capture = file_size(t->rg.pri_serial);
	if (t->compare) { /* held stopped until the secondary has its RAM: see sec_load */
		repl_resume_done(r, 0);
	} else {
		t->pri.t_cont0 = mono_ns();
		exec(&t->pri, "cont", NULL, pri_conted);
	}
	/* after the cont went out: the log is not read inside the pause */
	heartbeats(t->rg.pri_serial, 0, at_capture, &first, &t->beat_at_capture, &n, &mono);
}

/* Secondary: stop, then its dirty list goes out. */
static void sec_stopped(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct itest *t = arg;
	if (res->err)
		qmp_failed(t, "stop (secondary)", res);
	repl_suspend_done(t->sec.r, res->err ? -EIO : 0, 0);
}

static void sec_suspend(struct replicator *r, int save_fd, void *arg)
{
	struct itest *t = arg;
	exec(&t->sec, "stop", NULL, sec_stopped);
}

static void sec_conted(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct itest *t = arg;
	if (res->err)
		qmp_failed(t, "cont (secondary)", res);
	repl_load_done(t->sec.r, res->err ? -EIO : 0);
	if (t->compare)
		exec(&t->pri, "cont", NULL, ignore_reply);
}

static void sec_loaded(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct itest *t = arg;
	remove_fdset(&t->sec, t->sec.fdset);
	if (res->err) {
		qmp_failed(t, "xen-load-devices-state", res);
		repl_load_done(t->sec.r, -EIO);
		return;
	}
	exec(&t->sec, "cont", NULL, sec_conted);
}

static uint64_t hash_file(const char *path, uint64_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	REQUIRE(p != MAP_FAILED);
	uint64_t h = XXH3_64bits(p, size);
	munmap(p, size);
	return h;
}

static void compare_rams(struct itest *t)
{
	uint64_t size = (uint64_t)t->rg.mem_mb << 20;
	uint64_t a = hash_file(t->rg.pri_ram, size), b = hash_file(t->rg.sec_ram, size);
	t->compares++;
	if (a != b)
		t->diffs++;
	fprintf(stderr, "    checkpoint %d: primary RAM %016llx, secondary RAM %016llx%s\n",
		t->sec.loads - 1, (unsigned long long)a, (unsigned long long)b,
		a == b ? "" : "  DIFFERENT");
}

static void sec_load(struct replicator *r, int load_fd, uint64_t mark, void *arg)
{
	struct itest *t = arg;
	struct side *s = &t->sec;
	s->loads++;
	if (mark != t->mark)
		fprintf(stderr, "    input mark %llu, the primary gave %llu\n",
			(unsigned long long)mark, (unsigned long long)t->mark);
	CHECK_EQ(mark, t->mark);
	if (t->compare)
		compare_rams(t);
	t->sec_serial_at_load = file_size(t->rg.sec_serial);
	s->fdset++;
	if (qmp_add_fd(s->q, load_fd, s->fdset, CMD_MS, ignore_reply, t) < 0)
		t->qmp_errors++;
	exec(s, "xen-load-devices-state", fdset_args(s->fdset, false), sec_loaded);
}

static int64_t next_checkpoint(struct loop *loop, uint64_t id, void *arg)
{
	struct itest *t = arg;
	t->next_timer = 0;
	t->compare = t->pri.commits <= PHASE_A;
	CHECK_EQ(repl_checkpoint(t->pri.r), 0);
	return LOOP_TIMER_DONE;
}

static void pri_phase_b(struct itest *t, const struct repl_stats *st)
{
	uint64_t save = (t->pri.t_saved - t->pri.t_save0) / 1000;
	if (t->nb >= PHASE_B)
		return;
	uint64_t stop = (t->pri.t_stopped - t->pri.t_stop0) / 1000;
	uint64_t cont = (t->pri.t_conted - t->pri.t_cont0) / 1000;
	t->pause_us[t->nb] = st->pause_us;
	t->save_us[t->nb] = save;
	t->stop_us[t->nb] = stop;
	t->cont_us[t->nb] = cont;
	t->helper_us[t->nb] = st->pause_us - save - stop - cont;
	t->eng_us[t->nb++] = st->pause_us - save;
}

static void committed(struct replicator *r, const struct repl_stats *st, void *arg)
{
	struct itest *t = arg;
	struct side *s = r == t->pri.r ? &t->pri : &t->sec;
	s->commits++;
	s->last = *st;
	if (s != &t->pri)
		return;
	fprintf(stderr, "    committed %llu: %llu+%llu dirty, %llu pages + %llu zero, device %llu B, pause %.2f ms (suspend %.2f, capture %.2f), transfer %.2f ms\n",
		(unsigned long long)st->seq, (unsigned long long)st->dirty_pages_local,
		(unsigned long long)st->dirty_pages_peer, (unsigned long long)st->pages_sent,
		(unsigned long long)st->zero_pages, (unsigned long long)st->device_state_bytes,
		(double)st->pause_us / 1000, (double)st->suspend_us / 1000,
		(double)st->capture_us / 1000, (double)st->transfer_us / 1000);
	if (st->seq > PHASE_A)
		pri_phase_b(t, st);
	if (s->commits <= MAX_CKPT)
		loop_timer_add(t->loop, s->commits <= PHASE_A ? 1000 : 250, next_checkpoint, t,
			       &t->next_timer);
}

static void failover_ready(struct replicator *r, void *arg)
{
	((struct itest *)arg)->sec.failovers++;
}

static void failed(struct replicator *r, enum repl_failure why, const char *reason, void *arg)
{
	struct itest *t = arg;
	struct side *s = r == t->pri.r ? &t->pri : &t->sec;
	s->failed++;
	snprintf(s->reason, sizeof(s->reason), "%s: %s", repl_failure_name(why), reason);
	fprintf(stderr, "    %s failed: %s\n", s->name, s->reason);
}

static const struct repl_ops pri_ops = { pri_suspend, pri_resume, NULL, committed, NULL, failed, NULL };
static const struct repl_ops sec_ops = { sec_suspend, NULL, sec_load, committed, failover_ready,
					 failed, NULL };

/* ---- setup ----------------------------------------------------------------------------- */

static void connect_qmp(struct itest *t, struct side *s, const char *path)
{
	s->t = t;
	REQUIRE(qmp_connect(t->loop, path, &(struct qmp_handlers){ 0 }, &s->q) == 0);
	uint64_t until = mono_ms() + 10000;
	while (!qmp_is_ready(s->q) && mono_ms() < until)
		loop_run_once(t->loop, 10);
	REQUIRE(qmp_is_ready(s->q));
}

/* Fork the helper inside the host's namespace: it inherits it. */
static void start_in(struct itest *t, struct side *s, const char *ns, struct repl_config *cfg,
		     const struct repl_ops *ops)
{
	char path[128];
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	REQUIRE(self >= 0 && fd >= 0);
	REQUIRE(setns(fd, CLONE_NEWNET) == 0);
	cfg->qemu_pid = qmp_peer_pid(s->q);
	int rc = repl_start(t->loop, cfg, ops, t, &s->r);
	REQUIRE(setns(self, CLONE_NEWNET) == 0);
	close(fd);
	close(self);
	REQUIRE(rc == 0);
}

static void start_replication(struct itest *t)
{
	static const char machine[] = "pc accel=tcg cpu=max smp=1 m=128M e1000 (rig)";
	struct repl_config cfg = { .role = REPL_SECONDARY, .ram_path = t->rg.sec_ram,
				   .ram_size = (uint64_t)t->rg.mem_mb << 20,
				   .config_hash = stream_config_hash(machine, sizeof(machine) - 1),
				   .peer_host = t->rg.sec_rep_ip, .peer_port = REP_PORT,
				   .connect_timeout_ms = 10000 };
	t->pri.name = "primary";
	t->sec.name = "secondary";
	start_in(t, &t->sec, PREFIX "-sec", &cfg, &sec_ops);
	cfg.role = REPL_PRIMARY;
	cfg.ram_path = t->rg.pri_ram;
	start_in(t, &t->pri, PREFIX "-pri", &cfg, &pri_ops);
	t->compare = true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void print_dist(const char *what, uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	fprintf(stderr, "    %-40s min %.2f  p50 %.2f  p90 %.2f  max %.2f ms\n", what,
		(double)v[0] / 1000, (double)v[n / 2] / 1000, (double)v[n * 9 / 10] / 1000,
		(double)v[n - 1] / 1000);
}

/* ---- the test ---------------------------------------------------------------------------- */

static void failover_and_check(struct itest *t)
{
	int first, last, n;
	bool mono;
	off_t from = t->sec_serial_at_load;
	fprintf(stderr, "    failover: killing the primary QEMU (pid %d); the primary's last heartbeat at capture: %d\n",
		(int)qmp_peer_pid(t->pri.q), t->beat_at_capture);
	kill(qmp_peer_pid(t->pri.q), SIGKILL);
	CHECK_EQ(repl_failover(t->sec.r), 0); /* as the heartbeat would */
	repl_free(t->pri.r);                  /* the primary agent is gone with its host */
	t->pri.r = NULL;
	uint64_t until = mono_ms() + 10000;
	while (!t->sec.failovers && !t->sec.failed && mono_ms() < until)
		loop_run_once(t->loop, 10);
	CHECK_EQ(t->sec.failovers, 1);
	exec(&t->sec, "cont", NULL, ignore_reply); /* already running: a no-op */
	until = mono_ms() + 30000;
	do {
		loop_run_once(t->loop, 200);
		heartbeats(t->rg.sec_serial, from, 0, &first, &last, &n, &mono);
	} while (n < 4 && mono_ms() < until);
	fprintf(stderr, "    secondary's heartbeats since its last load: %d..%d (%d lines)%s\n", first,
		last, n, mono ? "" : ", NOT consecutive");
	CHECK(n >= 4);
	CHECK(mono);
	/* it continues the primary's count: it neither restarts nor goes back */
	CHECK(first >= t->beat_at_capture && first <= t->beat_at_capture + 2);
}

static void test_replicate_checkpoint_and_fail_over(void)
{
	struct itest t = { 0 };
	log_init("itest_repl", LOG_INFO);
	setup_rig(&t.rg);
	REQUIRE(loop_new(&t.loop) == 0);
	connect_qmp(&t, &t.pri, t.rg.pri_qmp);
	connect_qmp(&t, &t.sec, t.rg.sec_qmp);
	start_replication(&t);
	uint64_t until = mono_ms() + 240000;
	while ((t.pri.commits <= MAX_CKPT || t.sec.commits <= MAX_CKPT) && !t.pri.failed &&
	       !t.sec.failed && mono_ms() < until)
		loop_run_once(t.loop, 50);
	CHECK_EQ(t.pri.failed + t.sec.failed, 0);
	CHECK_EQ(t.qmp_errors, 0);
	CHECK_EQ(t.pri.commits, MAX_CKPT + 1);
	CHECK_EQ(t.sec.commits, MAX_CKPT + 1);
	CHECK_EQ(t.compares, PHASE_A + 1);
	CHECK_EQ(t.diffs, 0);
	CHECK(t.pri.last.device_state_bytes > 4096);
	if (t.nb == PHASE_B) {
		fprintf(stderr, "    real QEMU, %d checkpoints 250 ms apart, guest dirtying 4 MiB/s:\n", t.nb);
		print_dist("pause (stop .. cont done)", t.pause_us, t.nb);
		print_dist("QEMU device save (xen-save-devices-state)", t.save_us, t.nb);
		print_dist("pause minus device save", t.eng_us, t.nb);
		print_dist("  of which QMP stop round trip", t.stop_us, t.nb);
		print_dist("  of which QMP cont round trip", t.cont_us, t.nb);
		print_dist("  of which the engine (2 msgs, leftovers)", t.helper_us, t.nb);
	}
	REQUIRE(t.pri.commits == MAX_CKPT + 1 && !t.sec.failed);
	failover_and_check(&t);
	qmp_free(t.pri.q);
	qmp_free(t.sec.q);
	repl_free(t.sec.r);
	loop_free(t.loop);
	rig_down();
}

static const struct test tests[] = {
	TEST(test_replicate_checkpoint_and_fail_over),
	{ 0 },
};
TEST_MAIN(tests)
