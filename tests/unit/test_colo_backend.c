/* colo/backend_qemu*.c against a fake QEMU on the same loop: the probe (and the
 * configuration hash), a wrong socket, a peer that is not QEMU, QEMU errors, the
 * VM operations and their commands, fd passing with the access modes QEMU needs,
 * and QEMU going away. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <xxhash.h>
#include <yajl/yajl_tree.h>

#include "colo/backend.h"
#include "lib/loop.h"
#include "tests/harness/test.h"
#include "tests/unit/fake_qmp_server.h"

#define GREETING                                                                          \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, " \
	"\"package\": \"colo-rig-yankfix\"}, \"capabilities\": []}}\r\n"

#define PCI_REPLY                                                                           \
	"[{\"bus\": 0, \"devices\": ["                                                      \
	"{\"bus\": 0, \"slot\": 1, \"function\": 1, \"irq_pin\": 0, \"qdev_id\": \"\","       \
	" \"class_info\": {\"class\": 257, \"desc\": \"IDE controller\"},"                   \
	" \"id\": {\"device\": 28688, \"subsystem-vendor\": 6900, \"vendor\": 32902,"        \
	" \"subsystem\": 4352}, \"regions\": [{\"bar\": 4, \"size\": 16, \"address\": 49344,"\
	" \"type\": \"io\"}]},"                                                              \
	"{\"bus\": 0, \"slot\": 0, \"function\": 0, \"class_info\": {\"class\": 1536},"      \
	" \"id\": {\"device\": 4663, \"vendor\": 32902}, \"regions\": [],"                   \
	" \"pci_bridge\": {\"bus\": {\"number\": 1, \"secondary\": 1, \"subordinate\": 1},"  \
	" \"devices\": [{\"bus\": 1, \"slot\": 3, \"function\": 0,"                          \
	" \"class_info\": {\"class\": 512}, \"id\": {\"device\": 4110, \"vendor\": 32902,"   \
	" \"subsystem-vendor\": 6900, \"subsystem\": 4352}}]}}]}]"

#define EXPECTED_CONFIG                                                    \
	"colo-config 1\nmachine pc-i440fx-7.2-machine\ncpus 2 max-x86_64-cpu\n" \
	"ram 134217728 0\n"                                                    \
	"pci 00:00.0 8086:1237 ffff:ffff class 0600\n"                         \
	"pci 00:01.1 8086:7010 1af4:1100 class 0101\n"                         \
	"pci 01:03.0 8086:100e 1af4:1100 class 0200\n"

struct fake {
	struct fqs srv; /* the socket, lines, the passed fd */
	bool not_qemu, close_on_cmd;
	const char *fail_cmd; /* answer this one with an error */
	const char *status;
	int64_t mem;
	char log[64][48]; /* commands seen */
	char args[64][160];
	int ncmds;
	int got_mode; /* access mode of the fd a devstate command used */
	char loaded[32];
};

static void fake_devstate(struct fake *f, const char *name, long long id)
{
	REQUIRE(f->srv.held_fd >= 0);
	f->got_mode = fcntl(f->srv.held_fd, F_GETFL) & O_ACCMODE;
	if (!strcmp(name, "xen-save-devices-state")) {
		if (f->got_mode != O_WRONLY) {
			fqs_send(&f->srv, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Unable "
				  "to open /dev/fdset/1: Permission denied\"}, \"id\": %lld}\r\n", id);
			return;
		}
		REQUIRE(write(f->srv.held_fd, "DEVSTATE", 8) == 8);
	} else {
		ssize_t n = read(f->srv.held_fd, f->loaded, sizeof(f->loaded) - 1);
		REQUIRE(n >= 0);
		f->loaded[n] = '\0';
	}
	fqs_send(&f->srv, "{\"return\": {}, \"id\": %lld}\r\n", id);
}

