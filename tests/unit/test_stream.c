/* test_stream.c - checkpoint stream: encoder -> decoder/assembler round trips, the
 * zero-copy output path, encoder misuse, and the fuzz seed corpus (hostile streams
 * are in test_stream_hostile.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/stream.h"
#include "tests/harness/test.h"

#define PS 4096u
#define PAGES 64u

static struct stream_ident ident(enum stream_backend be)
{
	static const char cfg[] = "machine=q35 cpu=host mem=256k";
	return (struct stream_ident){ .backend = be, .page_size = PS, .ram_size = PAGES * PS,
				      .config_hash = stream_config_hash(cfg, sizeof(cfg) - 1) };
}

/* Guest RAM with a distinct pattern per page and per `round`. */
static uint8_t *make_ram(size_t pages, unsigned round)
{
	uint8_t *ram = malloc(pages * PS);
	for (size_t i = 0; i < pages * PS; i++)
		ram[i] = (uint8_t)(i * 31 + i / PS * 7 + round * 13);
	return ram;
}

struct ckpt_spec {
	uint64_t seq;
	const uint64_t *pfns;
	size_t npfns;
	const uint64_t *zero;
	size_t nzero;
	const char *dev; /* NULL: none */
	uint64_t mark;
};

static void encode_ckpt(struct stream_enc *e, const struct ckpt_spec *c, const uint8_t *ram)
{
	REQUIRE(stream_enc_request(e, c->seq) == 0);
	REQUIRE(stream_enc_begin(e, c->seq, 0) == 0);
	REQUIRE(stream_enc_pages(e, c->pfns, c->npfns, ram) == 0);
	if (c->nzero)
		REQUIRE(stream_enc_zero_pages(e, c->zero, c->nzero) == 0);
	if (c->dev)
		REQUIRE(stream_enc_device_state(e, c->dev, strlen(c->dev)) == 0);
	REQUIRE(stream_enc_input_mark(e, c->mark) == 0);
	REQUIRE(stream_enc_end(e) == 0);
}

static const uint64_t pfns1[] = { 0, 1, 2, 3, 10, 12, 11, 63 };
static const uint64_t zero1[] = { 5, 6 };
static const uint64_t pfns2[] = { 63, 0, 5 }; /* repeats checkpoint 1's pfns: legal */
static const uint64_t zero2[] = { 1 };

/* Two checkpoints from `ram1` then `ram2`, as the primary sends them. */
static void primary_stream(struct wr *out, const uint8_t *ram1, const uint8_t *ram2)
{
	struct stream_ident id = ident(STREAM_BACKEND_QEMU);
	struct stream_enc *e = stream_enc_new(&id, STREAM_PRIMARY);
	REQUIRE(e);
	REQUIRE(stream_enc_header(e) == 0);
	struct ckpt_spec c1 = { 1, pfns1, 8, zero1, 2, "dev-state-one", 100 };
	struct ckpt_spec c2 = { 2, pfns2, 3, zero2, 1, "dev2", 250 };
	encode_ckpt(e, &c1, ram1);
	REQUIRE(stream_enc_drain(e, out) == 0); /* drained between: buffers restart */
	encode_ckpt(e, &c2, ram2);
	REQUIRE(stream_enc_drain(e, out) == 0);
	CHECK_EQ(stream_enc_pending(e), 0);
	stream_enc_free(e);
}

struct got {
	struct stream_ckpt *ck[4];
	int nck;
	int nreq;
	int rc;
};

