/* conn.c - a client's birth and death: connecting or adopting a socket, the peer's
 * pid, and freeing, which callbacks of the same client may do at any time. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "qmp/client.h"

void qmp_cmd_free(struct qmp_cmd *cmd)
{
	if (cmd->fd >= 0)
		close(cmd->fd);
	free(cmd->buf);
	free(cmd->name);
	free(cmd);
}

static void destroy(struct qmp *c)
{
	struct qmp_cmd *cmd;
	while ((cmd = TAILQ_FIRST(&c->cmds))) {
		TAILQ_REMOVE(&c->cmds, cmd, link);
		qmp_cmd_free(cmd);
	}
	for (size_t i = 0; i < c->nsubs; i++)
		free(c->subs[i].name);
	free(c->subs);
	qmp_lines_free(&c->lines);
	free(c->name);
	free(c);
}

/* Callbacks may free the client: every entry from the loop is bracketed, so the
 * memory outlives the frames still using it. */
void qmp_enter(struct qmp *c)
{
	c->depth++;
}

void qmp_leave(struct qmp *c)
{
	if (--c->depth == 0 && c->freed)
		destroy(c);
}

/* Stop I/O and timers; memory stays until destroy(). */
void qmp_detach(struct qmp *c)
{
	if (c->fd >= 0) {
		loop_del_fd(c->loop, c->fd);
		close(c->fd);
		c->fd = -1;
	}
	if (c->timer_id) {
		loop_timer_cancel(c->loop, c->timer_id);
		c->timer_id = 0;
	}
}

void qmp_free(struct qmp *c)
{
	if (!c)
		return;
	if (c->freed) {
		log_err("qmp %s: qmp_free() called twice; aborting", c->name);
		abort();
	}
	qmp_detach(c);
	c->freed = true;
	if (c->depth == 0)
		destroy(c);
}

static void read_peer(struct qmp *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (!c->is_unix)
		c->peer_pid = -ENOTSUP;
	else if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		c->peer_pid = -errno;
	else
		c->peer_pid = cred.pid;
}

static int client_new(struct loop *loop, int fd, const char *name, const struct qmp_handlers *h,
		      struct qmp **out)
{
	struct qmp *c = calloc(1, sizeof(*c));
	int r = -ENOMEM;
	if (!c)
		return r;
	c->loop = loop;
	c->fd = fd;
	TAILQ_INIT(&c->cmds);
	qmp_lines_init(&c->lines);
	c->state = QMP_GREETING; /* born here; later changes go through qmp_set_state() */
	if (h)
		c->h = *h;
	c->name = strdup(name);
	if (!c->name)
		goto out;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		goto out;
	}
	c->is_unix = ss.ss_family == AF_UNIX;
	int one = 1;
	if (!c->is_unix) /* QMP is request/response: Nagle would add up to 40 ms */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	read_peer(c);
	r = loop_add_fd(loop, fd, EPOLLIN, qmp_on_io, c);
	if (r < 0)
		goto out;
	c->epoll_events = EPOLLIN;
	c->negotiate_deadline_ms = mono_ms() + QMP_NEGOTIATE_TIMEOUT_MS;
	qmp_schedule_timer(c);
	log_debug("qmp %s: connected to QEMU pid %d; waiting for its greeting", name,
		  (int)c->peer_pid);
	*out = c;
	c = NULL;
	r = 0;
out:
	if (c) {
		free(c->name);
		free(c);
	}
	return r;
}

int qmp_connect(struct loop *loop, const char *path, const struct qmp_handlers *h,
		struct qmp **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int r, fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* AF_UNIX connects at once or fails (-EAGAIN: QEMU's listen backlog is full). */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto out;
	}
	r = client_new(loop, fd, path, h, out);
out:
	if (r < 0)
		close(fd);
	return r;
}

int qmp_adopt(struct loop *loop, int fd, const char *name, const struct qmp_handlers *h,
	      struct qmp **out)
{
	int type;
	socklen_t len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	if (type != SOCK_STREAM)
		return -ESOCKTNOSUPPORT;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	char fallback[32];
	snprintf(fallback, sizeof(fallback), "fd %d", fd);
	return client_new(loop, fd, name ? name : fallback, h, out);
}

pid_t qmp_peer_pid(const struct qmp *c)
{
	return qmp_alive(c) ? c->peer_pid : -ENOTCONN;
}

bool qmp_is_ready(const struct qmp *c)
{
	return !c->freed && c->state == QMP_READY;
}

bool qmp_oob_enabled(const struct qmp *c)
{
	return qmp_is_ready(c) && c->oob;
}
