/* stream_enc.c - the encoder: small records into our own buffer, page data and
 * other large payloads referenced where they lie, all sent with one sendmsg/writev
 * per IOV_MAX segments. The encoder enforces the same rules as the decoder
 * (stream_seq_*), so our own bugs fail here with -EINVAL instead of at the peer. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <xxhash.h>

#include "checkpoint/stream_int.h"

/* A piece of pending output: bytes of our own buffer (ext == NULL, at `off`; an
 * offset because the buffer moves when it grows) or caller memory used in place. */
struct seg {
	const uint8_t *ext;
	size_t off;
	size_t len;
};

struct stream_enc {
	struct stream_ident id;
	uint64_t ram_pages;
	struct stream_seq seq;
	bool header_done;
	int err; /* sticky -ENOMEM: a record may be half queued */
	struct wr buf;
	struct seg *segs;
	size_t nsegs, segs_cap;
	size_t head, head_off; /* first unsent segment and bytes of it already sent */
	size_t pending;
	XXH3_state_t *xxh;
	bool hashing; /* inside a checkpoint: record headers and bodies are checksummed */
};

struct stream_enc *stream_enc_new(const struct stream_ident *id, enum stream_role self)
{
	if (stream_ident_check(id) || (self != STREAM_PRIMARY && self != STREAM_SECONDARY))
		return NULL;
	struct stream_enc *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->xxh = XXH3_createState();
	if (!e->xxh) {
		free(e);
		return NULL;
	}
	e->id = *id;
	e->ram_pages = id->ram_size / id->page_size;
	stream_seq_init(&e->seq, self, id->backend);
	wr_init(&e->buf);
	return e;
}

void stream_enc_free(struct stream_enc *e)
{
	if (!e)
		return;
	XXH3_freeState(e->xxh);
	wr_free(&e->buf);
	free(e->segs);
	free(e);
}

static int fail(struct stream_enc *e, int err)
{
	if (!e->err)
		e->err = err;
	return e->err;
}

static bool seg_extends(const struct seg *last, const uint8_t *ext, size_t off)
{
	if (ext)
		return last->ext && last->ext + last->len == ext;
	return !last->ext && last->off + last->len == off;
}

/* Queue a segment, merging it into the previous one when they touch: contiguous
 * guest pages become one iovec. */
static int push_seg(struct stream_enc *e, const uint8_t *ext, size_t off, size_t len)
{
	if (!len)
		return 0;
	if (e->nsegs > e->head && seg_extends(&e->segs[e->nsegs - 1], ext, off)) {
		e->segs[e->nsegs - 1].len += len;
		e->pending += len;
		return 0;
	}
	if (e->nsegs == e->segs_cap) {
		size_t cap = e->segs_cap ? e->segs_cap * 2 : 64;
		struct seg *s = realloc(e->segs, cap * sizeof(*s));
		if (!s)
			return fail(e, -ENOMEM);
		e->segs = s;
		e->segs_cap = cap;
	}
	e->segs[e->nsegs++] = (struct seg){ .ext = ext, .off = off, .len = len };
	e->pending += len;
	return 0;
}

/* Queue our buffer from `start` to its end; checksum it when `hash`. */
static int queue_own(struct stream_enc *e, size_t start, bool hash)
{
	if (e->buf.err)
		return fail(e, e->buf.err);
	if (hash && e->hashing)
		XXH3_64bits_update(e->xxh, e->buf.buf + start, e->buf.len - start);
	return push_seg(e, NULL, start, e->buf.len - start);
}

static int queue_ext(struct stream_enc *e, const void *p, size_t len)
{
	if (e->hashing)
		XXH3_64bits_update(e->xxh, p, len);
	return push_seg(e, p, 0, len);
}

static int queue_pad(struct stream_enc *e, uint32_t body_len)
{
	size_t start = e->buf.len;
	wr_zeros(&e->buf, stream_pad(body_len));
	return queue_own(e, start, false);
}

/* Start a record in our buffer; returns where it starts. */
static size_t rec_open(struct stream_enc *e, uint32_t type, uint32_t len)
{
	size_t start = e->buf.len;
	wr_be32(&e->buf, type);
	wr_be32(&e->buf, len);
	return start;
}

