/* backend_xen.c - the Xen backend's half that talks to QEMU: a Xen HVM domain's device
 * model (the QEMU libxl started for it) over one QMP connection (docs/xen.md).
 *
 * The domain itself (vCPUs, guest RAM, log-dirty mode, suspend/resume) is
 * libxenctrl/libxenguest's, driven by the Xen helper process (docs/xen-helper.md);
 * what remains for the agent is the device model: run state, device state, the
 * device model's own writes to guest RAM, and COLO disk replication. The connection
 * and the shared operations are backend_qemu.c's (backend_qemu_int.h).
 *
 * What libxl's COLO does differently (tools/libs/light/libxl_qmp.c, Xen 4.17): it opens
 * a new QMP connection per command; it never reads query-xen-replication-status's
 * {error, desc} (only whether the command itself failed); and the secondary stops
 * replication without `failover: true`. Here: one connection for the agent's life, the
 * status checked (backend_disk_replication_status()), failover chosen by the caller. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colo/backend.h"
#include "colo/backend_qemu_int.h"
#include "lib/log.h"
#include "qmp/qmp.h"

/* QEMU's text goes into our log lines: printable ASCII only, bounded. */
static void sanitize(char *dst, size_t len, const char *src)
{
	size_t i = 0;
	for (; src && src[i] && i + 1 < len; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[i] = '\0';
}

static int xbe_logdirty(struct backend *b, bool enable, backend_done_cb cb, void *arg)
{
	struct qmp_args *a = qmp_args_new();
	if (!a)
		return -ENOMEM;
	qmp_args_bool(a, "enable", enable);
	return qbe_simple(b, enable ? "start the device model's dirty log"
				    : "stop the device model's dirty log",
			  "xen-set-global-dirty-log", a, cb, arg);
}

static int xbe_set_replication(struct backend *b, bool enable, bool primary, bool failover,
			       backend_done_cb cb, void *arg)
{
	struct qmp_args *a = qmp_args_new();
	if (!a)
		return -ENOMEM;
	qmp_args_bool(a, "enable", enable);
	qmp_args_bool(a, "primary", primary);
	if (!enable) /* QEMU refuses `failover` when enabling */
		qmp_args_bool(a, "failover", failover);
	const char *what = enable ? "start disk replication"
			   : failover ? "fail the disk replication over"
				      : "stop disk replication";
	return qbe_simple(b, what, "xen-set-replication", a, cb, arg);
}

/* {error: bool, desc?: str}: anything else is a QEMU we do not understand, and a
 * replication we cannot vouch for. */
static void on_status(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct qop *op = arg;
	char desc[256];
	bool error;
	if (res->err) {
		qop_account(op, res);
		return;
	}
	if (qmp_get_bool(res->ret, "error", &error) < 0) {
		qop_fail(op, -EPROTO, "%s: QEMU's reply has no boolean 'error' member; the disk "
			 "replication state is unknown", op->what);
	} else if (error) {
		const char *d = qmp_get_str(res->ret, "desc");
		sanitize(desc, sizeof(desc), d ? d : "(QEMU gave no description)");
		qop_fail(op, -EIO, "QEMU reports a disk replication error: %s", desc);
	}
	qop_account(op, res);
}

static int xbe_status(struct backend *b, backend_done_cb cb, void *arg)
{
	struct qbe *q = backend_priv(b);
	struct qop *op = qop_new(q, "query-xen-replication-status", cb, arg);
	if (!op)
		return -ENOMEM;
	qop_exec(op, "query-xen-replication-status", NULL, -1, QBE_TIMEOUT_MS, on_status);
	return qop_issued(op);
}

static int xbe_disk_checkpoint(struct backend *b, backend_done_cb cb, void *arg)
{
	return qbe_simple(b, "disk replication checkpoint", "xen-colo-do-checkpoint", NULL, cb,
			  arg);
}

static const struct backend_ops xen_ops = {
	.name = "xen",
	.probe = qbe_probe,
	.stop = qbe_stop,
	.resume = qbe_resume,
	.save_devices = qbe_save,
	.load_devices = qbe_load,
	.announce = qbe_announce,
	.destroy = qbe_destroy,
	.cancel = qbe_cancel,
	.set_global_dirty_log = xbe_logdirty,
	.set_disk_replication = xbe_set_replication,
	.disk_replication_status = xbe_status,
	.disk_checkpoint = xbe_disk_checkpoint,
};

int backend_xen_open(struct loop *loop, const char *qmp_path, uint32_t domid, uint64_t ram_size,
		     struct backend **out)
{
	struct qbe *q;
	int r = qbe_open(loop, qmp_path, &xen_ops, &q);
	if (r < 0)
		return r;
	q->xen = true;
	q->domid = domid;
	q->xen_ram_size = ram_size;
	*out = q->b;
	return 0;
}
