/* repl_msg.h - the agent <-> helper messages of docs/helper-protocol.md: encoder,
 * bounds-checked parser and SCM_RIGHTS transport. Internal to checkpoint/repl*.c and
 * checkpoint/helper*.c; the fuzz target links the parser.
 *
 * Messages are SOCK_SEQPACKET datagrams: an 8-octet header {type u16, reserved u16,
 * body_length u32} and a body, network byte order. A message whose length, fields or
 * descriptor count do not match its type exactly is rejected, never guessed at.
 */
#ifndef COLO_CHECKPOINT_REPL_MSG_H
#define COLO_CHECKPOINT_REPL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint/replicate.h"
#include "lib/wire.h"

#define REPL_MSG_MAX 8192u
#define REPL_MSG_HDR_LEN 8u
#define REPL_REASON_MAX 1024u
#define REPL_HOST_MAX 255u
#define REPL_PATH_MAX 4095u
#define REPL_START_FIXED_LEN 40u
#define REPL_START_XEN_LEN 16u /* backend 2: the Xen tail after the strings */
#define REPL_STATS_FIELDS 11u
#define REPL_DEFAULT_CONNECT_MS 10000u

enum repl_msg_type {
	/* agent -> helper */
	REPL_MSG_START = 1,
	REPL_MSG_CHECKPOINT = 2,
	REPL_MSG_SUSPEND_DONE = 3,
	REPL_MSG_RESUME_DONE = 4,
	REPL_MSG_LOAD_DONE = 5,
	REPL_MSG_FAILOVER = 6,
	REPL_MSG_STOPPED = 7,
	REPL_MSG_LOGDIRTY_DONE = 8, /* Xen: answer to LOGDIRTY */
	/* helper -> agent */
	REPL_MSG_SYNCING = 16,
	REPL_MSG_SUSPEND = 17,
	REPL_MSG_RESUME = 18,
	REPL_MSG_LOAD = 19,
	REPL_MSG_COMMITTED = 20,
	REPL_MSG_FAILOVER_READY = 21,
	REPL_MSG_FAILED = 22,
	REPL_MSG_LOGDIRTY = 23, /* Xen: libxenguest's switch_qemu_logdirty */
};

/* Which way a message travels; a message going the other way is rejected. */
enum repl_dir { REPL_TO_HELPER, REPL_TO_AGENT };

enum repl_backend { REPL_BACKEND_QEMU = 1, REPL_BACKEND_XEN = 2 };

/* START: everything the helper needs, so an exec'd helper works the same. */
struct repl_start {
	enum repl_role role;
	enum repl_backend backend;
	uint32_t vm_id; /* QEMU pid (Xen: domid) */
	uint32_t connect_timeout_ms;
	uint64_t ram_size;
	uint64_t config_hash;
	uint16_t peer_port;
	char peer_host[REPL_HOST_MAX + 1];
	char ram_path[REPL_PATH_MAX + 1];
	/* backend 2 only (START's Xen tail): what xc_domain_restore needs to rewire
	 * the secondary's xenstore and console rings (0: none / dom0). */
	uint32_t xen_store_evtchn, xen_console_evtchn;
	uint32_t xen_store_domid, xen_console_domid;
};

/* A parsed message. fd is the passed descriptor (-1 if none), owned by the
 * receiver. Strings are NUL-terminated; the FAILED reason is printable ASCII. */
struct repl_msg {
	uint16_t type;
	int fd;
	union {
		struct repl_start start;
		struct {
			int32_t err;
			uint64_t input_mark; /* SUSPEND_DONE */
		} done;
		uint64_t seq; /* SUSPEND, RESUME */
		bool enable;  /* LOGDIRTY */
		struct {
			uint64_t seq;
			uint64_t input_mark;
			bool has_mark;
		} load;
		struct repl_stats stats;
		struct {
			enum repl_failure why;
			char reason[REPL_REASON_MAX + 1];
		} failed;
	};
};

const char *repl_msg_name(uint16_t type);

/* Parse one datagram buf[0..len) that arrived with nfds descriptors, travelling in
 * direction dir. 0, or -EBADMSG with a one-line reason in why. Does not touch fds. */
int repl_msg_parse(const uint8_t *buf, size_t len, int nfds, enum repl_dir dir,
		   struct repl_msg *m, char *why, size_t why_len);

/* Encoders: append one whole message to w (errors sticky in w->err). Fields are
 * checked by the caller's logic; the parser is the gate. */
void repl_msg_put_start(struct wr *w, const struct repl_start *s);
void repl_msg_put_empty(struct wr *w, uint16_t type);
void repl_msg_put_done(struct wr *w, uint16_t type, int err, uint64_t input_mark);
void repl_msg_put_seq(struct wr *w, uint16_t type, uint64_t seq);
void repl_msg_put_load(struct wr *w, uint64_t seq, bool has_mark, uint64_t input_mark);
void repl_msg_put_stats(struct wr *w, const struct repl_stats *st);
void repl_msg_put_logdirty(struct wr *w, bool enable);
void repl_msg_put_failed(struct wr *w, enum repl_failure why, const char *reason);

/* Send the message(s) in w as one datagram with fd (-1: none). flags: MSG_DONTWAIT
 * or 0. 0 or -errno (-EAGAIN, -EPIPE, ...). */
int repl_msg_send(int sock, const struct wr *w, int fd, int flags);
/* Receive and parse one message. 1 with *m (m->fd owned by the caller), 0 when
 * nothing is waiting (non-blocking socket), -EPIPE at EOF, -EBADMSG (why says what;
 * passed fds already closed), other -errno. */
int repl_msg_recv(int sock, enum repl_dir dir, struct repl_msg *m, char *why, size_t why_len);

#endif
