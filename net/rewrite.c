/* rewrite.c - the secondary's TCP sequence rewriter (docs/net.md §5). */
#include "net/rewrite.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wire.h"
#include "net/packet.h"

#define NS_PER_MS 1000000ull
#define CLOSED_VM_FIN 1u
#define CLOSED_PEER_FIN 2u
#define CLOSED_RST 4u

/* A connection seen from the VM: its address and port, the peer's. */
struct rw_key {
	uint8_t vm[16], peer[16];
	uint16_t vport, pport;
	uint16_t vlan[PKT_MAX_VLAN];
	uint8_t family, nvlan;
	uint8_t pad[6];
};
_Static_assert(sizeof(struct rw_key) == 48, "rw_key is hashed as 6 words");

struct conn {
	struct conn *next;
	struct rw_key key;
	uint32_t isn_s, off;
	bool have_isn, have_off;
	uint8_t closed;
	uint64_t last, closed_at;
};

struct rw {
	struct rw_config cfg;
	bool live;
	struct conn **buckets;
	uint32_t nbuckets;
	struct rw_stats st;
};

void rw_config_default(struct rw_config *cfg)
{
	*cfg = (struct rw_config){ .max_conns = 65536, .idle_ms = 600000, .closed_ms = 10000 };
}

static uint32_t key_hash(const struct rw_key *k)
{
	uint64_t w[6], h = 0x9e3779b97f4a7c15ull;
	memcpy(w, k, sizeof(w));
	for (int i = 0; i < 6; i++) {
		h = (h ^ w[i]) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	return (uint32_t)h;
}

/* output: the VM is the source; input: the destination. */
static void key_of(const struct pkt *p, bool output, struct rw_key *k)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->vm, output ? p->src : p->dst, 16);
	memcpy(k->peer, output ? p->dst : p->src, 16);
	k->vport = output ? p->sport : p->dport;
	k->pport = output ? p->dport : p->sport;
	memcpy(k->vlan, p->vlan, sizeof(k->vlan));
	k->family = p->family;
	k->nvlan = p->nvlan;
}

static struct conn **bucket_of(struct rw *r, const struct rw_key *k)
{
	return &r->buckets[key_hash(k) & (r->nbuckets - 1)];
}

static struct conn *find(struct rw *r, const struct rw_key *k)
{
	for (struct conn *c = *bucket_of(r, k); c; c = c->next)
		if (!memcmp(&c->key, k, sizeof(*k)))
			return c;
	return NULL;
}

static struct conn *create(struct rw *r, const struct rw_key *k)
{
	struct conn *c;
	if (r->st.conns >= r->cfg.max_conns || !(c = calloc(1, sizeof(*c)))) {
		r->st.table_full++;
		return NULL;
	}
	c->key = *k;
	struct conn **b = bucket_of(r, k);
	c->next = *b;
	*b = c;
	r->st.conns++;
	return c;
}

/* ---- in-place patching: bounded writers, RFC 1624 checksum updates ---- */

static uint32_t get32(const uint8_t *frame, size_t len, size_t off)
{
	uint32_t v = 0;
	struct rd rd = rd_init(frame, len);
	if (rd_skip(&rd, off) == 0)
		rd_be32(&rd, &v);
	return v;
}

static void put_be(uint8_t *frame, size_t len, size_t off, uint32_t v, size_t n)
{
	struct wr w;
	if (off > len)
		return;
	wr_init_fixed(&w, frame + off, len - off);
	if (n == 2)
		wr_be16(&w, (uint16_t)v);
	else
		wr_be32(&w, v);
}

/* Replace the 32-bit field at off by v, keeping the TCP checksum right. */
static void replace32(uint8_t *frame, size_t len, size_t tcp_off, size_t off, uint32_t v)
{
	uint32_t old = get32(frame, len, off);
	uint16_t csum = (uint16_t)(get32(frame, len, tcp_off + 16) >> 16);
	uint32_t sum = (uint16_t)~csum;
	sum += (uint16_t)~(old >> 16) + (uint16_t)~(old & 0xffff) + (v >> 16) + (v & 0xffff);
	put_be(frame, len, off, v, 4);
	put_be(frame, len, tcp_off + 16, (uint16_t)~pkt_csum_fold(sum), 2);
}

static void rewrite_input(struct rw *r, const struct pkt *p, uint8_t *frame, size_t len,
			  uint32_t off)
{
	if (p->tcp_flags & PKT_TCP_ACK)
		replace32(frame, len, p->l4_off, p->l4_off + 8, p->ack + off);
	for (size_t i = 0; i < (size_t)p->nsack * 8; i += 4)
		replace32(frame, len, p->l4_off, p->sack_off + i,
			  get32(frame, len, p->sack_off + i) + off);
	r->st.rewritten_in++;
}

/* ---- learning ---- */

