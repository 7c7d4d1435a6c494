/* Integration tests of qmp/ against the rig's fixed QEMU (COLO_QEMU) and guest
 * (COLO_GUEST): negotiation, status, stop/cont events, errors, timeouts against a
 * stopped QEMU, connection loss, and xen-save/load-devices-state through passed fds,
 * moving a running guest from one QEMU to another.
 *
 * Every QEMU started here dies with the test: PR_SET_PDEATHSIG in QEMU, an atexit
 * handler, and a SIGALRM handler (the harness's timeout) that kill them and remove
 * their files. Accelerator: COLO_ACCEL (default tcg: KVM on these nested hosts
 * starts QEMU but did not boot the guest within 70 s). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/loop.h"
#include "qmp/qmp.h"
#include "tests/harness/test.h"

#define MAX_VMS 4
#define BOOT_TIMEOUT_MS 45000
#define CMD_TIMEOUT_MS 10000

struct vm {
	pid_t pid;
	char sock[160], serial[160], ram[160], log[160];
};

/* Everything to clean up, reachable from a signal handler. */
static struct {
	char dir[64];
	pid_t pids[MAX_VMS];
	char files[4 * MAX_VMS + 4][160];
	int nfiles;
} reg;

static void cleanup(void)
{
	for (int i = 0; i < MAX_VMS; i++) {
		if (reg.pids[i] > 0) {
			kill(reg.pids[i], SIGKILL);
			waitpid(reg.pids[i], NULL, 0);
			reg.pids[i] = 0;
		}
	}
	for (int i = 0; i < reg.nfiles; i++)
		unlink(reg.files[i]);
	if (reg.dir[0])
		rmdir(reg.dir);
}

