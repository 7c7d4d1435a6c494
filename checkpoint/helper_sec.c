/* helper_sec.c - the secondary's engine (docs/helper-protocol.md §4): receive the
 * initial sync into RAM, then per checkpoint: on the primary's request stop the VM
 * (agent) and send our dirty list; buffer the whole checkpoint, verify, ACK, write
 * the pages, hand the device state to the agent (LOAD), COMMITTED.
 *
 * The commit rule (docs/checkpoint-stream.md §7) is kept by construction: a
 * checkpoint is acknowledged and applied in one step, right after the assembler
 * verified it and before another byte is read; its LOAD is owed, so helper.c reports
 * a failure only after LOAD_DONE. A checkpoint the assembler never completed is never
 * seen here.
 *
 * States (one setter, sec_set):
 *   WAITING -> HELLO -> SYNCING -> LOADING -> PROTECTED
 *   PROTECTED -> SUSPENDING -> AWAITING -> LOADING -> PROTECTED
 *   any -> READY (failover done)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checkpoint/helper_int.h"
#include "lib/log.h"
#include "lib/loop.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

enum sec_state { S_WAITING, S_HELLO, S_SYNCING, S_LOADING, S_PROTECTED, S_SUSPENDING, S_AWAITING,
		 S_READY };

static const char *const state_names[] = { "waiting", "hello", "syncing", "loading",
					   "protected", "suspending", "awaiting", "ready" };

struct sec {
	enum sec_state st;
	struct stream_asm *as;
	bool hello, synced, failover;
	uint64_t base;      /* stream seq of the initial sync's final checkpoint */
	uint64_t agent_seq; /* of the checkpoint in progress */
	uint64_t req;       /* stream seq requested (SUSPENDING, AWAITING) */
	bool req_pending;   /* a REQUEST arrived while LOADING */
	uint64_t req_pending_seq;
	struct stream_range *ranges;
	size_t ranges_cap;
	uint64_t last_off; /* decoder offset after the previous checkpoint */
	int load_fd;
	uint64_t precopy_ckpts, precopy_pages;
	uint64_t t_first, t_suspend, t_suspended, t_dirty, t_verified, t_applied;
	struct repl_stats stats;
};

static void sec_set(struct helper *h, enum sec_state to, const char *why)
{
	struct sec *s = h->sec;
	log_debug("helper: secondary: %s -> %s (%s)", state_names[s->st], state_names[to], why);
	s->st = to;
}

/* Write through our mapping now: the initial sync then copies into RAM that is
 * already there instead of faulting in every page. The content is unchanged. */
static void populate(struct helper *h)
{
	if (madvise(ram_map_base(h->ram), h->cfg.ram_size, MADV_POPULATE_WRITE) < 0)
		log_debug("helper: cannot pre-populate the secondary's RAM: %s", strerror(errno));
}

int sec_init(struct helper *h)
{
	struct sec *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	h->sec = s;
	s->load_fd = -1;
	int rc = helper_open_vm(h, RAM_WRITE);
	if (rc)
		return rc;
	/* Forget what QEMU wrote before: the initial sync overwrites every page, and
	 * from here on every write of the secondary VM is in the log. */
	int64_t n = dirty_scan(h->trk, h->dirty);
	if (n < 0)
		return (int)n;
	dirty_set_clear(h->dirty);
	populate(h);
	s->as = stream_asm_new(&h->id);
	s->ranges_cap = (h->npages + 1) / 2; /* alternating pages: the most ranges possible */
	s->ranges = malloc(s->ranges_cap * sizeof(*s->ranges));
	if (!s->as || !s->ranges)
		return -ENOMEM;
	return helper_net_listen(h);
}

void sec_free(struct helper *h)
{
	struct sec *s = h->sec;
	stream_asm_free(s->as);
	free(s->ranges);
	if (s->load_fd >= 0)
		close(s->load_fd);
	free(s);
	h->sec = NULL;
}

void sec_up(struct helper *h)
{
	h->sec->t_first = mono_ns();
	sec_set(h, S_HELLO, "primary connected; waiting for its stream header");
}

void sec_drained(struct helper *h)
{
}

bool sec_failover_requested(const struct helper *h)
{
	return h->sec->failover;
}

