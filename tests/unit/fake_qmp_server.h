/* fake_qmp_server.h - the transport of the tests' fake QEMUs (test_colo_backend.c's
 * fake QEMU, test_colo_xen_fake.h's fake Xen device model): a unix socket on the test's
 * loop that accepts a client, sends it a greeting, splits what it sends into lines
 * and keeps the last descriptor passed with SCM_RIGHTS (QEMU keeps only the last
 * one). What the fake answers is its own: the on_line callback. Header-only. */
#ifndef COLO_TEST_FAKE_QMP_SERVER_H
#define COLO_TEST_FAKE_QMP_SERVER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/loop.h"
#include "tests/harness/test.h"

struct fqs {
	struct loop *loop;
	int lfd, fd;
	char path[108];
	char line[1 << 16];
	size_t line_len;
	size_t line_max;  /* the longest line (newline included) the fake takes: <= sizeof(line) */
	size_t send_max;  /* the longest reply the fake may send: <= 4096 */
	int held_fd;	  /* the last descriptor received, -1 = none */
	int accepts;	  /* connections accepted, also refused second ones */
	bool close_second; /* a second client is closed (QEMU serves one); else it fails the test */
	void (*on_connect)(struct fqs *s, void *arg); /* send the greeting */
	void (*on_line)(struct fqs *s, char *line, void *arg);
	void *arg;
};

static void fqs_send(struct fqs *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fqs_send(struct fqs *s, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	REQUIRE(n > 0 && (size_t)n < s->send_max && (size_t)n < sizeof(buf));
	REQUIRE(send(s->fd, buf, (size_t)n, MSG_NOSIGNAL) == n);
}

static void fqs_close(struct fqs *s)
{
	if (s->fd < 0)
		return;
	loop_del_fd(s->loop, s->fd);
	close(s->fd);
	s->fd = -1;
}

static void fqs_readable(struct loop *loop, int fd, uint32_t ev, void *arg)
{
	struct fqs *s = arg;
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
		fqs_close(s);
		return;
	}
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS) {
		if (s->held_fd >= 0)
			close(s->held_fd); /* QEMU keeps only the last one */
		memcpy(&s->held_fd, CMSG_DATA(c), sizeof(int));
	}
	for (ssize_t i = 0; i < n && s->fd >= 0; i++) {
		if (buf[i] == '\n') {
			s->line[s->line_len] = '\0';
			s->line_len = 0;
			s->on_line(s, s->line, s->arg);
			continue;
		}
		REQUIRE(s->line_len + 1 < s->line_max);
		s->line[s->line_len++] = buf[i];
	}
}

static void fqs_accept(struct loop *loop, int fd, uint32_t ev, void *arg)
{
	struct fqs *s = arg;
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	REQUIRE(c >= 0);
	s->accepts++;
	if (s->fd >= 0 && s->close_second) { /* QEMU serves one client; a second would wait */
		close(c);
		return;
	}
	REQUIRE(s->fd < 0);
	s->fd = c;
	REQUIRE(loop_add_fd(loop, c, EPOLLIN, fqs_readable, s) == 0);
	s->on_connect(s, s->arg);
}

/* Listen on path (replacing a stale socket); the callbacks and limits must be set. */
static void fqs_start(struct fqs *s, struct loop *loop, const char *path)
{
	REQUIRE(s->on_connect && s->on_line);
	REQUIRE(s->line_max && s->line_max <= sizeof(s->line) && s->send_max && s->send_max <= 4096);
	s->loop = loop;
	s->fd = -1;
	s->held_fd = -1;
	snprintf(s->path, sizeof(s->path), "%s", path);
	unlink(s->path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(s->lfd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
	REQUIRE(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	REQUIRE(listen(s->lfd, 4) == 0);
	REQUIRE(loop_add_fd(loop, s->lfd, EPOLLIN, fqs_accept, s) == 0);
}

static void fqs_stop(struct fqs *s)
{
	fqs_close(s);
	loop_del_fd(s->loop, s->lfd);
	close(s->lfd);
	unlink(s->path);
	if (s->held_fd >= 0)
		close(s->held_fd);
}

#endif
