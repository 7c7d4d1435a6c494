/* xen_sec.c - the Xen secondary's engine (docs/xen-helper.md §4): receive our
 * checkpoints, and feed a checkpoint's libxc bytes to xc_domain_restore only
 * after its END verified and its ACK went out (the commit rule of
 * docs/checkpoint-stream.md §7); relay libxc's back channel to the primary; turn
 * the runner's callbacks into agent requests.
 *
 * libxenguest (COLO) buffers a checkpoint's records until its CHECKPOINT record,
 * then calls restore.checkpoint, applies them, and runs restore_results,
 * postcopy (LOAD here), wait_checkpoint (our REQUEST) and suspend (SUSPEND),
 * then writes its dirty-pfn list to the back channel. A partial checkpoint of
 * ours never reaches it. When the link is lost or the agent fails over, every
 * verified checkpoint is still fed and loaded; then the runner's wait_checkpoint
 * answers 2 (libxc's BROKEN_CHANNEL) or its read fails, libxenguest returns
 * ("COLO Failover") and FAILOVER_READY or FAILED(BROKEN_CHANNEL) goes out.
 *
 * States: HELLO -> SYNCING -> LOADING -> PROTECTED -> (REQUEST, wait) SUSPENDING
 *   -> AWAITING -> LOADING ...; any -> GONE (link lost / failover).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "xen/xen_int.h"

#define BACK_CHUNK (64u << 10)
#define RUNNER_GRACE_MS 10000
#define MAX_QUEUED 4 /* verified non-PRECOPY checkpoints waiting for libxc: 2 by the
		      * protocol's timing (PRECOPY ones are bounded by MAX_QUEUED_BYTES) */
/* Back-pressure: stop reading the link while this much verified libxc stream waits
 * for libxenguest (the initial sync arrives faster than a restore applies it). */
#define MAX_QUEUED_BYTES (32u << 20)

/* A verified checkpoint, fed to the runner's io straight from the assembler's
 * record bodies (no copy): held until fed, then released. */
struct feed {
	uint64_t seq;
	bool precopy;
	struct stream_ckpt *ck; /* owns the bodies iov points into; NULL once fed */
	struct iovec *iov;      /* its XEN_LIBXC bodies, in order */
	size_t niov, cap, i, off; /* feeding iov[i] from off */
	size_t len;             /* libxc octets in all */
	uint8_t *dev;
	size_t dev_len;
	bool has_mark;
	uint64_t mark;
	uint64_t wire_bytes;
	struct feed *next;
};

struct xsec {
	struct stream_asm *as;
	bool hello, synced;
	struct feed *q;       /* verified, in order; q is being fed */
	size_t nq;            /* non-PRECOPY ones in q */
	size_t qbytes;        /* libxc octets in q */
	bool in_paused;       /* the link's EPOLLIN is off (qbytes over the bound) */
	struct feed *cur;     /* fed completely, non-PRECOPY: its LOAD is next */
	bool requested;       /* REQUEST for the next checkpoint arrived */
	uint64_t req;
	bool suspended;       /* our SUSPEND for `req` was answered: its checkpoint may come */
	uint64_t base, agent_seq;
	bool failover, gone;  /* the agent asked / the link is closed */
	bool results_logged;  /* restore_results of the first checkpoint logged */
	bool io_closed;       /* the runner closed its stream (it is ending) */
	uint64_t last_off;
	int load_fd;
	struct repl_stats stats;
};

static struct xsec *S(const struct helper *h)
{
	return xen_of(h)->role;
}

static void feed_done(struct xsec *s, struct feed *f)
{
	stream_asm_release(s->as, f->ck);
	f->ck = NULL;
	free(f->iov);
	f->iov = NULL;
	f->niov = f->cap = 0;
}

static void feed_free(struct xsec *s, struct feed *f)
{
	if (!f)
		return;
	feed_done(s, f);
	free(f->dev);
	free(f);
}

/* ---- feeding libxc -------------------------------------------------------------------- */

