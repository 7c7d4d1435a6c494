/* test_stream_hostile.c - hostile checkpoint streams, one shape per test. They are
 * built byte by byte with a small writer of their own that follows the spec, not
 * with our encoder (which refuses to produce them). Each stream is decoded twice,
 * whole and one byte at a time, and both must reject it the same way, with no
 * checkpoint exposed past the last good one. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "checkpoint/stream.h"
#include "tests/harness/test.h"

#define PS 4096u
#define PAGES 16u
#define CFG 0x1234abcd5678ef00ull

#define PRIMARY STREAM_PRIMARY
#define SECONDARY STREAM_SECONDARY
#define QEMU STREAM_BACKEND_QEMU

static struct stream_ident ident(void)
{
	return (struct stream_ident){ .backend = QEMU, .page_size = PS, .ram_size = PAGES * PS,
				      .config_hash = CFG };
}

/* --- an independent writer for raw streams ------------------------------------ */

struct raw {
	struct wr w;
	XXH3_state_t *x;
	bool in_ckpt;
};

static void raw_init(struct raw *r)
{
	wr_init(&r->w);
	r->x = XXH3_createState();
	r->in_ckpt = false;
}

static void raw_free(struct raw *r)
{
	wr_free(&r->w);
	XXH3_freeState(r->x);
}

static void raw_header_full(struct raw *r, uint64_t magic, uint32_t version, uint32_t role,
			    uint32_t backend, uint32_t ps, uint64_t ram, uint64_t cfg)
{
	wr_be64(&r->w, magic);
	wr_be32(&r->w, version);
	wr_be32(&r->w, role);
	wr_be32(&r->w, backend);
	wr_be32(&r->w, ps);
	wr_be64(&r->w, ram);
	wr_be64(&r->w, cfg);
}

#define MAGIC 0x434f4c4f5354524dull /* "COLOSTRM" */

static void raw_header(struct raw *r, uint32_t role)
{
	raw_header_full(r, MAGIC, 1, role, QEMU, PS, PAGES * PS, CFG);
}

/* A record with any type and body; padding filled with `pad`. Inside a
 * checkpoint its header and body go into the checksum (spec §5, END). */
static void raw_rec_pad(struct raw *r, uint32_t type, const void *body, uint32_t len, uint8_t pad)
{
	size_t start = r->w.len;
	wr_be32(&r->w, type);
	wr_be32(&r->w, len);
	wr_bytes(&r->w, body, len);
	if (r->in_ckpt && type != STREAM_REC_END)
		XXH3_64bits_update(r->x, r->w.buf + start, 8 + (size_t)len);
	for (uint32_t i = len; i % 8; i++)
		wr_u8(&r->w, pad);
}

static void raw_rec(struct raw *r, uint32_t type, const void *body, uint32_t len)
{
	raw_rec_pad(r, type, body, len, 0);
}

static void raw_u64_rec(struct raw *r, uint32_t type, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	raw_rec(r, type, b, 8);
}

static void raw_begin_flags(struct raw *r, uint64_t seq, uint32_t flags, uint32_t rsv)
{
	struct wr b;
	wr_init(&b);
	wr_be64(&b, seq);
	wr_be32(&b, flags);
	wr_be32(&b, rsv);
	XXH3_64bits_reset(r->x);
	r->in_ckpt = true;
	raw_rec(r, STREAM_REC_BEGIN, b.buf, (uint32_t)b.len);
	wr_free(&b);
}

static void raw_begin(struct raw *r, uint64_t seq)
{
	raw_begin_flags(r, seq, 0, 0);
}

/* END with the right checksum, unless `sum_xor` spoils it. */
static void raw_end_x(struct raw *r, uint64_t seq, uint64_t sum_xor)
{
	struct wr b;
	wr_init(&b);
	wr_be64(&b, seq);
	wr_be64(&b, XXH3_64bits_digest(r->x) ^ sum_xor);
	raw_rec(r, STREAM_REC_END, b.buf, (uint32_t)b.len);
	r->in_ckpt = false;
	wr_free(&b);
}

