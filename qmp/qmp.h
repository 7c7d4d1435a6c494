/* qmp.h - an asynchronous QMP client bound to the process's event loop (lib/loop.h).
 *
 * The agents drive QEMU only through this client. QEMU is not trusted: every byte it
 * sends is checked against the limits below before yajl sees it, and anything wrong
 * ends that connection with one clear error, never a crash, a leak or a blocked loop.
 *
 * Lifecycle of a struct qmp (legal transitions asserted in one setter,
 * qmp_set_state() in client.c; docs/qmp.md has the details):
 *
 *     qmp_connect() / qmp_adopt()
 *           |
 *           v      banner ok: send qmp_capabilities
 *       GREETING ----------------------------------> NEGOTIATING
 *           |                                             | return {}
 *           |                                             v
 *           |                                           READY
 *           |                                             |
 *           +-------------------> BROKEN <----------------+   (also from NEGOTIATING)
 *             EOF, bad input, socket error, negotiation timeout or refusal.
 *             Terminal: the fd is closed.
 *
 *   - qmp_exec() is legal in GREETING, NEGOTIATING and READY: commands issued before
 *     READY are queued and sent, in order, once negotiation is done.
 *   - Entering BROKEN completes every unfinished command exactly once with the
 *     connection's error (res->err < 0, res->error_desc says why), then calls
 *     handlers.broken once. No callback runs after that.
 *   - qmp_free() is legal in every state and from inside any callback of this client;
 *     it drops unfinished commands WITHOUT calling their callbacks.
 *   - No callback is ever called from inside the qmp_* call that caused it: always
 *     later, from the loop.
 */
#ifndef COLO_QMP_QMP_H
#define COLO_QMP_QMP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <yajl/yajl_tree.h>

struct loop;
struct qmp;
struct qmp_args;

/* Limits on what QEMU may send; exceeding one ends the connection.
 * The longest line QEMU 7.2 sends is query-qmp-schema's reply (196,123 bytes). */
#define QMP_MAX_LINE_BYTES (1u << 20)
/* Nesting of objects/arrays in one message; QEMU's replies stay below 10. */
#define QMP_MAX_DEPTH 32
/* Commands issued but not yet answered (timed-out ones count until QEMU answers). */
#define QMP_MAX_PENDING 1024
/* Greeting + qmp_capabilities must finish within this (QEMU serves one QMP client
 * at a time: a second client sees no greeting until the first disconnects). */
#define QMP_NEGOTIATE_TIMEOUT_MS 5000
/* qmp_exec() timeout_ms value meaning "no timeout". */
#define QMP_NO_TIMEOUT 0

/* How a command ended; valid only during the callback. */
struct qmp_result {
	/* 0: QEMU returned `ret`.
	 * -EREMOTEIO: QEMU answered with an error: error_class, error_desc.
	 * -ETIMEDOUT: no answer within timeout_ms (a late answer is dropped quietly).
	 * other < 0: the connection ended (error_desc says why, error_class is NULL):
	 *   -ECONNRESET QEMU closed it, -EPROTO bad input, -EMSGSIZE line too long,
	 *   -ELOOP nesting too deep, -EILSEQ invalid UTF-8, -errno from the socket. */
	int err;
	/* The "return" value when err == 0. Freed after the callback returns; to keep
	 * it, copy the pointer and set res->ret = NULL (then yajl_tree_free() it). */
	yajl_val ret;
	const char *error_class;
	const char *error_desc;
};
typedef void (*qmp_exec_cb)(struct qmp *c, struct qmp_result *res, void *arg);

struct qmp_event {
	const char *name; /* "STOP", "RESUME", "SHUTDOWN", ... */
	yajl_val data;	  /* object, or NULL when QEMU sent none */
	int64_t seconds;  /* QEMU's timestamp (wall clock of the QEMU host) */
	int64_t microseconds;
};
typedef void (*qmp_event_cb)(struct qmp *c, const struct qmp_event *ev, void *arg);

struct qmp_handlers {
	/* Negotiation done; commands flow. Optional. */
	void (*ready)(struct qmp *c, void *arg);
	/* The connection ended (after every unfinished command got its error).
	 * err and why as in struct qmp_result. Optional; qmp_free() may be called here. */
	void (*broken)(struct qmp *c, int err, const char *why, void *arg);
	void *arg;
};

/* Connect to QEMU's QMP unix socket (non-blocking). Returns 0, or -errno of
 * socket()/connect() (-ENOENT no socket, -ECONNREFUSED no QEMU behind it). */
int qmp_connect(struct loop *loop, const char *path, const struct qmp_handlers *h,
		struct qmp **out);
/* Take over a connected stream socket (unix or TCP); closed by qmp_free().
 * name is used in log lines. On failure fd is not closed. */
int qmp_adopt(struct loop *loop, int fd, const char *name, const struct qmp_handlers *h,
	      struct qmp **out);
