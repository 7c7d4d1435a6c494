/* Unit tests of qmp/parse.c (line splitting, pre-yajl checks, message checks) and
 * qmp/args.c (the JSON we send). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/internal.h"
#include "qmp/parse.h"
#include "qmp/qmp.h"
#include "tests/harness/test.h"

struct lines_seen {
	char text[8][64];
	int n;
	int stop_after; /* 0: never */
};

static int collect(void *arg, char *line, size_t len)
{
	struct lines_seen *s = arg;
	if (s->n < 8)
		snprintf(s->text[s->n], sizeof(s->text[0]), "%.*s", (int)len, line);
	s->n++;
	return s->stop_after && s->n == s->stop_after ? 42 : 0;
}

static void test_lines_split_across_chunks(void)
{
	struct qmp_lines l;
	struct lines_seen s = { 0 };
	char why[128];
	const char *stream = "{\"a\":1}\r\n{\"b\":2}\n\r\n{\"c\"";
	qmp_lines_init(&l);
	/* byte by byte: every split point */
	for (size_t i = 0; i < strlen(stream); i++)
		REQUIRE(qmp_lines_feed(&l, stream + i, 1, collect, &s, why, sizeof(why)) == 0);
	CHECK_EQ(s.n, 3);
	CHECK(strcmp(s.text[0], "{\"a\":1}") == 0);
	CHECK(strcmp(s.text[1], "{\"b\":2}") == 0);
	CHECK(strcmp(s.text[2], "") == 0);
	CHECK_EQ(qmp_lines_pending(&l), 4);
	qmp_lines_free(&l);
}

static void test_lines_callback_stops_feeding(void)
{
	struct qmp_lines l;
	struct lines_seen s = { .stop_after = 1 };
	char why[128];
	qmp_lines_init(&l);
	CHECK_EQ(qmp_lines_feed(&l, "a\nb\nc\n", 6, collect, &s, why, sizeof(why)), 42);
	CHECK_EQ(s.n, 1);
	qmp_lines_free(&l);
}

static void test_lines_limit_is_exact(void)
{
	struct qmp_lines l;
	struct lines_seen s = { 0 };
	char why[128];
	size_t max = QMP_MAX_LINE_BYTES;
	char *big = malloc(max + 3);
	REQUIRE(big);
	memset(big, 'x', max + 3);
	qmp_lines_init(&l);
	/* exactly the limit, then "\r\n": accepted */
	memcpy(big + max, "\r\n", 2);
	CHECK_EQ(qmp_lines_feed(&l, big, max + 2, collect, &s, why, sizeof(why)), 0);
	CHECK_EQ(s.n, 1);
	/* exactly the limit, then "\n": accepted */
	big[max] = '\n';
	CHECK_EQ(qmp_lines_feed(&l, big, max + 1, collect, &s, why, sizeof(why)), 0);
	CHECK_EQ(s.n, 2);
	/* one byte more, then "\n": refused */
	big[max] = 'x';
	big[max + 1] = '\n';
	CHECK_EQ(qmp_lines_feed(&l, big, max + 2, collect, &s, why, sizeof(why)), -EMSGSIZE);
	CHECK_EQ(s.n, 2);
	/* two bytes more without a newline: refused before they are buffered */
	qmp_lines_free(&l);
	memset(big, 'x', max + 3);
	CHECK_EQ(qmp_lines_feed(&l, big, max + 2, collect, &s, why, sizeof(why)), -EMSGSIZE);
	CHECK(strstr(why, "longer than") != NULL);
	CHECK(l.cap <= max + 2);
	qmp_lines_free(&l);
	free(big);
}

static int prescan(const char *s)
{
	char why[128];
	return qmp_prescan(s, strlen(s), QMP_MAX_DEPTH, why, sizeof(why));
}

