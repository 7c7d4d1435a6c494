/* xen_helper.c - the Xen helper's main (docs/xen-helper.md): START, the runner
 * process and its control channel. The engines are xen_pri.c / xen_sec.c; the
 * agent channel, the replication link and the failure rules are checkpoint/'s
 * (helper.c, helper_net.c), shared with the QEMU helper through struct helper_role.
 *
 * The runner is forked, not exec'd: it is this program's own code (xen_runner.c)
 * and runs libxenguest, whose calls block. A runner that sends a malformed or
 * misplaced control message, or dies before FINISHED, is a local error: it is
 * killed, and the agent hears FAILED(LOCAL_ERROR). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "xen/xen_int.h"

#define PAGE_SIZE_XEN 4096u

/* ---- buffers referenced by the encoder ------------------------------------------------ */

int xen_blocks_add(struct xen_blocks *b, void *p)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		void **n = realloc(b->blk, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		b->blk = n;
		b->cap = cap;
	}
	b->blk[b->n++] = p;
	return 0;
}

void xen_blocks_free(struct xen_blocks *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->blk[i]);
	b->n = 0;
}

int xen_net_send(struct xen *x)
{
	int rc = helper_net_send(x->h);
	if (rc == 0)
		xen_blocks_free(&x->out);
	return rc;
}

/* ---- the runner ------------------------------------------------------------------------- */

static void close_fd(struct xen *x, int *fd)
{
	if (*fd < 0)
		return;
	loop_del_fd(x->h->loop, *fd);
	close(*fd);
	*fd = -1;
}

void xen_reply(struct xen *x, int ret)
{
	struct xen_ctl m = { .type = XEN_CTL_REPLY, .reply = { .call = x->call, .ret = ret } };
	if (!x->call)
		return;
	log_debug("helper: %s -> %d", xen_ctl_name(x->call), ret);
	x->call = 0;
	if (x->ctl >= 0 && xen_ctl_send(x->ctl, &m) < 0)
		log_warn("helper: cannot answer the runner (pid %d): it is gone", (int)x->runner);
}

void xen_runner_kill(struct xen *x)
{
	if (x->runner > 0)
		kill(x->runner, SIGKILL);
}

static int64_t kill_cb(struct loop *loop, uint64_t id, void *arg)
{
	struct xen *x = arg;
	x->kill_timer = 0;
	if (x->runner > 0 && !x->finished) {
		log_warn("helper: the runner (pid %d) did not finish in time; killing it", (int)x->runner);
		xen_runner_kill(x);
	}
	return LOOP_TIMER_DONE;
}

void xen_runner_deadline(struct xen *x, int ms)
{
	if (x->runner > 0 && !x->kill_timer)
		loop_timer_add(x->h->loop, ms, kill_cb, x, &x->kill_timer);
}

static const struct xen_ops *ops_of(const struct helper *h)
{
	return h->cfg.role == REPL_PRIMARY ? &xen_pri_ops : &xen_sec_ops;
}

/* Collect the runner. Its control socket read EOF, or an empty datagram (which a
 * SOCK_SEQPACKET recv cannot tell from EOF): a live runner must not block our
 * loop in waitpid. Give an exiting one REAP_GRACE_MS, then SIGKILL it. */
#define REAP_GRACE_MS 200
static void reap(pid_t pid, int *status)
{
	struct timespec ms = { 0, 1000000 };
	for (int i = 0; i < REAP_GRACE_MS; i++) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return;
		nanosleep(&ms, NULL);
	}
	log_warn("helper: the runner (pid %d) closed its control channel but did not exit; "
		 "killing it", (int)pid);
	kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
}

/* The runner's end of the control channel closed: it exited or died. */
static void runner_gone(struct xen *x)
{
	struct helper *h = x->h;
	int status = 0;
	pid_t pid = x->runner;
	close_fd(x, &x->ctl);
	if (pid > 0)
		reap(pid, &status);
	x->runner = 0;
	x->call = 0;
	if (x->kill_timer)
		loop_timer_cancel(h->loop, x->kill_timer);
	x->kill_timer = 0;
	if (!x->finished) {
		char how[96];
		if (WIFSIGNALED(status))
			snprintf(how, sizeof(how), "was killed by signal %d", WTERMSIG(status));
		else
			snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
		helper_fail(h, REPL_LOCAL_ERROR,
			    "the libxenguest runner (pid %d) %s before it finished; see its log lines above",
			    (int)pid, how);
	}
	ops_of(h)->finished(h);
}