static void raw_end(struct raw *r, uint64_t seq)
{
	raw_end_x(r, seq, 0);
}

/* PAGE_DATA (data = true) or ZERO_PAGES with `count` in the count field, the given
 * pfns, and `ndata` pages of data: the three can disagree on purpose. */
static void raw_pages(struct raw *r, bool data, uint32_t count, const uint64_t *pfns,
		      size_t npfns, size_t ndata)
{
	struct wr b;
	wr_init(&b);
	wr_be32(&b, count);
	wr_be32(&b, 0);
	for (size_t i = 0; i < npfns; i++)
		wr_be64(&b, pfns[i]);
	for (size_t i = 0; i < ndata * PS; i++)
		wr_u8(&b, (uint8_t)(i * 7));
	raw_rec(r, data ? STREAM_REC_PAGE_DATA : STREAM_REC_ZERO_PAGES, b.buf, (uint32_t)b.len);
	wr_free(&b);
}

static void raw_page(struct raw *r, uint64_t pfn)
{
	raw_pages(r, true, 1, &pfn, 1, 1);
}

/* One valid checkpoint: pages 0 and 1, device state, mark. */
static void raw_good_ckpt(struct raw *r, uint64_t seq)
{
	raw_begin(r, seq);
	raw_pages(r, true, 2, (uint64_t[]){ 0, 1 }, 2, 2);
	raw_rec(r, STREAM_REC_DEVICE_STATE, "qemu-dev", 8);
	raw_u64_rec(r, STREAM_REC_INPUT_MARK, 42);
	raw_end(r, seq);
}

/* --- decoding and verdicts ---------------------------------------------------- */

struct verdict {
	int rc; /* first negative return, or stream_dec_eof's */
	enum stream_err code;
	int ckpts, recs;
	char reason[256];
};

/* Secondary side: the assembler over the primary's stream. */
static struct verdict run_asm(const uint8_t *p, size_t len, size_t chunk)
{
	struct stream_ident id = ident();
	struct stream_asm *a = stream_asm_new(&id);
	struct verdict v = { 0 };
	size_t pos = 0;
	while (pos < len && v.rc >= 0) {
		size_t n = len - pos < chunk ? len - pos : chunk, used;
		struct stream_rec rec;
		v.rc = stream_asm_feed(a, p + pos, n, &used, &rec);
		pos += used;
		if (v.rc == STREAM_ASM_RECORD)
			v.recs++;
		if (v.rc == STREAM_ASM_CHECKPOINT) {
			stream_ckpt_free(stream_asm_take(a));
			v.ckpts++;
		}
	}
	if (v.rc >= 0)
		v.rc = stream_asm_eof(a);
	v.code = stream_dec_code(stream_asm_dec(a));
	snprintf(v.reason, sizeof(v.reason), "%s", stream_dec_reason(stream_asm_dec(a)));
	stream_asm_free(a);
	return v;
}

/* Primary side: the plain decoder over the secondary's stream. */
static struct verdict run_dec(const uint8_t *p, size_t len, size_t chunk)
{
	struct stream_ident id = ident();
	struct stream_dec *d = stream_dec_new(&id, PRIMARY);
	struct verdict v = { 0 };
	size_t pos = 0;
	while (pos < len && v.rc >= 0) {
		size_t n = len - pos < chunk ? len - pos : chunk, used;
		struct stream_rec rec;
		v.rc = stream_dec_feed(d, p + pos, n, &used, &rec);
		pos += used;
		v.recs += v.rc == 1;
	}
	if (v.rc >= 0)
		v.rc = stream_dec_eof(d);
	v.code = stream_dec_code(d);
	snprintf(v.reason, sizeof(v.reason), "%s", stream_dec_reason(d));
	stream_dec_free(d);
	return v;
}

/* The stream must be rejected as corrupt with `code` after exactly `ckpts` good
 * checkpoints, identically whole and byte by byte, with a one-line reason. */