static void on_alarm(int sig)
{
	cleanup(); /* kill, waitpid, unlink, rmdir: async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

static const char *need_env(const char *name)
{
	const char *v = getenv(name);
	if (!v || !v[0])
		test_skip("%s is unset (run through 'make test-integration')", name);
	return v;
}

static void setup(void)
{
	need_env("COLO_QEMU");
	need_env("COLO_GUEST");
	snprintf(reg.dir, sizeof(reg.dir), "/tmp/colo-itest-qmp-XXXXXX");
	REQUIRE(mkdtemp(reg.dir));
	atexit(cleanup);
	signal(SIGALRM, on_alarm);
}

static const char *track(const char *dir, const char *name, const char *file, char *out)
{
	snprintf(out, 160, "%s/%s-%s", dir, name, file);
	snprintf(reg.files[reg.nfiles++], 160, "%s", out);
	return out;
}

/* Start QEMU `name` (paused with -S if asked); its files live in reg.dir. */
static void vm_start(struct vm *vm, const char *name, bool paused)
{
	const char *qemu = need_env("COLO_QEMU"), *guest = need_env("COLO_GUEST");
	const char *accel = getenv("COLO_ACCEL") ? getenv("COLO_ACCEL") : "tcg";
	char machine[64], mem[256], kernel[256], initrd[256], serial[200], qmp[200];
	*vm = (struct vm){ 0 };
	track(reg.dir, name, "qmp.sock", vm->sock);
	track(reg.dir, name, "serial.log", vm->serial);
	track(reg.dir, name, "ram", vm->ram);
	track(reg.dir, name, "qemu.log", vm->log);
	snprintf(machine, sizeof(machine), "pc,accel=%s,memory-backend=ram0", accel);
	snprintf(mem, sizeof(mem), "memory-backend-file,id=ram0,size=128M,mem-path=%s,share=on",
		 vm->ram);
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", guest);
	snprintf(initrd, sizeof(initrd), "%s/initrd.img", guest);
	snprintf(serial, sizeof(serial), "file:%s", vm->serial);
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", vm->sock);
	char *argv[] = { (char *)qemu, "-machine", machine, "-m", "128M", "-object", mem,
			 "-nodefaults", "-display", "none", "-no-user-config",
			 "-L", "/usr/share/qemu", "-L", "/usr/share/seabios",
			 "-global", "migration.send-configuration=off",
			 "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0",
			 "-serial", serial, "-qmp", qmp, paused ? "-S" : NULL, NULL };
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with the test, whatever kills it */
		int fd = open(vm->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execv(qemu, argv);
		_exit(127);
	}
	vm->pid = pid;
	for (int i = 0; i < MAX_VMS; i++)
		if (!reg.pids[i]) {
			reg.pids[i] = pid;
			break;
		}
}

static void vm_kill(struct vm *vm)
{
	for (int i = 0; i < MAX_VMS; i++)
		if (reg.pids[i] == vm->pid)
			reg.pids[i] = 0;
	kill(vm->pid, SIGKILL);
	waitpid(vm->pid, NULL, 0);
}

/* ------------------------------------------------------------- a session --- */

struct session {
	struct loop *loop;
	struct qmp *c;
	int ready, broken, broken_err;
	char broken_why[256];
	char events[32][24];
	int nevents;
};

static void on_ready(struct qmp *c, void *arg)
{
	((struct session *)arg)->ready++;
}

static void on_broken(struct qmp *c, int err, const char *why, void *arg)
{
	struct session *s = arg;
	s->broken++;
	s->broken_err = err;
	snprintf(s->broken_why, sizeof(s->broken_why), "%s", why);
}

static void on_event(struct qmp *c, const struct qmp_event *ev, void *arg)
{
	struct session *s = arg;
	if (s->nevents < 32)
		snprintf(s->events[s->nevents++], sizeof(s->events[0]), "%s", ev->name);
	CHECK(ev->seconds > 1600000000); /* QEMU's wall-clock timestamp */
}

#define RUN_UNTIL(loop, cond, ms)                               \
	do {                                                    \
		uint64_t until_ = mono_ms() + (uint64_t)(ms);  \
		while (!(cond) && mono_ms() < until_)           \
			loop_run_once((loop), 10);              \
	} while (0)

/* Connect once QEMU's socket is there, and negotiate. */
static void connect_vm(struct session *s, struct loop *loop, const struct vm *vm)
{
	struct qmp_handlers h = { .ready = on_ready, .broken = on_broken, .arg = s };
	*s = (struct session){ .loop = loop };
	int r = -ENOENT;
	for (int i = 0; i < 500 && r < 0; i++) {
		r = qmp_connect(loop, vm->sock, &h, &s->c);
		if (r < 0)
			usleep(20000);
	}
	if (r < 0)
		fprintf(stderr, "    cannot connect to %s: %s (see %s)\n", vm->sock, strerror(-r),
			vm->log);
	REQUIRE(r == 0);
	REQUIRE(qmp_subscribe(s->c, NULL, on_event, s) > 0);
	RUN_UNTIL(loop, s->ready || s->broken, 10000);
	REQUIRE(s->ready == 1);
}

struct reply {
	int calls, err;
	char cls[64], desc[512];
	yajl_val ret;
};

static void on_reply(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct reply *r = arg;
	r->calls++;
	r->err = res->err;
	snprintf(r->cls, sizeof(r->cls), "%s", res->error_class ? res->error_class : "");
	snprintf(r->desc, sizeof(r->desc), "%s", res->error_desc ? res->error_desc : "");
	if (res->err == 0) {
		r->ret = res->ret;
		res->ret = NULL;
	}
}

/* Run one command to completion on the session's loop; the caller frees r->ret. */
static void call(struct session *s, const char *name, struct qmp_args *a, int fd,
		 struct reply *r)
{
	*r = (struct reply){ 0 };
	REQUIRE(qmp_exec(s->c, name, a, fd, CMD_TIMEOUT_MS, on_reply, r) == 0);
	RUN_UNTIL(s->loop, r->calls, CMD_TIMEOUT_MS + 1000);
	REQUIRE(r->calls == 1);
	if (r->err)
		fprintf(stderr, "    %s: %d %s %s\n", name, r->err, r->cls, r->desc);
}

static void call_ok(struct session *s, const char *name, struct qmp_args *a, int fd,
		    struct reply *r)
{
	call(s, name, a, fd, r);
	REQUIRE(r->err == 0);
}

static bool saw_event(const struct session *s, const char *name)
{
	for (int i = 0; i < s->nevents; i++)
		if (strcmp(s->events[i], name) == 0)
			return true;
	return false;
}

static const char *status_of(struct session *s, bool *running)
{
	static char status[32];
	struct reply r;
	call_ok(s, "query-status", NULL, -1, &r);
	snprintf(status, sizeof(status), "%s", qmp_get_str(r.ret, "status") ?: "?");
	CHECK_EQ(qmp_get_bool(r.ret, "running", running), 0);
	yajl_tree_free(r.ret);
	return status;
}

/* First and last "colo-heartbeat N" in a serial log (0 when none); only complete
 * lines count, as a VM may stop in the middle of writing one. */
static void heartbeats(const char *path, int *first, int *last)
{
	*first = *last = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		int n;
		const char *p = strstr(line, "colo-heartbeat ");
		if (p && strchr(p, '\n') && sscanf(p, "colo-heartbeat %d", &n) == 1) {
			if (!*first)
				*first = n;
			*last = n;
		}
	}
	fclose(f);
}

