/* repl.c - the agent's side of replication (checkpoint/replicate.h): fork the helper,
 * turn its messages into callbacks, send the agent's answers, notice its death.
 *
 * States (asserted in one setter, set_state):
 *   STARTING -> SYNCING -> PROTECTED <-> CHECKPOINTING
 *   SYNCING | PROTECTED | CHECKPOINTING -> FAILOVER -> DONE   (secondary)
 *   any but DONE -> FAILED
 * A message from the helper that does not fit the state is a helper bug: the helper
 * is killed and the agent hears REPL_LOCAL_ERROR. Callbacks run only from the loop
 * (the socketpair's or a zero-delay timer's callback), never inside a repl_* call.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/repl_int.h"
#include "checkpoint/repl_msg.h"
#include "lib/log.h"
#include "lib/loop.h"

#define FREE_WAIT_MS 200

enum repl_state { RS_STARTING, RS_SYNCING, RS_PROTECTED, RS_CHECKPOINTING, RS_FAILOVER, RS_DONE,
		  RS_FAILED };

static const char *const state_names[] = { "starting", "syncing", "protected", "checkpointing",
					   "failover", "done", "failed" };

/* The answer the agent owes the helper. */
enum answer { ANS_NONE, ANS_SUSPEND, ANS_RESUME, ANS_LOAD, ANS_LOGDIRTY };

struct replicator {
	struct loop *loop;
	struct repl_ops ops;
	void *arg;
	enum repl_role role;
	enum repl_vm vm;
	enum repl_state st;
	pid_t pid; /* 0 once reaped */
	int sock;
	enum answer owe;
	int owed_fd; /* passed with the request; ours until the answer */
	bool loaded; /* secondary: a checkpoint was acknowledged (LOAD seen) */
	/* The VM's stopped window as the agent drives it (CLOCK_MONOTONIC ns): from
	 * on_suspend to repl_resume_done (primary) / repl_load_done (secondary). The
	 * helper's view would include its own streaming work. */
	uint64_t t_suspend, t_suspended, t_running;
	int depth;   /* callbacks running */
	bool freed;
	uint64_t fail_timer;
	enum repl_failure fail_why;
	char fail_reason[REPL_REASON_MAX + 1];
};

const char *repl_failure_name(enum repl_failure why)
{
	static const char *const names[] = { "broken channel", "corrupt stream", "refused",
					     "local error" };
	return (unsigned)why < sizeof(names) / sizeof(names[0]) ? names[why] : "?";
}

static const char *role_name(const struct replicator *r)
{
	return r->role == REPL_PRIMARY ? "primary" : "secondary";
}

static bool legal(enum repl_state from, enum repl_state to)
{
	switch (from) {
	case RS_STARTING:
		return to == RS_SYNCING || to == RS_FAILED;
	case RS_SYNCING:
	case RS_PROTECTED:
	case RS_CHECKPOINTING:
		return to == RS_PROTECTED || to == RS_CHECKPOINTING || to == RS_FAILOVER ||
		       to == RS_FAILED;
	case RS_FAILOVER:
		return to == RS_DONE || to == RS_FAILED;
	default:
		return false;
	}
}

static void set_state(struct replicator *r, enum repl_state to, const char *reason)
{
	if (!legal(r->st, to)) {
		log_err("repl %s: illegal transition %s -> %s (a bug in repl.c)", role_name(r),
			state_names[r->st], state_names[to]);
		abort();
	}
	log_info("repl %s: %s -> %s (reason: %s)", role_name(r), state_names[r->st],
		 state_names[to], reason);
	r->st = to;
}

static bool over(const struct replicator *r)
{
	return r->st == RS_FAILED || r->st == RS_DONE;
}

static void close_owed(struct replicator *r)
{
	if (r->owed_fd >= 0)
		close(r->owed_fd);
	r->owed_fd = -1;
	r->owe = ANS_NONE;
}

/* ---- the helper process ---------------------------------------------------------------- */

