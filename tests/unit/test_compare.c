/* Unit tests of the comparator core (net/compare.c, compare_tcp.c): matching
 * streams, segmentation, mismatches, ignored fields, ISN offsets, timeouts,
 * bounds, generations and the commit gate, UDP/ICMP/fragments, ARP, IPv6, VLAN. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/compare.h"
#include "tests/harness/test.h"
#include "tests/unit/test_net_frames.h"

#define MS 1000000ull
#define NREC 8192

struct rec {
	uint64_t ids[NREC];
	enum cmp_verdict v[NREC];
	size_t n;
	enum cmp_reason req[64];
	size_t nreq;
};

static char data[1024];

static void fill_data(void)
{
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + (i * 7 + i / 26) % 26);
}

static struct rec R;
static uint64_t now = 1000 * MS;
static uint64_t next_id = 1;

static void on_verdict(void *arg, uint64_t id, enum cmp_verdict v)
{
	struct rec *r = arg;
	REQUIRE(r->n < NREC);
	r->ids[r->n] = id;
	r->v[r->n++] = v;
}

static void on_ckpt(void *arg, enum cmp_reason why)
{
	struct rec *r = arg;
	REQUIRE(r->nreq < 64);
	r->req[r->nreq++] = why;
}

static const struct cmp_ops ops = { on_verdict, on_ckpt };

static struct cmp *new_cmp_cfg(const struct cmp_config *cfg)
{
	struct cmp *c;
	memset(&R, 0, sizeof(R));
	fill_data();
	REQUIRE(cmp_new(cfg, &ops, &R, &c) == 0);
	return c;
}

/* A comparator protecting generation 1, committed, the secondary caught up. */
static struct cmp *protected_cmp(const struct cmp_config *cfg)
{
	struct cmp_config def;
	cmp_config_default(&def);
	struct cmp *c = new_cmp_cfg(cfg ? cfg : &def);
	cmp_checkpoint_begin(c, 1, now);
	cmp_checkpoint_commit(c, 1, now);
	REQUIRE(cmp_secondary_gen(c, 1, now) == 0);
	return c;
}

static uint64_t P(struct cmp *c, const struct tf *t)
{
	uint8_t f[2048];
	size_t n = tf_build(t, f, sizeof(f));
	REQUIRE(n > 0);
	uint64_t id = next_id++;
	cmp_primary(c, id, f, n, now);
	return id;
}

static int S(struct cmp *c, uint64_t gen, const struct tf *t)
{
	uint8_t f[2048];
	size_t n = tf_build(t, f, sizeof(f));
	REQUIRE(n > 0);
	return cmp_secondary(c, gen, f, n, now);
}

/* The verdict given for id: 0 accept, 1 drop, -1 none yet. */
static int verdict_of(uint64_t id)
{
	int v = -1;
	for (size_t i = 0; i < R.n; i++)
		if (R.ids[i] == id) {
			REQUIRE(v == -1); /* exactly one verdict per id */
			v = R.v[i] == CMP_ACCEPT ? 0 : 1;
		}
	return v;
}

static struct cmp_stats stats(const struct cmp *c)
{
	struct cmp_stats st;
	cmp_get_stats(c, &st);
	return st;
}


static struct tf seg(uint32_t seq, size_t from, size_t n)
{
	return tf_tcp(seq + (uint32_t)from, 5000, PKT_TCP_ACK | PKT_TCP_PSH, data + from, n);
}

static void test_passthrough_before_protection(void)
{
	struct cmp_config cfg;
	cmp_config_default(&cfg);
	struct cmp *c = new_cmp_cfg(&cfg);
	struct tf t = seg(100, 0, 10);
	uint64_t id = P(c, &t);
	CHECK_EQ(verdict_of(id), 0);
	CHECK_EQ(S(c, 0, &t), 0);
	CHECK_EQ(stats(c).passed, 1);
	cmp_free(c);
}

