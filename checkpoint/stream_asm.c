/* stream_asm.c - the secondary's side of the commit rule (spec §7): collect one
 * checkpoint's records, keeping the decoder's body buffers rather than copying
 * them, and hand the checkpoint out only after its END verified. Anything less
 * is freed, never exposed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/stream_int.h"

/* One kept record: its body buffer and the decoded view into it. */
struct part {
	uint32_t type;
	uint8_t *body;
	size_t body_cap;
	const uint64_t *pfns; /* PAGE_DATA, ZERO_PAGES */
	const uint8_t *data;  /* page data, device state, libxc slice */
	size_t count;         /* pages, or bytes of a blob */
};

struct stream_ckpt {
	uint64_t seq;
	uint32_t flags;
	uint32_t page_size;
	uint64_t ram_size;
	bool has_mark;
	uint64_t mark;
	struct part *parts;
	size_t nparts, cap;
	uint64_t npages, nzero;
	const uint8_t *dev; /* into its part's body, which never moves */
	size_t dev_len;
};

/* A body buffer waiting for reuse. */
struct spare {
	uint8_t *buf;
	size_t cap;
};

struct stream_asm {
	struct stream_dec *dec;
	struct stream_ident id;
	struct stream_ckpt *cur;   /* being received */
	struct stream_ckpt *ready; /* verified, not yet taken */
	int rc;                    /* sticky local failure (-ENOMEM) */
	/* Buffers of released checkpoints. Fresh memory costs a page fault per 4 KiB
	 * on first touch; reusing the last checkpoint's buffers keeps that off the
	 * per-checkpoint path. Bounded, so a large initial sync is not kept around. */
	struct spare *pool;
	size_t npool, pool_cap, pool_bytes;
};

#define POOL_MAX_BYTES (256u << 20)

static void pool_put(struct stream_asm *a, uint8_t *buf, size_t cap)
{
	if (a->pool_bytes + cap > POOL_MAX_BYTES) {
		free(buf);
		return;
	}
	if (a->npool == a->pool_cap) {
		size_t n = a->pool_cap ? a->pool_cap * 2 : 64;
		struct spare *p = realloc(a->pool, n * sizeof(*p));
		if (!p) {
			free(buf); /* only an optimisation: drop it */
			return;
		}
		a->pool = p;
		a->pool_cap = n;
	}
	a->pool[a->npool++] = (struct spare){ .buf = buf, .cap = cap };
	a->pool_bytes += cap;
}

/* The decoder needs a body buffer of at least len bytes: the last spare that
 * fits. Spares are mostly full page batches, so the scan ends at once. */
static uint8_t *pool_take(void *arg, size_t len, size_t *cap)
{
	struct stream_asm *a = arg;
	for (size_t i = a->npool; i-- > 0;) {
		struct spare sp = a->pool[i];
		if (sp.cap < len)
			continue;
		a->pool[i] = a->pool[--a->npool];
		a->pool_bytes -= sp.cap;
		*cap = sp.cap;
		return sp.buf;
	}
	return NULL;
}

struct stream_asm *stream_asm_new(const struct stream_ident *local)
{
	struct stream_asm *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->dec = stream_dec_new(local, STREAM_SECONDARY);
	if (!a->dec) {
		free(a);
		return NULL;
	}
	a->id = *local;
	stream_dec_set_pool(a->dec, pool_take, a);
	return a;
}

void stream_ckpt_free(struct stream_ckpt *ck)
{
	if (!ck)
		return;
	for (size_t i = 0; i < ck->nparts; i++)
		free(ck->parts[i].body);
	free(ck->parts);
	free(ck);
}

void stream_asm_free(struct stream_asm *a)
{
	if (!a)
		return;
	stream_ckpt_free(a->cur);
	stream_ckpt_free(a->ready);
	stream_dec_free(a->dec);
	for (size_t i = 0; i < a->npool; i++)
		free(a->pool[i].buf);
	free(a->pool);
	free(a);
}

void stream_asm_release(struct stream_asm *a, struct stream_ckpt *ck)
{
	if (!ck)
		return;
	for (size_t i = 0; i < ck->nparts; i++)
		pool_put(a, ck->parts[i].body, ck->parts[i].body_cap);
	ck->nparts = 0;
	stream_ckpt_free(ck);
}

const struct stream_dec *stream_asm_dec(const struct stream_asm *a)
{
	return a->dec;
}

static void discard(struct stream_asm *a)
{
	stream_ckpt_free(a->cur);
	a->cur = NULL;
}

static int begin(struct stream_asm *a, const struct stream_rec *rec)
{
	struct stream_ckpt *ck = calloc(1, sizeof(*ck));
	if (!ck)
		return -ENOMEM;
	ck->seq = rec->begin.seq;
	ck->flags = rec->begin.flags;
	ck->page_size = a->id.page_size;
	ck->ram_size = a->id.ram_size;
	discard(a); /* the decoder allows no BEGIN inside a checkpoint; belt and braces */
	a->cur = ck;
	return 0;
}

