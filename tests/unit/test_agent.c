/* The agent's state machine end to end, with a fake replicator (the repl_iface seam),
 * a fake VM backend, and a real heartbeat peer on localhost whose advertised state
 * the tests set: docs/colo-states.md's transitions, the checkpoint triggers, failover,
 * fencing, handover, and the VM checks. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "colo/agent.h"
#include "colo/agent_int.h"
#include "colo/backend.h"
#include "colo/heartbeat.h"
#include "colo/repl_iface.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "tests/harness/test.h"

/* --- fake replicator ------------------------------------------------------------ */

struct fake_repl {
	struct repl_ops ops;
	void *arg;
	struct repl_config cfg;
	char host[64];
	int started, freed, checkpoints, failovers, ckpt_busy;
	int suspend_done, resume_done, load_done;
	int last_err;
	bool live, refuse_failover;
} FR;

#define FAKE_R ((struct replicator *)&FR)

static int fr_start(struct loop *loop, const struct repl_config *cfg, const struct repl_ops *ops,
		    void *arg, struct replicator **out)
{
	FR.ops = *ops;
	FR.arg = arg;
	FR.cfg = *cfg;
	snprintf(FR.host, sizeof(FR.host), "%s", cfg->peer_host);
	FR.cfg.peer_host = FR.host;
	FR.started++;
	FR.live = true;
	*out = FAKE_R;
	return 0;
}
static int fr_checkpoint(struct replicator *r)
{
	if (FR.ckpt_busy)
		return -EBUSY;
	FR.checkpoints++;
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
	if (FR.refuse_failover)
		return -EINVAL;
	FR.failovers++;
	return 0;
}
static void fr_free(struct replicator *r)
{
	FR.freed++;
	FR.live = false;
}
static const struct colo_repl fake_repl = { fr_start, fr_checkpoint, fr_suspend_done,
					    fr_resume_done, fr_load_done, fr_failover, fr_free, NULL };

/* --- fake backend: every operation completes on the next loop round --------------- */

struct fop {
	backend_done_cb cb;
	void *arg;
	struct backend *b;
	int err;
};

struct fake_vm {
	struct loop *loop;
	char log[2048];
	const char *fail; /* this operation fails */
	bool running;
} FV;

static int64_t fop_fire(struct loop *loop, uint64_t id, void *arg)
{
	struct fop *op = arg;
	op->cb(op->b, op->err, op->err ? "fake failure" : NULL, op->arg);
	free(op);
	return LOOP_TIMER_DONE;
}

static int fv_op(struct backend *b, const char *name, backend_done_cb cb, void *arg)
{
	struct fop *op = calloc(1, sizeof(*op));
	REQUIRE(op);
	*op = (struct fop){ cb, arg, b, FV.fail && !strcmp(FV.fail, name) ? -EIO : 0 };
	strcat(FV.log, name);
	strcat(FV.log, ",");
	if (!op->err && !strcmp(name, "stop"))
		FV.running = false;
	if (!op->err && !strcmp(name, "cont"))
		FV.running = true;
	REQUIRE(loop_timer_add(FV.loop, 0, fop_fire, op, NULL) == 0);
	return 0;
}
static int fv_probe(struct backend *b, backend_probe_cb cb, void *arg)
{
	return -ENOTSUP;
}
static int fv_stop(struct backend *b, backend_done_cb cb, void *arg)
{
	return fv_op(b, "stop", cb, arg);
}
static int fv_resume(struct backend *b, backend_done_cb cb, void *arg)
{
	return fv_op(b, "cont", cb, arg);
}
static int fv_save(struct backend *b, int fd, backend_done_cb cb, void *arg)
{
	return fv_op(b, "save", cb, arg);
}
static int fv_load(struct backend *b, int fd, backend_done_cb cb, void *arg)
{
	return fv_op(b, "load", cb, arg);
}
static int fv_announce(struct backend *b, backend_done_cb cb, void *arg)
{
	return fv_op(b, "announce", cb, arg);
}
static const struct backend_ops fake_vm_ops = {
	.name = "fake", .probe = fv_probe, .stop = fv_stop, .resume = fv_resume,
	.save_devices = fv_save, .load_devices = fv_load, .announce = fv_announce,
};

/* --- net hooks recorder ------------------------------------------------------------ */

struct net_rec {
	int releases, release_alls, go_lives, go_live_err, marks, loads;
	uint64_t last_release, last_mark_seq, last_load_seq, last_load_mark;
} NR;
static uint64_t nr_mark(uint64_t seq, void *arg)
{
	NR.marks++;
	NR.last_mark_seq = seq;
	return 77;
}
static void nr_loaded(uint64_t seq, uint64_t mark, void *arg)
{
	NR.loads++;
	NR.last_load_seq = seq;
	NR.last_load_mark = mark;
}
static void nr_release(uint64_t seq, void *arg) { NR.releases++; NR.last_release = seq; }
static void nr_release_all(void *arg) { NR.release_alls++; }
static int nr_go_live(void *arg) { NR.go_lives++; return NR.go_live_err; }
static const struct colo_net_hooks net_hooks = { .input_mark = nr_mark, .release = nr_release,
						 .release_all = nr_release_all,
						 .go_live = nr_go_live, .loaded = nr_loaded };

/* --- the rig ---------------------------------------------------------------------- */

