/* Unit tests of the QMP client against a scripted fake QEMU on the same loop (a
 * socketpair; a unix socket for connect; a forked server for the sync wrapper).
 * The fake reads one byte per recvmsg, as QEMU 7.2 does, so a passed fd lands
 * on the command it came with, and it keeps one received fd at a time, as QEMU. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "lib/loop.h"
#include "qmp/qmp.h"
#include "tests/harness/test.h"

#define GREETING_OOB                                                                      \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, " \
	"\"package\": \"fake\"}, \"capabilities\": [\"oob\"]}}\r\n"
#define GREETING_PLAIN                                                                    \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, " \
	"\"package\": \"\"}, \"capabilities\": []}}\r\n"
#define MAX_SEEN 2048

struct fake;
typedef void (*fake_cmd_fn)(struct fake *f, const char *name, long long id, yajl_val args,
			    int fd);

/* A scripted QEMU. Commands go to on_cmd (qmp_capabilities is answered here). */
struct fake {
	struct loop *loop;
	int fd;
	char line[1 << 16];
	size_t line_len;
	int held_fd;	   /* the last fd received, not yet taken by a command */
	int line_fd;	   /* fd that arrived with the line being read */
	int fds_lost;	   /* fds replaced before a command took them */
	char *out;
	size_t out_len, out_off;
	uint64_t garbage_left, garbage_sent;
	bool close_when_flushed, peer_gone;
	fake_cmd_fn on_cmd;
	int ncmds;
	long long ids[MAX_SEEN];
	char names[MAX_SEEN][32];
	yajl_val caps_args; /* arguments of qmp_capabilities */
	void *test;
};

static uint8_t garbage[65536];

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static void fake_update(struct fake *f)
{
	bool want_out = f->out_off < f->out_len || f->garbage_left;
	loop_mod_fd(f->loop, f->fd, EPOLLIN | (want_out ? EPOLLOUT : 0));
}

static void fake_close(struct fake *f)
{
	if (f->fd < 0)
		return;
	loop_del_fd(f->loop, f->fd);
	close(f->fd);
	f->fd = -1;
}

static void fake_flush(struct fake *f)
{
	while (f->fd >= 0 && f->out_off < f->out_len) {
		ssize_t n = send(f->fd, f->out + f->out_off, f->out_len - f->out_off, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			f->peer_gone = true;
			fake_close(f);
			return;
		}
		f->out_off += (size_t)n;
	}
	while (f->fd >= 0 && f->out_off == f->out_len && f->garbage_left) {
		size_t len = f->garbage_left < sizeof(garbage) ? f->garbage_left : sizeof(garbage);
		ssize_t n = send(f->fd, garbage, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			f->peer_gone = true;
			fake_close(f);
			return;
		}
		f->garbage_left -= (uint64_t)n;
		f->garbage_sent += (uint64_t)n;
	}
	if (f->fd >= 0 && f->out_off == f->out_len && !f->garbage_left && f->close_when_flushed)
		fake_close(f);
	if (f->fd >= 0)
		fake_update(f);
}

/* Raw bytes: the fake may send anything, that is its point. */
static void fake_send_raw(struct fake *f, const char *p, size_t n)
{
	if (f->out_off == f->out_len)
		f->out_off = f->out_len = 0;
	f->out = realloc(f->out, f->out_len + n);
	REQUIRE(f->out);
	memcpy(f->out + f->out_len, p, n);
	f->out_len += n;
	fake_flush(f);
}

static void fake_send(struct fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fake_send(struct fake *f, const char *fmt, ...)
{
	char *s;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	REQUIRE(n >= 0);
	fake_send_raw(f, s, (size_t)n);
	free(s);
}

static void fake_line(struct fake *f)
{
	f->line[f->line_len] = '\0';
	int fd = f->line_fd;
	f->line_fd = -1;
	f->line_len = 0;
	yajl_val root = yajl_tree_parse(f->line, NULL, 0);
	const char *name_path[] = { "execute", NULL }, *id_path[] = { "id", NULL };
	const char *args_path[] = { "arguments", NULL };
	const char *name = YAJL_GET_STRING(yajl_tree_get(root, name_path, yajl_t_string));
	yajl_val id = yajl_tree_get(root, id_path, yajl_t_number);
	yajl_val args = yajl_tree_get(root, args_path, yajl_t_object);
	REQUIRE(name && YAJL_IS_INTEGER(id));
	if (f->ncmds < MAX_SEEN) {
		f->ids[f->ncmds] = YAJL_GET_INTEGER(id);
		snprintf(f->names[f->ncmds], sizeof(f->names[0]), "%s", name);
	}
	f->ncmds++;
	if (fd >= 0 && (strcmp(name, "add-fd") == 0 || strcmp(name, "getfd") == 0))
		f->held_fd = -1; /* taken by the command; the handler owns fd now */
	if (strcmp(name, "qmp_capabilities") == 0) {
		if (args) { /* keep a copy of the arguments for the test */
			const char *enable_path[] = { "enable", NULL };
			f->caps_args = yajl_tree_get(args, enable_path, yajl_t_array) ? root : NULL;
			if (f->caps_args)
				root = NULL;
		}
		fake_send(f, "{\"return\": {}, \"id\": %lld}\r\n", YAJL_GET_INTEGER(id));
	} else if (f->on_cmd) {
		f->on_cmd(f, name, YAJL_GET_INTEGER(id), args, fd);
	} else {
		fake_send(f, "{\"return\": {}, \"id\": %lld}\r\n", YAJL_GET_INTEGER(id));
	}
	yajl_tree_free(root);
}

/* One byte per recvmsg, like QEMU 7.2's monitor. */
static void fake_read(struct fake *f)
{
	for (int i = 0; i < 4096 && f->fd >= 0; i++) {
		char c;
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int))];
		} ctl;
		struct iovec iov = { .iov_base = &c, .iov_len = 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
				     .msg_controllen = sizeof(ctl.b) };
		ssize_t n = recvmsg(f->fd, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			f->peer_gone = true;
			fake_close(f);
			return;
		}
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		if (cm && cm->cmsg_type == SCM_RIGHTS) {
			if (f->held_fd >= 0) { /* QEMU drops the previous one */
				f->fds_lost++;
				close(f->held_fd);
			}
			memcpy(&f->held_fd, CMSG_DATA(cm), sizeof(int));
			f->line_fd = f->held_fd;
		}
		if (c == '\n')
			fake_line(f);
		else if (f->line_len < sizeof(f->line) - 1)
			f->line[f->line_len++] = c;
	}
}