static void expect_reject(struct raw *r, enum stream_role from, enum stream_err code, int ckpts)
{
	struct verdict (*run)(const uint8_t *, size_t, size_t) = from == PRIMARY ? run_asm : run_dec;
	struct verdict whole = run(r->w.buf, r->w.len, SIZE_MAX), bytes = run(r->w.buf, r->w.len, 1);
	CHECK_EQ(whole.rc, code == STREAM_ERR_TRUNCATED ? -EPIPE : -EBADMSG);
	CHECK_EQ(whole.code, code);
	CHECK_EQ(whole.ckpts, ckpts);
	CHECK_EQ(bytes.rc, whole.rc);
	CHECK_EQ(bytes.code, whole.code);
	CHECK_EQ(bytes.ckpts, whole.ckpts);
	CHECK(!strcmp(whole.reason, bytes.reason));
	CHECK(!strchr(whole.reason, '\n'));
	if (whole.code != code)
		printf("    reason: %s\n", whole.reason);
	raw_free(r);
}

/* --- the shapes ------------------------------------------------------------------ */

static void test_valid_raw_stream_is_accepted(void)
{
	/* The control: the writer above produces streams the decoder accepts, so
	 * each rejection below is caused by its one defect. */
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_good_ckpt(&r, 1);
	raw_u64_rec(&r, STREAM_REC_REQUEST, 2);
	raw_good_ckpt(&r, 2);
	struct verdict v = run_asm(r.w.buf, r.w.len, 1);
	CHECK_EQ(v.rc, 0);
	CHECK_EQ(v.ckpts, 2);
	CHECK_EQ(v.recs, 1);
	raw_free(&r);
}

static void test_truncated_stream_at_every_byte(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	size_t hdr = r.w.len;
	raw_good_ckpt(&r, 1);
	for (size_t cut = 0; cut < r.w.len; cut++) {
		struct verdict v = run_asm(r.w.buf, cut, 5);
		if (cut == hdr) { /* at a boundary between checkpoints: a clean end */
			CHECK_EQ(v.rc, 0);
			continue;
		}
		CHECK_EQ(v.rc, -EPIPE);
		CHECK_EQ(v.code, STREAM_ERR_TRUNCATED);
		CHECK_EQ(v.ckpts, 0); /* never exposed for apply */
	}
	struct verdict full = run_asm(r.w.buf, r.w.len, 5);
	CHECK_EQ(full.rc, 0);
	CHECK_EQ(full.ckpts, 1);
	raw_free(&r);
}

static void test_wrong_magic(void)
{
	struct raw r;
	raw_init(&r);
	raw_header_full(&r, 0x58454e46ffffffffull, 1, PRIMARY, QEMU, PS, PAGES * PS, CFG);
	raw_good_ckpt(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_BAD_MAGIC, 0);
}

static void test_wrong_version(void)
{
	struct raw r;
	raw_init(&r);
	raw_header_full(&r, MAGIC, 2, PRIMARY, QEMU, PS, PAGES * PS, CFG);
	raw_good_ckpt(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_BAD_VERSION, 0);
}

static void test_identity_ram_size_differs(void)
{
	struct raw r;
	raw_init(&r);
	raw_header_full(&r, MAGIC, 1, PRIMARY, QEMU, PS, 2 * PAGES * PS, CFG);
	raw_good_ckpt(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_IDENTITY, 0);
}

static void test_identity_page_size_differs(void)
{
	struct raw r;
	raw_init(&r);
	raw_header_full(&r, MAGIC, 1, PRIMARY, QEMU, 2 * PS, PAGES * PS, CFG);
	raw_good_ckpt(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_IDENTITY, 0);
}

static void test_identity_config_hash_differs(void)
{
	struct raw r;
	raw_init(&r);
	raw_header_full(&r, MAGIC, 1, PRIMARY, QEMU, PS, PAGES * PS, CFG ^ 1);
	raw_good_ckpt(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_IDENTITY, 0);
}

