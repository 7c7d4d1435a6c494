/* fuzz_net_link.c - libFuzzer target for the network link's decoder
 * (net/link_dec.c, docs/net-link.md).
 *
 * Input: octet 0 is the mode, the rest a stream.
 *   bit 0     0: the secondary decodes the primary's stream; 1: the reverse
 *   bits 1-7  split size - 1 for the second pass
 * Every input is decoded twice, whole and in pieces of the split size; both passes
 * must reach the same verdict and yield the same records (a split-dependent
 * decoder is a bug even when it does not crash). Every frame of every batch is
 * read to its last octet, so ASan sees a batch the decoder validated wrongly.
 * Seeds: fuzz/corpus/fuzz_net_link/, written by tests/unit/test_net_link.c
 * (COLO_WRITE_SEEDS=dir). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HASH 0x1122334455667788ull

struct pass {
	int rc;
	uint32_t code;
	uint64_t print;
};

static void fold(struct pass *p, uint64_t v)
{
	p->print = (p->print ^ v) * 0x100000001b3ull;
}

static void fold_bytes(struct pass *p, const uint8_t *b, size_t n)
{
	uint64_t h = n;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	fold(p, h);
}

static void use(struct pass *p, const struct link_rec *rec)
{
	struct link_batch_iter it;
	const uint8_t *f;
	size_t n;
	uint32_t count = 0;
	fold(p, rec->type);
	switch (rec->type) {
	case LINK_REC_INPUT:
		fold(p, rec->input.seq);
		fold_bytes(p, rec->input.frame, rec->input.len);
		break;
	case LINK_REC_OUTPUT_BATCH:
		fold(p, rec->batch.gen);
		link_batch_iter_init(&it, rec);
		while (link_batch_next(&it, &f, &n)) {
			if (n < LINK_FRAME_MIN || n > LINK_FRAME_MAX)
				abort();
			fold_bytes(p, f, n);
			count++;
		}
		if (count != rec->batch.count)
			abort(); /* the decoder promised a batch the iterator cannot walk */
		break;
	case LINK_REC_ERROR:
		fold(p, rec->error.code);
		fold_bytes(p, (const uint8_t *)rec->error.reason, strlen(rec->error.reason));
		break;
	}
}

static struct pass run(enum link_role self, const uint8_t *s, size_t n, size_t split)
{
	struct link_dec *d;
	struct pass p = { 0 };
	if (link_dec_new(self, HASH, &d) < 0)
		abort();
	size_t pos = 0, used;
	while (pos < n && p.rc >= 0) {
		struct link_rec rec;
		size_t k = n - pos < split ? n - pos : split;
		p.rc = link_dec_feed(d, s + pos, k, &used, &rec);
		if (used > k)
			abort();
		pos += used;
		if (p.rc == 1)
			use(&p, &rec);
	}
	if (p.rc >= 0)
		p.rc = link_dec_eof(d);
	p.code = link_dec_code(d);
	link_dec_free(d);
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum link_role self = data[0] & 1 ? LINK_PRIMARY : LINK_SECONDARY;
	struct pass whole = run(self, data + 1, size - 1, SIZE_MAX);
	struct pass split = run(self, data + 1, size - 1, (size_t)(data[0] >> 1) + 1);
	if (whole.rc != split.rc || whole.code != split.code || whole.print != split.print)
		abort();
	return 0;
}
