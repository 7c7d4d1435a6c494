/* Unit tests of the network link's codec (net/link_enc.c, link_dec.c;
 * docs/net-link.md): round trips in every split, and every rejection of §5.
 * COLO_WRITE_SEEDS=fuzz/corpus/fuzz_net_link writes the fuzz seeds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/link.h"
#include "tests/harness/test.h"

#define HASH 0x1122334455667788ull

static uint8_t frame[2000];

static void fill_frame(void)
{
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 13 + 1);
}

/* What a decode produced, folded, so two decodes can be compared. */
struct result {
	int rc;
	uint32_t code;
	unsigned records, inputs, batches, frames, errors;
	uint64_t fold;
};

static void fold(struct result *r, uint64_t v)
{
	r->fold = (r->fold ^ v) * 0x100000001b3ull;
}

static void use(struct result *res, const struct link_rec *rec)
{
	struct link_batch_iter it;
	const uint8_t *f;
	size_t n;
	res->records++;
	switch (rec->type) {
	case LINK_REC_INPUT:
		res->inputs++;
		fold(res, rec->input.seq);
		for (size_t i = 0; i < rec->input.len; i++)
			fold(res, rec->input.frame[i]);
		break;
	case LINK_REC_OUTPUT_BATCH:
		res->batches++;
		fold(res, rec->batch.gen);
		link_batch_iter_init(&it, rec);
		while (link_batch_next(&it, &f, &n)) {
			res->frames++;
			fold(res, n ^ f[0] ^ f[n - 1]);
		}
		break;
	case LINK_REC_ERROR:
		res->errors++;
		fold(res, rec->error.code ^ strlen(rec->error.reason));
		break;
	}
}

static struct result decode(enum link_role self, const uint8_t *p, size_t n, size_t split)
{
	struct link_dec *d;
	struct result res = { 0 };
	REQUIRE(link_dec_new(self, HASH, &d) == 0);
	size_t pos = 0, used;
	while (pos < n && res.rc >= 0) {
		struct link_rec rec;
		size_t k = n - pos < split ? n - pos : split;
		res.rc = link_dec_feed(d, p + pos, k, &used, &rec);
		pos += used;
		if (res.rc == 1)
			use(&res, &rec);
	}
	if (res.rc >= 0)
		res.rc = link_dec_eof(d);
	res.code = link_dec_code(d);
	link_dec_free(d);
	return res;
}

/* Decoded whole and in every split up to 64: the same result. */
static struct result decode_all_splits(enum link_role self, const struct wr *w)
{
	struct result whole = decode(self, w->buf, w->len, SIZE_MAX);
	for (size_t s = 1; s <= 64; s++) {
		struct result r = decode(self, w->buf, w->len, s);
		CHECK_EQ(r.rc, whole.rc);
		CHECK_EQ(r.code, whole.code);
		CHECK_EQ(r.records, whole.records);
		CHECK(r.fold == whole.fold);
	}
	return whole;
}

static void primary_stream(struct wr *w)
{
	wr_init(w);
	fill_frame();
	REQUIRE(link_enc_header(w, LINK_PRIMARY, HASH) == 0);
	REQUIRE(link_enc_input(w, 1, frame, 14) == 0);
	REQUIRE(link_enc_input(w, 2, frame, 60) == 0);
	REQUIRE(link_enc_input(w, 3, frame, 1514) == 0);
}

static void secondary_stream(struct wr *w)
{
	struct link_batch b;
	wr_init(w);
	fill_frame();
	REQUIRE(link_enc_header(w, LINK_SECONDARY, HASH) == 0);
	REQUIRE(link_batch_begin(&b, w, 4) == 0); /* the generation marker */
	REQUIRE(link_batch_end(&b) == 0);
	REQUIRE(link_batch_begin(&b, w, 4) == 0);
	REQUIRE(link_batch_add(&b, frame, 14) == 0);
	REQUIRE(link_batch_add(&b, frame, 61) == 0);
	REQUIRE(link_batch_add(&b, frame, 1500) == 0);
	REQUIRE(link_batch_end(&b) == 0);
}

