/* colo/backend_xen.c against a fake Xen device model (test_colo_xen_fake.h): the probe
 * and its configuration text, every operation's command and arguments over ONE
 * connection, query-xen-replication-status checked (a reported error, hostile
 * replies), failover:true, and the qemu backend refusing the Xen-only verbs. */
#include <errno.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "colo/backend.h"
#include "tests/unit/test_colo_xen_fake.h"

struct result {
	bool done;
	int err;
	char why[512];
	struct backend_info info;
	char config[512];
};

static void on_probe(struct backend *b, int err, const char *why, const struct backend_info *in,
		     void *arg)
{
	struct result *r = arg;
	r->done = true;
	r->err = err;
	snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
	if (in) {
		r->info = *in;
		snprintf(r->config, sizeof(r->config), "%s", in->config_text);
	}
}

static void on_done(struct backend *b, int err, const char *why, void *arg)
{
	struct result *r = arg;
	r->done = true;
	r->err = err;
	snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
}

static void run_until(struct loop *loop, bool *flag)
{
	uint64_t t0 = mono_ms();
	while (!*flag) {
		REQUIRE(mono_ms() - t0 < 10000);
		loop_run_once(loop, 100);
	}
}

#define XEN_CONFIG                                                        \
	"colo-config 1\nbackend xen\nmachine xenfv-7.2-machine\nram 1073741824\n" \
	"pci 00:02.0 1234:1111 ffff:ffff class 0300\n"

static void test_probe(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct xfake f = { .status = "prelaunch" };
	xf_start(&f, loop);
	struct backend *b;
	REQUIRE(backend_xen_open(loop, f.srv.path, 7, 1ull << 30, &b) == 0);
	CHECK(!strcmp(backend_name(b), "xen"));
	struct result r = { 0 };
	REQUIRE(backend_probe(b, on_probe, &r) == 0);
	CHECK(!r.done);
	run_until(loop, &r.done);
	CHECK_EQ(r.err, 0);
	CHECK(!strcmp(r.info.status, "prelaunch") && !r.info.running);
	CHECK_EQ(r.info.ram_size, 1ull << 30); /* the configured size: QEMU does not own it */
	CHECK_EQ(r.info.pid, getpid());
	CHECK(!strcmp(r.info.version, "7.2.22 (colo-rig-yankfix)"));
	if (strcmp(r.config, XEN_CONFIG))
		fprintf(stderr, "    config text:\n%s", r.config);
	CHECK(!strcmp(r.config, XEN_CONFIG));
	CHECK(r.info.config_hash == XXH3_64bits(XEN_CONFIG, strlen(XEN_CONFIG)));
	/* Neither vCPUs nor guest RAM are asked of a Xen device model. */
	CHECK_EQ(xf_count(&f, "query-cpus-fast"), 0);
	CHECK_EQ(xf_count(&f, "query-memory-size-summary"), 0);
	backend_free(b);
	xf_stop(&f);
	loop_free(loop);
}

