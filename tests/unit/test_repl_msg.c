/* Unit tests of the agent <-> helper messages (checkpoint/repl_msg.c) and of both
 * ends facing a hostile sibling: a fake helper sending the agent wrong lengths,
 * unknown types, misplaced messages, then dying mid-protocol; a fake agent sending
 * the real helper the same. Also writes the fuzz seeds (COLO_WRITE_SEEDS=dir,
 * fuzz/corpus/fuzz_helper_msg). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/repl_msg.h"
#include "tests/unit/test_repl_vm.h"

static struct repl_start sample_start(void)
{
	struct repl_start s = { .role = REPL_SECONDARY, .backend = REPL_BACKEND_QEMU, .vm_id = 4242,
				.connect_timeout_ms = 3000, .ram_size = 128ull << 20,
				.config_hash = 0x0123456789abcdefull, .peer_port = 7000 };
	snprintf(s.peer_host, sizeof(s.peer_host), "10.77.0.2");
	snprintf(s.ram_path, sizeof(s.ram_path), "/dev/shm/colo-rig-x/secondary.ram");
	return s;
}

static const struct repl_stats sample_stats = { 7, 100, 50, 120, 30, 13000, 600000, 900, 200,
						 1500, 650 };

/* One valid message of each type, in w[type]; returns the direction. */
static enum repl_dir sample(uint16_t type, struct wr *w)
{
	struct repl_start s = sample_start();
	wr_init(w);
	switch (type) {
	case REPL_MSG_START:
		repl_msg_put_start(w, &s);
		return REPL_TO_HELPER;
	case REPL_MSG_SUSPEND_DONE:
		repl_msg_put_done(w, type, -EIO, 99);
		return REPL_TO_HELPER;
	case REPL_MSG_RESUME_DONE:
	case REPL_MSG_LOAD_DONE:
	case REPL_MSG_LOGDIRTY_DONE:
		repl_msg_put_done(w, type, 0, 0);
		return REPL_TO_HELPER;
	case REPL_MSG_LOGDIRTY:
		repl_msg_put_logdirty(w, true);
		return REPL_TO_AGENT;
	case REPL_MSG_CHECKPOINT:
	case REPL_MSG_FAILOVER:
	case REPL_MSG_STOPPED:
		repl_msg_put_empty(w, type);
		return REPL_TO_HELPER;
	case REPL_MSG_SUSPEND:
	case REPL_MSG_RESUME:
		repl_msg_put_seq(w, type, 5);
		return REPL_TO_AGENT;
	case REPL_MSG_LOAD:
		repl_msg_put_load(w, 5, true, 777);
		return REPL_TO_AGENT;
	case REPL_MSG_COMMITTED:
		repl_msg_put_stats(w, &sample_stats);
		return REPL_TO_AGENT;
	case REPL_MSG_FAILED:
		repl_msg_put_failed(w, REPL_CORRUPT_STREAM, "checksum mismatch");
		return REPL_TO_AGENT;
	default:
		repl_msg_put_empty(w, type);
		return REPL_TO_AGENT;
	}
}

static const uint16_t all_types[] = { REPL_MSG_START, REPL_MSG_CHECKPOINT, REPL_MSG_SUSPEND_DONE,
				      REPL_MSG_RESUME_DONE, REPL_MSG_LOAD_DONE, REPL_MSG_FAILOVER,
				      REPL_MSG_STOPPED, REPL_MSG_LOGDIRTY_DONE, REPL_MSG_LOGDIRTY,
				      REPL_MSG_SYNCING, REPL_MSG_SUSPEND, REPL_MSG_RESUME,
				      REPL_MSG_LOAD, REPL_MSG_COMMITTED, REPL_MSG_FAILOVER_READY,
				      REPL_MSG_FAILED };
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

static int fds_of(uint16_t type)
{
	return type == REPL_MSG_LOAD ? 1 : 0;
}