static void test_round_trip_every_split(void)
{
	struct wr w;
	primary_stream(&w);
	REQUIRE(link_enc_error(&w, 0, "shutting down") == 0);
	struct result r = decode_all_splits(LINK_SECONDARY, &w);
	CHECK_EQ(r.inputs, 3);
	CHECK_EQ(r.errors, 1);
	CHECK_EQ(r.rc, 0); /* the stream ended after the ERROR, as it must */
	CHECK_EQ(r.code, LINK_PEER_ERROR);
	wr_free(&w);
	secondary_stream(&w);
	r = decode_all_splits(LINK_PRIMARY, &w);
	CHECK_EQ(r.rc, 0);
	CHECK_EQ(r.batches, 2);
	CHECK_EQ(r.frames, 3);
	CHECK_EQ(w.len % 8, 0);
	wr_free(&w);
}

static void test_header_rejections(void)
{
	struct wr w;
	wr_init(&w);
	link_enc_header(&w, LINK_PRIMARY, HASH);
	CHECK_EQ(decode(LINK_PRIMARY, w.buf, w.len, SIZE_MAX).code, LINK_IDENTITY); /* two primaries */
	CHECK_EQ(decode(LINK_SECONDARY, w.buf, w.len, SIZE_MAX).code, LINK_OK);
	w.buf[23] ^= 1;
	CHECK_EQ(decode(LINK_SECONDARY, w.buf, w.len, SIZE_MAX).code, LINK_IDENTITY);
	w.buf[23] ^= 1;
	w.buf[11] = 2;
	CHECK_EQ(decode(LINK_SECONDARY, w.buf, w.len, SIZE_MAX).code, LINK_BAD_VERSION);
	w.buf[0] = 'X';
	CHECK_EQ(decode(LINK_SECONDARY, w.buf, w.len, SIZE_MAX).code, LINK_BAD_MAGIC);
	CHECK_EQ(link_enc_header(&w, 3, HASH), -EINVAL);
	wr_free(&w);
}

/* A stream to the secondary: header, then the raw octets given. */
static struct result to_secondary(const uint8_t *rec, size_t n)
{
	struct wr w;
	wr_init(&w);
	link_enc_header(&w, LINK_PRIMARY, HASH);
	wr_bytes(&w, rec, n);
	struct result r = decode(LINK_SECONDARY, w.buf, w.len, SIZE_MAX);
	wr_free(&w);
	return r;
}

static void test_record_rejections(void)
{
	uint8_t zero_type[16] = { 0, 0, 0, 0, 0, 0, 0, 8 };
	CHECK_EQ(to_secondary(zero_type, 16).code, LINK_UNKNOWN_MANDATORY);
	uint8_t unknown[16] = { 0, 0, 0, 9, 0, 0, 0, 8 };
	CHECK_EQ(to_secondary(unknown, 16).code, LINK_UNKNOWN_MANDATORY);
	uint8_t batch_to_s[24] = { 0, 0, 0, 2, 0, 0, 0, 16 };
	CHECK_EQ(to_secondary(batch_to_s, 24).code, LINK_UNEXPECTED);
	uint8_t short_input[24] = { 0, 0, 0, 1, 0, 0, 0, 8 + 13 };
	CHECK_EQ(to_secondary(short_input, 24).code, LINK_BAD_LENGTH);
	uint8_t huge_input[8] = { 0, 0, 0, 1, 0, 1, 0, 8 }; /* 65544 + ... > max: no allocation */
	CHECK_EQ(to_secondary(huge_input, 8).code, LINK_BAD_LENGTH);
	uint8_t huge_opt[8] = { 0x80, 0, 0, 7, 0, 0x10, 0, 1 };
	CHECK_EQ(to_secondary(huge_opt, 8).code, LINK_BAD_LENGTH);
	/* Optional records are skipped, empty or not. */
	uint8_t opt[8 + 8 + 8] = { 0x80, 0, 0, 7, 0, 0, 0, 0, 0x80, 0, 0, 8, 0, 0, 0, 5 };
	struct result r = to_secondary(opt, sizeof(opt));
	CHECK_EQ(r.code, LINK_OK);
	CHECK_EQ(r.rc, 0);
	CHECK_EQ(r.records, 0);
	/* The stream ends inside a record: truncated, a broken channel. */
	r = to_secondary(opt, 12);
	CHECK_EQ(r.rc, -EPIPE);
	CHECK_EQ(r.code, LINK_TRUNCATED);
}

