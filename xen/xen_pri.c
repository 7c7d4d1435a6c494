/* xen_pri.c - the Xen primary's engine (docs/xen-helper.md §3): relay the bytes
 * libxenguest's xc_domain_save writes into XEN_LIBXC records of our checkpoints,
 * relay the secondary's back channel to libxc, and turn the runner's callbacks
 * into agent requests.
 *
 * Checkpoints on the link: before the first suspend, libxc's live pre-copy passes
 * go out as PRECOPY checkpoints of at most PRECOPY_BYTES; from the suspend on,
 * everything libxc writes up to its CHECKPOINT record belongs to one ordinary
 * checkpoint, which the save.checkpoint callback closes with DEVICE_STATE,
 * INPUT_MARK and END, then waits for its ACK. libxc bytes are encoded as they are
 * read, so a checkpoint streams while libxc is still producing it.
 *
 * States (one setter, set_state):
 *   HELLO -> SYNCING -> (suspend) SUSPENDING -> CAPTURING -> (checkpoint) ACKING
 *   -> (postcopy) RESUMING -> PROTECTED -> (agent CHECKPOINT + wait) REQUESTED
 *   -> SUSPENDING ...;  any -> STOPPING (failure: wait for the runner, resume the VM)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "xen/xen_int.h"

#define READ_CHUNK (256u << 10)
#define PRECOPY_BYTES (8u << 20)
#define MAX_PENDING (32u << 20) /* stop reading libxc while this much waits for the link */
#define RUNNER_GRACE_MS 10000
#define MAX_BACK (64u << 20) /* unread back-channel octets held for libxc */

enum pst { P_HELLO, P_SYNCING, P_SUSPENDING, P_CAPTURING, P_ACKING, P_RESUMING, P_PROTECTED,
	   P_REQUESTED, P_STOPPING };
static const char *const pst_names[] = { "hello", "syncing", "suspending", "capturing", "acking",
					 "resuming", "protected", "requested", "stopping" };

struct xpri {
	enum pst st;
	struct stream_dec *dec;
	uint64_t seq;        /* stream seq of the last BEGIN */
	bool open;           /* BEGIN sent, END not yet */
	bool open_precopy;
	uint64_t open_bytes;
	uint64_t base;       /* stream seq of the initial sync's final checkpoint */
	uint64_t agent_seq;
	bool synced;
	bool ckpt_wanted;    /* the agent's CHECKPOINT, not yet taken by wait_checkpoint */
	bool vm_stopped;     /* the agent stopped the VM and has not resumed it */
	bool acked;          /* the open checkpoint's ACK arrived */
	bool io_paused;
	int save_fd;         /* memfd with the saved device state */
	void *dev;
	size_t dev_len;
	uint64_t mark;
	uint8_t *back_buf;   /* the secondary's back-channel bytes for libxc */
	size_t back_len, back_off, back_cap;
	uint64_t t_suspend, t_end;
	struct repl_stats stats;
	uint64_t precopy_ckpts, precopy_bytes; /* the initial sync's live passes */
};

static struct xpri *P(const struct helper *h)
{
	return xen_of(h)->role;
}

static void set_state(struct helper *h, enum pst to, const char *why)
{
	struct xpri *p = P(h);
	log_debug("helper: xen primary: %s -> %s (%s)", pst_names[p->st], pst_names[to], why);
	p->st = to;
}

static void drop_dev(struct xpri *p)
{
	if (p->dev)
		munmap(p->dev, p->dev_len);
	p->dev = NULL;
	p->dev_len = 0;
	if (p->save_fd >= 0)
		close(p->save_fd);
	p->save_fd = -1;
}

/* ---- libxc's stream -> our checkpoints ------------------------------------------------ */

static void pause_io(struct helper *h, bool pause)
{
	struct xen *x = xen_of(h);
	struct xpri *p = P(h);
	if (p->io_paused == pause || x->io < 0)
		return;
	p->io_paused = pause;
	loop_mod_fd(h->loop, x->io, pause ? 0 : EPOLLIN);
}

