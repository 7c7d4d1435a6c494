/* test_colo_xen_fake.h - a fake Xen device model (QEMU's QMP as libxl's QEMU speaks it)
 * on the test's own loop, for test_colo_xen_backend.c and test_colo_xen_agent.c.
 *
 * It records every command with its arguments as compact JSON ("xen-set-replication
 * {"enable":false,"primary":false,"failover":true}"), counts the connections it
 * accepted (the backend must use one), and answers from a script: the reply to
 * query-xen-replication-status is a raw JSON text the test sets, so hostile replies
 * are one assignment away. Header-only: each test program includes it once. */
#ifndef COLO_TEST_XEN_FAKE_H
#define COLO_TEST_XEN_FAKE_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "lib/loop.h"
#include "tests/unit/fake_qmp_server.h"
#include "qmp/qmp.h"
#include "tests/harness/test.h"

#define XF_MAX_CMDS 128

struct xfake {
	struct fqs srv; /* the socket, lines, passed fds, srv.accepts connections */
	const char *status;	  /* QEMU run state: "running", "prelaunch", ... */
	const char *repl_status;  /* raw "return" of query-xen-replication-status */
	const char *fail_cmd;	  /* answer this one with a GenericError */
	bool close_on_cmd;
	const char *tag;	  /* for several fakes in one test: part of the socket's name */
	char cmd[XF_MAX_CMDS][48];
	char args[XF_MAX_CMDS][160];
	int ncmds;
};

/* The index of the n-th (from 0) command named name, or -1. */
static int xf_find(const struct xfake *f, const char *name, int n)
{
	for (int i = 0; i < f->ncmds; i++)
		if (!strcmp(f->cmd[i], name) && n-- == 0)
			return i;
	return -1;
}

static int xf_count(const struct xfake *f, const char *name)
{
	int n = 0;
	while (xf_find(f, name, n) >= 0)
		n++;
	return n;
}

static void xf_answer(struct xfake *f, const char *name, long long id)
{
	if (f->fail_cmd && !strcmp(f->fail_cmd, name)) {
		fqs_send(&f->srv, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"fake failure of "
			"%s\"}, \"id\": %lld}\r\n", name, id);
	} else if (!strcmp(name, "query-version")) {
		fqs_send(&f->srv, "{\"return\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
			"\"package\": \"colo-rig-yankfix\"}, \"id\": %lld}\r\n", id);
	} else if (!strcmp(name, "query-status")) {
		fqs_send(&f->srv, "{\"return\": {\"status\": \"%s\", \"running\": %s}, \"id\": %lld}\r\n",
			f->status, strcmp(f->status, "running") ? "false" : "true", id);
	} else if (!strcmp(name, "qom-get")) {
		fqs_send(&f->srv, "{\"return\": \"xenfv-7.2-machine\", \"id\": %lld}\r\n", id);
	} else if (!strcmp(name, "query-pci")) {
		fqs_send(&f->srv, "{\"return\": [{\"bus\": 0, \"devices\": [{\"bus\": 0, \"slot\": 2, "
			"\"function\": 0, \"class_info\": {\"class\": 768}, \"id\": {\"device\": "
			"4369, \"vendor\": 4660}}]}], \"id\": %lld}\r\n", id);
	} else if (!strcmp(name, "query-xen-replication-status")) {
		fqs_send(&f->srv, "{\"return\": %s, \"id\": %lld}\r\n", f->repl_status, id);
	} else if (!strcmp(name, "add-fd")) {
		fqs_send(&f->srv, "{\"return\": {\"fdset-id\": 1, \"fd\": 30}, \"id\": %lld}\r\n", id);
	} else if (!strcmp(name, "xen-save-devices-state")) {
		REQUIRE(f->srv.held_fd >= 0 && write(f->srv.held_fd, "XENDEV", 6) == 6);
		fqs_send(&f->srv, "{\"return\": {}, \"id\": %lld}\r\n", id);
	} else {
		fqs_send(&f->srv, "{\"return\": {}, \"id\": %lld}\r\n", id);
	}
}

static void xf_line(struct fqs *srv, char *line, void *arg)
{
	struct xfake *f = arg;
	yajl_val v = yajl_tree_parse(line, NULL, 0);
	REQUIRE(v);
	const char *name = YAJL_GET_STRING(yajl_tree_get(v, (const char *[]){ "execute", NULL },
							 yajl_t_string));
	yajl_val idv = yajl_tree_get(v, (const char *[]){ "id", NULL }, yajl_t_number);
	yajl_val args = yajl_tree_get(v, (const char *[]){ "arguments", NULL }, yajl_t_object);
	REQUIRE(name && idv);
	if (f->ncmds < XF_MAX_CMDS) {
		char *text = NULL;
		snprintf(f->cmd[f->ncmds], sizeof(f->cmd[0]), "%s", name);
		if (args && qmp_json_format(args, false, &text) == 0)
			snprintf(f->args[f->ncmds], sizeof(f->args[0]), "%s", text);
		free(text);
		f->ncmds++;
	}
	if (f->close_on_cmd && strcmp(name, "qmp_capabilities"))
		fqs_close(&f->srv);
	else
		xf_answer(f, name, YAJL_GET_INTEGER(idv));
	yajl_tree_free(v);
}

static void xf_connect(struct fqs *srv, void *arg)
{
	fqs_send(srv, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7},"
		 " \"package\": \"colo-rig-yankfix\"}, \"capabilities\": []}}\r\n");
}

static void xf_start(struct xfake *f, struct loop *loop)
{
	char path[108];
	if (!f->status)
		f->status = "running";
	if (!f->repl_status)
		f->repl_status = "{\"error\": false}";
	snprintf(path, sizeof(path), "/tmp/colo-fakexen-%d%s%s.sock", getpid(), f->tag ? "-" : "",
		 f->tag ? f->tag : "");
	f->srv.line_max = 1 << 14;
	f->srv.send_max = 2048;
	f->srv.close_second = true;
	f->srv.on_connect = xf_connect;
	f->srv.on_line = xf_line;
	f->srv.arg = f;
	fqs_start(&f->srv, loop, path);
}

static void xf_stop(struct xfake *f)
{
	fqs_stop(&f->srv);
}

#endif
