/* compare_tcp.c - TCP as a byte stream (docs/net.md §4.3): the primary's segments
 * are compared by sequence range with whatever segmentation the secondary used,
 * a new connection's ISN difference becomes an offset, and an ACK leaves only once
 * the secondary has acknowledged as much. */
#include <string.h>

#include "net/compare_int.h"

#define SYN PKT_TCP_SYN
#define FIN PKT_TCP_FIN
#define RST PKT_TCP_RST
#define ACK PKT_TCP_ACK

static uint32_t syn_of(const struct seg *s)
{
	return s->tcp_flags & SYN ? 1 : 0;
}
static uint32_t fin_of(const struct seg *s)
{
	return s->tcp_flags & FIN ? 1 : 0;
}

static bool in_range(uint32_t x, uint32_t a, uint32_t b)
{
	return seq_le(a, x) && seq_lt(x, b);
}

/* Positions [a, b) of the primary's space are inside both p and the secondary's
 * segment s (mapped by off): are they equal? A FIN is one position, the last of
 * its segment; octets are compared with memcmp. */
static bool range_equal(const struct held *p, const struct sseg *s, uint32_t off, uint32_t a,
			uint32_t b)
{
	uint32_t s_seq = s->s.seq - off, s_end = s->s.end - off;
	bool p_fin = fin_of(&p->s) && in_range(p->s.end - 1, a, b);
	bool s_fin = fin_of(&s->s) && in_range(s_end - 1, a, b);
	if (p_fin != s_fin)
		return false;
	uint32_t n = b - a - (p_fin ? 1 : 0);
	if (n == 0)
		return true;
	uint32_t pi = a - (p->s.seq + syn_of(&p->s)), si = a - (s_seq + syn_of(&s->s));
	if ((uint64_t)pi + n > p->s.len || (uint64_t)si + n > s->s.len)
		return false; /* cannot happen for well-formed segments; refuse, never overread */
	return memcmp(p->data + pi, s->data + si, n) == 0;
}

/* Compare the primary's positions from pv to p's end with the secondary's queue,
 * advancing pv. */
static enum match consume(struct cmp *c, struct flow *f, const struct held *p)
{
	if (seq_gt(p->s.seq, f->pv))
		return M_WAIT; /* the primary has a hole before p: only a checkpoint fills it */
	while (seq_lt(f->pv, p->s.end)) {
		struct sseg *s = f->sq;
		if (!s)
			return f->rst_pending ? M_MISMATCH : M_WAIT;
		uint32_t s_seq = s->s.seq - f->off, s_end = s->s.end - f->off;
		if (seq_le(s_end, f->pv)) {
			c->st.sec_dup += s->s.len; /* a retransmission of verified octets */
			cmp_sq_pop(c, f);
			continue;
		}
		if (s->s.tcp_flags & SYN && !seq_lt(s_seq, f->pv))
			return s_seq == f->pv ? M_MISMATCH : M_WAIT; /* a new handshake vs data */
		if (seq_gt(s_seq, f->pv))
			return M_WAIT; /* the secondary has not sent pv yet */
		uint32_t b = seq_lt(p->s.end, s_end) ? p->s.end : s_end;
		if (!range_equal(p, s, f->off, f->pv, b))
			return M_MISMATCH;
		f->pv = b;
		if (f->pv == s_end)
			cmp_sq_pop(c, f);
	}
	return M_MATCH;
}

static bool ack_covered(const struct flow *f, const struct held *p)
{
	if (!(p->s.tcp_flags & ACK))
		return true;
	return f->s_ack_known && seq_le(p->s.ack, f->s_ack);
}

/* SYN and SYN-ACK of a new connection: equal but for the ISN, which becomes the
 * flow's offset, so the connection costs no checkpoint. */
static enum match handshake(struct cmp *c, struct flow *f, const struct held *p)
{
	struct sseg *s;
	while ((s = f->sq) && !(s->s.tcp_flags & SYN) && f->pv_known &&
	       seq_le(s->s.end - f->off, f->pv)) {
		c->st.sec_dup += s->s.len;
		cmp_sq_pop(c, f);
	}
	if (!s)
		return f->rst_pending ? M_MISMATCH : M_WAIT; /* the secondary refused it */
	const uint8_t mask = SYN | ACK | FIN | RST;
	if (!(s->s.tcp_flags & SYN) || (s->s.tcp_flags & mask) != (p->s.tcp_flags & mask) ||
	    (p->s.tcp_flags & ACK && s->s.ack != p->s.ack) || s->s.len != p->s.len ||
	    memcmp(s->data, p->data, p->s.len) != 0)
		return M_MISMATCH;
	f->off = s->s.seq - p->s.seq;
	if (f->off)
		c->st.offsets++;
	f->pv = p->s.end;
	f->pv_known = true;
	f->isn = p->s.seq;
	f->isn_known = true;
	cmp_sq_pop(c, f);
	return M_MATCH;
}

enum match cmp_tcp_try(struct cmp *c, struct flow *f, struct held *p)
{
	enum match m;
	/* A SYN is a retransmission only with the ISN both sides agreed on: a new ISN
	 * behind pv is a new connection on the same ports, compared afresh. */
	bool retrans = f->pv_known && seq_le(p->s.end, f->pv) &&
		       (!(p->s.tcp_flags & SYN) || (f->isn_known && p->s.seq == f->isn));
	if (p->s.tcp_flags & SYN && !retrans) {
		m = handshake(c, f, p);
		if (m != M_MATCH)
			return m;
	} else {
		if (!f->pv_known) {
			f->pv = p->s.seq; /* first sight of an established connection */
			f->pv_known = true;
		}
		m = consume(c, f, p);
		if (m != M_MATCH)
			return m;
	}
	if (p->s.tcp_flags & RST) {
		if (!f->rst_pending)
			return f->sq ? M_MISMATCH : M_WAIT;
		f->rst_pending = false;
	}
	return ack_covered(f, p) ? M_MATCH : M_WAIT;
}

void cmp_tcp_new_gen(struct flow *f)
{
	f->off = 0;
	f->isn_known = f->p_syn_known; /* the checkpoint gave the secondary this ISN */
	f->isn = f->p_syn;
	f->rst_pending = false;
	f->pv_known = f->p_nxt_known;
	f->pv = f->p_nxt;
	f->s_ack_known = f->p_ack_known;
	f->s_ack = f->p_ack;
}
