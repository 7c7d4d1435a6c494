/* sync.c - one blocking QMP call for tools (coloctl), on a private loop. The agents
 * never use this: they stay on their one loop. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/loop.h"
#include "qmp/qmp.h"

struct sync_call {
	struct loop *loop;
	bool done;
	int err;
	yajl_val ret;
	char *why;
	size_t why_len;
};

static void on_done(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct sync_call *s = arg;
	s->done = true;
	s->err = res->err;
	if (res->err == 0) {
		s->ret = res->ret;
		res->ret = NULL; /* ours now */
	} else if (res->err == -EREMOTEIO) {
		snprintf(s->why, s->why_len, "%s: %s", res->error_class, res->error_desc);
	} else {
		snprintf(s->why, s->why_len, "%s",
			 res->error_desc ? res->error_desc : strerror(-res->err));
	}
	loop_stop(s->loop);
}

int qmp_call_sync(const char *path, const char *name, struct qmp_args *args, int fd,
		  int timeout_ms, yajl_val *ret, char *why, size_t why_len)
{
	struct loop *loop = NULL;
	struct qmp *c = NULL;
	struct sync_call s = { .why = why, .why_len = why_len };
	int r;
	if (why_len)
		why[0] = '\0';
	r = loop_new(&loop);
	if (r < 0)
		goto out;
	s.loop = loop;
	r = qmp_connect(loop, path, NULL, &c);
	if (r < 0) {
		snprintf(why, why_len, "cannot connect to QMP socket %s: %s", path, strerror(-r));
		goto out;
	}
	/* Queued until negotiation is done; a failed negotiation fails it too. */
	r = qmp_exec(c, name, args, fd, timeout_ms, on_done, &s);
	args = NULL;
	if (r < 0) {
		snprintf(why, why_len, "cannot send %s: %s", name, strerror(-r));
		goto out;
	}
	while (!s.done) {
		r = loop_run_once(loop, -1);
		if (r < 0)
			goto out;
	}
	r = s.err;
	if (r == 0 && ret) {
		*ret = s.ret;
		s.ret = NULL;
	}
out:
	yajl_tree_free(s.ret);
	qmp_args_free(args);
	qmp_free(c);
	loop_free(loop);
	return r;
}