static int wait_heartbeat(struct loop *loop, const char *serial, int at_least, int ms)
{
	int first, last;
	uint64_t until = mono_ms() + (uint64_t)ms;
	do {
		loop_run_once(loop, 200); /* keeps the QMP sessions serviced */
		heartbeats(serial, &first, &last);
	} while (last < at_least && mono_ms() < until);
	return last;
}

/* --------------------------------------------------------------------- tests --- */

static void test_negotiation_status_version(void)
{
	struct loop *loop;
	struct session s;
	struct vm a;
	setup();
	REQUIRE(loop_new(&loop) == 0);
	vm_start(&a, "a", false);
	connect_vm(&s, loop, &a);
	CHECK(qmp_oob_enabled(s.c)); /* QEMU 7.2 offers oob on a socket monitor */
	CHECK_EQ(qmp_peer_pid(s.c), a.pid);
	bool running = false;
	CHECK(strcmp(status_of(&s, &running), "running") == 0);
	CHECK(running);
	struct reply r;
	call_ok(&s, "query-version", NULL, -1, &r);
	const char *package = qmp_get_str(r.ret, "package");
	CHECK(package && strstr(package, "colo"));
	const char *qp[] = { "qemu", NULL };
	int64_t major = 0;
	CHECK_EQ(qmp_get_int(yajl_tree_get(r.ret, qp, yajl_t_object), "major", &major), 0);
	CHECK(major >= 7);
	yajl_tree_free(r.ret);
	/* the longest reply QEMU has fits our line limit */
	call_ok(&s, "query-qmp-schema", NULL, -1, &r);
	CHECK(YAJL_IS_ARRAY(r.ret) && r.ret->u.array.len > 100);
	yajl_tree_free(r.ret);
	qmp_free(s.c);
	vm_kill(&a);
	loop_free(loop);
}

static void test_stop_cont_events(void)
{
	struct loop *loop;
	struct session s;
	struct vm a;
	struct reply r;
	bool running = true;
	setup();
	REQUIRE(loop_new(&loop) == 0);
	vm_start(&a, "a", false);
	connect_vm(&s, loop, &a);
	call_ok(&s, "stop", NULL, -1, &r);
	yajl_tree_free(r.ret);
	RUN_UNTIL(loop, saw_event(&s, "STOP"), 5000);
	CHECK(saw_event(&s, "STOP"));
	CHECK(strcmp(status_of(&s, &running), "paused") == 0);
	CHECK(!running);
	call_ok(&s, "cont", NULL, -1, &r);
	yajl_tree_free(r.ret);
	RUN_UNTIL(loop, saw_event(&s, "RESUME"), 5000);
	CHECK(saw_event(&s, "RESUME"));
	CHECK(strcmp(status_of(&s, &running), "running") == 0);
	CHECK(running);
	qmp_free(s.c);
	vm_kill(&a);
	loop_free(loop);
}

static void expect_error(struct session *s, const char *name, struct qmp_args *a, int fd,
			 const char *cls, const char *desc)
{
	struct reply r;
	call(s, name, a, fd, &r);
	CHECK_EQ(r.err, -EREMOTEIO);
	if (strcmp(r.cls, cls) != 0 || !strstr(r.desc, desc))
		fprintf(stderr, "    %s: want %s \"%s\"\n", name, cls, desc);
	CHECK(strcmp(r.cls, cls) == 0);
	CHECK(strstr(r.desc, desc) != NULL);
}

