/* test_xen_hostile.c - the Xen helper's trust boundaries: the runner <-> helper
 * control codec (xen/xen_ctl.c), a hostile runner (a fake runner main given to
 * xen_helper_main, against a stand-in secondary), and hostile agent messages to
 * the exec'd helper. Every bad input must end in one log line and FAILED
 * (LOCAL_ERROR) or a clean exit, never a crash. Writes the fuzz seeds of
 * fuzz/fuzz_xen_ctl.c with COLO_WRITE_SEEDS=dir. */
#include <sys/wait.h>

#include "checkpoint/repl_int.h"
#include "checkpoint/repl_msg.h"
#include "checkpoint/stream.h"
#include "checkpoint/stream_int.h"
#include "tests/unit/test_xen_pair.h"
#include "xen/xen_ctl.h"
#include "xen/xen_helper.h"

static const uint16_t all_types[] = {
	XEN_CTL_SAVE_SUSPEND, XEN_CTL_SAVE_POSTCOPY, XEN_CTL_SAVE_CHECKPOINT, XEN_CTL_SAVE_WAIT,
	XEN_CTL_SAVE_LOGDIRTY, XEN_CTL_RESTORE_CHECKPOINT, XEN_CTL_RESTORE_POSTCOPY,
	XEN_CTL_RESTORE_WAIT, XEN_CTL_RESTORE_SUSPEND, XEN_CTL_RESTORE_RESULTS, XEN_CTL_FINISHED,
	XEN_CTL_REPLY, XEN_CTL_RESTORE_LOGDIRTY, XEN_CTL_SAVE_RESUME_QEMU,
};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

static struct xen_ctl sample(uint16_t t)
{
	struct xen_ctl m = { .type = t };
	if (t == XEN_CTL_SAVE_LOGDIRTY || t == XEN_CTL_RESTORE_LOGDIRTY) {
		m.logdirty.domid = 7;
		m.logdirty.enable = 1;
	} else if (t == XEN_CTL_RESTORE_RESULTS) {
		m.results.store_gfn = 0xfeffc;
		m.results.console_gfn = 0xfeffd;
	} else if (t == XEN_CTL_FINISHED) {
		m.fin.rc = -1;
		m.fin.err = EPIPE;
		m.fin.flags = XEN_CTL_FIN_RESUMED;
	} else if (t == XEN_CTL_REPLY) {
		m.reply.call = XEN_CTL_RESTORE_CHECKPOINT;
		m.reply.ret = 2;
	}
	return m;
}

static enum xen_ctl_dir dir_of(uint16_t t)
{
	return t == XEN_CTL_REPLY ? XEN_CTL_TO_RUNNER : XEN_CTL_TO_HELPER;
}

static void test_ctl_round_trip(void)
{
	char why[200];
	for (size_t i = 0; i < NTYPES; i++) {
		struct xen_ctl m = sample(all_types[i]), got;
		struct wr w;
		wr_init(&w);
		xen_ctl_put(&w, &m);
		int rc = xen_ctl_parse(w.buf, w.len, dir_of(m.type), &got, why, sizeof(why));
		if (rc)
			fprintf(stderr, "    %s: %s\n", xen_ctl_name(m.type), why);
		CHECK_EQ(rc, 0);
		CHECK(memcmp(&got, &m, sizeof(m)) == 0);
		wr_free(&w);
	}
}

