/* compare.c - the comparator core (docs/net.md §4): flows, the two queues of each,
 * generations, the commit list, bounds, timeouts. The TCP rules are in
 * compare_tcp.c, counters and the hold-time histogram in compare_stats.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "net/compare_int.h"

#define NS_PER_MS 1000000ull
#define GC_PERIOD_NS (1000 * NS_PER_MS)

const char *cmp_reason_name(enum cmp_reason r)
{
	static const char *const names[CMP_REASON__COUNT] = { "mismatch", "timeout", "queue-full" };
	return (unsigned)r < CMP_REASON__COUNT ? names[r] : "?";
}

void cmp_config_default(struct cmp_config *cfg)
{
	*cfg = (struct cmp_config){
		.timeout_ms = 50,
		.retry_ms = 1000,
		.max_held = 8192,
		.max_held_bytes = 32ull << 20,
		.max_pending = 65536,
		.max_sec = 8192,
		.max_sec_bytes = 32ull << 20,
		.max_flows = 16384,
		.flow_idle_ms = 60000,
	};
}

static void enter(struct cmp *c)
{
	if (c->busy)
		abort(); /* an op called back into the comparator: documented as a bug */
	c->busy = true;
}

static void leave(struct cmp *c)
{
	c->busy = false;
}

/* ---- verdicts ---- */

static void accept_id(struct cmp *c, uint64_t id, uint64_t t_in, uint64_t now)
{
	cmp_hist_add(c, now - t_in);
	c->ops.verdict(c->arg, id, CMP_ACCEPT);
}

static void age_unlink(struct cmp *c, struct held *h)
{
	if (h->matched)
		return; /* matched frames are not on the age list */
	if (h->age_prev)
		h->age_prev->age_next = h->age_next;
	else
		c->age_head = h->age_next;
	if (h->age_next)
		h->age_next->age_prev = h->age_prev;
	else
		c->age_tail = h->age_prev;
	h->age_prev = h->age_next = NULL;
}

static void age_push(struct cmp *c, struct held *h)
{
	h->age_prev = c->age_tail;
	h->age_next = NULL;
	if (c->age_tail)
		c->age_tail->age_next = h;
	else
		c->age_head = h;
	c->age_tail = h;
}

static void held_free(struct cmp *c, struct held *h)
{
	age_unlink(c, h);
	c->held_n--;
	c->held_bytes -= h->s.len;
	free(h);
}

void cmp_release_held(struct cmp *c, struct held *h, uint64_t now)
{
	accept_id(c, h->id, h->t_in, now);
	held_free(c, h);
}

/* ---- the commit list ---- */

