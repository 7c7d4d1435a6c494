/* repl_engine.c - the real replicator (checkpoint/repl.c) behind the seam. Only the
 * agent's main references this file; unit tests bring their own table. */
#include <stddef.h>

#include "colo/repl_iface.h"

const struct colo_repl *colo_repl_engine(void)
{
	static const struct colo_repl engine = {
		.start = repl_start,
		.checkpoint = repl_checkpoint,
		.suspend_done = repl_suspend_done,
		.resume_done = repl_resume_done,
		.load_done = repl_load_done,
		.logdirty_done = repl_logdirty_done,
		.failover = repl_failover,
		.free = repl_free,
	};
	return &engine;
}