/* Finish a record written entirely into our buffer. */
static int rec_close(struct stream_enc *e, size_t start)
{
	uint32_t body_len = (uint32_t)(e->buf.len - start - REC_HDR_LEN);
	int r = queue_own(e, start, true);
	return r ? r : queue_pad(e, body_len);
}

/* May we append a record of this type and body length now? */
static int check(struct stream_enc *e, uint32_t type, uint64_t body_len)
{
	char why[160];
	uint32_t min, max;
	if (e->err)
		return e->err;
	if (!e->header_done || stream_seq_allow(&e->seq, type, why, sizeof(why)))
		return -EINVAL;
	stream_rec_limits(&e->id, type, &min, &max);
	return body_len < min || body_len > max ? -EINVAL : 0;
}

static int step(struct stream_enc *e, uint32_t type, uint64_t seq, uint32_t flags)
{
	char why[160];
	return stream_seq_step(&e->seq, type, seq, flags, why, sizeof(why)) ? -EINVAL : 0;
}

static int put_u64_rec(struct stream_enc *e, uint32_t type, uint64_t v)
{
	size_t start = rec_open(e, type, SEQ_LEN);
	wr_be64(&e->buf, v);
	return rec_close(e, start);
}

int stream_enc_header(struct stream_enc *e)
{
	if (e->err)
		return e->err;
	if (e->header_done)
		return -EINVAL;
	size_t start = e->buf.len;
	wr_be64(&e->buf, STREAM_MAGIC);
	wr_be32(&e->buf, STREAM_VERSION);
	wr_be32(&e->buf, e->seq.sender);
	wr_be32(&e->buf, e->id.backend);
	wr_be32(&e->buf, e->id.page_size);
	wr_be64(&e->buf, e->id.ram_size);
	wr_be64(&e->buf, e->id.config_hash);
	e->header_done = true;
	return queue_own(e, start, false);
}

int stream_enc_request(struct stream_enc *e, uint64_t seq)
{
	int r = check(e, STREAM_REC_REQUEST, SEQ_LEN);
	if (!r)
		r = step(e, STREAM_REC_REQUEST, seq, 0);
	return r ? r : put_u64_rec(e, STREAM_REC_REQUEST, seq);
}

int stream_enc_begin(struct stream_enc *e, uint64_t seq, uint32_t flags)
{
	int r = check(e, STREAM_REC_BEGIN, BEGIN_LEN);
	if (!r)
		r = step(e, STREAM_REC_BEGIN, seq, flags);
	if (r)
		return r;
	/* The checksum covers BEGIN up to, not including, END. */
	XXH3_64bits_reset(e->xxh);
	e->hashing = true;
	size_t start = rec_open(e, STREAM_REC_BEGIN, BEGIN_LEN);
	wr_be64(&e->buf, seq);
	wr_be32(&e->buf, flags);
	wr_be32(&e->buf, 0);
	return rec_close(e, start);
}

static int check_pfns(const struct stream_enc *e, const uint64_t *pfns, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pfns[i] >= e->ram_pages)
			return -EINVAL;
	return 0;
}

/* One PAGE_DATA record: header and pfns in our buffer, pages in place. Page-size
 * multiples keep the body 8-aligned: no padding. */
static int page_batch(struct stream_enc *e, const uint64_t *pfns, uint32_t k, const uint8_t *ram)
{
	uint32_t ps = e->id.page_size;
	size_t start = rec_open(e, STREAM_REC_PAGE_DATA, BATCH_HDR_LEN + k * (PFN_LEN + ps));
	wr_be32(&e->buf, k);
	wr_be32(&e->buf, 0);
	for (uint32_t i = 0; i < k; i++)
		wr_be64(&e->buf, pfns[i]);
	int r = queue_own(e, start, true);
	for (uint32_t i = 0; i < k && !r; i++)
		r = queue_ext(e, ram + pfns[i] * ps, ps);
	return r;
}

