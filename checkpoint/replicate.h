/* replicate.h - one side of COLO memory + device-state replication, as the agent sees it.
 *
 * The agent owns QMP, the heartbeat, the control socket and the comparator. The data
 * path (initial sync, per-checkpoint dirty pages, transactional apply) runs in a
 * helper process that this module forks, so that bulk copies and (on Xen) the
 * synchronous libxenguest calls never block the agent's loop. The agent and the
 * helper talk the typed messages of docs/helper-protocol.md over a socketpair.
 *
 * The helper asks the agent to act on the VM through the callbacks below; the agent
 * answers each request exactly once with the matching repl_*_done() verb (or
 * repl_abort()). Callbacks run on the agent's loop, never inside a repl_* call.
 *
 * Lifecycle (asserted in one state setter; see docs/helper-protocol.md):
 *
 *   primary:   STARTING -> SYNCING (pre-copy while the VM runs)
 *              -> [suspend -> capture -> resume] -> STREAMING -> PROTECTED
 *              PROTECTED -> repl_checkpoint() -> CHECKPOINTING
 *              -> [suspend -> capture -> resume] -> STREAMING -> PROTECTED (on_committed)
 *   secondary: STARTING -> SYNCING (receiving) -> [load -> resume] -> PROTECTED
 *              PROTECTED -> (peer's request) [suspend] -> receiving -> [load] -> PROTECTED
 *   any state  -> FAILED (on_failed; the helper is gone; free the replicator)
 *
 * Commit rule (docs/checkpoint-stream.md): the secondary acknowledges a checkpoint
 * once it is completely received and verified; from then on it is always applied.
 * On failover the secondary calls repl_failover(): a complete acknowledged
 * checkpoint is applied (on_load is called for its device state) and an incomplete
 * one discarded before on_failover_ready.
 */
#ifndef COLO_CHECKPOINT_REPLICATE_H
#define COLO_CHECKPOINT_REPLICATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct replicator;

enum repl_role { REPL_PRIMARY, REPL_SECONDARY };

/* Which hypervisor runs the VM. QEMU: the helper is forked and copies RAM itself.
 * Xen: the helper runs libxenguest (docs/xen.md); RAM travels in libxc's own stream. */
enum repl_vm { REPL_VM_QEMU = 0, REPL_VM_XEN = 1 };

/* Why replication stopped: the agent's state machine treats these differently. */
enum repl_failure {
	REPL_BROKEN_CHANNEL, /* peer unreachable or gone: fail over (secondary) / degrade (primary) */
	REPL_CORRUPT_STREAM, /* peer sent a bad stream: checkpoint rejected, nothing applied */
	REPL_REFUSED,        /* peer refused us (other VM identity, version) or we refused it */
	REPL_LOCAL_ERROR,    /* our side failed (dirty tracking lost, RAM file, helper died) */
};

struct repl_config {
	enum repl_role role;
	enum repl_vm vm;      /* REPL_VM_QEMU unless set */
	uint32_t xen_domid;   /* Xen: the domain (ram_path and qemu_pid are then unused) */
	const char *xen_helper; /* Xen: the helper program to exec; NULL = the default path */
	/* Xen secondary: xc_domain_restore's store/console event channels (the unbound
	 * ports the toolstack allocated for the domain; libxl publishes them as
	 * /local/domain/<domid>/store/port and console/port) and the domains serving
	 * them (0: dom0). libxc writes them into HVM_PARAM_STORE_EVTCHN /
	 * CONSOLE_EVTCHN at every checkpoint. docs/xen.md. */
	uint32_t xen_store_evtchn, xen_console_evtchn;
	uint32_t xen_store_domid, xen_console_domid;
	const char *ram_path; /* the VM's RAM backend file */
	uint64_t ram_size;    /* bytes; must equal the file's size */
	int qemu_pid;         /* for dirty tracking (PAGEMAP_SCAN); from qmp_peer_pid() */
	uint64_t config_hash; /* machine configuration hash; both sides must match */
	/* primary: the secondary's replication address; secondary: where to listen. */
	const char *peer_host;
	uint16_t peer_port;
	unsigned connect_timeout_ms;
};

