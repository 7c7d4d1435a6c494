/* backend_qemu.c - the qemu backend: VM operations as QMP commands (docs/qmp.md).
 * backend_xen.c reuses the connection and these operations (backend_qemu_int.h).
 *
 * An operation is one or more pipelined QMP commands; it completes when the last one
 * has answered, with the first error. The probe and the configuration hash are in
 * backend_qemu_probe.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "colo/backend.h"
#include "colo/backend_qemu_int.h"
#include "lib/log.h"
#include "qmp/qmp.h"

/* Commands that only flip the run state answer in well under a millisecond; a
 * QEMU that takes seconds is stuck. The device-state transfer is bigger (~210 KB,
 * ~2.5 ms measured) but must also never hang the checkpoint loop. */
#define QBE_DEVSTATE_TIMEOUT_MS 10000
/* Our own fdset ids, so add-fd and the command using /dev/fdset/N pipeline
 * without waiting for add-fd's reply. Far from QEMU's own numbering. */
#define QBE_FDSET_BASE 0x10000

static void op_unlink(struct qbe *q, struct qop *op)
{
	TAILQ_REMOVE(&q->ops, op, link);
}

void qop_fail(struct qop *op, int err, const char *fmt, ...)
{
	if (op->err)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->why, sizeof(op->why), fmt, ap);
	va_end(ap);
	op->err = err;
}

void qop_account(struct qop *op, struct qmp_result *res)
{
	if (res->err == -EREMOTEIO)
		qop_fail(op, res->err, "%s failed: QEMU said %s: %s", op->what, res->error_class,
			 res->error_desc);
	else if (res->err)
		qop_fail(op, res->err, "%s failed: %s", op->what,
			 res->error_desc ? res->error_desc : strerror(-res->err));
	if (--op->pending > 0)
		return;
	struct qbe *q = op->q;
	op_unlink(q, op);
	/* The callback may free the backend: touch nothing of q afterwards. */
	if (op->finish)
		op->finish(op);
	else if (op->cb)
		op->cb(q->b, op->err, op->err ? op->why : NULL, op->arg);
	qop_free(op);
}

static void op_reply(struct qmp *c, struct qmp_result *res, void *arg)
{
	qop_account(arg, res);
}

struct qop *qop_new(struct qbe *q, const char *what, backend_done_cb cb, void *arg)
{
	struct qop *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->q = q;
	op->what = what;
	op->cb = cb;
	op->arg = arg;
	TAILQ_INSERT_TAIL(&q->ops, op, link);
	return op;
}

void qop_free(struct qop *op)
{
	free(op->probe);
	free(op);
}

/* Issue one command of op. Returns what qmp_exec returned; on failure of a later
 * command the op still completes (with the error) through the earlier ones. */
int qop_exec(struct qop *op, const char *name, struct qmp_args *args, int fd, int timeout_ms,
	     qmp_exec_cb cb)
{
	int r = qmp_exec(op->q->qmp, name, args, fd, timeout_ms, cb ? cb : op_reply, op);
	if (r < 0) {
		qop_fail(op, r, "%s: cannot send %s to QEMU: %s", op->what, name, strerror(-r));
		return r;
	}
	op->pending++;
	return 0;
}

/* Finish issuing: if nothing went out, the op never calls back (return the error). */
int qop_issued(struct qop *op)
{
	if (op->pending > 0)
		return 0;
	int r = op->err ? op->err : -EINVAL;
	op_unlink(op->q, op);
	qop_free(op);
	return r;
}

int qbe_simple(struct backend *b, const char *what, const char *cmd, struct qmp_args *args,
	       backend_done_cb cb, void *arg)
{
	struct qbe *q = backend_priv(b);
	struct qop *op = qop_new(q, what, cb, arg);
	if (!op) {
		qmp_args_free(args);
		return -ENOMEM;
	}
	qop_exec(op, cmd, args, -1, QBE_TIMEOUT_MS, NULL);
	return qop_issued(op);
}

int qbe_stop(struct backend *b, backend_done_cb cb, void *arg)
{
	return qbe_simple(b, "stop", "stop", NULL, cb, arg);
}

int qbe_resume(struct backend *b, backend_done_cb cb, void *arg)
{
	return qbe_simple(b, "resume (cont)", "cont", NULL, cb, arg);
}

/* QEMU's own migration announce defaults (announce-initial/max/rounds/step). */
int qbe_announce(struct backend *b, backend_done_cb cb, void *arg)
{
	struct qmp_args *a = qmp_args_new();
	if (!a)
		return -ENOMEM;
	qmp_args_int(a, "initial", 50);
	qmp_args_int(a, "max", 550);
	qmp_args_int(a, "rounds", 5);
	qmp_args_int(a, "step", 100);
	return qbe_simple(b, "announce-self", "announce-self", a, cb, arg);
}

/* QEMU opens /dev/fdset/N by the member whose access mode matches exactly; an O_RDWR
 * fd matches neither save nor load. Returns a new fd to pass (caller closes). */