static void describe_exit(int status, char *out, size_t n)
{
	if (WIFSIGNALED(status))
		snprintf(out, n, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(out, n, "exited with status %d", WEXITSTATUS(status));
}

/* Reap the helper, waiting at most wait_ms before SIGKILL. */
static void reap(struct replicator *r, int wait_ms, char *how, size_t n)
{
	int status = 0;
	if (r->pid <= 0)
		return;
	for (int i = 0; i < wait_ms && waitpid(r->pid, &status, WNOHANG) == 0; i++)
		usleep(1000);
	if (waitpid(r->pid, &status, WNOHANG) == 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, &status, 0);
	}
	if (how)
		describe_exit(status, how, n);
	r->pid = 0;
}

static void close_sock(struct replicator *r)
{
	if (r->sock < 0)
		return;
	loop_del_fd(r->loop, r->sock);
	close(r->sock);
	r->sock = -1;
}

/* Replication is over: the helper goes, the agent hears why. */
static void fail_now(struct replicator *r, enum repl_failure why, const char *reason)
{
	if (over(r))
		return;
	close_owed(r);
	set_state(r, RS_FAILED, reason);
	log_err("repl %s: replication stopped (%s): %s", role_name(r), repl_failure_name(why), reason);
	if (r->ops.on_failed && !r->freed)
		r->ops.on_failed(r, why, reason, r->arg);
}

static void kill_helper(struct replicator *r)
{
	if (r->pid > 0)
		kill(r->pid, SIGKILL);
	close_sock(r);
	reap(r, 0, NULL, 0);
}

static void enter(struct replicator *r)
{
	r->depth++;
}

/* Leave a callback; the outermost one frees a replicator freed inside it. */
static bool leave(struct replicator *r)
{
	if (--r->depth == 0 && r->freed) {
		free(r);
		return true;
	}
	return r->freed;
}

static int64_t fail_timer_cb(struct loop *loop, uint64_t id, void *arg)
{
	struct replicator *r = arg;
	r->fail_timer = 0;
	enter(r);
	kill_helper(r);
	fail_now(r, r->fail_why, r->fail_reason);
	leave(r);
	return LOOP_TIMER_DONE;
}

/* A failure noticed inside a repl_* call: reported from the loop. */
__attribute__((format(printf, 3, 4))) static void fail_later(struct replicator *r,
							       enum repl_failure why,
							       const char *fmt, ...)
{
	va_list ap;
	if (over(r) || r->fail_timer)
		return;
	va_start(ap, fmt);
	vsnprintf(r->fail_reason, sizeof(r->fail_reason), fmt, ap);
	va_end(ap);
	r->fail_why = why;
	if (loop_timer_add(r->loop, 0, fail_timer_cb, r, &r->fail_timer) < 0)
		abort(); /* out of memory for a 40-byte timer: nothing sane is left */
}

static int send_msg(struct replicator *r, const struct wr *w)
{
	int rc = repl_msg_send(r->sock, w, -1, MSG_DONTWAIT);
	if (rc < 0)
		fail_later(r, REPL_LOCAL_ERROR,
			   "cannot write to the replication helper (pid %d): %s; stopped it",
			   (int)r->pid, strerror(-rc));
	return rc;
}

/* ---- messages from the helper ----------------------------------------------------------- */