static void test_round_trip_every_message(void)
{
	char why[200];
	for (size_t i = 0; i < NTYPES; i++) {
		struct wr w;
		struct repl_msg m;
		enum repl_dir dir = sample(all_types[i], &w);
		REQUIRE(w.err == 0);
		int rc = repl_msg_parse(w.buf, w.len, fds_of(all_types[i]), dir, &m, why, sizeof(why));
		if (rc)
			fprintf(stderr, "    %s: %s\n", repl_msg_name(all_types[i]), why);
		CHECK_EQ(rc, 0);
		CHECK_EQ(m.type, all_types[i]);
		CHECK_EQ(m.fd, -1);
		if (m.type == REPL_MSG_START) {
			struct repl_start s = sample_start();
			CHECK(m.start.role == s.role && m.start.vm_id == s.vm_id &&
			      m.start.ram_size == s.ram_size && m.start.config_hash == s.config_hash &&
			      m.start.peer_port == s.peer_port &&
			      m.start.connect_timeout_ms == s.connect_timeout_ms);
			CHECK(strcmp(m.start.peer_host, s.peer_host) == 0);
			CHECK(strcmp(m.start.ram_path, s.ram_path) == 0);
		} else if (m.type == REPL_MSG_SUSPEND_DONE) {
			CHECK(m.done.err == -EIO && m.done.input_mark == 99);
		} else if (m.type == REPL_MSG_LOAD) {
			CHECK(m.load.seq == 5 && m.load.has_mark && m.load.input_mark == 777);
		} else if (m.type == REPL_MSG_COMMITTED) {
			CHECK(memcmp(&m.stats, &sample_stats, sizeof(sample_stats)) == 0);
		} else if (m.type == REPL_MSG_FAILED) {
			CHECK(m.failed.why == REPL_CORRUPT_STREAM);
			CHECK(strcmp(m.failed.reason, "checksum mismatch") == 0);
		} else if (m.type == REPL_MSG_SUSPEND || m.type == REPL_MSG_RESUME) {
			CHECK_EQ(m.seq, 5);
		} else if (m.type == REPL_MSG_LOGDIRTY) {
			CHECK(m.enable);
		}
		wr_free(&w);
	}
}

/* A wrong length is rejected, never guessed: every shorter datagram, a longer one,
 * and a header that disagrees with the datagram. */
static void test_every_wrong_length_is_rejected(void)
{
	char why[200];
	struct repl_msg m;
	for (size_t i = 0; i < NTYPES; i++) {
		struct wr w;
		uint16_t t = all_types[i];
		enum repl_dir dir = sample(t, &w);
		for (size_t len = 0; len < w.len; len++)
			CHECK_EQ(repl_msg_parse(w.buf, len, fds_of(t), dir, &m, why, sizeof(why)), -EBADMSG);
		wr_zeros(&w, 1); /* one octet more, header unchanged */
		CHECK_EQ(repl_msg_parse(w.buf, w.len, fds_of(t), dir, &m, why, sizeof(why)), -EBADMSG);
		wr_patch_be32(&w, 4, (uint32_t)(w.len - 8)); /* header agrees, body too long */
		if (t != REPL_MSG_START && t != REPL_MSG_FAILED)
			CHECK_EQ(repl_msg_parse(w.buf, w.len, fds_of(t), dir, &m, why, sizeof(why)),
				 -EBADMSG);
		wr_free(&w);
	}
}

static void expect_bad(const uint8_t *buf, size_t len, int nfds, enum repl_dir dir, const char *what)
{
	char why[200];
	struct repl_msg m;
	int rc = repl_msg_parse(buf, len, nfds, dir, &m, why, sizeof(why));
	if (rc != -EBADMSG)
		fprintf(stderr, "    accepted: %s\n", what);
	else
		fprintf(stderr, "    %s -> %s\n", what, why);
	CHECK_EQ(rc, -EBADMSG);
}

