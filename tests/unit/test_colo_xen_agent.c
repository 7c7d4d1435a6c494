/* The agent with the Xen backend: a fake replicator (the repl_iface seam), the real
 * backend_xen.c over a fake Xen device model (test_colo_xen_fake.h), and a real
 * heartbeat peer on localhost. Checked: on_logdirty -> xen-set-global-dirty-log ->
 * logdirty_done; the replicator's Xen configuration; disk replication started,
 * checkpointed, checked after every commit, stopped when degraded and failed over
 * with failover:true before the secondary runs as the active VM; a replication
 * error reported by QEMU becomes the disk-error event. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/mman.h>

#include "colo/agent.h"
#include "colo/agent_int.h"
#include "colo/backend.h"
#include "colo/heartbeat.h"
#include "colo/repl_iface.h"
#include "tests/unit/test_colo_xen_fake.h"

/* --- fake replicator ------------------------------------------------------------ */

struct fake_repl {
	struct repl_ops ops;
	void *arg;
	struct repl_config cfg;
	char helper[256];
	int started, freed, failovers;
	int suspend_done, resume_done, load_done, logdirty_done;
	int last_err, logdirty_err;
	int ncmds_at_start; /* the fake QEMU's command count when the replicator started */
} FR;
static struct xfake XF;

#define FAKE_R ((struct replicator *)&FR)

static int fr_start(struct loop *loop, const struct repl_config *cfg, const struct repl_ops *ops,
		    void *arg, struct replicator **out)
{
	FR.ops = *ops;
	FR.arg = arg;
	FR.cfg = *cfg;
	snprintf(FR.helper, sizeof(FR.helper), "%s", cfg->xen_helper ? cfg->xen_helper : "");
	FR.started++;
	FR.ncmds_at_start = XF.ncmds;
	*out = FAKE_R;
	return 0;
}
static int fr_checkpoint(struct replicator *r)
{
	return 0;
}
static void fr_suspend_done(struct replicator *r, int err, uint64_t mark)
{
	FR.suspend_done++;
	FR.last_err = err;
}
static void fr_resume_done(struct replicator *r, int err)
{
	FR.resume_done++;
	FR.last_err = err;
}
static void fr_load_done(struct replicator *r, int err)
{
	FR.load_done++;
	FR.last_err = err;
}
static int fr_failover(struct replicator *r)
{
	FR.failovers++;
	return 0;
}
static void fr_free(struct replicator *r)
{
	FR.freed++;
}
static void fr_logdirty_done(struct replicator *r, int err)
{
	FR.logdirty_done++;
	FR.logdirty_err = err;
}
static const struct colo_repl fake_repl = {
	.start = fr_start, .checkpoint = fr_checkpoint, .suspend_done = fr_suspend_done,
	.resume_done = fr_resume_done, .load_done = fr_load_done, .failover = fr_failover,
	.free = fr_free, .logdirty_done = fr_logdirty_done,
};

/* --- the rig ---------------------------------------------------------------------- */

struct rig {
	struct loop *loop;
	struct agent *a;
	struct backend *be;
	struct backend_info vm;
	struct agent_config cfg;
	struct heartbeat *peer;
	int fd; /* a device-state file, both ways */
};

static uint16_t free_port(void)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	REQUIRE(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	REQUIRE(getsockname(s, (struct sockaddr *)&a, &len) == 0);
	close(s);
	return ntohs(a.sin_port);
}

static bool rig_wait(struct rig *r, int *counter, int want, unsigned max_ms)
{
	uint64_t t0 = mono_ms();
	while (*counter < want && mono_ms() - t0 < max_ms)
		loop_run_once(r->loop, 2);
	return *counter >= want;
}

static bool rig_wait_state(struct rig *r, enum agent_state s, unsigned max_ms)
{
	uint64_t t0 = mono_ms();
	while (agent_state(r->a) != s && mono_ms() - t0 < max_ms)
		loop_run_once(r->loop, 2);
	if (agent_state(r->a) != s)
		fprintf(stderr, "    waited for %s, still %s\n", agent_state_name(s),
			agent_state_name(agent_state(r->a)));
	return agent_state(r->a) == s;
}