/* The helper broke the protocol: never trust it again. */
__attribute__((format(printf, 2, 3))) static void violation(struct replicator *r, const char *fmt,
							     ...)
{
	char what[300], reason[REPL_REASON_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(reason, sizeof(reason), "replication helper pid %d broke the protocol: %s; stopped it",
		 (int)r->pid, what);
	kill_helper(r);
	fail_now(r, REPL_LOCAL_ERROR, reason);
}

static void on_suspend(struct replicator *r, struct repl_msg *m)
{
	bool want_fd = r->role == REPL_PRIMARY;
	if ((m->fd >= 0) != want_fd)
		return violation(r, "SUSPEND %s a save fd on the %s", want_fd ? "without" : "with",
				 role_name(r));
	if (r->role == REPL_SECONDARY && r->st == RS_PROTECTED)
		set_state(r, RS_CHECKPOINTING, "the primary requested a checkpoint");
	else if (r->role == REPL_SECONDARY || (r->st != RS_SYNCING && r->st != RS_CHECKPOINTING))
		return violation(r, "SUSPEND to the %s in state %s", role_name(r), state_names[r->st]);
	r->owe = ANS_SUSPEND;
	r->owed_fd = m->fd;
	m->fd = -1;
	r->t_suspend = mono_ns();
	r->t_suspended = r->t_running = 0;
	r->ops.on_suspend(r, r->owed_fd, r->arg);
}

static void on_resume(struct replicator *r, const struct repl_msg *m)
{
	if (r->role != REPL_PRIMARY || (r->st != RS_SYNCING && r->st != RS_CHECKPOINTING))
		return violation(r, "RESUME to a %s in state %s", role_name(r), state_names[r->st]);
	r->owe = ANS_RESUME;
	r->ops.on_resume(r, r->arg);
}

/* Xen: the device model must log its own writes to guest memory while Xen tracks
 * the domain's: the primary's for libxenguest's switch_qemu_logdirty, the
 * secondary's before its domain first runs (libxc sends the secondary's dirty
 * pages back at every checkpoint). */
static void on_logdirty(struct replicator *r, const struct repl_msg *m)
{
	struct wr w;
	if (r->vm != REPL_VM_XEN || over(r) || r->st == RS_STARTING)
		return violation(r, "LOGDIRTY to a %s %s helper in state %s", role_name(r),
				 r->vm == REPL_VM_XEN ? "Xen" : "QEMU", state_names[r->st]);
	r->owe = ANS_LOGDIRTY;
	if (r->ops.on_logdirty)
		return r->ops.on_logdirty(r, m->enable, r->arg);
	/* No handler: libxenguest hears the failure and stops the save. */
	log_err("repl %s: the agent has no on_logdirty handler; Xen replication cannot run",
		role_name(r));
	r->owe = ANS_NONE;
	wr_init(&w);
	repl_msg_put_done(&w, REPL_MSG_LOGDIRTY_DONE, -EOPNOTSUPP, 0);
	send_msg(r, &w);
	wr_free(&w);
}

static void on_load(struct replicator *r, struct repl_msg *m)
{
	if (r->role != REPL_SECONDARY ||
	    (r->st != RS_SYNCING && r->st != RS_CHECKPOINTING && r->st != RS_FAILOVER))
		return violation(r, "LOAD to a %s in state %s", role_name(r), state_names[r->st]);
	r->owe = ANS_LOAD;
	r->owed_fd = m->fd;
	m->fd = -1;
	r->loaded = true;
	r->ops.on_load(r, r->owed_fd, m->load.has_mark ? m->load.input_mark : 0, r->arg);
}

/* Replace the helper's pause figures with the agent's own (see t_suspend). */
static void agent_times(struct replicator *r, struct repl_stats *st)
{
	if (!r->t_suspend || !r->t_suspended || !r->t_running)
		return;
	st->suspend_us = (r->t_suspended - r->t_suspend) / 1000;
	st->pause_us = (r->t_running - r->t_suspend) / 1000;
	r->t_suspend = 0;
}

static void on_committed(struct replicator *r, struct repl_msg *m)
{
	char why[64];
	if (r->st == RS_SYNCING && m->stats.seq != 0)
		return violation(r, "the initial sync committed as checkpoint %llu",
				 (unsigned long long)m->stats.seq);
	if (r->st == RS_SYNCING || r->st == RS_CHECKPOINTING) {
		snprintf(why, sizeof(why), "checkpoint %llu committed",
			 (unsigned long long)m->stats.seq);
		set_state(r, RS_PROTECTED, why);
	} else if (r->st != RS_FAILOVER) {
		return violation(r, "COMMITTED in state %s", state_names[r->st]);
	}
	agent_times(r, &m->stats);
	r->ops.on_committed(r, &m->stats, r->arg);
}

static void on_message(struct replicator *r, struct repl_msg *m)
{
	if (r->owe != ANS_NONE && m->type != REPL_MSG_FAILED)
		return violation(r, "%s while the agent still owes an answer", repl_msg_name(m->type));
	switch (m->type) {
	case REPL_MSG_SYNCING:
		if (r->st != RS_STARTING)
			return violation(r, "SYNCING in state %s", state_names[r->st]);
		return set_state(r, RS_SYNCING, "replication link up, identities match");
	case REPL_MSG_SUSPEND:
		return on_suspend(r, m);
	case REPL_MSG_RESUME:
		return on_resume(r, m);
	case REPL_MSG_LOAD:
		return on_load(r, m);
	case REPL_MSG_LOGDIRTY:
		return on_logdirty(r, m);
	case REPL_MSG_COMMITTED:
		return on_committed(r, m);
	case REPL_MSG_FAILOVER_READY:
		if (r->st != RS_FAILOVER)
			return violation(r, "FAILOVER_READY in state %s", state_names[r->st]);
		set_state(r, RS_DONE, "failover ready");
		return r->ops.on_failover_ready(r, r->arg);
	case REPL_MSG_FAILED:
		/* After repl_failover(), a lost link is what the agent expects: the helper
		 * reports only once the commit rule is honoured, and the last acknowledged
		 * checkpoint stands. A local error leaves no consistent VM. */
		if (r->st == RS_FAILOVER && m->failed.why != REPL_LOCAL_ERROR) {
			set_state(r, RS_DONE, m->failed.reason);
			return r->ops.on_failover_ready(r, r->arg);
		}
		return fail_now(r, m->failed.why, m->failed.reason);
	}
}

/* EOF on the socketpair: the helper exited. After FAILED or FAILOVER_READY that is
 * expected; otherwise it died. */
static void helper_gone(struct replicator *r)
{
	char how[96], reason[REPL_REASON_MAX + 1];
	int pid = (int)r->pid;
	close_sock(r);
	reap(r, FREE_WAIT_MS, how, sizeof(how));
	if (over(r))
		return;
	snprintf(reason, sizeof(reason), "replication helper pid %d %s; see its log lines (colo-helper-*) above",
		 pid, how);
	fail_now(r, REPL_LOCAL_ERROR, reason);
}

static void sock_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct replicator *r = arg;
	struct repl_msg m;
	char why[200];
	enter(r);
	while (!r->freed && r->sock >= 0) {
		int rc = repl_msg_recv(r->sock, REPL_TO_AGENT, &m, why, sizeof(why));
		if (rc == 0)
			break;
		if (rc == -EBADMSG) {
			violation(r, "%s", why);
		} else if (rc < 0) {
			helper_gone(r);
		} else if (over(r)) {
			if (m.fd >= 0)
				close(m.fd);
		} else {
			on_message(r, &m);
			if (m.fd >= 0) /* not taken: a violation */
				close(m.fd);
		}
	}
	leave(r);
}