/* Every verb's command and arguments, in order, over the one connection. */
static void test_operations_one_connection(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct xfake f = { 0 };
	xf_start(&f, loop);
	struct backend *b;
	REQUIRE(backend_xen_open(loop, f.srv.path, 3, 0, &b) == 0);
	struct result p = { 0 }, r[12];
	memset(r, 0, sizeof(r));
	int mfd = memfd_create("xendev", MFD_CLOEXEC);
	REQUIRE(mfd >= 0);
	REQUIRE(backend_probe(b, on_probe, &p) == 0);
	REQUIRE(backend_set_global_dirty_log(b, true, on_done, &r[0]) == 0);
	REQUIRE(backend_stop(b, on_done, &r[1]) == 0);
	REQUIRE(backend_save_devices(b, mfd, on_done, &r[2]) == 0);
	REQUIRE(backend_resume(b, on_done, &r[3]) == 0);
	REQUIRE(backend_set_disk_replication(b, true, true, false, on_done, &r[4]) == 0);
	REQUIRE(backend_disk_checkpoint(b, on_done, &r[5]) == 0);
	REQUIRE(backend_disk_replication_status(b, on_done, &r[6]) == 0);
	REQUIRE(backend_set_disk_replication(b, false, true, false, on_done, &r[7]) == 0);
	REQUIRE(backend_set_disk_replication(b, false, false, true, on_done, &r[8]) == 0);
	REQUIRE(backend_load_devices(b, mfd, on_done, &r[9]) == 0);
	REQUIRE(backend_announce(b, on_done, &r[10]) == 0);
	REQUIRE(backend_set_global_dirty_log(b, false, on_done, &r[11]) == 0);
	run_until(loop, &r[11].done);
	CHECK_EQ(p.err, 0);
	for (int i = 0; i < 12; i++) {
		CHECK(r[i].done);
		CHECK_EQ(r[i].err, 0);
	}
	CHECK_EQ(f.srv.accepts, 1);
	/* enable + failover is what QEMU refuses: never sent. */
	CHECK_EQ(backend_set_disk_replication(b, true, false, true, on_done, &p), -EINVAL);

	static const char *const want[][2] = {
		{ "xen-set-global-dirty-log", "{\"enable\":true}" },
		{ "stop", "" },
		{ "add-fd", NULL },
		{ "xen-save-devices-state", NULL },
		{ "remove-fd", NULL },
		{ "cont", "" },
		{ "xen-set-replication", "{\"enable\":true,\"primary\":true}" },
		{ "xen-colo-do-checkpoint", "" },
		{ "query-xen-replication-status", "" },
		{ "xen-set-replication", "{\"enable\":false,\"primary\":true,\"failover\":false}" },
		{ "xen-set-replication", "{\"enable\":false,\"primary\":false,\"failover\":true}" },
		{ "add-fd", NULL },
		{ "xen-load-devices-state", NULL },
		{ "remove-fd", NULL },
		{ "announce-self", NULL },
		{ "xen-set-global-dirty-log", "{\"enable\":false}" },
	};
	int first = xf_find(&f, "xen-set-global-dirty-log", 0);
	REQUIRE(first >= 0);
	REQUIRE(f.ncmds - first == (int)(sizeof(want) / sizeof(want[0])));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		int k = first + (int)i;
		if (strcmp(f.cmd[k], want[i][0]) || (want[i][1] && strcmp(f.args[k], want[i][1])))
			fprintf(stderr, "    command %zu: %s %s, want %s %s\n", i, f.cmd[k], f.args[k],
				want[i][0], want[i][1] ? want[i][1] : "*");
		CHECK(!strcmp(f.cmd[k], want[i][0]));
		CHECK(!want[i][1] || !strcmp(f.args[k], want[i][1]));
	}
	int save = xf_find(&f, "xen-save-devices-state", 0);
	CHECK(strstr(f.args[save], "\"live\":false") != NULL);
	char buf[8] = "";
	CHECK_EQ(pread(mfd, buf, sizeof(buf), 0), 6);
	CHECK(!memcmp(buf, "XENDEV", 6));
	close(mfd);
	backend_free(b);
	xf_stop(&f);
	loop_free(loop);
}

/* One status query against reply `ret`: returns the result. */
static struct result status_with(const char *ret)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct xfake f = { .repl_status = ret };
	xf_start(&f, loop);
	struct backend *b;
	REQUIRE(backend_xen_open(loop, f.srv.path, 3, 0, &b) == 0);
	struct result r = { 0 }, after = { 0 };
	REQUIRE(backend_disk_replication_status(b, on_done, &r) == 0);
	REQUIRE(backend_stop(b, on_done, &after) == 0);
	run_until(loop, &after.done);
	CHECK(r.done);
	CHECK_EQ(after.err, 0); /* a bad reply ends that operation, not the connection */
	backend_free(b);
	xf_stop(&f);
	loop_free(loop);
	return r;
}

static void test_replication_status_checked(void)
{
	struct result r = status_with("{\"error\": false}");
	CHECK_EQ(r.err, 0);
	r = status_with("{\"error\": true, \"desc\": \"NBD child failed: Connection reset\"}");
	CHECK_EQ(r.err, -EIO);
	CHECK(strstr(r.why, "disk replication error: NBD child failed: Connection reset") != NULL);
	fprintf(stderr, "    %s\n", r.why);
	r = status_with("{\"error\": true}");
	CHECK_EQ(r.err, -EIO);
	CHECK(strstr(r.why, "no description") != NULL);
	/* The description is QEMU's text: no control characters reach our log. */
	r = status_with("{\"error\": true, \"desc\": \"line1\\nline2\\u001b[31m\"}");
	CHECK_EQ(r.err, -EIO);
	CHECK(strchr(r.why, '\n') == NULL && strchr(r.why, 0x1b) == NULL);
}