static void test_errors_from_wrong_arguments(void)
{
	struct loop *loop;
	struct session s;
	struct vm a;
	setup();
	REQUIRE(loop_new(&loop) == 0);
	vm_start(&a, "a", false);
	connect_vm(&s, loop, &a);
	struct qmp_args *args = qmp_args_new();
	qmp_args_int(args, "bogus", 1);
	expect_error(&s, "query-status", args, -1, "GenericError", "Parameter 'bogus' is unexpected");
	expect_error(&s, "xen-save-devices-state", NULL, -1, "GenericError",
		     "Parameter 'filename' is missing");
	args = qmp_args_new();
	qmp_args_str(args, "filename", "/dev/fdset/4242");
	qmp_args_bool(args, "live", false);
	expect_error(&s, "xen-save-devices-state", args, -1, "GenericError", "fdset");
	args = qmp_args_new();
	qmp_args_str(args, "filename", "/dev/null");
	expect_error(&s, "xen-load-devices-state", args, -1, "GenericError",
		     "Cannot update device state while vm is running");
	expect_error(&s, "add-fd", NULL, -1, "GenericError", "No file descriptor supplied");
	expect_error(&s, "no-such-command", NULL, -1, "CommandNotFound", "no-such-command");
	CHECK(qmp_is_ready(s.c)); /* errors are answers, not broken connections */
	qmp_free(s.c);
	vm_kill(&a);
	loop_free(loop);
}

static void test_timeout_late_reply_and_loss(void)
{
	struct loop *loop;
	struct session s;
	struct vm a;
	struct reply slow = { 0 }, pending = { 0 }, r;
	setup();
	REQUIRE(loop_new(&loop) == 0);
	vm_start(&a, "a", false);
	connect_vm(&s, loop, &a);
	/* a frozen QEMU: the command times out; its late reply is dropped quietly */
	kill(a.pid, SIGSTOP);
	REQUIRE(qmp_exec(s.c, "query-status", NULL, -1, 200, on_reply, &slow) == 0);
	RUN_UNTIL(loop, slow.calls, 3000);
	CHECK_EQ(slow.calls, 1);
	CHECK_EQ(slow.err, -ETIMEDOUT);
	kill(a.pid, SIGCONT);
	call_ok(&s, "query-status", NULL, -1, &r);
	yajl_tree_free(r.ret);
	CHECK_EQ(slow.calls, 1);
	CHECK(qmp_is_ready(s.c));
	/* QEMU dies with a command pending: the caller hears about it once */
	kill(a.pid, SIGSTOP);
	REQUIRE(qmp_exec(s.c, "query-status", NULL, -1, QMP_NO_TIMEOUT, on_reply, &pending) == 0);
	RUN_UNTIL(loop, false, 100);
	vm_kill(&a);
	RUN_UNTIL(loop, s.broken, 5000);
	CHECK_EQ(s.broken, 1);
	CHECK_EQ(s.broken_err, -ECONNRESET);
	CHECK_EQ(pending.calls, 1);
	CHECK_EQ(pending.err, -ECONNRESET);
	qmp_free(s.c);
	loop_free(loop);
}

/* add-fd of `fd` and return the fdset id. */
static int64_t add_fd(struct session *s, int fd)
{
	struct reply r = { 0 };
	int64_t set = -1;
	REQUIRE(qmp_add_fd(s->c, fd, -1, CMD_TIMEOUT_MS, on_reply, &r) == 0);
	RUN_UNTIL(s->loop, r.calls, CMD_TIMEOUT_MS);
	REQUIRE(r.calls == 1 && r.err == 0);
	CHECK_EQ(qmp_get_int(r.ret, "fdset-id", &set), 0);
	yajl_tree_free(r.ret);
	return set;
}

static void remove_fdset(struct session *s, int64_t set)
{
	struct reply r = { 0 };
	REQUIRE(qmp_remove_fd(s->c, set, -1, CMD_TIMEOUT_MS, on_reply, &r) == 0);
	RUN_UNTIL(s->loop, r.calls, CMD_TIMEOUT_MS);
	CHECK_EQ(r.err, 0);
	yajl_tree_free(r.ret);
}

