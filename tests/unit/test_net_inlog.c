/* Unit tests of the secondary's input log (net/inlog.c, docs/net.md §2.1). */
#include <errno.h>
#include <string.h>

#include "net/inlog.h"
#include "tests/harness/test.h"

static uint8_t got[64];
static size_t ngot;

static void inject(void *arg, const uint8_t *frame, size_t len)
{
	REQUIRE(ngot < sizeof(got));
	got[ngot++] = frame[0];
}

static int add(struct inlog *l, uint64_t seq)
{
	uint8_t f[20] = { (uint8_t)seq };
	return inlog_add(l, seq, f, sizeof(f));
}

static void test_reinject_above_mark(void)
{
	struct inlog *l;
	REQUIRE(inlog_new(100, 1 << 20, &l) == 0);
	for (uint64_t s = 1; s <= 5; s++)
		CHECK_EQ(add(l, s), 1);
	ngot = 0;
	inlog_loaded(l, 3, inject, NULL); /* the checkpoint's state has 1..3 */
	CHECK_EQ(ngot, 2);
	CHECK(got[0] == 4 && got[1] == 5);
	CHECK_EQ(add(l, 3), 0); /* late arrival at or below the mark: never injected */
	CHECK_EQ(add(l, 6), 1);
	ngot = 0;
	inlog_loaded(l, 5, inject, NULL);
	CHECK_EQ(ngot, 1);
	CHECK_EQ(got[0], 6);
	inlog_loaded(l, 2, inject, NULL); /* a mark never goes back */
	struct inlog_stats st;
	inlog_get_stats(l, &st);
	CHECK_EQ(st.mark, 5);
	CHECK_EQ(st.frames, 1);
	CHECK_EQ(st.stale, 1);
	CHECK_EQ(st.reinjected, 4);
	inlog_free(l);
}

static void test_bounded(void)
{
	struct inlog *l;
	REQUIRE(inlog_new(3, 1 << 20, &l) == 0);
	for (uint64_t s = 1; s <= 5; s++)
		CHECK_EQ(add(l, s), 1);
	struct inlog_stats st;
	inlog_get_stats(l, &st);
	CHECK_EQ(st.frames, 3);
	CHECK_EQ(st.forgotten, 2);
	ngot = 0;
	inlog_loaded(l, 0, inject, NULL);
	CHECK(ngot == 3 && got[0] == 3);
	inlog_free(l);
	REQUIRE(inlog_new(100, 50, &l) == 0); /* bytes: two 20-octet frames fit */
	for (uint64_t s = 1; s <= 4; s++)
		add(l, s);
	inlog_get_stats(l, &st);
	CHECK_EQ(st.frames, 2);
	CHECK_EQ(st.bytes, 40);
	inlog_free(l);
	CHECK_EQ(inlog_new(0, 1, &l), -EINVAL);
	inlog_free(NULL);
}

static const struct test tests[] = {
	TEST(test_reinject_above_mark),
	TEST(test_bounded),
	{ 0 },
};
TEST_MAIN(tests)
