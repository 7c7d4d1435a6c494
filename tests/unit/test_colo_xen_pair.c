/* Two real agents with the Xen backend, end to end in one process: the agents' state
 * machines, backend_xen.c against two fake device models (test_colo_xen_fake.h), the
 * real replicator (checkpoint/) exec'ing the Xen helper built against the STAND-IN
 * libxenguest (build/tests/colo-xen-helper-standin, tests/xen-standin/), heartbeats
 * on localhost. Protected, checkpoints, then the primary's agent dies and the
 * secondary takes over.
 *
 * NOT evidence that Xen works: the stand-in knows no hypervisor. It shows that the
 * agent side and the helper side of the Xen backend fit together. Skipped when the
 * stand-in was not built (no libxen-dev). */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/mman.h>

#include "colo/agent.h"
#include "colo/backend.h"
#include "colo/repl_iface.h"
#include "lib/log.h"
#include "tests/unit/test_colo_xen_fake.h"

#define PAGES 256u
#define PRI_DOM 21u
#define SEC_DOM 22u

struct side {
	struct xfake qemu;
	struct backend *be;
	struct backend_info vm;
	struct agent_config cfg;
	struct agent *a;
	uint8_t *mem;
};

static char dir[64];

static const char *standin(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 64);
	REQUIRE(n > 0);
	path[n] = '\0';
	*strrchr(path, '/') = '\0';
	strcat(path, "/colo-xen-helper-standin");
	return path;
}

