/* control.c - the control socket server: accept, read bounded lines, answer in order,
 * push `watch` lines, answer `checkpoint` when it commits. */
#include "colo/control.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "colo/control_proto.h"
#include "lib/log.h"
#include "lib/loop.h"

struct ctl_client {
	struct control *c;
	TAILQ_ENTRY(ctl_client) link;
	int fd;
	char in[CTL_MAX_LINE];
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	bool watch, waiting, closing, dead;
	int64_t ticket;
	uint64_t deadline_ms;
};

struct control {
	struct loop *loop;
	int lfd;
	char path[108];
	struct control_ops ops;
	TAILQ_HEAD(, ctl_client) clients;
	int nclients;
	uint64_t timer;
};

static void client_free(struct ctl_client *cl)
{
	struct control *c = cl->c;
	TAILQ_REMOVE(&c->clients, cl, link);
	c->nclients--;
	loop_del_fd(c->loop, cl->fd);
	close(cl->fd);
	free(cl->out);
	free(cl);
}

static void update_events(struct ctl_client *cl)
{
	uint32_t ev = 0;
	if (!cl->waiting && !cl->closing && cl->in_len < sizeof(cl->in))
		ev |= EPOLLIN;
	if (cl->out_off < cl->out_len)
		ev |= EPOLLOUT;
	loop_mod_fd(cl->c->loop, cl->fd, ev);
}

static void flush(struct ctl_client *cl)
{
	while (cl->out_off < cl->out_len) {
		ssize_t n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0) {
			cl->dead = true;
			return;
		}
		cl->out_off += (size_t)n;
	}
	if (cl->out_off == cl->out_len) {
		cl->out_off = cl->out_len = 0;
		if (cl->closing)
			cl->dead = true;
	}
}

/* Queue a reply line (takes it) and try to send it. */
static void send_line(struct ctl_client *cl, char *line)
{
	if (!line) {
		cl->dead = true; /* out of memory: drop the client, keep the agent */
		return;
	}
	size_t n = strlen(line);
	if (cl->out_len - cl->out_off + n > CTL_MAX_OUTPUT) {
		log_warn("control: a client is not reading its replies (%zu bytes queued); "
			 "dropping it", cl->out_len - cl->out_off);
		cl->dead = true;
		free(line);
		return;
	}
	char *p = realloc(cl->out, cl->out_len + n);
	if (!p) {
		cl->dead = true;
		free(line);
		return;
	}
	memcpy(p + cl->out_len, line, n);
	cl->out = p;
	cl->out_len += n;
	free(line);
	flush(cl);
}

static void send_status(struct ctl_client *cl)
{
	struct agent_status st;
	cl->c->ops.status(&st, cl->c->ops.arg);
	send_line(cl, ctl_reply_status(&st));
}

static void handle_line(struct ctl_client *cl, const char *line, size_t len)
{
	struct control *c = cl->c;
	struct ctl_req req;
	char why[256];
	if (len && line[len - 1] == '\r')
		len--;
	if (ctl_req_parse(line, len, &req, why, sizeof(why)) < 0) {
		send_line(cl, ctl_reply_error(why));
		return;
	}
	switch (req.cmd) {
	case CTL_STATUS:
		send_status(cl);
		return;
	case CTL_WATCH:
		cl->watch = true;
		send_status(cl);
		return;
	case CTL_FAILOVER:
		if (c->ops.failover(req.confirm_fenced, why, sizeof(why), c->ops.arg) < 0)
			send_line(cl, ctl_reply_error(why));
		else
			send_line(cl, ctl_reply_failover(why));
		return;
	case CTL_CHECKPOINT:
		cl->ticket = c->ops.checkpoint(why, sizeof(why), c->ops.arg);
		if (cl->ticket < 0) {
			send_line(cl, ctl_reply_error(why));
			return;
		}
		cl->waiting = true;
		cl->deadline_ms = mono_ms() + CTL_CHECKPOINT_TIMEOUT_MS;
		return;
	}
}

/* Lines in order; none while a checkpoint is awaited (its reply comes first). */
static void process(struct ctl_client *cl)
{
	while (!cl->waiting && !cl->closing && !cl->dead) {
		char *nl = memchr(cl->in, '\n', cl->in_len);
		if (!nl) {
			if (cl->in_len == sizeof(cl->in)) {
				char why[64];
				snprintf(why, sizeof(why), "request longer than %d bytes", CTL_MAX_LINE);
				send_line(cl, ctl_reply_error(why));
				cl->closing = true;
				flush(cl);
			}
			break;
		}
		size_t n = (size_t)(nl - cl->in);
		if (!cl->watch) /* a watcher's input is read (to see EOF) and ignored */
			handle_line(cl, cl->in, n);
		cl->in_len -= n + 1;
		memmove(cl->in, nl + 1, cl->in_len);
	}
}

/* After anything that may have ended a client: free it, or fix its events. */
static void settle(struct ctl_client *cl)
{
	if (cl->dead)
		client_free(cl);
	else
		update_events(cl);
}