static void test_prescan_utf8(void)
{
	CHECK_EQ(prescan("{\"a\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}"), 0);
	CHECK_EQ(prescan("{\"a\":\"\xff\"}"), -EILSEQ);
	CHECK_EQ(prescan("{\"a\":\"\xc0\xaf\"}"), -EILSEQ);	     /* overlong '/' */
	CHECK_EQ(prescan("{\"a\":\"\xe0\x80\xaf\"}"), -EILSEQ);     /* overlong */
	CHECK_EQ(prescan("{\"a\":\"\xed\xa0\x80\"}"), -EILSEQ);     /* surrogate */
	CHECK_EQ(prescan("{\"a\":\"\xf4\x90\x80\x80\"}"), -EILSEQ); /* > U+10FFFF */
	CHECK_EQ(prescan("{\"a\":\"\xe2\x82\"}"), -EILSEQ);	     /* truncated */
	CHECK_EQ(prescan("{\"a\":\"\xe2\x82"), -EILSEQ);	     /* truncated at end */
	CHECK_EQ(prescan("{\"a\":\"\x80\"}"), -EILSEQ);	     /* lone continuation */
}

static void test_prescan_depth_and_strings(void)
{
	char deep[2 * QMP_MAX_DEPTH + 8];
	size_t n = 0;
	for (int i = 0; i < QMP_MAX_DEPTH; i++)
		deep[n++] = '[';
	for (int i = 0; i < QMP_MAX_DEPTH; i++)
		deep[n++] = ']';
	deep[n] = '\0';
	CHECK_EQ(prescan(deep), 0); /* exactly the limit */
	memmove(deep + 1, deep, n + 1);
	deep[0] = '[';
	strcat(deep, "]");
	CHECK_EQ(prescan(deep), -ELOOP); /* one deeper */
	/* brackets inside strings, escaped quotes, do not count */
	CHECK_EQ(prescan("{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[[\"}"), 0);
	CHECK_EQ(prescan("{\"a\":\"\\\\\"}"), 0);
	/* a NUL byte would make yajl see a shorter text than we checked */
	char nul[] = "{\"a\":\"x\0\"}";
	char why[128];
	CHECK_EQ(qmp_prescan(nul, sizeof(nul) - 1, QMP_MAX_DEPTH, why, sizeof(why)), -EPROTO);
	CHECK_EQ(prescan("{\"a\":1} /* c */"), -EPROTO);
	CHECK_EQ(prescan("{\"a\":\"/ is fine in strings\"}"), 0);
}

static int parse(const char *line, struct qmp_msg *m)
{
	char why[256];
	return qmp_msg_parse(line, strlen(line), m, why, sizeof(why));
}

static void test_msg_greeting(void)
{
	struct qmp_msg m;
	REQUIRE(parse("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7},"
		      " \"package\": \"Debian 1:7.2+dfsg-7+deb12u6 colo\"}, \"capabilities\": "
		      "[\"oob\"]}}", &m) == 0);
	CHECK_EQ(m.type, QMP_MSG_GREETING);
	CHECK(m.oob);
	CHECK_EQ(m.major, 7);
	CHECK_EQ(m.minor, 2);
	CHECK_EQ(m.micro, 22);
	CHECK(m.package && strstr(m.package, "colo"));
	qmp_msg_free(&m);
	REQUIRE(parse("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}},"
		      " \"capabilities\": []}}", &m) == 0);
	CHECK(!m.oob);
	CHECK(m.package == NULL);
	qmp_msg_free(&m);
	CHECK_EQ(parse("{\"QMP\": {\"capabilities\": []}}", &m), -EPROTO);
	CHECK_EQ(parse("{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": "
		       "\"x\"}}, \"capabilities\": []}}", &m), -EPROTO);
	CHECK_EQ(parse("{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": "
		       "0}}, \"capabilities\": {}}}", &m), -EPROTO);
}

static void test_msg_return_and_error(void)
{
	struct qmp_msg m;
	REQUIRE(parse("{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 7}", &m) == 0);
	CHECK_EQ(m.type, QMP_MSG_RETURN);
	CHECK_EQ(m.id, 7);
	CHECK(strcmp(qmp_get_str(m.ret, "status"), "running") == 0);
	CHECK(m.ret_slot && *m.ret_slot == m.ret);
	qmp_msg_free(&m);
	REQUIRE(parse("{\"id\": 3, \"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}", &m) == 0);
	CHECK_EQ(m.type, QMP_MSG_ERROR);
	CHECK_EQ(m.id, 3);
	CHECK(strcmp(m.error_class, "GenericError") == 0);
	CHECK(strcmp(m.error_desc, "nope") == 0);
	qmp_msg_free(&m);
	/* no id parses (id 0): the client decides what that means */
	REQUIRE(parse("{\"return\": {}}", &m) == 0);
	CHECK_EQ(m.id, 0);
	qmp_msg_free(&m);
}

