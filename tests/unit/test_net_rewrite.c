/* Unit tests of the secondary's sequence rewriter (net/rewrite.c): learning the
 * offset from a passive and an active open, rewriting acks and SACK blocks into
 * the VM's space, the VM's output into the primary's after go-live, checksums kept
 * right, and forgetting at a checkpoint load. */
#include <errno.h>
#include <string.h>

#include "net/rewrite.h"
#include "tests/harness/test.h"
#include "tests/unit/test_net_frames.h"

#define MS 1000000ull

static uint8_t f[2048];
static size_t n;

/* The VM is 10.0.0.10:7; the client 10.0.0.1:40000. */
static struct tf from_vm(uint32_t seq, uint32_t ack, uint8_t flags, const char *data)
{
	return tf_tcp(seq, ack, flags, data, data ? strlen(data) : 0);
}

static struct tf to_vm(uint32_t seq, uint32_t ack, uint8_t flags, const char *data)
{
	struct tf t = tf_tcp(seq, ack, flags, data, data ? strlen(data) : 0);
	t.sport = 40000;
	t.dport = 7;
	tf_addr(&t, 1, 10);
	return t;
}

static struct pkt parsed(void)
{
	struct pkt p;
	REQUIRE(pkt_parse(f, n, PKT_PARSE_CSUM, &p) == PKT_TCP);
	CHECK(!(p.flags & PKT_F_BAD_CSUM)); /* the incremental update kept it right */
	return p;
}

static int out(struct rw *r, struct tf t)
{
	n = tf_build(&t, f, sizeof(f));
	return rw_output(r, f, n, 0);
}

static int in(struct rw *r, struct tf t)
{
	n = tf_build(&t, f, sizeof(f));
	return rw_input(r, f, n, 0);
}

static struct rw *new_rw(void)
{
	struct rw_config cfg;
	struct rw *r;
	rw_config_default(&cfg);
	REQUIRE(rw_new(&cfg, &r) == 0);
	return r;
}

static void test_passive_open(void)
{
	struct rw *r = new_rw();
	const uint32_t isn_p = 1000, isn_s = 0xfffff000u, client = 500;
	CHECK_EQ(in(r, to_vm(client, 0, PKT_TCP_SYN, NULL)), 0);
	CHECK_EQ(out(r, from_vm(isn_s, client + 1, PKT_TCP_SYN | PKT_TCP_ACK, NULL)), 0);
	/* The client's ACK of the primary's SYN-ACK: ack = isn_p + 1 -> isn_s + 1. */
	CHECK_EQ(in(r, to_vm(client + 1, isn_p + 1, PKT_TCP_ACK, "GET /")), 1);
	struct pkt p = parsed();
	CHECK_EQ(p.ack, isn_s + 1);
	CHECK_EQ(p.data_len, 5);
	/* Later acks, across the wrap. */
	CHECK_EQ(in(r, to_vm(client + 6, isn_p + 5000, PKT_TCP_ACK, NULL)), 1);
	CHECK_EQ(parsed().ack, isn_s + 5000);
	/* The VM's output is left alone while protected: the comparator maps it. */
	CHECK_EQ(out(r, from_vm(isn_s + 1, client + 6, PKT_TCP_ACK, "200 OK")), 0);
	CHECK_EQ(parsed().seq, isn_s + 1);
	/* Other connections are untouched. */
	struct tf other = to_vm(1, isn_p + 1, PKT_TCP_ACK, NULL);
	other.sport = 40001;
	CHECK_EQ(in(r, other), 0);
	struct rw_stats st;
	rw_get_stats(r, &st);
	CHECK_EQ(st.learnt, 1);
	CHECK_EQ(st.conns, 1);
	CHECK_EQ(st.rewritten_in, 2);
	rw_free(r);
}

static void test_sack_blocks_rewritten(void)
{
	struct rw *r = new_rw();
	out(r, from_vm(9000, 11, PKT_TCP_SYN | PKT_TCP_ACK, NULL));
	in(r, to_vm(11, 101, PKT_TCP_ACK, NULL)); /* off = 9000 - 100 = 8900 */
	struct tf t = to_vm(11, 201, PKT_TCP_ACK, NULL);
	t.ts = true; /* 12 octets of options: NOP NOP TS; replaced by NOP NOP SACK(1) */
	n = tf_build(&t, f, sizeof(f));
	size_t opt = 14 + 20 + 20;
	uint8_t sack[12] = { 1, 1, 5, 10, 0, 0, 1, 0x2d, 0, 0, 1, 0x91 }; /* 301..401 */
	memcpy(f + opt, sack, sizeof(sack));
	/* Fix the checksum for the new options first (the test's own doing). */
	f[14 + 20 + 16] = f[14 + 20 + 17] = 0;
	struct pkt p0;
	pkt_parse(f, n, 0, &p0);
	uint32_t s = pkt_csum_add(0, p0.src, 4);
	s = pkt_csum_add(s, p0.dst, 4);
	s += 6 + (uint32_t)(n - p0.l4_off);
	s = pkt_csum_add(s, f + p0.l4_off, n - p0.l4_off);
	tf_patch16(f + 14 + 20 + 16, (uint16_t)~pkt_csum_fold(s));
	CHECK_EQ(rw_input(r, f, n, 0), 1);
	struct pkt p = parsed();
	CHECK_EQ(p.ack, 201 + 8900);
	REQUIRE(p.nsack == 1);
	struct rd rd = rd_init(f + p.sack_off, 8);
	uint32_t a, b;
	rd_be32(&rd, &a);
	rd_be32(&rd, &b);
	CHECK_EQ(a, 301 + 8900);
	CHECK_EQ(b, 401 + 8900);
	rw_free(r);
}

