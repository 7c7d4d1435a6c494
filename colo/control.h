/* control.h - the agent's control socket: a unix socket (mode 0600) speaking the JSON
 * lines of docs/control.md to coloctl. Clients are untrusted in what they send (a
 * local user with access can still type garbage): lines are bounded, parsed strictly,
 * and a slow or hostile client is cut off without disturbing the others or the loop.
 *
 * The server asks the agent through struct control_ops, so it is tested on its own.
 *
 * Lifecycle: control_open() -> clients come and go -> control_poke() after every
 * commit or state change (answers clients waiting for a checkpoint) ->
 * control_close() (unlinks the socket file, drops clients).
 */
#ifndef COLO_COLO_CONTROL_H
#define COLO_COLO_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "colo/agent.h"

struct loop;
struct control;

/* Clients at once; one more is told so and closed. */
#define CTL_MAX_CLIENTS 16
/* Unsent replies a client may accumulate (a watcher that does not read). */
#define CTL_MAX_OUTPUT (256 * 1024)
/* `checkpoint` waits at most this long for the commit. */
#define CTL_CHECKPOINT_TIMEOUT_MS 30000
#define CTL_WATCH_PERIOD_MS 1000

struct control_ops {
	void (*status)(struct agent_status *st, void *arg);
	/* >= 1: ticket (served when committed() >= ticket); < 0: refused with why */
	int64_t (*checkpoint)(char *why, size_t len, void *arg);
	uint64_t (*committed)(void *arg);
	/* false once no checkpoint can commit any more (replication over) */
	bool (*replicating)(void *arg);
	/* 0: started, why says what happens; < 0: refused with why */
	int (*failover)(bool confirm_fenced, char *why, size_t len, void *arg);
	void *arg;
};

/* Create the socket at path (its directory too, mode 0700, if missing). A stale
 * socket file is replaced; a live one (another agent) is -EADDRINUSE; a file that
 * is not a socket is -EEXIST. Errors are logged. */
int control_open(struct loop *loop, const char *path, const struct control_ops *ops,
		 struct control **out);
void control_poke(struct control *c);
int control_clients(const struct control *c);
void control_close(struct control *c);

/* The agent's side of control_ops (agent_ctl.c). */
void control_ops_for_agent(struct agent *a, struct control_ops *ops);

#endif
