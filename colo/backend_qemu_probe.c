/* backend_qemu_probe.c - what VM is behind this QMP socket: run state, RAM size,
 * version, and the machine configuration whose hash both agents must share.
 *
 * The configuration text (docs/failover.md, "Refusing the wrong VM") is built only
 * from what the guest cannot change: the machine type, the CPU count and model, the
 * RAM size, and every PCI function's address and static ids (vendor, device,
 * subsystem, class). BARs and IRQs are left out: the guest programs those. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "colo/backend_qemu_int.h"
#include "lib/log.h"

/* PCI functions we describe; a PC has a handful. Inline lines, so an unfinished
 * probe freed with the backend leaves nothing behind. */
#define PROBE_MAX_PCI 1024
#define PROBE_PCI_LINE 64
#define PROBE_MAX_BRIDGE_DEPTH 8

struct probe_data {
	backend_probe_cb cb;
	void *arg;
	char version[96];
	char status[32];
	bool running, have_status;
	int64_t base_mem, plugged_mem;
	char machine[128];
	int64_t ncpus;
	char cpu_type[128];
	char pci[PROBE_MAX_PCI][PROBE_PCI_LINE];
	size_t npci;
};

static struct qop *probe_op(void *arg)
{
	return arg;
}

static void on_version(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct qop *op = probe_op(arg);
	int64_t ma, mi, mc;
	yajl_val qemu = res->err ? NULL : yajl_tree_get(res->ret, (const char *[]){ "qemu", NULL },
							 yajl_t_object);
	if (!res->err) {
		if (!qemu || qmp_get_int(qemu, "major", &ma) || qmp_get_int(qemu, "minor", &mi) ||
		    qmp_get_int(qemu, "micro", &mc))
			qop_fail(op, -EPROTO, "query-version: reply lacks qemu.major/minor/micro; "
				 "is this QEMU?");
		else
			snprintf(op->probe->version, sizeof(op->probe->version),
				 "%" PRId64 ".%" PRId64 ".%" PRId64 " (%s)", ma, mi, mc,
				 qmp_get_str(res->ret, "package") ? qmp_get_str(res->ret, "package")
								  : "");
	}
	qop_account(op, res);
}

static void on_status(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct qop *op = probe_op(arg);
	const char *s = res->err ? NULL : qmp_get_str(res->ret, "status");
	if (!res->err && (!s || qmp_get_bool(res->ret, "running", &op->probe->running)))
		qop_fail(op, -EPROTO, "query-status: reply lacks status/running");
	else if (s) {
		snprintf(op->probe->status, sizeof(op->probe->status), "%s", s);
		op->probe->have_status = true;
	}
	qop_account(op, res);
}

static void on_memsize(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct qop *op = probe_op(arg);
	if (!res->err) {
		if (qmp_get_int(res->ret, "base-memory", &op->probe->base_mem) ||
		    op->probe->base_mem <= 0)
			qop_fail(op, -EPROTO, "query-memory-size-summary: no base-memory");
		if (qmp_get_int(res->ret, "plugged-memory", &op->probe->plugged_mem))
			op->probe->plugged_mem = 0; /* optional: absent without hotplug */
	}
	qop_account(op, res);
}

static void on_machine(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct qop *op = probe_op(arg);
	const char *t = res->err ? NULL : YAJL_GET_STRING(res->ret);
	if (!res->err && !t)
		qop_fail(op, -EPROTO, "qom-get /machine type: not a string");
	else if (t)
		snprintf(op->probe->machine, sizeof(op->probe->machine), "%s", t);
	qop_account(op, res);
}

static void on_cpu_type(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct qop *op = probe_op(arg);
	const char *t = res->err ? NULL : YAJL_GET_STRING(res->ret);
	if (!res->err && !t)
		qop_fail(op, -EPROTO, "qom-get CPU type: not a string");
	else if (t)
		snprintf(op->probe->cpu_type, sizeof(op->probe->cpu_type), "%s", t);
	qop_account(op, res);
}

