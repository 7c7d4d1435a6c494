#include <errno.h>
#include <string.h>

#include "lib/wire.h"
#include "tests/harness/test.h"

static void test_round_trip_big_endian(void)
{
	struct wr w;
	wr_init(&w);
	wr_u8(&w, 0xab);
	wr_be16(&w, 0x1234);
	wr_be32(&w, 0xdeadbeef);
	wr_be64(&w, 0x0102030405060708ull);
	wr_bytes(&w, "hi", 2);
	REQUIRE(w.err == 0);
	CHECK_EQ(w.len, 17);
	CHECK(w.buf[1] == 0x12 && w.buf[2] == 0x34); /* network byte order on the wire */
	struct rd r = rd_init(w.buf, w.len);
	uint8_t a;
	uint16_t b;
	uint32_t c;
	uint64_t d;
	char s[2];
	CHECK(rd_u8(&r, &a) == 0 && a == 0xab);
	CHECK(rd_be16(&r, &b) == 0 && b == 0x1234);
	CHECK(rd_be32(&r, &c) == 0 && c == 0xdeadbeef);
	CHECK(rd_be64(&r, &d) == 0 && d == 0x0102030405060708ull);
	CHECK(rd_copy(&r, s, 2) == 0 && !memcmp(s, "hi", 2));
	CHECK_EQ(rd_left(&r), 0);
	CHECK(!r.err);
	wr_free(&w);
}

static void test_short_read_is_sticky_error(void)
{
	const uint8_t buf[3] = { 1, 2, 3 };
	struct rd r = rd_init(buf, sizeof(buf));
	uint32_t v = 0;
	uint8_t u;
	CHECK_EQ(rd_be32(&r, &v), -EBADMSG);
	CHECK(r.err);
	CHECK_EQ(r.off, 0);                  /* nothing consumed */
	CHECK_EQ(rd_u8(&r, &u), -EBADMSG); /* sticky even though 3 bytes remain */
	struct rd r2 = rd_init(buf, sizeof(buf)), sub;
	CHECK_EQ(rd_skip(&r2, SIZE_MAX), -EBADMSG); /* no wrap-around */
	struct rd r3 = rd_init(buf, sizeof(buf));
	CHECK_EQ(rd_sub(&r3, &sub, 4), -EBADMSG);
}

static void test_fixed_writer_overflow(void)
{
	uint8_t buf[4];
	struct wr w;
	wr_init_fixed(&w, buf, sizeof(buf));
	CHECK_EQ(wr_be32(&w, 1), 0);
	CHECK_EQ(wr_u8(&w, 1), -ENOSPC);
	CHECK_EQ(w.len, 4);
	CHECK_EQ(wr_patch_be32(&w, 0, 0x01020304), 0);
	CHECK(buf[0] == 1 && buf[3] == 4);
	CHECK_EQ(wr_patch_be32(&w, 1, 0), -EINVAL);
}

static const struct test tests[] = {
	TEST(test_round_trip_big_endian),
	TEST(test_short_read_is_sticky_error),
	TEST(test_fixed_writer_overflow),
	{ 0 },
};
TEST_MAIN(tests)