static void test_hostile_fields_are_rejected(void)
{
	struct wr w;
	sample(REPL_MSG_RESUME, &w);
	expect_bad(w.buf, w.len, 0, REPL_TO_HELPER, "RESUME in the wrong direction");
	w.buf[0] = 0, w.buf[1] = 99;
	expect_bad(w.buf, w.len, 0, REPL_TO_AGENT, "unknown type 99");
	w.buf[1] = REPL_MSG_RESUME, w.buf[2] = 1;
	expect_bad(w.buf, w.len, 0, REPL_TO_AGENT, "reserved header bits");
	wr_free(&w);
	sample(REPL_MSG_LOAD, &w);
	expect_bad(w.buf, w.len, 0, REPL_TO_AGENT, "LOAD without its fd");
	expect_bad(w.buf, w.len, 2, REPL_TO_AGENT, "LOAD with two fds");
	w.buf[8 + 16 + 3] = 3;
	expect_bad(w.buf, w.len, 1, REPL_TO_AGENT, "LOAD with unknown flag bits");
	wr_free(&w);
	sample(REPL_MSG_CHECKPOINT, &w);
	expect_bad(w.buf, w.len, 1, REPL_TO_HELPER, "CHECKPOINT with an fd");
	wr_free(&w);
	sample(REPL_MSG_SUSPEND_DONE, &w);
	w.buf[8] = 0x7f; /* err = +2130706427: not a negative errno */
	expect_bad(w.buf, w.len, 0, REPL_TO_HELPER, "SUSPEND_DONE with a positive err");
	wr_free(&w);
	sample(REPL_MSG_FAILED, &w);
	w.buf[8 + 3] = 9;
	expect_bad(w.buf, w.len, 0, REPL_TO_AGENT, "FAILED with an unknown class");
	wr_free(&w);
	sample(REPL_MSG_START, &w);
	w.buf[8 + 3] = 3;
	expect_bad(w.buf, w.len, 0, REPL_TO_HELPER, "START with role 3");
	w.buf[8 + 3] = 2;
	w.buf[8 + 40] = 0; /* a NUL inside peer_host */
	expect_bad(w.buf, w.len, 0, REPL_TO_HELPER, "START with a NUL in the host");
	w.buf[8 + 40] = '1';
	w.buf[8 + 35] = 200; /* host_len 9 -> 200: the strings no longer add up */
	expect_bad(w.buf, w.len, 0, REPL_TO_HELPER, "START whose string lengths lie");
	w.buf[8 + 35] = 9;
	w.buf[8 + 23] = 1; /* ram_size + 1: not a multiple of 4096 */
	expect_bad(w.buf, w.len, 0, REPL_TO_HELPER, "START with an odd RAM size");
	wr_free(&w);
}

