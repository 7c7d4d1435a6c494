/* repl_iface.h - the seam between the agent and the replicator: the verbs of
 * checkpoint/replicate.h as a table, so unit tests drive the agent with a fake
 * replicator and never depend on the real engine (practice 8: transport ops).
 * Contracts are replicate.h's, unchanged. */
#ifndef COLO_COLO_REPL_IFACE_H
#define COLO_COLO_REPL_IFACE_H

#include "checkpoint/replicate.h"

struct colo_repl {
	int (*start)(struct loop *loop, const struct repl_config *cfg, const struct repl_ops *ops,
		     void *arg, struct replicator **out);
	int (*checkpoint)(struct replicator *r);
	void (*suspend_done)(struct replicator *r, int err, uint64_t input_mark);
	void (*resume_done)(struct replicator *r, int err);
	void (*load_done)(struct replicator *r, int err);
	int (*failover)(struct replicator *r);
	void (*free)(struct replicator *r);
	void (*logdirty_done)(struct replicator *r, int err); /* Xen only */
};

/* The engine in checkpoint/repl.c. */
const struct colo_repl *colo_repl_engine(void);

#endif
