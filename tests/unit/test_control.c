/* colo/control*.c and coloctl's control commands: the request parser against hostile
 * lines, the replies, the server (status, checkpoint waits, failover, watch, ordering,
 * limits, the socket file's mode and stale sockets), and coloctl against a server in
 * a child process. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "colo/control.h"
#include "colo/control_proto.h"
#include "lib/loop.h"
#include "tests/harness/test.h"

/* --- the parser ------------------------------------------------------------------ */

static int parse(const char *s, struct ctl_req *r, char *why)
{
	return ctl_req_parse(s, strlen(s), r, why, 256);
}

static void test_request_parser(void)
{
	struct ctl_req r;
	char why[256];
	CHECK(parse("{\"cmd\":\"status\"}", &r, why) == 0 && r.cmd == CTL_STATUS);
	CHECK(parse(" { \"cmd\" : \"watch\" } ", &r, why) == 0 && r.cmd == CTL_WATCH);
	CHECK(parse("{\"cmd\":\"checkpoint\"}", &r, why) == 0 && r.cmd == CTL_CHECKPOINT);
	CHECK(parse("{\"cmd\":\"failover\"}", &r, why) == 0 && r.cmd == CTL_FAILOVER &&
	      !r.confirm_fenced);
	CHECK(parse("{\"confirm_fenced\":true,\"cmd\":\"failover\"}", &r, why) == 0 &&
	      r.confirm_fenced);
	const char *bad[][2] = {
		{ "", "not JSON" },
		{ "status", "not JSON" },
		{ "{\"cmd\":\"status\"", "not JSON" },
		{ "[\"status\"]", "JSON object" },
		{ "\"status\"", "JSON object" },
		{ "{}", "no \"cmd\"" },
		{ "{\"cmd\":\"reboot\"}", "unknown command" },
		{ "{\"cmd\":1}", "one string" },
		{ "{\"cmd\":\"status\",\"cmd\":\"failover\"}", "one string" },
		{ "{\"cmd\":\"status\",\"x\":1}", "unknown field" },
		{ "{\"cmd\":\"status\",\"confirm_fenced\":true}", "belongs to failover" },
		{ "{\"cmd\":\"failover\",\"confirm_fenced\":\"yes\"}", "one boolean" },
		{ "{\"cmd\":\"status\"} /* hi */", "'/'" },
		{ "{\"a\":[[[[[1]]]]],\"cmd\":\"status\"}", "deeper" },
		{ "{\"cmd\":\"st\\u0000atus\"}", "unknown command" },
		{ "{\"cmd\":\"\xff\xfe\"}", "not JSON" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse(bad[i][0], &r, why);
		CHECK(rc == -EINVAL);
		if (rc == 0 || !strstr(why, bad[i][1]))
			fprintf(stderr, "    '%s': got '%s', wanted '%s'\n", bad[i][0], why,
				bad[i][1]);
		CHECK(strstr(why, bad[i][1]) != NULL);
	}
	/* A NUL inside the line (the length says more than strlen). */
	CHECK(ctl_req_parse("{\"cmd\":\"status\"}\0x", 18, &r, why, sizeof(why)) == -EINVAL);
	CHECK(strstr(why, "NUL") != NULL);
	/* Deep nesting is refused before yajl recurses into it. */
	char deep[4001];
	memset(deep, '[', 4000);
	deep[4000] = '\0';
	CHECK(parse(deep, &r, why) == -EINVAL);
}

static const char *str_at(yajl_val v, const char **path)
{
	const char *s = YAJL_GET_STRING(yajl_tree_get(v, path, yajl_t_string));
	return s ? s : "";
}

static void test_replies_round_trip(void)
{
	struct agent_status st = { .role = ROLE_PRIMARY, .state = AS_PROTECTED, .peer_alive = true,
				   .peer_state = AS_PROTECTED, .peer_last_heard_ms = 12,
				   .rtt_last_us = 213, .committed = 7, .last_seq = 7,
				   .since_last_ms = UINT64_MAX, .pause_p99_us = 5250,
				   .by_reason = { 3, 2, 1, 1 } };
	snprintf(st.peer, sizeof(st.peer), "10.77.0.2:7701");
	char *line = ctl_reply_status(&st);
	REQUIRE(line && line[strlen(line) - 1] == '\n');
	char why[256];
	yajl_val tree;
	yajl_val v = ctl_reply_parse(line, &tree, why, sizeof(why));
	REQUIRE(v);
	const char *path_state[] = { "state", NULL }, *path_rtt[] = { "peer", "rtt_ms", NULL },
		   *path_since[] = { "checkpoints", "since_last_ms", NULL },
		   *path_op[] = { "checkpoints", "by_reason", "comparator", NULL },
		   *path_p99[] = { "pause_ms", "p99", NULL },
		   *path_cmp[] = { "comparator", "note", NULL };
	CHECK(!strcmp(str_at(v, path_state), "protected"));
	CHECK(YAJL_GET_DOUBLE(yajl_tree_get(v, path_rtt, yajl_t_number)) == 0.213);
	CHECK(YAJL_IS_NULL(yajl_tree_get(v, path_since, yajl_t_any)));
	CHECK_EQ(YAJL_GET_INTEGER(yajl_tree_get(v, path_op, yajl_t_number)), 2);
	CHECK(YAJL_GET_DOUBLE(yajl_tree_get(v, path_p99, yajl_t_number)) == 5.25);
	CHECK(strstr(str_at(v, path_cmp), "off:"));
	/* The human views survive it, and a status with nothing in it. */
	FILE *devnull = fopen("/dev/null", "w");
	ctl_print_status(devnull, v);
	ctl_print_watch_line(devnull, v);
	yajl_tree_free(tree);
	free(line);
	yajl_val empty = yajl_tree_parse("{}", NULL, 0);
	ctl_print_status(devnull, empty);
	ctl_print_watch_line(devnull, empty);
	yajl_tree_free(empty);
	fclose(devnull);
	/* Errors carry the agent's text; strings are escaped, not spliced. */
	line = ctl_reply_error("bad \"thing\"\n");
	CHECK(ctl_reply_parse(line, &tree, why, sizeof(why)) == NULL);
	CHECK(!strcmp(why, "bad \"thing\"\n"));
	yajl_tree_free(tree);
	free(line);
	CHECK(ctl_reply_parse("garbage", &tree, why, sizeof(why)) == NULL);
	yajl_tree_free(tree);
	line = ctl_request(CTL_FAILOVER, true);
	CHECK(!strcmp(line, "{\"cmd\":\"failover\",\"confirm_fenced\":true}\n"));
	free(line);
}

/* --- the server ------------------------------------------------------------------- */

struct fake_agent {
	uint64_t committed;
	int64_t next_ticket;
	bool replicating;
	int failovers;
	bool refuse_failover;
} FA;

static void fa_status(struct agent_status *st, void *arg)
{
	memset(st, 0, sizeof(*st));
	st->role = ROLE_PRIMARY;
	st->state = AS_PROTECTED;
	st->committed = FA.committed;
	st->peer_state = -1;
	st->peer_last_heard_ms = UINT64_MAX;
	st->since_last_ms = UINT64_MAX;
}
static int64_t fa_checkpoint(char *why, size_t len, void *arg)
{
	if (!FA.replicating) {
		snprintf(why, len, "not protected (state degraded)");
		return -EAGAIN;
	}
	return FA.next_ticket;
}
static uint64_t fa_committed(void *arg) { return FA.committed; }
static bool fa_replicating(void *arg) { return FA.replicating; }
static int fa_failover(bool confirm, char *why, size_t len, void *arg)
{
	if (FA.refuse_failover) {
		snprintf(why, len, "no failover in state degraded");
		return -EPERM;
	}
	FA.failovers++;
	snprintf(why, len, "handover started%s", confirm ? " (confirmed)" : "");
	return 0;
}
static const struct control_ops fa_ops = { fa_status, fa_checkpoint, fa_committed,
					   fa_replicating, fa_failover, NULL };

struct srv {
	struct loop *loop;
	struct control *c;
	char dir[64], path[128];
};

static void srv_start(struct srv *s)
{
	memset(&FA, 0, sizeof(FA));
	FA.replicating = true;
	FA.next_ticket = 1;
	REQUIRE(loop_new(&s->loop) == 0);
	snprintf(s->dir, sizeof(s->dir), "/tmp/colo-ctl-XXXXXX");
	REQUIRE(mkdtemp(s->dir));
	snprintf(s->path, sizeof(s->path), "%s/run/agent.sock", s->dir); /* run/ is created */
	REQUIRE(control_open(s->loop, s->path, &fa_ops, &s->c) == 0);
}

static void srv_stop(struct srv *s)
{
	control_close(s->c);
	char run[160];
	snprintf(run, sizeof(run), "%s/run", s->dir);
	CHECK(access(s->path, F_OK) < 0); /* the socket file is gone */
	rmdir(run);
	rmdir(s->dir);
	loop_free(s->loop);
}

static int cli_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	REQUIRE(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static void cli_send(int fd, const char *s, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN)
			continue;
		REQUIRE(w > 0);
		off += (size_t)w;
	}
}