static void fake_cmd(struct fake *f, const char *name, long long id, yajl_val args)
{
	if (f->ncmds < 64)
		snprintf(f->log[f->ncmds++], sizeof(f->log[0]), "%s", name);
	if (f->close_on_cmd) {
		fqs_close(&f->srv);
		return;
	}
	if (f->fail_cmd && !strcmp(f->fail_cmd, name)) {
		fqs_send(&f->srv, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command "
			  "%s has not been found\"}, \"id\": %lld}\r\n", name, id);
		return;
	}
	if (!strcmp(name, "qmp_capabilities") || !strcmp(name, "stop") || !strcmp(name, "cont") ||
	    !strcmp(name, "announce-self") || !strcmp(name, "remove-fd"))
		fqs_send(&f->srv, "{\"return\": {}, \"id\": %lld}\r\n", id);
	else if (!strcmp(name, "query-version"))
		fqs_send(&f->srv, "{\"return\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
			  "\"package\": \"colo-rig-yankfix\"}, \"id\": %lld}\r\n", id);
	else if (!strcmp(name, "query-status"))
		fqs_send(&f->srv, "{\"return\": {\"status\": \"%s\", \"singlestep\": false, "
			  "\"running\": %s}, \"id\": %lld}\r\n", f->status,
			  strcmp(f->status, "running") ? "false" : "true", id);
	else if (!strcmp(name, "query-memory-size-summary"))
		fqs_send(&f->srv, "{\"return\": {\"base-memory\": %lld, \"plugged-memory\": 0}, "
			  "\"id\": %lld}\r\n", (long long)f->mem, id);
	else if (!strcmp(name, "qom-get")) {
		const char *path = YAJL_GET_STRING(yajl_tree_get(args, (const char *[]){ "path", NULL },
								 yajl_t_string));
		fqs_send(&f->srv, "{\"return\": \"%s\", \"id\": %lld}\r\n",
			  path && !strcmp(path, "/machine") ? "pc-i440fx-7.2-machine"
							    : "max-x86_64-cpu", id);
	} else if (!strcmp(name, "query-cpus-fast"))
		fqs_send(&f->srv, "{\"return\": [{\"cpu-index\": 0, \"qom-path\": "
			  "\"/machine/unattached/device[0]\", \"target\": \"x86_64\"}, "
			  "{\"cpu-index\": 1, \"qom-path\": \"/machine/unattached/device[1]\"}], "
			  "\"id\": %lld}\r\n", id);
	else if (!strcmp(name, "query-pci"))
		fqs_send(&f->srv, "{\"return\": " PCI_REPLY ", \"id\": %lld}\r\n", id);
	else if (!strcmp(name, "add-fd"))
		fqs_send(&f->srv, "{\"return\": {\"fdset-id\": 1, \"fd\": 30}, \"id\": %lld}\r\n", id);
	else if (!strncmp(name, "xen-", 4))
		fake_devstate(f, name, id);
	else
		fqs_send(&f->srv, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"no %s\"}, "
			  "\"id\": %lld}\r\n", name, id);
}

static void fake_line(struct fqs *srv, char *line, void *arg)
{
	struct fake *f = arg;
	yajl_val v = yajl_tree_parse(line, NULL, 0);
	REQUIRE(v);
	const char *name = YAJL_GET_STRING(yajl_tree_get(v, (const char *[]){ "execute", NULL },
							 yajl_t_string));
	yajl_val idv = yajl_tree_get(v, (const char *[]){ "id", NULL }, yajl_t_number);
	yajl_val args = yajl_tree_get(v, (const char *[]){ "arguments", NULL }, yajl_t_object);
	REQUIRE(name && idv);
	if (f->ncmds < 64 && args) {
		const char *fn = YAJL_GET_STRING(yajl_tree_get(args, (const char *[]){ "filename", NULL },
							       yajl_t_string));
		yajl_val live = yajl_tree_get(args, (const char *[]){ "live", NULL }, yajl_t_any);
		snprintf(f->args[f->ncmds], sizeof(f->args[0]), "%s%s", fn ? fn : "",
			 live ? (YAJL_IS_FALSE(live) ? " live=false" : " live=true") : "");
	}
	fake_cmd(f, name, YAJL_GET_INTEGER(idv), args);
	yajl_tree_free(v);
}