/* Feed `len` bytes in pieces of `chunk` (0: random 1..97 bytes). */
static struct got feed_asm(const uint8_t *p, size_t len, size_t chunk)
{
	struct stream_ident id = ident(STREAM_BACKEND_QEMU);
	struct stream_asm *a = stream_asm_new(&id);
	struct got g = { .rc = 0 };
	unsigned seed = 1;
	size_t pos = 0;
	while (pos < len && g.rc >= 0) {
		seed = seed * 1103515245 + 12345;
		size_t n = chunk ? chunk : 1 + (seed >> 16) % 97;
		n = n > len - pos ? len - pos : n;
		size_t off = 0, used;
		while (off < n) {
			struct stream_rec rec;
			g.rc = stream_asm_feed(a, p + pos + off, n - off, &used, &rec);
			off += used;
			if (g.rc < 0)
				break;
			if (g.rc == STREAM_ASM_RECORD && rec.type == STREAM_REC_REQUEST)
				g.nreq++;
			if (g.rc == STREAM_ASM_CHECKPOINT && g.nck < 4)
				g.ck[g.nck++] = stream_asm_take(a);
		}
		pos += n;
	}
	if (g.rc >= 0)
		g.rc = stream_asm_eof(a);
	stream_asm_free(a);
	return g;
}

static void check_round_trip(size_t chunk)
{
	uint8_t *ram1 = make_ram(PAGES, 1), *ram2 = make_ram(PAGES, 2);
	uint8_t *sec = malloc(PAGES * PS);
	struct wr w;
	wr_init(&w);
	primary_stream(&w, ram1, ram2);
	memset(sec, 0xff, PAGES * PS);

	struct got g = feed_asm(w.buf, w.len, chunk);
	CHECK_EQ(g.rc, 0);
	CHECK_EQ(g.nreq, 2);
	REQUIRE(g.nck == 2);
	CHECK_EQ(stream_ckpt_seq(g.ck[0]), 1);
	CHECK_EQ(stream_ckpt_page_count(g.ck[0]), 8);
	CHECK_EQ(stream_ckpt_zero_count(g.ck[0]), 2);
	uint64_t mark = 0;
	CHECK(stream_ckpt_input_mark(g.ck[0], &mark) && mark == 100);
	size_t dlen;
	const char *dev = stream_ckpt_device_state(g.ck[0], &dlen);
	CHECK(dlen == 13 && !memcmp(dev, "dev-state-one", 13));

	REQUIRE(stream_ckpt_apply_ram(g.ck[0], sec, PAGES * PS) == 0);
	for (size_t i = 0; i < 8; i++)
		CHECK(!memcmp(sec + pfns1[i] * PS, ram1 + pfns1[i] * PS, PS));
	CHECK(sec[5 * PS] == 0 && sec[6 * PS + PS - 1] == 0);
	CHECK(sec[7 * PS] == 0xff); /* pages not in the checkpoint are untouched */

	REQUIRE(stream_ckpt_apply_ram(g.ck[1], sec, PAGES * PS) == 0);
	CHECK(!memcmp(sec + 63 * PS, ram2 + 63 * PS, PS));
	CHECK(!memcmp(sec + 5 * PS, ram2 + 5 * PS, PS));
	CHECK(sec[1 * PS] == 0);
	CHECK(!memcmp(sec + 2 * PS, ram1 + 2 * PS, PS)); /* still checkpoint 1's */
	CHECK(stream_ckpt_input_mark(g.ck[1], &mark) && mark == 250);
	CHECK_EQ(stream_ckpt_apply_ram(g.ck[1], sec, PAGES * PS - PS), -EINVAL);
	for (int i = 0; i < g.nck; i++)
		stream_ckpt_free(g.ck[i]);
	wr_free(&w);
	free(ram1);
	free(ram2);
	free(sec);
}

static void test_round_trip_whole_buffer(void)
{
	check_round_trip(1 << 30);
}

static void test_round_trip_byte_at_a_time(void)
{
	check_round_trip(1);
}

static void test_round_trip_random_splits(void)
{
	check_round_trip(0);
}

/* The same bytes decode to the same pages whatever the split. */
static int sum_batch(void *arg, const uint64_t *pfns, size_t n, const uint8_t *data)
{
	uint64_t *acc = arg;
	for (size_t i = 0; i < n; i++)
		*acc = *acc * 1000003 + pfns[i] + (data ? data[i * PS + 17] : 0xabc);
	return 0;
}