static void test_ctl_wrong_lengths_types_directions(void)
{
	char why[200];
	struct xen_ctl got;
	for (size_t i = 0; i < NTYPES; i++) {
		struct xen_ctl m = sample(all_types[i]);
		struct wr w;
		wr_init(&w);
		xen_ctl_put(&w, &m);
		for (size_t len = 0; len < w.len; len++)
			CHECK_EQ(xen_ctl_parse(w.buf, len, dir_of(m.type), &got, why, sizeof(why)), -EBADMSG);
		wr_zeros(&w, 8);
		CHECK_EQ(xen_ctl_parse(w.buf, w.len, dir_of(m.type), &got, why, sizeof(why)), -EBADMSG);
		wr_patch_be32(&w, 4, (uint32_t)(w.len - 8)); /* a header that agrees, too long */
		CHECK_EQ(xen_ctl_parse(w.buf, w.len, dir_of(m.type), &got, why, sizeof(why)), -EBADMSG);
		w.len -= 8;
		wr_patch_be32(&w, 4, (uint32_t)(w.len - 8));
		CHECK_EQ(xen_ctl_parse(w.buf, w.len, !dir_of(m.type), &got, why, sizeof(why)), -EBADMSG);
		w.buf[2] = 1; /* reserved */
		CHECK_EQ(xen_ctl_parse(w.buf, w.len, dir_of(m.type), &got, why, sizeof(why)), -EBADMSG);
		wr_free(&w);
	}
	uint8_t unknown[8] = { 0, 99, 0, 0, 0, 0, 0, 0 }, zero[8] = { 0 };
	CHECK_EQ(xen_ctl_parse(unknown, 8, XEN_CTL_TO_HELPER, &got, why, sizeof(why)), -EBADMSG);
	CHECK_EQ(xen_ctl_parse(zero, 8, XEN_CTL_TO_HELPER, &got, why, sizeof(why)), -EBADMSG);
}

static void expect_bad_field(struct xen_ctl m, size_t at, uint8_t v, const char *what)
{
	char why[200];
	struct xen_ctl got;
	struct wr w;
	wr_init(&w);
	xen_ctl_put(&w, &m);
	w.buf[at] = v;
	int rc = xen_ctl_parse(w.buf, w.len, dir_of(m.type), &got, why, sizeof(why));
	fprintf(stderr, "    %s -> %s\n", what, rc ? why : "ACCEPTED");
	CHECK_EQ(rc, -EBADMSG);
	wr_free(&w);
}

static void test_ctl_hostile_fields(void)
{
	expect_bad_field(sample(XEN_CTL_REPLY), 8 + 3, 32, "REPLY to REPLY");
	expect_bad_field(sample(XEN_CTL_REPLY), 8 + 3, 11, "REPLY to FINISHED");
	expect_bad_field(sample(XEN_CTL_REPLY), 8 + 7, 3, "REPLY value 3");
	expect_bad_field(sample(XEN_CTL_SAVE_LOGDIRTY), 8 + 7, 2, "LOGDIRTY enable 2");
	expect_bad_field(sample(XEN_CTL_FINISHED), 8 + 6, 0x20, "FINISHED errno 8192+");
	expect_bad_field(sample(XEN_CTL_FINISHED), 8 + 11, 4, "FINISHED unknown flag");
	expect_bad_field(sample(XEN_CTL_RESTORE_LOGDIRTY), 8 + 7, 2, "RESTORE_LOGDIRTY enable 2");
	expect_bad_field(sample(XEN_CTL_FINISHED), 8 + 15, 1, "FINISHED reserved");
}

/* ---- a hostile runner ---------------------------------------------------------------- */

enum bad_runner { BR_SHORT, BR_UNKNOWN, BR_REPLY, BR_OTHER_ROLE, BR_WRONG_LEN, BR_DIES_IN_CALL,
		  BR_TWO_CALLS, BR_EMPTY, BR_NONE };
static enum bad_runner bad_runner;

static void raw(int fd, const void *p, size_t n)
{
	if (send(fd, p, n, MSG_NOSIGNAL) != (ssize_t)n)
		_exit(9);
}