static void test_identical_streams_match(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf a = seg(100, 0, 20), b = seg(100, 20, 20);
	uint64_t ia = P(c, &a);
	CHECK_EQ(verdict_of(ia), -1); /* held until the secondary says the same */
	S(c, 1, &a);
	CHECK_EQ(verdict_of(ia), 0);
	S(c, 1, &b); /* the secondary first this time */
	uint64_t ib = P(c, &b);
	CHECK_EQ(verdict_of(ib), 0);
	struct cmp_stats st = stats(c);
	CHECK_EQ(st.matched, 2);
	CHECK_EQ(st.held, 0);
	CHECK_EQ(R.nreq, 0);
	CHECK_EQ(st.hold_samples, 2);
	cmp_free(c);
}

static void test_different_segmentation_matches(void)
{
	struct cmp *c = protected_cmp(NULL);
	/* Primary 3 x 30, secondary 1 x 90. */
	uint64_t id[3];
	for (int i = 0; i < 3; i++) {
		struct tf t = seg(100, (size_t)i * 30, 30);
		id[i] = P(c, &t);
	}
	struct tf big = seg(100, 0, 90);
	S(c, 1, &big);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(verdict_of(id[i]), 0);
	/* Primary 1 x 60, secondary 25 + 35 split elsewhere, then overlapping 10 + 50. */
	struct tf p1 = seg(100, 90, 60);
	uint64_t i1 = P(c, &p1);
	struct tf s1 = seg(100, 90, 25), s2 = seg(100, 115, 35);
	S(c, 1, &s1);
	CHECK_EQ(verdict_of(i1), -1);
	S(c, 1, &s2);
	CHECK_EQ(verdict_of(i1), 0);
	/* A secondary retransmission overlapping verified octets is skipped. */
	struct tf p2 = seg(100, 30, 10);
	uint64_t i2 = P(c, &p2); /* a primary retransmission of verified octets */
	CHECK_EQ(verdict_of(i2), 0);
	CHECK_EQ(R.nreq, 0);
	CHECK_EQ(stats(c).mismatches, 0);
	cmp_free(c);
}

static void test_payload_differs_is_mismatch(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf a = seg(100, 0, 20);
	uint64_t ia = P(c, &a);
	struct tf b = a;
	char other[20];
	memcpy(other, data, 20);
	other[19] ^= 1;
	b.payload = other;
	S(c, 1, &b);
	CHECK_EQ(verdict_of(ia), -1);
	REQUIRE(R.nreq == 1);
	CHECK_EQ(R.req[0], CMP_REASON_MISMATCH);
	/* Later output of the flow waits too, even if the secondary matches it. */
	struct tf n = seg(100, 20, 10);
	uint64_t in = P(c, &n);
	S(c, 1, &n);
	CHECK_EQ(verdict_of(in), -1);
	/* Other flows keep comparing. */
	struct tf u = tf_udp(53, 999, "dns", 3);
	uint64_t iu = P(c, &u);
	S(c, 1, &u);
	CHECK_EQ(verdict_of(iu), 0);
	struct cmp_stats st = stats(c);
	CHECK_EQ(st.mismatches, 1);
	CHECK_EQ(st.requests[CMP_REASON_MISMATCH], 1);
	CHECK_EQ(st.held, 2);
	/* The checkpoint: held until it commits. */
	now += MS;
	cmp_checkpoint_begin(c, 2, now);
	CHECK_EQ(verdict_of(ia), -1);
	cmp_checkpoint_commit(c, 2, now);
	CHECK_EQ(verdict_of(ia), 0);
	CHECK_EQ(verdict_of(in), 0);
	st = stats(c);
	CHECK_EQ(st.released_ckpt, 2);
	CHECK_EQ(st.held, 0);
	cmp_free(c);
}