/* ---- starting ---------------------------------------------------------------------------- */

/* Xen: START's ram_path is only a label for log lines (libxc maps guest memory
 * itself); vm_id is the domid. docs/helper-protocol.md §3. */
#define XEN_RAM_LABEL "xen-domain"

static int fill_start(const struct repl_config *cfg, struct repl_start *s)
{
	bool xen = cfg->vm == REPL_VM_XEN;
	const char *path = xen && !cfg->ram_path ? XEN_RAM_LABEL : cfg->ram_path;
	memset(s, 0, sizeof(*s));
	if ((cfg->vm != REPL_VM_QEMU && !xen) || !path || !cfg->peer_host ||
	    strlen(path) > REPL_PATH_MAX ||
	    strlen(cfg->peer_host) > REPL_HOST_MAX || !path[0] || !cfg->peer_host[0] ||
	    !cfg->peer_port || (xen ? cfg->xen_domid == 0 : cfg->qemu_pid <= 0) || !cfg->ram_size ||
	    cfg->ram_size % 4096 || (cfg->role != REPL_PRIMARY && cfg->role != REPL_SECONDARY))
		return -EINVAL;
	*s = (struct repl_start){ .role = cfg->role,
				  .backend = xen ? REPL_BACKEND_XEN : REPL_BACKEND_QEMU,
				  .vm_id = xen ? cfg->xen_domid : (uint32_t)cfg->qemu_pid,
				  .connect_timeout_ms = cfg->connect_timeout_ms,
				  .ram_size = cfg->ram_size, .config_hash = cfg->config_hash,
				  .peer_port = cfg->peer_port };
	if (xen) {
		s->xen_store_evtchn = cfg->xen_store_evtchn;
		s->xen_console_evtchn = cfg->xen_console_evtchn;
		s->xen_store_domid = cfg->xen_store_domid;
		s->xen_console_domid = cfg->xen_console_domid;
	}
	memcpy(s->peer_host, cfg->peer_host, strlen(cfg->peer_host));
	memcpy(s->ram_path, path, strlen(path));
	return 0;
}