static int hostile_runner(const struct xen_runner_cfg *cfg)
{
	struct xen_ctl m = sample(XEN_CTL_SAVE_LOGDIRTY);
	uint8_t buf[64];
	struct wr w;
	m.logdirty.domid = cfg->domid;
	wr_init_fixed(&w, buf, sizeof(buf));
	switch (bad_runner) {
	case BR_SHORT:
		raw(cfg->ctl, "\x00\x01\x00", 3);
		break;
	case BR_UNKNOWN:
		raw(cfg->ctl, (uint8_t[]){ 0, 77, 0, 0, 0, 0, 0, 0 }, 8);
		break;
	case BR_REPLY:
		m = sample(XEN_CTL_REPLY);
		xen_ctl_put(&w, &m);
		raw(cfg->ctl, w.buf, w.len);
		break;
	case BR_OTHER_ROLE:
		m = (struct xen_ctl){ .type = XEN_CTL_RESTORE_SUSPEND };
		xen_ctl_send(cfg->ctl, &m);
		break;
	case BR_WRONG_LEN:
		xen_ctl_put(&w, &m);
		raw(cfg->ctl, w.buf, w.len - 4);
		break;
	case BR_DIES_IN_CALL:
		xen_ctl_send(cfg->ctl, &m);
		_exit(0); /* before the answer: libxenguest would be inside the callback */
	case BR_TWO_CALLS: /* the agent holds the first one's answer (defer_logdirty) */
		xen_ctl_send(cfg->ctl, &m);
		usleep(100000);
		xen_ctl_send(cfg->ctl, &m);
		break;
	case BR_EMPTY: /* SOCK_SEQPACKET: recv() returns 0, like EOF, but we live on */
		if (send(cfg->ctl, "", 0, MSG_NOSIGNAL) != 0)
			_exit(9);
		break;
	case BR_NONE:
		break;
	}
	pause(); /* killed by the helper (or PDEATHSIG) */
	return 0;
}

static int hostile_helper(int sock)
{
	return xen_helper_main(sock, hostile_runner);
}

static void run_hostile_runner(enum bad_runner what, const char *expect)
{
	struct xpair p = { .defer_logdirty = what == BR_TWO_CALLS };
	bad_runner = what;
	xp_start_secondary(&p, NULL);
	/* A primary whose runner is hostile (its helper forked, not exec'd). */
	struct repl_config pc = xp_cfg(&p, REPL_PRIMARY);
	REQUIRE(repl_start_with(p.loop, &pc, &xp_ops, &p.pri, hostile_helper, &p.pri.r) == 0);
	if (p.defer_logdirty) {
		/* FAILED waits for the answer the agent owes (helper-protocol.md §4). */
		XP_RUN_UNTIL(&p, p.pri.failed, 400);
		CHECK(p.logdirty_owed && !p.pri.failed);
		repl_logdirty_done(p.pri.r, 0);
	}
	XP_RUN_UNTIL(&p, p.pri.failed, 10000);
	CHECK_EQ(p.pri.failed, 1);
	CHECK_EQ(p.pri.why, REPL_LOCAL_ERROR);
	if (!strstr(p.pri.reason, expect))
		fprintf(stderr, "    reason: %s\n", p.pri.reason);
	CHECK(strstr(p.pri.reason, expect) != NULL);
	CHECK_EQ(p.pri.commits, 0);
	xp_stop(&p);
}

static void test_runner_short_datagram(void)
{
	run_hostile_runner(BR_SHORT, "message of 3 octets");
}

static void test_runner_unknown_type(void)
{
	run_hostile_runner(BR_UNKNOWN, "unknown message type 77");
}

static void test_runner_wrong_direction(void)
{
	run_hostile_runner(BR_REPLY, "REPLY sent in the wrong direction");
}

static void test_runner_other_role(void)
{
	run_hostile_runner(BR_OTHER_ROLE, "callback of the other role");
}

static void test_runner_wrong_length(void)
{
	run_hostile_runner(BR_WRONG_LEN, "SAVE_LOGDIRTY with a 8-octet body");
}

static void test_runner_dies_in_a_callback(void)
{
	run_hostile_runner(BR_DIES_IN_CALL, "before it finished");
}

static void test_runner_two_calls_at_once(void)
{
	run_hostile_runner(BR_TWO_CALLS, "a second callback before the first was answered");
}

/* An empty datagram reads as EOF; the runner is alive: the helper must not block
 * in waitpid (its loop would hang for good). It kills the runner after a grace. */
static void test_runner_empty_datagram(void)
{
	uint64_t t0 = mono_ms();
	run_hostile_runner(BR_EMPTY, "killed by signal 9 before it finished");
	CHECK(mono_ms() - t0 < 5000);
}

/* ---- a hostile agent ---------------------------------------------------------------- */

