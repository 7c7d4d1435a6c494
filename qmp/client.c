/* client.c - the QMP connection state machine: states, commands and their replies,
 * timeouts, events. Creation and teardown are in conn.c, socket I/O in io.c,
 * parsing in parse.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "qmp/client.h"
#include "qmp/internal.h"

static const char *const state_names[] = {
	[QMP_GREETING] = "greeting",
	[QMP_NEGOTIATING] = "negotiating",
	[QMP_READY] = "ready",
	[QMP_BROKEN] = "broken",
};

/* The one place the state changes; an illegal transition is a bug here: abort. */
static void qmp_set_state(struct qmp *c, enum qmp_state to, const char *reason)
{
	static const bool legal[4][4] = {
		[QMP_GREETING] = { [QMP_NEGOTIATING] = true, [QMP_BROKEN] = true },
		[QMP_NEGOTIATING] = { [QMP_READY] = true, [QMP_BROKEN] = true },
		[QMP_READY] = { [QMP_BROKEN] = true },
	};
	if (!legal[c->state][to]) {
		log_err("qmp %s: illegal state change %s -> %s (%s); aborting", c->name,
			state_names[c->state], state_names[to], reason);
		abort();
	}
	log_debug("qmp %s: %s -> %s (reason: %s)", c->name, state_names[c->state],
		  state_names[to], reason);
	c->state = to;
}

bool qmp_alive(const struct qmp *c)
{
	return !c->freed && c->state != QMP_BROKEN;
}

static void unlink_cmd(struct qmp *c, struct qmp_cmd *cmd)
{
	if (c->unsent == cmd)
		c->unsent = TAILQ_NEXT(cmd, link);
	TAILQ_REMOVE(&c->cmds, cmd, link);
	c->npending--;
}

/* Tell the caller, then free; the caller may free the client meanwhile. */
static void finish(struct qmp *c, struct qmp_cmd *cmd, struct qmp_result *res)
{
	if (!cmd->abandoned)
		cmd->cb(c, res, cmd->arg);
	qmp_cmd_free(cmd);
}

void qmp_break(struct qmp *c, int err, const char *why)
{
	if (!qmp_alive(c))
		return;
	c->err = err;
	snprintf(c->why, sizeof(c->why), "%s", why);
	log_msg(err == -ECONNRESET ? LOG_WARN : LOG_ERR,
		"qmp %s: %s -> broken: %s; failing %zu unfinished commands", c->name,
		state_names[c->state], c->why, c->npending);
	qmp_set_state(c, QMP_BROKEN, c->why);
	qmp_detach(c);
	struct qmp_cmd *cmd;
	while (!c->freed && (cmd = TAILQ_FIRST(&c->cmds))) {
		unlink_cmd(c, cmd);
		struct qmp_result res = { .err = err, .error_desc = c->why };
		finish(c, cmd, &res);
	}
	if (!c->freed && c->h.broken)
		c->h.broken(c, err, c->why, c->h.arg);
}

static int64_t on_timer(struct loop *loop, uint64_t id, void *arg);

/* Arm the client's one timer for the earliest deadline (negotiation or command). */
void qmp_schedule_timer(struct qmp *c)
{
	uint64_t due = UINT64_MAX;
	if (c->state == QMP_GREETING || c->state == QMP_NEGOTIATING)
		due = c->negotiate_deadline_ms;
	struct qmp_cmd *cmd;
	TAILQ_FOREACH(cmd, &c->cmds, link)
		if (cmd->deadline_ms && !cmd->abandoned && cmd->deadline_ms < due)
			due = cmd->deadline_ms;
	if (c->timer_id && c->timer_due_ms == due)
		return;
	if (c->timer_id)
		loop_timer_cancel(c->loop, c->timer_id);
	c->timer_id = 0;
	if (due == UINT64_MAX || !qmp_alive(c))
		return;
	uint64_t now = mono_ms();
	if (loop_timer_add(c->loop, due > now ? (int64_t)(due - now) : 0, on_timer, c,
			   &c->timer_id) < 0) {
		log_err("qmp %s: cannot arm the QMP timeout timer (out of memory); commands "
			"may wait past their timeout", c->name);
		return;
	}
	c->timer_due_ms = due;
}