static void fake_io(struct loop *loop, int fd, uint32_t ev, void *arg)
{
	struct fake *f = arg;
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		fake_read(f);
	if (f->fd >= 0 && (ev & EPOLLOUT))
		fake_flush(f);
}

static void fake_init(struct fake *f, struct loop *loop, int fd)
{
	*f = (struct fake){ .loop = loop, .fd = fd, .held_fd = -1, .line_fd = -1 };
	REQUIRE(loop_add_fd(loop, fd, EPOLLIN, fake_io, f) == 0);
}

static void fake_free(struct fake *f)
{
	fake_close(f);
	if (f->held_fd >= 0)
		close(f->held_fd);
	free(f->out);
	yajl_tree_free(f->caps_args);
}

/* ------------------------------------------------------------------ fixture --- */

struct env {
	struct loop *loop;
	struct fake fake;
	struct qmp *c;
	int ready, broken, broken_err;
	char broken_why[256];
	bool free_on_broken;
};

static void on_ready(struct qmp *c, void *arg)
{
	((struct env *)arg)->ready++;
}

static void on_broken(struct qmp *c, int err, const char *why, void *arg)
{
	struct env *e = arg;
	e->broken++;
	e->broken_err = err;
	snprintf(e->broken_why, sizeof(e->broken_why), "%s", why);
	if (e->free_on_broken) {
		qmp_free(c);
		e->c = NULL;
	}
}

#define RUN_UNTIL(loop, cond, ms)                               \
	do {                                                    \
		uint64_t until_ = mono_ms() + (uint64_t)(ms);  \
		while (!(cond) && mono_ms() < until_)           \
			loop_run_once((loop), 5);               \
	} while (0)

/* A client adopted on one end of a socketpair, the fake on the other. */
static void env_start(struct env *e, const char *greeting)
{
	int sv[2];
	*e = (struct env){ 0 };
	REQUIRE(loop_new(&e->loop) == 0);
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	fake_init(&e->fake, e->loop, sv[0]);
	struct qmp_handlers h = { .ready = on_ready, .broken = on_broken, .arg = e };
	REQUIRE(qmp_adopt(e->loop, sv[1], "fake", &h, &e->c) == 0);
	if (greeting)
		fake_send(&e->fake, "%s", greeting);
}

static void env_ready(struct env *e)
{
	env_start(e, GREETING_OOB);
	RUN_UNTIL(e->loop, e->ready, 2000);
	REQUIRE(e->ready == 1);
}

static void env_free(struct env *e)
{
	qmp_free(e->c);
	fake_free(&e->fake);
	loop_free(e->loop);
}

/* What one command's callback saw. */
struct rec {
	int calls;
	int err;
	char cls[64], desc[512];
	yajl_val ret; /* kept: freed by rec_free */
	bool free_client;
	struct env *env;
	int *total; /* optional: counts calls of a batch */
};

static void on_result(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct rec *r = arg;
	r->calls++;
	if (r->total)
		(*r->total)++;
	r->err = res->err;
	snprintf(r->cls, sizeof(r->cls), "%s", res->error_class ? res->error_class : "");
	snprintf(r->desc, sizeof(r->desc), "%s", res->error_desc ? res->error_desc : "");
	if (res->err == 0 && !r->ret) {
		r->ret = res->ret;
		res->ret = NULL;
	}
	if (r->free_client) {
		qmp_free(c);
		r->env->c = NULL;
	}
}

static void rec_free(struct rec *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		yajl_tree_free(r[i].ret);
}

/* -------------------------------------------------------------------- tests --- */

static void test_negotiation_enables_oob(void)
{
	struct env e;
	env_start(&e, GREETING_OOB);
	CHECK(!qmp_is_ready(e.c));
	RUN_UNTIL(e.loop, e.ready, 2000);
	REQUIRE(e.ready == 1);
	CHECK(qmp_is_ready(e.c));
	CHECK(qmp_oob_enabled(e.c));
	CHECK_EQ(qmp_peer_pid(e.c), getpid()); /* SO_PEERCRED of a socketpair: us */
	REQUIRE(e.fake.ncmds == 1);
	CHECK(strcmp(e.fake.names[0], "qmp_capabilities") == 0);
	const char *path[] = { "arguments", "enable", NULL };
	yajl_val en = yajl_tree_get(e.fake.caps_args, path, yajl_t_array);
	REQUIRE(en && en->u.array.len == 1);
	CHECK(streq(YAJL_GET_STRING(en->u.array.values[0]), "oob"));
	env_free(&e);
}

static void test_negotiation_without_oob(void)
{
	struct env e;
	env_start(&e, GREETING_PLAIN);
	RUN_UNTIL(e.loop, e.ready, 2000);
	REQUIRE(e.ready == 1);
	CHECK(!qmp_oob_enabled(e.c));
	CHECK(e.fake.caps_args == NULL); /* no "enable" sent */
	env_free(&e);
}

static void test_commands_before_ready_wait_for_negotiation(void)
{
	struct env e;
	struct rec r[3] = { 0 };
	env_start(&e, NULL);
	for (int i = 0; i < 3; i++)
		REQUIRE(qmp_exec(e.c, i == 1 ? "stop" : "query-status", NULL, -1, 2000, on_result,
				 &r[i]) == 0);
	CHECK_EQ(r[0].calls, 0); /* never called from inside qmp_exec */
	RUN_UNTIL(e.loop, false, 50);
	CHECK_EQ(e.fake.ncmds, 0); /* nothing goes before the greeting */
	fake_send(&e.fake, GREETING_OOB);
	RUN_UNTIL(e.loop, r[2].calls, 2000);
	REQUIRE(e.fake.ncmds == 4);
	CHECK(strcmp(e.fake.names[0], "qmp_capabilities") == 0);
	CHECK(strcmp(e.fake.names[1], "query-status") == 0);
	CHECK(strcmp(e.fake.names[2], "stop") == 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(r[i].calls, 1);
		CHECK_EQ(r[i].err, 0);
	}
	rec_free(r, 3);
	env_free(&e);
}