/* In the child: hold nothing of the agent's but stdio and our end, die with it.
 * exe: exec this program with the socketpair on fd 3 (the Xen helper, linked
 * against libxenguest); NULL: run fn in the fork. */
static _Noreturn void child(int sock, pid_t parent, repl_helper_fn fn, const char *exe)
{
	sigset_t all;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1); /* the agent died before the line above */
	if (sock != 3 && dup2(sock, 3) < 0)
		_exit(1);
	close_range(4, ~0u, 0);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL); /* the agent may block signals for a signalfd */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	if (exe) {
		static const char *const lvl[] = { "debug", "info", "warn", "err" };
		fcntl(3, F_SETFD, 0); /* the socketpair's CLOEXEC stays with the agent */
		setenv("COLO_LOG_LEVEL", lvl[log_get_level()], 1);
		execl(exe, exe, (char *)NULL);
		log_err("repl: cannot run the Xen replication helper %s: %s; install it next to the agent or set its path",
			exe, strerror(errno));
		_exit(127);
	}
	log_init("colo-helper", log_get_level());
	_exit(fn(3));
}

/* The Xen helper's default path: colo-xen-helper next to our own binary. */
static int xen_helper_path(const struct repl_config *cfg, char *out, size_t n)
{
	char self[4096];
	if (cfg->xen_helper) {
		if (strlen(cfg->xen_helper) >= n)
			return -ENAMETOOLONG;
		snprintf(out, n, "%s", cfg->xen_helper);
		return 0;
	}
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		return -errno;
	self[len] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	if ((size_t)snprintf(out, n, "%s/colo-xen-helper", self) >= n)
		return -ENAMETOOLONG;
	return 0;
}

static int spawn(struct replicator *r, repl_helper_fn fn, const char *exe)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid_t parent = getpid(), pid = fork();
	if (pid < 0) {
		int rc = -errno;
		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	if (pid == 0)
		child(sv[1], parent, fn, exe);
	close(sv[1]);
	r->pid = pid;
	r->sock = sv[0];
	fcntl(r->sock, F_SETFL, fcntl(r->sock, F_GETFL) | O_NONBLOCK);
	return 0;
}

int repl_start_with(struct loop *loop, const struct repl_config *cfg, const struct repl_ops *ops,
		    void *arg, repl_helper_fn fn, struct replicator **out)
{
	struct repl_start start;
	struct wr w;
	char exe[4096];
	int rc = fill_start(cfg, &start);
	/* Xen's helper is exec'd (it links libxenguest); a test's fn stays a fork. */
	bool exec_xen = cfg->vm == REPL_VM_XEN && fn == repl_helper_main;
	if (!rc && exec_xen)
		rc = xen_helper_path(cfg, exe, sizeof(exe));
	if (rc)
		return rc;
	struct replicator *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct replicator){ .loop = loop, .ops = *ops, .arg = arg, .role = cfg->role,
				  .vm = cfg->vm, .sock = -1, .owed_fd = -1 };
	wr_init(&w);
	repl_msg_put_start(&w, &start);
	rc = spawn(r, fn, exec_xen ? exe : NULL);
	if (!rc)
		rc = repl_msg_send(r->sock, &w, -1, MSG_DONTWAIT);
	if (!rc)
		rc = loop_add_fd(loop, r->sock, EPOLLIN, sock_cb, r);
	wr_free(&w);
	if (rc) {
		kill_helper(r);
		free(r);
		return rc;
	}
	log_info("repl %s: helper pid %d started for %s (peer %s:%u)", role_name(r), (int)r->pid,
		 start.ram_path, cfg->peer_host, cfg->peer_port);
	*out = r;
	return 0;
}

int repl_start(struct loop *loop, const struct repl_config *cfg, const struct repl_ops *ops,
	       void *arg, struct replicator **out)
{
	return repl_start_with(loop, cfg, ops, arg, repl_helper_main, out);
}

int repl_helper_pid(const struct replicator *r)
{
	return (int)r->pid;
}

/* ---- the agent's verbs ------------------------------------------------------------------- */