static uint16_t free_port(int type)
{
	int s = socket(AF_INET, type, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	REQUIRE(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	REQUIRE(getsockname(s, (struct sockaddr *)&a, &len) == 0);
	close(s);
	return ntohs(a.sin_port);
}

/* The stand-in's synthetic domain: guest memory in a file it maps. */
static uint8_t *domain(unsigned domid, uint8_t fill)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/dom%u.mem", dir, domid);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	REQUIRE(ftruncate(fd, PAGES * 4096) == 0);
	uint8_t *m = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	REQUIRE(m != MAP_FAILED);
	for (size_t i = 0; i < PAGES * 4096; i += 61)
		m[i] = (uint8_t)(fill + i);
	return m;
}

static void side_start(struct side *s, struct loop *loop, enum agent_role role, bool disk,
		       uint16_t repl, uint16_t own_hb, uint16_t peer_hb)
{
	char addr[64];
	bool p = role == ROLE_PRIMARY;
	s->qemu.status = p ? "running" : "prelaunch";
	s->qemu.tag = p ? "pri" : "sec";
	xf_start(&s->qemu, loop);
	config_defaults(&s->cfg);
	s->cfg.role = role;
	s->cfg.role_set = true;
	s->cfg.backend = BACKEND_XEN;
	s->cfg.domid = p ? PRI_DOM : SEC_DOM;
	s->cfg.domid_set = true;
	s->cfg.ram_size = PAGES * 4096;
	s->cfg.disk_repl = disk;
	s->cfg.xen_store_evtchn = 17; /* the stand-in only records it */
	snprintf(s->cfg.xen_helper, sizeof(s->cfg.xen_helper), "%s", standin());
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", repl);
	REQUIRE(colo_addr_parse(addr, 1, &s->cfg.repl) == 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", own_hb);
	REQUIRE(colo_addr_parse(addr, 1, &s->cfg.hb_bind) == 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", peer_hb);
	REQUIRE(colo_addr_parse(addr, 1, &s->cfg.hb_peer) == 0);
	s->cfg.hb_interval_ms = 20;
	s->cfg.hb_misses = 10;
	s->cfg.min_interval_ms = 10;
	s->cfg.max_interval_ms = 100;
	snprintf(s->cfg.control_socket, sizeof(s->cfg.control_socket), "/nonexistent");
	char err[200];
	REQUIRE(config_validate(&s->cfg, err, sizeof(err)) == 0);
	REQUIRE(backend_xen_open(loop, s->qemu.srv.path, s->cfg.domid, s->cfg.ram_size, &s->be) == 0);
	s->vm = (struct backend_info){ .running = p, .ram_size = s->cfg.ram_size, .pid = getpid(),
				       .config_hash = 0xc0105eed,
				       .version = "7.2.22 (colo-rig-yankfix)" };
	snprintf(s->vm.status, sizeof(s->vm.status), "%s", s->qemu.status);
	REQUIRE(agent_check_vm(&s->cfg, &s->vm, err, sizeof(err)) == 0);
	struct agent_deps deps = { s->be, &s->vm, colo_repl_engine(), NULL };
	REQUIRE(agent_new(loop, &s->cfg, &deps, &s->a) == 0);
	REQUIRE(agent_start(s->a) == 0);
}

static bool run_until_state(struct loop *loop, struct agent *a, enum agent_state st, unsigned ms)
{
	uint64_t t0 = mono_ms();
	while (agent_state(a) != st && mono_ms() - t0 < ms)
		loop_run_once(loop, 10);
	if (agent_state(a) != st)
		fprintf(stderr, "    waited for %s, still %s\n", agent_state_name(st),
			agent_state_name(agent_state(a)));
	return agent_state(a) == st;
}

static void run_pair(bool disk)
{
	if (access(standin(), X_OK) < 0)
		test_skip("%s not built (libxen-dev absent): nothing Xen to run", standin());
	snprintf(dir, sizeof(dir), "/dev/shm/colo-test-xenpair-XXXXXX");
	REQUIRE(mkdtemp(dir));
	setenv("COLO_XEN_STANDIN_DIR", dir, 1);
	unsetenv("COLO_XEN_STANDIN_FAULT");
	log_init("test", LOG_WARN);
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct side pri = { 0 }, sec = { 0 };
	pri.mem = domain(PRI_DOM, 7);
	sec.mem = domain(SEC_DOM, 0);
	uint16_t repl = free_port(SOCK_STREAM), hb_p = free_port(SOCK_DGRAM),
		 hb_s = free_port(SOCK_DGRAM);
	side_start(&sec, loop, ROLE_SECONDARY, disk, repl, hb_s, hb_p);
	side_start(&pri, loop, ROLE_PRIMARY, disk, repl, hb_p, hb_s);

	REQUIRE(run_until_state(loop, pri.a, AS_PROTECTED, 10000));
	REQUIRE(run_until_state(loop, sec.a, AS_PROTECTED, 5000));
	/* The initial sync copied the domain's memory through libxc's (stand-in) stream. */
	CHECK(!memcmp(pri.mem, sec.mem, PAGES * 4096));
	/* A few periodic checkpoints (max interval 100 ms). */
	uint64_t t0 = mono_ms();
	while (agent_checkpoints_committed(pri.a) < 3 && mono_ms() - t0 < 10000)
		loop_run_once(loop, 10);
	CHECK(agent_checkpoints_committed(pri.a) >= 3);

	/* Each side's device model saw the QEMU half of each checkpoint, on one connection. */
	CHECK_EQ(pri.qemu.srv.accepts, 1);
	CHECK_EQ(sec.qemu.srv.accepts, 1);
	CHECK(xf_count(&pri.qemu, "xen-save-devices-state") >= 3);
	CHECK(xf_count(&sec.qemu, "xen-load-devices-state") >= 3);
	int on = xf_find(&pri.qemu, "xen-set-global-dirty-log", 0);
	if (on < 0)
		fprintf(stderr, "    the stand-in never asked for the device model's dirty log\n");
	CHECK(on >= 0 && !strcmp(pri.qemu.args[on], "{\"enable\":true}"));
	/* The secondary's device model logs too, once, after its first load and before
	 * its domain first runs (the dirty-pfn list it sends back must include QEMU's
	 * writes). */
	int son = xf_find(&sec.qemu, "xen-set-global-dirty-log", 0);
	CHECK(son >= 0 && !strcmp(sec.qemu.args[son], "{\"enable\":true}"));
	CHECK(son > xf_find(&sec.qemu, "xen-load-devices-state", 0));
	CHECK_EQ(xf_count(&sec.qemu, "xen-set-global-dirty-log"), 1);

	/* The primary's agent dies: the secondary takes over. */
	agent_free(pri.a);
	pri.a = NULL;
	int conts = xf_count(&sec.qemu, "cont");
	REQUIRE(run_until_state(loop, sec.a, AS_ACTIVE, 10000));
	CHECK(xf_count(&sec.qemu, "cont") > conts);
	CHECK(xf_find(&sec.qemu, "announce-self", 0) >= 0);
	if (disk) {
		CHECK(xf_count(&pri.qemu, "query-xen-replication-status") >= 3);
		CHECK(xf_count(&sec.qemu, "xen-colo-do-checkpoint") >= 2);
		int f = xf_find(&sec.qemu, "xen-set-replication", 1);
		CHECK(f >= 0 && !strcmp(sec.qemu.args[f],
					"{\"enable\":false,\"primary\":false,\"failover\":true}"));
	} else {
		CHECK_EQ(xf_count(&sec.qemu, "xen-set-replication"), 0);
	}

	agent_free(sec.a);
	backend_free(pri.be);
	backend_free(sec.be);
	xf_stop(&pri.qemu);
	xf_stop(&sec.qemu);
	loop_free(loop);
	munmap(pri.mem, PAGES * 4096);
	munmap(sec.mem, PAGES * 4096);
	char path[128];
	const char *names[] = { "dom21.mem", "dom22.mem", "dom21.trace", "dom22.trace" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void test_protected_then_failover(void)
{
	run_pair(false);
}

static void test_with_disk_replication(void)
{
	run_pair(true);
}

static const struct test tests[] = {
	TEST(test_protected_then_failover),
	TEST(test_with_disk_replication),
	{ 0 },
};
TEST_MAIN(tests)
