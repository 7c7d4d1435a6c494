/* compare_int.h - the comparator's insides, shared by compare.c (flows, queues,
 * generations), compare_tcp.c (the TCP stream rules) and compare_stats.c.
 * Not a public header. */
#ifndef COLO_NET_COMPARE_INT_H
#define COLO_NET_COMPARE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "net/compare.h"
#include "net/packet.h"

/* Sequence-space arithmetic (RFC 1982 style, 32 bits). */
static inline bool seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}
static inline bool seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}
static inline bool seq_gt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

/* A flow's identity (docs/net.md §4.2). Zeroed before filling: compared and
 * hashed as bytes. */
struct flow_key {
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	uint16_t vlan[PKT_MAX_VLAN];
	uint8_t family, proto, cls, nvlan;
	uint8_t pad[4];
};
_Static_assert(sizeof(struct flow_key) == 48, "flow_key is hashed as 6 words");

/* What both sides' frames are reduced to. TCP positions are the sender's own
 * sequence space; end = seq + SYN + payload + FIN. */
struct seg {
	uint32_t seq, end, ack;
	uint8_t tcp_flags;
	uint64_t aux; /* datagram fields compared besides the bytes (ICMP type, fragment) */
	uint32_t len; /* octets in data[] */
};

/* A held primary frame. */
struct held {
	struct held *next;		/* flow queue */
	struct held *age_prev, *age_next; /* unmatched frames, oldest first */
	uint64_t id, t_in;
	bool matched;
	struct seg s;
	uint8_t data[];
};

/* A buffered secondary frame. */
struct sseg {
	struct sseg *next;
	struct seg s;
	uint8_t data[];
};

enum match { M_WAIT, M_MATCH, M_MISMATCH };

struct flow {
	struct flow *hnext;
	struct flow_key key;
	uint64_t last_used;
	struct held *pq, *pq_tail, *cmp_next; /* cmp_next: first unmatched */
	struct sseg *sq, *sq_tail;
	bool frozen;	  /* mismatch: everything waits for the commit */
	/* TCP, in the primary's sequence space. */
	bool pv_known, s_ack_known, p_nxt_known, p_ack_known, rst_pending;
	bool isn_known, p_syn_known;
	uint32_t isn;	  /* the primary ISN both sides agree on: its SYN may repeat */
	uint32_t p_syn;	  /* the last SYN the primary sent */
	uint32_t pv;	  /* verified up to here */
	uint32_t s_ack;	  /* highest ack from the secondary, this generation */
	uint32_t off;	  /* secondary ISN - primary ISN */
	uint32_t p_nxt;	  /* highest end the primary sent */
	uint32_t p_ack;	  /* highest ack the primary sent */
};

/* An id waiting for a commit: frames of generation gen go at commit(> gen). */
struct pend {
	uint64_t id, t_in, gen;
};

#define HIST_BUCKETS 320

struct cmp {
	struct cmp_config cfg;
	struct cmp_ops ops;
	void *arg;
	bool busy;	    /* inside a call: re-entry from an op is a bug */
	bool protecting;    /* false: passthrough */
	uint64_t gen;	    /* the primary's generation */
	bool gate_open;	    /* checkpoint gen is committed: matches may leave */
	bool gen_frozen;    /* queue-full: nothing more is compared this generation */
	bool requested;	    /* a checkpoint was requested this generation */
	enum cmp_reason req_reason;
	uint64_t req_at;
	bool timed_out;	    /* counted this generation */
	bool logged_drop, logged_mismatch;
	uint64_t sec_gen;   /* the secondary's generation, as last heard */
	bool sec_current;   /* sec_gen == gen */
	uint64_t sec_since; /* when the secondary reached gen */
	uint64_t last_gc;
	/* Flows. */
	struct flow **buckets;
	uint32_t nbuckets; /* a power of two */
	uint32_t nflows;
	/* Unmatched held frames of this generation, oldest first. */
	struct held *age_head, *age_tail;
	uint64_t held_n, held_bytes, sec_n, sec_bytes;
	/* The commit list: a ring of pend, growing. */
	struct pend *ring;
	size_t ring_cap, ring_head, ring_n;
	uint64_t hist[HIST_BUCKETS], hist_total;
	struct cmp_stats st; /* counters; the "now" fields are filled by cmp_get_stats */
};

/* compare.c */
void cmp_release_held(struct cmp *c, struct held *h, uint64_t now);
void cmp_request(struct cmp *c, enum cmp_reason why, uint64_t now);
void cmp_sq_pop(struct cmp *c, struct flow *f);

/* compare_tcp.c: try to release primary frame h of TCP flow f. */
enum match cmp_tcp_try(struct cmp *c, struct flow *f, struct held *h);
/* A new generation: the secondary's TCP state is now the primary's. */
void cmp_tcp_new_gen(struct flow *f);

/* compare_stats.c */
void cmp_hist_add(struct cmp *c, uint64_t ns);
uint64_t cmp_hist_pct(const struct cmp *c, unsigned pct, uint64_t *samples);

#endif