/* The VM's SYN or SYN-ACK: its ISN, for a connection new in this generation. */
static void learn_isn(struct rw *r, struct conn *c, const struct rw_key *k, uint32_t seq)
{
	if (!c && !(c = create(r, k)))
		return;
	if (c->have_isn && c->isn_s == seq)
		return; /* a retransmitted SYN */
	c->isn_s = seq;
	c->have_isn = true;
	c->have_off = false;
	c->off = 0;
	c->closed = 0;
}

static void note_close(struct conn *c, const struct pkt *p, uint8_t fin_bit, uint64_t now)
{
	uint8_t was = c->closed;
	if (p->tcp_flags & PKT_TCP_FIN)
		c->closed |= fin_bit;
	if (p->tcp_flags & PKT_TCP_RST)
		c->closed |= CLOSED_RST;
	bool done = (c->closed & CLOSED_RST) ||
		    (c->closed & (CLOSED_VM_FIN | CLOSED_PEER_FIN)) == (CLOSED_VM_FIN | CLOSED_PEER_FIN);
	bool was_done = (was & CLOSED_RST) ||
			(was & (CLOSED_VM_FIN | CLOSED_PEER_FIN)) == (CLOSED_VM_FIN | CLOSED_PEER_FIN);
	if (done && !was_done)
		c->closed_at = now;
	c->last = now;
}

int rw_output(struct rw *r, uint8_t *frame, size_t len, uint64_t now)
{
	struct pkt p;
	struct rw_key k;
	if (pkt_parse(frame, len, 0, &p) != PKT_TCP)
		return 0;
	key_of(&p, true, &k);
	struct conn *c = find(r, &k);
	if (!r->live && p.tcp_flags & PKT_TCP_SYN) {
		learn_isn(r, c, &k, p.seq);
		c = find(r, &k);
	}
	if (!c)
		return 0;
	note_close(c, &p, CLOSED_VM_FIN, now);
	if (!r->live || !c->have_off || !c->off)
		return 0;
	replace32(frame, len, p.l4_off, p.l4_off + 4, p.seq - c->off);
	r->st.rewritten_out++;
	return 1;
}

int rw_input(struct rw *r, uint8_t *frame, size_t len, uint64_t now)
{
	struct pkt p;
	struct rw_key k;
	if (pkt_parse(frame, len, 0, &p) != PKT_TCP)
		return 0;
	key_of(&p, false, &k);
	struct conn *c = find(r, &k);
	if (!c)
		return 0;
	note_close(c, &p, CLOSED_PEER_FIN, now);
	if (!r->live && c->have_isn && !c->have_off && p.tcp_flags & PKT_TCP_ACK) {
		/* The first ACK acknowledges the primary's ISN + 1. */
		c->off = c->isn_s - (p.ack - 1);
		c->have_off = true;
		if (c->off)
			r->st.learnt++;
	}
	if (!c->have_off || !c->off)
		return 0;
	rewrite_input(r, &p, frame, len, c->off);
	return 1;
}

/* ---- life ---- */

static void sweep(struct rw *r, bool all, uint64_t now)
{
	uint64_t idle = r->cfg.idle_ms * NS_PER_MS, closed = r->cfg.closed_ms * NS_PER_MS;
	for (uint32_t i = 0; i < r->nbuckets; i++) {
		struct conn **pp = &r->buckets[i], *c;
		while ((c = *pp)) {
			bool go = all || now - c->last >= idle || (c->closed_at && now - c->closed_at >= closed);
			if (go) {
				*pp = c->next;
				free(c);
				r->st.conns--;
				r->st.expired += !all;
			} else {
				pp = &c->next;
			}
		}
	}
}

void rw_checkpoint_loaded(struct rw *r)
{
	sweep(r, true, 0);
}

void rw_go_live(struct rw *r)
{
	r->live = true;
}

void rw_tick(struct rw *r, uint64_t now)
{
	sweep(r, false, now);
}

void rw_get_stats(const struct rw *r, struct rw_stats *out)
{
	*out = r->st;
}

int rw_new(const struct rw_config *cfg, struct rw **out)
{
	int rc = -ENOMEM;
	struct rw *r = NULL;
	if (!cfg->max_conns || cfg->max_conns > (1u << 24) || !cfg->idle_ms || !cfg->closed_ms) {
		rc = -EINVAL;
		goto out;
	}
	if (!(r = calloc(1, sizeof(*r))))
		goto out;
	r->cfg = *cfg;
	for (r->nbuckets = 64; r->nbuckets < cfg->max_conns; r->nbuckets *= 2)
		;
	if (!(r->buckets = calloc(r->nbuckets, sizeof(*r->buckets))))
		goto out;
	*out = r;
	r = NULL;
	rc = 0;
out:
	rw_free(r);
	return rc;
}

void rw_free(struct rw *r)
{
	if (!r)
		return;
	if (r->buckets)
		sweep(r, true, 0);
	free(r->buckets);
	free(r);
}