static void test_ignored_fields(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf a = seg(100, 0, 20);
	a.ip_id = 1;
	a.ttl = 64;
	a.ts = true;
	a.tsval = 1000;
	a.tsecr = 2000;
	a.win = 100;
	struct tf b = a;
	b.ip_id = 999;
	b.ttl = 63;
	b.tsval = 5555;
	b.tsecr = 7777;
	b.win = 65000;
	uint8_t f[2048];
	size_t n = tf_build(&b, f, sizeof(f));
	f[14 + 10] ^= 0xff;	 /* corrupt the IP checksum */
	f[14 + 20 + 16] ^= 0xff; /* and the TCP checksum */
	uint64_t ia = P(c, &a);
	CHECK_EQ(cmp_secondary(c, 1, f, n, now), 0);
	CHECK_EQ(verdict_of(ia), 0);
	CHECK_EQ(R.nreq, 0);
	cmp_free(c);
}

static struct tf synack(uint32_t isn, uint32_t ack)
{
	struct tf t = tf_tcp(isn, ack, PKT_TCP_SYN | PKT_TCP_ACK, NULL, 0);
	t.ts = true;
	return t;
}

static void test_new_connection_gets_offset(void)
{
	struct cmp *c = protected_cmp(NULL);
	const uint32_t isn_p = 0xfffffff0u, isn_s = 0x12345678u, client = 777;
	struct tf pa = synack(isn_p, client + 1), sa = synack(isn_s, client + 1);
	sa.tsval = 99; /* options differ too */
	uint64_t id = P(c, &pa);
	S(c, 1, &sa);
	CHECK_EQ(verdict_of(id), 0);
	/* Data in both sequence spaces, across the 2^32 wrap on the primary. */
	for (size_t off = 0; off < 60; off += 20) {
		struct tf p = tf_tcp(isn_p + 1 + (uint32_t)off, client + 1, PKT_TCP_ACK, data + off, 20);
		struct tf s = tf_tcp(isn_s + 1 + (uint32_t)off, client + 1, PKT_TCP_ACK, data + off, 20);
		uint64_t i = P(c, &p);
		S(c, 1, &s);
		CHECK_EQ(verdict_of(i), 0);
	}
	/* The secondary retransmits its SYN-ACK: a duplicate, not a mismatch. */
	S(c, 1, &sa);
	struct tf p = tf_tcp(isn_p + 61, client + 1, PKT_TCP_ACK | PKT_TCP_FIN, NULL, 0);
	struct tf s = tf_tcp(isn_s + 61, client + 1, PKT_TCP_ACK | PKT_TCP_FIN, NULL, 0);
	uint64_t ifin = P(c, &p);
	S(c, 1, &s);
	CHECK_EQ(verdict_of(ifin), 0);
	struct cmp_stats st = stats(c);
	CHECK_EQ(R.nreq, 0);
	CHECK_EQ(st.offsets, 1);
	CHECK_EQ(st.mismatches, 0);
	cmp_free(c);
}

static void test_active_open_offset_and_syn_mismatch(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf ps = tf_tcp(1000, 0, PKT_TCP_SYN, NULL, 0), ss = tf_tcp(9000, 0, PKT_TCP_SYN, NULL, 0);
	uint64_t id = P(c, &ps);
	S(c, 1, &ss);
	CHECK_EQ(verdict_of(id), 0);
	CHECK_EQ(stats(c).offsets, 1);
	/* A second connection: the secondary answers RST where the primary SYN-ACKs. */
	struct tf pa = synack(50, 11), sr = tf_tcp(0, 11, PKT_TCP_RST | PKT_TCP_ACK, NULL, 0);
	pa.sport = sr.sport = 8080;
	uint64_t ia = P(c, &pa);
	S(c, 1, &sr);
	CHECK_EQ(verdict_of(ia), -1);
	CHECK_EQ(stats(c).mismatches, 1);
	CHECK_EQ(R.req[0], CMP_REASON_MISMATCH);
	cmp_free(c);
}

/* A new connection on the same ports whose ISN lies behind the verified mark is
 * compared afresh, not taken for a retransmission. */
