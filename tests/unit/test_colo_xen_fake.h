/* test_colo_xen_fake.h - a fake Xen device model (QEMU's QMP as libxl's QEMU speaks it)
 * on the test's own loop, for test_colo_xen_backend.c and test_colo_xen_agent.c.
 *
 * It records every command with its arguments as compact JSON ("xen-set-replication
 * {"enable":false,"primary":false,"failover":true}"), counts the connections it
 * accepted (the backend must use one), and answers from a script: the reply to
 * query-xen-replication-status is a raw JSON text the test sets, so hostile replies
 * are one assignment away. Header-only: each test program includes it once. */
#ifndef COLO_TEST_XEN_FAKE_H
#define COLO_TEST_XEN_FAKE_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "lib/loop.h"
#include "qmp/qmp.h"
#include "tests/harness/test.h"

#define XF_MAX_CMDS 128

struct xfake {
	struct loop *loop;
	int lfd, fd;
	char path[108];
	char line[1 << 14];
	size_t line_len;
	int held_fd;
	int accepts;
	const char *status;	  /* QEMU run state: "running", "prelaunch", ... */
	const char *repl_status;  /* raw "return" of query-xen-replication-status */
	const char *fail_cmd;	  /* answer this one with a GenericError */
	bool close_on_cmd;
	const char *tag;	  /* for several fakes in one test: part of the socket's name */
	char cmd[XF_MAX_CMDS][48];
	char args[XF_MAX_CMDS][160];
	int ncmds;
};

static void xf_send(struct xfake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xf_send(struct xfake *f, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	REQUIRE(n > 0 && (size_t)n < sizeof(buf));
	REQUIRE(send(f->fd, buf, (size_t)n, MSG_NOSIGNAL) == n);
}

static void xf_close(struct xfake *f)
{
	if (f->fd < 0)
		return;
	loop_del_fd(f->loop, f->fd);
	close(f->fd);
	f->fd = -1;
}

/* The index of the n-th (from 0) command named name, or -1. */
static int xf_find(const struct xfake *f, const char *name, int n)
{
	for (int i = 0; i < f->ncmds; i++)
		if (!strcmp(f->cmd[i], name) && n-- == 0)
			return i;
	return -1;
}

static int xf_count(const struct xfake *f, const char *name)
{
	int n = 0;
	while (xf_find(f, name, n) >= 0)
		n++;
	return n;
}

static void xf_answer(struct xfake *f, const char *name, long long id)
{
	if (f->fail_cmd && !strcmp(f->fail_cmd, name)) {
		xf_send(f, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"fake failure of "
			"%s\"}, \"id\": %lld}\r\n", name, id);
	} else if (!strcmp(name, "query-version")) {
		xf_send(f, "{\"return\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
			"\"package\": \"colo-rig-yankfix\"}, \"id\": %lld}\r\n", id);
	} else if (!strcmp(name, "query-status")) {
		xf_send(f, "{\"return\": {\"status\": \"%s\", \"running\": %s}, \"id\": %lld}\r\n",
			f->status, strcmp(f->status, "running") ? "false" : "true", id);
	} else if (!strcmp(name, "qom-get")) {
		xf_send(f, "{\"return\": \"xenfv-7.2-machine\", \"id\": %lld}\r\n", id);
	} else if (!strcmp(name, "query-pci")) {
		xf_send(f, "{\"return\": [{\"bus\": 0, \"devices\": [{\"bus\": 0, \"slot\": 2, "
			"\"function\": 0, \"class_info\": {\"class\": 768}, \"id\": {\"device\": "
			"4369, \"vendor\": 4660}}]}], \"id\": %lld}\r\n", id);
	} else if (!strcmp(name, "query-xen-replication-status")) {
		xf_send(f, "{\"return\": %s, \"id\": %lld}\r\n", f->repl_status, id);
	} else if (!strcmp(name, "add-fd")) {
		xf_send(f, "{\"return\": {\"fdset-id\": 1, \"fd\": 30}, \"id\": %lld}\r\n", id);
	} else if (!strcmp(name, "xen-save-devices-state")) {
		REQUIRE(f->held_fd >= 0 && write(f->held_fd, "XENDEV", 6) == 6);
		xf_send(f, "{\"return\": {}, \"id\": %lld}\r\n", id);
	} else {
		xf_send(f, "{\"return\": {}, \"id\": %lld}\r\n", id);
	}
}

static void xf_line(struct xfake *f)
{
	f->line[f->line_len] = '\0';
	f->line_len = 0;
	yajl_val v = yajl_tree_parse(f->line, NULL, 0);
	REQUIRE(v);
	const char *name = YAJL_GET_STRING(yajl_tree_get(v, (const char *[]){ "execute", NULL },
							 yajl_t_string));
	yajl_val idv = yajl_tree_get(v, (const char *[]){ "id", NULL }, yajl_t_number);
	yajl_val args = yajl_tree_get(v, (const char *[]){ "arguments", NULL }, yajl_t_object);
	REQUIRE(name && idv);
	if (f->ncmds < XF_MAX_CMDS) {
		char *text = NULL;
		snprintf(f->cmd[f->ncmds], sizeof(f->cmd[0]), "%s", name);
		if (args && qmp_json_format(args, false, &text) == 0)
			snprintf(f->args[f->ncmds], sizeof(f->args[0]), "%s", text);
		free(text);
		f->ncmds++;
	}
	if (f->close_on_cmd && strcmp(name, "qmp_capabilities"))
		xf_close(f);
	else
		xf_answer(f, name, YAJL_GET_INTEGER(idv));
	yajl_tree_free(v);
}

static void xf_readable(struct loop *loop, int fd, uint32_t ev, void *arg)
{
	struct xfake *f = arg;
	char buf[4096];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
			     .msg_controllen = sizeof(cm.b) };
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	if (n <= 0) {
		xf_close(f);
		return;
	}
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS) {
		if (f->held_fd >= 0)
			close(f->held_fd);
		memcpy(&f->held_fd, CMSG_DATA(c), sizeof(int));
	}
	for (ssize_t i = 0; i < n && f->fd >= 0; i++) {
		if (buf[i] == '\n') {
			xf_line(f);
			continue;
		}
		REQUIRE(f->line_len + 1 < sizeof(f->line));
		f->line[f->line_len++] = buf[i];
	}
}