static int open_ckpt(struct helper *h)
{
	struct xpri *p = P(h);
	bool precopy = !p->synced && p->st == P_SYNCING;
	int rc = stream_enc_begin(h->enc, p->seq + 1, precopy ? STREAM_CKPT_PRECOPY : 0);
	if (rc)
		return rc;
	p->seq++;
	p->open = true;
	p->open_precopy = precopy;
	p->open_bytes = 0;
	return 0;
}

static int close_ckpt(struct helper *h)
{
	struct xpri *p = P(h);
	p->open = false;
	if (p->open_precopy) {
		p->precopy_ckpts++;
		p->precopy_bytes += p->open_bytes;
	}
	return stream_enc_end(h->enc);
}

static void send_out(struct helper *h)
{
	if (xen_net_send(xen_of(h)) == 0)
		pause_io(h, false);
	else if (stream_enc_pending(h->enc) > MAX_PENDING)
		pause_io(h, true);
}

/* Bytes from libxc: into the open checkpoint (opened here if none is). */
static int relay(struct helper *h, void *buf, size_t n)
{
	struct xpri *p = P(h);
	struct xen *x = xen_of(h);
	int rc = 0;
	if (p->st == P_PROTECTED || p->st == P_RESUMING || p->st == P_ACKING) {
		/* libxc writes nothing between its CHECKPOINT record and the next
		 * suspend: bytes here mean the runner is not what we think it is. */
		free(buf);
		helper_fail(h, REPL_LOCAL_ERROR,
			    "libxenguest wrote %zu octets outside a checkpoint (state %s)", n,
			    pst_names[p->st]);
		return -EPROTO;
	}
	if (!p->open)
		rc = open_ckpt(h);
	if (!rc)
		rc = xen_blocks_add(&x->out, buf);
	if (rc) {
		free(buf);
	} else {
		rc = stream_enc_xen_libxc(h->enc, buf, n);
		p->open_bytes += n;
		p->stats.bytes_sent += n;
	}
	if (!rc && p->open_precopy && p->open_bytes >= PRECOPY_BYTES)
		rc = close_ckpt(h);
	if (rc)
		helper_fail(h, REPL_LOCAL_ERROR, "cannot encode libxc's stream: %s", strerror(-rc));
	return rc;
}

/* Read what libxc wrote; all of it when `all` (the runner is blocked in a
 * callback, so every byte of the checkpoint is already in the socket). */
static void read_io(struct helper *h, bool all)
{
	struct xen *x = xen_of(h);
	struct xpri *p = P(h);
	while (x->io >= 0 && !h->failing && (all || !p->io_paused)) {
		void *buf = malloc(READ_CHUNK);
		if (!buf) {
			helper_fail(h, REPL_LOCAL_ERROR, "out of memory relaying libxc's stream");
			return;
		}
		ssize_t n = read(x->io, buf, READ_CHUNK);
		if (n <= 0) {
			free(buf);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0 || errno != EAGAIN) /* the runner's end: it is exiting */
				loop_mod_fd(h->loop, x->io, 0);
			break;
		}
		if (relay(h, buf, (size_t)n) < 0)
			return;
		send_out(h);
	}
}

static void xp_io(struct helper *h, uint32_t events)
{
	read_io(h, false);
}

/* The secondary's back channel (libxc's CHECKPOINT_DIRTY_PFN_LIST) -> libxc. */
static void write_back(struct helper *h)
{
	struct xen *x = xen_of(h);
	struct xpri *p = P(h);
	while (x->back >= 0 && p->back_off < p->back_len) {
		ssize_t n = write(x->back, p->back_buf + p->back_off, p->back_len - p->back_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			loop_mod_fd(h->loop, x->back, 0);
			helper_fail(h, REPL_LOCAL_ERROR, "libxenguest's back channel closed: %s",
				    strerror(errno));
			return;
		}
		p->back_off += (size_t)n;
	}
	if (p->back_off == p->back_len)
		p->back_off = p->back_len = 0;
	if (x->back >= 0 && !h->failing)
		loop_mod_fd(h->loop, x->back, p->back_len ? EPOLLOUT : 0);
}

