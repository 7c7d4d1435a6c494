/* helper_pri.c - the primary's engine (docs/helper-protocol.md §4): initial sync by
 * iterative pre-copy while the VM runs, then stop-and-copy; per checkpoint: request,
 * the secondary's dirty list, suspend, capture the union into the shadow buffer,
 * resume at once, stream, ACK, COMMITTED.
 *
 * States (one setter, pri_set):
 *   HELLO -> PRECOPY -> DRAIN -> SUSPENDING -> STREAMING -> PROTECTED
 *   PROTECTED -> REQUESTED -> SUSPENDING -> STREAMING -> PROTECTED
 * Failures do not change the state: helper.c stops everything.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/helper_int.h"
#include "lib/log.h"
#include "lib/loop.h"

/* A pre-copy checkpoint carries at most this many pages with data (8 MiB: the
 * secondary buffers one whole checkpoint before applying it) or scans this many
 * pages (zero pages cost 8 octets each). */
#define CHUNK_DATA_PAGES 2048u
#define CHUNK_SCAN_PAGES 65536u
/* Stop pre-copying when a pass finds at most this many dirty pages (4 MiB: about
 * 0.5 ms of copying in the final pause), when the dirty set stops shrinking, or
 * after this many passes. */
#define SYNC_SMALL_PAGES 1024u
#define SYNC_MAX_PASSES 30u
/* Dirty pages exported from the set per capture step. */
#define EXPORT_BATCH 4096u

enum pri_state { P_HELLO, P_PRECOPY, P_DRAIN, P_SUSPENDING, P_STREAMING, P_PROTECTED, P_REQUESTED };

static const char *const state_names[] = { "hello", "precopy", "drain", "suspending",
					   "streaming", "protected", "requested" };

struct pri {
	enum pri_state st;
	struct stream_dec *dec;
	bool hello;
	uint8_t *shadow;
	struct capture cap;
	uint64_t *batch; /* EXPORT_BATCH pfns from the dirty set */

	/* pre-copy */
	unsigned pass;
	uint64_t pass_pages, prev_pass_pages, cursor;
	uint64_t sync_t0_ns, sync_bytes, sync_ckpts;

	/* the checkpoint being encoded */
	bool in_chunk, tail_done;
	uint64_t chunk_scanned; /* pages looked at for this pre-copy checkpoint */
	size_t enc_idx;         /* cap.pfns[0..enc_idx) are encoded */
	uint64_t bytes;         /* its stream bytes so far */

	uint64_t sent;   /* stream seq of the last CHECKPOINT_BEGIN */
	uint64_t acked;  /* stream seq of the last ACK */
	uint64_t agent_seq;

	/* the checkpoint in progress */
	int dev_fd;
	void *dev_map;
	size_t dev_len;
	uint64_t input_mark;
	uint64_t t_suspend, t_stopped, t_capture_end, t_suspended, t_resume, t_resumed, t_ack;
	bool resumed, ack;
	bool captured;  /* during this suspend (STOPPED came first) */
	int capture_rc;
	struct repl_stats stats;
};

static void pri_set(struct helper *h, enum pri_state to, const char *why)
{
	struct pri *p = h->pri;
	log_debug("helper: primary: %s -> %s (%s)", state_names[p->st], state_names[to], why);
	p->st = to;
}

int pri_init(struct helper *h)
{
	struct pri *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	h->pri = p;
	p->dev_fd = -1;
	int rc = helper_open_vm(h, RAM_READ);
	if (rc)
		return rc;
	p->dec = stream_dec_new(&h->id, STREAM_PRIMARY);
	p->shadow = precopy_shadow_new(h->cfg.ram_size);
	p->cap.pfns = malloc(h->npages * sizeof(uint64_t));
	p->cap.zeros = malloc(h->npages * sizeof(uint64_t));
	p->batch = malloc(EXPORT_BATCH * sizeof(uint64_t));
	if (!p->dec || !p->shadow || !p->cap.pfns || !p->cap.zeros || !p->batch)
		return -ENOMEM;
	return helper_net_connect(h);
}

static void dev_release(struct pri *p)
{
	if (p->dev_map)
		munmap(p->dev_map, p->dev_len);
	if (p->dev_fd >= 0)
		close(p->dev_fd);
	p->dev_map = NULL;
	p->dev_len = 0;
	p->dev_fd = -1;
}