#define SEND(fd, s) cli_send(fd, s, strlen(s))

/* Run the loop until one line arrives (0), the server closes (1) or max_ms (-1). */
static int cli_line(struct srv *s, int fd, char *line, size_t len, unsigned max_ms)
{
	static char pend[64][8192];
	static size_t plen[64];
	uint64_t t0 = mono_ms();
	for (;;) {
		char *nl = memchr(pend[fd], '\n', plen[fd]);
		if (nl) {
			size_t n = (size_t)(nl - pend[fd]);
			snprintf(line, len, "%.*s", (int)n, pend[fd]);
			plen[fd] -= n + 1;
			memmove(pend[fd], nl + 1, plen[fd]);
			return 0;
		}
		if (mono_ms() - t0 > max_ms)
			return -1;
		loop_run_once(s->loop, 5);
		ssize_t r = recv(fd, pend[fd] + plen[fd], sizeof(pend[0]) - plen[fd], 0);
		if (r == 0)
			return 1;
		if (r > 0)
			plen[fd] += (size_t)r;
	}
}

static void test_status_failover_and_socket_mode(void)
{
	struct srv s;
	srv_start(&s);
	struct stat st;
	REQUIRE(stat(s.path, &st) == 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_EQ(st.st_mode & 0777, 0600);
	int fd = cli_connect(s.path);
	char line[8192];
	SEND(fd, "{\"cmd\":\"status\"}\n");
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(!strncmp(line, "{\"ok\":true,\"status\":{\"role\":\"primary\"", 37));
	SEND(fd, "{\"cmd\":\"failover\",\"confirm_fenced\":true}\r\n");
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(!strcmp(line, "{\"ok\":true,\"failover\":\"handover started (confirmed)\"}"));
	FA.refuse_failover = true;
	SEND(fd, "{\"cmd\":\"failover\"}\n");
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(!strcmp(line, "{\"ok\":false,\"error\":\"no failover in state degraded\"}"));
	/* Bad requests get an error and the connection stays usable. */
	SEND(fd, "hello\n{\"cmd\":\"reboot\"}\n{\"cmd\":\"status\"}\n");
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(strstr(line, "not JSON") != NULL);
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(strstr(line, "unknown command") != NULL);
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(strstr(line, "\"ok\":true") != NULL);
	close(fd);
	srv_stop(&s);
}

static void test_checkpoint_waits_for_commit_in_order(void)
{
	struct srv s;
	srv_start(&s);
	int fd = cli_connect(s.path);
	char line[8192];
	FA.next_ticket = 3;
	/* Pipelined: the status reply must come after the checkpoint's. */
	SEND(fd, "{\"cmd\":\"checkpoint\"}\n{\"cmd\":\"status\"}\n");
	CHECK(cli_line(&s, fd, line, sizeof(line), 100) == -1);
	FA.committed = 2;
	control_poke(s.c);
	CHECK(cli_line(&s, fd, line, sizeof(line), 50) == -1);
	FA.committed = 3;
	control_poke(s.c);
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(!strncmp(line, "{\"ok\":true,\"checkpoint\":{\"number\":3,", 36));
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(strstr(line, "\"status\"") != NULL);
	/* Replication stops while a client waits: it gets an error, not a hang. */
	FA.next_ticket = 4;
	SEND(fd, "{\"cmd\":\"checkpoint\"}\n");
	CHECK(cli_line(&s, fd, line, sizeof(line), 50) == -1);
	FA.replicating = false;
	control_poke(s.c);
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(strstr(line, "replication stopped before the checkpoint") != NULL);
	SEND(fd, "{\"cmd\":\"checkpoint\"}\n");
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(!strcmp(line, "{\"ok\":false,\"error\":\"not protected (state degraded)\"}"));
	close(fd);
	srv_stop(&s);
}

static void test_watch_pushes_every_second(void)
{
	struct srv s;
	srv_start(&s);
	int fd = cli_connect(s.path);
	char line[8192];
	SEND(fd, "{\"cmd\":\"watch\"}\n");
	uint64_t t0 = mono_ms();
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(mono_ms() - t0 < 500); /* the first one at once */
	SEND(fd, "{\"cmd\":\"failover\"}\n"); /* ignored while watching */
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1500) == 0);
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1500) == 0);
	uint64_t took = mono_ms() - t0;
	CHECK(took >= 1500 && took < 3000);
	CHECK(strstr(line, "\"status\"") != NULL);
	CHECK_EQ(FA.failovers, 0);
	close(fd);
	for (int i = 0; i < 10; i++)
		loop_run_once(s.loop, 5);
	CHECK_EQ(control_clients(s.c), 0);
	srv_stop(&s);
}