/* Control messages the runner may send only one at a time, and only its role's. */
static const char *misplaced(const struct xen *x, const struct xen_ctl *m)
{
	bool save = m->type >= XEN_CTL_SAVE_SUSPEND && m->type <= XEN_CTL_SAVE_LOGDIRTY;
	bool restore = (m->type >= XEN_CTL_RESTORE_CHECKPOINT &&
			m->type <= XEN_CTL_RESTORE_RESULTS) || m->type == XEN_CTL_RESTORE_LOGDIRTY;
	save = save || m->type == XEN_CTL_SAVE_RESUME_QEMU;
	if (x->finished)
		return "a message after FINISHED";
	if (m->type == XEN_CTL_FINISHED)
		return x->call ? "FINISHED while a callback waits for its answer" : NULL;
	if (x->call)
		return "a second callback before the first was answered";
	if (x->h->cfg.role == REPL_PRIMARY ? !save : !restore)
		return "a callback of the other role";
	return NULL;
}

static void ctl_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct xen *x = arg;
	struct helper *h = x->h;
	struct xen_ctl m;
	char why[200];
	while (x->ctl >= 0 && !h->done) {
		int rc = xen_ctl_recv(x->ctl, XEN_CTL_TO_HELPER, &m, why, sizeof(why));
		if (rc == 0)
			break;
		if (rc < 0 && rc != -EBADMSG) {
			runner_gone(x);
			break;
		}
		const char *bad = rc < 0 ? why : misplaced(x, &m);
		if (bad) {
			xen_runner_kill(x);
			helper_fail(h, REPL_LOCAL_ERROR,
				    "the libxenguest runner (pid %d) broke the control protocol: %s%s%s; stopped it",
				    (int)x->runner, rc < 0 ? "" : xen_ctl_name(m.type), rc < 0 ? "" : ": ",
				    bad);
			break;
		}
		if (m.type == XEN_CTL_FINISHED) {
			x->finished = true;
			x->fin = m;
			continue; /* its EOF follows: runner_gone() reports */
		}
		x->call = m.type;
		log_debug("helper: runner calls %s", xen_ctl_name(m.type));
		ops_of(h)->call(h, &m);
	}
	helper_settle(h);
}

static void io_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct helper *h = arg;
	ops_of(h)->io(h, events);
	helper_settle(h);
}

static void back_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct helper *h = arg;
	ops_of(h)->back(h, events);
	helper_settle(h);
}

/* In the child: the runner keeps its three ends on fds 3, 4, 5 and nothing else. */
static _Noreturn void runner_child(struct xen *x, int ctl, int io, int back, bool primary,
				   pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the helper */
	if (getppid() != parent)
		_exit(1); /* it died before the line above */
	int c = fcntl(ctl, F_DUPFD, 10), i = fcntl(io, F_DUPFD, 10), b = fcntl(back, F_DUPFD, 10);
	if (c < 0 || i < 0 || b < 0 || dup2(c, 3) < 0 || dup2(i, 4) < 0 || dup2(b, 5) < 0)
		_exit(2);
	close_range(6, ~0u, 0);
	const struct repl_start *st = &x->h->cfg;
	struct xen_runner_cfg cfg = { .primary = primary, .domid = st->vm_id, .ctl = 3, .io = 4,
				      .back = 5, .store_evtchn = st->xen_store_evtchn,
				      .console_evtchn = st->xen_console_evtchn,
				      .store_domid = st->xen_store_domid,
				      .console_domid = st->xen_console_domid };
	log_init(primary ? "colo-xen-runner-primary" : "colo-xen-runner-secondary", log_get_level());
	_exit(x->runner_fn(&cfg));
}

static int nonblock(int fd)
{
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ? -errno : 0;
}

int xen_runner_start(struct xen *x, bool primary)
{
	int c[2] = { -1, -1 }, i[2] = { -1, -1 }, b[2] = { -1, -1 }, rc = 0;
	struct loop *loop = x->h->loop;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, i) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b) < 0) {
		rc = -errno;
		goto out;
	}
	pid_t parent = getpid(), pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0)
		runner_child(x, c[1], i[1], b[1], primary, parent);
	x->runner = pid;
	x->ctl = c[0], x->io = i[0], x->back = b[0];
	c[0] = i[0] = b[0] = -1;
	rc = nonblock(x->ctl) ?: nonblock(x->io) ?: nonblock(x->back);
	if (!rc)
		rc = loop_add_fd(loop, x->ctl, EPOLLIN, ctl_cb, x);
	/* The primary reads libxc's stream and writes the back channel; the secondary
	 * the other way round. Write interest is armed by the role when it has data. */
	if (!rc)
		rc = loop_add_fd(loop, x->io, primary ? EPOLLIN : 0, io_cb, x->h);
	if (!rc)
		rc = loop_add_fd(loop, x->back, primary ? 0 : EPOLLIN, back_cb, x->h);
	if (!rc)
		log_info("helper: libxenguest runner pid %d started (%s of domain %u)", (int)pid,
			 primary ? "xc_domain_save" : "xc_domain_restore", x->h->cfg.vm_id);