static void answer_nothing(struct fake *f, const char *name, long long id, yajl_val args, int fd)
{
}

static void answer_status(struct fake *f, const char *name, long long id, yajl_val args, int fd)
{
	if (strcmp(name, "query-status") == 0)
		fake_send(f, "{\"return\": {\"status\": \"running\", \"singlestep\": false, "
			     "\"running\": true}, \"id\": %lld}\r\n", id);
	else
		fake_send(f, "{\"id\": %lld, \"error\": {\"class\": \"CommandNotFound\", "
			     "\"desc\": \"The command %s has not been found\"}}\r\n", id, name);
}

static void test_return_value_and_qemu_error(void)
{
	struct env e;
	struct rec ok = { 0 }, bad = { 0 };
	env_ready(&e);
	e.fake.on_cmd = answer_status;
	REQUIRE(qmp_exec(e.c, "query-status", NULL, -1, 2000, on_result, &ok) == 0);
	REQUIRE(qmp_exec(e.c, "no-such-command", NULL, -1, 2000, on_result, &bad) == 0);
	RUN_UNTIL(e.loop, ok.calls && bad.calls, 2000);
	CHECK_EQ(ok.calls, 1);
	CHECK_EQ(ok.err, 0);
	bool running = false;
	CHECK_EQ(qmp_get_bool(ok.ret, "running", &running), 0);
	CHECK(running);
	CHECK(qmp_get_str(ok.ret, "status") && strcmp(qmp_get_str(ok.ret, "status"), "running") == 0);
	CHECK_EQ(bad.calls, 1);
	CHECK_EQ(bad.err, -EREMOTEIO);
	CHECK(strcmp(bad.cls, "CommandNotFound") == 0);
	CHECK(strstr(bad.desc, "no-such-command") != NULL);
	CHECK(qmp_is_ready(e.c)); /* a QEMU error is not a connection error */
	rec_free(&ok, 1);
	env_free(&e);
}

static void answer_partly_then_close(struct fake *f, const char *name, long long id,
				     yajl_val args, int fd)
{
	if (id == 4) { /* the third command: half a reply, then QEMU "dies" */
		fake_send(f, "{\"return\": {\"status\": \"runn");
		f->close_when_flushed = true;
		fake_flush(f);
	}
}

static void test_disconnect_mid_reply_fails_each_caller_once(void)
{
	struct env e;
	struct rec r[3] = { 0 };
	env_ready(&e);
	e.fake.on_cmd = answer_partly_then_close;
	for (int i = 0; i < 3; i++)
		REQUIRE(qmp_exec(e.c, "query-status", NULL, -1, 5000, on_result, &r[i]) == 0);
	RUN_UNTIL(e.loop, e.broken, 2000);
	REQUIRE(e.broken == 1);
	CHECK_EQ(e.broken_err, -ECONNRESET);
	CHECK(strstr(e.broken_why, "mid-message") != NULL);
	RUN_UNTIL(e.loop, false, 30); /* nothing more may arrive */
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(r[i].calls, 1);
		CHECK_EQ(r[i].err, -ECONNRESET);
		CHECK(strstr(r[i].desc, "mid-message") != NULL);
	}
	CHECK_EQ(e.broken, 1);
	struct rec late = { 0 };
	CHECK_EQ(qmp_exec(e.c, "query-status", NULL, -1, 0, on_result, &late), -ENOTCONN);
	CHECK_EQ(qmp_peer_pid(e.c), -ENOTCONN);
	RUN_UNTIL(e.loop, false, 20);
	CHECK_EQ(late.calls, 0);
	env_free(&e);
}

struct events_seen {
	char order[16][16];
	int n, stops, all;
	int64_t stop_seconds, stop_us;
	int unsub_id;
	struct qmp *c;
};

static void on_stop(struct qmp *c, const struct qmp_event *ev, void *arg)
{
	struct events_seen *s = arg;
	s->stops++;
	s->stop_seconds = ev->seconds;
	s->stop_us = ev->microseconds;
	CHECK(ev->data == NULL);
}

static void on_any(struct qmp *c, const struct qmp_event *ev, void *arg)
{
	struct events_seen *s = arg;
	if (s->n < 16)
		snprintf(s->order[s->n++], sizeof(s->order[0]), "%s", ev->name);
	s->all++;
}

static void on_once(struct qmp *c, const struct qmp_event *ev, void *arg)
{
	struct events_seen *s = arg;
	qmp_unsubscribe(c, s->unsub_id); /* from inside its own callback */
	if (s->n < 16)
		snprintf(s->order[s->n++], sizeof(s->order[0]), "once:%s", ev->name);
}

static void answer_with_events(struct fake *f, const char *name, long long id, yajl_val args,
			       int fd)
{
	fake_send(f, "{\"timestamp\": {\"seconds\": 1700000001, \"microseconds\": 250}, "
		     "\"event\": \"STOP\"}\r\n"
		     "{\"timestamp\": {\"seconds\": 1700000002, \"microseconds\": 0}, "
		     "\"event\": \"RESUME\"}\r\n"
		     "{\"return\": {}, \"id\": %lld}\r\n"
		     "{\"timestamp\": {\"seconds\": 1700000003, \"microseconds\": 1}, "
		     "\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": "
		     "\"host-qmp-quit\"}}\r\n", id);
}