/* A command QEMU has not seen at all leaves the queue; one QEMU has (partly)
 * received stays, abandoned, until QEMU answers or the connection ends. */
static void expire(struct qmp *c, struct qmp_cmd *cmd, uint64_t now)
{
	int ms = (int)(now - cmd->issued_ms);
	char why[128];
	snprintf(why, sizeof(why), "no reply from QEMU within %d ms", ms);
	log_warn("qmp %s: %s (id %llu): %s; is QEMU stuck?", c->name, cmd->name,
		 (unsigned long long)cmd->id, why);
	struct qmp_result res = { .err = -ETIMEDOUT, .error_desc = why };
	if (cmd->sent == 0) { /* commands go out in order: none of it is on the wire */
		unlink_cmd(c, cmd);
		finish(c, cmd, &res);
		return;
	}
	cmd->abandoned = true;
	cmd->cb(c, &res, cmd->arg);
}

static int64_t on_timer(struct loop *loop, uint64_t id, void *arg)
{
	struct qmp *c = arg;
	c->timer_id = 0;
	qmp_enter(c);
	uint64_t now = mono_ms();
	if (c->state != QMP_READY && now >= c->negotiate_deadline_ms) {
		char why[200];
		snprintf(why, sizeof(why), "no QMP %s within %d ms; is another client connected "
			 "(QEMU serves one at a time)?",
			 c->state == QMP_GREETING ? "greeting" : "reply to qmp_capabilities",
			 QMP_NEGOTIATE_TIMEOUT_MS);
		qmp_break(c, -ETIMEDOUT, why);
	}
	for (;;) {
		struct qmp_cmd *cmd, *due = NULL;
		TAILQ_FOREACH(cmd, &c->cmds, link)
			if (cmd->deadline_ms && !cmd->abandoned && cmd->deadline_ms <= now) {
				due = cmd;
				break;
			}
		if (!due || !qmp_alive(c))
			break;
		expire(c, due, now);
	}
	if (qmp_alive(c))
		qmp_schedule_timer(c);
	qmp_leave(c);
	return LOOP_TIMER_DONE;
}

/* Send what can go now; a socket error is left for the loop to find (EPOLLOUT
 * fires on a broken socket), so no callback runs inside the caller's qmp_* call. */
static void kick(struct qmp *c)
{
	int r = qmp_flush(c);
	if (r < 0 && c->fd >= 0 && loop_mod_fd(c->loop, c->fd, EPOLLIN | EPOLLOUT) == 0)
		c->epoll_events = EPOLLIN | EPOLLOUT;
}

