/* backend_qemu_int.h - shared by backend_qemu.c (operations) and backend_qemu_probe.c
 * (the probe and the configuration hash). Not a public header. */
#ifndef COLO_COLO_BACKEND_QEMU_INT_H
#define COLO_COLO_BACKEND_QEMU_INT_H

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

#define QBE_TIMEOUT_MS 5000

#endif