static void test_foreach_batch_sees_every_page(void)
{
	uint8_t *ram = make_ram(PAGES, 3);
	struct wr w;
	wr_init(&w);
	primary_stream(&w, ram, ram);
	struct got g = feed_asm(w.buf, w.len, 7);
	REQUIRE(g.nck == 2);
	uint64_t acc = 0, want = 0;
	CHECK_EQ(stream_ckpt_foreach_batch(g.ck[0], sum_batch, &acc), 0);
	for (size_t i = 0; i < 8; i++)
		want = want * 1000003 + pfns1[i] + ram[pfns1[i] * PS + 17];
	for (size_t i = 0; i < 2; i++)
		want = want * 1000003 + zero1[i] + 0xabc;
	CHECK(acc == want);
	for (int i = 0; i < g.nck; i++)
		stream_ckpt_free(g.ck[i]);
	wr_free(&w);
	free(ram);
}

static void test_secondary_stream_round_trip(void)
{
	struct stream_ident id = ident(STREAM_BACKEND_QEMU);
	struct stream_enc *e = stream_enc_new(&id, STREAM_SECONDARY);
	struct stream_range r1[] = { { 0, 3 }, { 3, 1 }, { 10, 54 } };
	struct wr w;
	wr_init(&w);
	REQUIRE(stream_enc_header(e) == 0);
	REQUIRE(stream_enc_dirty(e, 1, r1, 3) == 0);
	REQUIRE(stream_enc_ack(e, 1) == 0);
	REQUIRE(stream_enc_dirty(e, 2, NULL, 0) == 0);
	REQUIRE(stream_enc_ack(e, 2) == 0);
	REQUIRE(stream_enc_error(e, STREAM_ERR_APPLY_FAILED, "QEMU refused the device state") == 0);
	REQUIRE(stream_enc_drain(e, &w) == 0);
	stream_enc_free(e);

	struct stream_dec *d = stream_dec_new(&id, STREAM_PRIMARY);
	struct stream_rec rec;
	size_t pos = 0, used;
	uint32_t types[8];
	int n = 0;
	while (pos < w.len && n < 8) {
		int rc = stream_dec_feed(d, w.buf + pos, 1, &used, &rec); /* byte at a time */
		pos += used;
		REQUIRE(rc >= 0);
		if (rc == 0)
			continue;
		types[n++] = rec.type;
		if (n == 1) {
			CHECK(rec.dirty.seq == 1 && rec.dirty.count == 3);
			CHECK(rec.dirty.ranges[2].first == 10 && rec.dirty.ranges[2].count == 54);
		}
		if (n == 3)
			CHECK(rec.dirty.seq == 2 && rec.dirty.count == 0);
		if (n == 4)
			CHECK(rec.seq == 2);
		if (n == 5) {
			CHECK(rec.error.code == STREAM_ERR_APPLY_FAILED);
			CHECK(!strcmp(rec.error.reason, "QEMU refused the device state"));
		}
	}
	CHECK_EQ(n, 5);
	CHECK(types[0] == STREAM_REC_DIRTY_PFN_LIST && types[1] == STREAM_REC_ACK &&
	      types[4] == STREAM_REC_ERROR);
	CHECK_EQ(stream_dec_eof(d), 0);
	stream_dec_free(d);
	wr_free(&w);
}

static int cat_xen(void *arg, const uint8_t *data, size_t len)
{
	wr_bytes(arg, data, len);
	return 0;
}