static void device_state(struct session *s, const char *cmd, int64_t set, bool save)
{
	char path[64];
	struct reply r;
	snprintf(path, sizeof(path), "/dev/fdset/%lld", (long long)set);
	struct qmp_args *a = qmp_args_new();
	qmp_args_str(a, "filename", path);
	if (save)
		qmp_args_bool(a, "live", false);
	uint64_t t0 = mono_ns();
	call_ok(s, cmd, a, -1, &r);
	fprintf(stderr, "    %s took %.2f ms\n", cmd, (double)(mono_ns() - t0) / 1e6);
	yajl_tree_free(r.ret);
}

static void copy_file_in_place(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = open(to, O_WRONLY | O_CLOEXEC);
	REQUIRE(in >= 0 && out >= 0);
	static char buf[1 << 20];
	ssize_t n;
	off_t off = 0;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		REQUIRE(pwrite(out, buf, (size_t)n, off) == n);
		off += n;
	}
	REQUIRE(n == 0);
	close(in);
	close(out);
}

static void test_save_and_load_device_state_moves_the_guest(void)
{
	struct loop *loop;
	struct session sa, sb;
	struct vm a, b;
	struct reply r;
	bool running = true;
	char state[160];
	setup();
	REQUIRE(loop_new(&loop) == 0);
	vm_start(&a, "a", false);
	connect_vm(&sa, loop, &a);
	int beat = wait_heartbeat(loop, a.serial, 3, BOOT_TIMEOUT_MS);
	if (beat < 3)
		fprintf(stderr, "    guest A did not reach heartbeat 3 (see %s)\n", a.serial);
	REQUIRE(beat >= 3);

	/* A: stop, save the device state into a file QEMU never opens by path */
	call_ok(&sa, "stop", NULL, -1, &r);
	yajl_tree_free(r.ret);
	int first_a, last_a;
	heartbeats(a.serial, &first_a, &last_a);
	track(reg.dir, "a", "devstate", state);
	int fd = open(state, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	REQUIRE(fd >= 0);
	int64_t set = add_fd(&sa, fd);
	close(fd);
	device_state(&sa, "xen-save-devices-state", set, true);
	remove_fdset(&sa, set);
	CHECK(strcmp(status_of(&sa, &running), "paused") == 0); /* stopped before: stays so */
	struct stat st;
	REQUIRE(stat(state, &st) == 0);
	CHECK(st.st_size > 4096);
	fprintf(stderr, "    device state: %lld bytes; A stopped after heartbeat %d\n",
		(long long)st.st_size, last_a);

	/* B: same configuration, -S; A's RAM copied into B's backend file in place */
	vm_start(&b, "b", true);
	connect_vm(&sb, loop, &b);
	CHECK(strcmp(status_of(&sb, &running), "prelaunch") == 0);
	copy_file_in_place(a.ram, b.ram);
	vm_kill(&a); /* from here on only B runs the guest */
	fd = open(state, O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	set = add_fd(&sb, fd);
	close(fd);
	device_state(&sb, "xen-load-devices-state", set, false);
	remove_fdset(&sb, set);
	call_ok(&sb, "cont", NULL, -1, &r);
	yajl_tree_free(r.ret);
	RUN_UNTIL(loop, saw_event(&sb, "RESUME"), 5000);
	CHECK(saw_event(&sb, "RESUME"));

	/* B continues A's count; a restarted guest would begin at 1 */
	int last_b = wait_heartbeat(loop, b.serial, last_a + 2, 15000);
	int first_b;
	heartbeats(b.serial, &first_b, &last_b);
	fprintf(stderr, "    B's serial: heartbeats %d..%d\n", first_b, last_b);
	CHECK(first_b > 1);
	CHECK(first_b >= last_a && first_b <= last_a + 2);
	CHECK(last_b >= last_a + 2); /* and keeps counting */
	CHECK(strcmp(status_of(&sb, &running), "running") == 0);
	qmp_free(sa.c);
	qmp_free(sb.c);
	vm_kill(&b);
	loop_free(loop);
}

static const struct test tests[] = {
	TEST(test_negotiation_status_version),
	TEST(test_stop_cont_events),
	TEST(test_errors_from_wrong_arguments),
	TEST(test_timeout_late_reply_and_loss),
	TEST(test_save_and_load_device_state_moves_the_guest),
	{ 0 },
};
TEST_MAIN(tests)
