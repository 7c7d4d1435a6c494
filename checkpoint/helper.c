/* helper.c - the replication helper's main (docs/helper-protocol.md): read START,
 * open what the role needs, run our own loop, and apply the failure rules: the
 * first failure wins, the link is closed at once, FAILED goes to the agent only when
 * no answer is owed (so the agent never owes a dead replicator an answer). Every
 * loop callback ends in helper_settle(), the one place FAILED is sent from. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "checkpoint/helper_int.h"
#include "checkpoint/repl_int.h"
#include "lib/log.h"
#include "lib/loop.h"

static const char *const class_names[] = { "broken channel", "corrupt stream", "refused",
					   "local error" };

uint64_t helper_us(uint64_t from_ns, uint64_t to_ns)
{
	return to_ns > from_ns ? (to_ns - from_ns) / 1000 : 0;
}

void helper_send(struct helper *h, const struct wr *w, int fd)
{
	int rc = repl_msg_send(h->agent, w, fd, 0);
	if (rc < 0 && !h->done) {
		/* The agent is gone: nobody to report to. */
		log_warn("helper: cannot write to the agent (%s); exiting", strerror(-rc));
		h->done = true;
		loop_stop(h->loop);
	}
}

void helper_send_empty(struct helper *h, uint16_t type)
{
	struct wr w;
	wr_init(&w);
	repl_msg_put_empty(&w, type);
	helper_send(h, &w, -1);
	wr_free(&w);
}

void helper_send_seq(struct helper *h, uint16_t type, uint64_t seq, int fd)
{
	struct wr w;
	wr_init(&w);
	repl_msg_put_seq(&w, type, seq);
	helper_send(h, &w, fd);
	wr_free(&w);
}

void helper_send_stats(struct helper *h, const struct repl_stats *st)
{
	struct wr w;
	wr_init(&w);
	repl_msg_put_stats(&w, st);
	helper_send(h, &w, -1);
	wr_free(&w);
}

void helper_ask(struct helper *h, enum owed what, const struct wr *w, int fd)
{
	h->owed = what;
	helper_send(h, w, fd);
}

void helper_fail(struct helper *h, enum repl_failure why, const char *fmt, ...)
{
	va_list ap;
	if (h->failing || h->done) /* done: the agent left; nobody to tell */
		return;
	h->failing = true;
	h->fail_why = why;
	va_start(ap, fmt);
	vsnprintf(h->fail_reason, sizeof(h->fail_reason), fmt, ap);
	va_end(ap);
	log_err("helper: replication stops (%s): %s", class_names[why], h->fail_reason);
	helper_net_close(h);
	if (h->role)
		h->role->failing(h);
}

void helper_reject(struct helper *h, enum repl_failure why, uint32_t code, const char *fmt, ...)
{
	char reason[REPL_REASON_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	/* Tell the peer why before closing: it logs our reason instead of guessing. */
	if (!h->failing && h->net >= 0 && stream_enc_error(h->enc, code, reason) == 0)
		helper_net_flush_blocking(h, 1000);
	helper_fail(h, why, "%s", reason);
}

void helper_stream_error(struct helper *h, const struct stream_dec *d, int rc)
{
	enum stream_err code = stream_dec_code(d);
	const char *reason = stream_dec_reason(d);
	if (rc == -EPIPE) {
		helper_fail(h, REPL_BROKEN_CHANNEL, "the stream from %s ended early: %s", h->peer_name,
			    reason);
	} else if (rc == -ENOMEM) {
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_NOMEM, "out of memory receiving from %s: %s",
			      h->peer_name, reason);
	} else if (code == STREAM_ERR_IDENTITY || code == STREAM_ERR_BAD_MAGIC ||
		   code == STREAM_ERR_BAD_VERSION) {
		helper_reject(h, REPL_REFUSED, code, "refusing peer %s: %s", h->peer_name, reason);
	} else {
		helper_reject(h, REPL_CORRUPT_STREAM, code,
			      "corrupt stream from %s (%s): %s; nothing of it applied", h->peer_name,
			      stream_err_name(code), reason);
	}
}

