/* repl_int.h - private to checkpoint/repl*.c, helper*.c and their tests: how the
 * agent side starts a helper. Tests substitute a fake helper to send the agent
 * hostile messages. */
#ifndef COLO_CHECKPOINT_REPL_INT_H
#define COLO_CHECKPOINT_REPL_INT_H

#include "checkpoint/replicate.h"

/* A helper's main: runs in the forked child on its end of the socketpair and
 * returns the exit status. */
typedef int (*repl_helper_fn)(int sock);

/* The real helper (helper.c): reads START, replicates, returns when done. */
int repl_helper_main(int sock);

/* repl_start() with another helper main (tests). */
int repl_start_with(struct loop *loop, const struct repl_config *cfg, const struct repl_ops *ops,
		    void *arg, repl_helper_fn fn, struct replicator **out);

/* The helper's pid (tests kill it). */
int repl_helper_pid(const struct replicator *r);

#endif