static void test_interleaved_events_reach_subscribers(void)
{
	struct env e;
	struct events_seen s = { 0 };
	struct rec r = { 0 };
	env_ready(&e);
	e.fake.on_cmd = answer_with_events;
	REQUIRE(qmp_subscribe(e.c, "STOP", on_stop, &s) > 0);
	REQUIRE(qmp_subscribe(e.c, NULL, on_any, &s) > 0);
	s.unsub_id = qmp_subscribe(e.c, NULL, on_once, &s);
	REQUIRE(s.unsub_id > 0);
	REQUIRE(qmp_exec(e.c, "stop", NULL, -1, 2000, on_result, &r) == 0);
	RUN_UNTIL(e.loop, s.all == 3 && r.calls, 2000);
	CHECK_EQ(r.calls, 1);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(s.stops, 1);
	CHECK_EQ(s.stop_seconds, 1700000001);
	CHECK_EQ(s.stop_us, 250);
	REQUIRE(s.n == 4);
	CHECK(strcmp(s.order[0], "STOP") == 0);
	CHECK(strcmp(s.order[1], "once:STOP") == 0);
	CHECK(strcmp(s.order[2], "RESUME") == 0);
	CHECK(strcmp(s.order[3], "SHUTDOWN") == 0);
	rec_free(&r, 1);
	env_free(&e);
}

struct held {
	long long id;
};

static void hold_reply(struct fake *f, const char *name, long long id, yajl_val args, int fd)
{
	struct held *h = f->test;
	if (strcmp(name, "slow") == 0)
		h->id = id;
	else
		fake_send(f, "{\"return\": {\"n\": 2}, \"id\": %lld}\r\n", id);
}