static void test_hostile_clients(void)
{
	struct srv s;
	srv_start(&s);
	char line[8192];
	/* An overlong line: one error, then the server closes. */
	int fd = cli_connect(s.path);
	char big[CTL_MAX_LINE + 100];
	memset(big, 'x', sizeof(big));
	cli_send(fd, big, sizeof(big));
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(strstr(line, "request longer than 4096 bytes") != NULL);
	CHECK_EQ(cli_line(&s, fd, line, sizeof(line), 1000), 1);
	close(fd);
	/* Exactly the limit (4095 + newline) is still a request (a bad one). */
	fd = cli_connect(s.path);
	memset(big, ' ', CTL_MAX_LINE - 1);
	big[CTL_MAX_LINE - 1] = '\n';
	cli_send(fd, big, CTL_MAX_LINE);
	REQUIRE(cli_line(&s, fd, line, sizeof(line), 1000) == 0);
	CHECK(strstr(line, "not JSON") != NULL);
	close(fd);
	/* Many clients: the 17th is told to go away; the others still work. */
	int fds[CTL_MAX_CLIENTS + 1];
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		fds[i] = cli_connect(s.path);
		loop_run_once(s.loop, 5);
	}
	for (int i = 0; i < 10; i++)
		loop_run_once(s.loop, 2);
	CHECK_EQ(control_clients(s.c), CTL_MAX_CLIENTS);
	fds[CTL_MAX_CLIENTS] = cli_connect(s.path);
	REQUIRE(cli_line(&s, fds[CTL_MAX_CLIENTS], line, sizeof(line), 1000) == 0);
	CHECK(strstr(line, "too many control clients") != NULL);
	SEND(fds[CTL_MAX_CLIENTS - 1], "{\"cmd\":\"status\"}\n");
	REQUIRE(cli_line(&s, fds[CTL_MAX_CLIENTS - 1], line, sizeof(line), 1000) == 0);
	CHECK(strstr(line, "\"ok\":true") != NULL);
	for (int i = 0; i <= CTL_MAX_CLIENTS; i++)
		close(fds[i]);
	for (int i = 0; i < 10; i++)
		loop_run_once(s.loop, 2);
	CHECK_EQ(control_clients(s.c), 0);
	/* A client that asks and never reads is dropped once its replies pile up. */
	fd = cli_connect(s.path);
	const char *req = "{\"cmd\":\"status\"}\n";
	uint64_t t0 = mono_ms();
	while (control_clients(s.c) <= 1 && mono_ms() - t0 < 5000) {
		if (send(fd, req, strlen(req), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN)
			break;
		loop_run_once(s.loop, 0);
		if (control_clients(s.c) == 0)
			break;
	}
	CHECK_EQ(control_clients(s.c), 0);
	close(fd);
	/* A client that vanishes mid-request. */
	fd = cli_connect(s.path);
	SEND(fd, "{\"cmd\":\"sta");
	close(fd);
	for (int i = 0; i < 10; i++)
		loop_run_once(s.loop, 2);
	CHECK_EQ(control_clients(s.c), 0);
	srv_stop(&s);
}

