/* io.c - the QMP socket: reads feed the line splitter and parser, writes send the
 * command queue in order, passing fds with SCM_RIGHTS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "qmp/client.h"

#define QMP_READ_CHUNK 65536
/* Bounds what one wakeup reads from one QEMU (1 MiB), so a flood cannot starve
 * the rest of the loop; level-triggered epoll brings us back for the rest. */
#define QMP_READS_PER_WAKEUP 16
/* How much of a line goes into log lines. */
#define QMP_LOG_SNIPPET 300

/* Printable copy of untrusted bytes for a log line. */
static void snippet(const char *p, size_t len, char *out, size_t out_len)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 4 < out_len; i++)
		out[n++] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
	if (len > n && out_len > 4)
		memcpy(out + n, "...", 3), n += 3;
	out[n] = '\0';
}

static int on_line(void *arg, char *line, size_t len)
{
	struct qmp *c = arg;
	struct qmp_msg m;
	char why[256], text[QMP_LOG_SNIPPET + 4];
	int r = qmp_msg_parse(line, len, &m, why, sizeof(why));
	if (r < 0) {
		char head[52], full[sizeof(why) + sizeof(head) + 40];
		snippet(line, len, head, sizeof(head));
		snprintf(full, sizeof(full), "%s (line of %zu bytes: %s)", why, len, head);
		qmp_break(c, r, full);
		return 1;
	}
	if (log_get_level() <= LOG_DEBUG) {
		snippet(line, len, text, sizeof(text));
		log_debug("qmp %s: <- %s", c->name, text);
	}
	qmp_handle_msg(c, &m);
	qmp_msg_free(&m);
	return qmp_alive(c) ? 0 : 1;
}

static void on_eof(struct qmp *c)
{
	char why[200];
	size_t partial = qmp_lines_pending(&c->lines);
	if (partial)
		snprintf(why, sizeof(why), "QEMU closed the QMP connection mid-message (%zu bytes "
			 "of an unfinished line); did it crash? See its log", partial);
	else
		snprintf(why, sizeof(why), "QEMU closed the QMP connection; did it exit or crash? "
			 "See its log");
	qmp_break(c, -ECONNRESET, why);
}

static void do_read(struct qmp *c)
{
	char buf[QMP_READ_CHUNK], why[256];
	for (int i = 0; i < QMP_READS_PER_WAKEUP && qmp_alive(c); i++) {
		ssize_t n = read(c->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			int r = -errno;
			snprintf(why, sizeof(why), "reading from QEMU's QMP socket failed: %s",
				 strerror(-r));
			qmp_break(c, r, why);
			return;
		}
		if (n == 0) {
			on_eof(c);
			return;
		}
		int r = qmp_lines_feed(&c->lines, buf, (size_t)n, on_line, c, why, sizeof(why));
		if (r < 0) {
			qmp_break(c, r, why);
			return;
		}
		if ((size_t)n < sizeof(buf))
			return; /* drained, most likely; epoll tells us otherwise */
	}
}

/* One sendmsg of the rest of cmd; the fd rides on the command's first byte. */
static ssize_t send_cmd(struct qmp *c, struct qmp_cmd *cmd)
{
	struct iovec iov = { .iov_base = cmd->buf + cmd->sent, .iov_len = cmd->len - cmd->sent };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	if (cmd->fd >= 0 && cmd->sent == 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &cmd->fd, sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* May this command go on the wire now? */
static bool may_send(const struct qmp *c, const struct qmp_cmd *cmd)
{
	if (c->state != QMP_READY && !(c->state == QMP_NEGOTIATING && cmd->internal))
		return false;
	/* QEMU keeps only the last fd it received: one fd-carrying command at a time. */
	return !(cmd->carries_fd && cmd->sent == 0 && c->fds_in_flight > 0);
}

static int set_events(struct qmp *c, uint32_t events)
{
	if (c->epoll_events == events)
		return 0;
	int r = loop_mod_fd(c->loop, c->fd, events);
	if (r == 0)
		c->epoll_events = events;
	return r;
}

int qmp_flush(struct qmp *c)
{
	bool blocked = false;
	if (!qmp_alive(c))
		return 0;
	while (c->unsent && may_send(c, c->unsent)) {
		struct qmp_cmd *cmd = c->unsent;
		ssize_t n = send_cmd(c, cmd);
		if (n == -EAGAIN) {
			blocked = true;
			break;
		}
		if (n < 0)
			return (int)n;
		if (cmd->fd >= 0) { /* delivered with these bytes: QEMU holds its own copy */
			close(cmd->fd);
			cmd->fd = -1;
			c->fds_in_flight++;
		}
		cmd->sent += (size_t)n;
		if (cmd->sent < cmd->len)
			continue;
		if (log_get_level() <= LOG_DEBUG)
			log_debug("qmp %s: -> %.*s%s", c->name, (int)cmd->len - 1, cmd->buf,
				  cmd->carries_fd ? " (+ fd)" : "");
		free(cmd->buf);
		cmd->buf = NULL;
		c->unsent = TAILQ_NEXT(cmd, link);
	}
	return set_events(c, blocked ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

void qmp_on_io(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct qmp *c = arg;
	qmp_enter(c);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		do_read(c);
	if (qmp_alive(c) && (events & (EPOLLOUT | EPOLLERR))) {
		int r = qmp_flush(c);
		if (r < 0) {
			char why[200];
			snprintf(why, sizeof(why), "writing to QEMU's QMP socket failed: %s",
				 strerror(-r));
			qmp_break(c, r == -EPIPE ? -ECONNRESET : r, why);
		}
	}
	qmp_leave(c);
}
