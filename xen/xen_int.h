/* xen_int.h - inside the Xen helper: the state shared by xen_helper.c (main, the
 * runner process and its control channel), xen_pri.c and xen_sec.c (the two
 * engines, plugged into checkpoint/helper*.c as a struct helper_role). */
#ifndef COLO_XEN_XEN_INT_H
#define COLO_XEN_XEN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "checkpoint/helper_int.h"
#include "xen/xen_ctl.h"
#include "xen/xen_helper.h"

/* Buffers handed to the stream encoder by reference: freed once it is drained. */
struct xen_blocks {
	void **blk;
	size_t n, cap;
};

struct xen {
	struct helper *h;
	xen_runner_fn runner_fn;
	pid_t runner;     /* 0: not started or reaped */
	int ctl, io, back; /* our ends; -1 when closed */
	bool finished;    /* FINISHED received */
	struct xen_ctl fin;
	uint16_t call;    /* the CALL the runner waits on; 0 none */
	uint64_t kill_timer;
	struct xen_blocks out; /* referenced by h->enc */
	void *role;       /* struct xpri / struct xsec */
};

static inline struct xen *xen_of(const struct helper *h)
{
	return h->role_data;
}

/* xen_helper.c --------------------------------------------------------------------- */

/* Fork the runner; its callbacks arrive at the role's `call` hook. 0 or -errno. */
int xen_runner_start(struct xen *x, bool primary);
/* Answer the outstanding CALL. */
void xen_reply(struct xen *x, int ret);
/* The runner misbehaved or must go now: SIGKILL (reaped when its ctl closes). */
void xen_runner_kill(struct xen *x);
/* Give a winding-down runner ms to finish, then kill it. */
void xen_runner_deadline(struct xen *x, int ms);
/* Keep a buffer until the encoder drained (xen_blocks_free). */
int xen_blocks_add(struct xen_blocks *b, void *p);
void xen_blocks_free(struct xen_blocks *b);
/* Send what the encoder holds; free the blocks when all is out. 0 all out, 1
 * waiting for the socket, -1 link broken. */
int xen_net_send(struct xen *x);

/* The role's entry points called by xen_helper.c. */
struct xen_ops {
	int (*init)(struct helper *h);
	void (*free)(struct helper *h);
	void (*call)(struct helper *h, const struct xen_ctl *m);
	void (*finished)(struct helper *h);
	void (*io)(struct helper *h, uint32_t events);
	void (*back)(struct helper *h, uint32_t events);
};

extern const struct helper_role xen_pri_role, xen_sec_role;
extern const struct xen_ops xen_pri_ops, xen_sec_ops;

#endif