void qmp_free(struct qmp *c);

/* Send `name` with `args` (may be NULL; always consumed, also on failure).
 * fd >= 0 is passed to QEMU with SCM_RIGHTS on this command's first sendmsg (it is
 * dup()ed: the caller keeps its own). Commands carrying fds are sent one at a time
 * (QEMU keeps only the last fd received), others pipeline freely; order is kept.
 * timeout_ms > 0 bounds the wait, QMP_NO_TIMEOUT waits for ever.
 * Returns 0 and later calls cb exactly once, or returns -errno and never calls cb:
 * -ENOTCONN (BROKEN), -EBUSY (QMP_MAX_PENDING reached), -EINVAL (bad args),
 * -ENOMEM. */
int qmp_exec(struct qmp *c, const char *name, struct qmp_args *args, int fd, int timeout_ms,
	     qmp_exec_cb cb, void *arg);

/* Call cb for every event named `name` (NULL: every event). Returns an id > 0
 * for qmp_unsubscribe(), or -ENOMEM. Safe inside callbacks. */
int qmp_subscribe(struct qmp *c, const char *name, qmp_event_cb cb, void *arg);
void qmp_unsubscribe(struct qmp *c, int id);

/* QEMU's pid from SO_PEERCRED, or -errno (e.g. -ENOTCONN after BROKEN). */
pid_t qmp_peer_pid(const struct qmp *c);
bool qmp_is_ready(const struct qmp *c);
bool qmp_oob_enabled(const struct qmp *c);

/* File descriptors (fds.c). add-fd puts fd into fdset fdset_id (-1: a new one);
 * the return value carries "fdset-id" and "fd" (qmp_get_int); QEMU then opens
 * "/dev/fdset/N" with an access mode that must match fd's (O_WRONLY for
 * xen-save-devices-state, O_RDONLY for xen-load-devices-state). fd == -1 in
 * remove-fd removes the whole set once QEMU no longer uses it. getfd/closefd name
 * a single fd for commands that take an fd name (netdev, chardev, ...). */
int qmp_add_fd(struct qmp *c, int fd, int64_t fdset_id, int timeout_ms, qmp_exec_cb cb,
	       void *arg);
int qmp_remove_fd(struct qmp *c, int64_t fdset_id, int64_t fd, int timeout_ms, qmp_exec_cb cb,
		  void *arg);
int qmp_getfd(struct qmp *c, int fd, const char *fdname, int timeout_ms, qmp_exec_cb cb,
	      void *arg);
int qmp_closefd(struct qmp *c, const char *fdname, int timeout_ms, qmp_exec_cb cb, void *arg);

/* Arguments of one command, built with yajl_gen (args.c). Errors are sticky and
 * reported by qmp_exec (-EINVAL), so a builder may be filled without checks:
 *     struct qmp_args *a = qmp_args_new();
 *     qmp_args_str(a, "filename", "/dev/fdset/1");
 *     qmp_args_bool(a, "live", false);
 *     qmp_exec(c, "xen-save-devices-state", a, -1, 1000, done, ctx);
 * key is NULL inside arrays. qmp_args_new() returns NULL only when out of memory,
 * and qmp_exec(..., NULL args ...) then sends no arguments: so check it. */
struct qmp_args *qmp_args_new(void);
void qmp_args_free(struct qmp_args *a);
void qmp_args_str(struct qmp_args *a, const char *key, const char *val);
void qmp_args_int(struct qmp_args *a, const char *key, int64_t val);
void qmp_args_bool(struct qmp_args *a, const char *key, bool val);
void qmp_args_begin_object(struct qmp_args *a, const char *key);
void qmp_args_begin_array(struct qmp_args *a, const char *key);
void qmp_args_end(struct qmp_args *a);
/* JSON object text (e.g. from the command line) -> args; -EINVAL with why filled. */
int qmp_args_parse(const char *json, struct qmp_args **out, char *why, size_t why_len);

/* Accessors for values QEMU returned: they check the type, since QEMU is untrusted. */
int qmp_get_int(yajl_val obj, const char *key, int64_t *out); /* 0, -ENOENT, -EPROTO */
const char *qmp_get_str(yajl_val obj, const char *key);     /* NULL unless a string */
int qmp_get_bool(yajl_val obj, const char *key, bool *out);   /* 0, -ENOENT, -EPROTO */
/* Format v as JSON text (malloc'd, NUL-terminated); -ENOMEM/-EINVAL. */
int qmp_json_format(yajl_val v, bool pretty, char **out);

/* For tools: connect to path, run one command and wait for it on a private loop.
 * Returns 0 with *ret set (yajl_tree_free() it; may be NULL if ret is NULL), or the
 * struct qmp_result err with why = "Class: desc" or the connection's reason. */
int qmp_call_sync(const char *path, const char *name, struct qmp_args *args, int fd,
		  int timeout_ms, yajl_val *ret, char *why, size_t why_len);

#endif