static void xp_back(struct helper *h, uint32_t events)
{
	write_back(h);
}

static void queue_back(struct helper *h, const uint8_t *data, size_t len)
{
	struct xpri *p = P(h);
	if (p->back_len + len > MAX_BACK) {
		/* libxc reads its back channel only inside a checkpoint; a secondary
		 * sending far more than a dirty list is not a secondary we can follow. */
		helper_reject(h, REPL_CORRUPT_STREAM, STREAM_ERR_TOO_LONG,
			      "the secondary %s sent %zu octets of libxc back channel nobody reads",
			      h->peer_name, p->back_len + len);
		return;
	}
	if (p->back_len + len > p->back_cap) {
		size_t cap = (p->back_len + len) * 2;
		uint8_t *n = realloc(p->back_buf, cap);
		if (!n) {
			helper_fail(h, REPL_LOCAL_ERROR, "out of memory for the back channel");
			return;
		}
		p->back_buf = n;
		p->back_cap = cap;
	}
	memcpy(p->back_buf + p->back_len, data, len);
	p->back_len += len;
	write_back(h);
}

/* ---- the runner's callbacks ------------------------------------------------------------ */

static void ask_suspend(struct helper *h)
{
	struct xpri *p = P(h);
	struct wr w;
	char path[64];
	if (p->open && p->open_precopy && close_ckpt(h) == 0)
		send_out(h); /* the pre-copy is over: what follows is the stop-and-copy */
	if (!p->synced)
		log_info("helper: live pre-copy done: %llu PRECOPY checkpoints, %llu octets of libxc stream; stop-and-copy",
			 (unsigned long long)p->precopy_ckpts, (unsigned long long)p->precopy_bytes);
	set_state(h, P_SUSPENDING, "libxenguest suspended the domain");
	p->acked = false;
	p->t_suspend = mono_ns();
	drop_dev(p);
	p->save_fd = memfd_create("colo-xen-device-state", MFD_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p->save_fd);
	int fd = p->save_fd < 0 ? -1 : open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		helper_fail(h, REPL_LOCAL_ERROR, "cannot create the device-state file: %s",
			    strerror(errno));
		return;
	}
	wr_init(&w);
	repl_msg_put_seq(&w, REPL_MSG_SUSPEND, p->agent_seq);
	helper_ask(h, OWE_SUSPEND, &w, fd);
	wr_free(&w);
	close(fd);
}

/* The runner is blocked in save.checkpoint: everything libxc wrote for this
 * checkpoint is in the socket. Close it with the device state and wait for ACK. */
static void finish_ckpt(struct helper *h)
{
	struct xpri *p = P(h);
	read_io(h, true);
	if (h->failing)
		return;
	int rc = p->open ? 0 : open_ckpt(h);
	if (!rc)
		rc = stream_enc_device_state(h->enc, p->dev, p->dev_len);
	if (!rc)
		rc = stream_enc_input_mark(h->enc, p->mark);
	if (!rc)
		rc = close_ckpt(h);
	if (rc) {
		helper_fail(h, REPL_LOCAL_ERROR, "cannot encode checkpoint %llu: %s",
			    (unsigned long long)p->seq, strerror(-rc));
		return;
	}
	p->stats.device_state_bytes = p->dev_len;
	p->stats.bytes_sent += p->dev_len;
	set_state(h, P_ACKING, "checkpoint sent; waiting for the secondary's ACK");
	send_out(h);
}

static void ask_resume(struct helper *h)
{
	struct xpri *p = P(h);
	struct wr w;
	set_state(h, P_RESUMING,
		  "checkpoint acked; the agent resumes QEMU, then the runner the domain");
	wr_init(&w);
	repl_msg_put_seq(&w, REPL_MSG_RESUME, p->agent_seq);
	helper_ask(h, OWE_RESUME, &w, -1);
	wr_free(&w);
}