static void test_input_sequence_and_padding(void)
{
	struct wr w;
	fill_frame();
	wr_init(&w);
	link_enc_header(&w, LINK_PRIMARY, HASH);
	link_enc_input(&w, 1, frame, 15);
	link_enc_input(&w, 3, frame, 15);
	struct result r = decode(LINK_SECONDARY, w.buf, w.len, SIZE_MAX);
	CHECK_EQ(r.code, LINK_SEQUENCE);
	CHECK_EQ(r.inputs, 1);
	wr_reset(&w);
	link_enc_header(&w, LINK_PRIMARY, HASH);
	link_enc_input(&w, 1, frame, 15);
	w.buf[w.len - 1] = 1; /* padding */
	CHECK_EQ(decode(LINK_SECONDARY, w.buf, w.len, SIZE_MAX).code, LINK_RESERVED);
	CHECK_EQ(link_enc_input(&w, 2, frame, 13), -EINVAL);
	CHECK_EQ(link_enc_input(&w, 2, frame, 65536), -EINVAL);
	wr_free(&w);
}

static void test_batch_rejections(void)
{
	struct wr w;
	struct link_batch b;
	fill_frame();
	secondary_stream(&w);
	size_t at = 24 + 8 + 16; /* the second batch: after the header and the marker */
	/* Batch reserved field. */
	w.buf[at + 8 + 15] = 1;
	CHECK_EQ(decode(LINK_PRIMARY, w.buf, w.len, SIZE_MAX).code, LINK_RESERVED);
	w.buf[at + 8 + 15] = 0;
	/* Entry reserved field. */
	w.buf[at + 8 + 16 + 7] = 1;
	CHECK_EQ(decode(LINK_PRIMARY, w.buf, w.len, SIZE_MAX).code, LINK_RESERVED);
	w.buf[at + 8 + 16 + 7] = 0;
	/* Entry frame length below 14. */
	w.buf[at + 8 + 16 + 3] = 13;
	CHECK_EQ(decode(LINK_PRIMARY, w.buf, w.len, SIZE_MAX).code, LINK_BAD_LENGTH);
	w.buf[at + 8 + 16 + 3] = 14;
	/* Count claims more entries than the body holds, or fewer. */
	w.buf[at + 8 + 11] = 4;
	CHECK_EQ(decode(LINK_PRIMARY, w.buf, w.len, SIZE_MAX).code, LINK_BAD_LENGTH);
	w.buf[at + 8 + 11] = 2;
	CHECK_EQ(decode(LINK_PRIMARY, w.buf, w.len, SIZE_MAX).code, LINK_BAD_LENGTH);
	w.buf[at + 8 + 11] = 3;
	CHECK_EQ(decode(LINK_PRIMARY, w.buf, w.len, SIZE_MAX).code, LINK_OK);
	/* Generations never go back. */
	link_batch_begin(&b, &w, 3);
	link_batch_end(&b);
	CHECK_EQ(decode(LINK_PRIMARY, w.buf, w.len, SIZE_MAX).code, LINK_SEQUENCE);
	wr_free(&w);
}