/* The helper's text is untrusted on its way to our logs. */
static void test_failed_reason_is_sanitised(void)
{
	char why[200];
	struct repl_msg m;
	struct wr w;
	wr_init(&w);
	repl_msg_put_failed(&w, REPL_LOCAL_ERROR, "bad\x1b[31mthing\n");
	CHECK_EQ(repl_msg_parse(w.buf, w.len, 0, REPL_TO_AGENT, &m, why, sizeof(why)), 0);
	CHECK(strcmp(m.failed.reason, "bad?[31mthing?") == 0);
	wr_free(&w);
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	REQUIRE(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* An fd with a message that takes none: rejected, and the fd does not leak. */
static void test_unexpected_fds_are_closed(void)
{
	int sv[2];
	char why[200];
	struct repl_msg m;
	struct wr w;
	REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	int before = count_fds();
	int fd = memfd_create("x", MFD_CLOEXEC);
	sample(REPL_MSG_RESUME, &w);
	REQUIRE(repl_msg_send(sv[0], &w, fd, 0) == 0);
	close(fd);
	CHECK_EQ(repl_msg_recv(sv[1], REPL_TO_AGENT, &m, why, sizeof(why)), -EBADMSG);
	CHECK_EQ(count_fds(), before);
	wr_free(&w);
	/* and a LOAD gets its fd */
	fd = memfd_create("y", MFD_CLOEXEC);
	sample(REPL_MSG_LOAD, &w);
	REQUIRE(repl_msg_send(sv[0], &w, fd, 0) == 0);
	close(fd);
	CHECK_EQ(repl_msg_recv(sv[1], REPL_TO_AGENT, &m, why, sizeof(why)), 1);
	CHECK(m.fd >= 0);
	close(m.fd);
	wr_free(&w);
	close(sv[0]);
	CHECK_EQ(repl_msg_recv(sv[1], REPL_TO_AGENT, &m, why, sizeof(why)), -EPIPE);
	close(sv[1]);
}

/* ---- a hostile helper ------------------------------------------------------------------ */

#define SCRIPT_MAX 4
static struct {
	uint8_t buf[SCRIPT_MAX][256];
	size_t len[SCRIPT_MAX];
	bool fd[SCRIPT_MAX];
	int n;
	bool die; /* exit after the script instead of waiting for EOF */
} script;

static void script_add(const struct wr *w, bool with_fd)
{
	memcpy(script.buf[script.n], w->buf, w->len);
	script.len[script.n] = w->len;
	script.fd[script.n++] = with_fd;
}

static int fake_helper(int sock)
{
	uint8_t start[REPL_MSG_MAX];
	if (recv(sock, start, sizeof(start), 0) <= 0)
		return 2;
	for (int i = 0; i < script.n; i++) {
		int fd = script.fd[i] ? memfd_create("fake", MFD_CLOEXEC) : -1;
		struct wr w = { .buf = script.buf[i], .len = script.len[i], .cap = 256, .fixed = true };
		if (repl_msg_send(sock, &w, fd, 0) < 0)
			return 2;
	}
	if (script.die)
		return 0;
	while (recv(sock, start, sizeof(start), 0) > 0)
		;
	return 0;
}

struct agent {
	int suspends, resumes, loads, commits, failed;
	enum repl_failure why;
	char reason[1100];
	int suspend_fd;
};

static void a_suspend(struct replicator *r, int fd, void *arg)
{
	struct agent *a = arg;
	a->suspends++;
	a->suspend_fd = fd; /* answered later, maybe after the helper is gone */
}
static void a_resume(struct replicator *r, void *arg)
{
	((struct agent *)arg)->resumes++;
}
static void a_load(struct replicator *r, int fd, uint64_t mark, void *arg)
{
	((struct agent *)arg)->loads++;
}
static void a_committed(struct replicator *r, const struct repl_stats *st, void *arg)
{
	((struct agent *)arg)->commits++;
}
static void a_ready(struct replicator *r, void *arg)
{
}
static void a_failed(struct replicator *r, enum repl_failure why, const char *reason, void *arg)
{
	struct agent *a = arg;
	a->failed++;
	a->why = why;
	snprintf(a->reason, sizeof(a->reason), "%s", reason);
}
static const struct repl_ops agent_ops = { a_suspend, a_resume,  a_load,
					   a_committed, a_ready, a_failed, NULL };

/* Run the script against repl.c; return what the agent saw. */
static struct agent run_script(enum repl_role role, const char *want_reason)
{
	struct loop *loop;
	struct replicator *r;
	struct agent a = { .suspend_fd = -1 };
	struct repl_config cfg = { .role = role, .ram_path = "/nonexistent", .ram_size = 1 << 20,
				   .qemu_pid = 1, .peer_host = "127.0.0.1", .peer_port = 9 };
	log_init("test", LOG_ERR);
	REQUIRE(loop_new(&loop) == 0);
	REQUIRE(repl_start_with(loop, &cfg, &agent_ops, &a, fake_helper, &r) == 0);
	int pid = repl_helper_pid(r);
	RUN_UNTIL(loop, a.failed, 5000);
	fprintf(stderr, "    %s\n", a.reason);
	CHECK_EQ(a.failed, 1);
	CHECK(strstr(a.reason, want_reason) != NULL);
	if (a.suspends)
		repl_suspend_done(r, 0, 0); /* too late: ignored, no crash */
	CHECK_EQ(repl_checkpoint(r), role == REPL_PRIMARY ? -ENOTCONN : -EINVAL);
	repl_free(r);
	CHECK(kill(pid, 0) < 0 && errno == ESRCH); /* killed and reaped */
	loop_free(loop);
	script.n = 0;
	script.die = false;
	return a;
}

static void test_helper_sends_a_wrong_length(void)
{
	struct wr w;
	sample(REPL_MSG_SYNCING, &w);
	wr_zeros(&w, 4);
	script_add(&w, false);
	wr_free(&w);
	struct agent a = run_script(REPL_PRIMARY, "broke the protocol: SYNCING says 0 body octets");
	CHECK_EQ(a.why, REPL_LOCAL_ERROR);
}

static void test_helper_sends_an_unknown_type(void)
{
	struct wr w;
	wr_init(&w);
	repl_msg_put_empty(&w, 99);
	script_add(&w, false);
	wr_free(&w);
	struct agent a = run_script(REPL_SECONDARY, "unknown message type 99");
	CHECK_EQ(a.why, REPL_LOCAL_ERROR);
}

static void test_helper_sends_a_misplaced_message(void)
{
	struct wr w;
	sample(REPL_MSG_SYNCING, &w);
	script_add(&w, false);
	wr_free(&w);
	sample(REPL_MSG_RESUME, &w); /* to a secondary */
	script_add(&w, false);
	wr_free(&w);
	run_script(REPL_SECONDARY, "RESUME to a secondary");
	sample(REPL_MSG_COMMITTED, &w); /* before SYNCING */
	script_add(&w, false);
	wr_free(&w);
	run_script(REPL_PRIMARY, "COMMITTED in state starting");
	sample(REPL_MSG_SYNCING, &w);
	script_add(&w, false);
	wr_free(&w);
	sample(REPL_MSG_SUSPEND, &w); /* a primary's SUSPEND carries the save fd */
	script_add(&w, false);
	wr_free(&w);
	run_script(REPL_PRIMARY, "SUSPEND without a save fd");
	sample(REPL_MSG_START, &w);
	script_add(&w, false);
	wr_free(&w);
	run_script(REPL_PRIMARY, "START sent in the wrong direction");
}

/* The helper dies with a request outstanding: the agent hears it, the late answer
 * is ignored. */
static void test_helper_dies_mid_protocol(void)
{
	struct wr w;
	sample(REPL_MSG_SYNCING, &w);
	script_add(&w, false);
	wr_free(&w);
	sample(REPL_MSG_SUSPEND, &w);
	script_add(&w, true);
	wr_free(&w);
	script.die = true;
	struct agent a = run_script(REPL_PRIMARY, "exited with status 0");
	CHECK_EQ(a.suspends, 1);
	CHECK_EQ(a.why, REPL_LOCAL_ERROR);
}

static void test_helper_reports_failure(void)
{
	struct wr w;
	wr_init(&w);
	repl_msg_put_failed(&w, REPL_REFUSED, "peer refused: \x07 bell");
	script_add(&w, false);
	wr_free(&w);
	struct agent a = run_script(REPL_PRIMARY, "peer refused: ? bell");
	CHECK_EQ(a.why, REPL_REFUSED);
}

/* ---- a hostile agent ----------------------------------------------------------------- */

/* Start the real helper on a socketpair; send the datagrams; return its exit status
 * and the first message it sent back (if any) in *m. */
static int helper_with(const struct wr *msgs, int n, struct repl_msg *m, bool reply)
{
	int sv[2], status;
	char why[200];
	REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		log_init("colo-helper", LOG_ERR);
		_exit(repl_helper_main(sv[1]));
	}
	close(sv[1]);
	for (int i = 0; i < n; i++)
		send(sv[0], msgs[i].buf, msgs[i].len, MSG_NOSIGNAL);
	m->type = 0;
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (!reply)
		usleep(100000); /* let it act on what it got */
	else if (repl_msg_recv(sv[0], REPL_TO_AGENT, m, why, sizeof(why)) != 1)
		m->type = 0;
	close(sv[0]); /* whatever it waits for, it now sees EOF */
	REQUIRE(waitpid(pid, &status, 0) == pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_helper_refuses_a_first_message_other_than_start(void)
{
	struct wr w[1];
	struct repl_msg m;
	sample(REPL_MSG_CHECKPOINT, &w[0]);
	CHECK_EQ(helper_with(w, 1, &m, true), 2);
	CHECK_EQ(m.type, 0);
	wr_free(&w[0]);
	sample(REPL_MSG_START, &w[0]);
	w[0].len -= 3; /* START cut short */
	CHECK_EQ(helper_with(w, 1, &m, true), 2);
	wr_free(&w[0]);
}

static void test_helper_reports_what_it_cannot_open(void)
{
	struct wr w[1];
	struct repl_msg m;
	sample(REPL_MSG_START, &w[0]); /* a RAM file that does not exist */
	CHECK_EQ(helper_with(w, 1, &m, true), 1);
	CHECK_EQ(m.type, REPL_MSG_FAILED);
	CHECK_EQ(m.failed.why, REPL_LOCAL_ERROR);
	fprintf(stderr, "    %s\n", m.failed.reason);
	CHECK(strstr(m.failed.reason, "/dev/shm/colo-test-x/secondary.ram") ||
	      strstr(m.failed.reason, "colo-rig-x/secondary.ram"));
	wr_free(&w[0]);
	struct repl_start s = sample_start();
	s.backend = REPL_BACKEND_XEN;
	wr_init(&w[0]);
	repl_msg_put_start(&w[0], &s);
	CHECK_EQ(helper_with(w, 1, &m, true), 1);
	CHECK_EQ(m.type, REPL_MSG_FAILED);
	CHECK(strstr(m.failed.reason, "Xen backend is not built") != NULL);
	wr_free(&w[0]);
}

/* An answer nobody asked for, or garbage, after START: the helper gives up (exit 3).
 * The agent going away: it exits 0. A live secondary helper (a fake VM to track,
 * listening for a primary that never comes) receives each. */
static void test_helper_exits_on_an_agent_protocol_violation(void)
{
	struct guest g;
	struct wr w[2];
	struct repl_msg m;
	struct repl_start s = sample_start();
	vm_start(&g, 1 << 20, 10, 3);
	s.vm_id = (uint32_t)g.pid;
	s.ram_size = g.size;
	s.peer_port = vm_free_port();
	snprintf(s.peer_host, sizeof(s.peer_host), "127.0.0.1");
	snprintf(s.ram_path, sizeof(s.ram_path), "%s", g.path);
	wr_init(&w[0]);
	repl_msg_put_start(&w[0], &s);
	CHECK_EQ(helper_with(w, 1, &m, false), 0); /* EOF: the agent left */
	sample(REPL_MSG_SUSPEND_DONE, &w[1]);      /* nobody asked */
	CHECK_EQ(helper_with(w, 2, &m, false), 3);
	wr_free(&w[1]);
	sample(REPL_MSG_START, &w[1]); /* a second START */
	CHECK_EQ(helper_with(w, 2, &m, false), 3);
	wr_free(&w[1]);
	uint8_t junk[12] = { 0, 77, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4 };
	wr_init(&w[1]);
	wr_bytes(&w[1], junk, sizeof(junk));
	CHECK_EQ(helper_with(w, 2, &m, false), 3);
	wr_free(&w[1]);
	sample(REPL_MSG_STOPPED, &w[1]); /* outside a suspend */
	CHECK_EQ(helper_with(w, 2, &m, false), 3);
	wr_free(&w[1]);
	sample(REPL_MSG_CHECKPOINT, &w[1]); /* a primary's verb, to a secondary: ignored */
	CHECK_EQ(helper_with(w, 2, &m, false), 0);
	wr_free(&w[0]);
	wr_free(&w[1]);
	vm_stop(&g);
}

/* ---- fuzz seeds ------------------------------------------------------------------------ */

static void write_seed(const char *dir, const char *name, uint8_t mode, const struct wr *w)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	REQUIRE(f);
	fputc(mode, f);
	fwrite(w->buf, 1, w->len, f);
	fclose(f);
}

/* Seeds: byte 0 = direction (bit 0: 1 to the agent) | fd count << 1, then one
 * message of each type, plus three broken ones. */
static void test_fuzz_seeds(void)
{
	const char *dir = getenv("COLO_WRITE_SEEDS");
	char name[64];
	for (size_t i = 0; i < NTYPES; i++) {
		struct wr w;
		enum repl_dir d = sample(all_types[i], &w);
		snprintf(name, sizeof(name), "seed-%s", repl_msg_name(all_types[i]));
		if (dir)
			write_seed(dir, name, (uint8_t)(d | fds_of(all_types[i]) << 1), &w);
		if (dir && all_types[i] == REPL_MSG_START) {
			w.buf[8 + 35] = 200;
			write_seed(dir, "seed-bad-START-lengths", 0, &w);
		}
		if (dir && all_types[i] == REPL_MSG_LOAD)
			write_seed(dir, "seed-bad-LOAD-no-fd", 1, &w);
		if (dir && all_types[i] == REPL_MSG_COMMITTED) {
			w.len -= 8;
			write_seed(dir, "seed-bad-COMMITTED-short", 1, &w);
		}
		wr_free(&w);
	}
}

static const struct test tests[] = {
	TEST(test_round_trip_every_message),
	TEST(test_every_wrong_length_is_rejected),
	TEST(test_hostile_fields_are_rejected),
	TEST(test_failed_reason_is_sanitised),
	TEST(test_unexpected_fds_are_closed),
	TEST(test_helper_sends_a_wrong_length),
	TEST(test_helper_sends_an_unknown_type),
	TEST(test_helper_sends_a_misplaced_message),
	TEST(test_helper_dies_mid_protocol),
	TEST(test_helper_reports_failure),
	TEST(test_helper_refuses_a_first_message_other_than_start),
	TEST(test_helper_reports_what_it_cannot_open),
	TEST(test_helper_exits_on_an_agent_protocol_violation),
	TEST(test_fuzz_seeds),
	{ 0 },
};
TEST_MAIN(tests)