static void request(struct helper *h)
{
	struct xpri *p = P(h);
	p->ckpt_wanted = false;
	p->agent_seq++;
	int rc = stream_enc_request(h->enc, p->seq + 1);
	if (rc) {
		helper_fail(h, REPL_LOCAL_ERROR, "cannot encode CHECKPOINT_REQUEST: %s", strerror(-rc));
		return;
	}
	set_state(h, P_REQUESTED, "the agent asked for a checkpoint");
	send_out(h);
	xen_reply(xen_of(h), 1);
}

static void ask_logdirty(struct helper *h, bool enable)
{
	struct wr w;
	wr_init(&w);
	repl_msg_put_logdirty(&w, enable);
	helper_ask(h, OWE_LOGDIRTY, &w, -1);
	wr_free(&w);
}

/* Failure values per callback (libxenguest's conventions). */
static int failed_value(uint16_t call)
{
	return call == XEN_CTL_SAVE_LOGDIRTY ? -1 : 0;
}

static void xp_call(struct helper *h, const struct xen_ctl *m)
{
	struct xpri *p = P(h);
	struct xen *x = xen_of(h);
	if (m->type == XEN_CTL_SAVE_RESUME_QEMU) {
		/* The save ended with the domain suspended: the device model runs first,
		 * then the runner resumes the domain (libxl__domain_resume's order). */
		if (!p->vm_stopped || h->owed != OWE_NONE)
			return xen_reply(x, 0);
		set_state(h, P_STOPPING, "the save ended; resuming QEMU before the domain");
		struct wr w;
		wr_init(&w);
		repl_msg_put_seq(&w, REPL_MSG_RESUME, p->agent_seq);
		helper_ask(h, OWE_RESUME, &w, -1);
		wr_free(&w);
		return;
	}
	if (h->failing) {
		/* Turning the device model's log off needs no answer from anyone. */
		xen_reply(x, m->type == XEN_CTL_SAVE_LOGDIRTY && !m->logdirty.enable ? 0
										   : failed_value(m->type));
		return;
	}
	switch (m->type) {
	case XEN_CTL_SAVE_LOGDIRTY:
		if (m->logdirty.domid != h->cfg.vm_id)
			break;
		return ask_logdirty(h, m->logdirty.enable);
	case XEN_CTL_SAVE_SUSPEND:
		if (p->st != P_SYNCING && p->st != P_REQUESTED)
			break;
		return ask_suspend(h);
	case XEN_CTL_SAVE_CHECKPOINT:
		if (p->st != P_CAPTURING)
			break;
		return finish_ckpt(h);
	case XEN_CTL_SAVE_POSTCOPY:
		if (p->st != P_ACKING || !p->acked)
			break;
		return ask_resume(h);
	case XEN_CTL_SAVE_WAIT:
		if (p->st != P_PROTECTED)
			break;
		if (p->ckpt_wanted)
			request(h);
		return;
	}
	xen_runner_kill(x);
	helper_fail(h, REPL_LOCAL_ERROR,
		    "the libxenguest runner called %s in state %s (domain %u); stopped it",
		    xen_ctl_name(m->type), pst_names[p->st], m->type == XEN_CTL_SAVE_LOGDIRTY ? m->logdirty.domid : h->cfg.vm_id);
}

/* ---- the agent's answers ---------------------------------------------------------------- */

static int map_dev(struct xpri *p)
{
	struct stat st;
	if (fstat(p->save_fd, &st) < 0)
		return -errno;
	if (st.st_size <= 0 || (uint64_t)st.st_size > STREAM_MAX_DEVICE_STATE)
		return -EMSGSIZE;
	p->dev = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, p->save_fd, 0);
	if (p->dev == MAP_FAILED) {
		p->dev = NULL;
		return -errno;
	}
	p->dev_len = (size_t)st.st_size;
	return 0;
}