/* Read the link or not (hysteresis: pause above MAX_QUEUED_BYTES, resume at half).
 * helper_net.c re-arms EPOLLIN whenever it toggles EPOLLOUT, so a pause is
 * re-applied after every feed (xs_feed); the leak is one read budget. */
static void pace_link(struct helper *h, bool reapply)
{
	struct xsec *s = S(h);
	if (h->net < 0 || h->failing)
		return;
	size_t bound = s->in_paused ? MAX_QUEUED_BYTES / 2 : MAX_QUEUED_BYTES;
	bool pause = !s->gone && s->qbytes > bound;
	if (pause == s->in_paused && !(pause && reapply))
		return;
	if (pause && !s->in_paused)
		log_debug("helper: %zu octets wait for libxenguest; not reading the link", s->qbytes);
	s->in_paused = pause;
	loop_mod_fd(h->loop, h->net, (pause ? 0 : EPOLLIN) | (h->net_out_armed ? EPOLLOUT : 0));
}

static void end_of_input(struct helper *h)
{
	struct xen *x = xen_of(h);
	struct xsec *s = S(h);
	/* Nothing verified is left: libxc's next read fails and it fails over. */
	if (s->gone && !s->q && !s->cur && x->io >= 0)
		shutdown(x->io, SHUT_WR);
}

static void feed_io(struct helper *h)
{
	struct xen *x = xen_of(h);
	struct xsec *s = S(h);
	while (s->q && !s->cur && x->io >= 0 && !s->io_closed) {
		struct feed *f = s->q;
		if (f->i < f->niov && f->off == f->iov[f->i].iov_len) {
			f->i++;
			f->off = 0;
			continue;
		}
		if (f->i < f->niov) {
			const struct iovec *v = &f->iov[f->i];
			ssize_t n = write(x->io, (const uint8_t *)v->iov_base + f->off,
					  v->iov_len - f->off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n < 0 && (errno == EPIPE || errno == ECONNRESET) && x->runner > 0) {
				/* The runner is ending: its FINISHED (or death) says why
				 * (xs_finished); it gets the grace to say it. */
				loop_mod_fd(h->loop, x->io, 0);
				s->io_closed = true;
				xen_runner_deadline(x, RUNNER_GRACE_MS);
				return;
			}
			if (n <= 0) {
				loop_mod_fd(h->loop, x->io, 0);
				helper_fail(h, REPL_LOCAL_ERROR, "libxenguest stopped reading its stream: %s",
					    strerror(errno));
				return;
			}
			f->off += (size_t)n;
			continue;
		}
		s->q = f->next;
		s->qbytes -= f->len;
		if (!f->precopy)
			s->nq--;
		feed_done(s, f); /* fed: only the device state (copied) is still needed */
		if (f->precopy)
			feed_free(s, f);
		else
			s->cur = f; /* libxc reaches its CHECKPOINT record: restore.checkpoint */
	}
	if (x->io >= 0 && !s->io_closed)
		loop_mod_fd(h->loop, x->io, s->q && !s->cur ? EPOLLOUT : 0);
	pace_link(h, false);
	end_of_input(h);
}

static void xs_io(struct helper *h, uint32_t events)
{
	feed_io(h);
}