void pri_free(struct helper *h)
{
	struct pri *p = h->pri;
	dev_release(p);
	stream_dec_free(p->dec);
	precopy_shadow_free(p->shadow, h->cfg.ram_size);
	free(p->cap.pfns);
	free(p->cap.zeros);
	free(p->batch);
	free(p);
	h->pri = NULL;
}

void pri_up(struct helper *h)
{
	pri_set(h, P_HELLO, "connected; waiting for the secondary's stream header");
}

/* ---- encoding ------------------------------------------------------------------------- */

/* Pages are encoded (checksummed) and handed to the socket a slice at a time, so
 * the kernel copies them while the checksum pass left them in the cache: one cold
 * read of each page instead of two. */
#define SLICE_PAGES 64u

static int enc_failed(struct helper *h, int rc)
{
	helper_fail(h, REPL_LOCAL_ERROR, "the stream encoder refused checkpoint %llu: %s (a bug)",
		    (unsigned long long)h->pri->sent, strerror(-rc));
	return rc;
}

static int enc_begin(struct helper *h, uint32_t flags)
{
	struct pri *p = h->pri;
	int rc = stream_enc_begin(h->enc, p->sent + 1, flags);
	if (rc)
		return enc_failed(h, rc);
	p->sent++;
	p->enc_idx = 0;
	p->bytes = stream_enc_pending(h->enc);
	return 0;
}

/* The captured data pages not encoded yet, up to a slice. */
static int enc_slice(struct helper *h)
{
	struct pri *p = h->pri;
	size_t n = p->cap.npfns - p->enc_idx;
	if (n > SLICE_PAGES)
		n = SLICE_PAGES;
	size_t before = stream_enc_pending(h->enc);
	int rc = n ? stream_enc_pages(h->enc, p->cap.pfns + p->enc_idx, n, p->shadow) : 0;
	if (rc)
		return enc_failed(h, rc);
	p->enc_idx += n;
	p->bytes += stream_enc_pending(h->enc) - before;
	return 0;
}

/* Zero pages, the device state and the input mark (not in PRECOPY), END. */
static int enc_tail(struct helper *h, uint32_t flags)
{
	struct pri *p = h->pri;
	size_t before = stream_enc_pending(h->enc);
	int rc = p->cap.nzeros ? stream_enc_zero_pages(h->enc, p->cap.zeros, p->cap.nzeros) : 0;
	if (!rc && !(flags & STREAM_CKPT_PRECOPY)) {
		rc = stream_enc_device_state(h->enc, p->dev_map, p->dev_len);
		if (!rc)
			rc = stream_enc_input_mark(h->enc, p->input_mark);
	}
	if (!rc)
		rc = stream_enc_end(h->enc);
	if (rc)
		return enc_failed(h, rc);
	p->bytes += stream_enc_pending(h->enc) - before;
	return 0;
}

/* ---- pre-copy ------------------------------------------------------------------------- */

static bool pass_done(const struct helper *h)
{
	return h->pri->cursor >= h->npages;
}

/* Capture the next slice of the current pass, appending to cap. */
static void capture_slice(struct helper *h)
{
	struct pri *p = h->pri;
	const uint8_t *ram = ram_map_base(h->ram);
	size_t goal = p->cap.npfns + SLICE_PAGES;
	if (p->pass == 0) {
		/* Pass 0 walks all RAM in order: no pfn list needed. */
		while (p->cursor < h->npages && p->cap.npfns < goal &&
		       p->chunk_scanned < CHUNK_SCAN_PAGES) {
			precopy_capture_run(&p->cap, p->shadow, ram, p->cursor++, 1);
			p->chunk_scanned++;
		}
		return;
	}
	size_t n = dirty_set_pfns(h->dirty, &p->cursor, p->batch, SLICE_PAGES);
	precopy_capture(&p->cap, p->shadow, ram, p->batch, n);
	p->chunk_scanned += n;
}

static bool chunk_full(const struct pri *p)
{
	return p->cap.npfns >= CHUNK_DATA_PAGES || p->chunk_scanned >= CHUNK_SCAN_PAGES;
}

static void begin_suspend(struct helper *h);

/* End of a pass: scan, and decide between another pass and the stop-and-copy.
 * The set keeps the pages found: they go in the next pass or the final copy. */