/* Exec the stand-in helper with our end on fd 3, send msgs, return its exit status
 * and the first message it sent back (type 0 if none). */
static int agent_session(const struct wr *msgs, size_t n, struct repl_msg *reply)
{
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	const char *exe = xp_helper();
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		dup2(sv[1], 3);
		close_range(4, ~0u, 0);
		execl(exe, exe, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	for (size_t i = 0; i < n; i++)
		send(sv[0], msgs[i].buf, msgs[i].len, MSG_NOSIGNAL);
	usleep(200000);
	char why[200];
	memset(reply, 0, sizeof(*reply));
	repl_msg_recv(sv[0], REPL_TO_AGENT, reply, why, sizeof(why));
	if (reply->fd >= 0)
		close(reply->fd);
	close(sv[0]); /* EOF: a helper still waiting exits */
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status)); /* never a crash */
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static struct repl_start xen_start(uint16_t port, enum repl_backend be)
{
	struct repl_start s = { .role = REPL_SECONDARY, .backend = be, .vm_id = XP_SEC_DOM,
				.ram_size = xp_pages * XP_PS, .config_hash = 1, .peer_port = port,
				.xen_store_evtchn = 17 };
	snprintf(s.peer_host, sizeof(s.peer_host), "127.0.0.1");
	snprintf(s.ram_path, sizeof(s.ram_path), "xen-domain");
	return s;
}

/* START: the Xen tail (store/console event channels and domids) travels only
 * with backend 2; QEMU's START keeps its version-1 layout. */
static void test_start_xen_tail(void)
{
	char why[200];
	struct repl_msg got;
	struct wr w;
	struct repl_start x = xen_start(7700, REPL_BACKEND_XEN), q = xen_start(7700, REPL_BACKEND_QEMU);
	x.xen_console_evtchn = 18;
	x.xen_store_domid = 1;
	x.xen_console_domid = 2;
	q.xen_store_evtchn = 0;
	wr_init(&w);
	repl_msg_put_start(&w, &x);
	CHECK_EQ(w.len, REPL_MSG_HDR_LEN + REPL_START_FIXED_LEN + 9 + 10 + REPL_START_XEN_LEN);
	REQUIRE(repl_msg_parse(w.buf, w.len, 0, REPL_TO_HELPER, &got, why, sizeof(why)) == 0);
	CHECK(got.start.xen_store_evtchn == 17 && got.start.xen_console_evtchn == 18 &&
	      got.start.xen_store_domid == 1 && got.start.xen_console_domid == 2);
	/* cut the tail: the lengths no longer agree */
	w.len -= REPL_START_XEN_LEN;
	wr_patch_be32(&w, 4, (uint32_t)(w.len - REPL_MSG_HDR_LEN));
	CHECK_EQ(repl_msg_parse(w.buf, w.len, 0, REPL_TO_HELPER, &got, why, sizeof(why)), -EBADMSG);
	/* a store domid past the last real one */
	wr_reset(&w);
	x.xen_store_domid = 0x7ff0;
	repl_msg_put_start(&w, &x);
	CHECK_EQ(repl_msg_parse(w.buf, w.len, 0, REPL_TO_HELPER, &got, why, sizeof(why)), -EBADMSG);
	CHECK(strstr(why, "domid") != NULL);
	/* QEMU: no tail */
	wr_reset(&w);
	repl_msg_put_start(&w, &q);
	CHECK_EQ(w.len, REPL_MSG_HDR_LEN + REPL_START_FIXED_LEN + 9 + 10);
	CHECK_EQ(repl_msg_parse(w.buf, w.len, 0, REPL_TO_HELPER, &got, why, sizeof(why)), 0);
	wr_free(&w);
}

static void test_agent_garbage_instead_of_start(void)
{
	struct wr w[1];
	struct repl_msg m;
	wr_init(&w[0]);
	wr_bytes(&w[0], "\x00\x01\x00\x00\xff\xff\xff\xff garbage", 17);
	CHECK_EQ(agent_session(w, 1, &m), 2);
	CHECK_EQ(m.type, 0);
	wr_free(&w[0]);
}