/* libxc's back channel -> XEN_LIBXC records to the primary. */
static void xs_back(struct helper *h, uint32_t events)
{
	struct xen *x = xen_of(h);
	if (x->back >= 0 && (h->net < 0 || h->failing)) {
		/* Nobody to send it to, but libxc may be blocked writing a large dirty
		 * list (failover from the suspended state): read and drop it until the
		 * runner closes its end, or its writev never returns. */
		uint8_t sink[BACK_CHUNK / 4];
		for (;;) {
			ssize_t n = read(x->back, sink, sizeof(sink));
			if (n > 0)
				continue;
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0 || errno != EAGAIN)
				loop_mod_fd(h->loop, x->back, 0); /* the runner's end closed */
			return;
		}
	}
	while (x->back >= 0 && h->net >= 0 && !h->failing) {
		uint8_t *buf = malloc(BACK_CHUNK);
		ssize_t n = buf ? read(x->back, buf, BACK_CHUNK) : -1;
		if (n <= 0) {
			free(buf);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0 || errno != EAGAIN)
				loop_mod_fd(h->loop, x->back, 0); /* the runner is exiting */
			return;
		}
		if (xen_blocks_add(&x->out, buf) < 0 || stream_enc_xen_libxc(h->enc, buf, (size_t)n) < 0) {
			free(buf);
			return helper_fail(h, REPL_LOCAL_ERROR, "cannot relay libxc's back channel");
		}
		xen_net_send(x);
	}
}

/* ---- received checkpoints --------------------------------------------------------------- */

static int add_iov(void *arg, const uint8_t *data, size_t len)
{
	struct feed *f = arg;
	if (!len)
		return 0;
	if (f->niov == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		struct iovec *n = realloc(f->iov, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		f->iov = n;
		f->cap = cap;
	}
	f->iov[f->niov++] = (struct iovec){ .iov_base = (void *)data, .iov_len = len };
	f->len += len;
	return 0;
}

/* Takes ck (also on failure). */
static struct feed *make_feed(struct helper *h, struct stream_ckpt *ck)
{
	struct xsec *s = S(h);
	struct feed *f = calloc(1, sizeof(*f));
	size_t dev_len = 0;
	const void *dev = stream_ckpt_device_state(ck, &dev_len);
	if (!f) {
		stream_asm_release(s->as, ck);
		return NULL;
	}
	f->ck = ck;
	if (stream_ckpt_foreach_xen(ck, add_iov, f))
		goto fail;
	f->seq = stream_ckpt_seq(ck);
	f->precopy = stream_ckpt_flags(ck) & STREAM_CKPT_PRECOPY;
	f->has_mark = stream_ckpt_input_mark(ck, &f->mark);
	if (dev_len) {
		f->dev = malloc(dev_len);
		if (!f->dev)
			goto fail;
		memcpy(f->dev, dev, dev_len);
		f->dev_len = dev_len;
	}
	uint64_t off = stream_dec_offset(stream_asm_dec(s->as));
	f->wire_bytes = off - s->last_off;
	s->last_off = off;
	return f;
fail:
	feed_free(s, f);
	return NULL;
}

/* What the stream grammar cannot check: may this checkpoint be applied now? */
static const char *misplaced(const struct xsec *s, const struct stream_ckpt *ck)
{
	bool precopy = stream_ckpt_flags(ck) & STREAM_CKPT_PRECOPY;
	size_t dev_len;
	if (!precopy && !stream_ckpt_device_state(ck, &dev_len))
		return "a checkpoint without DEVICE_STATE";
	if (!precopy && s->nq >= MAX_QUEUED)
		return "a checkpoint while libxenguest still holds too many";
	if (!s->synced && !s->base)
		return NULL; /* the initial sync: PRECOPY passes, then the final one */
	if (precopy)
		return "a PRECOPY checkpoint after the initial sync";
	if (!s->suspended || stream_ckpt_seq(ck) != s->req)
		return "a checkpoint without CHECKPOINT_REQUEST and our stopped VM";
	return NULL;
}

static void enqueue(struct helper *h, struct feed *f)
{
	struct xsec *s = S(h);
	struct feed **t = &s->q;
	while (*t)
		t = &(*t)->next;
	*t = f;
	if (!f->precopy)
		s->nq++;
	s->qbytes += f->len;
	feed_io(h);
}

static void checkpoint(struct helper *h, struct stream_ckpt *ck)
{
	struct xsec *s = S(h);
	uint64_t seq = stream_ckpt_seq(ck);
	const char *bad = misplaced(s, ck);
	if (bad) {
		stream_ckpt_free(ck);
		helper_reject(h, REPL_CORRUPT_STREAM, STREAM_ERR_UNEXPECTED,
			      "checkpoint %llu from %s is %s; nothing applied", (unsigned long long)seq,
			      h->peer_name, bad);
		return;
	}
	struct feed *f = make_feed(h, ck);
	if (!f) {
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_NOMEM,
			      "out of memory holding checkpoint %llu", (unsigned long long)seq);
		return;
	}
	/* Verified: acknowledged, and from here on applied whatever happens. */
	if (stream_enc_ack(h->enc, seq) == 0)
		xen_net_send(xen_of(h));
	if (!f->precopy) {
		if (!s->base)
			s->base = seq;
		s->suspended = s->requested = false;
	}
	enqueue(h, f);
}