static int fd_for_mode(int fd, int mode)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if ((fl & O_ACCMODE) == mode) {
		int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		return d < 0 ? -errno : d;
	}
	if ((fl & O_ACCMODE) != O_RDWR)
		return -EBADF;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int d = open(path, mode | O_CLOEXEC);
	return d < 0 ? -errno : d;
}

/* add-fd + xen-{save,load}-devices-state + remove-fd, pipelined. */
static int devstate(struct backend *b, int fd, bool save, backend_done_cb cb, void *arg)
{
	struct qbe *q = backend_priv(b);
	const char *what = save ? "save device state" : "load device state";
	int pfd = fd_for_mode(fd, save ? O_WRONLY : O_RDONLY);
	if (pfd < 0) {
		log_err("qemu %s: %s: fd %d cannot be opened %s: %s", q->path, what, fd,
			save ? "write-only" : "read-only", strerror(-pfd));
		return pfd;
	}
	int64_t set = QBE_FDSET_BASE + (int64_t)(q->next_fdset++ % 0x10000);
	char fname[48];
	snprintf(fname, sizeof(fname), "/dev/fdset/%lld", (long long)set);
	struct qop *op = qop_new(q, what, cb, arg);
	struct qmp_args *a = qmp_args_new();
	int r = -ENOMEM;
	if (!op || !a)
		goto out;
	r = qmp_add_fd(q->qmp, pfd, set, QBE_TIMEOUT_MS, op_reply, op);
	if (r < 0)
		goto out;
	op->pending++;
	qmp_args_str(a, "filename", fname);
	if (save) /* live:true on a stopped VM inactivates its block devices */
		qmp_args_bool(a, "live", false);
	qop_exec(op, save ? "xen-save-devices-state" : "xen-load-devices-state", a, -1,
		 QBE_DEVSTATE_TIMEOUT_MS, NULL);
	a = NULL;
	struct qmp_args *rm = qmp_args_new();
	if (rm) {
		qmp_args_int(rm, "fdset-id", set);
		qop_exec(op, "remove-fd", rm, -1, QBE_TIMEOUT_MS, NULL);
	}
	op = NULL; /* in flight: completes through op_reply */
	r = 0;
out:
	qmp_args_free(a);
	if (op) {
		op_unlink(q, op);
		qop_free(op);
	}
	close(pfd); /* qmp dup()ed what it sends */
	return r;
}

int qbe_save(struct backend *b, int fd, backend_done_cb cb, void *arg)
{
	return devstate(b, fd, true, cb, arg);
}

int qbe_load(struct backend *b, int fd, backend_done_cb cb, void *arg)
{
	return devstate(b, fd, false, cb, arg);
}

static void on_broken(struct qmp *c, int err, const char *why, void *arg)
{
	struct qbe *q = arg;
	char msg[600];
	snprintf(msg, sizeof(msg), "lost QEMU's QMP connection %s: %s", q->path, why);
	backend_notify_gone(q->b, err, msg);
}

void qbe_cancel(struct backend *b)
{
	struct qbe *q = backend_priv(b);
	struct qop *op;
	TAILQ_FOREACH(op, &q->ops, link) {
		op->cb = NULL; /* qop_account() then completes it silently */
		op->finish = NULL;
	}
}

void qbe_destroy(struct backend *b)
{
	struct qbe *q = backend_priv(b);
	struct qop *op;
	qmp_free(q->qmp); /* drops unfinished commands without callbacks */
	while ((op = TAILQ_FIRST(&q->ops))) {
		op_unlink(q, op);
		qop_free(op);
	}
	free(q->config_text);
	free(q);
}

static const struct backend_ops qemu_ops = {
	.name = "qemu",
	.probe = qbe_probe,
	.stop = qbe_stop,
	.resume = qbe_resume,
	.save_devices = qbe_save,
	.load_devices = qbe_load,
	.announce = qbe_announce,
	.destroy = qbe_destroy,
	.cancel = qbe_cancel,
};

int qbe_open(struct loop *loop, const char *qmp_path, const struct backend_ops *ops,
	     struct qbe **out)
{
	struct qbe *q = calloc(1, sizeof(*q));
	struct backend *b = NULL;
	int r = -ENOMEM;
	if (!q)
		goto out;
	TAILQ_INIT(&q->ops);
	snprintf(q->path, sizeof(q->path), "%s", qmp_path);
	r = backend_new(ops, q, &b);
	if (r < 0)
		goto out;
	q->b = b;
	struct qmp_handlers h = { .broken = on_broken, .arg = q };
	r = qmp_connect(loop, qmp_path, &h, &q->qmp);
	if (r < 0)
		goto out;
	*out = q;
	return 0;
out:
	if (b)
		backend_free(b); /* frees q through destroy */
	else
		free(q);
	return r;
}

int backend_qemu_open(struct loop *loop, const char *qmp_path, struct backend **out)
{
	struct qbe *q;
	int r = qbe_open(loop, qmp_path, &qemu_ops, &q);
	if (r == 0)
		*out = q->b;
	return r;
}