static void on_cpus(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct qop *op = probe_op(arg);
	if (!res->err) {
		const char *path = NULL;
		if (!YAJL_IS_ARRAY(res->ret) || res->ret->u.array.len == 0 ||
		    !(path = qmp_get_str(res->ret->u.array.values[0], "qom-path"))) {
			qop_fail(op, -EPROTO, "query-cpus-fast: no CPU with a qom-path");
		} else {
			op->probe->ncpus = (int64_t)res->ret->u.array.len;
			struct qmp_args *a = qmp_args_new();
			if (a) {
				qmp_args_str(a, "path", path);
				qmp_args_str(a, "property", "type");
			}
			/* Before accounting this reply, so the op stays open. */
			if (!a)
				qop_fail(op, -ENOMEM, "out of memory");
			else
				qop_exec(op, "qom-get", a, -1, QBE_TIMEOUT_MS, on_cpu_type);
		}
	}
	qop_account(op, res);
}

static int add_pci(struct probe_data *p, yajl_val d)
{
	int64_t bus, slot, fn, ven, dev, sven = -1, sdev = -1, cls;
	yajl_val id = yajl_tree_get(d, (const char *[]){ "id", NULL }, yajl_t_object);
	yajl_val ci = yajl_tree_get(d, (const char *[]){ "class_info", NULL }, yajl_t_object);
	if (qmp_get_int(d, "bus", &bus) || qmp_get_int(d, "slot", &slot) ||
	    qmp_get_int(d, "function", &fn) || !id || qmp_get_int(id, "vendor", &ven) ||
	    qmp_get_int(id, "device", &dev) || !ci || qmp_get_int(ci, "class", &cls))
		return -EPROTO;
	(void)qmp_get_int(id, "subsystem-vendor", &sven);
	(void)qmp_get_int(id, "subsystem", &sdev);
	if (p->npci == PROBE_MAX_PCI)
		return -E2BIG;
	snprintf(p->pci[p->npci++], PROBE_PCI_LINE,
		 "pci %02x:%02x.%x %04x:%04x %04x:%04x class %04x\n", (unsigned)(bus & 0xff),
		 (unsigned)(slot & 0x1f), (unsigned)(fn & 7), (unsigned)(ven & 0xffff),
		 (unsigned)(dev & 0xffff), (unsigned)(sven & 0xffff), (unsigned)(sdev & 0xffff),
		 (unsigned)(cls & 0xffff));
	return 0;
}

static int walk_pci(struct probe_data *p, yajl_val devices, int depth)
{
	if (!YAJL_IS_ARRAY(devices) || depth > PROBE_MAX_BRIDGE_DEPTH)
		return -EPROTO;
	for (size_t i = 0; i < devices->u.array.len; i++) {
		yajl_val d = devices->u.array.values[i];
		int r = add_pci(p, d);
		if (r < 0)
			return r;
		yajl_val sub = yajl_tree_get(d, (const char *[]){ "pci_bridge", "devices", NULL },
					     yajl_t_array);
		if (sub && (r = walk_pci(p, sub, depth + 1)) < 0)
			return r;
	}
	return 0;
}