static void end_pass(struct helper *h)
{
	struct pri *p = h->pri;
	dirty_set_clear(h->dirty);
	int64_t n = dirty_scan(h->trk, h->dirty);
	if (n < 0) {
		helper_fail(h, REPL_LOCAL_ERROR, "dirty scan failed during the initial sync: %s",
			    strerror((int)-n));
		return;
	}
	uint64_t count = dirty_set_count(h->dirty);
	log_info("helper: initial sync pass %u: %llu pages sent; %llu dirtied meanwhile",
		 p->pass, (unsigned long long)p->pass_pages, (unsigned long long)count);
	p->prev_pass_pages = p->pass_pages;
	p->pass++;
	p->cursor = 0;
	p->pass_pages = count;
	if (count <= SYNC_SMALL_PAGES || count >= p->prev_pass_pages || p->pass >= SYNC_MAX_PASSES)
		pri_set(h, P_DRAIN, "dirty set small or no longer shrinking: stop and copy");
}

/* One step of pre-copy: open a chunk, add a slice, or close the chunk. */
static int precopy_step(struct helper *h)
{
	struct pri *p = h->pri;
	if (!p->in_chunk) {
		if (pass_done(h)) {
			end_pass(h);
			return 0;
		}
		p->cap.npfns = p->cap.nzeros = 0;
		p->chunk_scanned = 0;
		p->in_chunk = true;
		return enc_begin(h, STREAM_CKPT_PRECOPY);
	}
	if (chunk_full(p) || pass_done(h)) {
		p->in_chunk = false;
		p->sync_ckpts++;
		int rc = enc_tail(h, STREAM_CKPT_PRECOPY);
		p->sync_bytes += p->bytes;
		return rc;
	}
	capture_slice(h);
	return enc_slice(h);
}

/* Produce pre-copy checkpoints while the socket takes them. The shadow may be
 * rewritten only once everything queued is out (the encoder references it). */
static void pump(struct helper *h)
{
	struct pri *p = h->pri;
	while (!h->failing && p->st == P_PRECOPY && !stream_enc_pending(h->enc)) {
		if (precopy_step(h) || (stream_enc_pending(h->enc) && helper_net_send(h) != 0))
			return; /* failed, or the rest waits for the socket: pri_drained() goes on */
	}
	if (!h->failing && p->st == P_DRAIN && !stream_enc_pending(h->enc))
		begin_suspend(h);
}

/* Stream the captured checkpoint a slice at a time while the socket takes it. */
static void stream_pump(struct helper *h)
{
	struct pri *p = h->pri;
	while (!h->failing && p->st == P_STREAMING) {
		int rc = 0;
		if (stream_enc_pending(h->enc)) {
			if (helper_net_send(h) != 0)
				return; /* the rest waits for the socket: pri_drained() goes on */
			continue;
		}
		if (p->tail_done)
			return;
		if (p->enc_idx < p->cap.npfns) {
			rc = enc_slice(h);
		} else {
			rc = enc_tail(h, 0);
			p->tail_done = true;
		}
		if (rc)
			return;
	}
}

static void start_sync(struct helper *h)
{
	struct pri *p = h->pri;
	/* Clear the log first: every page written from here on is in the next scan, and
	 * pass 0 copies all RAM after this point. */
	int64_t n = dirty_scan(h->trk, h->dirty);
	if (n < 0) {
		helper_fail(h, REPL_LOCAL_ERROR, "first dirty scan failed: %s", strerror((int)-n));
		return;
	}
	dirty_set_clear(h->dirty);
	helper_send_empty(h, REPL_MSG_SYNCING);
	p->sync_t0_ns = mono_ns();
	p->pass = 0;
	p->cursor = 0;
	p->pass_pages = h->npages;
	pri_set(h, P_PRECOPY, "the secondary's header matches our VM");
	pump(h);
}

/* ---- suspend, capture, resume ------------------------------------------------------ */

/* A fresh memfd per save: QEMU's fdset shares the file offset (docs/qmp.md), and
 * QEMU's add-fd wants O_WRONLY for a save. We keep the O_RDWR one to map it. */