void helper_peer_error(struct helper *h, uint32_t code, const char *reason)
{
	enum repl_failure why = REPL_CORRUPT_STREAM;
	if (code == STREAM_ERR_IDENTITY || code == STREAM_ERR_BAD_MAGIC ||
	    code == STREAM_ERR_BAD_VERSION || code == STREAM_ERR_ABORTED)
		why = REPL_REFUSED;
	else if (code == STREAM_ERR_APPLY_FAILED)
		why = REPL_BROKEN_CHANNEL; /* the replica is gone; the primary runs on */
	helper_fail(h, why, "peer %s gave up with ERROR %s (%u): %s", h->peer_name,
		    stream_err_name(code), code, reason);
}

/* Secondary after repl_failover(): losing the link, or garbage from a dying primary,
 * leaves the last applied checkpoint intact; only a local failure (a LOAD that
 * failed) leaves no VM to fail over to. */
static bool failover_wanted(const struct helper *h)
{
	bool asked = h->role ? h->role->failover_requested(h) : h->sec && sec_failover_requested(h);
	return asked && h->fail_why != REPL_LOCAL_ERROR;
}

int helper_open_vm(struct helper *h, enum ram_access access)
{
	int rc = ram_map_open(h->cfg.ram_path, h->cfg.ram_size, access, &h->ram);
	if (!rc)
		rc = dirty_open((pid_t)h->cfg.vm_id, h->cfg.ram_path, h->cfg.ram_size, &h->trk);
	if (!rc)
		rc = dirty_set_new(h->npages, &h->dirty);
	return rc;
}

void helper_settle(struct helper *h)
{
	struct wr w;
	if (!h->failing || h->done || h->owed != OWE_NONE || (h->role && h->role->busy(h)))
		return;
	if (failover_wanted(h)) {
		if (h->role)
			h->role->failover_ready(h);
		else
			sec_failover_ready(h);
		return;
	}
	wr_init(&w);
	repl_msg_put_failed(&w, h->fail_why, h->fail_reason);
	helper_send(h, &w, -1);
	wr_free(&w);
	h->done = true;
	h->exit_code = 1;
	loop_stop(h->loop);
}

/* ---- the agent's messages --------------------------------------------------------- */

static const enum owed answer_of[] = {
	[REPL_MSG_SUSPEND_DONE] = OWE_SUSPEND,
	[REPL_MSG_RESUME_DONE] = OWE_RESUME,
	[REPL_MSG_LOAD_DONE] = OWE_LOAD,
	[REPL_MSG_LOGDIRTY_DONE] = OWE_LOGDIRTY,
};

/* The agent broke the protocol: a bug on our side of the trust boundary. */
static void agent_violation(struct helper *h, const char *what)
{
	log_err("helper: protocol violation by the agent: %s; exiting", what);
	h->exit_code = 3;
	h->done = true;
	loop_stop(h->loop);
}

static void agent_message(struct helper *h, struct repl_msg *m)
{
	char what[160];
	if (m->fd >= 0) { /* no agent message carries one; the parser made sure */
		close(m->fd);
		m->fd = -1;
	}
	if (m->type == REPL_MSG_START)
		return agent_violation(h, "a second START");
	if (m->type == REPL_MSG_STOPPED && h->owed != OWE_SUSPEND)
		return agent_violation(h, "STOPPED outside a suspend");
	if (m->type < sizeof(answer_of) / sizeof(answer_of[0]) && answer_of[m->type] != OWE_NONE) {
		if (h->owed != answer_of[m->type]) {
			snprintf(what, sizeof(what), "%s without the matching request",
				 repl_msg_name(m->type));
			return agent_violation(h, what);
		}
		h->owed = OWE_NONE;
	} else if (h->failing && m->type != REPL_MSG_FAILOVER) {
		return; /* CHECKPOINT racing with our FAILED: it is on its way */
	}
	if (h->role)
		h->role->agent(h, m);
	else if (h->pri)
		pri_agent(h, m);
	else
		sec_agent(h, m);
}