static void test_active_open(void)
{
	struct rw *r = new_rw();
	out(r, from_vm(7000, 0, PKT_TCP_SYN, NULL));
	out(r, from_vm(7000, 0, PKT_TCP_SYN, NULL)); /* retransmitted: no change */
	/* The server's SYN-ACK acknowledges the primary's ISN (300) + 1. */
	CHECK_EQ(in(r, to_vm(55, 301, PKT_TCP_SYN | PKT_TCP_ACK, NULL)), 1);
	CHECK_EQ(parsed().ack, 7001);
	rw_free(r);
}

static void test_go_live_rewrites_output(void)
{
	struct rw *r = new_rw();
	out(r, from_vm(5000, 11, PKT_TCP_SYN | PKT_TCP_ACK, NULL));
	in(r, to_vm(11, 1001, PKT_TCP_ACK, NULL)); /* off = 4000 */
	rw_go_live(r);
	CHECK_EQ(out(r, from_vm(5001, 11, PKT_TCP_ACK | PKT_TCP_PSH, "reply")), 1);
	struct pkt p = parsed();
	CHECK_EQ(p.seq, 1001);
	CHECK(!memcmp(f + p.data_off, "reply", 5));
	CHECK_EQ(in(r, to_vm(11, 1006, PKT_TCP_ACK, NULL)), 1);
	CHECK_EQ(parsed().ack, 5006);
	/* Nothing new is learnt after go-live: a new connection stays as it is. */
	struct tf syn = from_vm(8000, 3, PKT_TCP_SYN | PKT_TCP_ACK, NULL);
	syn.sport = 8;
	CHECK_EQ(out(r, syn), 0);
	struct tf ack = to_vm(3, 8001, PKT_TCP_ACK, NULL);
	ack.dport = 8;
	CHECK_EQ(in(r, ack), 0);
	struct rw_stats st;
	rw_get_stats(r, &st);
	CHECK_EQ(st.rewritten_out, 1);
	CHECK_EQ(st.conns, 1);
	rw_free(r);
}

static void test_checkpoint_forgets_and_expiry(void)
{
	struct rw *r = new_rw();
	out(r, from_vm(5000, 11, PKT_TCP_SYN | PKT_TCP_ACK, NULL));
	in(r, to_vm(11, 1001, PKT_TCP_ACK, NULL));
	rw_checkpoint_loaded(r);
	CHECK_EQ(in(r, to_vm(11, 1001, PKT_TCP_ACK, NULL)), 0);
	/* A closed connection goes after closed_ms, an idle one after idle_ms. */
	out(r, from_vm(5000, 11, PKT_TCP_SYN | PKT_TCP_ACK, NULL));
	struct tf fin = from_vm(5001, 11, PKT_TCP_FIN | PKT_TCP_ACK, NULL);
	n = tf_build(&fin, f, sizeof(f));
	rw_output(r, f, n, 1 * MS);
	struct tf pfin = to_vm(11, 1002, PKT_TCP_FIN | PKT_TCP_ACK, NULL);
	n = tf_build(&pfin, f, sizeof(f));
	rw_input(r, f, n, 2 * MS);
	rw_tick(r, 5000 * MS);
	struct rw_stats st;
	rw_get_stats(r, &st);
	CHECK_EQ(st.conns, 1);
	rw_tick(r, 10002 * MS);
	rw_get_stats(r, &st);
	CHECK_EQ(st.conns, 0);
	CHECK_EQ(st.expired, 1);
	rw_free(r);
}

static void test_not_tcp_and_malformed_untouched(void)
{
	struct rw *r = new_rw();
	struct tf u = tf_udp(1, 2, "x", 1);
	n = tf_build(&u, f, sizeof(f));
	CHECK_EQ(rw_input(r, f, n, 0), 0);
	CHECK_EQ(rw_output(r, f, 10, 0), 0);
	struct rw_config cfg;
	rw_config_default(&cfg);
	cfg.max_conns = 0;
	CHECK_EQ(rw_new(&cfg, &r), -EINVAL);
	rw_free(NULL);
	cfg.max_conns = 1;
	struct rw *small;
	REQUIRE(rw_new(&cfg, &small) == 0);
	out(small, from_vm(1, 0, PKT_TCP_SYN, NULL));
	struct tf s2 = from_vm(1, 0, PKT_TCP_SYN, NULL);
	s2.sport = 99;
	out(small, s2);
	struct rw_stats st;
	rw_get_stats(small, &st);
	CHECK_EQ(st.table_full, 1);
	rw_free(small);
	rw_free(r);
}

static const struct test tests[] = {
	TEST(test_passive_open),
	TEST(test_sack_blocks_rewritten),
	TEST(test_active_open),
	TEST(test_go_live_rewrites_output),
	TEST(test_checkpoint_forgets_and_expiry),
	TEST(test_not_tcp_and_malformed_untouched),
	{ 0 },
};
TEST_MAIN(tests)