static int enqueue(struct qmp *c, const char *name, struct qmp_args *args, int fd,
		   int timeout_ms, qmp_exec_cb cb, void *arg, struct qmp_cmd **out)
{
	char why[256];
	struct qmp_cmd *cmd = calloc(1, sizeof(*cmd));
	int r = -ENOMEM;
	if (!cmd)
		goto out;
	cmd->fd = -1;
	cmd->id = ++c->next_id;
	cmd->name = strdup(name);
	if (!cmd->name)
		goto out;
	r = qmp_cmd_encode(name, args, cmd->id, &cmd->buf, &cmd->len, why, sizeof(why));
	args = NULL;
	if (r < 0) {
		log_err("qmp %s: not sending %s: %s", c->name, name, why);
		goto out;
	}
	if (fd >= 0 && (cmd->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		r = -errno;
		goto out;
	}
	cmd->carries_fd = fd >= 0;
	cmd->issued_ms = mono_ms();
	cmd->deadline_ms = timeout_ms > 0 ? cmd->issued_ms + (uint64_t)timeout_ms : 0;
	cmd->cb = cb;
	cmd->arg = arg;
	TAILQ_INSERT_TAIL(&c->cmds, cmd, link);
	if (!c->unsent)
		c->unsent = cmd;
	c->npending++;
	*out = cmd;
	cmd = NULL;
	r = 0;
out:
	qmp_args_free(args);
	if (cmd)
		qmp_cmd_free(cmd);
	return r;
}

int qmp_exec(struct qmp *c, const char *name, struct qmp_args *args, int fd, int timeout_ms,
	     qmp_exec_cb cb, void *arg)
{
	struct qmp_cmd *cmd;
	int r;
	if (!c || !name || !cb || timeout_ms < 0) {
		r = -EINVAL;
		goto out;
	}
	if (!qmp_alive(c)) {
		r = -ENOTCONN;
		goto out;
	}
	if (fd >= 0 && !c->is_unix) {
		r = -EOPNOTSUPP; /* SCM_RIGHTS needs a unix socket */
		goto out;
	}
	if (c->npending >= QMP_MAX_PENDING) {
		log_warn("qmp %s: not sending %s: %d commands already wait for QEMU", c->name,
			 name, QMP_MAX_PENDING);
		r = -EBUSY;
		goto out;
	}
	r = enqueue(c, name, args, fd, timeout_ms, cb, arg, &cmd);
	args = NULL;
	if (r < 0)
		goto out;
	if (cmd->deadline_ms && (!c->timer_id || cmd->deadline_ms < c->timer_due_ms))
		qmp_schedule_timer(c);
	kick(c);
out:
	qmp_args_free(args);
	return r;
}

static void on_capabilities(struct qmp *c, struct qmp_result *res, void *arg)
{
	char why[300];
	if (res->err == -EREMOTEIO) {
		snprintf(why, sizeof(why), "QEMU refused qmp_capabilities: %s: %s",
			 res->error_class, res->error_desc);
		qmp_break(c, -EPROTO, why);
		return;
	}
	if (res->err < 0) /* the connection ended: already BROKEN */
		return;
	qmp_set_state(c, QMP_READY, c->oob ? "capabilities accepted, oob on" :
					     "capabilities accepted");
	qmp_schedule_timer(c); /* the negotiation deadline is gone */
	if (c->h.ready)
		c->h.ready(c, c->h.arg);
	if (qmp_alive(c))
		kick(c);
}

static void on_greeting(struct qmp *c, const struct qmp_msg *m)
{
	struct qmp_args *a = NULL;
	struct qmp_cmd *cmd;
	log_info("qmp %s: QEMU %lld.%lld.%lld%s%s%s, pid %d, oob %s", c->name,
		 (long long)m->major, (long long)m->minor, (long long)m->micro,
		 m->package ? " (" : "", m->package ? m->package : "", m->package ? ")" : "",
		 (int)c->peer_pid, m->oob ? "offered" : "not offered");
	c->oob = m->oob;
	if (m->oob && !(a = qmp_args_new())) {
		qmp_break(c, -ENOMEM, "cannot build qmp_capabilities (out of memory)");
		return;
	}
	if (m->oob) {
		qmp_args_begin_array(a, "enable");
		qmp_args_str(a, NULL, "oob");
		qmp_args_end(a);
	}
	if (enqueue(c, "qmp_capabilities", a, -1, 0, on_capabilities, NULL, &cmd) < 0) {
		qmp_break(c, -ENOMEM, "cannot build qmp_capabilities (out of memory)");
		return;
	}
	/* It must be first on the wire, before commands queued since connecting. */
	TAILQ_REMOVE(&c->cmds, cmd, link);
	TAILQ_INSERT_HEAD(&c->cmds, cmd, link);
	c->unsent = cmd;
	cmd->internal = true;
	qmp_set_state(c, QMP_NEGOTIATING, "greeting received");
	kick(c);
}

static struct qmp_cmd *find_sent(struct qmp *c, uint64_t id)
{
	struct qmp_cmd *cmd;
	TAILQ_FOREACH(cmd, &c->cmds, link) {
		if (cmd == c->unsent)
			break; /* QEMU cannot answer what it has not received */
		if (cmd->id == id)
			return cmd;
	}
	return NULL;
}

static void on_reply(struct qmp *c, struct qmp_msg *m)
{
	char why[300];
	struct qmp_cmd *cmd = m->id ? find_sent(c, m->id) : NULL;
	if (!cmd) {
		if (m->id)
			snprintf(why, sizeof(why), "QEMU answered id %llu, which is not waiting",
				 (unsigned long long)m->id);
		else
			snprintf(why, sizeof(why), "QEMU sent a reply without id%s%s%s",
				 m->error_desc ? " (" : "", m->error_desc ? m->error_desc : "",
				 m->error_desc ? ")" : "");
		qmp_break(c, -EPROTO, why);
		return;
	}
	unlink_cmd(c, cmd);
	if (cmd->carries_fd)
		c->fds_in_flight--;
	if (cmd->abandoned)
		log_debug("qmp %s: dropping the late reply to %s (id %llu), which timed out",
			  c->name, cmd->name, (unsigned long long)cmd->id);
	struct qmp_result res = { .err = 0, .ret = m->ret };
	if (m->type == QMP_MSG_ERROR)
		res = (struct qmp_result){ .err = -EREMOTEIO, .error_class = m->error_class,
					   .error_desc = m->error_desc };
	finish(c, cmd, &res);
	if (m->type == QMP_MSG_RETURN && !res.ret)
		*m->ret_slot = NULL; /* the caller kept it */
	if (qmp_alive(c))
		kick(c); /* an fd barrier may have lifted */
}

static void on_event(struct qmp *c, const struct qmp_msg *m)
{
	const struct qmp_event ev = { .name = m->event, .data = m->data, .seconds = m->seconds,
				      .microseconds = m->microseconds };
	/* Subscribers added by these callbacks wait for the next event. */
	int last = c->last_sub_id;
	for (size_t i = 0; i < c->nsubs && qmp_alive(c); i++) {
		struct qmp_sub s = c->subs[i]; /* the array may move under the callback */
		if (s.id && s.id <= last && (!s.name || strcmp(s.name, ev.name) == 0))
			s.cb(c, &ev, s.arg);
	}
}

void qmp_handle_msg(struct qmp *c, struct qmp_msg *m)
{
	if (c->state == QMP_GREETING && m->type != QMP_MSG_GREETING) {
		qmp_break(c, -EPROTO, "QEMU sent a message before its greeting");
		return;
	}
	switch (m->type) {
	case QMP_MSG_GREETING:
		if (c->state != QMP_GREETING)
			qmp_break(c, -EPROTO, "QEMU sent a second greeting");
		else
			on_greeting(c, m);
		break;
	case QMP_MSG_RETURN:
	case QMP_MSG_ERROR:
		on_reply(c, m);
		break;
	case QMP_MSG_EVENT:
		on_event(c, m);
		break;
	}
}

int qmp_subscribe(struct qmp *c, const char *name, qmp_event_cb cb, void *arg)
{
	if (!cb)
		return -EINVAL;
	size_t i = 0;
	while (i < c->nsubs && c->subs[i].id)
		i++;
	if (i == c->nsubs) {
		struct qmp_sub *p = realloc(c->subs, (c->nsubs + 1) * sizeof(*p));
		if (!p)
			return -ENOMEM;
		c->subs = p;
		c->subs[c->nsubs++] = (struct qmp_sub){ 0 };
	}
	char *copy = name ? strdup(name) : NULL;
	if (name && !copy)
		return -ENOMEM;
	c->subs[i] = (struct qmp_sub){ .id = ++c->last_sub_id, .name = copy, .cb = cb, .arg = arg };
	return c->subs[i].id;
}

void qmp_unsubscribe(struct qmp *c, int id)
{
	for (size_t i = 0; i < c->nsubs; i++) {
		if (c->subs[i].id == id && id > 0) {
			free(c->subs[i].name);
			c->subs[i] = (struct qmp_sub){ 0 };
		}
	}
}

