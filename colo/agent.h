/* agent.h - one colo agent (primary or secondary): the state machine of
 * docs/colo-states.md driving the VM (backend.h), the replicator
 * (checkpoint/replicate.h, through the seam in repl_iface.h), the heartbeat and
 * the fence command, with hooks for the net/ comparator.
 *
 * Lifecycle: the caller opens and probes the backend and checks the VM
 * (agent_check_vm()) -> agent_new() -> agent_start() (state init -> waiting or
 * syncing) -> the loop runs -> the agent stops the loop itself when it reaches
 * `failed` (agent_exit_status() is then 1), or the caller calls agent_shutdown() and
 * runs the loop until it stops -> agent_free().
 */
#ifndef COLO_COLO_AGENT_H
#define COLO_COLO_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "colo/config.h"

struct loop;
struct backend;
struct backend_info;
struct colo_repl;
struct agent;

/* The values travel in heartbeats (docs/failover.md): append only, never renumber. */
enum agent_state {
	AS_INIT = 0,
	AS_WAITING = 1,
	AS_SYNCING = 2,
	AS_PROTECTED = 3,
	AS_CHECKPOINTING = 4,
	AS_HANDOVER = 5,
	AS_HANDED_OVER = 6,
	AS_DETACHED = 7,
	AS_FAILOVER = 8,
	AS_FENCING = 9,
	AS_FENCE_FAILED = 10,
	AS_TAKEOVER = 11,
	AS_ACTIVE = 12,
	AS_DEGRADED = 13,
	AS_FENCED = 14,
	AS_FAILED = 15,
	AS__COUNT
};
const char *agent_state_name(enum agent_state s); /* "protected", ...; "?" if unknown */

/* Why a checkpoint was taken; by importance (a coalesced checkpoint keeps the
 * highest pending reason). */
enum ckpt_reason { CKPT_PERIODIC, CKPT_COMPARATOR, CKPT_OPERATOR, CKPT_HANDOVER, CKPT__COUNT };
const char *ckpt_reason_name(enum ckpt_reason r);

/* The net/ comparator's side of the agent. Every hook is optional; until net/ lands
 * they are all absent and the agent protects memory and devices only.
 *   input_mark   the VM is stopped for checkpoint seq (0: the initial sync; called
 *                exactly once per stop, primary and secondary): returns the last
 *                mirrored-input sequence number the VM state includes (recorded in
 *                the checkpoint; the secondary's answer is unused).
 *   loaded       secondary: checkpoint seq with input mark `mark` is loaded and the
 *                VM resumed (seq counts loads: 0 is the initial sync).
 *   release      primary: checkpoint seq is committed: release output held from
 *                before it.
 *   release_all  primary: no secondary any more (degraded): release everything held
 *                and stop holding.
 *   go_live      secondary, taking over: put the VM's network on the LAN. Returns 0 or
 *                -errno (the takeover then fails: the VM would be unreachable).
 *   counters     for `coloctl status`: fills what the comparator knows.
 * The comparator asks for a checkpoint with agent_request_checkpoint(a, CKPT_COMPARATOR). */
struct colo_net_counters {
	uint64_t packets_compared, mismatches, held_packets, held_bytes;
	uint64_t matched, released_ckpt, passed, timeouts, requests; /* primary */
	uint64_t hold_p50_us, hold_p99_us;
	uint64_t secondary_frames, sec_stale, sec_dropped; /* primary: the peer's output */
	uint64_t input_mirrored, input_unmirrored;   /* primary */
	uint64_t captured, injected, reinjected;     /* secondary */
	uint64_t rewritten_in, rewritten_out;        /* secondary; out: after its takeover */
	bool link_up;
};
struct colo_net_hooks {
	uint64_t (*input_mark)(uint64_t seq, void *arg);
	void (*release)(uint64_t seq, void *arg);
	void (*release_all)(void *arg);
	int (*go_live)(void *arg);
	void (*counters)(struct colo_net_counters *out, void *arg);
	void (*loaded)(uint64_t seq, uint64_t mark, void *arg);
	void *arg;
};

