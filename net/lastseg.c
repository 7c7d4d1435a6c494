/* lastseg.c - the secondary's last segment per TCP flow (net/lastseg.h). */
#include "net/lastseg.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "net/packet.h"

/* A flow as the VM sends it. */
struct ls_key {
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	uint16_t vlan[PKT_MAX_VLAN];
	uint8_t family, nvlan;
};

struct ls_ent {
	bool used;
	struct ls_key key;
	uint64_t stamp; /* when last updated, in notes: the LRU order */
	uint8_t *frame;
	size_t len, cap;
};

struct lastseg {
	uint32_t max;
	uint64_t clock;
	struct ls_ent *ents;
	struct lastseg_stats st;
};

int lastseg_new(uint32_t max_flows, struct lastseg **out)
{
	int rc = -ENOMEM;
	struct lastseg *t = NULL;
	if (!max_flows || max_flows > 4096) {
		rc = -EINVAL; /* a linear table: small by design */
		goto out;
	}
	if (!(t = calloc(1, sizeof(*t))) || !(t->ents = calloc(max_flows, sizeof(*t->ents))))
		goto out;
	t->max = max_flows;
	*out = t;
	t = NULL;
	rc = 0;
out:
	lastseg_free(t);
	return rc;
}

void lastseg_free(struct lastseg *t)
{
	if (!t)
		return;
	if (t->ents)
		for (uint32_t i = 0; i < t->max; i++)
			free(t->ents[i].frame);
	free(t->ents);
	free(t);
}

static void key_of(const struct pkt *p, struct ls_key *k)
{
	memset(k, 0, sizeof(*k)); /* compared with memcmp: no stray padding */
	memcpy(k->src, p->src, 16);
	memcpy(k->dst, p->dst, 16);
	k->sport = p->sport;
	k->dport = p->dport;
	memcpy(k->vlan, p->vlan, sizeof(k->vlan));
	k->family = p->family;
	k->nvlan = p->nvlan;
}

static void forget(struct lastseg *t, struct ls_ent *e)
{
	e->used = false; /* the buffer stays for the next flow */
	t->st.flows--;
}

int lastseg_note(struct lastseg *t, const uint8_t *frame, size_t len)
{
	struct pkt p;
	struct ls_key k;
	if (pkt_parse(frame, len, 0, &p) != PKT_TCP)
		return 0;
	key_of(&p, &k);
	struct ls_ent *e = NULL, *victim = NULL, *empty = NULL;
	for (uint32_t i = 0; i < t->max; i++) {
		struct ls_ent *x = &t->ents[i];
		if (!x->used) {
			if (!empty)
				empty = x;
		} else if (!memcmp(&x->key, &k, sizeof(k))) {
			e = x;
			break;
		} else if (!victim || x->stamp < victim->stamp) {
			victim = x;
		}
	}
	/* A SYN starts a new connection (port reuse) and an RST ends one: what the VM
	 * sent before is no use to the client any more. */
	if (p.tcp_flags & (PKT_TCP_SYN | PKT_TCP_RST)) {
		if (e)
			forget(t, e);
		return 0;
	}
	/* A pure ACK tells the client nothing it can answer with a retransmission; the
	 * last data (or FIN) stays the one to replay. */
	if (!p.data_len && !(p.tcp_flags & PKT_TCP_FIN))
		return 0;
	if (!e) {
		if (empty) {
			e = empty;
		} else {
			e = victim;
			forget(t, e);
			t->st.evicted++;
		}
	}
	if (e->cap < len) {
		uint8_t *b = realloc(e->frame, len);
		if (!b) {
			if (e->used)
				forget(t, e); /* never replay a stale frame for this flow */
			return -ENOMEM;
		}
		e->frame = b;
		e->cap = len;
	}
	memcpy(e->frame, frame, len);
	e->len = len;
	e->key = k;
	e->stamp = ++t->clock;
	if (!e->used) {
		e->used = true;
		t->st.flows++;
	}
	t->st.noted++;
	return 1;
}

void lastseg_clear(struct lastseg *t)
{
	for (uint32_t i = 0; i < t->max; i++)
		t->ents[i].used = false;
	t->st.flows = 0;
}

size_t lastseg_each(const struct lastseg *t, lastseg_fn fn, void *arg)
{
	/* Oldest first, so the client sees the flows in the order the VM served them;
	 * quadratic, but the table is small and this runs once, at takeover. */
	size_t n = 0;
	uint64_t after = 0;
	for (;;) {
		const struct ls_ent *next = NULL;
		for (uint32_t i = 0; i < t->max; i++) {
			const struct ls_ent *x = &t->ents[i];
			if (x->used && x->stamp > after && (!next || x->stamp < next->stamp))
				next = x;
		}
		if (!next)
			return n;
		fn(arg, next->frame, next->len);
		after = next->stamp;
		n++;
	}
}

void lastseg_get_stats(const struct lastseg *t, struct lastseg_stats *out)
{
	*out = t->st;
}