static void test_identity_backend_differs(void)
{
	struct raw r;
	raw_init(&r);
	raw_header_full(&r, MAGIC, 1, PRIMARY, STREAM_BACKEND_XEN, PS, PAGES * PS, CFG);
	expect_reject(&r, PRIMARY, STREAM_ERR_IDENTITY, 0);
}

static void test_two_primaries_refuse_each_other(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY); /* decoded by a primary: its peer claims to be one too */
	expect_reject(&r, SECONDARY, STREAM_ERR_IDENTITY, 0);
}

/* mmap'ed bytes held by malloc (glibc); ASan has its own allocator. */
static size_t mapped_bytes(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return 0;
#else
	return mallinfo2().hblkhd;
#endif
}

static void test_oversized_record_rejected_before_allocating(void)
{
	/* Only the 8-byte record header is sent: the verdict must come from the
	 * length alone, with nothing allocated for the claimed 4 GiB. */
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	wr_be32(&r.w, STREAM_REC_PAGE_DATA);
	wr_be32(&r.w, 0xffffffffu);
	size_t before = mapped_bytes();
	struct verdict v = run_asm(r.w.buf, r.w.len, SIZE_MAX);
	CHECK(mapped_bytes() - before < (1u << 20));
	CHECK_EQ(v.rc, -EBADMSG);
	CHECK_EQ(v.code, STREAM_ERR_TOO_LONG);
	expect_reject(&r, PRIMARY, STREAM_ERR_TOO_LONG, 0);
}

static void test_oversized_by_one_byte(void)
{
	/* One past the largest legal PAGE_DATA (512 pages). */
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	wr_be32(&r.w, STREAM_REC_PAGE_DATA);
	wr_be32(&r.w, 8 + 512 * (8 + PS) + 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_TOO_LONG, 0);
}

static void test_oversized_device_state(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	wr_be32(&r.w, STREAM_REC_DEVICE_STATE);
	wr_be32(&r.w, STREAM_MAX_DEVICE_STATE + 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_TOO_LONG, 0);
}

static void test_oversized_unknown_optional(void)
{
	/* Skipped records are not buffered, but a wild length still means corruption. */
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	wr_be32(&r.w, STREAM_REC_OPTIONAL | 0x77);
	wr_be32(&r.w, STREAM_MAX_OPTIONAL + 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_TOO_LONG, 0);
}

static void test_checkpoint_over_budget(void)
{
	/* Xen: libxc slices are the one payload without a per-page rule; the
	 * checkpoint budget (16 pages * (4096 + 24) + 128 MiB) stops them. Decoded
	 * with a bare decoder, which reuses one 16 MiB buffer. */
	struct stream_ident id = ident();
	id.backend = STREAM_BACKEND_XEN;
	struct raw r;
	raw_init(&r);
	raw_header_full(&r, MAGIC, 1, PRIMARY, STREAM_BACKEND_XEN, PS, PAGES * PS, CFG);
	raw_begin(&r, 1);
	uint8_t *slice = calloc(1, STREAM_MAX_XEN_LIBXC);
	for (int i = 0; i < 8; i++)
		raw_rec(&r, STREAM_REC_XEN_LIBXC, slice, STREAM_MAX_XEN_LIBXC);
	free(slice);
	wr_be32(&r.w, STREAM_REC_XEN_LIBXC); /* a 9th: its header alone must be refused */
	wr_be32(&r.w, STREAM_MAX_XEN_LIBXC);
	struct stream_dec *d = stream_dec_new(&id, SECONDARY);
	struct stream_rec rec;
	size_t pos = 0, used;
	int rc, recs = 0;
	while ((rc = stream_dec_feed(d, r.w.buf + pos, r.w.len - pos, &used, &rec)) == 1) {
		pos += used;
		recs++;
	}
	CHECK_EQ(rc, -EBADMSG);
	CHECK_EQ(stream_dec_code(d), STREAM_ERR_TOO_LONG);
	CHECK_EQ(recs, 1 + 8); /* BEGIN and 8 slices of 16 MiB; the 9th is refused */
	CHECK_EQ(pos + used, r.w.len);
	stream_dec_free(d);
	raw_free(&r);
}

