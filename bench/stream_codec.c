/* stream_codec.c - in-memory throughput of the checkpoint stream codec for page
 * batches: encode (iovec list + checksum), decode (validation, checksum, assembly,
 * fed in 256 KiB pieces as a socket would deliver them) and apply (pages into the
 * secondary's RAM). Reports GB/s of page payload (10^9 bytes/s); asserts nothing.
 *
 *   build/bench/stream_codec [ram_MiB (256)] [rounds (5)]
 *
 * Two dirty patterns: every page (contiguous runs, one iovec per batch) and every
 * other page (no two pages adjacent: one iovec per page). Best of `rounds`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "checkpoint/stream.h"

#define PS 4096u
#define PIECE (256u << 10)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct result {
	double enc, dec, apply; /* seconds, best of rounds */
};

static void encode(struct stream_enc *e, uint64_t seq, const uint64_t *pfns, size_t n,
		   const uint8_t *ram)
{
	if (stream_enc_begin(e, seq, 0) || stream_enc_pages(e, pfns, n, ram) ||
	    stream_enc_device_state(e, "devstate", 8) || stream_enc_end(e)) {
		fprintf(stderr, "stream_codec: encoding failed\n");
		exit(1);
	}
}

/* Deliver the encoder's output to the assembler in socket-sized pieces: one copy
 * into `piece` stands for recv(). */
static struct stream_ckpt *transfer(struct stream_enc *e, struct stream_asm *a, uint8_t *piece)
{
	struct stream_ckpt *ck = NULL;
	struct iovec iov[64];
	while (stream_enc_pending(e)) {
		size_t fill = 0;
		int cnt = stream_enc_iov(e, iov, 64);
		for (int i = 0; i < cnt && fill < PIECE; i++) {
			size_t k = iov[i].iov_len < PIECE - fill ? iov[i].iov_len : PIECE - fill;
			memcpy(piece + fill, iov[i].iov_base, k);
			fill += k;
		}
		stream_enc_consume(e, fill);
		for (size_t off = 0, used; off < fill; off += used) {
			struct stream_rec rec;
			int rc = stream_asm_feed(a, piece + off, fill - off, &used, &rec);
			if (rc < 0) {
				fprintf(stderr, "stream_codec: decode failed: %s\n",
					stream_dec_reason(stream_asm_dec(a)));
				exit(1);
			}
			if (rc == STREAM_ASM_CHECKPOINT)
				ck = stream_asm_take(a);
		}
	}
	return ck;
}

/* Encoding alone: the iovec list is built and checksummed, then dropped. */
static double time_encode(struct stream_enc *e, uint64_t seq, const uint64_t *pfns, size_t n,
			  const uint8_t *ram)
{
	double t = now();
	encode(e, seq, pfns, n, ram);
	t = now() - t;
	stream_enc_consume(e, stream_enc_pending(e));
	return t;
}

static struct result run(uint64_t ram_size, size_t stride, int rounds)
{
	struct stream_ident id = { .backend = STREAM_BACKEND_QEMU, .page_size = PS,
				   .ram_size = ram_size, .config_hash = 1 };
	size_t pages = ram_size / PS, n = 0;
	uint8_t *src = malloc(ram_size), *dst = malloc(ram_size), *piece = malloc(PIECE);
	uint64_t *pfns = malloc(pages * sizeof(*pfns));
	/* One encoder timed alone, one whose output the assembler decodes. */
	struct stream_enc *et = stream_enc_new(&id, STREAM_PRIMARY);
	struct stream_enc *ex = stream_enc_new(&id, STREAM_PRIMARY);
	struct stream_asm *a = stream_asm_new(&id);
	if (!src || !dst || !piece || !pfns || !et || !ex || !a) {
		fprintf(stderr, "stream_codec: out of memory for %llu MiB\n",
			(unsigned long long)(ram_size >> 20));
		exit(1);
	}
	for (size_t i = 0; i < ram_size; i++)
		src[i] = (uint8_t)(i * 131 + (i >> 12));
	memset(dst, 0, ram_size);
	for (size_t i = 0; i < pages; i += stride)
		pfns[n++] = i;
	stream_enc_header(et);
	stream_enc_consume(et, stream_enc_pending(et));
	stream_enc_header(ex);
	transfer(ex, a, piece);
	struct result best = { 1e9, 1e9, 1e9 };
	for (int r = 0; r < rounds; r++) {
		double te = time_encode(et, (uint64_t)r + 1, pfns, n, src);
		encode(ex, (uint64_t)r + 1, pfns, n, src);
		double td = now();
		struct stream_ckpt *ck = transfer(ex, a, piece);
		td = now() - td;
		double ta = now();
		if (!ck || stream_ckpt_apply_ram(ck, dst, ram_size)) {
			fprintf(stderr, "stream_codec: no checkpoint to apply\n");
			exit(1);
		}
		ta = now() - ta;
		stream_asm_release(a, ck);
		best.enc = te < best.enc ? te : best.enc;
		best.dec = td < best.dec ? td : best.dec;
		best.apply = ta < best.apply ? ta : best.apply;
	}
	if (stride == 1 && memcmp(src, dst, ram_size)) {
		fprintf(stderr, "stream_codec: secondary RAM differs from primary\n");
		exit(1);
	}
	stream_enc_free(et);
	stream_enc_free(ex);
	stream_asm_free(a);
	free(src);
	free(dst);
	free(piece);
	free(pfns);
	return best;
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 256;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	if (!mib || rounds < 1) {
		fprintf(stderr, "usage: %s [ram_MiB] [rounds]\n", argv[0]);
		return 2;
	}
	for (size_t stride = 1; stride <= 2; stride++) {
		struct result r = run(mib << 20, stride, rounds);
		double bytes = (double)(mib << 20) / stride;
		printf("stream_codec: %4llu MiB dirty, %s: encode %.1f GB/s, decode+assemble %.1f GB/s, "
		       "apply %.1f GB/s, all three %.1f GB/s\n",
		       (unsigned long long)(mib / stride), stride == 1 ? "contiguous " : "every other",
		       bytes / r.enc / 1e9, bytes / r.dec / 1e9, bytes / r.apply / 1e9,
		       bytes / (r.enc + r.dec + r.apply) / 1e9);
	}
	return 0;
}
