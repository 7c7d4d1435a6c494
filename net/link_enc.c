/* link_enc.c - the network link's encoder (docs/net-link.md). */
#include <errno.h>
#include <string.h>

#include "net/link.h"

static const uint8_t magic[8] = { 'C', 'O', 'L', 'O', 'N', 'E', 'T', 'L' };

static size_t pad_of(size_t n)
{
	return (8 - n % 8) % 8;
}

int link_enc_header(struct wr *w, enum link_role sender, uint64_t config_hash)
{
	if (sender != LINK_PRIMARY && sender != LINK_SECONDARY)
		return -EINVAL;
	wr_bytes(w, magic, sizeof(magic));
	wr_be32(w, 1);
	wr_be32(w, sender);
	wr_be64(w, config_hash);
	return w->err;
}

static void rec_header(struct wr *w, uint32_t type, size_t body)
{
	wr_be32(w, type);
	wr_be32(w, (uint32_t)body);
}

int link_enc_input(struct wr *w, uint64_t seq, const void *frame, size_t len)
{
	if (len < LINK_FRAME_MIN || len > LINK_FRAME_MAX)
		return -EINVAL;
	rec_header(w, LINK_REC_INPUT, 8 + len);
	wr_be64(w, seq);
	wr_bytes(w, frame, len);
	wr_zeros(w, pad_of(8 + len));
	return w->err;
}

int link_enc_error(struct wr *w, uint32_t code, const char *reason)
{
	size_t n = strlen(reason);
	if (n > LINK_REASON_MAX)
		n = LINK_REASON_MAX;
	rec_header(w, LINK_REC_ERROR, 8 + n);
	wr_be32(w, code);
	wr_be32(w, 0);
	wr_bytes(w, reason, n);
	wr_zeros(w, pad_of(8 + n));
	return w->err;
}

int link_batch_begin(struct link_batch *b, struct wr *w, uint64_t gen)
{
	*b = (struct link_batch){ .w = w, .at = w->len };
	rec_header(w, LINK_REC_OUTPUT_BATCH, 16); /* body_length patched at the end */
	wr_be64(w, gen);
	wr_be32(w, 0); /* count, patched */
	wr_be32(w, 0);
	return w->err;
}

int link_batch_add(struct link_batch *b, const void *frame, size_t len)
{
	if (len < LINK_FRAME_MIN || len > LINK_FRAME_MAX)
		return -EINVAL;
	size_t body = b->w->len - b->at - 8, entry = 8 + len + pad_of(len);
	if (b->count == LINK_BATCH_MAX_FRAMES || body + entry > LINK_BATCH_MAX_BODY)
		return -E2BIG;
	wr_be32(b->w, (uint32_t)len);
	wr_be32(b->w, 0);
	wr_bytes(b->w, frame, len);
	wr_zeros(b->w, pad_of(len));
	if (!b->w->err)
		b->count++;
	return b->w->err;
}

int link_batch_end(struct link_batch *b)
{
	/* Entries are padded to 8 and the fixed part is 16: the body needs no padding. */
	wr_patch_be32(b->w, b->at + 4, (uint32_t)(b->w->len - b->at - 8));
	wr_patch_be32(b->w, b->at + 16, b->count);
	return b->w->err;
}