static void test_reply_after_timeout_is_dropped(void)
{
	struct env e;
	struct held h = { 0 };
	struct rec slow = { 0 }, next = { 0 };
	env_ready(&e);
	e.fake.on_cmd = hold_reply;
	e.fake.test = &h;
	uint64_t t0 = mono_ms();
	REQUIRE(qmp_exec(e.c, "slow", NULL, -1, 50, on_result, &slow) == 0);
	RUN_UNTIL(e.loop, slow.calls, 2000);
	uint64_t took = mono_ms() - t0;
	CHECK_EQ(slow.calls, 1);
	CHECK_EQ(slow.err, -ETIMEDOUT);
	CHECK(took >= 50 && took < 500);
	REQUIRE(h.id > 0);
	/* QEMU answers late: dropped quietly, the connection lives on */
	fake_send(&e.fake, "{\"return\": {\"n\": 1}, \"id\": %lld}\r\n", h.id);
	REQUIRE(qmp_exec(e.c, "fast", NULL, -1, 2000, on_result, &next) == 0);
	RUN_UNTIL(e.loop, next.calls, 2000);
	CHECK_EQ(next.calls, 1);
	CHECK_EQ(next.err, 0);
	int64_t n = 0;
	CHECK_EQ(qmp_get_int(next.ret, "n", &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(slow.calls, 1);
	CHECK_EQ(e.broken, 0);
	CHECK(qmp_is_ready(e.c));
	/* the same id again is no longer expected: a protocol error */
	fake_send(&e.fake, "{\"return\": {}, \"id\": %lld}\r\n", h.id);
	RUN_UNTIL(e.loop, e.broken, 2000);
	CHECK_EQ(e.broken_err, -EPROTO);
	rec_free(&next, 1);
	env_free(&e);
}

static void echo_id(struct fake *f, const char *name, long long id, yajl_val args, int fd)
{
	const char *path[] = { "i", NULL };
	yajl_val i = yajl_tree_get(args, path, yajl_t_number);
	fake_send(f, "{\"return\": {\"i\": %lld}, \"id\": %lld}\r\n",
		  i ? YAJL_GET_INTEGER(i) : -1, id);
}

static void test_1000_pipelined_commands(void)
{
	enum { N = 1000 };
	struct env e;
	struct rec *r = calloc(N, sizeof(*r));
	int done = 0;
	REQUIRE(r);
	for (int i = 0; i < N; i++)
		r[i].total = &done;
	env_ready(&e);
	e.fake.on_cmd = echo_id;
	for (int i = 0; i < N; i++) {
		struct qmp_args *a = qmp_args_new();
		qmp_args_int(a, "i", i);
		REQUIRE(qmp_exec(e.c, "echo", a, -1, 10000, on_result, &r[i]) == 0);
	}
	RUN_UNTIL(e.loop, done == N, 10000);
	CHECK_EQ(done, N);
	REQUIRE(e.fake.ncmds == N + 1);
	for (int i = 0; i < N; i++) {
		int64_t v = -1;
		CHECK_EQ(r[i].calls, 1);
		CHECK_EQ(r[i].err, 0);
		CHECK_EQ(qmp_get_int(r[i].ret, "i", &v), 0);
		CHECK_EQ(v, i);
	}
	for (int i = 1; i < N + 1; i++) /* ids unique: strictly increasing on the wire */
		CHECK(e.fake.ids[i] > e.fake.ids[i - 1]);
	rec_free(r, N);
	free(r);
	env_free(&e);
}

static void test_pending_limit(void)
{
	struct env e;
	static struct rec r[QMP_MAX_PENDING + 1];
	env_ready(&e);
	e.fake.on_cmd = hold_reply; /* "slow": never answered */
	struct held h = { 0 };
	e.fake.test = &h;
	for (int i = 0; i < QMP_MAX_PENDING; i++)
		REQUIRE(qmp_exec(e.c, "slow", NULL, -1, 0, on_result, &r[i]) == 0);
	CHECK_EQ(qmp_exec(e.c, "slow", NULL, -1, 0, on_result, &r[QMP_MAX_PENDING]), -EBUSY);
	RUN_UNTIL(e.loop, e.fake.ncmds == QMP_MAX_PENDING + 1, 5000);
	CHECK_EQ(e.fake.ncmds, QMP_MAX_PENDING + 1);
	env_free(&e); /* drops them all without callbacks */
	for (int i = 0; i <= QMP_MAX_PENDING; i++)
		CHECK_EQ(r[i].calls, 0);
}

/* xorshift: reproducible garbage, NULs, newlines and invalid UTF-8 included */
static void fill_random_garbage(void)
{
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (size_t i = 0; i < sizeof(garbage); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		garbage[i] = (uint8_t)x;
	}
}

static long maxrss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* Stream 100 MB of `garbage` at a ready client with one command waiting. */
static void flood(struct env *e, struct rec *r)
{
	env_ready(e);
	e->fake.on_cmd = answer_nothing;
	REQUIRE(qmp_exec(e->c, "query-status", NULL, -1, QMP_NO_TIMEOUT, on_result, r) == 0);
	RUN_UNTIL(e->loop, e->fake.ncmds == 2, 2000);
	long rss0 = maxrss_kb();
	uint64_t t0 = mono_ms();
	e->fake.garbage_left = 100ull << 20;
	fake_flush(&e->fake);
	RUN_UNTIL(e->loop, e->broken, 10000);
	uint64_t took = mono_ms() - t0;
	REQUIRE(e->broken == 1);
	CHECK(took < 1000);
	RUN_UNTIL(e->loop, e->fake.peer_gone, 2000);
	CHECK(e->fake.peer_gone); /* the client hung up: QEMU cannot push the rest */
	CHECK(e->fake.garbage_sent < (8ull << 20));
	CHECK(maxrss_kb() - rss0 < 16 * 1024);
	CHECK_EQ(r->calls, 1);
	CHECK_EQ(r->err, e->broken_err);
	fprintf(stderr, "    ended after %llu ms, %llu bytes: %s\n", (unsigned long long)took,
		(unsigned long long)e->fake.garbage_sent, e->broken_why);
}

static void test_100mb_garbage_stream(void)
{
	struct env e;
	struct rec r = { 0 };
	fill_random_garbage();
	flood(&e, &r);
	CHECK(e.broken_err == -EPROTO || e.broken_err == -EILSEQ);
	env_free(&e);
}

static void test_100mb_without_newline_is_an_overlong_line(void)
{
	struct env e;
	struct rec r = { 0 };
	memset(garbage, '[', sizeof(garbage));
	flood(&e, &r);
	CHECK_EQ(e.broken_err, -EMSGSIZE);
	CHECK(strstr(e.broken_why, "longer than") != NULL);
	env_free(&e);
}

/* A reply whose line is exactly `len` bytes: {"return": "xxx...", "id": N} */
static void send_sized_reply(struct fake *f, long long id, size_t len)
{
	char tail[64];
	int tn = snprintf(tail, sizeof(tail), "\", \"id\": %lld}\r\n", id);
	const char *head = "{\"return\": \"";
	size_t fill = len - strlen(head) - (size_t)tn + 2;
	char *s = malloc(len + 2);
	REQUIRE(s);
	memcpy(s, head, strlen(head));
	memset(s + strlen(head), 'x', fill);
	memcpy(s + strlen(head) + fill, tail, (size_t)tn);
	fake_send_raw(f, s, len + 2);
	free(s);
}

struct sized {
	size_t len;
};

static void answer_sized(struct fake *f, const char *name, long long id, yajl_val args, int fd)
{
	send_sized_reply(f, id, ((struct sized *)f->test)->len);
}

static void test_overlong_line(void)
{
	struct env e;
	struct rec ok = { 0 }, bad = { 0 };
	struct sized sz = { QMP_MAX_LINE_BYTES };
	env_ready(&e);
	e.fake.on_cmd = answer_sized;
	e.fake.test = &sz;
	REQUIRE(qmp_exec(e.c, "big", NULL, -1, 5000, on_result, &ok) == 0);
	RUN_UNTIL(e.loop, ok.calls, 5000);
	CHECK_EQ(ok.err, 0); /* exactly the limit is fine */
	CHECK(YAJL_IS_STRING(ok.ret) && strlen(ok.ret->u.string) > QMP_MAX_LINE_BYTES - 40);
	sz.len = QMP_MAX_LINE_BYTES + 1;
	REQUIRE(qmp_exec(e.c, "big", NULL, -1, 5000, on_result, &bad) == 0);
	RUN_UNTIL(e.loop, bad.calls, 5000);
	CHECK_EQ(bad.err, -EMSGSIZE);
	CHECK_EQ(e.broken, 1);
	rec_free(&ok, 1);
	env_free(&e);
}

/* Send line (a reply to the next command) and expect the connection to end with err. */
static void expect_broken_by_n(const char *greeting, const char *line, size_t len, int err,
			       const char *why)
{
	struct env e;
	struct rec r = { 0 };
	if (greeting) {
		env_ready(&e);
		e.fake.on_cmd = answer_nothing;
		REQUIRE(qmp_exec(e.c, "query-status", NULL, -1, 5000, on_result, &r) == 0);
		RUN_UNTIL(e.loop, e.fake.ncmds == 2, 2000);
	} else {
		env_start(&e, NULL);
		REQUIRE(qmp_exec(e.c, "query-status", NULL, -1, 5000, on_result, &r) == 0);
	}
	fake_send_raw(&e.fake, line, len);
	RUN_UNTIL(e.loop, e.broken, 2000);
	if (e.broken_err != err || !strstr(e.broken_why, why))
		fprintf(stderr, "    line %.60s: got %d (%s)\n", line, e.broken_err, e.broken_why);
	CHECK_EQ(e.broken, 1);
	CHECK_EQ(e.broken_err, err);
	CHECK(strstr(e.broken_why, why) != NULL);
	CHECK_EQ(r.calls, 1);
	CHECK_EQ(r.err, err);
	env_free(&e);
}

static void expect_broken_by(const char *greeting, const char *line, int err, const char *why)
{
	expect_broken_by_n(greeting, line, strlen(line), err, why);
}

static void test_deep_nesting(void)
{
	/* depth QMP_MAX_DEPTH is fine, one more is not; 100,000 does not crash */
	size_t n = 100000;
	char *s = malloc(2 * n + 64);
	REQUIRE(s);
	for (int depth = QMP_MAX_DEPTH; depth <= QMP_MAX_DEPTH + 1; depth++) {
		struct env e;
		struct rec r = { 0 };
		env_ready(&e);
		e.fake.on_cmd = answer_nothing;
		size_t k = (size_t)sprintf(s, "{\"return\": ");
		for (int i = 1; i < depth; i++)
			s[k++] = '[';
		for (int i = 1; i < depth; i++)
			s[k++] = ']';
		sprintf(s + k, ", \"id\": 2}\r\n");
		REQUIRE(qmp_exec(e.c, "nest", NULL, -1, 5000, on_result, &r) == 0);
		RUN_UNTIL(e.loop, e.fake.ncmds == 2, 2000);
		fake_send_raw(&e.fake, s, strlen(s));
		RUN_UNTIL(e.loop, r.calls, 2000);
		CHECK_EQ(r.calls, 1);
		int want = depth == QMP_MAX_DEPTH ? 0 : -ELOOP;
		CHECK_EQ(r.err, want);
		rec_free(&r, 1);
		env_free(&e);
	}
	size_t k = (size_t)sprintf(s, "{\"return\": ");
	memset(s + k, '[', n);
	memset(s + k + n, ']', n);
	sprintf(s + k + 2 * n, ", \"id\": 2}\r\n");
	expect_broken_by(GREETING_OOB, s, -ELOOP, "nested deeper");
	free(s);
}

static void test_invalid_utf8(void)
{
	expect_broken_by(GREETING_OOB, "{\"return\": \"\xff\", \"id\": 2}\r\n", -EILSEQ, "UTF-8");
	expect_broken_by(GREETING_OOB, "{\"return\": \"\xc0\xaf\", \"id\": 2}\r\n", -EILSEQ,
			 "UTF-8");
	expect_broken_by(GREETING_OOB, "{\"return\": \"\xed\xa0\x80\", \"id\": 2}\r\n", -EILSEQ,
			 "UTF-8");
	static const char nul[] = "{\"return\": \"a\0b\", \"id\": 2}\r\n";
	expect_broken_by_n(GREETING_OOB, nul, sizeof(nul) - 1, -EPROTO, "NUL byte");
}

static void test_unknown_id(void)
{
	expect_broken_by(GREETING_OOB, "{\"return\": {}, \"id\": 999}\r\n", -EPROTO, "id 999");
	/* id 1 was qmp_capabilities, already answered */
	expect_broken_by(GREETING_OOB, "{\"return\": {}, \"id\": 1}\r\n", -EPROTO, "id 1,");
	expect_broken_by(GREETING_OOB, "{\"return\": {}, \"id\": \"2\"}\r\n", -EPROTO,
			 "not a positive integer");
}

static void test_missing_fields(void)
{
	expect_broken_by(GREETING_OOB, "{\"return\": {}}\r\n", -EPROTO, "without id");
	expect_broken_by(GREETING_OOB,
			 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid JSON\"}}\r\n",
			 -EPROTO, "without id (Invalid JSON)");
	expect_broken_by(GREETING_OOB, "{\"error\": {\"class\": \"GenericError\"}, \"id\": 2}\r\n",
			 -EPROTO, "class and desc");
	expect_broken_by(GREETING_OOB, "{\"event\": \"STOP\"}\r\n", -EPROTO, "timestamp");
	expect_broken_by(GREETING_OOB, "{\"id\": 2}\r\n", -EPROTO, "none of");
	expect_broken_by(GREETING_OOB, "[1, 2]\r\n", -EPROTO, "not an object");
	expect_broken_by(GREETING_OOB, "not json\r\n", -EPROTO, "not JSON");
	expect_broken_by(GREETING_OOB, GREETING_OOB, -EPROTO, "second greeting");
	expect_broken_by(NULL, "{\"QMP\": {\"capabilities\": []}}\r\n", -EPROTO, "greeting lacks");
	expect_broken_by(NULL, "{\"return\": {}, \"id\": 1}\r\n", -EPROTO, "before its greeting");
}

struct fd_script {
	ino_t ino;
	int add_fds, getfds, closefds, remove_fds;
	bool first_answered;
	long long held_id;
	struct fake *f;
};

static int64_t answer_first_add_fd(struct loop *loop, uint64_t id, void *arg)
{
	struct fd_script *fs = arg;
	fs->first_answered = true;
	fake_send(fs->f, "{\"return\": {\"fdset-id\": 7, \"fd\": 33}, \"id\": %lld}\r\n", fs->held_id);
	return LOOP_TIMER_DONE;
}

static void answer_fds(struct fake *f, const char *name, long long id, yajl_val args, int fd)
{
	struct fd_script *fs = f->test;
	struct stat st;
	if (streq(name, "add-fd") || streq(name, "getfd")) {
		CHECK(fd >= 0);
		CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_ino == fs->ino);
		if (fd >= 0)
			close(fd);
	} else {
		CHECK(fd < 0);
	}
	if (streq(name, "add-fd") && fs->add_fds++ == 0) {
		/* answer the first add-fd late: the second must not be on the wire before */
		fs->held_id = id;
		fs->f = f;
		REQUIRE(loop_timer_add(f->loop, 30, answer_first_add_fd, fs, NULL) == 0);
		return;
	}
	int64_t v = 0;
	if (streq(name, "add-fd")) {
		CHECK(fs->first_answered);
		CHECK_EQ(qmp_get_int(args, "fdset-id", &v), 0);
		CHECK_EQ(v, 7);
	} else if (streq(name, "getfd") || streq(name, "closefd")) {
		CHECK(streq(qmp_get_str(args, "fdname"), "migfd"));
		fs->getfds += streq(name, "getfd");
		fs->closefds += streq(name, "closefd");
	} else if (streq(name, "remove-fd")) {
		CHECK_EQ(qmp_get_int(args, "fdset-id", &v), 0);
		CHECK_EQ(v, 7);
		fs->remove_fds++;
	}
	fake_send(f, "{\"return\": {}, \"id\": %lld}\r\n", id);
}

static void test_fd_passing_one_at_a_time_in_order(void)
{
	struct env e;
	struct fd_script fs = { 0 };
	struct rec r[6] = { 0 };
	char path[] = "/tmp/colo-qmp-fd-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	unlink(path);
	struct stat st;
	REQUIRE(fstat(fd, &st) == 0);
	fs.ino = st.st_ino;
	env_ready(&e);
	e.fake.on_cmd = answer_fds;
	e.fake.test = &fs;
	REQUIRE(qmp_add_fd(e.c, fd, -1, 2000, on_result, &r[0]) == 0);
	REQUIRE(qmp_add_fd(e.c, fd, 7, 2000, on_result, &r[1]) == 0);
	REQUIRE(qmp_exec(e.c, "query-status", NULL, -1, 2000, on_result, &r[2]) == 0);
	REQUIRE(qmp_getfd(e.c, fd, "migfd", 2000, on_result, &r[3]) == 0);
	REQUIRE(qmp_closefd(e.c, "migfd", 2000, on_result, &r[4]) == 0);
	REQUIRE(qmp_remove_fd(e.c, 7, -1, 2000, on_result, &r[5]) == 0);
	close(fd); /* the client holds its own copies */
	CHECK_EQ(qmp_add_fd(e.c, -1, -1, 2000, on_result, &r[0]), -EBADF);
	RUN_UNTIL(e.loop, r[5].calls, 3000);
	for (int i = 0; i < 6; i++) {
		CHECK_EQ(r[i].calls, 1);
		CHECK_EQ(r[i].err, 0);
	}
	int64_t set = 0;
	CHECK_EQ(qmp_get_int(r[0].ret, "fdset-id", &set), 0);
	CHECK_EQ(set, 7);
	CHECK_EQ(e.fake.fds_lost, 0);
	REQUIRE(e.fake.ncmds == 7);
	CHECK(streq(e.fake.names[1], "add-fd"));
	CHECK(streq(e.fake.names[2], "add-fd"));
	CHECK(streq(e.fake.names[3], "query-status")); /* order kept behind the barrier */
	CHECK(streq(e.fake.names[4], "getfd"));
	CHECK_EQ(fs.getfds + fs.closefds + fs.remove_fds, 3);
	rec_free(r, 6);
	env_free(&e);
}

static void test_free_inside_callbacks(void)
{
	struct env e;
	struct rec r[3] = { 0 };
	env_ready(&e);
	r[0].free_client = true;
	r[0].env = &e;
	for (int i = 0; i < 3; i++)
		REQUIRE(qmp_exec(e.c, "query-status", NULL, -1, 2000, on_result, &r[i]) == 0);
	RUN_UNTIL(e.loop, r[0].calls, 2000);
	RUN_UNTIL(e.loop, false, 50);
	CHECK(e.c == NULL);
	CHECK_EQ(r[0].calls, 1);
	CHECK_EQ(r[1].calls, 0);
	CHECK_EQ(r[2].calls, 0);
	rec_free(r, 3);
	env_free(&e);

	/* freeing from the broken handler, and from a failing caller's callback */
	struct rec f[2] = { 0 };
	env_ready(&e);
	e.free_on_broken = true;
	f[0].free_client = true;
	f[0].env = &e;
	e.fake.on_cmd = answer_partly_then_close;
	for (int i = 0; i < 2; i++)
		REQUIRE(qmp_exec(e.c, "query-status", NULL, -1, 2000, on_result, &f[i]) == 0);
	fake_send(&e.fake, "{\"ret");
	fake_close(&e.fake);
	RUN_UNTIL(e.loop, f[0].calls, 2000);
	RUN_UNTIL(e.loop, false, 30);
	CHECK_EQ(f[0].calls, 1);
	CHECK_EQ(f[1].calls, 0); /* freed by the first: no more callbacks */
	CHECK_EQ(e.broken, 0);
	CHECK(e.c == NULL);
	env_free(&e);
}

static void test_negotiation_timeout(void)
{
	struct env e;
	struct rec r = { 0 };
	env_start(&e, NULL); /* QEMU never greets (another client holds its monitor) */
	REQUIRE(qmp_exec(e.c, "query-status", NULL, -1, QMP_NO_TIMEOUT, on_result, &r) == 0);
	uint64_t t0 = mono_ms();
	RUN_UNTIL(e.loop, e.broken, QMP_NEGOTIATE_TIMEOUT_MS + 2000);
	uint64_t took = mono_ms() - t0;
	REQUIRE(e.broken == 1);
	CHECK_EQ(e.broken_err, -ETIMEDOUT);
	CHECK(strstr(e.broken_why, "no QMP greeting") != NULL);
	CHECK(took + 50 >= QMP_NEGOTIATE_TIMEOUT_MS && took < QMP_NEGOTIATE_TIMEOUT_MS + 1000);
	CHECK_EQ(r.calls, 1);
	CHECK_EQ(r.err, -ETIMEDOUT);
	env_free(&e);
}

static void test_capabilities_refused(void)
{
	/* qmp_capabilities is id 1; an error for it ends the connection */
	struct env e;
	env_start(&e, NULL);
	/* the fake would answer qmp_capabilities itself; preempt it with an error */
	fake_send(&e.fake, GREETING_PLAIN "{\"id\": 1, \"error\": {\"class\": \"GenericError\", "
				      "\"desc\": \"no\"}}\r\n");
	RUN_UNTIL(e.loop, e.broken, 2000);
	REQUIRE(e.broken == 1);
	CHECK_EQ(e.broken_err, -EPROTO);
	CHECK(strstr(e.broken_why, "refused qmp_capabilities: GenericError: no") != NULL);
	CHECK_EQ(e.ready, 0);
	env_free(&e);
}

/* ------------------------------------------------- unix socket and sync --- */

struct listener {
	struct loop *loop;
	int fd;
	struct fake fake;
	bool accepted;
};

static void on_accept(struct loop *loop, int fd, uint32_t ev, void *arg)
{
	struct listener *l = arg;
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return;
	if (l->accepted) /* serve one at a time, like QEMU: replace the old one */
		fake_free(&l->fake);
	fake_init(&l->fake, loop, c);
	l->fake.on_cmd = answer_status;
	l->accepted = true;
	fake_send(&l->fake, GREETING_OOB);
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
		return -1;
	return fd;
}

static void test_connect_unix_socket(void)
{
	char dir[] = "/tmp/colo-qmp-XXXXXX", path[64];
	REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	struct listener l = { 0 };
	struct env e = { 0 };
	struct qmp_handlers h = { .ready = on_ready, .broken = on_broken, .arg = &e };
	REQUIRE(loop_new(&l.loop) == 0);
	CHECK_EQ(qmp_connect(l.loop, path, &h, &e.c), -ENOENT);
	l.fd = listen_unix(path);
	REQUIRE(l.fd >= 0);
	REQUIRE(loop_add_fd(l.loop, l.fd, EPOLLIN, on_accept, &l) == 0);
	REQUIRE(qmp_connect(l.loop, path, &h, &e.c) == 0);
	RUN_UNTIL(l.loop, e.ready, 2000);
	CHECK_EQ(e.ready, 1);
	CHECK_EQ(qmp_peer_pid(e.c), getpid());
	struct rec r = { 0 };
	REQUIRE(qmp_exec(e.c, "query-status", NULL, -1, 2000, on_result, &r) == 0);
	RUN_UNTIL(l.loop, r.calls, 2000);
	CHECK_EQ(r.err, 0);
	qmp_free(e.c);
	rec_free(&r, 1);
	loop_del_fd(l.loop, l.fd);
	close(l.fd);
	/* a socket file nobody listens on */
	struct qmp *c2 = NULL;
	CHECK_EQ(qmp_connect(l.loop, path, &h, &c2), -ECONNREFUSED);
	unlink(path);
	rmdir(dir);
	if (l.accepted)
		fake_free(&l.fake);
	loop_free(l.loop);
}

/* A fake QEMU in a child process, for the blocking wrapper and coloctl. */
static pid_t fork_server(const char *path)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	struct listener l = { 0 };
	if (loop_new(&l.loop) < 0 || (l.fd = listen_unix(path)) < 0 ||
	    loop_add_fd(l.loop, l.fd, EPOLLIN, on_accept, &l) < 0)
		_exit(1);
	for (;;)
		loop_run_once(l.loop, 1000);
}

