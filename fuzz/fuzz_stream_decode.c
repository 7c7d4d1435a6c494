/* fuzz_stream_decode.c - libFuzzer target for the checkpoint stream decoder and the
 * secondary's assembler (checkpoint/stream_dec.c, stream_asm.c).
 *
 * Input: byte 0 selects the mode, the rest is a stream.
 *   bit 0     0: the secondary decodes the primary's stream (assembler);
 *             1: the primary decodes the secondary's stream (bare decoder)
 *   bit 1     0: QEMU backend, 1: Xen backend
 *   bits 2-7  split size - 1 for the second pass
 * The local VM: 16 pages of 4 KiB, config hash stream_config_hash("fuzz").
 *
 * Every input is decoded twice, in one piece and in pieces of the split size; both
 * passes must reach the same verdict and the same records (a split-dependent
 * decoder is a bug even when it does not crash). Completed checkpoints are applied
 * to a RAM buffer of exactly the VM's size, so ASan sees any write outside it.
 * Seeds: fuzz/corpus/fuzz_stream_decode/, written by tests/unit/test_stream.c
 * (COLO_WRITE_SEEDS=dir). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "checkpoint/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PS 4096u
#define PAGES 16u

struct pass {
	int rc;
	uint32_t code;
	uint64_t print; /* what was yielded, folded */
};

static void fold(struct pass *p, uint64_t v)
{
	p->print = (p->print ^ v) * 0x100000001b3ull;
}

static int fold_batch(void *arg, const uint64_t *pfns, size_t n, const uint8_t *data)
{
	for (size_t i = 0; i < n; i++)
		fold(arg, pfns[i] + (data ? data[i * PS + PS - 1] : 0));
	return 0;
}

static int fold_xen(void *arg, const uint8_t *data, size_t len)
{
	fold(arg, XXH3_64bits(data, len));
	return 0;
}

static void use_checkpoint(struct pass *p, struct stream_ckpt *ck, uint8_t *ram)
{
	size_t len;
	uint64_t mark = 0;
	const void *dev = stream_ckpt_device_state(ck, &len);
	fold(p, stream_ckpt_seq(ck));
	fold(p, dev ? XXH3_64bits(dev, len) : 0);
	fold(p, stream_ckpt_input_mark(ck, &mark) ? mark : 1);
	stream_ckpt_foreach_batch(ck, fold_batch, p);
	stream_ckpt_foreach_xen(ck, fold_xen, p);
	if (stream_ckpt_apply_ram(ck, ram, PAGES * PS) == 0)
		fold(p, XXH3_64bits(ram, PAGES * PS));
	stream_ckpt_free(ck);
}

static void use_record(struct pass *p, const struct stream_rec *rec)
{
	fold(p, rec->type);
	switch (rec->type) {
	case STREAM_REC_DIRTY_PFN_LIST:
		for (uint32_t i = 0; i < rec->dirty.count; i++)
			fold(p, rec->dirty.ranges[i].first ^ rec->dirty.ranges[i].count << 32);
		break;
	case STREAM_REC_ERROR:
		fold(p, rec->error.code ^ XXH3_64bits(rec->error.reason, strlen(rec->error.reason)));
		break;
	case STREAM_REC_XEN_LIBXC:
		fold(p, XXH3_64bits(rec->blob.data, rec->blob.len));
		break;
	case STREAM_REC_ACK:
	case STREAM_REC_REQUEST:
		fold(p, rec->seq);
		break;
	}
}

static struct pass run_asm(const struct stream_ident *id, const uint8_t *s, size_t n, size_t split)
{
	struct stream_asm *a = stream_asm_new(id);
	uint8_t *ram = calloc(PAGES, PS);
	struct pass p = { 0 };
	size_t pos = 0, used;
	while (pos < n && p.rc >= 0) {
		struct stream_rec rec;
		size_t k = n - pos < split ? n - pos : split;
		p.rc = stream_asm_feed(a, s + pos, k, &used, &rec);
		pos += used;
		if (p.rc == STREAM_ASM_RECORD)
			use_record(&p, &rec);
		else if (p.rc == STREAM_ASM_CHECKPOINT)
			use_checkpoint(&p, stream_asm_take(a), ram);
	}
	if (p.rc >= 0)
		p.rc = stream_asm_eof(a);
	p.code = stream_dec_code(stream_asm_dec(a));
	stream_asm_free(a);
	free(ram);
	return p;
}

static struct pass run_dec(const struct stream_ident *id, const uint8_t *s, size_t n, size_t split)
{
	struct stream_dec *d = stream_dec_new(id, STREAM_PRIMARY);
	struct pass p = { 0 };
	size_t pos = 0, used;
	while (pos < n && p.rc >= 0) {
		struct stream_rec rec;
		size_t k = n - pos < split ? n - pos : split;
		p.rc = stream_dec_feed(d, s + pos, k, &used, &rec);
		pos += used;
		if (p.rc == 1)
			use_record(&p, &rec);
	}
	if (p.rc >= 0)
		p.rc = stream_dec_eof(d);
	p.code = stream_dec_code(d);
	stream_dec_free(d);
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	struct stream_ident id = {
		.backend = mode & 2 ? STREAM_BACKEND_XEN : STREAM_BACKEND_QEMU,
		.page_size = PS,
		.ram_size = PAGES * PS,
		.config_hash = stream_config_hash("fuzz", 4),
	};
	struct pass (*run)(const struct stream_ident *, const uint8_t *, size_t, size_t) =
		mode & 1 ? run_dec : run_asm;
	struct pass whole = run(&id, data + 1, size - 1, SIZE_MAX);
	struct pass split = run(&id, data + 1, size - 1, (size_t)(mode >> 2) + 1);
	if (whole.rc != split.rc || whole.code != split.code || whole.print != split.print)
		abort();
	return 0;
}
