/* fence.h - run the operator's fence command (--fence-cmd, like a Pacemaker STONITH
 * agent) without blocking the loop, and bound its time.
 *
 * The command runs as `/bin/sh -c CMD` in a session of its own (so a timeout kills
 * everything it started), stdin from /dev/null, stdout and stderr into the agent's
 * stderr (its log), with the extra environment given. Its exit is watched through a
 * pidfd on the loop.
 *
 * Lifecycle: fence_run() -> done callback exactly once (from the loop, never inside
 * fence_run) -> fence_free(). fence_free() before the end kills the process group
 * and reaps it; it is legal inside the callback.
 */
#ifndef COLO_COLO_FENCE_H
#define COLO_COLO_FENCE_H

struct loop;
struct fence;

/* ok: the command exited 0. Otherwise why says what happened: "exited with status 3",
 * "killed by signal 9", "timed out after 10000 ms (killed)". */
typedef void (*fence_done_cb)(struct fence *f, int ok, const char *why, void *arg);

/* env: NULL-terminated "NAME=value" strings added to the agent's environment (may
 * be NULL). 0, or -errno if the command could not be started (logged). */
int fence_run(struct loop *loop, const char *cmd, unsigned timeout_ms, char *const env[],
	      fence_done_cb cb, void *arg, struct fence **out);
void fence_free(struct fence *f);

#endif