int repl_checkpoint(struct replicator *r)
{
	struct wr w;
	if (r->role != REPL_PRIMARY)
		return -EINVAL;
	if (over(r) || r->fail_timer)
		return -ENOTCONN;
	if (r->st != RS_PROTECTED)
		return -EBUSY;
	wr_init(&w);
	repl_msg_put_empty(&w, REPL_MSG_CHECKPOINT);
	int rc = send_msg(r, &w);
	wr_free(&w);
	if (!rc)
		set_state(r, RS_CHECKPOINTING, "checkpoint requested");
	return rc;
}

/* The agent answers: checked against what is owed (a wrong answer is an agent bug). */
static void answer(struct replicator *r, enum answer what, uint16_t type, int err, uint64_t mark)
{
	struct wr w;
	if (over(r) || r->fail_timer)
		return; /* the helper is gone; nobody waits for this */
	if (r->owe != what) {
		log_err("repl %s: %s without the matching callback (a bug in the agent)",
			role_name(r), repl_msg_name(type));
		abort();
	}
	close_owed(r);
	if (what == ANS_SUSPEND)
		r->t_suspended = mono_ns();
	else if (what != ANS_LOGDIRTY)
		r->t_running = mono_ns();
	wr_init(&w);
	repl_msg_put_done(&w, type, err < 0 ? err : err ? -EIO : 0, mark);
	send_msg(r, &w);
	wr_free(&w);
}

void repl_suspend_done(struct replicator *r, int err, uint64_t input_mark)
{
	answer(r, ANS_SUSPEND, REPL_MSG_SUSPEND_DONE, err, input_mark);
}

void repl_suspend_stopped(struct replicator *r)
{
	struct wr w;
	if (over(r) || r->fail_timer || r->role != REPL_PRIMARY)
		return; /* gone, or nothing to overlap on a secondary */
	if (r->owe != ANS_SUSPEND) {
		log_err("repl primary: repl_suspend_stopped() outside on_suspend (a bug in the agent)");
		abort();
	}
	wr_init(&w);
	repl_msg_put_empty(&w, REPL_MSG_STOPPED);
	send_msg(r, &w);
	wr_free(&w);
}

void repl_resume_done(struct replicator *r, int err)
{
	answer(r, ANS_RESUME, REPL_MSG_RESUME_DONE, err, 0);
}

void repl_load_done(struct replicator *r, int err)
{
	answer(r, ANS_LOAD, REPL_MSG_LOAD_DONE, err, 0);
}

void repl_logdirty_done(struct replicator *r, int err)
{
	answer(r, ANS_LOGDIRTY, REPL_MSG_LOGDIRTY_DONE, err, 0);
}

int repl_failover(struct replicator *r)
{
	struct wr w;
	if (r->role != REPL_SECONDARY)
		return -EINVAL;
	if (over(r) || r->fail_timer)
		return -ENOTCONN;
	if (r->st == RS_FAILOVER)
		return -EALREADY;
	if (!r->loaded)
		return -EINVAL; /* no acknowledged checkpoint: nothing consistent to run */
	wr_init(&w);
	repl_msg_put_empty(&w, REPL_MSG_FAILOVER);
	int rc = repl_msg_send(r->sock, &w, -1, MSG_DONTWAIT);
	wr_free(&w);
	/* A helper that already exited (the link broke first) left its FAILED in the
	 * socket: reading it finishes the failover. */
	if (rc == -EPIPE || rc == -ECONNRESET)
		rc = 0;
	if (rc)
		fail_later(r, REPL_LOCAL_ERROR, "cannot write to the replication helper (pid %d): %s; stopped it",
			   (int)r->pid, strerror(-rc));
	else
		set_state(r, RS_FAILOVER, "the primary is gone (heartbeat)");
	return rc;
}

void repl_free(struct replicator *r)
{
	if (!r)
		return;
	if (r->fail_timer)
		loop_timer_cancel(r->loop, r->fail_timer);
	r->fail_timer = 0;
	close_owed(r);
	close_sock(r); /* the helper reads EOF and exits */
	reap(r, FREE_WAIT_MS, NULL, 0);
	r->freed = true;
	if (r->depth == 0)
		free(r);
}