static void test_msg_event(void)
{
	struct qmp_msg m;
	REQUIRE(parse("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, "
		      "\"event\": \"STOP\"}", &m) == 0);
	CHECK_EQ(m.type, QMP_MSG_EVENT);
	CHECK(strcmp(m.event, "STOP") == 0);
	CHECK(m.data == NULL);
	CHECK_EQ(m.seconds, 1700000000);
	CHECK_EQ(m.microseconds, 123456);
	qmp_msg_free(&m);
	REQUIRE(parse("{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": "
		      "\"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}}",
		      &m) == 0);
	CHECK(strcmp(qmp_get_str(m.data, "reason"), "guest-shutdown") == 0);
	qmp_msg_free(&m);
}

static void test_msg_hostile(void)
{
	static const char *const bad[] = {
		"",
		"   ",
		"[]",
		"\"QMP\"",
		"{}",
		"{\"unknown\": 1}",
		"{\"return\": {}, \"error\": {\"class\": \"a\", \"desc\": \"b\"}, \"id\": 1}",
		"{\"return\": 1, \"return\": 2, \"id\": 1}",
		"{\"return\": {}, \"id\": \"1\"}",
		"{\"return\": {}, \"id\": -1}",
		"{\"return\": {}, \"id\": 0}",
		"{\"return\": {}, \"id\": 1.5}",
		"{\"return\": {}, \"id\": 99999999999999999999999}",
		"{\"error\": {\"class\": \"GenericError\"}, \"id\": 1}",
		"{\"error\": {\"desc\": \"x\"}, \"id\": 1}",
		"{\"error\": \"bad\", \"id\": 1}",
		"{\"event\": \"STOP\"}",
		"{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1}}",
		"{\"event\": 5, \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}",
		"{\"event\": \"X\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"data\": 3}",
		"{\"return\": {}, \"id\": 1} {\"return\": {}, \"id\": 2}",
		"{\"return\": {}, \"id\": 1",
		"{\"return\": tru, \"id\": 1}",
		"{\"return\": \"\x01\", \"id\": 1}",
		NULL,
	};
	for (int i = 0; bad[i]; i++) {
		struct qmp_msg m;
		char why[256] = "";
		int r = qmp_msg_parse(bad[i], strlen(bad[i]), &m, why, sizeof(why));
		if (r != -EPROTO) {
			fprintf(stderr, "    case %d (%s): %d\n", i, bad[i], r);
			CHECK_EQ(r, -EPROTO);
		}
		CHECK(why[0] != '\0');
		if (r == 0)
			qmp_msg_free(&m);
	}
}

static char *encode(const char *name, struct qmp_args *a, int *r)
{
	char *buf = NULL, why[128];
	size_t len;
	*r = qmp_cmd_encode(name, a, 5, &buf, &len, why, sizeof(why));
	if (*r == 0) {
		CHECK(buf[len - 1] == '\n');
		buf[len - 1] = '\0';
	}
	return buf;
}

static void test_args_encode(void)
{
	int r;
	char *s = encode("query-status", NULL, &r);
	REQUIRE(r == 0);
	CHECK(strcmp(s, "{\"execute\":\"query-status\",\"id\":5}") == 0);
	free(s);

	struct qmp_args *a = qmp_args_new();
	qmp_args_str(a, "filename", "/dev/fdset/1");
	qmp_args_bool(a, "live", false);
	qmp_args_int(a, "n", -3);
	qmp_args_begin_array(a, "caps");
	qmp_args_begin_object(a, NULL);
	qmp_args_str(a, "capability", "x-colo");
	qmp_args_end(a);
	qmp_args_end(a);
	s = encode("xen-save-devices-state", a, &r);
	REQUIRE(r == 0);
	CHECK(strcmp(s, "{\"arguments\":{\"filename\":\"/dev/fdset/1\",\"live\":false,\"n\":-3,"
			"\"caps\":[{\"capability\":\"x-colo\"}]},\"execute\":"
			"\"xen-save-devices-state\",\"id\":5}") == 0);
	free(s);

	/* strings are escaped by yajl, never spliced */
	a = qmp_args_new();
	qmp_args_str(a, "k", "a\"b\\c\n");
	s = encode("x", a, &r);
	REQUIRE(r == 0);
	CHECK(strstr(s, "\"a\\\"b\\\\c\\n\"") != NULL);
	free(s);
}