static void test_unknown_mandatory_record(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_good_ckpt(&r, 1);
	raw_begin(&r, 2);
	raw_rec(&r, 0x7000, "future", 6);
	raw_end(&r, 2);
	expect_reject(&r, PRIMARY, STREAM_ERR_UNKNOWN_MANDATORY, 1);
}

static void test_record_type_zero_is_reserved(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_rec(&r, 0, NULL, 0);
	expect_reject(&r, PRIMARY, STREAM_ERR_UNKNOWN_MANDATORY, 0);
}

static void test_unknown_optional_record_skipped(void)
{
	/* Between and inside checkpoints, empty and padded: skipped, but inside a
	 * checkpoint still covered by its checksum. */
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_rec(&r, STREAM_REC_OPTIONAL | 1, NULL, 0);
	raw_begin(&r, 1);
	raw_rec(&r, STREAM_REC_OPTIONAL | 2, "odd length", 10);
	raw_page(&r, 3);
	raw_rec(&r, 0xffffffffu, "x", 1);
	raw_end(&r, 1);
	raw_rec(&r, STREAM_REC_OPTIONAL | 3, "after", 5);
	struct verdict v = run_asm(r.w.buf, r.w.len, 1);
	CHECK_EQ(v.rc, 0);
	CHECK_EQ(v.ckpts, 1);
	CHECK_EQ(v.recs, 0); /* skipped records are not surfaced */
	raw_free(&r);
}

static void test_optional_record_is_checksummed(void)
{
	/* The same stream with the optional record's body altered after the
	 * checksum was computed. */
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	size_t at = r.w.len + 8;
	raw_rec(&r, STREAM_REC_OPTIONAL | 2, "payload!", 8);
	raw_end(&r, 1);
	r.w.buf[at] ^= 0x20;
	expect_reject(&r, PRIMARY, STREAM_ERR_CHECKSUM, 0);
}

static void test_pfn_beyond_ram(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_page(&r, PAGES);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_PFN_RANGE, 0);
}

static void test_pfn_that_wraps_the_offset(void)
{
	/* pfn * page_size == 0 mod 2^64: an unchecked decoder would write page 0. */
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_page(&r, 1ull << 52);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_PFN_RANGE, 0);
}

static void test_zero_page_beyond_ram(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_pages(&r, false, 2, (uint64_t[]){ 1, UINT64_MAX }, 2, 0);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_PFN_RANGE, 0);
}

static void test_count_larger_than_body(void)
{
	/* count 3, body carries 2 pfns and 2 pages. */
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_pages(&r, true, 3, (uint64_t[]){ 0, 1 }, 2, 2);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_BAD_LENGTH, 0);
}

static void test_count_smaller_than_body(void)
{
	/* count 1, body carries 2 pfns and 2 pages: trailing data is not ignored. */
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_pages(&r, true, 1, (uint64_t[]){ 0, 1 }, 2, 2);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_BAD_LENGTH, 0);
}

static void test_count_times_page_size_wraps_32_bits(void)
{
	/* 8 + count * (8 + 4096) with count = 2^29 + 1 is 8 + 4104 in 32-bit math:
	 * the length of a one-page record. A decoder trusting that product would
	 * walk 2^29 pfns off the end of the body. */
	uint32_t count = (1u << 29) + 1;
	CHECK_EQ((uint32_t)(8u + count * (8u + PS)), 8u + 8u + PS); /* the trap is real */
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_pages(&r, true, count, (uint64_t[]){ 0 }, 1, 1);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_BAD_FIELD, 0);
}

static void test_zero_count_times_eight_wraps_32_bits(void)
{
	uint32_t count = (1u << 29) + 1; /* 8 * count == 8 in 32 bits */
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_pages(&r, false, count, (uint64_t[]){ 0 }, 1, 0);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_BAD_FIELD, 0);
}

static void test_zero_count(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	/* count 0 with one pfn: minimum length met, count says nothing is there */
	raw_pages(&r, false, 0, (uint64_t[]){ 0 }, 1, 0);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_BAD_FIELD, 0);
}