/* Per-checkpoint figures, reported with on_committed. Times in microseconds. */
struct repl_stats {
	uint64_t seq;
	uint64_t dirty_pages_local;  /* primary's own dirty set */
	uint64_t dirty_pages_peer;   /* the secondary's dirty set */
	uint64_t pages_sent;         /* the union, minus zero pages */
	uint64_t zero_pages;
	uint64_t device_state_bytes;
	uint64_t bytes_sent;
	uint64_t pause_us;           /* primary: suspend request -> resume done */
	uint64_t capture_us;         /* primary: scan + copy into the buffer */
	uint64_t transfer_us;        /* resume -> ack */
	uint64_t suspend_us;         /* primary: suspend request -> suspend done (the agent's
	                              * stop + device-state save), so pause_us - suspend_us is
	                              * the engine's own share of the pause */
};

struct repl_ops {
	/* Stop the VM. Primary: then save the device state into save_fd with QMP
	 * xen-save-devices-state (live: false) through add-fd; secondary: save_fd is -1.
	 * Answer with repl_suspend_done(). save_fd belongs to the replicator. */
	void (*on_suspend)(struct replicator *r, int save_fd, void *arg);
	/* Primary only: the pages are captured; resume the VM at once, then call
	 * repl_resume_done(). Output after this point stays held by the comparator. */
	void (*on_resume)(struct replicator *r, void *arg);
	/* Secondary only: RAM now holds the checkpoint; load the device state from
	 * load_fd (QMP xen-load-devices-state through add-fd) with the VM stopped,
	 * resume it, and call repl_load_done(). input_mark: the last mirrored-input
	 * sequence number the checkpoint's state includes. load_fd belongs to the
	 * replicator (opened O_RDONLY at offset 0; qmp_add_fd dups it). */
	void (*on_load)(struct replicator *r, int load_fd, uint64_t input_mark, void *arg);
	/* Primary: the secondary acknowledged checkpoint stats->seq (seq 0 is the initial
	 * sync): output held from before it may be released. Secondary: applied. */
	void (*on_committed)(struct replicator *r, const struct repl_stats *stats, void *arg);
	/* Secondary only, after repl_failover(): the last acknowledged checkpoint is
	 * applied (or there was none pending); the VM may run as the active one. */
	void (*on_failover_ready)(struct replicator *r, void *arg);
	/* Replication is over for this replicator. reason is one line for the log. */
	void (*on_failed)(struct replicator *r, enum repl_failure why, const char *reason,
			  void *arg);
	/* Xen only (libxenguest's switch_qemu_logdirty): make the device model log (enable)
	 * or stop logging its own writes to guest memory in Xen's dirty log: QMP
	 * xen-set-global-dirty-log. Answer with repl_logdirty_done(). */
	void (*on_logdirty)(struct replicator *r, bool enable, void *arg);
};

/* Fork the helper and start: the primary connects and begins the initial sync;
 * the secondary listens for the primary. Returns 0 or a negative errno. */
int repl_start(struct loop *loop, const struct repl_config *cfg, const struct repl_ops *ops,
	       void *arg, struct replicator **out);

/* Primary, PROTECTED: take a checkpoint now. -EBUSY while one is in progress (the
 * agent coalesces triggers; it does not queue them here). */
int repl_checkpoint(struct replicator *r);

/* Answers to the callbacks. err != 0 means the VM operation failed: replication
 * stops with REPL_LOCAL_ERROR (after the secondary's failover rules apply). */
void repl_suspend_done(struct replicator *r, int err, uint64_t input_mark);
/* Primary, optional, inside on_suspend before repl_suspend_done(): the VM is stopped
 * (QMP `stop` returned) and the device-state save is still to come. The replicator
 * then scans and copies the dirty pages while QEMU saves, instead of after
 * repl_suspend_done(), taking the copy out of the pause (one verifying scan stays). */
void repl_suspend_stopped(struct replicator *r);
void repl_resume_done(struct replicator *r, int err);
void repl_load_done(struct replicator *r, int err);
/* Xen: the answer to on_logdirty. */
void repl_logdirty_done(struct replicator *r, int err);

/* Secondary: the primary is gone (heartbeat); finish per the commit rule. */
int repl_failover(struct replicator *r);

/* Stop the helper (SIGKILL if it does not exit promptly) and free. Safe in any
 * state and from inside a callback. No callback runs afterwards. */
void repl_free(struct replicator *r);

const char *repl_failure_name(enum repl_failure why);

#endif