static void stop_server(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void wait_for_socket(const char *path)
{
	struct stat st;
	for (int i = 0; i < 200 && stat(path, &st) < 0; i++)
		usleep(5000);
}

static void test_sync_call(void)
{
	char dir[] = "/tmp/colo-qmp-XXXXXX", path[64], why[256];
	REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	pid_t pid = fork_server(path);
	REQUIRE(pid > 0);
	wait_for_socket(path);
	yajl_val ret = NULL;
	int r = qmp_call_sync(path, "query-status", NULL, -1, 2000, &ret, why, sizeof(why));
	CHECK_EQ(r, 0);
	CHECK(streq(qmp_get_str(ret, "status"), "running"));
	yajl_tree_free(ret);
	ret = NULL;
	r = qmp_call_sync(path, "no-such-command", NULL, -1, 2000, &ret, why, sizeof(why));
	CHECK_EQ(r, -EREMOTEIO);
	CHECK(strstr(why, "CommandNotFound: The command no-such-command") == why);
	CHECK(ret == NULL);
	stop_server(pid);
	r = qmp_call_sync(path, "query-status", NULL, -1, 2000, &ret, why, sizeof(why));
	CHECK_EQ(r, -ECONNREFUSED);
	CHECK(strstr(why, "cannot connect") != NULL);
	unlink(path);
	rmdir(dir);
}

/* Run coloctl (next to this test binary's directory) and capture its stdout. */
static int run_coloctl(char *const argv[], char *out, size_t out_len)
{
	char exe[4096], tool[4200];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -1;
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0'; /* .../build/tests */
	snprintf(tool, sizeof(tool), "%s/../coloctl", exe);
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execv(tool, argv);
		_exit(127);
	}
	close(p[1]);
	size_t got = 0;
	while (got < out_len - 1 && (n = read(p[0], out + got, out_len - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_coloctl_qmp(void)
{
	char dir[] = "/tmp/colo-qmp-XXXXXX", path[64], out[4096];
	REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	pid_t pid = fork_server(path);
	REQUIRE(pid > 0);
	wait_for_socket(path);
	char *ok[] = { "coloctl", "qmp", path, "query-status", "{}", NULL };
	CHECK_EQ(run_coloctl(ok, out, sizeof(out)), 0);
	CHECK(strstr(out, "\"status\": \"running\"") != NULL);
	char *bad[] = { "coloctl", "qmp", path, "no-such-command", NULL };
	CHECK_EQ(run_coloctl(bad, out, sizeof(out)), 1);
	CHECK_EQ(strlen(out), 0);
	char *usage[] = { "coloctl", "qmp", path, "query-status", "[1]", NULL };
	CHECK_EQ(run_coloctl(usage, out, sizeof(out)), 2);
	stop_server(pid);
	unlink(path);
	rmdir(dir);
}

static const struct test tests[] = {
	TEST(test_negotiation_enables_oob),
	TEST(test_negotiation_without_oob),
	TEST(test_commands_before_ready_wait_for_negotiation),
	TEST(test_return_value_and_qemu_error),
	TEST(test_disconnect_mid_reply_fails_each_caller_once),
	TEST(test_interleaved_events_reach_subscribers),
	TEST(test_reply_after_timeout_is_dropped),
	TEST(test_1000_pipelined_commands),
	TEST(test_pending_limit),
	TEST(test_100mb_garbage_stream),
	TEST(test_100mb_without_newline_is_an_overlong_line),
	TEST(test_overlong_line),
	TEST(test_deep_nesting),
	TEST(test_invalid_utf8),
	TEST(test_unknown_id),
	TEST(test_missing_fields),
	TEST(test_fd_passing_one_at_a_time_in_order),
	TEST(test_free_inside_callbacks),
	TEST(test_negotiation_timeout),
	TEST(test_capabilities_refused),
	TEST(test_connect_unix_socket),
	TEST(test_sync_call),
	TEST(test_coloctl_qmp),
	{ 0 },
};
TEST_MAIN(tests)