static void test_args_misuse_is_einval(void)
{
	int r;
	struct qmp_args *a = qmp_args_new();
	qmp_args_begin_object(a, "o"); /* never ended */
	CHECK(encode("x", a, &r) == NULL);
	CHECK_EQ(r, -EINVAL);
	a = qmp_args_new();
	qmp_args_int(a, NULL, 1); /* no key inside an object */
	CHECK(encode("x", a, &r) == NULL);
	CHECK_EQ(r, -EINVAL);
	a = qmp_args_new();
	qmp_args_begin_array(a, "l");
	qmp_args_int(a, "k", 1); /* a key inside an array */
	qmp_args_end(a);
	CHECK(encode("x", a, &r) == NULL);
	CHECK_EQ(r, -EINVAL);
	a = qmp_args_new();
	qmp_args_end(a); /* nothing to end */
	CHECK(encode("x", a, &r) == NULL);
	CHECK_EQ(r, -EINVAL);
	a = qmp_args_new();
	qmp_args_str(a, "k", "\xff"); /* not UTF-8 */
	CHECK(encode("x", a, &r) == NULL);
	CHECK_EQ(r, -EINVAL);
	CHECK(encode("bad\xff", NULL, &r) == NULL);
	CHECK_EQ(r, -EINVAL);
}

static void test_args_parse_round_trip(void)
{
	struct qmp_args *a = NULL;
	char why[128];
	int r;
	REQUIRE(qmp_args_parse("{\"b\": [1, 2.5, \"s\", null, true, {\"c\": -7}]}", &a, why,
			       sizeof(why)) == 0);
	char *s = encode("q", a, &r);
	REQUIRE(r == 0);
	CHECK(strcmp(s, "{\"arguments\":{\"b\":[1,2.5,\"s\",null,true,{\"c\":-7}]},"
			"\"execute\":\"q\",\"id\":5}") == 0);
	free(s);
	CHECK_EQ(qmp_args_parse("[1]", &a, why, sizeof(why)), -EINVAL);
	CHECK_EQ(qmp_args_parse("{\"a\":", &a, why, sizeof(why)), -EINVAL);
	CHECK_EQ(qmp_args_parse("{\"a\":\"\xc0\xaf\"}", &a, why, sizeof(why)), -EINVAL);
}

static void test_json_format_and_accessors(void)
{
	struct qmp_msg m;
	char *s = NULL;
	REQUIRE(parse("{\"return\": {\"fdset-id\": 3, \"fd\": 25, \"ok\": true, \"s\": \"x\"}, "
		      "\"id\": 1}", &m) == 0);
	REQUIRE(qmp_json_format(m.ret, false, &s) == 0);
	CHECK(strcmp(s, "{\"fdset-id\":3,\"fd\":25,\"ok\":true,\"s\":\"x\"}") == 0);
	free(s);
	int64_t v = 0;
	bool b = false;
	CHECK_EQ(qmp_get_int(m.ret, "fdset-id", &v), 0);
	CHECK_EQ(v, 3);
	CHECK_EQ(qmp_get_int(m.ret, "missing", &v), -ENOENT);
	CHECK_EQ(qmp_get_int(m.ret, "s", &v), -EPROTO);
	CHECK_EQ(qmp_get_bool(m.ret, "ok", &b), 0);
	CHECK(b);
	CHECK_EQ(qmp_get_bool(m.ret, "fd", &b), -EPROTO);
	CHECK(qmp_get_str(m.ret, "fd") == NULL);
	CHECK(qmp_get_str(NULL, "fd") == NULL);
	qmp_msg_free(&m);
}

static const struct test tests[] = {
	TEST(test_lines_split_across_chunks),
	TEST(test_lines_callback_stops_feeding),
	TEST(test_lines_limit_is_exact),
	TEST(test_prescan_utf8),
	TEST(test_prescan_depth_and_strings),
	TEST(test_msg_greeting),
	TEST(test_msg_return_and_error),
	TEST(test_msg_event),
	TEST(test_msg_hostile),
	TEST(test_args_encode),
	TEST(test_args_misuse_is_einval),
	TEST(test_args_parse_round_trip),
	TEST(test_json_format_and_accessors),
	{ 0 },
};
TEST_MAIN(tests)