static void request(struct helper *h, uint64_t seq)
{
	struct xsec *s = S(h);
	struct xen *x = xen_of(h);
	if (!s->base) {
		helper_reject(h, REPL_CORRUPT_STREAM, STREAM_ERR_UNEXPECTED,
			      "CHECKPOINT_REQUEST %llu from %s before the initial sync finished",
			      (unsigned long long)seq, h->peer_name);
		return;
	}
	s->requested = true;
	s->req = seq;
	if (x->call == XEN_CTL_RESTORE_WAIT)
		xen_reply(x, 1);
}

static void hello(struct helper *h)
{
	struct xsec *s = S(h);
	s->hello = true;
	helper_send_empty(h, REPL_MSG_SYNCING);
	int rc = xen_runner_start(xen_of(h), false);
	if (rc < 0)
		helper_fail(h, REPL_LOCAL_ERROR, "cannot start the runner: %s", strerror(-rc));
}

static void xs_feed(struct helper *h, const uint8_t *buf, size_t len)
{
	struct xsec *s = S(h);
	size_t pos = 0, used;
	while (pos < len && !h->failing && !s->gone) {
		struct stream_rec rec;
		int rc = stream_asm_feed(s->as, buf + pos, len - pos, &used, &rec);
		pos += used;
		if (rc < 0)
			return helper_stream_error(h, stream_asm_dec(s->as), rc);
		if (!s->hello && stream_dec_offset(stream_asm_dec(s->as)) >= HELPER_STREAM_HDR_LEN)
			hello(h);
		if (rc == STREAM_ASM_CHECKPOINT)
			checkpoint(h, stream_asm_take(s->as));
		else if (rc == STREAM_ASM_RECORD && rec.type == STREAM_REC_REQUEST)
			request(h, rec.seq);
		else if (rc == STREAM_ASM_RECORD && rec.type == STREAM_REC_ERROR)
			helper_peer_error(h, rec.error.code, rec.error.reason);
	}
	pace_link(h, true);
}

/* ---- the runner's callbacks --------------------------------------------------------------- */

