/* helper_int.h - inside the replication helper process (docs/helper-protocol.md):
 * the state shared by helper.c (main, agent channel, failure rules), helper_net.c
 * (the replication link), helper_pri.c + precopy.c (primary) and helper_sec.c
 * (secondary). Not used by the agent. */
#ifndef COLO_CHECKPOINT_HELPER_INT_H
#define COLO_CHECKPOINT_HELPER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint/dirty.h"
#include "checkpoint/ram.h"
#include "checkpoint/repl_msg.h"
#include "checkpoint/stream.h"

struct addrinfo;
struct helper;
struct loop;
struct pri;
struct sec;

/* The stream header's length (docs/checkpoint-stream.md §3): once the decoder is
 * past it without an error, the peer protects the same VM as we do. */
#define HELPER_STREAM_HDR_LEN 40u

/* The request the helper waits for the agent to answer (at most one). */
enum owed { OWE_NONE, OWE_SUSPEND, OWE_RESUME, OWE_LOAD, OWE_LOGDIRTY };

/* A replication engine other than the QEMU one (the Xen helper, xen/): its hooks
 * replace pri_* / sec_* wherever helper.c and helper_net.c dispatch. NULL = QEMU. */
struct helper_role {
	void (*up)(struct helper *h);
	void (*feed)(struct helper *h, const uint8_t *buf, size_t len);
	void (*eof)(struct helper *h);
	void (*drained)(struct helper *h);
	void (*agent)(struct helper *h, const struct repl_msg *m);
	/* true while the engine must still finish something (the commit rule, a VM to
	 * resume) before FAILED may go out. */
	bool (*busy)(const struct helper *h);
	bool (*failover_requested)(const struct helper *h);
	void (*failover_ready)(struct helper *h);
	/* helper_fail() ran (the link is already closed): start winding down. */
	void (*failing)(struct helper *h);
};

struct helper {
	struct loop *loop;
	const struct helper_role *role; /* NULL: the QEMU engine (pri / sec) */
	int agent; /* our end of the socketpair (blocking sends) */
	struct repl_start cfg;
	struct stream_ident id;
	uint64_t npages;
	struct ram_map *ram;
	struct dirty_tracker *trk;
	struct dirty_set *dirty;

	/* The replication link. */
	int net;            /* -1 until connected/accepted */
	int lfd;            /* secondary: listening socket */
	bool connecting;    /* primary: connect() in progress on net */
	struct addrinfo *ai; /* primary: the peer's address */
	uint64_t connect_deadline_ms;
	uint64_t retry_timer;
	bool net_out_armed; /* EPOLLOUT registered: the encoder has pending bytes */
	struct stream_enc *enc;
	uint8_t *rbuf;
	size_t rbuf_cap;
	char peer_name[REPL_HOST_MAX + 24]; /* "10.77.0.2:7000", for log lines */

	enum owed owed;

	/* Failure: the first one wins; FAILED goes out once nothing is owed. */
	bool failing;
	enum repl_failure fail_why;
	char fail_reason[REPL_REASON_MAX + 1];
	bool done; /* FAILED or FAILOVER_READY sent: wait for the agent to go */
	int exit_code;

	struct pri *pri;
	struct sec *sec;
	void *role_data; /* the role's own state (role != NULL) */
};

/* helper.c ---------------------------------------------------------------------- */

/* Send one message to the agent (blocking). A failure means the agent is gone: the
 * helper stops. */
void helper_send(struct helper *h, const struct wr *w, int fd);
void helper_send_empty(struct helper *h, uint16_t type);
void helper_send_seq(struct helper *h, uint16_t type, uint64_t seq, int fd);
void helper_send_stats(struct helper *h, const struct repl_stats *st);
/* Ask the agent (SUSPEND, RESUME, LOAD) and remember what we are owed. */
void helper_ask(struct helper *h, enum owed what, const struct wr *w, int fd);
/* Replication is over: log the reason once and report FAILED as soon as no answer is
 * owed. The link is closed. Later calls are ignored. */
__attribute__((format(printf, 3, 4))) void helper_fail(struct helper *h, enum repl_failure why,
						       const char *fmt, ...);