int stream_enc_pages(struct stream_enc *e, const uint64_t *pfns, size_t n, const void *ram)
{
	int r = check(e, STREAM_REC_PAGE_DATA, BATCH_HDR_LEN + PFN_LEN + e->id.page_size);
	if (!r)
		r = check_pfns(e, pfns, n);
	for (size_t i = 0; i < n && !r; i += STREAM_MAX_PAGE_BATCH) {
		size_t k = n - i < STREAM_MAX_PAGE_BATCH ? n - i : STREAM_MAX_PAGE_BATCH;
		r = page_batch(e, pfns + i, (uint32_t)k, ram);
	}
	return r;
}

static int zero_batch(struct stream_enc *e, const uint64_t *pfns, uint32_t k)
{
	size_t start = rec_open(e, STREAM_REC_ZERO_PAGES, BATCH_HDR_LEN + k * PFN_LEN);
	wr_be32(&e->buf, k);
	wr_be32(&e->buf, 0);
	for (uint32_t i = 0; i < k; i++)
		wr_be64(&e->buf, pfns[i]);
	return rec_close(e, start);
}

int stream_enc_zero_pages(struct stream_enc *e, const uint64_t *pfns, size_t n)
{
	int r = check(e, STREAM_REC_ZERO_PAGES, BATCH_HDR_LEN + PFN_LEN);
	if (!r)
		r = check_pfns(e, pfns, n);
	for (size_t i = 0; i < n && !r; i += STREAM_MAX_ZERO_BATCH) {
		size_t k = n - i < STREAM_MAX_ZERO_BATCH ? n - i : STREAM_MAX_ZERO_BATCH;
		r = zero_batch(e, pfns + i, (uint32_t)k);
	}
	return r;
}

/* A record whose body is caller memory, referenced in place. */
static int put_blob(struct stream_enc *e, uint32_t type, const void *data, size_t len)
{
	int r = check(e, type, len);
	if (!r)
		r = step(e, type, 0, 0);
	if (r)
		return r;
	size_t start = rec_open(e, type, (uint32_t)len);
	r = queue_own(e, start, true);
	if (!r)
		r = queue_ext(e, data, len);
	return r ? r : queue_pad(e, (uint32_t)len);
}

int stream_enc_device_state(struct stream_enc *e, const void *data, size_t len)
{
	return put_blob(e, STREAM_REC_DEVICE_STATE, data, len);
}

int stream_enc_xen_libxc(struct stream_enc *e, const void *data, size_t len)
{
	return put_blob(e, STREAM_REC_XEN_LIBXC, data, len);
}

int stream_enc_input_mark(struct stream_enc *e, uint64_t input_seq)
{
	int r = check(e, STREAM_REC_INPUT_MARK, MARK_LEN);
	if (!r)
		r = step(e, STREAM_REC_INPUT_MARK, 0, 0);
	return r ? r : put_u64_rec(e, STREAM_REC_INPUT_MARK, input_seq);
}

int stream_enc_end(struct stream_enc *e)
{
	uint64_t seq = e->seq.cur;
	int r = check(e, STREAM_REC_END, END_LEN);
	if (!r)
		r = step(e, STREAM_REC_END, seq, 0);
	if (r)
		return r;
	uint64_t sum = XXH3_64bits_digest(e->xxh);
	e->hashing = false;
	size_t start = rec_open(e, STREAM_REC_END, END_LEN);
	wr_be64(&e->buf, seq);
	wr_be64(&e->buf, sum);
	return rec_close(e, start);
}

static int check_ranges(const struct stream_enc *e, const struct stream_range *rg, size_t n)
{
	uint64_t next = 0; /* ranges are sorted: each starts at or after the previous end */
	for (size_t i = 0; i < n; i++) {
		if (!rg[i].count || rg[i].first < next || rg[i].first >= e->ram_pages ||
		    rg[i].count > e->ram_pages - rg[i].first)
			return -EINVAL;
		next = rg[i].first + rg[i].count;
	}
	return 0;
}