static void test_port_reuse_is_a_new_handshake(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf pa = synack(100000, 11), sa = synack(200000, 11);
	P(c, &pa);
	S(c, 1, &sa);
	struct tf d = tf_tcp(100001, 11, PKT_TCP_ACK, data, 50);
	P(c, &d);
	d.seq = 200001;
	S(c, 1, &d);
	/* Same ports, ISN 50000 < pv: must wait for the secondary's SYN-ACK. */
	struct tf p2 = synack(50000, 77), s2 = synack(300000, 77);
	uint64_t id = P(c, &p2);
	CHECK_EQ(verdict_of(id), -1);
	S(c, 1, &s2);
	CHECK_EQ(verdict_of(id), 0);
	/* Its retransmission is one. */
	uint64_t again = P(c, &p2);
	CHECK_EQ(verdict_of(again), 0);
	CHECK_EQ(stats(c).offsets, 2);
	CHECK_EQ(R.nreq, 0);
	cmp_free(c);
}

static void test_ack_waits_for_secondary_ack(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf pa = tf_tcp(100, 5000, PKT_TCP_ACK, NULL, 0); /* pure ACK */
	uint64_t id = P(c, &pa);
	CHECK_EQ(verdict_of(id), -1);
	struct tf sa = tf_tcp(100, 4000, PKT_TCP_ACK, NULL, 0);
	S(c, 1, &sa);
	CHECK_EQ(verdict_of(id), -1); /* the secondary has not received up to 5000 yet */
	sa.ack = 5001;
	S(c, 1, &sa);
	CHECK_EQ(verdict_of(id), 0);
	/* Now any ack up to 5001 leaves at once: the window and ACK timing differ. */
	pa.ack = 5001;
	pa.win = 1;
	uint64_t i2 = P(c, &pa);
	CHECK_EQ(verdict_of(i2), 0);
	cmp_free(c);
}

static void test_fin_and_rst(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf p = seg(100, 0, 10);
	p.flags |= PKT_TCP_FIN;
	uint64_t id = P(c, &p);
	struct tf s = seg(100, 0, 10);
	S(c, 1, &s);
	CHECK_EQ(verdict_of(id), -1); /* the data matched; the FIN not yet */
	struct tf sf = tf_tcp(110, 5000, PKT_TCP_ACK | PKT_TCP_FIN, NULL, 0);
	S(c, 1, &sf);
	CHECK_EQ(verdict_of(id), 0);
	/* Data where the other side has FIN: mismatch. */
	struct tf q = seg(100, 0, 10);
	q.sport = 9;
	uint64_t iq = P(c, &q);
	struct tf qf = seg(100, 0, 5);
	qf.sport = 9;
	qf.flags |= PKT_TCP_FIN;
	S(c, 1, &qf);
	CHECK_EQ(verdict_of(iq), -1);
	CHECK_EQ(stats(c).mismatches, 1);
	/* RST against RST matches. */
	struct tf r = tf_tcp(500, 5000, PKT_TCP_RST | PKT_TCP_ACK, NULL, 0);
	r.sport = 11;
	uint64_t ir = P(c, &r);
	CHECK_EQ(verdict_of(ir), -1);
	S(c, 1, &r);
	CHECK_EQ(verdict_of(ir), 0);
	cmp_free(c);
}

static void test_timeout(void)
{
	struct cmp_config cfg;
	cmp_config_default(&cfg);
	cfg.timeout_ms = 50;
	struct cmp *c = new_cmp_cfg(&cfg);
	cmp_checkpoint_begin(c, 1, now);
	cmp_checkpoint_commit(c, 1, now);
	struct tf t = seg(100, 0, 10);
	uint64_t id = P(c, &t);
	/* The secondary is not in generation 1 yet: no timeout however long. */
	now += 200 * MS;
	cmp_tick(c, now);
	CHECK_EQ(R.nreq, 0);
	cmp_secondary_gen(c, 1, now);
	CHECK_EQ(cmp_next_deadline(c), now + 50 * MS);
	now += 49 * MS;
	cmp_tick(c, now);
	CHECK_EQ(R.nreq, 0);
	now += 1 * MS;
	cmp_tick(c, now);
	REQUIRE(R.nreq == 1);
	CHECK_EQ(R.req[0], CMP_REASON_TIMEOUT);
	CHECK_EQ(stats(c).timeouts, 1);
	/* One request per generation; repeated after retry_ms without a begin. */
	now += 10 * MS;
	cmp_tick(c, now);
	CHECK_EQ(R.nreq, 1);
	now += 1000 * MS;
	cmp_tick(c, now);
	CHECK_EQ(R.nreq, 2);
	CHECK_EQ(stats(c).retries, 1);
	cmp_checkpoint_begin(c, 2, now);
	cmp_checkpoint_commit(c, 2, now);
	CHECK_EQ(verdict_of(id), 0);
	struct cmp_stats st = stats(c);
	CHECK(st.hold_p99_us >= 1200000 && st.hold_p99_us <= 1400000);
	cmp_free(c);
}