static void test_socket_file_rules(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	char dir[] = "/tmp/colo-ctl2-XXXXXX", path[100];
	REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/agent.sock", dir);
	/* A stale socket (its agent died) is replaced. */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	REQUIRE(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(s);
	struct control *c, *c2;
	REQUIRE(control_open(loop, path, &fa_ops, &c) == 0);
	/* A live one (another agent) is not. */
	CHECK_EQ(control_open(loop, path, &fa_ops, &c2), -EADDRINUSE);
	control_close(c);
	/* Nor is a file that is not a socket. */
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	CHECK_EQ(control_open(loop, path, &fa_ops, &c2), -EEXIST);
	unlink(path);
	rmdir(dir);
	loop_free(loop);
}

/* --- coloctl against a server in a child process ----------------------------------- */

static int run_coloctl(char *const argv[], char *out, size_t out_len)
{
	char exe[4096], tool[4200];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	REQUIRE(n > 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(tool, sizeof(tool), "%s/../coloctl", exe);
	int p[2];
	REQUIRE(pipe(p) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
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

static int64_t child_commit(struct loop *loop, uint64_t id, void *arg)
{
	FA.committed++;
	control_poke(arg);
	return 300;
}

static void test_coloctl_commands(void)
{
	char dir[] = "/tmp/colo-ctl3-XXXXXX", path[128], out[8192];
	REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/agent.sock", dir);
	int ready[2];
	REQUIRE(pipe(ready) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct loop *loop;
		struct control *c;
		memset(&FA, 0, sizeof(FA));
		FA.replicating = true;
		FA.next_ticket = 1;
		if (loop_new(&loop) < 0 || control_open(loop, path, &fa_ops, &c) < 0)
			_exit(1);
		loop_timer_add(loop, 300, child_commit, c, NULL); /* a checkpoint every 300 ms */
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		loop_run(loop);
		_exit(0);
	}
	char x;
	REQUIRE(read(ready[0], &x, 1) == 1);
	char *status[] = { "coloctl", "status", "--socket", path, NULL };
	CHECK_EQ(run_coloctl(status, out, sizeof(out)), 0);
	CHECK(strstr(out, "primary: protected") != NULL);
	CHECK(strstr(out, "comparator  off") != NULL);
	char *json[] = { "coloctl", "status", "--json", "--socket=", NULL };
	char sockarg[160];
	snprintf(sockarg, sizeof(sockarg), "--socket=%s", path);
	json[3] = sockarg;
	CHECK_EQ(run_coloctl(json, out, sizeof(out)), 0);
	CHECK(!strncmp(out, "{\"ok\":true,\"status\":", 20));
	char *ckpt[] = { "coloctl", "checkpoint", "--socket", path, NULL };
	CHECK_EQ(run_coloctl(ckpt, out, sizeof(out)), 0);
	CHECK(strstr(out, "committed") != NULL);
	char *fo[] = { "coloctl", "failover", "--confirm-fenced", "--socket", path, NULL };
	CHECK_EQ(run_coloctl(fo, out, sizeof(out)), 0);
	CHECK(strstr(out, "handover started (confirmed)") != NULL);
	char *nosock[] = { "coloctl", "status", "--socket", "/nonexistent/agent.sock", NULL };
	CHECK_EQ(run_coloctl(nosock, out, sizeof(out)), 1);
	CHECK(strstr(out, "is colo-agent running?") != NULL);
	char *usage[] = { "coloctl", "checkpoint", "--confirm-fenced", NULL };
	CHECK_EQ(run_coloctl(usage, out, sizeof(out)), 2);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(path);
	rmdir(dir);
}

static const struct test tests[] = {
	TEST(test_request_parser),
	TEST(test_replies_round_trip),
	TEST(test_status_failover_and_socket_mode),
	TEST(test_checkpoint_waits_for_commit_in_order),
	TEST(test_watch_pushes_every_second),
	TEST(test_hostile_clients),
	TEST(test_socket_file_rules),
	TEST(test_coloctl_commands),
	{ 0 },
};
TEST_MAIN(tests)