static void test_dirty_list_count_mismatch(void)
{
	struct raw r;
	struct wr b;
	raw_init(&r);
	wr_init(&b);
	raw_header(&r, SECONDARY);
	wr_be64(&b, 1);
	wr_be32(&b, 2); /* two ranges announced, one present */
	wr_be32(&b, 0);
	wr_be64(&b, 0);
	wr_be64(&b, 1);
	raw_rec(&r, STREAM_REC_DIRTY_PFN_LIST, b.buf, (uint32_t)b.len);
	wr_free(&b);
	expect_reject(&r, SECONDARY, STREAM_ERR_BAD_LENGTH, 0);
}

static void test_dirty_range_wraps_past_ram(void)
{
	/* first + npages overflows 64 bits back into RAM. */
	struct raw r;
	struct wr b;
	raw_init(&r);
	wr_init(&b);
	raw_header(&r, SECONDARY);
	wr_be64(&b, 1);
	wr_be32(&b, 1);
	wr_be32(&b, 0);
	wr_be64(&b, 4);
	wr_be64(&b, UINT64_MAX - 1);
	raw_rec(&r, STREAM_REC_DIRTY_PFN_LIST, b.buf, (uint32_t)b.len);
	wr_free(&b);
	expect_reject(&r, SECONDARY, STREAM_ERR_PFN_RANGE, 0);
}

static void test_dirty_ranges_overlap(void)
{
	struct raw r;
	struct wr b;
	raw_init(&r);
	wr_init(&b);
	raw_header(&r, SECONDARY);
	wr_be64(&b, 1);
	wr_be32(&b, 2);
	wr_be32(&b, 0);
	wr_be64(&b, 2);
	wr_be64(&b, 4);
	wr_be64(&b, 5); /* starts inside [2, 6) */
	wr_be64(&b, 1);
	raw_rec(&r, STREAM_REC_DIRTY_PFN_LIST, b.buf, (uint32_t)b.len);
	wr_free(&b);
	expect_reject(&r, SECONDARY, STREAM_ERR_BAD_FIELD, 0);
}

static void test_duplicate_pfn_across_batches(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_page(&r, 7);
	raw_page(&r, 7);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_DUP_PFN, 0);
}

static void test_duplicate_pfn_data_and_zero(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_page(&r, 7);
	raw_pages(&r, false, 1, (uint64_t[]){ 7 }, 1, 0);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_DUP_PFN, 0);
}

static void test_repeated_sequence_number(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_good_ckpt(&r, 1);
	raw_good_ckpt(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_SEQUENCE, 1);
}

static void test_skipped_sequence_number(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_good_ckpt(&r, 1);
	raw_good_ckpt(&r, 3);
	expect_reject(&r, PRIMARY, STREAM_ERR_SEQUENCE, 1);
}

static void test_first_sequence_number_is_one(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_good_ckpt(&r, 0);
	expect_reject(&r, PRIMARY, STREAM_ERR_SEQUENCE, 0);
}

static void test_end_sequence_differs_from_begin(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_page(&r, 0);
	raw_end(&r, 2);
	expect_reject(&r, PRIMARY, STREAM_ERR_SEQUENCE, 0);
}

static void test_begin_differs_from_request(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_u64_rec(&r, STREAM_REC_REQUEST, 1);
	raw_good_ckpt(&r, 2);
	expect_reject(&r, PRIMARY, STREAM_ERR_SEQUENCE, 0);
}

static void test_repeated_and_skipped_ack(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, SECONDARY);
	raw_u64_rec(&r, STREAM_REC_ACK, 1);
	raw_u64_rec(&r, STREAM_REC_ACK, 1);
	expect_reject(&r, SECONDARY, STREAM_ERR_SEQUENCE, 0);
	raw_init(&r);
	raw_header(&r, SECONDARY);
	raw_u64_rec(&r, STREAM_REC_ACK, 1);
	raw_u64_rec(&r, STREAM_REC_ACK, 3);
	expect_reject(&r, SECONDARY, STREAM_ERR_SEQUENCE, 0);
}