struct agent_deps {
	/* opened and probed; the agent does not free it (agent_free() cancels what it
	 * left unfinished on it, so the backend may outlive the agent) */
	struct backend *backend;
	const struct backend_info *vm;	   /* the probe's result */
	const struct colo_repl *repl;	   /* the replicator's verbs (repl_iface.h) */
	const struct colo_net_hooks *net;  /* NULL: none */
};

/* Refuse the wrong VM before touching anything: RAM size (config, QEMU, RAM file),
 * run state for the role, the QEMU build. 0 or -EINVAL with a one-line reason. */
int agent_check_vm(const struct agent_config *cfg, const struct backend_info *vm, char *err,
		   size_t err_len);

int agent_new(struct loop *loop, const struct agent_config *cfg, const struct agent_deps *deps,
	      struct agent **out);
/* Bind the heartbeat and start the replicator. 0 or -errno (logged). */
int agent_start(struct agent *a);
/* SIGTERM: the primary tells its peer it runs on unprotected (so the secondary does
 * not take over a VM that still runs) and resumes its VM if a checkpoint had it
 * stopped; then the agent stops the loop. */
void agent_shutdown(struct agent *a);
int agent_exit_status(const struct agent *a);
/* True once the agent has stopped (failed, or shut down and its VM operations
 * finished). It also calls loop_stop(), but loop_run() forgets a stop requested
 * before it started: run `while (!agent_done(a)) loop_run_once(loop, -1);`. */
bool agent_done(const struct agent *a);
void agent_free(struct agent *a);

enum agent_role agent_role(const struct agent *a);
enum agent_state agent_state(const struct agent *a);

/* A checkpoint trigger (comparator, operator). Primary only: -EPERM on the
 * secondary, -EAGAIN when not protected (why says so). Returns the ticket (>= 1): the
 * request is served once checkpoint number >= ticket is committed
 * (agent_checkpoints_committed()). */
int64_t agent_request_checkpoint(struct agent *a, enum ckpt_reason reason, char *why,
				 size_t why_len);
uint64_t agent_checkpoints_committed(const struct agent *a);
/* `coloctl failover [--confirm-fenced]`: 0 (started; why says what happens next) or
 * -EAGAIN/-EPERM with why. */
int agent_request_failover(struct agent *a, bool confirm_fenced, char *why, size_t why_len);

/* Called after every state change and every commit (the control socket uses it to
 * answer waiting clients). One observer. */
void agent_set_observer(struct agent *a, void (*fn)(struct agent *a, void *arg), void *arg);

/* Everything `coloctl status` shows. */
struct agent_status {
	enum agent_role role;
	enum agent_state state;
	uint64_t state_age_ms;
	char peer[80]; /* heartbeat peer address */
	bool peer_alive;
	int peer_state; /* enum agent_state, -1 unknown */
	uint64_t peer_last_heard_ms; /* UINT64_MAX: never */
	uint64_t rtt_last_us, rtt_avg_us;
	uint64_t hb_tx, hb_rx, hb_dropped, hb_losses;
	uint64_t by_reason[CKPT__COUNT];
	uint64_t coalesced;
	uint64_t committed;    /* checkpoints committed (primary) / applied (secondary) */
	uint64_t last_seq;
	uint64_t since_last_ms; /* since the last commit; UINT64_MAX: none yet */
	uint64_t pause_last_us, pause_p50_us, pause_p99_us, pause_samples;
	uint64_t dirty_last_pages, dirty_last_bytes, dirty_avg_pages, dirty_avg_bytes;
	bool comparator; /* false: net/ not wired in; the counters are zero */
	struct colo_net_counters net;
	int vm_pid;
	uint64_t ram_size;
};
void agent_get_status(const struct agent *a, struct agent_status *st);

#endif