static void fake_connect(struct fqs *srv, void *arg)
{
	struct fake *f = arg;
	if (f->not_qemu)
		fqs_send(srv, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
	else
		fqs_send(srv, "%s", GREETING);
}

static void fake_start(struct fake *f, struct loop *loop)
{
	char path[108];
	if (!f->status)
		f->status = "running";
	if (!f->mem)
		f->mem = 128 << 20;
	snprintf(path, sizeof(path), "/tmp/colo-fakeqmp-%d.sock", getpid());
	f->srv.line_max = 1 << 16;
	f->srv.send_max = 4096;
	f->srv.on_connect = fake_connect;
	f->srv.on_line = fake_line;
	f->srv.arg = f;
	fqs_start(&f->srv, loop, path);
}

static void fake_stop(struct fake *f)
{
	fqs_stop(&f->srv);
}

/* What a test waits for. */
struct result {
	bool done;
	int err;
	char why[512];
	struct backend_info info;
	char config[1024];
	int gone;
	bool free_in_cb;
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
	if (r->free_in_cb)
		backend_free(b);
}

static void on_gone(struct backend *b, int err, const char *why, void *arg)
{
	struct result *r = arg;
	r->gone++;
	snprintf(r->why, sizeof(r->why), "%s", why);
}

static void run_until(struct loop *loop, bool *flag)
{
	uint64_t t0 = mono_ms();
	while (!*flag) {
		REQUIRE(mono_ms() - t0 < 10000);
		loop_run_once(loop, 100);
	}
}

static struct backend *open_probe(struct loop *loop, struct fake *f, struct result *r)
{
	struct backend *b;
	REQUIRE(backend_qemu_open(loop, f->srv.path, &b) == 0);
	CHECK(!strcmp(backend_name(b), "qemu"));
	REQUIRE(backend_probe(b, on_probe, r) == 0);
	CHECK(!r->done); /* never from inside the verb */
	run_until(loop, &r->done);
	return b;
}

static void test_probe_and_config_hash(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct fake f = { 0 };
	fake_start(&f, loop);
	struct result r = { 0 };
	struct backend *b = open_probe(loop, &f, &r);
	CHECK_EQ(r.err, 0);
	CHECK(!strcmp(r.info.status, "running"));
	CHECK(r.info.running);
	CHECK_EQ(r.info.ram_size, 128ull << 20);
	CHECK_EQ(r.info.pid, getpid()); /* the fake is us */
	CHECK(!strcmp(r.info.version, "7.2.22 (colo-rig-yankfix)"));
	if (strcmp(r.config, EXPECTED_CONFIG))
		fprintf(stderr, "    config text:\n%s", r.config);
	CHECK(!strcmp(r.config, EXPECTED_CONFIG));
	CHECK(r.info.config_hash == XXH3_64bits(EXPECTED_CONFIG, strlen(EXPECTED_CONFIG)));
	/* Read-only: nothing but queries went to QEMU. */
	for (int i = 0; i < f.ncmds; i++)
		CHECK(!strncmp(f.log[i], "query-", 6) || !strcmp(f.log[i], "qom-get") ||
		      !strcmp(f.log[i], "qmp_capabilities"));
	backend_free(b);

	/* Another RAM size: another hash. */
	f.mem = 256 << 20;
	fqs_close(&f.srv);
	struct result r2 = { 0 };
	b = open_probe(loop, &f, &r2);
	CHECK_EQ(r2.err, 0);
	CHECK_EQ(r2.info.ram_size, 256ull << 20);
	CHECK(r2.info.config_hash != r.info.config_hash);
	backend_free(b);
	fake_stop(&f);
	loop_free(loop);
}

static void test_wrong_socket_and_not_qemu(void)
{
	struct loop *loop;
	struct backend *b = NULL;
	REQUIRE(loop_new(&loop) == 0);
	CHECK_EQ(backend_qemu_open(loop, "/nonexistent/qmp.sock", &b), -ENOENT);
	/* A socket file with nobody listening. */
	struct fake f = { 0 };
	fake_start(&f, loop);
	loop_del_fd(loop, f.srv.lfd);
	close(f.srv.lfd);
	CHECK_EQ(backend_qemu_open(loop, f.srv.path, &b), -ECONNREFUSED);
	unlink(f.srv.path);

	struct fake g = { .not_qemu = true };
	fake_start(&g, loop);
	struct result r = { 0 };
	b = open_probe(loop, &g, &r);
	CHECK(r.err < 0);
	CHECK(strstr(r.why, "probe failed") != NULL);
	fprintf(stderr, "    not QEMU: %s\n", r.why);
	backend_free(b);
	fake_stop(&g);
	loop_free(loop);
}

static void test_qemu_error_fails_probe(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct fake f = { .fail_cmd = "query-memory-size-summary" };
	fake_start(&f, loop);
	struct result r = { 0 };
	struct backend *b = open_probe(loop, &f, &r);
	CHECK_EQ(r.err, -EREMOTEIO);
	CHECK(strstr(r.why, "QEMU said CommandNotFound") != NULL);
	backend_free(b);
	fake_stop(&f);
	loop_free(loop);
}

static void test_operations_send_their_commands(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct fake f = { 0 };
	fake_start(&f, loop);
	struct backend *b;
	REQUIRE(backend_qemu_open(loop, f.srv.path, &b) == 0);
	struct result a = { 0 }, c = { 0 }, d = { 0 };
	/* Issued back to back; QMP keeps the order. */
	REQUIRE(backend_stop(b, on_done, &a) == 0);
	REQUIRE(backend_resume(b, on_done, &c) == 0);
	REQUIRE(backend_announce(b, on_done, &d) == 0);
	run_until(loop, &d.done);
	CHECK(a.done && c.done);
	CHECK(a.err == 0 && c.err == 0 && d.err == 0);
	REQUIRE(f.ncmds == 4);
	CHECK(!strcmp(f.log[1], "stop"));
	CHECK(!strcmp(f.log[2], "cont"));
	CHECK(!strcmp(f.log[3], "announce-self"));
	backend_free(b);
	fake_stop(&f);
	loop_free(loop);
}

static void test_devstate_fd_modes(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct fake f = { 0 };
	fake_start(&f, loop);
	struct backend *b;
	REQUIRE(backend_qemu_open(loop, f.srv.path, &b) == 0);
	/* An O_RDWR memfd (what a replicator is likely to hand us). */
	int mfd = memfd_create("devstate", MFD_CLOEXEC);
	REQUIRE(mfd >= 0);
	struct result s = { 0 };
	REQUIRE(backend_save_devices(b, mfd, on_done, &s) == 0);
	run_until(loop, &s.done);
	CHECK_EQ(s.err, 0);
	CHECK_EQ(f.got_mode, O_WRONLY);
	char buf[16] = "";
	CHECK_EQ(pread(mfd, buf, sizeof(buf), 0), 8);
	CHECK(!memcmp(buf, "DEVSTATE", 8));
	REQUIRE(f.ncmds == 4);
	CHECK(!strcmp(f.log[1], "add-fd"));
	CHECK(!strcmp(f.log[2], "xen-save-devices-state"));
	CHECK(!strncmp(f.args[2], "/dev/fdset/", 11) && strstr(f.args[2], " live=false"));
	CHECK(!strcmp(f.log[3], "remove-fd"));

	struct result l = { 0 };
	REQUIRE(backend_load_devices(b, mfd, on_done, &l) == 0);
	run_until(loop, &l.done);
	CHECK_EQ(l.err, 0);
	CHECK_EQ(f.got_mode, O_RDONLY);
	CHECK(!strcmp(f.loaded, "DEVSTATE")); /* a fresh open: reads from offset 0 */
	CHECK(!strcmp(f.log[5], "xen-load-devices-state"));
	CHECK(strstr(f.args[5], "live") == NULL);

	/* A read-only fd cannot be saved into. */
	int ro = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	CHECK_EQ(backend_save_devices(b, ro, on_done, &s), -EBADF);
	close(ro);
	close(mfd);
	backend_free(b);
	fake_stop(&f);
	loop_free(loop);
}

static void test_qemu_gone(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct fake f = { 0 };
	fake_start(&f, loop);
	struct backend *b;
	REQUIRE(backend_qemu_open(loop, f.srv.path, &b) == 0);
	struct result g = { 0 }, s = { 0 };
	struct backend_handlers h = { .gone = on_gone, .arg = &g };
	backend_set_handlers(b, &h);
	REQUIRE(backend_stop(b, on_done, &s) == 0);
	f.close_on_cmd = true;
	run_until(loop, &s.done);
	CHECK(s.err < 0);
	for (int i = 0; i < 50 && !g.gone; i++)
		loop_run_once(loop, 10);
	CHECK_EQ(g.gone, 1);
	CHECK(strstr(g.why, "lost QEMU's QMP connection") != NULL);
	CHECK_EQ(backend_resume(b, on_done, &s), -ENOTCONN);
	backend_free(b);

	/* backend_free from inside an operation's callback. */
	f.close_on_cmd = false;
	fqs_close(&f.srv);
	REQUIRE(backend_qemu_open(loop, f.srv.path, &b) == 0);
	struct result x = { .free_in_cb = true }, y = { 0 };
	REQUIRE(backend_stop(b, on_done, &x) == 0);
	REQUIRE(backend_resume(b, on_done, &y) == 0);
	run_until(loop, &x.done);
	for (int i = 0; i < 5; i++)
		loop_run_once(loop, 10);
	CHECK(!y.done); /* dropped with the backend */
	fake_stop(&f);
	loop_free(loop);
}

static const struct test tests[] = {
	TEST(test_probe_and_config_hash),
	TEST(test_wrong_socket_and_not_qemu),
	TEST(test_qemu_error_fails_probe),
	TEST(test_operations_send_their_commands),
	TEST(test_devstate_fd_modes),
	TEST(test_qemu_gone),
	{ 0 },
};
TEST_MAIN(tests)