static void test_xen_libxc_container_passes_bytes_unmodified(void)
{
	struct stream_ident id = ident(STREAM_BACKEND_XEN);
	struct stream_enc *e = stream_enc_new(&id, STREAM_PRIMARY);
	uint8_t libxc[1000];
	for (size_t i = 0; i < sizeof(libxc); i++)
		libxc[i] = (uint8_t)(i ^ 0x5a);
	struct wr w, cat;
	wr_init(&w);
	wr_init(&cat);
	REQUIRE(stream_enc_header(e) == 0);
	REQUIRE(stream_enc_begin(e, 1, 0) == 0);
	/* Slices need not follow libxc's record boundaries. */
	REQUIRE(stream_enc_xen_libxc(e, libxc, 333) == 0);
	REQUIRE(stream_enc_xen_libxc(e, libxc + 333, 667) == 0);
	/* Xen streams carry the device model's state next to libxc's bytes. */
	CHECK_EQ(stream_enc_device_state(e, "x", 1), 0);
	CHECK_EQ(stream_enc_pages(e, (uint64_t[]){ 1 }, 1, libxc), -EINVAL); /* QEMU only */
	REQUIRE(stream_enc_end(e) == 0);
	REQUIRE(stream_enc_drain(e, &w) == 0);
	stream_enc_free(e);

	struct stream_asm *a = stream_asm_new(&id);
	struct stream_rec rec;
	size_t used;
	CHECK_EQ(stream_asm_feed(a, w.buf, w.len, &used, &rec), STREAM_ASM_CHECKPOINT);
	CHECK_EQ(used, w.len);
	struct stream_ckpt *ck = stream_asm_take(a);
	REQUIRE(ck);
	CHECK_EQ(stream_ckpt_foreach_xen(ck, cat_xen, &cat), 0);
	CHECK(cat.len == sizeof(libxc) && !memcmp(cat.buf, libxc, sizeof(libxc)));
	size_t dev_len = 0;
	const uint8_t *dev = stream_ckpt_device_state(ck, &dev_len);
	CHECK(dev && dev_len == 1 && dev[0] == 'x');
	stream_ckpt_free(ck);
	stream_asm_free(a);
	wr_free(&w);
	wr_free(&cat);
}

/* Contiguous guest pages leave as one iovec: the payload costs no per-page work
 * beyond the checksum. */
static void test_contiguous_pages_share_one_iovec(void)
{
	struct stream_ident id = ident(STREAM_BACKEND_QEMU);
	struct stream_enc *e = stream_enc_new(&id, STREAM_PRIMARY);
	uint8_t *ram = make_ram(PAGES, 0);
	uint64_t pfns[PAGES];
	for (size_t i = 0; i < PAGES; i++)
		pfns[i] = i;
	REQUIRE(stream_enc_header(e) == 0);
	REQUIRE(stream_enc_begin(e, 1, STREAM_CKPT_PRECOPY) == 0);
	REQUIRE(stream_enc_pages(e, pfns, PAGES, ram) == 0);
	struct iovec iov[16];
	int n = stream_enc_iov(e, iov, 16);
	CHECK_EQ(n, 2); /* header + BEGIN + PAGE_DATA header and pfns; then all of RAM */
	CHECK(iov[1].iov_base == ram && iov[1].iov_len == PAGES * PS);
	stream_enc_free(e);
	free(ram);
}

