/* backend_qemu_int.h - shared by backend_qemu.c (operations), backend_qemu_probe.c
 * (the probe and the configuration hash) and backend_xen.c (a Xen domain's device
 * model is a QEMU too: the same connection and operations, plus Xen's own commands).
 * Not a public header. */
#ifndef COLO_COLO_BACKEND_QEMU_INT_H
#define COLO_COLO_BACKEND_QEMU_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "colo/backend.h"
#include "qmp/qmp.h"

struct probe_data;

/* One backend operation: pipelined QMP commands, completed by the last reply. */
struct qop {
	struct qbe *q;
	TAILQ_ENTRY(qop) link;
	const char *what; /* for messages: "stop", "save device state", ... */
	backend_done_cb cb;
	void (*finish)(struct qop *op); /* instead of cb (the probe) */
	void *arg;
	int pending; /* commands sent and not answered */
	int err;     /* the first error */
	char why[512];
	struct probe_data *probe;
};

struct qbe {
	struct backend *b;
	struct qmp *qmp;
	char path[108];
	TAILQ_HEAD(, qop) ops;
	uint64_t next_fdset;
	char *config_text;
	struct backend_info info;
	/* Xen (backend_xen.c): the probe skips what QEMU does not own on Xen (vCPUs,
	 * guest RAM) and takes the RAM size from the configuration. */
	bool xen;
	uint32_t domid;
	uint64_t xen_ram_size; /* 0: unknown */
};

struct qop *qop_new(struct qbe *q, const char *what, backend_done_cb cb, void *arg);
void qop_free(struct qop *op);
/* Send one command of op; cb (NULL: qop_account) must end in qop_account(). */
int qop_exec(struct qop *op, const char *name, struct qmp_args *args, int fd, int timeout_ms,
	     qmp_exec_cb cb);
/* After issuing: 0 if something is in flight; else the error (op freed). */
int qop_issued(struct qop *op);
/* One reply of op: the first error wins; the last reply completes op. */
void qop_account(struct qop *op, struct qmp_result *res);
void qop_fail(struct qop *op, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

int qbe_probe(struct backend *b, backend_probe_cb cb, void *arg);

/* Connect (backend_qemu_open()'s contract) with an ops table of the caller's. */
int qbe_open(struct loop *loop, const char *qmp_path, const struct backend_ops *ops,
	     struct qbe **out);
/* One command as one operation; args consumed. */
int qbe_simple(struct backend *b, const char *what, const char *cmd, struct qmp_args *args,
	       backend_done_cb cb, void *arg);
/* The operations both backends share (struct backend_ops members). */
int qbe_stop(struct backend *b, backend_done_cb cb, void *arg);
int qbe_resume(struct backend *b, backend_done_cb cb, void *arg);
int qbe_announce(struct backend *b, backend_done_cb cb, void *arg);
int qbe_save(struct backend *b, int fd, backend_done_cb cb, void *arg);
int qbe_load(struct backend *b, int fd, backend_done_cb cb, void *arg);
void qbe_destroy(struct backend *b);
void qbe_cancel(struct backend *b);

#define QBE_TIMEOUT_MS 5000

#endif