static void test_bad_checksum_page_byte(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_good_ckpt(&r, 1);
	raw_begin(&r, 2);
	size_t page = r.w.len + 8 + 8 + 8; /* record header, count, one pfn */
	raw_page(&r, 5);
	raw_end(&r, 2);
	r.w.buf[page + 1234] ^= 0x01; /* one bit, after the sender checksummed it */
	expect_reject(&r, PRIMARY, STREAM_ERR_CHECKSUM, 1);
}

static void test_bad_checksum_value(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_page(&r, 5);
	raw_end_x(&r, 1, 1ull << 40);
	expect_reject(&r, PRIMARY, STREAM_ERR_CHECKSUM, 0);
}

static void test_nonzero_padding(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_rec_pad(&r, STREAM_REC_DEVICE_STATE, "abc", 3, 0x01);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_PADDING, 0);
}

static void test_nonzero_reserved_field(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin_flags(&r, 1, 0, 0x100);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_BAD_FIELD, 0);
}

static void test_unknown_checkpoint_flag(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin_flags(&r, 1, 0x2, 0);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_BAD_FIELD, 0);
}

static void test_fixed_record_wrong_length(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_rec(&r, STREAM_REC_BEGIN, "\0\0\0\0\0\0\0\1\0\0\0\0", 12);
	expect_reject(&r, PRIMARY, STREAM_ERR_BAD_LENGTH, 0);
}

static void test_record_in_wrong_direction(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_u64_rec(&r, STREAM_REC_ACK, 1); /* only the secondary acknowledges */
	expect_reject(&r, PRIMARY, STREAM_ERR_UNEXPECTED, 0);
}

static void test_page_outside_checkpoint(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_good_ckpt(&r, 1);
	raw_page(&r, 0);
	expect_reject(&r, PRIMARY, STREAM_ERR_UNEXPECTED, 1);
}

static void test_device_state_twice(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_rec(&r, STREAM_REC_DEVICE_STATE, "one", 3);
	raw_rec(&r, STREAM_REC_DEVICE_STATE, "two", 3);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_UNEXPECTED, 0);
}

static void test_device_state_in_precopy(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin_flags(&r, 1, STREAM_CKPT_PRECOPY, 0);
	raw_rec(&r, STREAM_REC_DEVICE_STATE, "dev", 3);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_UNEXPECTED, 0);
}

static void test_xen_record_in_qemu_stream(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_rec(&r, STREAM_REC_XEN_LIBXC, "libxc", 5);
	raw_end(&r, 1);
	expect_reject(&r, PRIMARY, STREAM_ERR_UNEXPECTED, 0);
}

static void test_checkpoint_ending_midway_is_never_exposed(void)
{
	/* Checkpoint 1 complete, checkpoint 2 cut after its pages: 1 is handed out,
	 * 2 never, and the end of stream is a broken channel, not corruption. */
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_good_ckpt(&r, 1);
	raw_begin(&r, 2);
	raw_page(&r, 9);
	expect_reject(&r, PRIMARY, STREAM_ERR_TRUNCATED, 1);
}

static void test_peer_error_mid_checkpoint_discards_it(void)
{
	struct raw r;
	struct wr b;
	raw_init(&r);
	wr_init(&b);
	raw_header(&r, PRIMARY);
	raw_begin(&r, 1);
	raw_page(&r, 9);
	wr_be32(&b, STREAM_ERR_ABORTED);
	wr_be32(&b, 0);
	wr_bytes(&b, "qemu\nsave \xff failed", 18);
	raw_rec(&r, STREAM_REC_ERROR, b.buf, (uint32_t)b.len);
	wr_free(&b);

	struct stream_ident id = ident();
	struct stream_asm *a = stream_asm_new(&id);
	struct stream_rec rec;
	size_t used;
	CHECK_EQ(stream_asm_feed(a, r.w.buf, r.w.len, &used, &rec), STREAM_ASM_RECORD);
	CHECK_EQ(rec.type, STREAM_REC_ERROR);
	CHECK_EQ(rec.error.code, STREAM_ERR_ABORTED);
	CHECK(!strcmp(rec.error.reason, "qemu?save ? failed")); /* sanitised for logs */
	CHECK(!stream_asm_take(a));
	CHECK_EQ(stream_asm_eof(a), 0); /* the peer said goodbye: a clean end */
	/* Anything after ERROR is corrupt. */
	CHECK_EQ(stream_asm_feed(a, "\0", 1, &used, &rec), -EBADMSG);
	CHECK_EQ(stream_dec_code(stream_asm_dec(a)), STREAM_ERR_UNEXPECTED);
	stream_asm_free(a);
	raw_free(&r);
}