static int load_fd(struct xsec *s, const struct feed *f)
{
	char path[64];
	s->load_fd = memfd_create("colo-xen-device-state", MFD_CLOEXEC);
	if (s->load_fd < 0)
		return -errno;
	for (size_t off = 0; off < f->dev_len;) {
		ssize_t n = pwrite(s->load_fd, f->dev + off, f->dev_len - off, (off_t)off);
		if (n < 0 && errno != EINTR)
			return -errno;
		off += n > 0 ? (size_t)n : 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->load_fd);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void ask_load(struct helper *h)
{
	struct xsec *s = S(h);
	struct feed *f = s->cur;
	struct wr w;
	s->agent_seq = f->seq - s->base;
	int fd = load_fd(s, f);
	if (fd < 0) {
		helper_fail(h, REPL_LOCAL_ERROR, "cannot pass checkpoint %llu's device state: %s",
			    (unsigned long long)s->agent_seq, strerror(-fd));
		return xen_reply(xen_of(h), 0);
	}
	memset(&s->stats, 0, sizeof(s->stats));
	s->stats.seq = s->agent_seq;
	s->stats.device_state_bytes = f->dev_len;
	s->stats.bytes_sent = f->wire_bytes;
	wr_init(&w);
	repl_msg_put_load(&w, s->agent_seq, f->has_mark, f->mark);
	helper_ask(h, OWE_LOAD, &w, fd);
	wr_free(&w);
	close(fd);
}

static void ask_suspend(struct helper *h)
{
	struct xsec *s = S(h);
	struct wr w;
	wr_init(&w);
	repl_msg_put_seq(&w, REPL_MSG_SUSPEND, s->req - s->base);
	helper_ask(h, OWE_SUSPEND, &w, -1);
	wr_free(&w);
}

static void wait_ckpt(struct helper *h)
{
	struct xsec *s = S(h);
	if (s->gone)
		return xen_reply(xen_of(h), 2); /* BROKEN_CHANNEL: libxenguest fails over */
	if (s->requested)
		xen_reply(xen_of(h), 1);
}

static void ask_logdirty(struct helper *h)
{
	struct wr w;
	wr_init(&w);
	repl_msg_put_logdirty(&w, true);
	helper_ask(h, OWE_LOGDIRTY, &w, -1);
	wr_free(&w);
}

static void xs_call(struct helper *h, const struct xen_ctl *m)
{
	struct xsec *s = S(h);
	struct xen *x = xen_of(h);
	const char *bad = NULL;
	switch (m->type) {
	case XEN_CTL_RESTORE_CHECKPOINT:
		/* Commit rule: only a verified checkpoint was fed, so this is one, even
		 * when the link has gone meanwhile. */
		if (!s->cur)
			bad = "libxenguest found a CHECKPOINT record where our stream had none";
		else
			return xen_reply(x, 1);
		break;
	case XEN_CTL_RESTORE_RESULTS:
		/* libxc cleared both rings, reseeded the grant table with the store and
		 * console domains, and set the event-channel parameters. Nothing else in
		 * the domain changed; the first time, xenstored must learn the ring. */
		if (!s->results_logged)
			log_info("helper: domain %u: xenstore ring at gfn 0x%llx (event channel %u), "
				 "console ring at gfn 0x%llx (event channel %u). If the toolstack did "
				 "not introduce the domain to xenstored yet, it must now: "
				 "xs_introduce_domain(%u, 0x%llx, %u) (docs/xen.md)",
				 h->cfg.vm_id, (unsigned long long)m->results.store_gfn,
				 h->cfg.xen_store_evtchn, (unsigned long long)m->results.console_gfn,
				 h->cfg.xen_console_evtchn, h->cfg.vm_id,
				 (unsigned long long)m->results.store_gfn, h->cfg.xen_store_evtchn);
		s->results_logged = true;
		return xen_reply(x, 0);
	case XEN_CTL_RESTORE_POSTCOPY:
		if (!s->cur)
			bad = "postcopy without a checkpoint";
		else
			return ask_load(h);
		break;
	case XEN_CTL_RESTORE_WAIT:
		return wait_ckpt(h);
	case XEN_CTL_RESTORE_LOGDIRTY:
		/* The runner's first postcopy, before it unpauses the domain: the device
		 * model must log its writes, or libxc's dirty-pfn list misses them. */
		if (m->logdirty.domid != h->cfg.vm_id || !m->logdirty.enable)
			bad = "log-dirty for another domain, or off";
		else if (h->failing && h->fail_why == REPL_LOCAL_ERROR)
			return xen_reply(x, -1);
		else
			return ask_logdirty(h);
		break;
	case XEN_CTL_RESTORE_SUSPEND:
		if (s->gone)
			return xen_reply(x, 2);
		if (!s->requested)
			bad = "suspend without a CHECKPOINT_REQUEST";
		else
			return ask_suspend(h);
		break;
	}
	xen_runner_kill(x);
	helper_fail(h, REPL_LOCAL_ERROR, "the libxenguest runner called %s out of turn: %s; stopped it",
		    xen_ctl_name(m->type), bad ? bad : "?");
}

/* ---- the agent's answers ---------------------------------------------------------------- */

static void loaded(struct helper *h, const struct repl_msg *m)
{
	struct xsec *s = S(h);
	struct xen *x = xen_of(h);
	close(s->load_fd);
	s->load_fd = -1;
	feed_free(s, s->cur);
	s->cur = NULL;
	if (m->done.err) {
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_APPLY_FAILED,
			      "the agent could not load checkpoint %llu's device state: %s; this secondary is no longer a replica",
			      (unsigned long long)s->agent_seq, strerror(-m->done.err));
		xen_runner_kill(x);
		return xen_reply(x, 0);
	}
	s->synced = true;
	helper_send_stats(h, &s->stats);
	xen_reply(x, 1);
	feed_io(h); /* a next verified checkpoint may wait */
}

