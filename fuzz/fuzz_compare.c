/* fuzz_compare.c - libFuzzer target for the comparator core (net/compare*.c),
 * driven with two interleaved frame streams: the primary's and the secondary's.
 *
 * Input: a script of operations, each an opcode octet and its arguments:
 *   0 TCP   flow, seq (u16), len, flags, ack, side, seed   one segment; its octets
 *           are a function of their sequence position and seed
 *   1 UDP   flow, len, side, seed                           one datagram
 *   2 RAW   side, len, len octets                           any frame
 *   3 begin                                                 next checkpoint begins
 *   4 commit  k                                             commit(gen - (k & 1))
 *   5 tick  ms                                              time advances, cmp_tick
 *   6 secgen  k                                             the secondary runs gen - 1, gen, gen + 1
 *   7 release_all
 *   8 offset  flow, u16                                     the secondary's ISN offset for a flow
 * side: bit 0 primary, bit 1 secondary, bit 2 secondary first, bit 3 the secondary's
 * payload differs. Four flows: IPv4/IPv6, with and without a VLAN tag.
 *
 * Checked: every primary frame gets exactly one verdict (after a final
 * cmp_release_all()); within a flow, accepted frames leave in the order they came;
 * the held counter equals the frames without a verdict. Seeds:
 * fuzz/corpus/fuzz_compare/ (written by hand: tests/unit/test_compare.c covers the
 * rules; the seeds only give the fuzzer a start). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "net/compare.h"
#include "tests/unit/test_net_frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IDS 4096
#define NFLOWS 4
#define NO_FLOW 0xff

struct state {
	struct cmp *c;
	uint64_t now, gen, next_id;
	uint8_t nverdicts[MAX_IDS];
	uint8_t flow_of[MAX_IDS];
	uint64_t last_accepted[2 * NFLOWS];
	uint32_t sec_off[NFLOWS];
	uint64_t sec_gen;
};

static void on_verdict(void *arg, uint64_t id, enum cmp_verdict v)
{
	struct state *s = arg;
	if (id == 0 || id >= s->next_id || s->nverdicts[id]++)
		abort(); /* an unknown id, or a second verdict */
	uint8_t f = s->flow_of[id];
	if (v == CMP_ACCEPT && f != NO_FLOW) {
		if (id < s->last_accepted[f])
			abort(); /* released out of order within its flow */
		s->last_accepted[f] = id;
	}
}

static void on_ckpt(void *arg, enum cmp_reason why)
{
	if ((unsigned)why >= CMP_REASON__COUNT)
		abort();
}

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint16_t u16(struct in *in)
{
	uint16_t hi = u8(in);
	return (uint16_t)(hi << 8 | u8(in));
}

static void flow_shape(struct tf *t, unsigned flow)
{
	t->family = flow & 1 ? 6 : 4;
	t->nvlan = flow & 2 ? 1 : 0;
	t->vlan[0] = 42;
	t->sport = (uint16_t)(7 + flow);
	tf_addr(t, 10, 1);
}

static void emit(struct state *s, uint8_t side, uint8_t flow, const uint8_t *pf, size_t pn,
		 const uint8_t *sf, size_t sn)
{
	bool sec_first = side & 4;
	if (sec_first && side & 2)
		cmp_secondary(s->c, s->sec_gen, sf, sn, s->now);
	if (side & 1 && s->next_id < MAX_IDS) {
		uint64_t id = s->next_id++;
		s->flow_of[id] = flow;
		cmp_primary(s->c, id, pf, pn, s->now);
	}
	if (!sec_first && side & 2)
		cmp_secondary(s->c, s->sec_gen, sf, sn, s->now);
}

/* Octets as a function of their stream position: any segmentation of a range
 * carries the same octets, so the fuzzer finds matches without knowing TCP. */
static void fill(uint8_t *d, size_t n, uint32_t pos, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		d[i] = (uint8_t)((((pos + (uint32_t)i) * 2654435761u) >> 24) ^ seed);
}