int stream_enc_dirty(struct stream_enc *e, uint64_t seq, const struct stream_range *rg, size_t n)
{
	uint64_t len = DIRTY_HDR_LEN + (uint64_t)n * RANGE_LEN;
	int r = check(e, STREAM_REC_DIRTY_PFN_LIST, n > e->ram_pages ? UINT64_MAX : len);
	if (!r)
		r = check_ranges(e, rg, n);
	if (!r)
		r = step(e, STREAM_REC_DIRTY_PFN_LIST, seq, 0);
	if (r)
		return r;
	size_t start = rec_open(e, STREAM_REC_DIRTY_PFN_LIST, (uint32_t)len);
	wr_be64(&e->buf, seq);
	wr_be32(&e->buf, (uint32_t)n);
	wr_be32(&e->buf, 0);
	for (size_t i = 0; i < n; i++) {
		wr_be64(&e->buf, rg[i].first);
		wr_be64(&e->buf, rg[i].count);
	}
	return rec_close(e, start);
}

int stream_enc_ack(struct stream_enc *e, uint64_t seq)
{
	int r = check(e, STREAM_REC_ACK, SEQ_LEN);
	if (!r)
		r = step(e, STREAM_REC_ACK, seq, 0);
	return r ? r : put_u64_rec(e, STREAM_REC_ACK, seq);
}

int stream_enc_error(struct stream_enc *e, uint32_t code, const char *reason)
{
	size_t n = reason ? strnlen(reason, STREAM_MAX_REASON) : 0;
	int r = check(e, STREAM_REC_ERROR, ERROR_HDR_LEN + n);
	if (!r)
		r = step(e, STREAM_REC_ERROR, 0, 0);
	if (r)
		return r;
	e->hashing = false;
	size_t start = rec_open(e, STREAM_REC_ERROR, (uint32_t)(ERROR_HDR_LEN + n));
	wr_be32(&e->buf, code);
	wr_be32(&e->buf, 0);
	wr_bytes(&e->buf, reason, n);
	return rec_close(e, start);
}

size_t stream_enc_pending(const struct stream_enc *e)
{
	return e->pending;
}

int stream_enc_iov(const struct stream_enc *e, struct iovec *iov, int max)
{
	int cnt = 0;
	for (size_t i = e->head; i < e->nsegs && cnt < max; i++) {
		const struct seg *s = &e->segs[i];
		size_t skip = i == e->head ? e->head_off : 0;
		const uint8_t *base = s->ext ? s->ext : e->buf.buf + s->off;
		iov[cnt++] = (struct iovec){ .iov_base = (void *)(base + skip), .iov_len = s->len - skip };
	}
	return cnt;
}

void stream_enc_consume(struct stream_enc *e, size_t n)
{
	if (n > e->pending)
		n = e->pending;
	e->pending -= n;
	while (n) {
		size_t left = e->segs[e->head].len - e->head_off;
		if (n < left) {
			e->head_off += n;
			break;
		}
		n -= left;
		e->head++;
		e->head_off = 0;
	}
	/* Everything out: start the buffer over so it does not grow forever. */
	if (!e->pending) {
		wr_reset(&e->buf);
		e->nsegs = e->head = e->head_off = 0;
	}
}

static ssize_t send_iov(int fd, struct iovec *iov, int cnt)
{
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
	/* MSG_NOSIGNAL: a dead peer is an -EPIPE for the caller, not a signal. */
	ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
	if (n < 0 && errno == ENOTSOCK)
		n = writev(fd, iov, cnt);
	return n;
}

int stream_enc_flush(struct stream_enc *e, int fd)
{
	struct iovec iov[IOV_MAX];
	while (e->pending) {
		int cnt = stream_enc_iov(e, iov, IOV_MAX);
		ssize_t n = send_iov(fd, iov, cnt);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		stream_enc_consume(e, (size_t)n);
	}
	return 0;
}

int stream_enc_drain(struct stream_enc *e, struct wr *out)
{
	struct iovec iov[64];
	while (e->pending) {
		int cnt = stream_enc_iov(e, iov, 64);
		size_t n = 0;
		for (int i = 0; i < cnt; i++) {
			wr_bytes(out, iov[i].iov_base, iov[i].iov_len);
			n += iov[i].iov_len;
		}
		if (out->err)
			return out->err;
		stream_enc_consume(e, n);
	}
	return 0;
}