static void test_batch_limits(void)
{
	struct wr w;
	struct link_batch b;
	static uint8_t big[LINK_FRAME_MAX];
	wr_init(&w);
	link_enc_header(&w, LINK_SECONDARY, HASH);
	link_batch_begin(&b, &w, 1);
	int n = 0, rc;
	while ((rc = link_batch_add(&b, big, sizeof(big))) == 0)
		n++;
	CHECK_EQ(rc, -E2BIG);
	CHECK_EQ(n, 15); /* 16 x (8 + 65536) + 16 would pass 1 MiB */
	link_batch_end(&b);
	link_batch_begin(&b, &w, 1);
	for (n = 0; (rc = link_batch_add(&b, big, 14)) == 0;)
		n++;
	CHECK_EQ(n, LINK_BATCH_MAX_FRAMES);
	link_batch_end(&b);
	struct result r = decode(LINK_PRIMARY, w.buf, w.len, SIZE_MAX);
	CHECK_EQ(r.code, LINK_OK);
	CHECK_EQ(r.frames, 15 + LINK_BATCH_MAX_FRAMES);
	CHECK_EQ(link_batch_add(&b, big, 13), -EINVAL);
	wr_free(&w);
}

static void test_peer_error_reason(void)
{
	struct wr w;
	struct link_dec *d;
	struct link_rec rec;
	size_t used;
	wr_init(&w);
	link_enc_header(&w, LINK_SECONDARY, HASH);
	link_enc_error(&w, LINK_SEQUENCE, "input 7 after 5");
	w.buf[w.len - 3] = 0; /* a NUL in the reason */
	REQUIRE(link_dec_new(LINK_PRIMARY, HASH, &d) == 0);
	CHECK_EQ(link_dec_feed(d, w.buf, w.len, &used, &rec), 1);
	CHECK_EQ(rec.type, LINK_REC_ERROR);
	CHECK_EQ(rec.error.code, LINK_SEQUENCE);
	CHECK(!strcmp(rec.error.reason, "input 7 after?5"));
	CHECK_EQ(link_dec_code(d), LINK_PEER_ERROR);
	CHECK(strstr(link_dec_reason(d), "sequence") != NULL);
	CHECK_EQ(link_dec_feed(d, w.buf, 1, &used, &rec), -EBADMSG);
	CHECK_EQ(link_dec_eof(d), 0);
	link_dec_free(d);
	CHECK(!strcmp(link_code_name(LINK_TRUNCATED), "truncated"));
	CHECK(!strcmp(link_code_name(99), "?"));
	wr_free(&w);
}

static void write_seed(const char *dir, const char *name, uint8_t mode, const struct wr *w)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	REQUIRE(f);
	fwrite(&mode, 1, 1, f);
	fwrite(w->buf, 1, w->len, f);
	fclose(f);
}

/* The fuzz seeds (fuzz/fuzz_net_link.c: octet 0 is the mode, bit 0 = receiver is the
 * primary); written with COLO_WRITE_SEEDS=dir. */
static void test_fuzz_seeds(void)
{
	const char *dir = getenv("COLO_WRITE_SEEDS");
	struct wr p, s;
	primary_stream(&p);
	secondary_stream(&s);
	CHECK_EQ(decode(LINK_SECONDARY, p.buf, p.len, SIZE_MAX).code, LINK_OK);
	CHECK_EQ(decode(LINK_PRIMARY, s.buf, s.len, SIZE_MAX).code, LINK_OK);
	if (dir) {
		write_seed(dir, "seed-inputs", 0x10, &p);
		write_seed(dir, "seed-batches", 0x0d, &s);
		link_enc_error(&s, LINK_SEQUENCE, "bye");
		write_seed(dir, "seed-batches-error", 0x01, &s);
	}
	wr_free(&p);
	wr_free(&s);
}

static const struct test tests[] = {
	TEST(test_round_trip_every_split),
	TEST(test_header_rejections),
	TEST(test_record_rejections),
	TEST(test_input_sequence_and_padding),
	TEST(test_batch_rejections),
	TEST(test_batch_limits),
	TEST(test_peer_error_reason),
	TEST(test_fuzz_seeds),
	{ 0 },
};
TEST_MAIN(tests)