static void test_encoder_refuses_what_the_decoder_would(void)
{
	struct stream_ident id = ident(STREAM_BACKEND_QEMU);
	struct stream_enc *e = stream_enc_new(&id, STREAM_PRIMARY);
	uint8_t *ram = make_ram(PAGES, 0);
	uint64_t bad = PAGES;
	CHECK_EQ(stream_enc_begin(e, 1, 0), -EINVAL); /* before the header */
	REQUIRE(stream_enc_header(e) == 0);
	CHECK_EQ(stream_enc_header(e), -EINVAL);
	CHECK_EQ(stream_enc_pages(e, (uint64_t[]){ 1 }, 1, ram), -EINVAL); /* no checkpoint */
	CHECK_EQ(stream_enc_end(e), -EINVAL);
	CHECK_EQ(stream_enc_begin(e, 2, 0), -EINVAL);  /* first is 1 */
	CHECK_EQ(stream_enc_begin(e, 1, 0x80), -EINVAL); /* unknown flag */
	CHECK_EQ(stream_enc_ack(e, 1), -EINVAL);       /* secondary's record */
	REQUIRE(stream_enc_begin(e, 1, STREAM_CKPT_PRECOPY) == 0);
	CHECK_EQ(stream_enc_pages(e, &bad, 1, ram), -EINVAL);
	CHECK_EQ(stream_enc_device_state(e, "d", 1), -EINVAL); /* PRECOPY */
	CHECK_EQ(stream_enc_begin(e, 2, 0), -EINVAL);         /* nested */
	REQUIRE(stream_enc_end(e) == 0);
	REQUIRE(stream_enc_begin(e, 2, 0) == 0);
	REQUIRE(stream_enc_device_state(e, "d", 1) == 0);
	CHECK_EQ(stream_enc_device_state(e, "d", 1), -EINVAL); /* once */
	CHECK_EQ(stream_enc_device_state(e, "d", 0), -EINVAL);
	REQUIRE(stream_enc_end(e) == 0);
	CHECK_EQ(stream_enc_request(e, 2), -EINVAL);
	REQUIRE(stream_enc_error(e, STREAM_ERR_ABORTED, "qemu save failed") == 0);
	CHECK_EQ(stream_enc_begin(e, 3, 0), -EINVAL); /* nothing after ERROR */
	stream_enc_free(e);

	struct stream_enc *s = stream_enc_new(&id, STREAM_SECONDARY);
	struct stream_range overlap[] = { { 0, 4 }, { 3, 1 } }, beyond[] = { { 60, 5 } };
	REQUIRE(stream_enc_header(s) == 0);
	CHECK_EQ(stream_enc_begin(s, 1, 0), -EINVAL);
	CHECK_EQ(stream_enc_dirty(s, 1, overlap, 2), -EINVAL);
	CHECK_EQ(stream_enc_dirty(s, 1, beyond, 1), -EINVAL);
	CHECK_EQ(stream_enc_ack(s, 2), -EINVAL);
	CHECK_EQ(stream_enc_ack(s, 1), 0);
	stream_enc_free(s);
	free(ram);
}