static void test_queue_full_requests_checkpoint_never_drops(void)
{
	struct cmp_config cfg;
	cmp_config_default(&cfg);
	cfg.max_held = 4;
	cfg.max_pending = 8;
	struct cmp *c = protected_cmp(&cfg);
	uint64_t ids[12];
	for (int i = 0; i < 12; i++) {
		struct tf t = seg(100, (size_t)i, 1);
		ids[i] = P(c, &t);
	}
	REQUIRE(R.nreq == 1);
	CHECK_EQ(R.req[0], CMP_REASON_QUEUE_FULL);
	struct cmp_stats st = stats(c);
	CHECK_EQ(st.requests[CMP_REASON_QUEUE_FULL], 1);
	/* 8 wait for the commit; past max_pending the rest are dropped, counted. */
	CHECK_EQ(st.held, 8);
	CHECK_EQ(st.dropped, 4);
	for (int i = 8; i < 12; i++)
		CHECK_EQ(verdict_of(ids[i]), 1);
	/* The secondary's frames are not compared in a frozen generation. */
	struct tf t = seg(100, 0, 1);
	S(c, 1, &t);
	CHECK_EQ(verdict_of(ids[0]), -1);
	cmp_checkpoint_begin(c, 2, now);
	cmp_checkpoint_commit(c, 2, now);
	for (int i = 0; i < 8; i++)
		CHECK_EQ(verdict_of(ids[i]), 0);
	CHECK_EQ(stats(c).held, 0);
	cmp_free(c);
}

static void test_secondary_queue_full(void)
{
	struct cmp_config cfg;
	cmp_config_default(&cfg);
	cfg.max_sec = 3;
	struct cmp *c = protected_cmp(&cfg);
	for (int i = 0; i < 4; i++) {
		struct tf t = tf_udp(1, 2, data + i, 1);
		S(c, 1, &t);
	}
	REQUIRE(R.nreq == 1);
	CHECK_EQ(R.req[0], CMP_REASON_QUEUE_FULL);
	CHECK(stats(c).sec_dropped >= 1);
	cmp_free(c);
}

static void test_udp(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf a = tf_udp(53, 1000, "answer-1", 8), b = tf_udp(53, 1000, "answer-2", 8);
	uint64_t ia = P(c, &a), ib = P(c, &b);
	S(c, 1, &a);
	CHECK_EQ(verdict_of(ia), 0);
	CHECK_EQ(verdict_of(ib), -1);
	S(c, 1, &b);
	CHECK_EQ(verdict_of(ib), 0);
	/* Another flow, other content: mismatch. */
	struct tf x = tf_udp(53, 2000, "x", 1), y = tf_udp(53, 2000, "y", 1);
	uint64_t ix = P(c, &x);
	S(c, 1, &y);
	CHECK_EQ(verdict_of(ix), -1);
	CHECK_EQ(stats(c).mismatches, 1);
	cmp_free(c);
}

static void test_arp_and_non_ip_pass(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf arp = { .family = 0 };
	uint64_t id = P(c, &arp);
	CHECK_EQ(verdict_of(id), 0);
	S(c, 1, &arp);
	struct cmp_stats st = stats(c);
	CHECK_EQ(st.passed, 1);
	CHECK_EQ(st.sec_passed, 1);
	CHECK_EQ(st.held, 0);
	cmp_free(c);
}