void sec_failover_ready(struct helper *h)
{
	struct sec *s = h->sec;
	helper_net_close(h);
	sec_set(h, S_READY, "failover");
	log_info("helper: failover: checkpoint %llu is the last applied; the VM may run",
		 (unsigned long long)s->agent_seq);
	helper_send_empty(h, REPL_MSG_FAILOVER_READY);
	h->done = true;
	loop_stop(h->loop);
}

/* ---- a received checkpoint ------------------------------------------------------------ */

/* What the stream grammar cannot check: is this checkpoint one we may apply now? */
static const char *misplaced(const struct helper *h, const struct stream_ckpt *ck)
{
	const struct sec *s = h->sec;
	bool precopy = stream_ckpt_flags(ck) & STREAM_CKPT_PRECOPY;
	size_t dev_len;
	if (!precopy && !stream_ckpt_device_state(ck, &dev_len))
		return "a checkpoint without DEVICE_STATE";
	if (!s->synced && s->st == S_SYNCING)
		return NULL;
	if (s->st != S_AWAITING)
		return precopy ? "a PRECOPY checkpoint after the initial sync"
			       : "a checkpoint without CHECKPOINT_REQUEST and our dirty list";
	if (precopy)
		return "a PRECOPY checkpoint after the initial sync";
	return NULL;
}

static int apply_batch(void *arg, const uint64_t *pfns, size_t n, const uint8_t *data)
{
	uint8_t *ram = arg;
	for (size_t i = 0; i < n; i++) {
		uint8_t *dst = ram + pfns[i] * RAM_PAGE_SIZE;
		if (data)
			memcpy(dst, data + i * RAM_PAGE_SIZE, RAM_PAGE_SIZE);
		else if (!precopy_page_is_zero(dst)) /* reading is cheaper than dirtying */
			memset(dst, 0, RAM_PAGE_SIZE);
	}
	return 0;
}

/* The device state goes to the agent in a fresh memfd opened O_RDONLY at offset 0
 * (QEMU's add-fd wants O_RDONLY for a load). */
static int load_fd(struct sec *s, const void *dev, size_t len)
{
	char path[64];
	const uint8_t *p = dev;
	s->load_fd = memfd_create("colo-device-state", MFD_CLOEXEC);
	if (s->load_fd < 0)
		return -errno;
	for (size_t off = 0; off < len;) {
		ssize_t n = pwrite(s->load_fd, p + off, len - off, (off_t)off);
		if (n < 0 && errno != EINTR)
			return -errno;
		off += n > 0 ? (size_t)n : 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->load_fd);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void ask_load(struct helper *h, struct stream_ckpt *ck)
{
	struct sec *s = h->sec;
	struct wr w;
	size_t len;
	uint64_t mark = 0;
	const void *dev = stream_ckpt_device_state(ck, &len);
	bool has_mark = stream_ckpt_input_mark(ck, &mark);
	int fd = load_fd(s, dev, len);
	s->stats.device_state_bytes = len;
	stream_asm_release(s->as, ck);
	if (fd < 0) {
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_APPLY_FAILED,
			      "cannot pass checkpoint %llu's device state to the agent: %s",
			      (unsigned long long)s->agent_seq, strerror(-fd));
		return;
	}
	s->t_applied = mono_ns();
	sec_set(h, S_LOADING, "pages written; asking the agent to load the device state");
	wr_init(&w);
	repl_msg_put_load(&w, s->agent_seq, has_mark, mark);
	helper_ask(h, OWE_LOAD, &w, fd);
	wr_free(&w);
	close(fd);
}

static void note_received(struct helper *h, const struct stream_ckpt *ck)
{
	struct sec *s = h->sec;
	uint64_t off = stream_dec_offset(stream_asm_dec(s->as));
	s->stats.pages_sent = stream_ckpt_page_count(ck);
	s->stats.zero_pages = stream_ckpt_zero_count(ck);
	s->stats.bytes_sent = off - s->last_off;
	s->last_off = off;
	s->t_verified = mono_ns();
}

/* Verified by the assembler: check it fits, ACK, apply. From the ACK on it is
 * applied whatever happens to the link. */