out:
	for (int k = 0; k < 2; k++) {
		if (c[k] >= 0)
			close(c[k]);
		if (i[k] >= 0)
			close(i[k]);
		if (b[k] >= 0)
			close(b[k]);
	}
	return rc;
}

/* ---- main --------------------------------------------------------------------------------- */

static int open_engine(struct helper *h, struct xen *x)
{
	bool primary = h->cfg.role == REPL_PRIMARY;
	h->role = primary ? &xen_pri_role : &xen_sec_role;
	h->role_data = x;
	h->id = (struct stream_ident){ .backend = STREAM_BACKEND_XEN, .page_size = PAGE_SIZE_XEN,
				       .ram_size = h->cfg.ram_size,
				       .config_hash = h->cfg.config_hash };
	h->npages = h->cfg.ram_size / PAGE_SIZE_XEN;
	h->enc = stream_enc_new(&h->id, primary ? STREAM_PRIMARY : STREAM_SECONDARY);
	if (!h->enc)
		return -ENOMEM;
	snprintf(h->peer_name, sizeof(h->peer_name), "%s:%u", h->cfg.peer_host, h->cfg.peer_port);
	return ops_of(h)->init(h);
}

static void close_engine(struct helper *h, struct xen *x)
{
	if (x->runner > 0) {
		kill(x->runner, SIGKILL);
		waitpid(x->runner, NULL, 0);
	}
	if (h->loop && x->kill_timer)
		loop_timer_cancel(h->loop, x->kill_timer);
	if (h->role_data)
		ops_of(h)->free(h);
	close_fd(x, &x->ctl);
	close_fd(x, &x->io);
	close_fd(x, &x->back);
	helper_net_close(h);
	helper_net_free(h);
	stream_enc_free(h->enc);
	xen_blocks_free(&x->out);
	free(x->out.blk);
	if (h->loop)
		loop_del_fd(h->loop, h->agent);
	loop_free(h->loop);
}

int xen_helper_main(int sock, xen_runner_fn runner)
{
	struct helper h = { .agent = sock, .net = -1, .lfd = -1 };
	struct xen x = { .h = &h, .runner_fn = runner, .ctl = -1, .io = -1, .back = -1 };
	int rc;
	signal(SIGPIPE, SIG_IGN);
	if (helper_read_start(sock, &h.cfg) < 0)
		return 2;
	log_init(h.cfg.role == REPL_PRIMARY ? "colo-xen-helper-primary" : "colo-xen-helper-secondary",
		 log_get_level());
	if ((rc = helper_loop_init(&h)) < 0) {
		log_err("helper: cannot set up its event loop: %s", strerror(-rc));
		loop_free(h.loop);
		return 2;
	}
	if (h.cfg.backend != REPL_BACKEND_XEN)
		helper_fail(&h, REPL_LOCAL_ERROR,
			    "this is the Xen helper; START asked for backend %u (the QEMU helper is forked by the agent)",
			    h.cfg.backend);
	else if (h.cfg.role == REPL_SECONDARY && !h.cfg.xen_store_evtchn)
		helper_fail(&h, REPL_LOCAL_ERROR,
			    "START gives domain %u no xenstore event channel: libxc's restore would "
			    "set HVM_PARAM_STORE_EVTCHN to 0 at every checkpoint (colo-agent "
			    "--xen-store-evtchn, docs/xen.md)", h.cfg.vm_id);
	else if ((rc = open_engine(&h, &x)) < 0)
		helper_fail(&h, REPL_LOCAL_ERROR, "cannot start %s replication of domain %u: %s",
			    h.cfg.role == REPL_PRIMARY ? "primary" : "secondary", h.cfg.vm_id,
			    strerror(-rc));
	helper_settle(&h);
	if (!h.done)
		loop_run(h.loop);
	close_engine(&h, &x);
	return h.exit_code;
}