/* Tell the peer why (ERROR record, bounded flush), then helper_fail(). */
__attribute__((format(printf, 4, 5))) void helper_reject(struct helper *h, enum repl_failure why,
							 uint32_t code, const char *fmt, ...);
/* The decoder gave up: map its code to a failure class, tell the peer, fail. */
void helper_stream_error(struct helper *h, const struct stream_dec *d, int rc);
/* The peer sent an ERROR record. */
void helper_peer_error(struct helper *h, uint32_t code, const char *reason);
/* FAILED if failing and nothing is owed; called after every answer. */
void helper_settle(struct helper *h);
/* Both roles: map the RAM file (RAM_READ on the primary, RAM_WRITE on the
 * secondary), open the dirty tracker on the VM and allocate the dirty set. */
int helper_open_vm(struct helper *h, enum ram_access access);
/* Microseconds between two mono_ns() stamps (0 if they are out of order). */
uint64_t helper_us(uint64_t from_ns, uint64_t to_ns);

/* Read and check START (the first message). 0 or -EPROTO (logged). */
int helper_read_start(int sock, struct repl_start *cfg);
/* Create h->loop and watch the agent's channel (agent messages are dispatched to
 * the role; FAILED settles from there). */
int helper_loop_init(struct helper *h);

/* helper_net.c ------------------------------------------------------------------ */

/* Primary: connect to cfg.peer_host:peer_port (non-blocking, retried until the
 * timeout); helper_net_up() runs once connected. */
int helper_net_connect(struct helper *h);
/* Secondary: listen on cfg.peer_host:peer_port; helper_net_up() runs for the first
 * connection, later ones are refused. */
int helper_net_listen(struct helper *h);
/* Queue our stream header and start reading. */
void helper_net_up(struct helper *h);
/* Send what the encoder holds: 0 when everything is out, 1 when the rest waits for
 * the socket (the role's drained hook runs from the loop once it is out), -1 when
 * the link broke (helper_fail was called). */
int helper_net_send(struct helper *h);
/* Close the link and the listening socket (idempotent). */
void helper_net_close(struct helper *h);
/* Free what helper_net_connect allocated. */
void helper_net_free(struct helper *h);
/* Send what is pending within timeout_ms, blocking (failure paths only). */
void helper_net_flush_blocking(struct helper *h, int timeout_ms);
/* Read everything the link holds now, without waiting, into the role's feed
 * (secondary failover). */
void helper_net_drain(struct helper *h);

/* helper_pri.c / helper_sec.c: the role's hooks ------------------------------------ */

int pri_init(struct helper *h);
void pri_free(struct helper *h);
void pri_up(struct helper *h);
void pri_feed(struct helper *h, const uint8_t *buf, size_t len);
void pri_eof(struct helper *h);
void pri_drained(struct helper *h);
void pri_agent(struct helper *h, const struct repl_msg *m);

int sec_init(struct helper *h);
void sec_free(struct helper *h);
void sec_up(struct helper *h);
void sec_feed(struct helper *h, const uint8_t *buf, size_t len);
void sec_eof(struct helper *h);
void sec_drained(struct helper *h);
void sec_agent(struct helper *h, const struct repl_msg *m);
/* Failover was asked for; report FAILOVER_READY (the link is gone). */
bool sec_failover_requested(const struct helper *h);
void sec_failover_ready(struct helper *h);

/* precopy.c: the primary's capture into the shadow buffer ----------------------------- */

struct capture {
	uint64_t *pfns; /* pages with data, copied into the shadow */
	uint64_t *zeros;
	size_t npfns, nzeros;
};

/* A RAM-sized anonymous buffer, populated now so no later copy takes a page fault. */
void *precopy_shadow_new(uint64_t size);
void precopy_shadow_free(void *shadow, uint64_t size);
/* Copy pages pfns[0..n) from ram into the shadow at the same offsets, sorting them
 * into data pages and zero pages (appended to c). */
void precopy_capture(struct capture *c, uint8_t *shadow, const uint8_t *ram,
		     const uint64_t *pfns, size_t n);
/* The same for the run [first, first + n). */
void precopy_capture_run(struct capture *c, uint8_t *shadow, const uint8_t *ram, uint64_t first,
			 size_t n);
bool precopy_page_is_zero(const uint8_t *p);

#endif
