#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int rd_need(struct rd *r, size_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = true;
		return -EBADMSG;
	}
	return 0;
}

int rd_u8(struct rd *r, uint8_t *v)
{
	if (rd_need(r, 1))
		return -EBADMSG;
	*v = r->p[r->off++];
	return 0;
}

static uint64_t load_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

int rd_be16(struct rd *r, uint16_t *v)
{
	if (rd_need(r, 2))
		return -EBADMSG;
	*v = (uint16_t)load_be(r->p + r->off, 2);
	r->off += 2;
	return 0;
}

int rd_be32(struct rd *r, uint32_t *v)
{
	if (rd_need(r, 4))
		return -EBADMSG;
	*v = (uint32_t)load_be(r->p + r->off, 4);
	r->off += 4;
	return 0;
}

int rd_be64(struct rd *r, uint64_t *v)
{
	if (rd_need(r, 8))
		return -EBADMSG;
	*v = load_be(r->p + r->off, 8);
	r->off += 8;
	return 0;
}

int rd_copy(struct rd *r, void *dst, size_t n)
{
	if (rd_need(r, n))
		return -EBADMSG;
	if (n)
		memcpy(dst, r->p + r->off, n);
	r->off += n;
	return 0;
}

int rd_ptr(struct rd *r, const uint8_t **out, size_t n)
{
	if (rd_need(r, n))
		return -EBADMSG;
	*out = r->p + r->off;
	r->off += n;
	return 0;
}

int rd_skip(struct rd *r, size_t n)
{
	if (rd_need(r, n))
		return -EBADMSG;
	r->off += n;
	return 0;
}

int rd_sub(struct rd *r, struct rd *sub, size_t n)
{
	const uint8_t *p;
	if (rd_ptr(r, &p, n))
		return -EBADMSG;
	*sub = rd_init(p, n);
	return 0;
}

void wr_free(struct wr *w)
{
	if (!w->fixed)
		free(w->buf);
	*w = (struct wr){ 0 };
}

int wr_reserve(struct wr *w, size_t n)
{
	if (w->err)
		return w->err;
	if (n <= w->cap - w->len)
		return 0;
	if (w->fixed || n > SIZE_MAX / 2 - w->len) {
		w->err = w->fixed ? -ENOSPC : -ENOMEM;
		return w->err;
	}
	size_t cap = w->cap ? w->cap : 256;
	while (cap - w->len < n)
		cap *= 2;
	uint8_t *p = realloc(w->buf, cap);
	if (!p) {
		w->err = -ENOMEM;
		return w->err;
	}
	w->buf = p;
	w->cap = cap;
	return 0;
}

static int store_be(struct wr *w, uint64_t v, size_t n)
{
	int r = wr_reserve(w, n);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++)
		w->buf[w->len + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	w->len += n;
	return 0;
}

int wr_u8(struct wr *w, uint8_t v)
{
	return store_be(w, v, 1);
}
int wr_be16(struct wr *w, uint16_t v)
{
	return store_be(w, v, 2);
}
int wr_be32(struct wr *w, uint32_t v)
{
	return store_be(w, v, 4);
}
int wr_be64(struct wr *w, uint64_t v)
{
	return store_be(w, v, 8);
}

int wr_bytes(struct wr *w, const void *p, size_t n)
{
	int r = wr_reserve(w, n);
	if (r)
		return r;
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

int wr_zeros(struct wr *w, size_t n)
{
	int r = wr_reserve(w, n);
	if (r)
		return r;
	memset(w->buf + w->len, 0, n);
	w->len += n;
	return 0;
}

int wr_patch_be32(struct wr *w, size_t at, uint32_t v)
{
	if (at > w->len || w->len - at < 4)
		return -EINVAL;
	for (size_t i = 0; i < 4; i++)
		w->buf[at + i] = (uint8_t)(v >> (8 * (3 - i)));
	return 0;
}