static void test_reason_names_position(void)
{
	struct raw r;
	raw_init(&r);
	raw_header(&r, PRIMARY);
	raw_good_ckpt(&r, 1);
	raw_begin(&r, 2);
	size_t at = r.w.len;
	raw_page(&r, PAGES + 3);
	struct verdict v = run_asm(r.w.buf, r.w.len, SIZE_MAX);
	char want[64];
	snprintf(want, sizeof(want), "checkpoint 2, record at offset %zu: pfn 19 beyond", at);
	CHECK(strstr(v.reason, want) != NULL);
	if (!strstr(v.reason, want))
		printf("    reason: %s\n", v.reason);
	raw_free(&r);
}

static const struct test tests[] = {
	TEST(test_valid_raw_stream_is_accepted),
	TEST(test_truncated_stream_at_every_byte),
	TEST(test_wrong_magic),
	TEST(test_wrong_version),
	TEST(test_identity_ram_size_differs),
	TEST(test_identity_page_size_differs),
	TEST(test_identity_config_hash_differs),
	TEST(test_identity_backend_differs),
	TEST(test_two_primaries_refuse_each_other),
	TEST(test_oversized_record_rejected_before_allocating),
	TEST(test_oversized_by_one_byte),
	TEST(test_oversized_device_state),
	TEST(test_oversized_unknown_optional),
	TEST(test_checkpoint_over_budget),
	TEST(test_unknown_mandatory_record),
	TEST(test_record_type_zero_is_reserved),
	TEST(test_unknown_optional_record_skipped),
	TEST(test_optional_record_is_checksummed),
	TEST(test_pfn_beyond_ram),
	TEST(test_pfn_that_wraps_the_offset),
	TEST(test_zero_page_beyond_ram),
	TEST(test_count_larger_than_body),
	TEST(test_count_smaller_than_body),
	TEST(test_count_times_page_size_wraps_32_bits),
	TEST(test_zero_count_times_eight_wraps_32_bits),
	TEST(test_zero_count),
	TEST(test_dirty_list_count_mismatch),
	TEST(test_dirty_range_wraps_past_ram),
	TEST(test_dirty_ranges_overlap),
	TEST(test_duplicate_pfn_across_batches),
	TEST(test_duplicate_pfn_data_and_zero),
	TEST(test_repeated_sequence_number),
	TEST(test_skipped_sequence_number),
	TEST(test_first_sequence_number_is_one),
	TEST(test_end_sequence_differs_from_begin),
	TEST(test_begin_differs_from_request),
	TEST(test_repeated_and_skipped_ack),
	TEST(test_bad_checksum_page_byte),
	TEST(test_bad_checksum_value),
	TEST(test_nonzero_padding),
	TEST(test_nonzero_reserved_field),
	TEST(test_unknown_checkpoint_flag),
	TEST(test_fixed_record_wrong_length),
	TEST(test_record_in_wrong_direction),
	TEST(test_page_outside_checkpoint),
	TEST(test_device_state_twice),
	TEST(test_device_state_in_precopy),
	TEST(test_xen_record_in_qemu_stream),
	TEST(test_checkpoint_ending_midway_is_never_exposed),
	TEST(test_peer_error_mid_checkpoint_discards_it),
	TEST(test_reason_names_position),
	{ 0 },
};
TEST_MAIN(tests)