static void checkpoint(struct helper *h, struct stream_ckpt *ck)
{
	struct sec *s = h->sec;
	uint64_t seq = stream_ckpt_seq(ck);
	const char *bad = misplaced(h, ck);
	if (bad) {
		stream_ckpt_free(ck);
		helper_reject(h, REPL_CORRUPT_STREAM, STREAM_ERR_UNEXPECTED,
			      "checkpoint %llu from %s is %s (state %s); nothing applied",
			      (unsigned long long)seq, h->peer_name, bad, state_names[s->st]);
		return;
	}
	note_received(h, ck);
	if (stream_enc_ack(h->enc, seq) == 0)
		helper_net_send(h); /* a broken link is noticed; we apply anyway */
	stream_ckpt_foreach_batch(ck, apply_batch, ram_map_base(h->ram));
	if (stream_ckpt_flags(ck) & STREAM_CKPT_PRECOPY) {
		s->precopy_ckpts++;
		s->precopy_pages += stream_ckpt_page_count(ck) + stream_ckpt_zero_count(ck);
		stream_asm_release(s->as, ck);
		return;
	}
	if (!s->synced) {
		s->base = seq;
		s->agent_seq = 0;
		log_info("helper: initial sync received: %llu pre-copy checkpoints, %llu pages, then the final one",
			 (unsigned long long)s->precopy_ckpts, (unsigned long long)s->precopy_pages);
	} else {
		s->agent_seq = seq - s->base;
	}
	ask_load(h, ck);
}

/* ---- the primary's request ----------------------------------------------------------- */

static void suspend(struct helper *h, uint64_t seq)
{
	struct sec *s = h->sec;
	struct wr w;
	s->req = seq;
	s->agent_seq = seq - s->base;
	memset(&s->stats, 0, sizeof(s->stats));
	s->t_suspend = mono_ns();
	sec_set(h, S_SUSPENDING, "primary requested a checkpoint; asking the agent to stop the VM");
	wr_init(&w);
	repl_msg_put_seq(&w, REPL_MSG_SUSPEND, s->agent_seq);
	helper_ask(h, OWE_SUSPEND, &w, -1);
	wr_free(&w);
}

static void request(struct helper *h, uint64_t seq)
{
	struct sec *s = h->sec;
	/* The checkpoint's bytes start after its request. */
	s->last_off = stream_dec_offset(stream_asm_dec(s->as));
	if (s->st == S_LOADING) {
		s->req_pending = true; /* after LOAD_DONE */
		s->req_pending_seq = seq;
	} else if (s->st == S_PROTECTED && !s->failover) {
		suspend(h, seq);
	} else if (!s->failover) {
		helper_reject(h, REPL_CORRUPT_STREAM, STREAM_ERR_UNEXPECTED,
			      "CHECKPOINT_REQUEST %llu from %s before the initial sync finished (state %s)",
			      (unsigned long long)seq, h->peer_name, state_names[s->st]);
	}
}

static void send_dirty(struct helper *h)
{
	struct sec *s = h->sec;
	uint64_t cursor = 0;
	dirty_set_clear(h->dirty);
	int64_t n = dirty_scan(h->trk, h->dirty);
	if (n < 0) {
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_ABORTED,
			      "dirty scan of the secondary VM failed: %s", strerror((int)-n));
		return;
	}
	s->stats.dirty_pages_local = dirty_set_count(h->dirty);
	size_t nr = dirty_set_ranges(h->dirty, &cursor, s->ranges, s->ranges_cap);
	int rc = stream_enc_dirty(h->enc, s->req, s->ranges, nr);
	if (rc) {
		helper_fail(h, REPL_LOCAL_ERROR, "cannot encode our dirty list: %s (a bug)",
			    strerror(-rc));
		return;
	}
	s->t_dirty = mono_ns();
	sec_set(h, S_AWAITING, "dirty list sent; waiting for the checkpoint");
	helper_net_send(h);
}

/* ---- the agent's answers --------------------------------------------------------------- */

static void suspended(struct helper *h, const struct repl_msg *m)
{
	struct sec *s = h->sec;
	s->t_suspended = mono_ns();
	if (m->done.err) {
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_ABORTED,
			      "the agent could not stop the secondary VM: %s", strerror(-m->done.err));
		return;
	}
	if (s->failover) {
		if (!h->failing) /* else helper_settle() reports it */
			sec_failover_ready(h); /* nothing was sent for this checkpoint */
		return;
	}
	if (!h->failing)
		send_dirty(h);
}