static void agent_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct helper *h = arg;
	struct repl_msg m;
	char why[200];
	int rc = repl_msg_recv(fd, REPL_TO_HELPER, &m, why, sizeof(why));
	if (rc == -EPIPE) {
		if (!h->done)
			log_info("helper: the agent closed the channel; exiting");
		h->done = true;
		loop_stop(loop);
	} else if (rc == -EBADMSG) {
		agent_violation(h, why);
	} else if (rc < 0) {
		log_err("helper: reading from the agent: %s; exiting", strerror(-rc));
		h->done = true;
		loop_stop(loop);
	} else if (rc == 1 && !h->done) {
		agent_message(h, &m);
	} else if (rc == 1 && m.fd >= 0) {
		close(m.fd);
	}
	helper_settle(h);
}

/* ---- main ------------------------------------------------------------------------- */

int helper_read_start(int sock, struct repl_start *cfg)
{
	struct repl_msg m;
	char why[200];
	int rc = repl_msg_recv(sock, REPL_TO_HELPER, &m, why, sizeof(why));
	if (rc == 1 && m.type == REPL_MSG_START) {
		*cfg = m.start;
		return 0;
	}
	if (rc == 1 && m.fd >= 0)
		close(m.fd);
	log_err("helper: expected START from the agent, got %s; exiting",
		rc == 1 ? repl_msg_name(m.type) : rc == -EBADMSG ? why : strerror(-rc));
	return -EPROTO;
}

static int helper_open(struct helper *h)
{
	h->id = (struct stream_ident){ .backend = STREAM_BACKEND_QEMU, .page_size = RAM_PAGE_SIZE,
				       .ram_size = h->cfg.ram_size,
				       .config_hash = h->cfg.config_hash };
	h->npages = h->cfg.ram_size / RAM_PAGE_SIZE;
	h->enc = stream_enc_new(&h->id, h->cfg.role == REPL_PRIMARY ? STREAM_PRIMARY : STREAM_SECONDARY);
	if (!h->enc)
		return -ENOMEM;
	snprintf(h->peer_name, sizeof(h->peer_name), "%s:%u", h->cfg.peer_host, h->cfg.peer_port);
	return h->cfg.role == REPL_PRIMARY ? pri_init(h) : sec_init(h);
}

static void helper_close(struct helper *h)
{
	if (h->pri)
		pri_free(h);
	if (h->sec)
		sec_free(h);
	helper_net_close(h);
	helper_net_free(h);
	stream_enc_free(h->enc);
	dirty_set_free(h->dirty);
	dirty_close(h->trk);
	ram_map_close(h->ram);
	if (h->loop)
		loop_del_fd(h->loop, h->agent);
	loop_free(h->loop);
}

int helper_loop_init(struct helper *h)
{
	int rc = loop_new(&h->loop);
	if (!rc)
		rc = loop_add_fd(h->loop, h->agent, EPOLLIN, agent_cb, h);
	return rc;
}

static int run(struct helper *h)
{
	int rc = helper_loop_init(h);
	if (rc) {
		log_err("helper: cannot set up its event loop: %s", strerror(-rc));
		return 2;
	}
	if (h->cfg.backend != REPL_BACKEND_QEMU)
		helper_fail(h, REPL_LOCAL_ERROR, "the Xen backend is not built into this helper");
	else if ((rc = helper_open(h)) < 0)
		helper_fail(h, REPL_LOCAL_ERROR, "cannot start %s replication of %s: %s (see the lines above)",
			    h->cfg.role == REPL_PRIMARY ? "primary" : "secondary", h->cfg.ram_path,
			    strerror(-rc));
	helper_settle(h);
	if (!h->done)
		loop_run(h->loop);
	return h->exit_code;
}

int repl_helper_main(int sock)
{
	struct helper h = { .agent = sock, .net = -1, .lfd = -1 };
	if (helper_read_start(sock, &h.cfg) < 0)
		return 2;
	/* Both helpers of a test or a demo log to one terminal: say which is which. */
	log_init(h.cfg.role == REPL_PRIMARY ? "colo-helper-primary" : "colo-helper-secondary",
		 log_get_level());
	int code = run(&h);
	helper_close(&h);
	return code;
}