static void on_client(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct ctl_client *cl = arg;
	if (events & EPOLLOUT)
		flush(cl);
	if ((events & (EPOLLHUP | EPOLLERR)) && cl->in_len == sizeof(cl->in))
		cl->dead = true; /* cannot read its EOF behind a full buffer: it is gone */
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !cl->dead && !cl->closing &&
	    cl->in_len < sizeof(cl->in)) {
		ssize_t n = recv(fd, cl->in + cl->in_len, sizeof(cl->in) - cl->in_len, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			cl->dead = true;
		else if (n > 0)
			cl->in_len += (size_t)n;
		process(cl);
	}
	settle(cl);
}

static int64_t on_timer(struct loop *loop, uint64_t id, void *arg)
{
	struct control *c = arg;
	uint64_t now = mono_ms();
	struct ctl_client *cl, *next;
	for (cl = TAILQ_FIRST(&c->clients); cl; cl = next) {
		next = TAILQ_NEXT(cl, link);
		if (cl->watch && !cl->dead)
			send_status(cl);
		if (cl->waiting && now >= cl->deadline_ms) {
			cl->waiting = false;
			send_line(cl, ctl_reply_error("the checkpoint did not commit within 30 s; see "
						      "the agent's log"));
			process(cl);
		}
		settle(cl);
	}
	return CTL_WATCH_PERIOD_MS;
}

static void on_accept(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct control *c = arg;
	int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (s < 0)
		return;
	if (c->nclients >= CTL_MAX_CLIENTS) {
		char *line = ctl_reply_error("too many control clients; try again later");
		if (line && send(s, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			log_debug("control: could not tell an extra client to go away");
		free(line);
		close(s);
		log_warn("control: refused a client: %d already connected", CTL_MAX_CLIENTS);
		return;
	}
	struct ctl_client *cl = calloc(1, sizeof(*cl));
	if (!cl || loop_add_fd(loop, s, EPOLLIN, on_client, cl) < 0) {
		free(cl);
		close(s);
		return;
	}
	cl->c = c;
	cl->fd = s;
	TAILQ_INSERT_TAIL(&c->clients, cl, link);
	c->nclients++;
}

void control_poke(struct control *c)
{
	if (!c)
		return;
	uint64_t done = c->ops.committed(c->ops.arg);
	bool live = c->ops.replicating(c->ops.arg);
	struct ctl_client *cl, *next;
	for (cl = TAILQ_FIRST(&c->clients); cl; cl = next) {
		next = TAILQ_NEXT(cl, link);
		if (!cl->waiting)
			continue;
		if (done >= (uint64_t)cl->ticket) {
			struct agent_status st;
			c->ops.status(&st, c->ops.arg);
			send_line(cl, ctl_reply_checkpoint(done, &st));
		} else if (!live) {
			send_line(cl, ctl_reply_error("replication stopped before the checkpoint "
						      "committed; see `coloctl status`"));
		} else {
			continue;
		}
		cl->waiting = false;
		process(cl);
		settle(cl);
	}
}

/* A stale socket (no agent behind it) is replaced; anything else is refused. */
static int prepare_path(const char *path)
{
	struct stat st;
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *d = dirname(dir);
	if (mkdir(d, 0700) < 0 && errno != EEXIST) {
		log_err("control: cannot create directory %s: %s", d, strerror(errno));
		return -errno;
	}
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_err("control: %s exists and is not a socket; remove it or choose another "
			"--control-socket", path);
		return -EEXIST;
	}
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int r = s < 0 ? -errno : connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 1 : -errno;
	if (s >= 0)
		close(s);
	if (r == 1) {
		log_err("control: another agent is listening on %s; stop it or choose another "
			"--control-socket", path);
		return -EADDRINUSE;
	}
	if (r != -ECONNREFUSED)
		return r;
	unlink(path); /* stale, from an agent that died */
	return 0;
}

int control_open(struct loop *loop, const char *path, const struct control_ops *ops,
		 struct control **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	int r = prepare_path(path);
	if (r < 0)
		return r;
	struct control *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct control){ .loop = loop, .ops = *ops, .lfd = -1 };
	TAILQ_INIT(&c->clients);
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->lfd < 0) {
		r = -errno;
		goto out;
	}
	mode_t old = umask(0177); /* born 0600: no window where others could connect */
	r = bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r == 0 && listen(c->lfd, CTL_MAX_CLIENTS) < 0)
		r = -errno;
	if (r == 0)
		r = loop_add_fd(loop, c->lfd, EPOLLIN, on_accept, c);
	if (r == 0)
		r = loop_timer_add(loop, CTL_WATCH_PERIOD_MS, on_timer, c, &c->timer);
out:
	if (r < 0) {
		log_err("control: cannot listen on %s: %s", path, strerror(-r));
		control_close(c);
		return r;
	}
	*out = c;
	return 0;
}

int control_clients(const struct control *c)
{
	return c->nclients;
}

void control_close(struct control *c)
{
	if (!c)
		return;
	struct ctl_client *cl;
	while ((cl = TAILQ_FIRST(&c->clients)))
		client_free(cl);
	if (c->lfd >= 0) {
		loop_del_fd(c->loop, c->lfd);
		close(c->lfd);
		unlink(c->path);
	}
	loop_timer_cancel(c->loop, c->timer);
	free(c);
}