static void suspended(struct helper *h, const struct repl_msg *m)
{
	struct xpri *p = P(h);
	struct xen *x = xen_of(h);
	p->vm_stopped = true; /* stop came first, whatever the save did */
	p->stats.suspend_us = helper_us(p->t_suspend, mono_ns());
	if (h->failing)
		return xen_reply(x, 0);
	int rc = m->done.err ? m->done.err : map_dev(p);
	if (rc) {
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_ABORTED,
			      "the agent could not save the device state of checkpoint %llu: %s",
			      (unsigned long long)p->agent_seq, strerror(-rc));
		xen_reply(x, 0);
		return;
	}
	p->mark = m->done.input_mark;
	set_state(h, P_CAPTURING, "device state saved; libxenguest sends the dirty pages");
	xen_reply(x, 1);
}

static void resumed(struct helper *h, const struct repl_msg *m)
{
	struct xpri *p = P(h);
	struct xen *x = xen_of(h);
	p->vm_stopped = false;
	if (h->failing && p->st != P_STOPPING)
		return xen_reply(x, 0);
	if (m->done.err) {
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_ABORTED,
			      "the agent could not resume the primary VM: %s", strerror(-m->done.err));
		xen_reply(x, 0);
		return;
	}
	if (p->st == P_STOPPING)
		return xen_reply(x, 0); /* the failure path's resume (or a postcopy cut short) */
	if (!p->synced)
		p->base = p->seq;
	p->synced = true;
	p->stats.seq = p->agent_seq;
	p->stats.pause_us = helper_us(p->t_suspend, mono_ns());
	p->stats.transfer_us = helper_us(p->t_suspend, p->t_end);
	helper_send_stats(h, &p->stats);
	memset(&p->stats, 0, sizeof(p->stats));
	p->t_end = 0;
	drop_dev(p);
	set_state(h, P_PROTECTED, "checkpoint committed");
	xen_reply(x, 1);
}

static void xp_agent(struct helper *h, const struct repl_msg *m)
{
	struct xpri *p = P(h);
	switch (m->type) {
	case REPL_MSG_SUSPEND_DONE:
		return suspended(h, m);
	case REPL_MSG_RESUME_DONE:
		return resumed(h, m);
	case REPL_MSG_LOGDIRTY_DONE:
		return xen_reply(xen_of(h), m->done.err || h->failing ? -1 : 0);
	case REPL_MSG_CHECKPOINT:
		p->ckpt_wanted = true;
		if (p->st == P_PROTECTED && xen_of(h)->call == XEN_CTL_SAVE_WAIT)
			request(h);
		return;
	case REPL_MSG_STOPPED: /* libxc copies after the save; nothing to overlap */
		return;
	default:
		log_err("helper: %s ignored: not for a primary (agent-side bug)", repl_msg_name(m->type));
	}
}

/* ---- the secondary's stream ------------------------------------------------------------ */

static void acked(struct helper *h, uint64_t seq)
{
	struct xpri *p = P(h);
	if (p->st == P_ACKING && seq == p->seq) {
		p->t_end = mono_ns();
		p->acked = true;
		xen_reply(xen_of(h), 1);
	}
}

static void xp_feed(struct helper *h, const uint8_t *buf, size_t len)
{
	struct xpri *p = P(h);
	size_t pos = 0, used;
	while (pos < len && !h->failing) {
		struct stream_rec rec;
		int rc = stream_dec_feed(p->dec, buf + pos, len - pos, &used, &rec);
		pos += used;
		if (rc < 0)
			return helper_stream_error(h, p->dec, rc);
		if (p->st == P_HELLO && stream_dec_offset(p->dec) >= HELPER_STREAM_HDR_LEN) {
			helper_send_empty(h, REPL_MSG_SYNCING);
			set_state(h, P_SYNCING, "the secondary's header matches our domain");
			if ((rc = xen_runner_start(xen_of(h), true)) < 0)
				return helper_fail(h, REPL_LOCAL_ERROR, "cannot start the runner: %s",
						   strerror(-rc));
		}
		if (rc != 1)
			continue;
		if (rec.type == STREAM_REC_ACK)
			acked(h, rec.seq);
		else if (rec.type == STREAM_REC_XEN_LIBXC)
			queue_back(h, rec.blob.data, rec.blob.len);
		else if (rec.type == STREAM_REC_ERROR)
			helper_peer_error(h, rec.error.code, rec.error.reason);
	}
}