static void test_bad_identity_refused_locally(void)
{
	struct stream_ident id = ident(STREAM_BACKEND_QEMU);
	id.page_size = 3000;
	CHECK(!stream_enc_new(&id, STREAM_PRIMARY));
	CHECK(!stream_dec_new(&id, STREAM_PRIMARY));
	id = ident(STREAM_BACKEND_QEMU);
	id.ram_size += 1;
	CHECK(!stream_asm_new(&id));
	id = ident(0);
	CHECK(!stream_enc_new(&id, STREAM_PRIMARY));
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* A real socket with a small buffer: flush stops at EAGAIN mid-page and resumes. */
static void test_flush_resumes_after_partial_writes(void)
{
	enum { BIG = 1024 };
	struct stream_ident id = ident(STREAM_BACKEND_QEMU);
	id.ram_size = (uint64_t)BIG * PS;
	struct stream_enc *e = stream_enc_new(&id, STREAM_PRIMARY);
	struct stream_asm *a = stream_asm_new(&id);
	uint8_t *ram = make_ram(BIG, 5), *sec = calloc(BIG, PS);
	uint64_t *pfns = malloc(BIG * sizeof(*pfns));
	for (size_t i = 0; i < BIG; i++)
		pfns[i] = (i * 7) % BIG; /* a permutation: no two pages adjacent in RAM */
	int sv[2], small = 4096;
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	set_nonblock(sv[0]);
	set_nonblock(sv[1]);
	REQUIRE(stream_enc_header(e) == 0);
	REQUIRE(stream_enc_begin(e, 1, 0) == 0);
	REQUIRE(stream_enc_pages(e, pfns, BIG, ram) == 0);
	REQUIRE(stream_enc_device_state(e, "abc", 3) == 0);
	REQUIRE(stream_enc_end(e) == 0);

	struct stream_ckpt *ck = NULL;
	int eagain = 0, rc;
	uint8_t buf[3000]; /* not a divisor of anything on the wire */
	do {
		rc = stream_enc_flush(e, sv[0]);
		eagain += rc == -EAGAIN;
		REQUIRE(rc == 0 || rc == -EAGAIN);
		ssize_t n;
		while ((n = read(sv[1], buf, sizeof(buf))) > 0) {
			size_t off = 0, used;
			struct stream_rec rec;
			while (off < (size_t)n) {
				int r = stream_asm_feed(a, buf + off, (size_t)n - off, &used, &rec);
				off += used;
				REQUIRE(r >= 0);
				if (r == STREAM_ASM_CHECKPOINT)
					ck = stream_asm_take(a);
			}
		}
	} while (rc == -EAGAIN || !ck);
	CHECK(eagain > 0);
	REQUIRE(ck);
	REQUIRE(stream_ckpt_apply_ram(ck, sec, id.ram_size) == 0);
	CHECK(!memcmp(sec, ram, id.ram_size));
	stream_ckpt_free(ck);
	/* The peer is gone: a broken channel, reported as -EPIPE, no SIGPIPE. */
	close(sv[1]);
	REQUIRE(stream_enc_request(e, 2) == 0);
	CHECK_EQ(stream_enc_flush(e, sv[0]), -EPIPE);
	close(sv[0]);
	stream_enc_free(e);
	stream_asm_free(a);
	free(ram);
	free(sec);
	free(pfns);
}

static void test_checkpoint_must_be_taken_before_more(void)
{
	uint8_t *ram = make_ram(PAGES, 1);
	struct wr w;
	wr_init(&w);
	primary_stream(&w, ram, ram);
	struct stream_ident id = ident(STREAM_BACKEND_QEMU);
	struct stream_asm *a = stream_asm_new(&id);
	struct stream_rec rec;
	size_t used, pos = 0;
	int rc;
	while ((rc = stream_asm_feed(a, w.buf + pos, w.len - pos, &used, &rec)) == STREAM_ASM_RECORD)
		pos += used;
	pos += used;
	CHECK_EQ(rc, STREAM_ASM_CHECKPOINT);
	CHECK(pos < w.len);
	CHECK_EQ(stream_asm_feed(a, w.buf + pos, w.len - pos, &used, &rec), -EBUSY);
	CHECK_EQ(used, 0);
	struct stream_ckpt *ck = stream_asm_take(a);
	CHECK(ck && stream_ckpt_seq(ck) == 1);
	CHECK(!stream_asm_take(a));
	stream_ckpt_free(ck);
	stream_asm_free(a);
	wr_free(&w);
	free(ram);
}

static int first_batch(void *arg, const uint64_t *pfns, size_t n, const uint8_t *data)
{
	*(const uint64_t **)arg = pfns;
	return 1;
}

/* Feed until the next checkpoint and take it. */
static struct stream_ckpt *next_ckpt(struct stream_asm *a, const struct wr *w, size_t *pos)
{
	struct stream_rec rec;
	size_t used;
	int rc;
	do {
		rc = stream_asm_feed(a, w->buf + *pos, w->len - *pos, &used, &rec);
		*pos += used;
	} while (rc == STREAM_ASM_RECORD);
	return rc == STREAM_ASM_CHECKPOINT ? stream_asm_take(a) : NULL;
}

/* A released checkpoint's buffers carry the next one: no fresh memory (and its
 * page faults) per checkpoint, and no stale bytes either. */
static void test_release_recycles_buffers(void)
{
	uint8_t *ram1 = make_ram(PAGES, 1), *ram2 = make_ram(PAGES, 2), *sec = calloc(PAGES, PS);
	struct stream_ident id = ident(STREAM_BACKEND_QEMU);
	struct stream_asm *a = stream_asm_new(&id);
	const uint64_t *b1 = NULL, *b2 = NULL;
	size_t pos = 0;
	struct wr w;
	wr_init(&w);
	primary_stream(&w, ram1, ram2);
	struct stream_ckpt *ck = next_ckpt(a, &w, &pos);
	REQUIRE(ck);
	stream_ckpt_foreach_batch(ck, first_batch, &b1);
	REQUIRE(stream_ckpt_apply_ram(ck, sec, PAGES * PS) == 0);
	stream_asm_release(a, ck);
	ck = next_ckpt(a, &w, &pos);
	REQUIRE(ck && stream_ckpt_seq(ck) == 2);
	stream_ckpt_foreach_batch(ck, first_batch, &b2);
	CHECK(b1 && b1 == b2);
	CHECK(b2 && b2[0] == 63 && b2[1] == 0 && b2[2] == 5);
	REQUIRE(stream_ckpt_apply_ram(ck, sec, PAGES * PS) == 0);
	CHECK(!memcmp(sec + 63 * PS, ram2 + 63 * PS, PS));
	CHECK(!memcmp(sec + 5 * PS, ram2 + 5 * PS, PS));
	CHECK(!memcmp(sec + 10 * PS, ram1 + 10 * PS, PS));
	stream_asm_release(a, ck);
	CHECK_EQ(stream_asm_eof(a), 0);
	stream_asm_free(a);
	wr_free(&w);
	free(ram1);
	free(ram2);
	free(sec);
}

/* --- fuzz seeds ------------------------------------------------------------------
 * fuzz/fuzz_stream_decode.c reads: byte 0 = mode (bit 0: decode the secondary's
 * stream as the primary; bit 1: Xen backend; bits 2-7: split size - 1), then the
 * stream, for a VM of 16 pages of 4 KiB with config hash of "fuzz". */

static struct stream_ident fuzz_ident(enum stream_backend be)
{
	return (struct stream_ident){ .backend = be, .page_size = PS, .ram_size = 16 * PS,
				      .config_hash = stream_config_hash("fuzz", 4) };
}

static void seed_primary_qemu(struct wr *out)
{
	struct stream_ident id = fuzz_ident(STREAM_BACKEND_QEMU);
	struct stream_enc *e = stream_enc_new(&id, STREAM_PRIMARY);
	uint8_t *ram = make_ram(16, 9);
	uint64_t p1[] = { 0, 1, 2, 9 }, z1[] = { 15, 3 }, p2[] = { 2 };
	stream_enc_header(e);
	stream_enc_begin(e, 1, STREAM_CKPT_PRECOPY);
	stream_enc_pages(e, p1, 4, ram);
	stream_enc_end(e);
	stream_enc_request(e, 2);
	stream_enc_begin(e, 2, 0);
	stream_enc_pages(e, p2, 1, ram);
	stream_enc_zero_pages(e, z1, 2);
	stream_enc_device_state(e, "devstate", 8);
	stream_enc_input_mark(e, 77);
	stream_enc_end(e);
	stream_enc_error(e, STREAM_ERR_ABORTED, "bye");
	wr_u8(out, (3 - 1) << 2);
	stream_enc_drain(e, out);
	stream_enc_free(e);
	free(ram);
}

static void seed_secondary(struct wr *out, enum stream_backend be)
{
	struct stream_ident id = fuzz_ident(be);
	struct stream_enc *e = stream_enc_new(&id, STREAM_SECONDARY);
	struct stream_range r[] = { { 1, 2 }, { 8, 8 } };
	stream_enc_header(e);
	stream_enc_dirty(e, 1, r, 2);
	stream_enc_ack(e, 1);
	if (be == STREAM_BACKEND_XEN)
		stream_enc_xen_libxc(e, "backchannel", 11);
	stream_enc_ack(e, 2);
	wr_u8(out, 1 | (be == STREAM_BACKEND_XEN ? 2 : 0) | (7 << 2));
	stream_enc_drain(e, out);
	stream_enc_free(e);
}

static void seed_primary_xen(struct wr *out)
{
	struct stream_ident id = fuzz_ident(STREAM_BACKEND_XEN);
	struct stream_enc *e = stream_enc_new(&id, STREAM_PRIMARY);
	stream_enc_header(e);
	stream_enc_begin(e, 1, 0);
	stream_enc_xen_libxc(e, "XENF-libxc-image-header", 23);
	stream_enc_input_mark(e, 5);
	stream_enc_end(e);
	wr_u8(out, 2 | (0 << 2));
	stream_enc_drain(e, out);
	stream_enc_free(e);
}

/* Offsets in seed_primary_qemu's output (after the mode byte): stream header
 * 40, BEGIN 24, then PAGE_DATA: header 8, count + reserved 8, 4 pfns, pages. */
enum { SEED_PAGES = 1 + 40 + 24, SEED_COUNT = SEED_PAGES + 8, SEED_PFN0 = SEED_COUNT + 8,
       SEED_DATA = SEED_PFN0 + 4 * 8 };

/* Hostile seeds: a valid stream with one byte changed, so the fuzzer starts next
 * to each check. */
static void seed_mutated(struct wr *out, size_t at, uint8_t value)
{
	seed_primary_qemu(out);
	out->buf[at] = value;
}

static void write_seed(const char *dir, const char *name, const struct wr *w)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	REQUIRE(f);
	REQUIRE(fwrite(w->buf, 1, w->len, f) == w->len);
	fclose(f);
}