static void xf_accept(struct loop *loop, int fd, uint32_t ev, void *arg)
{
	struct xfake *f = arg;
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	REQUIRE(c >= 0);
	f->accepts++;
	if (f->fd >= 0) { /* QEMU serves one client; a second would wait for ever */
		close(c);
		return;
	}
	f->fd = c;
	REQUIRE(loop_add_fd(loop, c, EPOLLIN, xf_readable, f) == 0);
	xf_send(f, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7},"
		" \"package\": \"colo-rig-yankfix\"}, \"capabilities\": []}}\r\n");
}

static void xf_start(struct xfake *f, struct loop *loop)
{
	f->loop = loop;
	f->fd = -1;
	f->held_fd = -1;
	if (!f->status)
		f->status = "running";
	if (!f->repl_status)
		f->repl_status = "{\"error\": false}";
	snprintf(f->path, sizeof(f->path), "/tmp/colo-fakexen-%d%s%s.sock", getpid(),
		 f->tag ? "-" : "", f->tag ? f->tag : "");
	unlink(f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(f->lfd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	REQUIRE(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	REQUIRE(listen(f->lfd, 4) == 0);
	REQUIRE(loop_add_fd(loop, f->lfd, EPOLLIN, xf_accept, f) == 0);
}

static void xf_stop(struct xfake *f)
{
	xf_close(f);
	loop_del_fd(f->loop, f->lfd);
	close(f->lfd);
	unlink(f->path);
	if (f->held_fd >= 0)
		close(f->held_fd);
}

#endif