/* Run until the fake QEMU saw n commands called name. */
static bool rig_wait_cmd(struct rig *r, const char *name, int n)
{
	uint64_t t0 = mono_ms();
	while (xf_count(&XF, name) < n && mono_ms() - t0 < 2000)
		loop_run_once(r->loop, 2);
	return xf_count(&XF, name) >= n;
}

static void rig_start(struct rig *r, enum agent_role role, bool disk, const char *fail_cmd)
{
	char addr[64];
	memset(&FR, 0, sizeof(FR));
	memset(&XF, 0, sizeof(XF));
	REQUIRE(loop_new(&r->loop) == 0);
	XF.status = role == ROLE_PRIMARY ? "running" : "prelaunch";
	XF.fail_cmd = fail_cmd;
	xf_start(&XF, r->loop);
	config_defaults(&r->cfg);
	r->cfg.role = role;
	r->cfg.role_set = true;
	r->cfg.backend = BACKEND_XEN;
	r->cfg.domid = 42;
	r->cfg.domid_set = true;
	r->cfg.disk_repl = disk;
	snprintf(r->cfg.xen_helper, sizeof(r->cfg.xen_helper), "/opt/colo/colo-xen-helper");
	REQUIRE(colo_addr_parse("10.77.0.2:7700", 7700, &r->cfg.repl) == 0);
	uint16_t own = free_port(), peer = free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", own);
	REQUIRE(colo_addr_parse(addr, 1, &r->cfg.hb_bind) == 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", peer);
	REQUIRE(colo_addr_parse(addr, 1, &r->cfg.hb_peer) == 0);
	r->cfg.hb_interval_ms = 10;
	r->cfg.hb_misses = 10;
	r->cfg.min_interval_ms = 20;
	r->cfg.max_interval_ms = 5000;
	REQUIRE(backend_xen_open(r->loop, XF.srv.path, 42, 1ull << 30, &r->be) == 0);
	r->vm = (struct backend_info){ .running = role == ROLE_PRIMARY, .ram_size = 1ull << 30,
				       .pid = getpid(), .config_hash = 0xfeed,
				       .version = "7.2.22 (colo-rig-yankfix)" };
	snprintf(r->vm.status, sizeof(r->vm.status), "%s", XF.status);
	char why[200];
	CHECK(agent_check_vm(&r->cfg, &r->vm, why, sizeof(why)) == 0); /* no RAM file on Xen */
	struct agent_deps deps = { r->be, &r->vm, &fake_repl, NULL };
	REQUIRE(agent_new(r->loop, &r->cfg, &deps, &r->a) == 0);
	r->fd = memfd_create("devstate", MFD_CLOEXEC);
	REQUIRE(r->fd >= 0);
	struct hb_config c = { .interval_ms = 10, .misses = 10,
			       .state = role == ROLE_PRIMARY ? AS_WAITING : AS_SYNCING,
			       .role = role == ROLE_PRIMARY ? HB_ROLE_SECONDARY : HB_ROLE_PRIMARY };
	c.bind = r->cfg.hb_peer.sa;
	c.bind_len = r->cfg.hb_peer.salen;
	c.peer = r->cfg.hb_bind.sa;
	c.peer_len = r->cfg.hb_bind.salen;
	REQUIRE(heartbeat_start(r->loop, &c, NULL, &r->peer) == 0);
	REQUIRE(agent_start(r->a) == 0);
}

static void rig_stop(struct rig *r)
{
	agent_free(r->a);
	heartbeat_free(r->peer);
	backend_free(r->be);
	xf_stop(&XF);
	close(r->fd);
	loop_free(r->loop);
}

static void commit(uint64_t seq)
{
	struct repl_stats st = { .seq = seq, .pages_sent = 10 };
	FR.ops.on_committed(FAKE_R, &st, FR.arg);
}

/* --- tests ------------------------------------------------------------------------ */

static void test_logdirty_through_qmp(void)
{
	struct rig r = { 0 };
	rig_start(&r, ROLE_PRIMARY, false, NULL);
	REQUIRE(FR.started == 1);
	/* The replicator learns it drives a Xen domain, and which helper to run. */
	CHECK_EQ(FR.cfg.vm, REPL_VM_XEN);
	CHECK_EQ(FR.cfg.xen_domid, 42);
	CHECK(!strcmp(FR.helper, "/opt/colo/colo-xen-helper"));
	CHECK(FR.cfg.ram_path == NULL); /* no RAM file on Xen: libxc maps the domain */
	CHECK_EQ(FR.cfg.ram_size, 1ull << 30);
	CHECK_EQ(agent_state(r.a), AS_SYNCING);

	FR.ops.on_logdirty(FAKE_R, true, FR.arg);
	CHECK_EQ(FR.logdirty_done, 0); /* answered later, by QEMU's reply */
	REQUIRE(rig_wait(&r, &FR.logdirty_done, 1, 2000));
	CHECK_EQ(FR.logdirty_err, 0);
	int i = xf_find(&XF, "xen-set-global-dirty-log", 0);
	REQUIRE(i >= 0);
	CHECK(!strcmp(XF.args[i], "{\"enable\":true}"));

	/* QEMU refuses: the replicator gets the error, the agent stays put. */
	XF.fail_cmd = "xen-set-global-dirty-log";
	FR.ops.on_logdirty(FAKE_R, false, FR.arg);
	REQUIRE(rig_wait(&r, &FR.logdirty_done, 2, 2000));
	CHECK_EQ(FR.logdirty_err, -EREMOTEIO);
	i = xf_find(&XF, "xen-set-global-dirty-log", 1);
	REQUIRE(i >= 0);
	CHECK(!strcmp(XF.args[i], "{\"enable\":false}"));
	CHECK_EQ(agent_state(r.a), AS_SYNCING);
	CHECK_EQ(XF.srv.accepts, 1);
	rig_stop(&r);
}

/* Primary: replication starts before the sync, is checked after each commit, and a
 * reported error degrades (and stops replication). */
static void test_primary_disk_replication(void)
{
	struct rig r = { 0 };
	rig_start(&r, ROLE_PRIMARY, true, NULL);
	CHECK_EQ(FR.started, 0); /* waits for xen-set-replication's answer */
	CHECK_EQ(agent_state(r.a), AS_INIT);
	REQUIRE(rig_wait(&r, &FR.started, 1, 2000));
	CHECK_EQ(agent_state(r.a), AS_SYNCING);
	int i = xf_find(&XF, "xen-set-replication", 0);
	REQUIRE(i >= 0 && i < FR.ncmds_at_start);
	CHECK(!strcmp(XF.args[i], "{\"enable\":true,\"primary\":true}"));

	/* The initial sync's stop-and-copy and commit: checked after the commit. */
	FR.ops.on_suspend(FAKE_R, r.fd, FR.arg);
	REQUIRE(rig_wait(&r, &FR.suspend_done, 1, 2000));
	CHECK_EQ(FR.last_err, 0);
	FR.ops.on_resume(FAKE_R, FR.arg);
	REQUIRE(rig_wait(&r, &FR.resume_done, 1, 2000));
	commit(0);
	CHECK_EQ(agent_state(r.a), AS_PROTECTED);
	REQUIRE(rig_wait_cmd(&r, "query-xen-replication-status", 1));
	for (int k = 0; k < 20; k++)
		loop_run_once(r.loop, 2);
	CHECK_EQ(agent_state(r.a), AS_PROTECTED); /* {error: false} */

	XF.repl_status = "{\"error\": true, \"desc\": \"Block node is read-only\"}";
	commit(1);
	REQUIRE(rig_wait_state(&r, AS_DEGRADED, 2000));
	CHECK_EQ(FR.freed, 1);
	REQUIRE(rig_wait_cmd(&r, "xen-set-replication", 2));
	i = xf_find(&XF, "xen-set-replication", 1);
	CHECK(!strcmp(XF.args[i], "{\"enable\":false,\"primary\":true,\"failover\":false}"));
	CHECK_EQ(XF.srv.accepts, 1);
	rig_stop(&r);
}

/* The primary's QEMU cannot start replication (no NBD peer): never protected, and
 * the replicator is never started. */
static void test_primary_disk_start_fails(void)
{
	struct rig r = { 0 };
	rig_start(&r, ROLE_PRIMARY, true, "xen-set-replication");
	REQUIRE(rig_wait_state(&r, AS_FAILED, 2000));
	CHECK_EQ(FR.started, 0);
	CHECK_EQ(agent_exit_status(r.a), 1);
	rig_stop(&r);
}

static void secondary_cycle(struct rig *r, int n)
{
	FR.ops.on_suspend(FAKE_R, -1, FR.arg);
	REQUIRE(rig_wait(r, &FR.suspend_done, n, 2000));
	FR.ops.on_load(FAKE_R, r->fd, 0, FR.arg);
	REQUIRE(rig_wait(r, &FR.load_done, n, 2000));
	CHECK_EQ(FR.last_err, 0);
	commit((uint64_t)n - 1);
}

/* The command index right after the n-th `name`. */
static int after(const char *name, int n)
{
	int i = xf_find(&XF, name, n);
	return i < 0 ? -1 : i + 1;
}

/* Secondary: replication started before the VM first runs, a disk checkpoint before
 * every later resume, failover:true before the takeover's cont. */
static void test_secondary_disk_replication_and_failover(void)
{
	struct rig r = { 0 };
	rig_start(&r, ROLE_SECONDARY, true, NULL);
	REQUIRE(FR.started == 1);
	REQUIRE(rig_wait_state(&r, AS_SYNCING, 2000));
	secondary_cycle(&r, 1);
	CHECK_EQ(agent_state(r.a), AS_PROTECTED);
	/* load -> start replication (secondary) -> cont */
	int l = xf_find(&XF, "xen-load-devices-state", 0);
	REQUIRE(l >= 0);
	int s = xf_find(&XF, "xen-set-replication", 0);
	REQUIRE(s > l);
	CHECK(!strcmp(XF.args[s], "{\"enable\":true,\"primary\":false}"));
	CHECK(!strcmp(XF.cmd[s + 1], "cont"));
	CHECK_EQ(xf_count(&XF, "xen-colo-do-checkpoint"), 0);

	secondary_cycle(&r, 2);
	int c = xf_find(&XF, "xen-colo-do-checkpoint", 0);
	REQUIRE(c > after("xen-load-devices-state", 0));
	CHECK(!strcmp(XF.cmd[c - 1], "remove-fd")); /* after the load's fdset */
	CHECK(!strcmp(XF.cmd[c + 1], "cont"));
	REQUIRE(rig_wait_cmd(&r, "query-xen-replication-status", 2));

	/* The primary goes silent: failover, then takeover with failover:true first. */
	heartbeat_free(r.peer);
	r.peer = NULL;
	REQUIRE(rig_wait_state(&r, AS_FAILOVER, 2000));
	CHECK_EQ(FR.failovers, 1);
	int ncont = xf_count(&XF, "cont");
	FR.ops.on_failover_ready(FAKE_R, FR.arg);
	REQUIRE(rig_wait_state(&r, AS_ACTIVE, 2000));
	int f = xf_find(&XF, "xen-set-replication", 1);
	REQUIRE(f >= 0);
	CHECK(!strcmp(XF.args[f], "{\"enable\":false,\"primary\":false,\"failover\":true}"));
	int k = xf_find(&XF, "cont", ncont);
	CHECK(k > f); /* the disk fails over before the VM runs */
	CHECK(xf_find(&XF, "announce-self", 0) > k);
	CHECK_EQ(XF.srv.accepts, 1);
	rig_stop(&r);
}

/* Secondary: QEMU reports a replication error -> disk-error -> failed. */
static void test_secondary_disk_error_fails(void)
{
	struct rig r = { 0 };
	rig_start(&r, ROLE_SECONDARY, true, NULL);
	REQUIRE(rig_wait_state(&r, AS_SYNCING, 2000));
	secondary_cycle(&r, 1);
	CHECK_EQ(agent_state(r.a), AS_PROTECTED);
	REQUIRE(rig_wait_cmd(&r, "query-xen-replication-status", 1));
	for (int k = 0; k < 20; k++)
		loop_run_once(r.loop, 2);
	CHECK_EQ(agent_state(r.a), AS_PROTECTED); /* the first check was healthy */
	XF.repl_status = "{\"error\": \"yes\"}"; /* hostile: not a boolean */
	secondary_cycle(&r, 2);
	REQUIRE(rig_wait_state(&r, AS_FAILED, 2000));
	CHECK_EQ(FR.freed, 1);
	CHECK_EQ(agent_exit_status(r.a), 1);
	rig_stop(&r);
}

/* Secondary without disk replication: the takeover sends no Xen disk commands. */
static void test_secondary_no_disk_no_disk_commands(void)
{
	struct rig r = { 0 };
	rig_start(&r, ROLE_SECONDARY, false, NULL);
	REQUIRE(rig_wait_state(&r, AS_SYNCING, 2000));
	secondary_cycle(&r, 1);
	heartbeat_free(r.peer);
	r.peer = NULL;
	REQUIRE(rig_wait_state(&r, AS_FAILOVER, 2000));
	FR.ops.on_failover_ready(FAKE_R, FR.arg);
	REQUIRE(rig_wait_state(&r, AS_ACTIVE, 2000));
	CHECK_EQ(xf_count(&XF, "xen-set-replication"), 0);
	CHECK_EQ(xf_count(&XF, "xen-colo-do-checkpoint"), 0);
	CHECK_EQ(xf_count(&XF, "query-xen-replication-status"), 0);
	rig_stop(&r);
}

/* The checks before anything starts: no RAM file on Xen, QEMU's run state and the
 * fixed build still required. */
static void test_check_vm(void)
{
	struct agent_config c;
	char err[300];
	config_defaults(&c);
	c.role = ROLE_SECONDARY;
	c.backend = BACKEND_XEN;
	c.ram_size = 1ull << 30;
	snprintf(c.ram_file, sizeof(c.ram_file), "/nonexistent"); /* ignored on Xen */
	struct backend_info vm = { .status = "prelaunch", .ram_size = 1ull << 30,
				   .version = "7.2.22 (colo-rig-yankfix)" };
	CHECK(agent_check_vm(&c, &vm, err, sizeof(err)) == 0);
	snprintf(vm.status, sizeof(vm.status), "running");
	vm.running = true;
	CHECK(agent_check_vm(&c, &vm, err, sizeof(err)) < 0 && strstr(err, "xl create -p"));
	snprintf(vm.status, sizeof(vm.status), "prelaunch");
	vm.running = false;
	snprintf(vm.version, sizeof(vm.version), "7.2.0 (Debian 1:7.2+dfsg-7)");
	CHECK(agent_check_vm(&c, &vm, err, sizeof(err)) < 0 && strstr(err, "docs/xen.md"));
	c.backend = BACKEND_QEMU; /* the same VM on qemu needs its RAM file */
	snprintf(vm.version, sizeof(vm.version), "7.2.22 (colo-rig-yankfix)");
	CHECK(agent_check_vm(&c, &vm, err, sizeof(err)) < 0 && strstr(err, "RAM file"));
}

static const struct test tests[] = {
	TEST(test_check_vm),
	TEST(test_logdirty_through_qmp),
	TEST(test_primary_disk_replication),
	TEST(test_primary_disk_start_fails),
	TEST(test_secondary_disk_replication_and_failover),
	TEST(test_secondary_disk_error_fails),
	TEST(test_secondary_no_disk_no_disk_commands),
	{ 0 },
};
TEST_MAIN(tests)