static int save_fd(struct pri *p)
{
	char path[64];
	p->dev_fd = memfd_create("colo-device-state", MFD_CLOEXEC);
	if (p->dev_fd < 0)
		return -errno;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p->dev_fd);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void begin_suspend(struct helper *h)
{
	struct pri *p = h->pri;
	struct wr w;
	int fd = save_fd(p);
	if (fd < 0) {
		helper_fail(h, REPL_LOCAL_ERROR, "cannot create the device-state memfd: %s",
			    strerror(-fd));
		return;
	}
	wr_init(&w);
	repl_msg_put_seq(&w, REPL_MSG_SUSPEND, p->agent_seq);
	p->t_suspend = mono_ns();
	p->captured = false;
	p->capture_rc = 0;
	pri_set(h, P_SUSPENDING, "asking the agent to stop the VM");
	helper_ask(h, OWE_SUSPEND, &w, fd);
	wr_free(&w);
	close(fd); /* the agent has its own copy now */
}

static int map_device_state(struct pri *p)
{
	struct stat st;
	if (fstat(p->dev_fd, &st) < 0)
		return -errno;
	if (st.st_size <= 0 || (uint64_t)st.st_size > STREAM_MAX_DEVICE_STATE)
		return -EMSGSIZE;
	p->dev_len = (size_t)st.st_size;
	p->dev_map = mmap(NULL, p->dev_len, PROT_READ, MAP_SHARED, p->dev_fd, 0);
	if (p->dev_map == MAP_FAILED) {
		p->dev_map = NULL;
		return -errno;
	}
	return 0;
}

/* Copy every page of the dirty set (ours + the secondary's) into the shadow. */
static void copy_set(struct helper *h)
{
	struct pri *p = h->pri;
	const uint8_t *ram = ram_map_base(h->ram);
	uint64_t cursor = 0;
	size_t n;
	p->cap.npfns = p->cap.nzeros = 0;
	while ((n = dirty_set_pfns(h->dirty, &cursor, p->batch, EXPORT_BATCH)) > 0)
		precopy_capture(&p->cap, p->shadow, ram, p->batch, n);
}

/* The VM is stopped: scan, and copy the union of both dirty sets into the shadow.
 * The set is kept until the suspend is over (see suspended()). */
static int capture(struct helper *h)
{
	struct pri *p = h->pri;
	int64_t local = dirty_scan(h->trk, h->dirty);
	if (local < 0)
		return (int)local;
	p->stats.dirty_pages_local += (uint64_t)local;
	copy_set(h);
	return 0;
}

/* The VM is stopped and QEMU is saving its devices: copy the pages meanwhile. */
static void stopped(struct helper *h)
{
	struct pri *p = h->pri;
	if (p->st != P_SUSPENDING || p->captured || h->failing)
		return;
	p->t_stopped = mono_ns();
	int rc = capture(h);
	p->t_capture_end = mono_ns();
	if (rc)
		p->capture_rc = rc;
	p->captured = true;
}

/* After an early copy (STOPPED): a device save is not expected to write guest RAM,
 * but if it did, those pages must be in this checkpoint, consistent with the saved
 * device state. One more scan (no copy when it finds nothing) makes sure. */
static int late_writes(struct helper *h)
{
	struct pri *p = h->pri;
	int64_t late = dirty_scan(h->trk, h->dirty);
	if (late <= 0)
		return (int)late;
	log_warn("helper: %lld pages written while QEMU saved its devices; copying checkpoint %llu again",
		 (long long)late, (unsigned long long)p->agent_seq);
	p->stats.dirty_pages_local += (uint64_t)late;
	copy_set(h); /* the whole set again: a pfn may appear only once per checkpoint */
	return 0;
}

