/* Unit tests of dirty_set (checkpoint/dirty_set.c): the bitmap where dirty scans
 * accumulate and the primary unions its pages with the secondary's list. */
#include <errno.h>
#include <stdlib.h>

#include "checkpoint/dirty.h"
#include "tests/harness/test.h"

static struct dirty_set *new_set(uint64_t npages)
{
	struct dirty_set *s = NULL;
	REQUIRE(dirty_set_new(npages, &s) == 0);
	return s;
}

static void test_add_across_word_boundaries(void)
{
	struct dirty_set *s = new_set(1000);
	CHECK_EQ(dirty_set_add(s, 60, 10), 0); /* words 0 and 1 */
	CHECK_EQ(dirty_set_add(s, 100, 300), 0); /* partial, full and partial words */
	CHECK_EQ(dirty_set_add(s, 64, 0), 0);
	CHECK_EQ(dirty_set_count(s), 310);
	CHECK(!dirty_set_test(s, 59) && dirty_set_test(s, 60) && dirty_set_test(s, 69));
	CHECK(!dirty_set_test(s, 70) && !dirty_set_test(s, 99) && dirty_set_test(s, 100));
	CHECK(dirty_set_test(s, 399) && !dirty_set_test(s, 400));
	CHECK_EQ(dirty_set_add(s, 50, 100), 0); /* overlaps: counted once */
	CHECK_EQ(dirty_set_count(s), 350);
	dirty_set_clear(s);
	CHECK_EQ(dirty_set_count(s), 0);
	CHECK(!dirty_set_test(s, 100));
	dirty_set_free(s);
}

static void test_bounds(void)
{
	struct dirty_set *s = NULL;
	CHECK_EQ(dirty_set_new(0, &s), -EINVAL);
	s = new_set(130); /* the last word is partial */
	CHECK_EQ(dirty_set_add(s, 129, 1), 0);
	CHECK_EQ(dirty_set_add(s, 129, 2), -ERANGE);
	CHECK_EQ(dirty_set_add(s, 130, 0), -ERANGE);
	CHECK_EQ(dirty_set_add(s, UINT64_MAX, 2), -ERANGE); /* no wrap-around */
	CHECK_EQ(dirty_set_add(s, 0, 130), 0);
	CHECK_EQ(dirty_set_count(s), 130);
	CHECK(!dirty_set_test(s, 130));
	CHECK_EQ(dirty_set_npages(s), 130);
	dirty_set_free(s);
}

static void test_add_ranges_is_all_or_nothing(void)
{
	struct dirty_set *s = new_set(256);
	const struct stream_range bad[] = { { 0, 4 }, { 250, 7 } };
	const struct stream_range good[] = { { 0, 4 }, { 250, 6 } };
	CHECK_EQ(dirty_set_add_ranges(s, bad, 2), -ERANGE);
	CHECK_EQ(dirty_set_count(s), 0); /* the first range was not applied */
	CHECK_EQ(dirty_set_add_ranges(s, good, 2), 0);
	CHECK_EQ(dirty_set_count(s), 10);
	dirty_set_free(s);
}

static void test_export_pfns_resumes(void)
{
	struct dirty_set *s = new_set(200);
	uint64_t pfns[3], cursor = 0, all[10];
	size_t n = 0, k;
	dirty_set_add(s, 0, 1);
	dirty_set_add(s, 63, 3);
	dirty_set_add(s, 199, 1);
	while ((k = dirty_set_pfns(s, &cursor, pfns, 3)) > 0) {
		for (size_t i = 0; i < k; i++)
			all[n++] = pfns[i];
		if (k < 3)
			break;
	}
	CHECK_EQ(n, 5);
	CHECK(all[0] == 0 && all[1] == 63 && all[2] == 64 && all[3] == 65 && all[4] == 199);
	CHECK_EQ(cursor, 200);
	CHECK_EQ(dirty_set_pfns(s, &cursor, pfns, 3), 0);
	dirty_set_free(s);
}

static void test_export_ranges(void)
{
	struct dirty_set *s = new_set(4096);
	struct stream_range r[2];
	uint64_t cursor = 0;
	dirty_set_add(s, 10, 100);
	dirty_set_add(s, 128, 64); /* exactly one word */
	dirty_set_add(s, 4000, 96); /* to the end */
	CHECK_EQ(dirty_set_ranges(s, &cursor, r, 2), 2);
	CHECK(r[0].first == 10 && r[0].count == 100);
	CHECK(r[1].first == 128 && r[1].count == 64);
	CHECK_EQ(dirty_set_ranges(s, &cursor, r, 2), 1);
	CHECK(r[0].first == 4000 && r[0].count == 96);
	CHECK_EQ(cursor, 4096);
	dirty_set_free(s);
}

static void test_random_against_a_byte_map(void)
{
	enum { N = 5000 };
	static unsigned char ref[N];
	struct dirty_set *s = new_set(N);
	unsigned seed = 7;
	uint64_t want = 0;
	for (int i = 0; i < 2000; i++) {
		uint64_t first = (uint64_t)rand_r(&seed) % N;
		uint64_t count = (uint64_t)rand_r(&seed) % 150;
		if (count > N - first)
			count = N - first;
		REQUIRE(dirty_set_add(s, first, count) == 0);
		for (uint64_t p = first; p < first + count; p++) {
			want += !ref[p];
			ref[p] = 1;
		}
	}
	CHECK_EQ(dirty_set_count(s), want);
	for (uint64_t p = 0; p < N; p++)
		if (dirty_set_test(s, p) != ref[p]) {
			CHECK_EQ(p, -1);
			break;
		}
	dirty_set_free(s);
}

static const struct test tests[] = {
	TEST(test_add_across_word_boundaries),
	TEST(test_bounds),
	TEST(test_add_ranges_is_all_or_nothing),
	TEST(test_export_pfns_resumes),
	TEST(test_export_ranges),
	TEST(test_random_against_a_byte_map),
	{ 0 },
};

TEST_MAIN(tests)