static void suspended(struct helper *h, const struct repl_msg *m)
{
	struct xsec *s = S(h);
	struct xen *x = xen_of(h);
	if (m->done.err) {
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_ABORTED,
			      "the agent could not stop the secondary VM: %s", strerror(-m->done.err));
		xen_runner_kill(x);
		return xen_reply(x, 0);
	}
	s->suspended = true;
	xen_reply(x, s->gone ? 2 : 1); /* then libxc sends its dirty list: xs_back() */
}

/* The link is closed (lost, or failover): feed what is verified, then let
 * libxenguest fail over. */
static void link_gone(struct helper *h)
{
	struct xsec *s = S(h);
	struct xen *x = xen_of(h);
	s->gone = true;
	if (x->call == XEN_CTL_RESTORE_WAIT || (x->call == XEN_CTL_RESTORE_SUSPEND &&
						h->owed == OWE_NONE))
		xen_reply(x, 2);
	feed_io(h);
	if (x->runner <= 0 && !s->hello)
		return; /* no runner yet: nothing to finish */
	xen_runner_deadline(x, RUNNER_GRACE_MS);
}

static void failover(struct helper *h)
{
	struct xsec *s = S(h);
	if (!s->synced && !s->cur) {
		helper_fail(h, REPL_LOCAL_ERROR,
			    "failover requested before the initial sync completed: this secondary has no consistent VM");
		return;
	}
	s->failover = true;
	if (s->gone)
		return; /* already winding down; FAILOVER_READY when the runner is done */
	helper_net_drain(h); /* the commit rule: bytes still queued may complete one */
	helper_net_close(h);
	link_gone(h);
}

static void xs_agent(struct helper *h, const struct repl_msg *m)
{
	switch (m->type) {
	case REPL_MSG_LOAD_DONE:
		return loaded(h, m);
	case REPL_MSG_SUSPEND_DONE:
		return suspended(h, m);
	case REPL_MSG_FAILOVER:
		return failover(h);
	case REPL_MSG_LOGDIRTY_DONE:
		if (m->done.err)
			log_err("helper: the agent could not start the device model's dirty log: %s",
				strerror(-m->done.err));
		return xen_reply(xen_of(h), m->done.err ? -1 : 0);
	case REPL_MSG_STOPPED:
		return;
	default:
		log_err("helper: %s ignored: not for a secondary (agent-side bug)", repl_msg_name(m->type));
	}
}

/* ---- the end ------------------------------------------------------------------------------ */

static void xs_eof(struct helper *h)
{
	struct xsec *s = S(h);
	int rc = stream_asm_eof(s->as); /* frees a partial checkpoint: never fed */
	helper_fail(h, REPL_BROKEN_CHANNEL, "the primary %s closed the replication link%s%s%s",
		    h->peer_name, rc ? ": " : "", rc ? stream_dec_reason(stream_asm_dec(s->as)) : "",
		    rc ? "; the partial checkpoint is discarded, nothing of it applied" : "");
}

static void xs_failing(struct helper *h)
{
	struct xsec *s = S(h);
	if (!s)
		return;
	if (h->fail_why == REPL_LOCAL_ERROR) {
		xen_runner_kill(xen_of(h)); /* no valid replica: nothing to finish */
		return;
	}
	link_gone(h);
}