static void suspended(struct helper *h, const struct repl_msg *m)
{
	struct pri *p = h->pri;
	struct wr w;
	p->t_suspended = mono_ns();
	if (m->done.err) {
		dev_release(p);
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_ABORTED,
			      "the agent could not stop the primary VM or save its device state: %s",
			      strerror(-m->done.err));
		return;
	}
	p->input_mark = m->done.input_mark;
	if (!p->captured && !h->failing) {
		p->t_stopped = p->t_suspended;
		p->capture_rc = capture(h);
		p->t_capture_end = mono_ns();
	} else if (!p->capture_rc && !h->failing) {
		p->capture_rc = late_writes(h);
	}
	dirty_set_clear(h->dirty);
	int rc = p->capture_rc;
	if (!rc && !h->failing)
		rc = map_device_state(p);
	if (rc) {
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_ABORTED, "checkpoint %llu: %s: %s",
			      (unsigned long long)p->agent_seq,
			      rc == -EMSGSIZE ? "the saved device state is empty or over 64 MiB"
					      : "capture failed",
			      strerror(-rc));
	}
	/* Resume at once, also after a failure: the VM must not stay stopped. */
	p->resumed = p->ack = false;
	wr_init(&w);
	repl_msg_put_seq(&w, REPL_MSG_RESUME, p->agent_seq);
	helper_ask(h, OWE_RESUME, &w, -1);
	wr_free(&w);
	p->t_resume = mono_ns();
	if (h->failing)
		return;
	pri_set(h, P_STREAMING, "pages captured; VM resuming");
	p->tail_done = false;
	/* Streaming starts once the VM runs again (resumed()): measured on the 2-core rig,
	 * both helpers streaming kept the CPUs busy and the agent's wakeup for `cont`
	 * waited a scheduler slice (~0.7 ms) in every pause; waiting costs the ACK only
	 * the `cont` round trip. */
	enc_begin(h, 0);
}

/* ---- commit ------------------------------------------------------------------------- */

static void fill_stats(struct pri *p)
{
	struct repl_stats *s = &p->stats;
	s->seq = p->agent_seq;
	s->pages_sent = p->cap.npfns;
	s->zero_pages = p->cap.nzeros;
	s->device_state_bytes = p->dev_len;
	s->bytes_sent = p->bytes;
	s->pause_us = helper_us(p->t_suspend, p->t_resumed);
	s->suspend_us = helper_us(p->t_suspend, p->t_suspended);
	s->capture_us = helper_us(p->t_stopped, p->t_capture_end);
	s->transfer_us = helper_us(p->t_resume, p->t_ack);
}

static void sync_done_log(struct helper *h)
{
	struct pri *p = h->pri;
	uint64_t us = helper_us(p->sync_t0_ns, p->t_ack);
	log_info("helper: initial sync done: %u passes, %llu checkpoints, %.1f MiB in %.1f ms (%.2f GB/s); the stop-and-copy copied %llu pages in %.2f ms",
		 p->pass + 1, (unsigned long long)p->sync_ckpts + 1,
		 (double)(p->sync_bytes + p->stats.bytes_sent) / (1 << 20), (double)us / 1000,
		 us ? (double)(p->sync_bytes + p->stats.bytes_sent) / ((double)us * 1000) : 0.0,
		 (unsigned long long)p->cap.npfns, (double)p->stats.capture_us / 1000);
}

/* COMMITTED needs both: the VM runs again (RESUME_DONE) and the secondary has it (ACK). */
static void maybe_commit(struct helper *h)
{
	struct pri *p = h->pri;
	if (h->failing || p->st != P_STREAMING || !p->resumed || !p->ack)
		return;
	fill_stats(p);
	if (p->agent_seq == 0)
		sync_done_log(h);
	dev_release(p);
	pri_set(h, P_PROTECTED, "secondary acknowledged");
	helper_send_stats(h, &p->stats);
	memset(&p->stats, 0, sizeof(p->stats));
}

static void resumed(struct helper *h, const struct repl_msg *m)
{
	struct pri *p = h->pri;
	p->t_resumed = mono_ns();
	if (m->done.err && !h->failing) {
		helper_reject(h, REPL_LOCAL_ERROR, STREAM_ERR_ABORTED,
			      "the agent could not resume the primary VM: %s", strerror(-m->done.err));
		return;
	}
	p->resumed = true;
	stream_pump(h);
	maybe_commit(h);
}

static void request(struct helper *h)
{
	struct pri *p = h->pri;
	if (p->st != P_PROTECTED) {
		/* repl.c only sends CHECKPOINT when PROTECTED: a bug if not. */
		log_err("helper: CHECKPOINT in state %s ignored (agent-side bug)", state_names[p->st]);
		return;
	}
	p->agent_seq++;
	memset(&p->stats, 0, sizeof(p->stats));
	int rc = stream_enc_request(h->enc, p->sent + 1);
	if (rc) {
		helper_fail(h, REPL_LOCAL_ERROR, "cannot encode CHECKPOINT_REQUEST: %s", strerror(-rc));
		return;
	}
	pri_set(h, P_REQUESTED, "checkpoint requested; waiting for the secondary's dirty list");
	helper_net_send(h);
}