static void test_agent_qemu_start_is_refused(void)
{
	struct wr w[1];
	struct repl_msg m;
	struct repl_start s = xen_start(xp_free_port(), REPL_BACKEND_QEMU);
	wr_init(&w[0]);
	repl_msg_put_start(&w[0], &s);
	CHECK_EQ(agent_session(w, 1, &m), 1);
	CHECK_EQ(m.type, REPL_MSG_FAILED);
	CHECK(m.failed.why == REPL_LOCAL_ERROR && strstr(m.failed.reason, "Xen helper"));
	wr_free(&w[0]);
}

/* A Xen secondary without a xenstore event channel: libxc would write 0 into
 * HVM_PARAM_STORE_EVTCHN at every checkpoint. Refused before anything runs. */
static void test_secondary_start_without_store_evtchn(void)
{
	struct wr w[1];
	struct repl_msg m;
	struct repl_start s = xen_start(xp_free_port(), REPL_BACKEND_XEN);
	s.xen_store_evtchn = 0;
	wr_init(&w[0]);
	repl_msg_put_start(&w[0], &s);
	CHECK_EQ(agent_session(w, 1, &m), 1);
	CHECK_EQ(m.type, REPL_MSG_FAILED);
	CHECK(m.failed.why == REPL_LOCAL_ERROR && strstr(m.failed.reason, "event channel"));
	wr_free(&w[0]);
}

static void test_agent_answers_nobody_asked_for(void)
{
	struct wr w[2];
	struct repl_msg m;
	struct repl_start s = xen_start(xp_free_port(), REPL_BACKEND_XEN);
	wr_init(&w[0]);
	wr_init(&w[1]);
	repl_msg_put_start(&w[0], &s);
	repl_msg_put_done(&w[1], REPL_MSG_LOGDIRTY_DONE, 0, 0);
	CHECK_EQ(agent_session(w, 2, &m), 3); /* an agent protocol violation */
	wr_reset(&w[1]);
	repl_msg_put_start(&w[1], &s);
	CHECK_EQ(agent_session(w, 2, &m), 3); /* a second START */
	wr_reset(&w[1]);
	wr_bytes(&w[1], "\x00\x02\x00\x00\x00\x00\x00\x05", 8); /* CHECKPOINT with a lying length */
	CHECK_EQ(agent_session(w, 2, &m), 3);
	wr_free(&w[0]);
	wr_free(&w[1]);
}

/* A hostile primary streams one checkpoint of XEN_LIBXC records far past any
 * libxc stream the domain could need: the secondary's decoder refuses it at the
 * checkpoint budget (ram pages x (page + 24) + 128 MiB, docs/checkpoint-stream.md),
 * TOO_LONG, before holding more than that, and nothing reaches libxenguest. */
static void test_hostile_primary_endless_checkpoint(void)
{
	struct xpair p = { 0 };
	xp_start_secondary(&p, NULL);
	struct stream_ident id = { .backend = STREAM_BACKEND_XEN, .page_size = XP_PS,
				   .ram_size = xp_pages * XP_PS, .config_hash = 0x5eed };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(p.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fd >= 0);
	int ok = -1;
	for (int i = 0; i < 200 && ok < 0; i++) {
		ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		if (ok < 0)
			loop_run_once(p.loop, 10);
	}
	REQUIRE(ok == 0);
	struct stream_enc *e = stream_enc_new(&id, STREAM_PRIMARY);
	REQUIRE(e);
	static uint8_t chunk[1 << 20];
	memset(chunk, 0xa5, sizeof(chunk));
	REQUIRE(stream_enc_header(e) == 0 && stream_enc_begin(e, 1, STREAM_CKPT_PRECOPY) == 0);
	uint64_t budget = stream_ckpt_budget(&id), sent = 0;
	signal(SIGPIPE, SIG_IGN);
	/* Write until the secondary refuses (the socket breaks) or well past the budget. */
	while (sent < budget + (64u << 20) && !p.sec.failed) {
		if (stream_enc_xen_libxc(e, chunk, sizeof(chunk)) < 0)
			break;
		int rc = stream_enc_flush(e, fd);
		if (rc < 0 && rc != -EAGAIN)
			break;
		while (rc == -EAGAIN && !p.sec.failed) {
			loop_run_once(p.loop, 5);
			rc = stream_enc_flush(e, fd);
		}
		sent += sizeof(chunk);
		loop_run_once(p.loop, 0);
	}
	XP_RUN_UNTIL(&p, p.sec.failed, 10000);
	CHECK_EQ(p.sec.failed, 1);
	/* CORRUPT_STREAM, then LOCAL_ERROR: the runner ended with no checkpoint applied */
	CHECK(p.sec.why == REPL_CORRUPT_STREAM || p.sec.why == REPL_LOCAL_ERROR);
	CHECK(strstr(p.sec.reason, "TOO_LONG") && strstr(p.sec.reason, "over its budget"));
	CHECK(sent > budget); /* it was refused when the budget ran out */
	CHECK_EQ(p.sec.loads, 0);
	char sec[4096];
	xp_trace(&p, XP_SEC_DOM, sec, sizeof(sec));
	CHECK(strstr(sec, "checkpoint") == NULL); /* libxenguest saw none of it */
	stream_enc_free(e);
	close(fd);
	xp_stop(&p);
}