/* The runner is gone. Only a libxenguest that failed over (returned 0 after the
 * link closed) with every verified checkpoint applied leaves a VM to run. */
static void xs_finished(struct helper *h)
{
	struct xen *x = xen_of(h);
	struct xsec *s = S(h);
	char why[200];
	if (x->finished && x->fin.fin.rc == 0 && s->gone && !s->cur && !s->q) {
		log_info("helper: libxenguest failed over; checkpoint %llu is the last applied",
			 (unsigned long long)s->agent_seq);
		if (!h->failing && s->failover) {
			helper_send_empty(h, REPL_MSG_FAILOVER_READY);
			h->done = true;
			loop_stop(h->loop);
		}
		return;
	}
	if (x->finished && x->fin.fin.flags & XEN_CTL_FIN_REFUSED)
		snprintf(why, sizeof(why),
			 "domain %u is already built (its memory is populated): libxc's restore needs a "
			 "domain created without it, see docs/xen.md", h->cfg.vm_id);
	else if (s->cur || s->q)
		snprintf(why, sizeof(why), "libxenguest ended with verified checkpoints not applied");
	else
		snprintf(why, sizeof(why), "libxenguest's restore of domain %u ended (rc %d: %s)",
			 h->cfg.vm_id, x->fin.fin.rc, strerror((int)x->fin.fin.err));
	if (!h->failing) {
		helper_fail(h, REPL_LOCAL_ERROR, "%s; this secondary has no consistent VM", why);
	} else if (h->fail_why != REPL_LOCAL_ERROR) {
		/* The link went first, but the VM did not survive it. */
		size_t n = strlen(h->fail_reason);
		snprintf(h->fail_reason + n, sizeof(h->fail_reason) - n,
			 "; then %s: this secondary has no consistent VM", why);
		h->fail_why = REPL_LOCAL_ERROR;
		log_err("helper: %s: this secondary has no consistent VM", why);
	}
}

static bool xs_busy(const struct helper *h)
{
	return xen_of(h)->runner > 0;
}

static bool xs_failover_requested(const struct helper *h)
{
	return S(h) && S(h)->failover;
}

static void xs_failover_ready(struct helper *h)
{
	helper_net_close(h);
	log_info("helper: failover: checkpoint %llu is the last applied; the VM may run",
		 (unsigned long long)S(h)->agent_seq);
	helper_send_empty(h, REPL_MSG_FAILOVER_READY);
	h->done = true;
	loop_stop(h->loop);
}

static void xs_up(struct helper *h)
{
}

static void xs_drained(struct helper *h)
{
	xen_blocks_free(&xen_of(h)->out);
}

static int xs_init(struct helper *h)
{
	struct xen *x = xen_of(h);
	struct xsec *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	x->role = s;
	s->load_fd = -1;
	s->as = stream_asm_new(&h->id);
	if (!s->as)
		return -ENOMEM;
	return helper_net_listen(h);
}

static void xs_free(struct helper *h)
{
	struct xsec *s = S(h);
	if (!s)
		return;
	while (s->q) {
		struct feed *f = s->q;
		s->q = f->next;
		feed_free(s, f);
	}
	feed_free(s, s->cur);
	stream_asm_free(s->as);
	if (s->load_fd >= 0)
		close(s->load_fd);
	free(s);
	xen_of(h)->role = NULL;
}

const struct helper_role xen_sec_role = {
	.up = xs_up, .feed = xs_feed, .eof = xs_eof, .drained = xs_drained,
	.agent = xs_agent, .busy = xs_busy, .failover_requested = xs_failover_requested,
	.failover_ready = xs_failover_ready, .failing = xs_failing,
};

const struct xen_ops xen_sec_ops = {
	.init = xs_init, .free = xs_free, .call = xs_call, .finished = xs_finished,
	.io = xs_io, .back = xs_back,
};
