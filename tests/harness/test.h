/* test.h - colo's unit-test harness.
 *
 * A test file lists its tests and ends with TEST_MAIN:
 *
 *     static void test_round_trip(void) { CHECK(x == 1); REQUIRE(p != NULL); ... }
 *     static const struct test tests[] = { TEST(test_round_trip), {0} };
 *     TEST_MAIN(tests)
 *
 * Each test runs in its own forked child with a timeout (TEST_TIMEOUT_S, env
 * COLO_TEST_TIMEOUT overrides), so a crash or hang fails that test only. Every test prints one
 * line "PASS <file>: <name> (<ms> ms)", "FAIL <file>: <name>: <why>" or
 * "SKIP <file>: <name>: <reason>"; tests/run-tests.sh counts those lines.
 * Arguments filter tests by substring.
 */
#ifndef COLO_TEST_H
#define COLO_TEST_H

#include <stdbool.h>
#include <stdio.h>

struct test {
	const char *name;
	void (*fn)(void);
};

#define TEST(fn) { #fn, fn }
#define TEST_TIMEOUT_S 60

void test_fail_at(const char *file, int line, const char *expr);
/* Skip the current test with a reason; only for an absent facility. */
_Noreturn void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int test_main(const char *file, const struct test *tests, int argc, char **argv);

/* CHECK records a failure and continues; REQUIRE stops the test. */
#define CHECK(e) ((e) ? (void)0 : test_fail_at(__FILE__, __LINE__, #e))
#define REQUIRE(e)                                            \
	do {                                                  \
		if (!(e)) {                                   \
			test_fail_at(__FILE__, __LINE__, #e); \
			test_end_now();                       \
		}                                             \
	} while (0)
#define CHECK_EQ(a, b)                                                                     \
	do {                                                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);                        \
		if (a_ != b_) {                                                            \
			char m_[256];                                                      \
			snprintf(m_, sizeof(m_), "%s == %s (%lld != %lld)", #a, #b, a_, b_); \
			test_fail_at(__FILE__, __LINE__, m_);                              \
		}                                                                          \
	} while (0)

_Noreturn void test_end_now(void);

#define TEST_MAIN(list)                                            \
	int main(int argc, char **argv)                            \
	{                                                          \
		return test_main(__FILE__, list, argc, argv);      \
	}

#endif