/* Wrong types from QEMU: an error for that query, never a crash or a "healthy". */
static void test_replication_status_hostile(void)
{
	static const char *const bad[] = {
		"{}",
		"{\"error\": \"false\"}",
		"{\"error\": 0}",
		"{\"error\": null}",
		"{\"error\": [true]}",
		"[{\"error\": false}]",
		"\"ok\"",
		"17",
		"null",
		"{\"desc\": \"fine\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct result r = status_with(bad[i]);
		if (r.err != -EPROTO)
			fprintf(stderr, "    reply %s: err %d (%s)\n", bad[i], r.err, r.why);
		CHECK_EQ(r.err, -EPROTO);
		CHECK(strstr(r.why, "no boolean 'error'") != NULL);
	}
	/* error true with a desc of the wrong type: still an error, described as absent. */
	struct result r = status_with("{\"error\": true, \"desc\": {\"x\": 1}}");
	CHECK_EQ(r.err, -EIO);
}

static void test_qemu_errors_and_gone(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct xfake f = { .fail_cmd = "xen-set-replication" };
	xf_start(&f, loop);
	struct backend *b;
	REQUIRE(backend_xen_open(loop, f.srv.path, 3, 0, &b) == 0);
	struct result r = { 0 };
	REQUIRE(backend_set_disk_replication(b, false, false, true, on_done, &r) == 0);
	run_until(loop, &r.done);
	CHECK_EQ(r.err, -EREMOTEIO);
	CHECK(strstr(r.why, "fail the disk replication over failed: QEMU said GenericError") !=
	      NULL);
	/* QEMU goes away mid-command: the verb fails, later verbs say so at once. */
	f.close_on_cmd = true;
	struct result s = { 0 };
	REQUIRE(backend_disk_replication_status(b, on_done, &s) == 0);
	run_until(loop, &s.done);
	CHECK(s.err < 0 && s.err != -EIO);
	for (int i = 0; i < 20; i++)
		loop_run_once(loop, 5);
	CHECK_EQ(backend_set_global_dirty_log(b, true, on_done, &s), -ENOTCONN);
	backend_free(b);
	xf_stop(&f);
	loop_free(loop);
}

/* backend_cancel(): unfinished operations complete without calling anyone; the
 * connection goes on. */
static void test_cancel(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct xfake f = { 0 };
	xf_start(&f, loop);
	struct backend *b;
	REQUIRE(backend_xen_open(loop, f.srv.path, 3, 0, &b) == 0);
	struct result p = { 0 }, s = { 0 }, q = { 0 }, after = { 0 };
	REQUIRE(backend_probe(b, on_probe, &p) == 0);
	REQUIRE(backend_disk_replication_status(b, on_done, &s) == 0);
	REQUIRE(backend_stop(b, on_done, &q) == 0);
	backend_cancel(b);
	REQUIRE(backend_resume(b, on_done, &after) == 0);
	run_until(loop, &after.done);
	CHECK_EQ(after.err, 0);
	CHECK(!p.done && !s.done && !q.done);
	CHECK_EQ(xf_count(&f, "stop"), 1); /* sent all the same */
	backend_free(b);
	xf_stop(&f);
	loop_free(loop);
}

/* The qemu backend has none of the Xen verbs. */
static void test_qemu_backend_refuses_xen_verbs(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct xfake f = { 0 };
	xf_start(&f, loop);
	struct backend *b;
	struct result r = { 0 };
	REQUIRE(backend_qemu_open(loop, f.srv.path, &b) == 0);
	CHECK_EQ(backend_set_global_dirty_log(b, true, on_done, &r), -EOPNOTSUPP);
	CHECK_EQ(backend_set_disk_replication(b, true, true, false, on_done, &r), -EOPNOTSUPP);
	CHECK_EQ(backend_disk_replication_status(b, on_done, &r), -EOPNOTSUPP);
	CHECK_EQ(backend_disk_checkpoint(b, on_done, &r), -EOPNOTSUPP);
	for (int i = 0; i < 5; i++)
		loop_run_once(loop, 5);
	CHECK(!r.done);
	backend_free(b);
	xf_stop(&f);
	loop_free(loop);
}

static const struct test tests[] = {
	TEST(test_probe),
	TEST(test_operations_one_connection),
	TEST(test_replication_status_checked),
	TEST(test_replication_status_hostile),
	TEST(test_qemu_errors_and_gone),
	TEST(test_cancel),
	TEST(test_qemu_backend_refuses_xen_verbs),
	{ 0 },
};
TEST_MAIN(tests)
