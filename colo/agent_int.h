/* agent_int.h - the agent's insides, shared by its files (not a public header):
 *   agent.c        lifecycle, status, the public entry points
 *   fsm.c          agent_fsm() and change_state(): the only place the state changes
 *   agent_vm.c     VM operation chains (stop+save, load+cont, takeover) and answers
 *                  to the replicator
 *   agent_repl.c   replicator lifecycle and its callbacks -> events
 *   agent_peer.c   heartbeat callbacks -> events, the fence command
 *   agent_ckpt.c   checkpoint triggers: coalescing, rate limit, max interval
 */
#ifndef COLO_COLO_AGENT_INT_H
#define COLO_COLO_AGENT_INT_H

#include <sys/queue.h>

#include "colo/agent.h"
#include "colo/backend.h"
#include "colo/repl_iface.h"
#include "colo/stats.h"

struct heartbeat;
struct fence;

enum agent_event {
	EV_START,
	EV_PEER_UP,
	EV_PEER_LOST,
	EV_PEER_HANDOVER,
	EV_PEER_HANDED_OVER,
	EV_PEER_TOOK_OVER,
	EV_PEER_DEGRADED,
	EV_REPL_SUSPEND,
	EV_REPL_RESUME,
	EV_REPL_LOAD,
	EV_REPL_COMMITTED,
	EV_REPL_FAILOVER_READY,
	EV_REPL_FAILED,
	EV_REPL_LOGDIRTY,
	EV_CHECKPOINT,
	EV_CTL_FAILOVER,
	EV_FENCE_OK,
	EV_FENCE_FAILED,
	EV_VM_DONE,
	EV_VM_ERROR,
	EV_VM_GONE,
	EV_DISK_ERROR,
	EV_TIMEOUT,
	EV_SHUTDOWN,
	EV__COUNT
};

struct fsm_ev {
	enum agent_event type;
	const char *reason; /* one phrase for the log: "(reason: ...)" */
	/* per event */
	int fd;				 /* repl-suspend (save fd, primary), repl-load */
	uint64_t input_mark;		 /* repl-load */
	const struct repl_stats *stats;	 /* repl-committed */
	enum repl_failure failure;	 /* repl-failed */
	enum ckpt_reason ckpt;		 /* checkpoint */
	bool confirm_fenced;		 /* ctl-failover */
	bool timer;			 /* checkpoint: from our own timer */
	bool enable;			 /* repl-logdirty */
	/* out: set by the FSM when it refuses a request (checkpoint, ctl-failover) */
	int refused;
	char answer[200];
};

/* A sequence of VM operations started by one decision (agent_vm.c). The DISK_ and
 * LOGDIRTY steps are the Xen backend's (docs/xen.md). */
enum vm_step { STEP_NONE, STEP_STOP, STEP_SAVE, STEP_LOAD, STEP_RESUME, STEP_GO_LIVE,
	       STEP_ANNOUNCE, STEP_LOGDIRTY_ON, STEP_LOGDIRTY_OFF, STEP_DISK_START,
	       STEP_DISK_STOP, STEP_DISK_FAILOVER, STEP_DISK_CKPT, STEP_DISK_STATUS,
	       STEP__COUNT };
/* ANS_EVENT: vm-done / vm-error to the state machine; ANS_DISK: disk-error on failure. */
enum vm_answer { ANS_NONE, ANS_SUSPEND, ANS_RESUME, ANS_LOAD, ANS_EVENT, ANS_LOGDIRTY,
		 ANS_DISK };
#define VM_CHAIN_STEPS 6 /* the longest chain and its STEP_NONE */

struct vm_chain {
	struct agent *a;
	TAILQ_ENTRY(vm_chain) link;
	enum vm_step steps[VM_CHAIN_STEPS];
	int next;
	int fd;
	enum vm_answer answer;
	uint64_t repl_gen; /* answer only the replicator that asked */
	const char *what;
};

struct agent {
	struct loop *loop;
	struct agent_config cfg;
	enum agent_state state;
	uint64_t state_since_ms;
	struct backend *be;
	struct backend_info vm;
	const struct colo_repl *rops;
	struct replicator *repl;
	uint64_t repl_gen; /* bumped whenever repl is started or freed */
	struct heartbeat *hb;
	struct fence *fence;
	struct colo_net_hooks net;
	bool have_net;
	TAILQ_HEAD(, vm_chain) chains;
	uint64_t state_timer, ckpt_timer, exit_timer;