static int ring_push(struct cmp *c, uint64_t id, uint64_t t_in, uint64_t gen)
{
	if (c->ring_n == c->ring_cap) {
		size_t cap = c->ring_cap ? c->ring_cap * 2 : 256;
		struct pend *r = malloc(cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		for (size_t i = 0; i < c->ring_n; i++)
			r[i] = c->ring[(c->ring_head + i) % c->ring_cap];
		free(c->ring);
		c->ring = r;
		c->ring_cap = cap;
		c->ring_head = 0;
	}
	c->ring[(c->ring_head + c->ring_n) % c->ring_cap] = (struct pend){ id, t_in, gen };
	c->ring_n++;
	return 0;
}

static struct pend ring_pop(struct cmp *c)
{
	struct pend p = c->ring[c->ring_head];
	c->ring_head = (c->ring_head + 1) % c->ring_cap;
	c->ring_n--;
	return p;
}

static void drop_id(struct cmp *c, uint64_t id)
{
	c->st.dropped++;
	if (!c->logged_drop) {
		c->logged_drop = true;
		log_warn("net: %zu frames wait for a checkpoint (max_pending); dropping primary "
			 "output until one commits (TCP resends it)", c->ring_n);
	}
	c->ops.verdict(c->arg, id, CMP_DROP);
}

/* A new primary frame that will not be compared: wait for the next commit. */
static void pend_new(struct cmp *c, uint64_t id, uint64_t now)
{
	if (c->ring_n >= c->cfg.max_pending || ring_push(c, id, now, c->gen) < 0)
		drop_id(c, id);
}

/* ---- flows ---- */

static uint32_t key_hash(const struct flow_key *k)
{
	uint64_t w[6], h = 0x9e3779b97f4a7c15ull;
	memcpy(w, k, sizeof(w));
	for (int i = 0; i < 6; i++) {
		h = (h ^ w[i]) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	return (uint32_t)h;
}

static void key_of(const struct pkt *p, struct flow_key *k)
{
	memset(k, 0, sizeof(*k));
	k->cls = (uint8_t)p->cls;
	k->nvlan = p->nvlan;
	memcpy(k->vlan, p->vlan, sizeof(k->vlan));
	if (p->cls == PKT_RAW)
		return; /* one queue per VLAN */
	k->family = p->family;
	k->proto = p->proto;
	memcpy(k->src, p->src, 16);
	memcpy(k->dst, p->dst, 16);
	if (p->cls == PKT_TCP || p->cls == PKT_UDP || p->cls == PKT_ICMP) {
		k->sport = p->sport;
		k->dport = p->dport;
	}
}

static struct flow **bucket_of(struct cmp *c, const struct flow_key *k)
{
	return &c->buckets[key_hash(k) & (c->nbuckets - 1)];
}

static struct flow *flow_find(struct cmp *c, const struct flow_key *k)
{
	for (struct flow *f = *bucket_of(c, k); f; f = f->hnext)
		if (!memcmp(&f->key, k, sizeof(*k)))
			return f;
	return NULL;
}

/* NULL when the table is full or memory is short. */
static struct flow *flow_create(struct cmp *c, const struct flow_key *k)
{
	if (c->nflows >= c->cfg.max_flows)
		return NULL;
	struct flow *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->key = *k;
	struct flow **b = bucket_of(c, k);
	f->hnext = *b;
	*b = f;
	c->nflows++;
	return f;
}

void cmp_sq_pop(struct cmp *c, struct flow *f)
{
	struct sseg *s = f->sq;
	f->sq = s->next;
	if (!f->sq)
		f->sq_tail = NULL;
	c->sec_n--;
	c->sec_bytes -= s->s.len;
	free(s);
}

static void sq_clear(struct cmp *c, struct flow *f)
{
	while (f->sq)
		cmp_sq_pop(c, f);
}

/* Every held frame of f goes to the commit list of the current generation, in
 * order (fails only without memory: then the frame is dropped, counted). */
static void pq_to_ring(struct cmp *c, struct flow *f)
{
	struct held *h;
	while ((h = f->pq)) {
		f->pq = h->next;
		if (ring_push(c, h->id, h->t_in, c->gen) < 0)
			drop_id(c, h->id);
		held_free(c, h);
	}
	f->pq_tail = f->cmp_next = NULL;
}

static void flow_freeze(struct cmp *c, struct flow *f)
{
	pq_to_ring(c, f);
	sq_clear(c, f);
	f->frozen = true;
}

static void flow_name(const struct flow *f, char *buf, size_t n)
{
	char a[INET6_ADDRSTRLEN] = "?", b[INET6_ADDRSTRLEN] = "?", vlan[32] = "";
	int af = f->key.family == 6 ? AF_INET6 : AF_INET;
	if (f->key.family) {
		inet_ntop(af, f->key.src, a, sizeof(a));
		inet_ntop(af, f->key.dst, b, sizeof(b));
	}
	if (f->key.nvlan)
		snprintf(vlan, sizeof(vlan), " vlan %u/%u", f->key.vlan[0], f->key.vlan[1]);
	snprintf(buf, n, "%s %s:%u -> %s:%u%s", pkt_class_name(f->key.cls), a, f->key.sport, b,
		 f->key.dport, vlan);
}

static void mismatch(struct cmp *c, struct flow *f, uint64_t now)
{
	char name[160];
	c->st.mismatches++;
	flow_name(f, name, sizeof(name));
	log_msg(c->logged_mismatch ? LOG_DEBUG : LOG_INFO,
		"net: output differs in %s (generation %llu); holding it until a checkpoint",
		name, (unsigned long long)c->gen);
	c->logged_mismatch = true;
	flow_freeze(c, f);
	cmp_request(c, CMP_REASON_MISMATCH, now);
}

/* Everything is held until the commit: the budget is spent. */
static void freeze_gen(struct cmp *c, uint64_t now, const char *what)
{
	if (!c->gen_frozen)
		log_warn("net: %s full in generation %llu; holding all output until a checkpoint",
			 what, (unsigned long long)c->gen);
	c->gen_frozen = true;
	for (uint32_t i = 0; i < c->nbuckets; i++)
		for (struct flow *f = c->buckets[i]; f; f = f->hnext)
			flow_freeze(c, f);
	cmp_request(c, CMP_REASON_QUEUE_FULL, now);
}

void cmp_request(struct cmp *c, enum cmp_reason why, uint64_t now)
{
	if (c->requested)
		return;
	c->requested = true;
	c->req_reason = why;
	c->req_at = now;
	c->st.requests[why]++;
	c->ops.checkpoint(c->arg, why);
}

/* ---- matching ---- */

static enum match dgram_try(struct cmp *c, struct flow *f, const struct held *p)
{
	const struct sseg *s = f->sq;
	if (!s)
		return M_WAIT;
	if (s->s.aux != p->s.aux || s->s.len != p->s.len || memcmp(s->data, p->data, p->s.len))
		return M_MISMATCH;
	cmp_sq_pop(c, f);
	return M_MATCH;
}

/* Release the matched frames at the head of f, in order, once the generation's
 * checkpoint is committed (nothing of generation g leaves before g commits). */
static void release_matched(struct cmp *c, struct flow *f, uint64_t now)
{
	struct held *h;
	if (!c->gate_open)
		return;
	while ((h = f->pq) && h->matched) {
		f->pq = h->next;
		if (!f->pq)
			f->pq_tail = NULL;
		c->st.matched++;
		cmp_release_held(c, h, now);
	}
}

static void flow_advance(struct cmp *c, struct flow *f, uint64_t now)
{
	struct held *h;
	if (f->frozen)
		return;
	while ((h = f->cmp_next)) {
		enum match m = f->key.cls == PKT_TCP ? cmp_tcp_try(c, f, h) : dgram_try(c, f, h);
		if (m == M_WAIT)
			break;
		if (m == M_MISMATCH) {
			mismatch(c, f, now);
			return;
		}
		age_unlink(c, h);
		h->matched = true;
		f->cmp_next = h->next;
	}
	release_matched(c, f, now);
}

/* ---- frames in ---- */

static void seg_of(const struct pkt *p, struct seg *s)
{
	memset(s, 0, sizeof(*s));
	s->len = (uint32_t)p->data_len;
	if (p->cls == PKT_TCP) {
		s->seq = p->seq;
		s->ack = p->ack;
		s->tcp_flags = p->tcp_flags;
		s->end = p->seq + s->len + (p->tcp_flags & PKT_TCP_SYN ? 1 : 0) +
			 (p->tcp_flags & PKT_TCP_FIN ? 1 : 0);
	} else if (p->cls == PKT_ICMP) {
		s->aux = (uint64_t)p->icmp_type << 8 | p->icmp_code;
	} else if (p->cls == PKT_FRAG) {
		s->aux = (uint64_t)p->frag_off << 1 | p->frag_more;
	}
}

static void track_primary_tcp(struct flow *f, const struct seg *s)
{
	if (!f->p_nxt_known || seq_gt(s->end, f->p_nxt))
		f->p_nxt = s->end;
	f->p_nxt_known = true;
	if (s->tcp_flags & PKT_TCP_SYN) {
		f->p_syn = s->seq;
		f->p_syn_known = true;
	}
	if (s->tcp_flags & PKT_TCP_ACK && (!f->p_ack_known || seq_gt(s->ack, f->p_ack))) {
		f->p_ack = s->ack;
		f->p_ack_known = true;
	}
}

static bool over_held_budget(const struct cmp *c, size_t len)
{
	return c->held_n + 1 > c->cfg.max_held || c->held_bytes + len > c->cfg.max_held_bytes;
}

static void hold(struct cmp *c, struct flow *f, uint64_t id, const struct seg *s,
		 const uint8_t *data, uint64_t now)
{
	struct held *h = malloc(sizeof(*h) + s->len);
	if (!h) {
		freeze_gen(c, now, "memory");
		pend_new(c, id, now);
		return;
	}
	*h = (struct held){ .id = id, .t_in = now, .s = *s };
	memcpy(h->data, data, s->len);
	if (f->pq_tail)
		f->pq_tail->next = h;
	else
		f->pq = h;
	f->pq_tail = h;
	if (!f->cmp_next)
		f->cmp_next = h;
	age_push(c, h);
	c->held_n++;
	c->held_bytes += s->len;
	flow_advance(c, f, now);
}

static void primary_compared(struct cmp *c, uint64_t id, const struct pkt *p,
			     const uint8_t *frame, uint64_t now)
{
	struct flow_key k;
	struct seg s;
	key_of(p, &k);
	seg_of(p, &s);
	struct flow *f = flow_find(c, &k);
	if (!f && !c->gen_frozen && !(f = flow_create(c, &k)))
		freeze_gen(c, now, "flow table");
	if (f) {
		f->last_used = now;
		if (p->cls == PKT_TCP)
			track_primary_tcp(f, &s);
	}
	if (!f || f->frozen || c->gen_frozen) {
		pend_new(c, id, now);
		return;
	}
	if (over_held_budget(c, s.len)) {
		freeze_gen(c, now, "primary queue");
		pend_new(c, id, now);
		return;
	}
	hold(c, f, id, &s, frame + p->data_off, now);
}

void cmp_primary(struct cmp *c, uint64_t id, const uint8_t *frame, size_t len, uint64_t now)
{
	struct pkt p;
	enter(c);
	c->st.primary_frames++;
	if (!c->protecting) {
		c->st.passed++;
		c->ops.verdict(c->arg, id, CMP_ACCEPT);
		goto out;
	}
	pkt_parse(frame, len, 0, &p);
	pkt_count(&c->st.parse_primary, &p);
	if (p.cls == PKT_PASS) {
		c->st.passed++;
		c->ops.verdict(c->arg, id, CMP_ACCEPT);
		goto out;
	}
	primary_compared(c, id, &p, frame, now);
out:
	leave(c);
}

static int sec_generation(struct cmp *c, uint64_t gen, uint64_t now)
{
	if (gen > c->gen)
		return -EPROTO;
	if (gen == c->gen && !c->sec_current) {
		c->sec_current = true;
		c->sec_since = now;
	}
	c->sec_gen = gen;
	return 0;
}

/* A secondary TCP segment: acks and resets are state; data, SYN and FIN queue. */
static bool sec_tcp_state_only(struct flow *f, const struct seg *s)
{
	if (s->tcp_flags & PKT_TCP_ACK && (!f->s_ack_known || seq_gt(s->ack, f->s_ack))) {
		f->s_ack = s->ack;
		f->s_ack_known = true;
	}
	if (s->tcp_flags & PKT_TCP_RST)
		f->rst_pending = true;
	return s->len == 0 && !(s->tcp_flags & (PKT_TCP_SYN | PKT_TCP_FIN));
}

static void sec_enqueue(struct cmp *c, struct flow *f, const struct seg *s, const uint8_t *data,
			uint64_t now)
{
	if (c->sec_n + 1 > c->cfg.max_sec || c->sec_bytes + s->len > c->cfg.max_sec_bytes) {
		freeze_gen(c, now, "secondary queue");
		c->st.sec_dropped++;
		return;
	}
	struct sseg *q = malloc(sizeof(*q) + s->len);
	if (!q) {
		freeze_gen(c, now, "memory");
		c->st.sec_dropped++;
		return;
	}
	*q = (struct sseg){ .s = *s };
	memcpy(q->data, data, s->len);
	if (f->sq_tail)
		f->sq_tail->next = q;
	else
		f->sq = q;
	f->sq_tail = q;
	c->sec_n++;
	c->sec_bytes += s->len;
	flow_advance(c, f, now);
}

static void secondary_compared(struct cmp *c, const struct pkt *p, const uint8_t *frame,
			       uint64_t now)
{
	struct flow_key k;
	struct seg s;
	key_of(p, &k);
	seg_of(p, &s);
	struct flow *f = flow_find(c, &k);
	if (!f && !c->gen_frozen && !(f = flow_create(c, &k)))
		freeze_gen(c, now, "flow table");
	if (!f || f->frozen || c->gen_frozen) {
		c->st.sec_dropped++;
		return;
	}
	f->last_used = now;
	if (p->cls == PKT_TCP && sec_tcp_state_only(f, &s)) {
		flow_advance(c, f, now); /* a higher ack may release held frames */
		return;
	}
	sec_enqueue(c, f, &s, frame + p->data_off, now);
}

int cmp_secondary(struct cmp *c, uint64_t gen, const uint8_t *frame, size_t len, uint64_t now)
{
	struct pkt p;
	int rc = 0;
	enter(c);
	c->st.secondary_frames++;
	if (!c->protecting) {
		c->st.sec_dropped++;
		goto out;
	}
	if ((rc = sec_generation(c, gen, now)) < 0)
		goto out;
	if (gen < c->gen) {
		c->st.sec_stale++;
		goto out;
	}
	pkt_parse(frame, len, 0, &p);
	pkt_count(&c->st.parse_secondary, &p);
	if (p.cls == PKT_PASS) {
		c->st.sec_passed++;
		goto out;
	}
	secondary_compared(c, &p, frame, now);
out:
	leave(c);
	return rc;
}

int cmp_secondary_gen(struct cmp *c, uint64_t gen, uint64_t now)
{
	int rc = 0;
	enter(c);
	if (c->protecting)
		rc = sec_generation(c, gen, now);
	leave(c);
	return rc;
}

/* ---- generations ---- */

static void flow_new_gen(struct cmp *c, struct flow *f)
{
	pq_to_ring(c, f);
	sq_clear(c, f);
	f->frozen = false;
	cmp_tcp_new_gen(f);
}

void cmp_checkpoint_begin(struct cmp *c, uint64_t seq, uint64_t now)
{
	enter(c);
	if (c->protecting && seq <= c->gen)
		abort(); /* checkpoint numbers only grow: a bug in the caller */
	for (uint32_t i = 0; i < c->nbuckets; i++)
		for (struct flow *f = c->buckets[i]; f; f = f->hnext)
			flow_new_gen(c, f);
	c->gen = seq;
	c->protecting = true;
	c->gate_open = c->gen_frozen = c->requested = c->timed_out = false;
	c->logged_drop = c->logged_mismatch = false;
	c->sec_current = false;
	c->st.generation = seq;
	leave(c);
}

void cmp_checkpoint_commit(struct cmp *c, uint64_t seq, uint64_t now)
{
	enter(c);
	while (c->ring_n && c->ring[c->ring_head].gen < seq) {
		struct pend p = ring_pop(c);
		c->st.released_ckpt++;
		accept_id(c, p.id, p.t_in, now);
	}
	if (c->protecting && seq >= c->gen && !c->gate_open) {
		c->gate_open = true;
		for (uint32_t i = 0; i < c->nbuckets; i++)
			for (struct flow *f = c->buckets[i]; f; f = f->hnext)
				release_matched(c, f, now);
	}
	leave(c);
}

static void flow_release_all(struct cmp *c, struct flow *f, uint64_t now)
{
	struct held *h;
	while ((h = f->pq)) {
		f->pq = h->next;
		c->st.released_all++;
		cmp_release_held(c, h, now);
	}
	sq_clear(c, f);
	free(f);
}

void cmp_release_all(struct cmp *c, uint64_t now)
{
	enter(c);
	while (c->ring_n) {
		struct pend p = ring_pop(c);
		c->st.released_all++;
		accept_id(c, p.id, p.t_in, now);
	}
	for (uint32_t i = 0; i < c->nbuckets; i++) {
		struct flow *f = c->buckets[i], *next;
		for (; f; f = next) {
			next = f->hnext;
			flow_release_all(c, f, now);
		}
		c->buckets[i] = NULL;
	}
	c->nflows = 0;
	c->protecting = false;
	c->sec_current = false;
	leave(c);
}

/* ---- time ---- */

static uint64_t timeout_deadline(const struct cmp *c)
{
	if (!c->protecting || c->requested || !c->sec_current || !c->age_head)
		return UINT64_MAX;
	uint64_t base = c->age_head->t_in > c->sec_since ? c->age_head->t_in : c->sec_since;
	return base + c->cfg.timeout_ms * NS_PER_MS;
}

static void gc_flows(struct cmp *c, uint64_t now)
{
	uint64_t idle = c->cfg.flow_idle_ms * NS_PER_MS;
	c->last_gc = now;
	for (uint32_t i = 0; i < c->nbuckets; i++) {
		struct flow **pp = &c->buckets[i], *f;
		while ((f = *pp)) {
			if (!f->pq && !f->sq && now - f->last_used >= idle) {
				*pp = f->hnext;
				free(f);
				c->nflows--;
			} else {
				pp = &f->hnext;
			}
		}
	}
}

void cmp_tick(struct cmp *c, uint64_t now)
{
	enter(c);
	if (now >= timeout_deadline(c)) {
		if (!c->timed_out)
			c->st.timeouts++;
		c->timed_out = true;
		log_info("net: a held frame waited %u ms for the secondary (generation %llu); "
			 "requesting a checkpoint", c->cfg.timeout_ms, (unsigned long long)c->gen);
		cmp_request(c, CMP_REASON_TIMEOUT, now);
	} else if (c->requested && now - c->req_at >= c->cfg.retry_ms * NS_PER_MS) {
		c->st.retries++;
		c->req_at = now;
		log_warn("net: no checkpoint %u ms after requesting one (%s); asking again",
			 c->cfg.retry_ms, cmp_reason_name(c->req_reason));
		c->ops.checkpoint(c->arg, c->req_reason);
	}
	if (now - c->last_gc >= GC_PERIOD_NS)
		gc_flows(c, now);
	leave(c);
}

uint64_t cmp_next_deadline(const struct cmp *c)
{
	uint64_t d = timeout_deadline(c);
	if (c->protecting && c->requested) {
		uint64_t r = c->req_at + c->cfg.retry_ms * NS_PER_MS;
		d = r < d ? r : d;
	}
	if (c->nflows && c->last_gc + GC_PERIOD_NS < d)
		d = c->last_gc + GC_PERIOD_NS;
	return d;
}

/* ---- life ---- */

static bool config_ok(const struct cmp_config *cfg)
{
	return cfg->timeout_ms && cfg->retry_ms && cfg->max_held && cfg->max_held_bytes &&
	       cfg->max_pending && cfg->max_sec && cfg->max_sec_bytes && cfg->max_flows &&
	       cfg->max_flows <= (1u << 24);
}

int cmp_new(const struct cmp_config *cfg, const struct cmp_ops *ops, void *arg, struct cmp **out)
{
	int rc = -ENOMEM;
	struct cmp *c = NULL;
	if (!config_ok(cfg) || !ops->verdict || !ops->checkpoint) {
		rc = -EINVAL;
		goto out;
	}
	if (!(c = calloc(1, sizeof(*c))))
		goto out;
	c->cfg = *cfg;
	c->ops = *ops;
	c->arg = arg;
	for (c->nbuckets = 64; c->nbuckets < cfg->max_flows; c->nbuckets *= 2)
		;
	if (!(c->buckets = calloc(c->nbuckets, sizeof(*c->buckets))))
		goto out;
	*out = c;
	c = NULL;
	rc = 0;
out:
	cmp_free(c);
	return rc;
}

void cmp_free(struct cmp *c)
{
	if (!c)
		return;
	for (uint32_t i = 0; c->buckets && i < c->nbuckets; i++) {
		struct flow *f = c->buckets[i], *next;
		for (; f; f = next) {
			next = f->hnext;
			while (f->pq) {
				struct held *h = f->pq;
				f->pq = h->next;
				free(h);
			}
			sq_clear(c, f);
			free(f);
		}
	}
	free(c->buckets);
	free(c->ring);
	free(c);
}