struct rig {
	struct loop *loop;
	struct agent *a;
	struct backend *be;
	struct backend_info vm;
	struct agent_config cfg;
	struct heartbeat *peer; /* the other agent, as far as heartbeats go */
	uint16_t own_port, peer_port;
	int save_fd;
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

static void rig_cfg(struct rig *r, enum agent_role role)
{
	char addr[64];
	config_defaults(&r->cfg);
	r->cfg.role = role;
	r->cfg.role_set = true;
	snprintf(r->cfg.ram_file, sizeof(r->cfg.ram_file), "/dev/null");
	REQUIRE(colo_addr_parse("10.77.0.2:7700", 7700, &r->cfg.repl) == 0);
	r->own_port = free_port();
	r->peer_port = free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", r->own_port);
	REQUIRE(colo_addr_parse(addr, 1, &r->cfg.hb_bind) == 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", r->peer_port);
	REQUIRE(colo_addr_parse(addr, 1, &r->cfg.hb_peer) == 0);
	/* 100 ms of silence is a loss: short for the tests, long enough that a loaded
	 * host does not fake one. */
	r->cfg.hb_interval_ms = 10;
	r->cfg.hb_misses = 10;
	r->cfg.min_interval_ms = 20;
	r->cfg.max_interval_ms = 100;
}

static void rig_peer_start(struct rig *r, uint8_t state)
{
	struct hb_config c = { .interval_ms = 10, .misses = 10, .state = state,
			       .role = r->cfg.role == ROLE_PRIMARY ? HB_ROLE_SECONDARY
								   : HB_ROLE_PRIMARY };
	c.bind = r->cfg.hb_peer.sa;
	c.bind_len = r->cfg.hb_peer.salen;
	c.peer = r->cfg.hb_bind.sa;
	c.peer_len = r->cfg.hb_bind.salen;
	REQUIRE(heartbeat_start(r->loop, &c, NULL, &r->peer) == 0);
}

static void rig_run_ms(struct rig *r, unsigned ms)
{
	uint64_t t0 = mono_ms();
	while (mono_ms() - t0 < ms)
		loop_run_once(r->loop, 2);
}

/* Run until the agent is in state s (or max_ms). */
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

static bool rig_wait(struct rig *r, int *counter, int want, unsigned max_ms)
{
	uint64_t t0 = mono_ms();
	while (*counter < want && mono_ms() - t0 < max_ms)
		loop_run_once(r->loop, 2);
	return *counter >= want;
}

static void rig_start(struct rig *r, enum agent_role role, bool with_peer)
{
	memset(&FR, 0, sizeof(FR));
	memset(&FV, 0, sizeof(FV));
	memset(&NR, 0, sizeof(NR));
	REQUIRE(loop_new(&r->loop) == 0);
	FV.loop = r->loop;
	FV.running = role == ROLE_PRIMARY;
	if (!r->cfg.role_set)
		rig_cfg(r, role);
	REQUIRE(backend_new(&fake_vm_ops, NULL, &r->be) == 0);
	r->vm = (struct backend_info){ .status = "running", .running = true, .ram_size = 128 << 20,
				       .pid = 4242, .config_hash = 0xfeed, .version = "7.2 (colo)" };
	struct agent_deps deps = { r->be, &r->vm, &fake_repl, &net_hooks };
	REQUIRE(agent_new(r->loop, &r->cfg, &deps, &r->a) == 0);
	r->save_fd = memfd_create("fake-save", MFD_CLOEXEC);
	if (with_peer)
		rig_peer_start(r, r->cfg.role == ROLE_PRIMARY ? AS_WAITING : AS_SYNCING);
	REQUIRE(agent_start(r->a) == 0);
	CHECK_EQ(FR.started, 1);
}

static void rig_stop(struct rig *r)
{
	agent_free(r->a);
	heartbeat_free(r->peer);
	backend_free(r->be);
	close(r->save_fd);
	/* Drain fake operations still queued (their callbacks must not run on a freed agent:
	 * agent_free detached them by freeing the chains; the fake completes into nothing). */
	loop_free(r->loop);
}

/* The replicator's side of one checkpoint, as the real one would drive it. */
static void repl_primary_cycle(struct rig *r, uint64_t seq, uint64_t pause_us)
{
	int s0 = FR.suspend_done, r0 = FR.resume_done;
	FR.ops.on_suspend(FAKE_R, r->save_fd, FR.arg);
	REQUIRE(rig_wait(r, &FR.suspend_done, s0 + 1, 1000));
	CHECK_EQ(FR.last_err, 0);
	FR.ops.on_resume(FAKE_R, FR.arg);
	REQUIRE(rig_wait(r, &FR.resume_done, r0 + 1, 1000));
	struct repl_stats st = { .seq = seq, .pages_sent = 100, .zero_pages = 10,
				 .bytes_sent = 420000, .pause_us = pause_us };
	FR.ops.on_committed(FAKE_R, &st, FR.arg);
}

static void repl_secondary_cycle(struct rig *r, uint64_t seq)
{
	int s0 = FR.suspend_done, l0 = FR.load_done;
	FR.ops.on_suspend(FAKE_R, -1, FR.arg);
	REQUIRE(rig_wait(r, &FR.suspend_done, s0 + 1, 1000));
	FR.ops.on_load(FAKE_R, r->save_fd, 5, FR.arg);
	REQUIRE(rig_wait(r, &FR.load_done, l0 + 1, 1000));
	CHECK_EQ(FR.last_err, 0);
	struct repl_stats st = { .seq = seq, .pages_sent = 50 };
	FR.ops.on_committed(FAKE_R, &st, FR.arg);
}

static void primary_to_protected(struct rig *r)
{
	rig_start(r, ROLE_PRIMARY, true);
	CHECK_EQ(agent_state(r->a), AS_SYNCING);
	CHECK_EQ(FR.cfg.role, REPL_PRIMARY);
	CHECK(!strcmp(FR.cfg.peer_host, "10.77.0.2") && FR.cfg.peer_port == 7700);
	CHECK_EQ(FR.cfg.qemu_pid, 4242);
	CHECK_EQ(FR.cfg.ram_size, 128 << 20);
	CHECK(FR.cfg.config_hash == 0xfeed);
	/* A pre-copy pass commits without a stop: still syncing. */
	struct repl_stats pre = { .seq = 0 };
	FR.ops.on_committed(FAKE_R, &pre, FR.arg);
	CHECK_EQ(agent_state(r->a), AS_SYNCING);
	repl_primary_cycle(r, 0, 5000);
	CHECK_EQ(agent_state(r->a), AS_PROTECTED);
	CHECK(!strcmp(FV.log, "stop,save,cont,"));
	CHECK(FV.running);
}

/* --- primary ------------------------------------------------------------------- */

static void test_primary_sync_and_periodic_checkpoints(void)
{
	struct rig r = { 0 };
	primary_to_protected(&r);
	/* max-interval 100 ms: the replicator is asked for a checkpoint. */
	uint64_t t0 = mono_ms();
	REQUIRE(rig_wait(&r, &FR.checkpoints, 1, 1000));
	CHECK(mono_ms() - t0 >= 90);
	CHECK_EQ(agent_state(r.a), AS_CHECKPOINTING);
	repl_primary_cycle(&r, 1, 3000);
	CHECK_EQ(agent_state(r.a), AS_PROTECTED);
	CHECK_EQ(NR.last_release, 1);
	CHECK_EQ(NR.last_mark_seq, 1); /* the stop of checkpoint 1 says so to the net path */
	REQUIRE(rig_wait(&r, &FR.checkpoints, 2, 1000));
	repl_primary_cycle(&r, 2, 1000);
	struct agent_status st;
	agent_get_status(r.a, &st);
	CHECK_EQ(st.by_reason[CKPT_PERIODIC], 2);
	CHECK_EQ(st.committed, 2);
	CHECK_EQ(st.last_seq, 2);
	CHECK_EQ(st.pause_last_us, 1000);
	CHECK_EQ(st.pause_p50_us, 1000);
	CHECK_EQ(st.pause_p99_us, 3000);
	CHECK_EQ(st.dirty_last_pages, 110);
	CHECK_EQ(st.dirty_avg_bytes, 420000);
	CHECK(st.since_last_ms < 50);
	CHECK(st.peer_alive);
	CHECK_EQ(st.peer_state, AS_WAITING);
	CHECK(!st.comparator);
	rig_stop(&r);
}

static void test_triggers_coalesce_and_rate_limit(void)
{
	struct rig r = { 0 };
	rig_cfg(&r, ROLE_PRIMARY);
	r.cfg.min_interval_ms = 60;
	r.cfg.max_interval_ms = 10000;
	primary_to_protected(&r);
	char why[128];
	/* Right after a commit: the rate limit holds the first trigger back. */
	int64_t t1 = agent_request_checkpoint(r.a, CKPT_COMPARATOR, why, sizeof(why));
	CHECK_EQ(t1, 1);
	CHECK_EQ(FR.checkpoints, 0);
	int64_t t2 = agent_request_checkpoint(r.a, CKPT_OPERATOR, why, sizeof(why));
	CHECK_EQ(t2, 1); /* the same checkpoint serves both */
	uint64_t t0 = mono_ms();
	REQUIRE(rig_wait(&r, &FR.checkpoints, 1, 1000));
	CHECK(mono_ms() - t0 >= 40);
	struct agent_status st;
	agent_get_status(r.a, &st);
	CHECK_EQ(st.by_reason[CKPT_OPERATOR], 1); /* the more important reason wins */
	CHECK_EQ(st.by_reason[CKPT_COMPARATOR], 0);
	CHECK_EQ(st.coalesced, 1);
	/* While it is in flight: coalesced into the next one. */
	CHECK_EQ(agent_request_checkpoint(r.a, CKPT_COMPARATOR, why, sizeof(why)), 2);
	CHECK_EQ(agent_request_checkpoint(r.a, CKPT_COMPARATOR, why, sizeof(why)), 2);
	CHECK_EQ(FR.checkpoints, 1);
	repl_primary_cycle(&r, 1, 100);
	CHECK_EQ(agent_checkpoints_committed(r.a), 1);
	t0 = mono_ms();
	REQUIRE(rig_wait(&r, &FR.checkpoints, 2, 1000));
	CHECK(mono_ms() - t0 >= 40); /* min interval after the commit */
	agent_get_status(r.a, &st);
	CHECK_EQ(st.by_reason[CKPT_COMPARATOR], 1);
	CHECK_EQ(st.coalesced, 3);
	/* A storm: 1000 requests cost no more checkpoints than the rate limit allows. */
	repl_primary_cycle(&r, 2, 100);
	for (int i = 0; i < 1000; i++)
		agent_request_checkpoint(r.a, CKPT_COMPARATOR, why, sizeof(why));
	rig_run_ms(&r, 30);
	CHECK_EQ(FR.checkpoints, 2);
	/* The replicator busy: the trigger stays pending and is retried. */
	REQUIRE(rig_wait(&r, &FR.checkpoints, 3, 1000));
	repl_primary_cycle(&r, 3, 100);
	FR.ckpt_busy = 1;
	agent_request_checkpoint(r.a, CKPT_OPERATOR, why, sizeof(why));
	rig_run_ms(&r, 100);
	CHECK_EQ(FR.checkpoints, 3);
	FR.ckpt_busy = 0;
	REQUIRE(rig_wait(&r, &FR.checkpoints, 4, 1000));
	rig_stop(&r);
}

static void test_secondary_refuses_checkpoint_requests(void)
{
	struct rig r = { 0 };
	rig_start(&r, ROLE_SECONDARY, false);
	char why[128];
	CHECK_EQ(agent_request_checkpoint(r.a, CKPT_OPERATOR, why, sizeof(why)), -EPERM);
	CHECK(strstr(why, "primary") != NULL);
	rig_stop(&r);
	struct rig p = { 0 };
	rig_start(&p, ROLE_PRIMARY, false);
	CHECK_EQ(agent_request_checkpoint(p.a, CKPT_OPERATOR, why, sizeof(why)), -EAGAIN);
	CHECK(strstr(why, "syncing") != NULL);
	rig_stop(&p);
}

static void test_primary_degrades_when_secondary_lost_mid_checkpoint(void)
{
	struct rig r = { 0 };
	primary_to_protected(&r);
	REQUIRE(rig_wait(&r, &FR.checkpoints, 1, 1000));
	/* The VM is stopped for the checkpoint when the secondary goes silent. */
	FR.ops.on_suspend(FAKE_R, r.save_fd, FR.arg);
	REQUIRE(rig_wait(&r, &FR.suspend_done, 2, 1000));
	CHECK(!FV.running);
	heartbeat_free(r.peer);
	r.peer = NULL;
	uint64_t t0 = mono_ms();
	REQUIRE(rig_wait_state(&r, AS_DEGRADED, 1000));
	CHECK(mono_ms() - t0 <= 100 + 200); /* 10 x 10 ms, and room for a loaded host */
	CHECK_EQ(FR.freed, 1);
	CHECK_EQ(NR.release_alls, 1);
	rig_run_ms(&r, 20);
	CHECK(FV.running); /* resumed: a degraded primary runs */
	/* Nothing drives it any more. */
	char why[128];
	CHECK_EQ(agent_request_checkpoint(r.a, CKPT_OPERATOR, why, sizeof(why)), -EAGAIN);
	CHECK(agent_request_failover(r.a, false, why, sizeof(why)) < 0);
	rig_stop(&r);
}

static void test_primary_degrades_on_broken_channel(void)
{
	struct rig r = { 0 };
	primary_to_protected(&r);
	FR.ops.on_failed(FAKE_R, REPL_BROKEN_CHANNEL, "connection reset by peer", FR.arg);
	CHECK_EQ(agent_state(r.a), AS_DEGRADED);
	CHECK_EQ(FR.freed, 1);
	/* A hung secondary that wakes up and took over meanwhile: stop this VM. */
	heartbeat_set_state(r.peer, AS_ACTIVE);
	REQUIRE(rig_wait_state(&r, AS_FENCED, 1000));
	rig_run_ms(&r, 10);
	CHECK(!FV.running);
	rig_stop(&r);
}

static void test_primary_never_protected_exits_1(void)
{
	struct rig r = { 0 };
	rig_start(&r, ROLE_PRIMARY, false);
	FR.ops.on_failed(FAKE_R, REPL_BROKEN_CHANNEL, "cannot connect to 10.77.0.2:7700: "
			 "connection refused", FR.arg);
	CHECK_EQ(agent_state(r.a), AS_FAILED);
	CHECK_EQ(agent_exit_status(r.a), 1);
	CHECK(agent_done(r.a)); /* the agent wants the loop stopped */
	CHECK(!strcmp(FV.log, "")); /* the VM was never touched */
	rig_stop(&r);
}

static void test_primary_handover(void)
{
	struct rig r = { 0 };
	rig_cfg(&r, ROLE_PRIMARY);
	r.cfg.max_interval_ms = 10000;
	primary_to_protected(&r);
	rig_run_ms(&r, 30);
	char why[200];
	CHECK_EQ(agent_request_failover(r.a, false, why, sizeof(why)), 0);
	CHECK(strstr(why, "handover started") != NULL);
	CHECK_EQ(agent_state(r.a), AS_HANDOVER);
	CHECK_EQ(FR.checkpoints, 1);
	CHECK(agent_request_failover(r.a, false, why, sizeof(why)) == -EALREADY);
	FV.log[0] = '\0';
	FR.ops.on_suspend(FAKE_R, r.save_fd, FR.arg);
	REQUIRE(rig_wait(&r, &FR.suspend_done, 2, 1000));
	FR.ops.on_resume(FAKE_R, FR.arg);
	REQUIRE(rig_wait(&r, &FR.resume_done, 2, 1000));
	CHECK(!strcmp(FV.log, "stop,save,")); /* no cont: the VM stays stopped */
	struct repl_stats st = { .seq = 1 };
	FR.ops.on_committed(FAKE_R, &st, FR.arg);
	CHECK_EQ(agent_state(r.a), AS_HANDED_OVER);
	struct agent_status s;
	agent_get_status(r.a, &s);
	CHECK_EQ(s.by_reason[CKPT_HANDOVER], 1);
	/* The secondary takes over; the replication link then breaks: all expected. */
	heartbeat_set_state(r.peer, AS_ACTIVE);
	rig_run_ms(&r, 30);
	FR.ops.on_failed(FAKE_R, REPL_BROKEN_CHANNEL, "eof", FR.arg);
	CHECK_EQ(agent_state(r.a), AS_HANDED_OVER);
	CHECK(!FV.running);
	rig_stop(&r);
}

static void test_primary_handover_asked_by_secondary_mid_checkpoint(void)
{
	struct rig r = { 0 };
	primary_to_protected(&r);
	REQUIRE(rig_wait(&r, &FR.checkpoints, 1, 1000));
	CHECK_EQ(agent_state(r.a), AS_CHECKPOINTING);
	heartbeat_set_state(r.peer, AS_HANDOVER);
	REQUIRE(rig_wait_state(&r, AS_HANDOVER, 1000));
	CHECK_EQ(FR.checkpoints, 1);
	repl_primary_cycle(&r, 1, 100); /* the one in flight is an ordinary one: resumed */
	CHECK(FV.running);
	CHECK_EQ(FR.checkpoints, 2); /* then the final one, at once */
	CHECK_EQ(agent_state(r.a), AS_HANDOVER);
	rig_stop(&r);
}

static void test_unexpected_requests_are_refused(void)
{
	struct rig r = { 0 };
	primary_to_protected(&r);
	int l0 = FR.load_done;
	FR.ops.on_load(FAKE_R, r.save_fd, 1, FR.arg); /* a primary never loads */
	CHECK_EQ(FR.load_done, l0 + 1);
	CHECK_EQ(FR.last_err, -EPROTO);
	rig_stop(&r);
}

static void test_vm_gone_fails_and_exits(void)
{
	struct rig r = { 0 };
	primary_to_protected(&r);
	backend_notify_gone(r.be, -ECONNRESET, "lost QEMU's QMP connection");
	CHECK_EQ(agent_state(r.a), AS_FAILED);
	CHECK_EQ(agent_exit_status(r.a), 1);
	CHECK_EQ(FR.freed, 1);
	rig_stop(&r);
}

static void test_primary_shutdown_tells_the_secondary(void)
{
	struct rig r = { 0 };
	primary_to_protected(&r);
	struct hb_stats hs;
	agent_shutdown(r.a);
	CHECK_EQ(agent_state(r.a), AS_DEGRADED);
	for (int i = 0; i < 100 && !agent_done(r.a); i++)
		loop_run_once(r.loop, 10);
	CHECK(agent_done(r.a));
	CHECK_EQ(agent_exit_status(r.a), 0);
	rig_run_ms(&r, 5);
	heartbeat_get_stats(r.peer, &hs);
	CHECK_EQ(hs.peer_state, AS_DEGRADED);
	rig_stop(&r);
}

/* --- secondary ------------------------------------------------------------------- */

static void secondary_to_protected(struct rig *r)
{
	rig_start(r, ROLE_SECONDARY, true);
	CHECK_EQ(FR.cfg.role, REPL_SECONDARY);
	REQUIRE(rig_wait_state(r, AS_SYNCING, 1000)); /* the primary's heartbeat */
	repl_secondary_cycle(r, 0);
	CHECK_EQ(agent_state(r->a), AS_PROTECTED);
	CHECK(!strcmp(FV.log, "stop,load,cont,"));
	CHECK(FV.running);
}

static void test_secondary_sync_and_checkpoints(void)
{
	struct rig r = { 0 };
	secondary_to_protected(&r);
	FR.ops.on_suspend(FAKE_R, -1, FR.arg);
	CHECK_EQ(agent_state(r.a), AS_CHECKPOINTING);
	REQUIRE(rig_wait(&r, &FR.suspend_done, 2, 1000));
	FR.ops.on_load(FAKE_R, r.save_fd, 9, FR.arg);
	REQUIRE(rig_wait(&r, &FR.load_done, 2, 1000));
	/* The net path's generation: loads counted from the initial sync (0). */
	CHECK_EQ(NR.last_mark_seq, 1);
	CHECK_EQ(NR.last_load_seq, 1);
	CHECK_EQ(NR.last_load_mark, 9);
	CHECK_EQ(NR.marks, NR.loads);
	struct repl_stats st = { .seq = 1, .pages_sent = 7 };
	FR.ops.on_committed(FAKE_R, &st, FR.arg);
	CHECK_EQ(agent_state(r.a), AS_PROTECTED);
	struct agent_status s;
	agent_get_status(r.a, &s);
	CHECK_EQ(s.committed, 1);
	CHECK_EQ(s.dirty_last_pages, 7);
	rig_stop(&r);
}

static void test_secondary_takes_over_when_primary_lost(void)
{
	struct rig r = { 0 };
	secondary_to_protected(&r);
	heartbeat_free(r.peer);
	r.peer = NULL;
	uint64_t t0 = mono_ms();
	REQUIRE(rig_wait_state(&r, AS_FAILOVER, 1000));
	CHECK_EQ(FR.failovers, 1);
	/* The replicator applies the acknowledged checkpoint, then is ready. */
	FR.ops.on_load(FAKE_R, r.save_fd, 3, FR.arg);
	REQUIRE(rig_wait(&r, &FR.load_done, 2, 1000));
	FV.log[0] = '\0';
	FR.ops.on_failover_ready(FAKE_R, FR.arg);
	REQUIRE(rig_wait_state(&r, AS_ACTIVE, 1000));
	uint64_t took = mono_ms() - t0;
	CHECK(took <= 100 + 200);
	CHECK(!strcmp(FV.log, "cont,announce,"));
	CHECK_EQ(NR.go_lives, 1);
	CHECK_EQ(FR.freed, 1);
	char why[128];
	CHECK(agent_request_failover(r.a, false, why, sizeof(why)) < 0); /* already active */
	rig_stop(&r);
}

static void test_secondary_fence_failing_means_no_takeover(void)
{
	struct rig r = { 0 };
	rig_cfg(&r, ROLE_SECONDARY);
	snprintf(r.cfg.fence_cmd, sizeof(r.cfg.fence_cmd), "exit 1");
	secondary_to_protected(&r);
	heartbeat_free(r.peer);
	r.peer = NULL;
	REQUIRE(rig_wait_state(&r, AS_FAILOVER, 1000));
	FV.log[0] = '\0';
	FR.ops.on_failover_ready(FAKE_R, FR.arg);
	CHECK_EQ(agent_state(r.a), AS_FENCING);
	REQUIRE(rig_wait_state(&r, AS_FENCE_FAILED, 3000));
	rig_run_ms(&r, 50);
	CHECK(!strcmp(FV.log, "")); /* no cont, no announce */
	CHECK_EQ(NR.go_lives, 0);
	/* Retrying runs the fence command again (it fails again). */
	char why[200];
	CHECK_EQ(agent_request_failover(r.a, false, why, sizeof(why)), 0);
	CHECK_EQ(agent_state(r.a), AS_FENCING);
	REQUIRE(rig_wait_state(&r, AS_FENCE_FAILED, 3000));
	/* The operator vouches for it. */
	CHECK_EQ(agent_request_failover(r.a, true, why, sizeof(why)), 0);
	REQUIRE(rig_wait_state(&r, AS_ACTIVE, 1000));
	CHECK(!strcmp(FV.log, "cont,announce,"));
	rig_stop(&r);
}

static void test_secondary_fence_ok_takes_over(void)
{
	struct rig r = { 0 };
	rig_cfg(&r, ROLE_SECONDARY);
	snprintf(r.cfg.fence_cmd, sizeof(r.cfg.fence_cmd), "test \"$COLO_ROLE\" = secondary");
	secondary_to_protected(&r);
	heartbeat_free(r.peer);
	r.peer = NULL;
	REQUIRE(rig_wait_state(&r, AS_FAILOVER, 1000));
	FR.ops.on_failover_ready(FAKE_R, FR.arg);
	REQUIRE(rig_wait_state(&r, AS_ACTIVE, 3000));
	rig_stop(&r);
}

static void test_secondary_fence_command_cannot_start(void)
{
	struct rig r = { 0 };
	rig_cfg(&r, ROLE_SECONDARY);
	snprintf(r.cfg.fence_cmd, sizeof(r.cfg.fence_cmd), "true");
	secondary_to_protected(&r);
	FR.ops.on_failed(FAKE_R, REPL_BROKEN_CHANNEL, "eof", FR.arg);
	CHECK_EQ(agent_state(r.a), AS_DETACHED);
	/* No descriptor left for the fence command's pidfd: it cannot be watched, so it
	 * counts as not started; no takeover. */
	heartbeat_free(r.peer);
	r.peer = NULL;
	int lowest = dup(0);
	REQUIRE(lowest >= 0);
	close(lowest);
	struct rlimit lim = { (rlim_t)lowest, (rlim_t)lowest }, old;
	REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
	REQUIRE(setrlimit(RLIMIT_NOFILE, &lim) == 0);
	bool reached = rig_wait_state(&r, AS_FENCE_FAILED, 1000);
	setrlimit(RLIMIT_NOFILE, &old);
	CHECK(reached);
	CHECK_EQ(NR.go_lives, 0);
	rig_stop(&r);
}

static void test_secondary_broken_channel_then_primary_lost(void)
{
	struct rig r = { 0 };
	secondary_to_protected(&r);
	/* The primary's host died: the link breaks first, the heartbeat stops after. */
	FR.ops.on_failed(FAKE_R, REPL_BROKEN_CHANNEL, "connection reset by peer", FR.arg);
	CHECK_EQ(agent_state(r.a), AS_DETACHED);
	heartbeat_free(r.peer);
	r.peer = NULL;
	REQUIRE(rig_wait_state(&r, AS_ACTIVE, 1000));
	CHECK_EQ(FR.failovers, 0); /* no replicator left to ask */
	rig_stop(&r);
}

static void test_secondary_broken_channel_primary_alive_no_takeover(void)
{
	struct rig r = { 0 };
	secondary_to_protected(&r);
	FR.ops.on_failed(FAKE_R, REPL_BROKEN_CHANNEL, "connection reset by peer", FR.arg);
	CHECK_EQ(agent_state(r.a), AS_DETACHED);
	char why[200];
	CHECK_EQ(agent_request_failover(r.a, true, why, sizeof(why)), -EPERM);
	CHECK(strstr(why, "split brain") != NULL);
	/* The heartbeat goes on: after 2 x 100 ms the verdict is "alive": no takeover. */
	REQUIRE(rig_wait_state(&r, AS_FAILED, 1000));
	CHECK_EQ(agent_exit_status(r.a), 1);
	CHECK_EQ(NR.go_lives, 0);
	rig_stop(&r);
}

static void test_secondary_primary_degraded_means_failed(void)
{
	struct rig r = { 0 };
	secondary_to_protected(&r);
	heartbeat_set_state(r.peer, AS_DEGRADED);
	REQUIRE(rig_wait_state(&r, AS_FAILED, 1000));
	CHECK_EQ(NR.go_lives, 0);
	rig_stop(&r);
}

static void test_secondary_primary_failed_means_takeover(void)
{
	struct rig r = { 0 };
	secondary_to_protected(&r);
	heartbeat_set_state(r.peer, AS_FAILED); /* its QEMU died; it is exiting */
	REQUIRE(rig_wait_state(&r, AS_FAILOVER, 100)); /* no need to wait for silence */
	FR.ops.on_failover_ready(FAKE_R, FR.arg);
	REQUIRE(rig_wait_state(&r, AS_ACTIVE, 1000));
	rig_stop(&r);
}

static void test_secondary_primary_gone_during_sync_relistens(void)
{
	struct rig r = { 0 };
	rig_start(&r, ROLE_SECONDARY, true);
	REQUIRE(rig_wait_state(&r, AS_SYNCING, 1000));
	heartbeat_free(r.peer);
	r.peer = NULL;
	REQUIRE(rig_wait_state(&r, AS_WAITING, 1000));
	CHECK_EQ(FR.started, 2);
	CHECK_EQ(FR.freed, 1);
	CHECK_EQ(FR.failovers, 0);
	/* A failover cannot be asked for: nothing to take over. */
	char why[200];
	CHECK(agent_request_failover(r.a, true, why, sizeof(why)) < 0);
	CHECK(strstr(why, "not protected") != NULL);
	rig_stop(&r);
}

static void test_secondary_planned_handover_skips_fencing(void)
{
	struct rig r = { 0 };
	rig_cfg(&r, ROLE_SECONDARY);
	snprintf(r.cfg.fence_cmd, sizeof(r.cfg.fence_cmd), "exit 1");
	secondary_to_protected(&r);
	char why[200];
	CHECK_EQ(agent_request_failover(r.a, false, why, sizeof(why)), 0);
	CHECK_EQ(agent_state(r.a), AS_HANDOVER);
	/* The primary (our test peer) sees "handover" in our heartbeat ... */
	rig_run_ms(&r, 20);
	struct hb_stats hs;
	heartbeat_get_stats(r.peer, &hs);
	CHECK_EQ(hs.peer_state, AS_HANDOVER);
	/* ... takes the final checkpoint (applied here) and reports handed-over. */
	repl_secondary_cycle(&r, 5);
	CHECK_EQ(agent_state(r.a), AS_HANDOVER);
	heartbeat_set_state(r.peer, AS_HANDED_OVER);
	REQUIRE(rig_wait_state(&r, AS_FAILOVER, 1000));
	FR.ops.on_failover_ready(FAKE_R, FR.arg);
	REQUIRE(rig_wait_state(&r, AS_ACTIVE, 1000)); /* no fencing: the primary stopped itself */
	rig_stop(&r);
}

static void test_secondary_handover_timeout_changes_nothing(void)
{
	struct rig r = { 0 };
	secondary_to_protected(&r);
	char why[200];
	CHECK_EQ(agent_request_failover(r.a, false, why, sizeof(why)), 0);
	CHECK_EQ(agent_state(r.a), AS_HANDOVER);
	uint64_t t0 = mono_ms();
	REQUIRE(rig_wait_state(&r, AS_PROTECTED, 5000)); /* our peer never hands over */
	CHECK(mono_ms() - t0 >= 1900);
	CHECK_EQ(FR.failovers, 0);
	CHECK_EQ(FR.freed, 0);
	rig_stop(&r);
}

static void test_secondary_takeover_fails_if_network_cannot_go_live(void)
{
	struct rig r = { 0 };
	secondary_to_protected(&r);
	NR.go_live_err = -ENODEV;
	heartbeat_free(r.peer);
	r.peer = NULL;
	REQUIRE(rig_wait_state(&r, AS_FAILOVER, 1000));
	FR.ops.on_failover_ready(FAKE_R, FR.arg);
	REQUIRE(rig_wait_state(&r, AS_FAILED, 1000));
	rig_stop(&r);
}

static void test_secondary_replicator_refuses_failover(void)
{
	struct rig r = { 0 };
	secondary_to_protected(&r);
	FR.refuse_failover = true;
	heartbeat_free(r.peer);
	r.peer = NULL;
	REQUIRE(rig_wait_state(&r, AS_FAILED, 1000));
	CHECK_EQ(NR.go_lives, 0);
	rig_stop(&r);
}

static void test_secondary_load_failure_answers_error(void)
{
	struct rig r = { 0 };
	rig_start(&r, ROLE_SECONDARY, true);
	REQUIRE(rig_wait_state(&r, AS_SYNCING, 1000));
	FV.fail = "load";
	FR.ops.on_load(FAKE_R, r.save_fd, 0, FR.arg);
	REQUIRE(rig_wait(&r, &FR.load_done, 1, 1000));
	CHECK_EQ(FR.last_err, -EIO);
	rig_run_ms(&r, 5);
	CHECK(!strstr(FV.log, "cont")); /* not resumed after a failed load */
	rig_stop(&r);
}

/* --- refusing the wrong VM ------------------------------------------------------- */

static void test_check_vm(void)
{
	struct agent_config c;
	config_defaults(&c);
	c.role = ROLE_PRIMARY;
	c.role_set = true;
	char path[] = "/tmp/colo-ram-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
	close(fd);
	snprintf(c.ram_file, sizeof(c.ram_file), "%s", path);
	struct backend_info vm = { .status = "running", .running = true, .ram_size = 1 << 20,
				   .version = "7.2.22 (colo-rig-yankfix)" };
	char err[300];
	CHECK_EQ(agent_check_vm(&c, &vm, err, sizeof(err)), 0);
	vm.ram_size = 2 << 20;
	CHECK_EQ(agent_check_vm(&c, &vm, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "RAM file of another VM") != NULL);
	c.ram_size = 1 << 20;
	CHECK_EQ(agent_check_vm(&c, &vm, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "--ram-size") != NULL);
	c.ram_size = 0;
	vm.ram_size = 1 << 20;
	vm.running = false;
	snprintf(vm.status, sizeof(vm.status), "paused");
	CHECK_EQ(agent_check_vm(&c, &vm, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "not running") != NULL);
	c.role = ROLE_SECONDARY;
	CHECK_EQ(agent_check_vm(&c, &vm, err, sizeof(err)), 0);
	vm.running = true;
	snprintf(vm.status, sizeof(vm.status), "running");
	CHECK_EQ(agent_check_vm(&c, &vm, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "-S") != NULL);
	vm.running = false;
	snprintf(vm.status, sizeof(vm.status), "prelaunch");
	snprintf(vm.version, sizeof(vm.version), "7.2.22 (Debian 1:7.2+dfsg-7)");
	CHECK_EQ(agent_check_vm(&c, &vm, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "xen-load-devices-state") != NULL);
	unlink(path);
	CHECK_EQ(agent_check_vm(&c, &vm, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "No such file") != NULL);
}

static void test_names(void)
{
	for (int s = 0; s < AS__COUNT; s++)
		CHECK(strcmp(agent_state_name(s), "?") != 0);
	CHECK(!strcmp(agent_state_name(AS__COUNT), "?"));
	CHECK(!strcmp(agent_state_name(AS_FENCE_FAILED), "fence-failed"));
	for (int e = 0; e < EV__COUNT; e++)
		CHECK(strcmp(agent_event_name(e), "?") != 0);
	for (int r = 0; r < CKPT__COUNT; r++)
		CHECK(strcmp(ckpt_reason_name(r), "?") != 0);
}

static const struct test tests[] = {
	TEST(test_primary_sync_and_periodic_checkpoints),
	TEST(test_triggers_coalesce_and_rate_limit),
	TEST(test_secondary_refuses_checkpoint_requests),
	TEST(test_primary_degrades_when_secondary_lost_mid_checkpoint),
	TEST(test_primary_degrades_on_broken_channel),
	TEST(test_primary_never_protected_exits_1),
	TEST(test_primary_handover),
	TEST(test_primary_handover_asked_by_secondary_mid_checkpoint),
	TEST(test_unexpected_requests_are_refused),
	TEST(test_vm_gone_fails_and_exits),
	TEST(test_primary_shutdown_tells_the_secondary),
	TEST(test_secondary_sync_and_checkpoints),
	TEST(test_secondary_takes_over_when_primary_lost),
	TEST(test_secondary_fence_failing_means_no_takeover),
	TEST(test_secondary_fence_ok_takes_over),
	TEST(test_secondary_fence_command_cannot_start),
	TEST(test_secondary_broken_channel_then_primary_lost),
	TEST(test_secondary_broken_channel_primary_alive_no_takeover),
	TEST(test_secondary_primary_degraded_means_failed),
	TEST(test_secondary_primary_failed_means_takeover),
	TEST(test_secondary_primary_gone_during_sync_relistens),
	TEST(test_secondary_planned_handover_skips_fencing),
	TEST(test_secondary_handover_timeout_changes_nothing),
	TEST(test_secondary_takeover_fails_if_network_cannot_go_live),
	TEST(test_secondary_replicator_refuses_failover),
	TEST(test_secondary_load_failure_answers_error),
	TEST(test_check_vm),
	TEST(test_names),
	{ 0 },
};
TEST_MAIN(tests)