static void xp_eof(struct helper *h)
{
	helper_fail(h, REPL_BROKEN_CHANNEL, "the secondary %s closed the replication link",
		    h->peer_name);
}

static void xp_up(struct helper *h)
{
}

static void xp_drained(struct helper *h)
{
	xen_blocks_free(&xen_of(h)->out);
	pause_io(h, false);
	read_io(h, false);
}

/* ---- failure ------------------------------------------------------------------------------ */

/* The link is gone: libxenguest must unwind (its I/O fails, pending callbacks
 * fail), then the domain and QEMU run on unprotected before FAILED goes out. */
static void xp_failing(struct helper *h)
{
	struct xen *x = xen_of(h);
	struct xpri *p = P(h);
	if (!p)
		return;
	p->st = P_STOPPING;
	p->back_len = p->back_off = 0;
	/* Shut down, so libxc's I/O fails; unwatched, so their EOF does not spin us. */
	if (x->io >= 0) {
		shutdown(x->io, SHUT_RDWR);
		loop_mod_fd(h->loop, x->io, 0);
	}
	if (x->back >= 0) {
		shutdown(x->back, SHUT_RDWR);
		loop_mod_fd(h->loop, x->back, 0);
	}
	if (x->call && h->owed == OWE_NONE)
		xen_reply(x, failed_value(x->call));
	xen_runner_deadline(x, RUNNER_GRACE_MS);
}

static void xp_finished(struct helper *h)
{
	struct xen *x = xen_of(h);
	struct xpri *p = P(h);
	if (!h->failing && x->fin.fin.rc == 0)
		helper_fail(h, REPL_LOCAL_ERROR,
			    "libxenguest's save of domain %u stopped: a callback told it to (see above)",
			    h->cfg.vm_id);
	else if (!h->failing)
		helper_fail(h, REPL_LOCAL_ERROR, "libxenguest's save of domain %u ended (rc %d: %s)",
			    h->cfg.vm_id, x->fin.fin.rc, strerror((int)x->fin.fin.err));
	if (p->vm_stopped && h->owed == OWE_NONE) {
		/* The runner did not ask (it died, or the domain was never suspended). */
		struct wr w;
		log_info("helper: the domain was %sresumed; asking the agent to resume QEMU",
			 x->fin.fin.flags & XEN_CTL_FIN_RESUMED ? "" : "NOT (see the runner's log) ");
		wr_init(&w);
		repl_msg_put_seq(&w, REPL_MSG_RESUME, p->agent_seq);
		helper_ask(h, OWE_RESUME, &w, -1);
		wr_free(&w);
	}
}

static bool xp_busy(const struct helper *h)
{
	const struct xen *x = xen_of(h);
	return x->runner > 0;
}

static bool xp_no_failover(const struct helper *h)
{
	return false;
}

static void xp_no_ready(struct helper *h)
{
}

static int xp_init(struct helper *h)
{
	struct xen *x = xen_of(h);
	struct xpri *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	x->role = p;
	p->save_fd = -1;
	p->dec = stream_dec_new(&h->id, STREAM_PRIMARY);
	if (!p->dec)
		return -ENOMEM;
	return helper_net_connect(h);
}

static void xp_free(struct helper *h)
{
	struct xpri *p = P(h);
	if (!p)
		return;
	drop_dev(p);
	stream_dec_free(p->dec);
	free(p->back_buf);
	free(p);
	xen_of(h)->role = NULL;
}

const struct helper_role xen_pri_role = {
	.up = xp_up, .feed = xp_feed, .eof = xp_eof, .drained = xp_drained,
	.agent = xp_agent, .busy = xp_busy, .failover_requested = xp_no_failover,
	.failover_ready = xp_no_ready, .failing = xp_failing,
};

const struct xen_ops xen_pri_ops = {
	.init = xp_init, .free = xp_free, .call = xp_call, .finished = xp_finished,
	.io = xp_io, .back = xp_back,
};
