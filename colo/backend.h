/* backend.h - the VM operations the agent needs, behind one interface: the qemu backend
 * (backend_qemu.c, over QMP), the Xen backend (backend_xen.c: a Xen HVM domain's device
 * model, also over QMP; docs/xen.md) and the unit tests' fakes plug in through struct
 * backend_ops. Dirty logging and the RAM mapping are checkpoint/'s
 * (dirty.h, ram.h): they need only backend_info's pid, RAM size and RAM file.
 *
 * Asynchronous, like everything on the agent's loop: a verb returns 0 and later calls
 * its callback exactly once (never from inside the verb), or returns a negative errno
 * and never calls it. Operations run in the order they were issued (QMP keeps order),
 * so `stop; save; cont` issued back to back happen in that order.
 *
 * Lifecycle: backend_qemu_open() / backend_xen_open() (or backend_new() for others)
 *   -> backend_probe() once: checks the VM and fills struct backend_info
 *   -> stop/resume/save/load/announce, any number, any order
 *   -> backend_free(): legal at any time, also inside a callback; unfinished
 *      operations are dropped without their callbacks.
 * If the VMM goes away (QMP connection broken), every unfinished operation fails with
 * its error and then the `gone` handler runs once; later verbs return -ENOTCONN.
 */
#ifndef COLO_COLO_BACKEND_H
#define COLO_COLO_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct backend;

struct backend_info {
	char status[32];   /* QEMU's run state: "running", "paused", "prelaunch", ... */
	bool running;
	uint64_t ram_size; /* bytes of guest RAM (base + plugged) */
	int pid;	   /* the VMM process (QMP SO_PEERCRED), for dirty tracking */
	uint64_t config_hash; /* XXH3-64 of config_text; equal on both sides or refused */
	char version[96];  /* "7.2.22 (colo-rig-yankfix)" */
	const char *config_text; /* canonical machine configuration; valid until free */
};

/* err: 0, or negative errno with why (one line, for the log). */
typedef void (*backend_done_cb)(struct backend *b, int err, const char *why, void *arg);
typedef void (*backend_probe_cb)(struct backend *b, int err, const char *why,
				 const struct backend_info *info, void *arg);

struct backend_handlers {
	/* The VMM is gone (QMP connection broken). Optional. backend_free() is legal here. */
	void (*gone)(struct backend *b, int err, const char *why, void *arg);
	void *arg;
};

/* For implementations: every op follows the contract above. priv is theirs. */
struct backend_ops {
	const char *name;
	int (*probe)(struct backend *b, backend_probe_cb cb, void *arg);
	int (*stop)(struct backend *b, backend_done_cb cb, void *arg);
	int (*resume)(struct backend *b, backend_done_cb cb, void *arg);
	/* fd: where the device state goes / comes from; the caller keeps it. */
	int (*save_devices)(struct backend *b, int fd, backend_done_cb cb, void *arg);
	int (*load_devices)(struct backend *b, int fd, backend_done_cb cb, void *arg);
	int (*announce)(struct backend *b, backend_done_cb cb, void *arg);
	void (*destroy)(struct backend *b);
	/* Xen only: NULL elsewhere (the verbs below then return -EOPNOTSUPP). */
	int (*set_global_dirty_log)(struct backend *b, bool enable, backend_done_cb cb, void *arg);
	int (*set_disk_replication)(struct backend *b, bool enable, bool primary, bool failover,
				    backend_done_cb cb, void *arg);
	int (*disk_replication_status)(struct backend *b, backend_done_cb cb, void *arg);
	int (*disk_checkpoint)(struct backend *b, backend_done_cb cb, void *arg);
	/* Optional: backend_cancel(). */
	void (*cancel)(struct backend *b);
};

int backend_new(const struct backend_ops *ops, void *priv, struct backend **out);
void *backend_priv(const struct backend *b);
/* For implementations: report that the VMM is gone (calls the gone handler once). */
void backend_notify_gone(struct backend *b, int err, const char *why);

/* Connect to QEMU's QMP socket. -ENOENT (no such socket), -ECONNREFUSED (no QEMU
 * behind it), -ENOTSOCK, ... right away; a peer that does not speak QMP fails the
 * probe. Nothing is sent to QEMU but queries until the probe succeeded. */
int backend_qemu_open(struct loop *loop, const char *qmp_path, struct backend **out);

/* A Xen HVM domain's device model (QEMU started by libxl) on a QMP socket reserved for
 * this agent (not libxl's own qmp-libxl-<domid>: QEMU serves one client per socket).
 * One connection for the agent's life. domid is recorded for messages; ram_size (0:
 * unknown) is reported by the probe, since QEMU does not own a Xen guest's RAM. The
 * probe asks query-version, query-status, the machine type and query-pci. Errors as
 * backend_qemu_open(). */
int backend_xen_open(struct loop *loop, const char *qmp_path, uint32_t domid, uint64_t ram_size,
		     struct backend **out);

void backend_set_handlers(struct backend *b, const struct backend_handlers *h);
const char *backend_name(const struct backend *b);

/* Query the VM: status, RAM size, pid, version, configuration hash. Read-only. */
int backend_probe(struct backend *b, backend_probe_cb cb, void *arg);
int backend_stop(struct backend *b, backend_done_cb cb, void *arg);
int backend_resume(struct backend *b, backend_done_cb cb, void *arg);
/* Device state (no RAM) into fd, with the VM stopped; fd must be writable (an O_RDWR
 * fd is reopened write-only through /proc/self/fd, as QEMU needs). */
int backend_save_devices(struct backend *b, int fd, backend_done_cb cb, void *arg);
/* Device state from fd into the stopped VM (its RAM already holds the checkpoint). */
int backend_load_devices(struct backend *b, int fd, backend_done_cb cb, void *arg);
/* Tell the network where the VM now is (gratuitous ARP / RARP for its NICs). */
int backend_announce(struct backend *b, backend_done_cb cb, void *arg);
void backend_free(struct backend *b);
/* Forget the callbacks of every unfinished operation: they still run to completion
 * in QEMU but call nobody (for a caller that goes away before the backend does). */
void backend_cancel(struct backend *b);

/* Xen only (-EOPNOTSUPP elsewhere). */
/* xen-set-global-dirty-log: QEMU logs (or stops logging) its own writes to guest RAM
 * in Xen's dirty log (libxenguest's switch_qemu_logdirty). */
int backend_set_global_dirty_log(struct backend *b, bool enable, backend_done_cb cb, void *arg);
/* xen-set-replication: QEMU's block replication (COLO disks). failover only with
 * !enable (-EINVAL otherwise, as QEMU refuses it): on the secondary it keeps the
 * writes since the last checkpoint and lets the disk run on alone. */
int backend_set_disk_replication(struct backend *b, bool enable, bool primary, bool failover,
				 backend_done_cb cb, void *arg);
/* query-xen-replication-status, checked: err 0 healthy; -EIO when QEMU reports a
 * replication error (why carries its description); -EPROTO when the reply is not
 * {error: bool, desc?: str}; other errors as any command. */
int backend_disk_replication_status(struct backend *b, backend_done_cb cb, void *arg);
/* xen-colo-do-checkpoint: the secondary's disk drops its writes since the last
 * checkpoint (with the VM stopped, after the device state is loaded). */
int backend_disk_checkpoint(struct backend *b, backend_done_cb cb, void *arg);

#endif
