/* client.h - internal to qmp/: the client object shared by client.c (state machine,
 * commands, timeouts, events), conn.c (creation, teardown) and io.c (socket reads
 * and writes). */
#ifndef COLO_QMP_CLIENT_H
#define COLO_QMP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "qmp/parse.h"
#include "qmp/qmp.h"

enum qmp_state { QMP_GREETING, QMP_NEGOTIATING, QMP_READY, QMP_BROKEN };

struct qmp_cmd {
	TAILQ_ENTRY(qmp_cmd) link;
	uint64_t id;
	char *name;	       /* for log lines */
	char *buf;	       /* the encoded command, '\n'-terminated */
	size_t len, sent;
	int fd;		       /* our dup of the fd to pass; closed once sent */
	bool carries_fd;       /* passed (or will pass) an fd: QEMU keeps one at a time */
	bool internal;	       /* qmp_capabilities, sent while NEGOTIATING */
	bool abandoned;	       /* timed out: caller told; awaiting QEMU's late reply */
	uint64_t issued_ms;
	uint64_t deadline_ms;  /* 0: none */
	qmp_exec_cb cb;
	void *arg;
};
TAILQ_HEAD(qmp_cmd_list, qmp_cmd);

struct qmp_sub {
	int id;		/* 0: free slot */
	char *name;	/* NULL: all events */
	qmp_event_cb cb;
	void *arg;
};

struct qmp {
	struct loop *loop;
	int fd;		/* -1 once BROKEN or freed */
	bool is_unix;	/* fds can be passed */
	char *name;	/* socket path or "fd N", for log lines */
	enum qmp_state state;
	struct qmp_handlers h;
	pid_t peer_pid;	/* or -errno */
	bool oob;
	struct qmp_lines lines;

	/* Every unfinished command in issue order: the ones QEMU has fully received
	 * first, then from `unsent` on the ones still (partly) to send. */
	struct qmp_cmd_list cmds;
	struct qmp_cmd *unsent;
	size_t npending;
	unsigned fds_in_flight; /* sent commands with an fd, not yet answered */
	uint64_t next_id;
	uint32_t epoll_events;

	uint64_t negotiate_deadline_ms;
	uint64_t timer_id, timer_due_ms;

	struct qmp_sub *subs;
	size_t nsubs;
	int last_sub_id;

	int depth;	/* loop callbacks of this client on the stack */
	bool freed;	/* qmp_free() called while depth > 0 */
	int err;	/* BROKEN: the error every caller got, and why */
	char why[256];
};

/* client.c */
bool qmp_alive(const struct qmp *c);
void qmp_break(struct qmp *c, int err, const char *why);
void qmp_handle_msg(struct qmp *c, struct qmp_msg *msg);
/* Arm the client's one timer for its earliest deadline. */
void qmp_schedule_timer(struct qmp *c);

/* conn.c */
/* Loop callbacks bracket their work with these, so a callback may qmp_free() the
 * client while frames above it still use it: memory goes at the outermost leave. */
void qmp_enter(struct qmp *c);
void qmp_leave(struct qmp *c);
/* Stop I/O and timers (closes the fd); memory stays. */
void qmp_detach(struct qmp *c);
void qmp_cmd_free(struct qmp_cmd *cmd);

/* io.c */
void qmp_on_io(struct loop *loop, int fd, uint32_t events, void *arg);
/* Send what may be sent now; 0 or -errno of the socket (caller breaks or defers). */
int qmp_flush(struct qmp *c);

#endif