	/* checkpoints (primary) */
	bool ckpt_pending;		/* a trigger waits for the next checkpoint */
	enum ckpt_reason pending_reason;
	bool ckpt_in_flight;
	enum ckpt_reason cur_reason;
	uint64_t ckpt_started;		/* number of the last started checkpoint */
	uint64_t ckpt_done;		/* number of the last committed one */
	bool handover_after_commit;	/* take the final checkpoint after this one */

	/* progress flags */
	bool sync_stop_seen;	/* primary: the initial sync's stop-and-copy happened */
	bool vm_loaded;		/* secondary: a checkpoint was loaded into the VM */
	uint64_t loads;		/* secondary: checkpoints loaded (the net generation) */
	uint64_t load_mark;	/* secondary: the input mark of the load in progress */
	bool vm_stopped_by_us;	/* we sent stop and no cont since */
	bool planned;		/* secondary: takeover by handover (no fencing) */
	bool exiting;	/* agent_exit() was called */
	bool done;	/* ... and nothing is left to wait for: stop the loop */
	int exit_status;

	struct ckpt_stats stats;
	void (*observer)(struct agent *a, void *arg);
	void *observer_arg;
};

/* fsm.c */
void agent_fsm(struct agent *a, struct fsm_ev *ev);
void change_state(struct agent *a, enum agent_state to, const char *reason);
const char *agent_event_name(enum agent_event e);
/* Run a one-off event (no payload). */
void agent_event(struct agent *a, enum agent_event type, const char *reason);

/* agent_vm.c: each returns 0 or a negative errno (logged). */
int vm_suspend(struct agent *a, int save_fd);	/* stop (+ save): then suspend_done */
int vm_resume_answer(struct agent *a);		/* cont: then resume_done */
int vm_load(struct agent *a, int load_fd);	/* load + cont: then load_done */
int vm_takeover(struct agent *a);		/* (disk failover,) cont, go live, announce: vm-done */
int vm_logdirty(struct agent *a, bool enable);	/* then logdirty_done */
int vm_disk_start(struct agent *a);		/* primary, before syncing: vm-done / vm-error */
void vm_disk_stop(struct agent *a);		/* primary degraded: log the outcome */
void vm_disk_check(struct agent *a);		/* query the status: disk-error on trouble */
void vm_stop_quietly(struct agent *a, const char *why);	 /* stop, log the outcome */
void vm_resume_if_stopped(struct agent *a, const char *why);
void vm_chains_free(struct agent *a);
bool vm_busy(const struct agent *a);

/* agent_repl.c */
int repl_begin(struct agent *a);	/* start the replicator for our role */
void repl_end(struct agent *a);		/* free it (no callbacks afterwards) */
void repl_refuse(struct agent *a, enum agent_event type, const char *why);
int repl_do_failover(struct agent *a);
void repl_answer_logdirty(struct agent *a, int err);

/* agent_peer.c */
int peer_begin(struct agent *a);	/* the heartbeat */
void peer_end(struct agent *a);
void peer_publish_state(struct agent *a);
bool peer_alive(const struct agent *a);
bool peer_heard(const struct agent *a); /* any valid heartbeat ever */
int fence_begin(struct agent *a);	/* fence-ok / fence-failed later */
void fence_end(struct agent *a);

/* agent_ckpt.c */
void ckpt_trigger(struct agent *a, enum ckpt_reason r, bool timer);
/* protected: start now if allowed, else arm the timer. */
void ckpt_consider(struct agent *a);
void ckpt_committed(struct agent *a, const struct repl_stats *st);
void ckpt_schedule(struct agent *a);
void ckpt_cancel(struct agent *a);
/* Start the final checkpoint of a handover, ignoring the rate limit. */
int ckpt_start_handover(struct agent *a);

/* agent.c */
void agent_notify(struct agent *a);
void agent_exit(struct agent *a, int status);
void agent_finish(struct agent *a); /* done: stop the loop */
uint64_t agent_hb_timeout_ms(const struct agent *a);

#endif