static void on_pci(struct qmp *c, struct qmp_result *res, void *arg)
{
	struct qop *op = probe_op(arg);
	if (!res->err) {
		int r = YAJL_IS_ARRAY(res->ret) ? 0 : -EPROTO;
		for (size_t i = 0; r == 0 && i < res->ret->u.array.len; i++)
			r = walk_pci(op->probe,
				     yajl_tree_get(res->ret->u.array.values[i],
						   (const char *[]){ "devices", NULL }, yajl_t_array),
				     0);
		if (r < 0)
			qop_fail(op, r, "query-pci: unexpected reply (%s)", strerror(-r));
	}
	qop_account(op, res);
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The canonical text: one fact per line, PCI functions sorted. On Xen the vCPUs and
 * guest RAM are the hypervisor's, not QEMU's: the RAM line is the configured size
 * (--ram-size, 0 if not given) and the domid stays out (the two domains differ). */
static char *config_text(const struct qbe *q, struct probe_data *p)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	if (q->xen)
		fprintf(f, "colo-config 1\nbackend xen\nmachine %s\nram %" PRIu64 "\n", p->machine,
			q->xen_ram_size);
	else
		fprintf(f, "colo-config 1\nmachine %s\ncpus %" PRId64 " %s\nram %" PRId64 " %" PRId64
			"\n", p->machine, p->ncpus, p->cpu_type, p->base_mem, p->plugged_mem);
	qsort(p->pci, p->npci, sizeof(p->pci[0]), cmp_line);
	for (size_t i = 0; i < p->npci; i++)
		fputs(p->pci[i], f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void probe_finish(struct qop *op)
{
	struct qbe *q = op->q;
	struct probe_data *p = op->probe;
	struct backend_info *in = &q->info;
	if (!op->err) {
		free(q->config_text);
		q->config_text = config_text(q, p);
		if (!q->config_text)
			qop_fail(op, -ENOMEM, "out of memory");
	}
	if (!op->err) {
		snprintf(in->status, sizeof(in->status), "%s", p->status);
		snprintf(in->version, sizeof(in->version), "%s", p->version);
		in->running = p->running;
		in->ram_size = q->xen ? q->xen_ram_size
				      : (uint64_t)p->base_mem + (uint64_t)p->plugged_mem;
		in->pid = qmp_peer_pid(q->qmp);
		in->config_text = q->config_text;
		in->config_hash = XXH3_64bits(q->config_text, strlen(q->config_text));
		if (in->pid <= 0)
			qop_fail(op, in->pid ? in->pid : -ESRCH, "cannot tell QEMU's pid from the "
				 "QMP socket (SO_PEERCRED): %s", strerror(in->pid ? -in->pid : ESRCH));
	}
	if (op->err)
		p->cb(q->b, op->err, op->why, NULL, p->arg);
	else
		p->cb(q->b, 0, NULL, in, p->arg);
}

static struct qmp_args *qom_type_args(const char *path)
{
	struct qmp_args *a = qmp_args_new();
	if (a) {
		qmp_args_str(a, "path", path);
		qmp_args_str(a, "property", "type");
	}
	return a;
}

int qbe_probe(struct backend *b, backend_probe_cb cb, void *arg)
{
	struct qbe *q = backend_priv(b);
	struct qop *op = qop_new(q, "probe", NULL, NULL);
	if (!op)
		return -ENOMEM;
	op->probe = calloc(1, sizeof(*op->probe));
	struct qmp_args *mt = qom_type_args("/machine");
	if (!op->probe || !mt) {
		qmp_args_free(mt);
		qop_fail(op, -ENOMEM, "out of memory");
		return qop_issued(op);
	}
	op->probe->cb = cb;
	op->probe->arg = arg;
	op->finish = probe_finish;
	/* All pipelined: one round trip's worth of waiting. */
	qop_exec(op, "query-version", NULL, -1, QBE_TIMEOUT_MS, on_version);
	qop_exec(op, "query-status", NULL, -1, QBE_TIMEOUT_MS, on_status);
	if (!q->xen)
		qop_exec(op, "query-memory-size-summary", NULL, -1, QBE_TIMEOUT_MS, on_memsize);
	qop_exec(op, "qom-get", mt, -1, QBE_TIMEOUT_MS, on_machine);
	if (!q->xen)
		qop_exec(op, "query-cpus-fast", NULL, -1, QBE_TIMEOUT_MS, on_cpus);
	qop_exec(op, "query-pci", NULL, -1, QBE_TIMEOUT_MS, on_pci);
	return qop_issued(op);
}
