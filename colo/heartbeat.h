/* heartbeat.h - liveness of the peer agent over UDP, on a socket of its own so that
 * bulk checkpoint traffic (the replication link, in the helper process) can never
 * delay it. Format and rules: docs/failover.md, "Heartbeat".
 *
 * Every interval each side sends one 40-octet datagram: its role and agent state, a
 * sequence number, and the echo of the last sequence number it received with how
 * long it held it, so the sender measures the round trip without synchronised
 * clocks. Silence for interval x misses (no valid, newer datagram) means the peer
 * is lost: a dead peer, a hung one (SIGSTOP) and a cut link look the same.
 *
 * Lifecycle: heartbeat_start() -> [peer_up -> peer_state* -> peer_lost]* ->
 * heartbeat_free(). peer_lost is reported only for a peer that was up. Handlers run
 * from the loop, never inside a heartbeat_* call; heartbeat_free() is legal in them.
 * Hostile datagrams (wrong size, magic, version, fields, sender, or a stale sequence
 * number) are dropped and counted, never trusted.
 */
#ifndef COLO_COLO_HEARTBEAT_H
#define COLO_COLO_HEARTBEAT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct heartbeat;

/* --- the datagram (pure functions, hb_wire.c) -------------------------------- */

#define HB_MAGIC 0x434f4842u /* "COHB" */
#define HB_VERSION 1
#define HB_WIRE_SIZE 40
#define HB_ROLE_PRIMARY 0
#define HB_ROLE_SECONDARY 1

struct hb_msg {
	uint8_t role;	    /* HB_ROLE_* */
	uint8_t state;	    /* the sender's agent state (enum agent_state) */
	uint64_t instance;  /* random per agent run: a restart shows as a new instance */
	uint64_t seq;	    /* >= 1, +1 per datagram */
	uint64_t echo_seq;  /* the last seq received from the peer, 0 = none */
	uint32_t echo_hold_us; /* time between receiving echo_seq and sending this */
};

enum hb_reject { HB_OK, HB_BAD_SIZE, HB_BAD_MAGIC, HB_BAD_VERSION, HB_BAD_FIELD };

void hb_encode(const struct hb_msg *m, uint8_t out[HB_WIRE_SIZE]);
/* Exactly HB_WIRE_SIZE octets, right magic and version, reserved bits zero, role
 * 0/1, seq >= 1, echo_hold_us below a minute. */
enum hb_reject hb_decode(const void *buf, size_t len, struct hb_msg *out);

/* --- the endpoint ------------------------------------------------------------ */

struct hb_config {
	struct sockaddr_storage bind; /* own UDP socket */
	socklen_t bind_len;
	struct sockaddr_storage peer; /* datagrams go there; only its come in */
	socklen_t peer_len;
	unsigned interval_ms;
	unsigned misses;
	uint8_t role;  /* ours: the peer must have the other one */
	uint8_t state; /* initial */
};

struct hb_stats {
	bool peer_alive;
	uint8_t peer_role, peer_state;
	uint64_t peer_instance;
	uint64_t last_rx_age_ms; /* since the last valid datagram (UINT64_MAX: never) */
	uint64_t rtt_last_us, rtt_avg_us; /* avg: exponentially weighted, 1/8; 0 = none yet */
	uint64_t tx, tx_errors, rx;
	uint64_t bad_size, bad_magic, bad_version, bad_field, foreign, stale, wrong_role;
	uint64_t peer_restarts, losses;
};

struct hb_handlers {
	/* First valid datagram after silence (or from a restarted peer agent). */
	void (*peer_up)(struct heartbeat *hb, uint8_t role, uint8_t state, void *arg);
	/* The peer reports another state (not called for the peer_up datagram itself). */
	void (*peer_state)(struct heartbeat *hb, uint8_t state, void *arg);
	/* Nothing valid for interval x misses: silent_ms since the last datagram. */
	void (*peer_lost)(struct heartbeat *hb, uint64_t silent_ms, void *arg);
	void *arg;
};

/* Bind, start sending at once. 0, or -errno from socket/bind (logged). */
int heartbeat_start(struct loop *loop, const struct hb_config *cfg, const struct hb_handlers *h,
		    struct heartbeat **out);
/* Our state changed: it goes out in a datagram right away, not one interval later. */
void heartbeat_set_state(struct heartbeat *hb, uint8_t state);
/* Send one datagram now (e.g. a last word before exiting). */
void heartbeat_send_now(struct heartbeat *hb);
void heartbeat_get_stats(const struct heartbeat *hb, struct hb_stats *out);
/* The bound port (useful with port 0 in tests). */
uint16_t heartbeat_port(const struct heartbeat *hb);
void heartbeat_free(struct heartbeat *hb);

#endif