/* repl_start() execs the Xen helper; a missing one is a local error, not a hang. */
static void test_missing_helper_is_a_local_error(void)
{
	struct xpair p = { 0 };
	xp_start_secondary(&p, NULL);
	struct repl_config pc = xp_cfg(&p, REPL_PRIMARY);
	pc.xen_helper = "/nonexistent/colo-xen-helper";
	/* The exec may fail before START is even sent (then repl_start says so). */
	int rc = repl_start(p.loop, &pc, &xp_ops, &p.pri, &p.pri.r);
	if (rc == 0) {
		XP_RUN_UNTIL(&p, p.pri.failed, 5000);
		CHECK_EQ(p.pri.failed, 1);
		CHECK_EQ(p.pri.why, REPL_LOCAL_ERROR);
		CHECK(strstr(p.pri.reason, "status 127") != NULL);
	} else {
		CHECK(rc == -EPIPE || rc == -ECONNRESET);
		p.pri.r = NULL;
	}
	xp_stop(&p);
}

/* ---- fuzz seeds ------------------------------------------------------------------------ */

static void test_write_fuzz_seeds(void)
{
	const char *dir = getenv("COLO_WRITE_SEEDS");
	char path[512];
	if (!dir)
		return;
	for (size_t i = 0; i < NTYPES; i++) {
		struct xen_ctl m = sample(all_types[i]);
		struct wr w;
		wr_init(&w);
		wr_u8(&w, dir_of(m.type) == XEN_CTL_TO_RUNNER);
		xen_ctl_put(&w, &m);
		snprintf(path, sizeof(path), "%s/seed-%s", dir, xen_ctl_name(m.type));
		FILE *f = fopen(path, "wb");
		REQUIRE(f);
		fwrite(w.buf, 1, w.len, f);
		fclose(f);
		wr_free(&w);
	}
}

static const struct test tests[] = {
	TEST(test_ctl_round_trip),
	TEST(test_ctl_wrong_lengths_types_directions),
	TEST(test_ctl_hostile_fields),
	TEST(test_runner_short_datagram),
	TEST(test_runner_unknown_type),
	TEST(test_runner_wrong_direction),
	TEST(test_runner_other_role),
	TEST(test_runner_wrong_length),
	TEST(test_runner_dies_in_a_callback),
	TEST(test_runner_two_calls_at_once),
	TEST(test_runner_empty_datagram),
	TEST(test_agent_garbage_instead_of_start),
	TEST(test_agent_qemu_start_is_refused),
	TEST(test_start_xen_tail),
	TEST(test_secondary_start_without_store_evtchn),
	TEST(test_agent_answers_nobody_asked_for),
	TEST(test_hostile_primary_endless_checkpoint),
	TEST(test_missing_helper_is_a_local_error),
	TEST(test_write_fuzz_seeds),
	{ 0 },
};

TEST_MAIN(tests)