static void fill_stats(struct sec *s, uint64_t now)
{
	struct repl_stats *st = &s->stats;
	st->seq = s->agent_seq;
	st->suspend_us = s->synced ? helper_us(s->t_suspend, s->t_suspended) : 0;
	st->pause_us = s->synced ? helper_us(s->t_suspend, now) : 0;
	st->capture_us = helper_us(s->t_verified, s->t_applied);
	st->transfer_us = helper_us(s->synced ? s->t_dirty : s->t_first, s->t_verified);
}

static void loaded(struct helper *h, const struct repl_msg *m)
{
	struct sec *s = h->sec;
	close(s->load_fd);
	s->load_fd = -1;
	if (m->done.err) {
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_APPLY_FAILED,
			      "the agent could not load checkpoint %llu's device state: %s; this secondary is no longer a replica",
			      (unsigned long long)s->agent_seq, strerror(-m->done.err));
		return;
	}
	fill_stats(s, mono_ns());
	s->synced = true;
	sec_set(h, S_PROTECTED, "checkpoint applied and loaded");
	helper_send_stats(h, &s->stats);
	if (s->failover) {
		if (!h->failing) /* else helper_settle() reports it */
			sec_failover_ready(h);
	} else if (s->req_pending && !h->failing) {
		s->req_pending = false;
		suspend(h, s->req_pending_seq);
	}
}

/* The commit rule first: bytes still in the socket may complete a checkpoint the
 * primary sent before it died; anything short of a whole one is dropped. */
static void failover(struct helper *h)
{
	struct sec *s = h->sec;
	if (!s->synced && s->st != S_LOADING) {
		helper_fail(h, REPL_LOCAL_ERROR,
			    "failover requested before the initial sync completed: this secondary has no consistent VM");
		return;
	}
	s->failover = true;
	/* A LOAD or SUSPEND in progress is finished first (loaded() / suspended()); a
	 * link already lost is reported as FAILOVER_READY by helper_settle(). */
	if (s->st == S_LOADING || s->st == S_SUSPENDING || h->failing)
		return;
	helper_net_drain(h);
	if (s->st != S_LOADING && !h->failing)
		sec_failover_ready(h);
}

void sec_agent(struct helper *h, const struct repl_msg *m)
{
	switch (m->type) {
	case REPL_MSG_SUSPEND_DONE:
		suspended(h, m);
		break;
	case REPL_MSG_LOAD_DONE:
		loaded(h, m);
		break;
	case REPL_MSG_FAILOVER:
		failover(h);
		break;
	case REPL_MSG_STOPPED: /* nothing to overlap: the secondary scans after the stop */
		break;
	default:
		log_err("helper: %s ignored: not for a secondary (agent-side bug)",
			repl_msg_name(m->type));
		break;
	}
}

/* ---- the primary's stream ------------------------------------------------------------- */

static void hello(struct helper *h)
{
	struct sec *s = h->sec;
	s->hello = true;
	helper_send_empty(h, REPL_MSG_SYNCING);
	sec_set(h, S_SYNCING, "the primary's header matches our VM");
}

void sec_feed(struct helper *h, const uint8_t *buf, size_t len)
{
	struct sec *s = h->sec;
	size_t pos = 0, used;
	while (pos < len && !h->failing) {
		struct stream_rec rec;
		int rc = stream_asm_feed(s->as, buf + pos, len - pos, &used, &rec);
		pos += used;
		if (rc < 0) {
			helper_stream_error(h, stream_asm_dec(s->as), rc);
			return;
		}
		if (!s->hello && stream_dec_offset(stream_asm_dec(s->as)) >= HELPER_STREAM_HDR_LEN)
			hello(h);
		if (rc == STREAM_ASM_CHECKPOINT)
			checkpoint(h, stream_asm_take(s->as));
		else if (rc == STREAM_ASM_RECORD && rec.type == STREAM_REC_REQUEST)
			request(h, rec.seq);
		else if (rc == STREAM_ASM_RECORD && rec.type == STREAM_REC_ERROR)
			helper_peer_error(h, rec.error.code, rec.error.reason);
	}
}

void sec_eof(struct helper *h)
{
	struct sec *s = h->sec;
	int rc = stream_asm_eof(s->as); /* frees a partial checkpoint: never applied */
	helper_fail(h, REPL_BROKEN_CHANNEL, "the primary %s closed the replication link%s%s%s",
		    h->peer_name, rc ? ": " : "", rc ? stream_dec_reason(stream_asm_dec(s->as)) : "",
		    rc ? "; the partial checkpoint is discarded, nothing of it applied" : "");
}