static void test_ipv6(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf p = seg(100, 0, 40), s1 = seg(100, 0, 15), s2 = seg(100, 15, 25);
	p.family = s1.family = s2.family = 6;
	tf_addr(&p, 10, 1);
	tf_addr(&s1, 10, 1);
	tf_addr(&s2, 10, 1);
	p.ip_id = 0x2345; /* the flow label differs */
	uint64_t id = P(c, &p);
	S(c, 1, &s1);
	S(c, 1, &s2);
	CHECK_EQ(verdict_of(id), 0);
	/* The same ports over IPv4 are another flow. */
	struct tf v4 = seg(100, 0, 40);
	uint64_t i4 = P(c, &v4);
	CHECK_EQ(verdict_of(i4), -1);
	cmp_free(c);
}

static void test_vlan_is_part_of_the_flow(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf p = tf_udp(1, 2, "v", 1), s = p;
	p.nvlan = s.nvlan = 1;
	p.vlan[0] = 5;
	s.vlan[0] = 6;
	uint64_t id = P(c, &p);
	S(c, 1, &s);
	CHECK_EQ(verdict_of(id), -1);
	s.vlan[0] = 0x3005; /* VID 5, other priority */
	S(c, 1, &s);
	CHECK_EQ(verdict_of(id), 0);
	CHECK_EQ(stats(c).mismatches, 0);
	cmp_free(c);
}

static void test_icmp_and_fragments(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf e = { .family = 4, .proto = 1, .icmp_type = 0, .icmp_id = 7, .icmp_seq = 1,
			.ttl = 64, .payload = "ping", .plen = 4 };
	tf_addr(&e, 10, 1);
	uint64_t ie = P(c, &e);
	S(c, 1, &e);
	CHECK_EQ(verdict_of(ie), 0);
	/* An ICMP error quoting datagrams with different IP ids still matches. */
	struct tf u = e, v;
	u.icmp_type = 3;
	u.icmp_code = 3;
	u.payload = "\0\0\0\0quoted-id-A";
	u.plen = 15;
	v = u;
	v.payload = "\0\0\0\0quoted-id-B";
	uint64_t iu = P(c, &u);
	S(c, 1, &v);
	CHECK_EQ(verdict_of(iu), 0);
	/* Fragments: offsets and payload compared, IP id ignored. */
	uint8_t f[256], g[256];
	struct tf d = tf_udp(1, 2, "fragmented", 10);
	d.ip_id = 1;
	size_t n = tf_build(&d, f, sizeof(f));
	d.ip_id = 2;
	tf_build(&d, g, sizeof(g));
	tf_patch16(f + 20, 0x2000);
	tf_patch16(g + 20, 0x2000);
	uint64_t ifr = next_id++;
	cmp_primary(c, ifr, f, n, now);
	cmp_secondary(c, 1, g, n, now);
	CHECK_EQ(verdict_of(ifr), 0);
	CHECK_EQ(stats(c).mismatches, 0);
	cmp_free(c);
}

static void test_generations_and_commit_gate(void)
{
	struct cmp *c = protected_cmp(NULL);
	/* A new checkpoint begins; the secondary still runs generation 1. */
	cmp_checkpoint_begin(c, 2, now);
	struct tf t = seg(100, 0, 10);
	uint64_t id = P(c, &t);
	S(c, 1, &t); /* stale: generation 1 */
	CHECK_EQ(verdict_of(id), -1);
	CHECK_EQ(stats(c).sec_stale, 1);
	CHECK_EQ(S(c, 3, &t), -EPROTO);
	/* The secondary loaded 2 before the primary saw the commit: matched, not released. */
	S(c, 2, &t);
	CHECK_EQ(verdict_of(id), -1);
	cmp_checkpoint_commit(c, 2, now);
	CHECK_EQ(verdict_of(id), 0);
	CHECK_EQ(stats(c).matched, 1);
	cmp_free(c);
}