/* Keep the record's body: the buffer moves from the decoder to the checkpoint. */
static int keep(struct stream_asm *a, const struct stream_rec *rec)
{
	struct stream_ckpt *ck = a->cur;
	if (ck->nparts == ck->cap) {
		size_t cap = ck->cap ? ck->cap * 2 : 16;
		struct part *p = realloc(ck->parts, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		ck->parts = p;
		ck->cap = cap;
	}
	struct part *p = &ck->parts[ck->nparts++];
	*p = (struct part){ .type = rec->type };
	p->body = stream_dec_steal_body(a->dec, &p->body_cap);
	if (rec->type == STREAM_REC_PAGE_DATA || rec->type == STREAM_REC_ZERO_PAGES) {
		p->pfns = rec->pages.pfns;
		p->data = rec->pages.data;
		p->count = rec->pages.count;
		*(p->data ? &ck->npages : &ck->nzero) += p->count;
	} else {
		p->data = rec->blob.data;
		p->count = rec->blob.len;
		if (rec->type == STREAM_REC_DEVICE_STATE) {
			ck->dev = p->data;
			ck->dev_len = p->count;
		}
	}
	return 0;
}

/* Take a checkpoint record: 0 kept, STREAM_ASM_CHECKPOINT at a verified END,
 * STREAM_ASM_RECORD for the caller's records, negative errno. */
static int absorb(struct stream_asm *a, const struct stream_rec *rec)
{
	switch (rec->type) {
	case STREAM_REC_BEGIN:
		return begin(a, rec);
	case STREAM_REC_PAGE_DATA:
	case STREAM_REC_ZERO_PAGES:
	case STREAM_REC_DEVICE_STATE:
	case STREAM_REC_XEN_LIBXC:
		return keep(a, rec);
	case STREAM_REC_INPUT_MARK:
		a->cur->has_mark = true;
		a->cur->mark = rec->input_mark;
		return 0;
	case STREAM_REC_END:
		a->ready = a->cur;
		a->cur = NULL;
		return STREAM_ASM_CHECKPOINT;
	case STREAM_REC_ERROR:
		discard(a);
		return STREAM_ASM_RECORD;
	default:
		return STREAM_ASM_RECORD;
	}
}

int stream_asm_feed(struct stream_asm *a, const void *buf, size_t len, size_t *used,
		    struct stream_rec *rec)
{
	const uint8_t *p = buf;
	size_t pos = 0, k;
	int rc = a->rc;
	if (!rc && a->ready)
		rc = -EBUSY;
	while (!rc && pos < len) {
		rc = stream_dec_feed(a->dec, p + pos, len - pos, &k, rec);
		pos += k;
		if (rc == 1)
			rc = absorb(a, rec);
	}
	if (rc < 0 && rc != -EBUSY) {
		/* Never applied, not even in part. */
		discard(a);
		if (rc == -ENOMEM)
			a->rc = rc;
	}
	*used = pos;
	return rc;
}

struct stream_ckpt *stream_asm_take(struct stream_asm *a)
{
	struct stream_ckpt *ck = a->ready;
	a->ready = NULL;
	return ck;
}

int stream_asm_eof(struct stream_asm *a)
{
	discard(a);
	return stream_dec_eof(a->dec);
}

uint64_t stream_ckpt_seq(const struct stream_ckpt *ck)
{
	return ck->seq;
}

uint32_t stream_ckpt_flags(const struct stream_ckpt *ck)
{
	return ck->flags;
}

uint64_t stream_ckpt_page_count(const struct stream_ckpt *ck)
{
	return ck->npages;
}

uint64_t stream_ckpt_zero_count(const struct stream_ckpt *ck)
{
	return ck->nzero;
}

bool stream_ckpt_input_mark(const struct stream_ckpt *ck, uint64_t *mark)
{
	if (ck->has_mark)
		*mark = ck->mark;
	return ck->has_mark;
}

const void *stream_ckpt_device_state(const struct stream_ckpt *ck, size_t *len)
{
	*len = ck->dev_len;
	return ck->dev;
}

int stream_ckpt_foreach_batch(const struct stream_ckpt *ck,
			      int (*fn)(void *arg, const uint64_t *pfns, size_t n, const uint8_t *data),
			      void *arg)
{
	for (size_t i = 0; i < ck->nparts; i++) {
		const struct part *p = &ck->parts[i];
		if (p->type != STREAM_REC_PAGE_DATA && p->type != STREAM_REC_ZERO_PAGES)
			continue;
		int rc = fn(arg, p->pfns, p->count, p->data);
		if (rc)
			return rc;
	}
	return 0;
}

int stream_ckpt_foreach_xen(const struct stream_ckpt *ck,
			    int (*fn)(void *arg, const uint8_t *data, size_t len), void *arg)
{
	for (size_t i = 0; i < ck->nparts; i++) {
		const struct part *p = &ck->parts[i];
		if (p->type != STREAM_REC_XEN_LIBXC)
			continue;
		int rc = fn(arg, p->data, p->count);
		if (rc)
			return rc;
	}
	return 0;
}

/* pfns were checked against this RAM size by the decoder, so every page lands
 * inside the mapping. */
int stream_ckpt_apply_ram(const struct stream_ckpt *ck, void *ram, uint64_t ram_size)
{
	uint8_t *base = ram;
	size_t ps = ck->page_size;
	if (ram_size != ck->ram_size)
		return -EINVAL;
	for (size_t i = 0; i < ck->nparts; i++) {
		const struct part *p = &ck->parts[i];
		if (p->type == STREAM_REC_PAGE_DATA)
			for (size_t j = 0; j < p->count; j++)
				memcpy(base + p->pfns[j] * ps, p->data + j * ps, ps);
		else if (p->type == STREAM_REC_ZERO_PAGES)
			for (size_t j = 0; j < p->count; j++)
				memset(base + p->pfns[j] * ps, 0, ps);
	}
	return 0;
}
