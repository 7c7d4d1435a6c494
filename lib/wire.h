/* wire.h - bounds-checked cursors for reading and writing wire data in network
 * byte order. Every wire field in colo goes through these; no struct is ever cast
 * over a buffer.
 *
 * Reader: every getter returns 0, or -EBADMSG when the buffer is too short; the
 * error is sticky (rd.err), so a parser may read a whole record and check once.
 * Writer: appends into a growable buffer (or a fixed one with wr_init_fixed);
 * -ENOMEM / -ENOSPC are sticky likewise.
 */
#ifndef COLO_LIB_WIRE_H
#define COLO_LIB_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool err;
};

static inline struct rd rd_init(const void *p, size_t len)
{
	return (struct rd){ .p = p, .len = len, .off = 0, .err = false };
}
static inline size_t rd_left(const struct rd *r)
{
	return r->len - r->off;
}
int rd_u8(struct rd *r, uint8_t *v);
int rd_be16(struct rd *r, uint16_t *v);
int rd_be32(struct rd *r, uint32_t *v);
int rd_be64(struct rd *r, uint64_t *v);
/* Copy n bytes out. */
int rd_copy(struct rd *r, void *dst, size_t n);
/* Borrow a pointer to the next n bytes without copying. */
int rd_ptr(struct rd *r, const uint8_t **out, size_t n);
int rd_skip(struct rd *r, size_t n);
/* Split off a sub-cursor over the next n bytes and advance past them. */
int rd_sub(struct rd *r, struct rd *sub, size_t n);

struct wr {
	uint8_t *buf;
	size_t len;
	size_t cap;
	bool fixed;
	int err; /* 0, -ENOMEM or -ENOSPC */
};

static inline void wr_init(struct wr *w)
{
	*w = (struct wr){ 0 };
}
static inline void wr_init_fixed(struct wr *w, void *buf, size_t cap)
{
	*w = (struct wr){ .buf = buf, .cap = cap, .fixed = true };
}
void wr_free(struct wr *w);
/* Reset length to 0, keeping the allocation. */
static inline void wr_reset(struct wr *w)
{
	w->len = 0;
	w->err = 0;
}
int wr_reserve(struct wr *w, size_t n);
int wr_u8(struct wr *w, uint8_t v);
int wr_be16(struct wr *w, uint16_t v);
int wr_be32(struct wr *w, uint32_t v);
int wr_be64(struct wr *w, uint64_t v);
int wr_bytes(struct wr *w, const void *p, size_t n);
int wr_zeros(struct wr *w, size_t n);
/* Overwrite a big-endian u32 at an earlier offset (for back-patched lengths). */
int wr_patch_be32(struct wr *w, size_t at, uint32_t v);

#endif