static void test_offsets_reset_after_checkpoint(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf pa = synack(1000, 11), sa = synack(5000, 11);
	P(c, &pa);
	S(c, 1, &sa);
	struct tf p = tf_tcp(1001, 11, PKT_TCP_ACK, data, 10);
	uint64_t id = P(c, &p);
	CHECK_EQ(verdict_of(id), -1);
	/* A checkpoint before the secondary sent it: from now on it uses the primary's ISN. */
	cmp_checkpoint_begin(c, 2, now);
	cmp_checkpoint_commit(c, 2, now);
	CHECK_EQ(verdict_of(id), 0);
	struct tf p2 = tf_tcp(1011, 11, PKT_TCP_ACK, data + 10, 10);
	uint64_t i2 = P(c, &p2);
	S(c, 2, &p2);
	CHECK_EQ(verdict_of(i2), 0);
	/* A retransmission of octets the checkpoint covered leaves without comparison. */
	uint64_t i3 = P(c, &p);
	CHECK_EQ(verdict_of(i3), 0);
	CHECK_EQ(R.nreq, 0);
	cmp_free(c);
}

static void test_release_all(void)
{
	struct cmp *c = protected_cmp(NULL);
	struct tf a = seg(100, 0, 10), b = tf_udp(1, 2, "u", 1);
	uint64_t ia = P(c, &a), ib = P(c, &b);
	cmp_release_all(c, now);
	CHECK_EQ(verdict_of(ia), 0);
	CHECK_EQ(verdict_of(ib), 0);
	struct tf d = seg(100, 10, 10);
	uint64_t id = P(c, &d);
	CHECK_EQ(verdict_of(id), 0);
	struct cmp_stats st = stats(c);
	CHECK_EQ(st.released_all, 2);
	CHECK_EQ(st.held, 0);
	CHECK_EQ(st.flows, 0);
	cmp_free(c);
}

static void test_raw_frames_compared_whole(void)
{
	struct cmp *c = protected_cmp(NULL);
	uint8_t f[20] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45, 0, 0, 99 };
	uint64_t id = next_id++;
	cmp_primary(c, id, f, sizeof(f), now);
	CHECK_EQ(verdict_of(id), -1);
	cmp_secondary(c, 1, f, sizeof(f), now);
	CHECK_EQ(verdict_of(id), 0);
	struct cmp_stats st = stats(c);
	CHECK_EQ(st.parse_primary.by_err[PKT_E_IP4_IHL] + st.parse_primary.by_err[PKT_E_IP4_LEN] +
			 st.parse_primary.by_err[PKT_E_IP4_TRUNC],
		 1);
	cmp_free(c);
}

static void test_bad_config(void)
{
	struct cmp_config cfg;
	struct cmp *c;
	cmp_config_default(&cfg);
	cfg.max_held = 0;
	CHECK_EQ(cmp_new(&cfg, &ops, &R, &c), -EINVAL);
	CHECK_EQ(strcmp(cmp_reason_name(CMP_REASON_QUEUE_FULL), "queue-full"), 0);
}

static const struct test tests[] = {
	TEST(test_passthrough_before_protection),
	TEST(test_identical_streams_match),
	TEST(test_different_segmentation_matches),
	TEST(test_payload_differs_is_mismatch),
	TEST(test_ignored_fields),
	TEST(test_new_connection_gets_offset),
	TEST(test_active_open_offset_and_syn_mismatch),
	TEST(test_port_reuse_is_a_new_handshake),
	TEST(test_ack_waits_for_secondary_ack),
	TEST(test_fin_and_rst),
	TEST(test_timeout),
	TEST(test_queue_full_requests_checkpoint_never_drops),
	TEST(test_secondary_queue_full),
	TEST(test_udp),
	TEST(test_arp_and_non_ip_pass),
	TEST(test_ipv6),
	TEST(test_vlan_is_part_of_the_flow),
	TEST(test_icmp_and_fragments),
	TEST(test_generations_and_commit_gate),
	TEST(test_offsets_reset_after_checkpoint),
	TEST(test_release_all),
	TEST(test_raw_frames_compared_whole),
	TEST(test_bad_config),
	{ 0 },
};
TEST_MAIN(tests)