/* Builds the seeds; with COLO_WRITE_SEEDS=<dir> also writes them there
 * (fuzz/corpus/fuzz_stream_decode). Checks the valid ones decode. */
static void test_fuzz_seeds(void)
{
	struct wr w[7];
	static const char *const names[7] = { "seed-primary-qemu", "seed-secondary-qemu",
					      "seed-secondary-xen", "seed-primary-xen",
					      "seed-bad-checksum", "seed-bad-pfn", "seed-bad-count" };
	for (int i = 0; i < 7; i++)
		wr_init(&w[i]);
	seed_primary_qemu(&w[0]);
	seed_secondary(&w[1], STREAM_BACKEND_QEMU);
	seed_secondary(&w[2], STREAM_BACKEND_XEN);
	seed_primary_xen(&w[3]);
	seed_mutated(&w[4], SEED_DATA + 100, 0xee); /* a page byte: END's checksum fails */
	seed_mutated(&w[5], SEED_PFN0 + 7, 0x40);   /* pfn[0] = 64, RAM has 16 pages */
	seed_mutated(&w[6], SEED_COUNT + 3, 5);     /* count 4 -> 5 */
	static const int want_ck[] = { 2, 0, 0, 0 };
	static const int want_rc[] = { 0, -EBADMSG, -EBADMSG, -EBADMSG };
	static const enum stream_err want_code[] = { STREAM_OK, STREAM_ERR_CHECKSUM,
						     STREAM_ERR_PFN_RANGE, STREAM_ERR_BAD_LENGTH };
	const struct wr *primary[] = { &w[0], &w[4], &w[5], &w[6] };
	for (int i = 0; i < 4; i++) {
		struct stream_ident id = fuzz_ident(STREAM_BACKEND_QEMU);
		struct stream_asm *a = stream_asm_new(&id);
		struct stream_rec rec;
		size_t pos = 1, used;
		int rc, nck = 0;
		do {
			rc = stream_asm_feed(a, primary[i]->buf + pos, primary[i]->len - pos, &used, &rec);
			pos += used;
			if (rc == STREAM_ASM_CHECKPOINT) {
				stream_ckpt_free(stream_asm_take(a));
				nck++;
			}
		} while (rc > 0 && pos < primary[i]->len);
		CHECK_EQ(nck, want_ck[i]);
		CHECK_EQ(rc < 0 ? rc : 0, want_rc[i]);
		CHECK_EQ(stream_dec_code(stream_asm_dec(a)), want_code[i]);
		stream_asm_free(a);
	}
	const char *dir = getenv("COLO_WRITE_SEEDS");
	for (int i = 0; i < 7; i++) {
		if (dir)
			write_seed(dir, names[i], &w[i]);
		wr_free(&w[i]);
	}
}

static const struct test tests[] = {
	TEST(test_round_trip_whole_buffer),
	TEST(test_round_trip_byte_at_a_time),
	TEST(test_round_trip_random_splits),
	TEST(test_foreach_batch_sees_every_page),
	TEST(test_secondary_stream_round_trip),
	TEST(test_xen_libxc_container_passes_bytes_unmodified),
	TEST(test_contiguous_pages_share_one_iovec),
	TEST(test_encoder_refuses_what_the_decoder_would),
	TEST(test_bad_identity_refused_locally),
	TEST(test_flush_resumes_after_partial_writes),
	TEST(test_checkpoint_must_be_taken_before_more),
	TEST(test_release_recycles_buffers),
	TEST(test_fuzz_seeds),
	{ 0 },
};
TEST_MAIN(tests)