void pri_agent(struct helper *h, const struct repl_msg *m)
{
	switch (m->type) {
	case REPL_MSG_CHECKPOINT:
		request(h);
		break;
	case REPL_MSG_STOPPED:
		stopped(h);
		break;
	case REPL_MSG_SUSPEND_DONE:
		suspended(h, m);
		break;
	case REPL_MSG_RESUME_DONE:
		resumed(h, m);
		break;
	default:
		log_err("helper: %s ignored: not for a primary (agent-side bug)",
			repl_msg_name(m->type));
		break;
	}
}

/* ---- the secondary's stream ---------------------------------------------------------- */

static void peer_dirty(struct helper *h, const struct stream_rec *rec)
{
	struct pri *p = h->pri;
	if (p->st != P_REQUESTED || rec->dirty.seq != p->sent + 1) {
		helper_reject(h, REPL_CORRUPT_STREAM, STREAM_ERR_UNEXPECTED,
			      "DIRTY_PFN_LIST for checkpoint %llu not requested (state %s)",
			      (unsigned long long)rec->dirty.seq, state_names[p->st]);
		return;
	}
	uint64_t pages = 0;
	for (uint32_t i = 0; i < rec->dirty.count; i++)
		pages += rec->dirty.ranges[i].count;
	/* The decoder checked every range against our RAM. */
	if (dirty_set_add_ranges(h->dirty, rec->dirty.ranges, rec->dirty.count) < 0) {
		helper_reject(h, REPL_CORRUPT_STREAM, STREAM_ERR_PFN_RANGE, "dirty list beyond RAM");
		return;
	}
	p->stats.dirty_pages_peer = pages;
	begin_suspend(h);
}

static void peer_ack(struct helper *h, uint64_t seq)
{
	struct pri *p = h->pri;
	if (seq > p->sent) {
		helper_reject(h, REPL_CORRUPT_STREAM, STREAM_ERR_SEQUENCE,
			      "ACK for checkpoint %llu, but the last one sent is %llu",
			      (unsigned long long)seq, (unsigned long long)p->sent);
		return;
	}
	p->acked = seq;
	if (p->st == P_STREAMING && seq == p->sent) {
		p->t_ack = mono_ns();
		p->ack = true;
		maybe_commit(h);
	}
}

static void record(struct helper *h, const struct stream_rec *rec)
{
	switch (rec->type) {
	case STREAM_REC_ACK:
		peer_ack(h, rec->seq);
		break;
	case STREAM_REC_DIRTY_PFN_LIST:
		peer_dirty(h, rec);
		break;
	case STREAM_REC_ERROR:
		helper_peer_error(h, rec->error.code, rec->error.reason);
		break;
	default: /* XEN_LIBXC: the decoder refuses it on a QEMU stream */
		break;
	}
}

void pri_feed(struct helper *h, const uint8_t *buf, size_t len)
{
	struct pri *p = h->pri;
	size_t pos = 0, used;
	bool hello = false;
	while (pos < len && !h->failing) {
		struct stream_rec rec;
		int rc = stream_dec_feed(p->dec, buf + pos, len - pos, &used, &rec);
		pos += used;
		if (rc < 0) {
			helper_stream_error(h, p->dec, rc);
			return;
		}
		if (!p->hello && stream_dec_offset(p->dec) >= HELPER_STREAM_HDR_LEN)
			p->hello = hello = true;
		if (rc == 1)
			record(h, &rec);
	}
	/* Only after the whole read: a refusing secondary's ERROR follows its header. */
	if (hello && !h->failing)
		start_sync(h);
}

void pri_eof(struct helper *h)
{
	struct pri *p = h->pri;
	int rc = stream_dec_eof(p->dec);
	helper_fail(h, REPL_BROKEN_CHANNEL, "the secondary %s closed the replication link%s%s",
		    h->peer_name, rc ? ": " : "", rc ? stream_dec_reason(p->dec) : "");
}

void pri_drained(struct helper *h)
{
	struct pri *p = h->pri;
	if (p->st == P_PRECOPY || p->st == P_DRAIN)
		pump(h);
	else if (p->st == P_STREAMING)
		stream_pump(h);
}