static void op_tcp(struct state *s, struct in *in)
{
	uint8_t flow = u8(in) % NFLOWS, pay[256], spay[256], pf[512], sf[512];
	uint16_t seq = u16(in);
	uint8_t len = u8(in), flags = u8(in), ack = u8(in), side = u8(in), seed = u8(in);
	fill(pay, len, seq, seed);
	memcpy(spay, pay, len);
	if (side & 8 && len)
		spay[len / 2] ^= 1;
	struct tf t = tf_tcp(1000u * flow + seq, 5000u + ack, flags, pay, len);
	flow_shape(&t, flow);
	size_t pn = tf_build(&t, pf, sizeof(pf));
	t.seq += s->sec_off[flow];
	t.payload = spay;
	size_t sn = tf_build(&t, sf, sizeof(sf));
	emit(s, side, flow, pf, pn, sf, sn);
}

static void op_udp(struct state *s, struct in *in)
{
	uint8_t flow = u8(in) % NFLOWS, pay[256], spay[256], pf[512], sf[512];
	uint8_t len = u8(in), side = u8(in), seed = u8(in);
	fill(pay, len, 0, seed);
	memcpy(spay, pay, len);
	if (side & 8 && len)
		spay[0] ^= 1;
	struct tf t = tf_udp(53, 1000, pay, len);
	flow_shape(&t, flow);
	size_t pn = tf_build(&t, pf, sizeof(pf));
	t.payload = spay;
	size_t sn = tf_build(&t, sf, sizeof(sf));
	emit(s, side, (uint8_t)(NFLOWS + flow), pf, pn, sf, sn);
}

static void op_raw(struct state *s, struct in *in)
{
	uint8_t side = u8(in), len = u8(in), f[256];
	size_t n = len < in->n ? len : in->n;
	memcpy(f, in->p, n);
	in->p += n;
	in->n -= n;
	emit(s, side & 3, NO_FLOW, f, n, f, n);
}

static void op_control(struct state *s, uint8_t op, struct in *in)
{
	uint8_t k;
	switch (op) {
	case 3:
		cmp_checkpoint_begin(s->c, ++s->gen, s->now);
		break;
	case 4:
		k = u8(in);
		cmp_checkpoint_commit(s->c, s->gen - (k & 1), s->now);
		break;
	case 5:
		s->now += (uint64_t)u8(in) * 1000000;
		cmp_tick(s->c, s->now);
		break;
	case 6:
		k = u8(in) % 3;
		s->sec_gen = s->gen + k - 1;
		cmp_secondary_gen(s->c, s->sec_gen, s->now);
		break;
	case 7:
		cmp_release_all(s->c, s->now);
		break;
	case 8:
		k = u8(in) % NFLOWS;
		s->sec_off[k] = (uint32_t)u16(in) << 8;
		break;
	}
}

static void check_held(struct state *s)
{
	struct cmp_stats st;
	uint64_t open = 0;
	cmp_get_stats(s->c, &st);
	for (uint64_t id = 1; id < s->next_id; id++)
		open += s->nverdicts[id] == 0;
	if (st.held != open)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct state s;
	struct cmp_config cfg;
	struct cmp_ops ops = { on_verdict, on_ckpt };
	struct in in = { data, size };
	log_init("fuzz_compare", LOG_ERR); /* a mismatch logs a line; millions would drown */
	memset(&s, 0, sizeof(s));
	s.now = 1000000000ull;
	s.next_id = 1;
	s.gen = 1;
	s.sec_gen = 1;
	cmp_config_default(&cfg);
	cfg.max_held = 64; /* small bounds so the fuzzer reaches them */
	cfg.max_pending = 128;
	cfg.max_sec = 64;
	cfg.max_held_bytes = 8192;
	cfg.max_sec_bytes = 8192;
	cfg.max_flows = 8;
	if (cmp_new(&cfg, &ops, &s, &s.c) < 0)
		abort();
	if (u8(&in) & 1) { /* start protected */
		cmp_checkpoint_begin(s.c, 1, s.now);
		cmp_checkpoint_commit(s.c, 1, s.now);
		cmp_secondary_gen(s.c, 1, s.now);
	}
	while (in.n) {
		uint8_t op = u8(&in) % 9;
		if (op == 0)
			op_tcp(&s, &in);
		else if (op == 1)
			op_udp(&s, &in);
		else if (op == 2)
			op_raw(&s, &in);
		else
			op_control(&s, op, &in);
		check_held(&s);
	}
	cmp_release_all(s.c, s.now);
	for (uint64_t id = 1; id < s.next_id; id++)
		if (s.nverdicts[id] != 1)
			abort();
	cmp_free(s.c);
	return 0;
}
