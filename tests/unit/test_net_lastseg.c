/* Unit tests of the secondary's last-segment table (net/lastseg.c), replayed at
 * takeover: one frame per TCP flow, replaced by newer data or a FIN, pure ACKs
 * and non-TCP ignored, SYN/RST forgetting the flow, LRU eviction when full, a
 * checkpoint load forgetting all; and a kept frame rewritten by the rewriter after
 * go-live the way the live path rewrites (nps_replay()). */
#include <errno.h>
#include <string.h>

#include "net/lastseg.h"
#include "net/rewrite.h"
#include "tests/harness/test.h"
#include "tests/unit/test_net_frames.h"

static uint8_t f[2048];
static size_t n;

/* The VM is 10.0.0.10:7; the client 10.0.0.1:<cport>. */
static struct tf from_vm(uint16_t cport, uint32_t seq, uint8_t flags, const char *data)
{
	struct tf t = tf_tcp(seq, 1, flags, data, data ? strlen(data) : 0);
	t.dport = cport;
	return t;
}

static int note(struct lastseg *t, struct tf tf)
{
	n = tf_build(&tf, f, sizeof(f));
	return lastseg_note(t, f, n);
}

/* What lastseg_each() hands out, in order. */
static struct pkt got[16];
static int ngot;

static void collect(void *arg, const uint8_t *frame, size_t len)
{
	(void)arg;
	REQUIRE(ngot < 16);
	REQUIRE(pkt_parse(frame, len, PKT_PARSE_CSUM, &got[ngot]) == PKT_TCP);
	CHECK(!(got[ngot].flags & PKT_F_BAD_CSUM));
	ngot++;
}

static size_t each(struct lastseg *t)
{
	ngot = 0;
	return lastseg_each(t, collect, NULL);
}

static struct lastseg *new_ls(uint32_t max)
{
	struct lastseg *t;
	REQUIRE(lastseg_new(max, &t) == 0);
	return t;
}

static void test_update_and_replace(void)
{
	struct lastseg *t = new_ls(4);
	CHECK_EQ(note(t, from_vm(40000, 100, PKT_TCP_ACK | PKT_TCP_PSH, "one")), 1);
	CHECK_EQ(note(t, from_vm(40000, 103, PKT_TCP_ACK | PKT_TCP_PSH, "two!")), 1);
	/* A pure ACK afterwards keeps the data segment. */
	CHECK_EQ(note(t, from_vm(40000, 107, PKT_TCP_ACK, NULL)), 0);
	CHECK_EQ(each(t), 1);
	CHECK_EQ(got[0].seq, 103);
	CHECK_EQ(got[0].data_len, 4);
	/* The most recent, even a retransmission of older bytes: what the guest sent. */
	CHECK_EQ(note(t, from_vm(40000, 100, PKT_TCP_ACK, "one")), 1);
	CHECK_EQ(each(t), 1);
	CHECK_EQ(got[0].seq, 100);
	struct lastseg_stats st;
	lastseg_get_stats(t, &st);
	CHECK_EQ(st.flows, 1);
	CHECK_EQ(st.noted, 3);
	CHECK_EQ(st.evicted, 0);
	lastseg_free(t);
}

static void test_tcp_only(void)
{
	struct lastseg *t = new_ls(4);
	struct tf u = tf_udp(7, 40000, "datagram", 8);
	CHECK_EQ(note(t, u), 0);
	CHECK_EQ(lastseg_note(t, f, 10), 0); /* a runt */
	struct tf v6 = from_vm(40000, 5, PKT_TCP_ACK, "six");
	v6.family = 6;
	tf_addr(&v6, 10, 1);
	CHECK_EQ(note(t, v6), 1);
	CHECK_EQ(each(t), 1);
	CHECK_EQ(got[0].family, 6);
	lastseg_free(t);
}

static void test_fin_syn_rst(void)
{
	struct lastseg *t = new_ls(4);
	CHECK_EQ(note(t, from_vm(40000, 100, PKT_TCP_ACK, "data")), 1);
	/* A FIN without data replaces it: the client must see the close. */
	CHECK_EQ(note(t, from_vm(40000, 104, PKT_TCP_ACK | PKT_TCP_FIN, NULL)), 1);
	CHECK_EQ(each(t), 1);
	CHECK(got[0].tcp_flags & PKT_TCP_FIN);
	CHECK_EQ(got[0].seq, 104);
	/* An RST forgets the flow: replaying into a dead connection only draws an RST. */
	CHECK_EQ(note(t, from_vm(40000, 105, PKT_TCP_RST, NULL)), 0);
	CHECK_EQ(each(t), 0);
	/* A SYN (SYN-ACK) is a new connection on the same ports: forget the old one. */
	CHECK_EQ(note(t, from_vm(40001, 100, PKT_TCP_ACK, "old")), 1);
	CHECK_EQ(note(t, from_vm(40001, 9000, PKT_TCP_SYN | PKT_TCP_ACK, NULL)), 0);
	CHECK_EQ(each(t), 0);
	struct lastseg_stats st;
	lastseg_get_stats(t, &st);
	CHECK_EQ(st.flows, 0);
	lastseg_free(t);
}

static void test_eviction_lru(void)
{
	struct lastseg *t = new_ls(2);
	CHECK_EQ(note(t, from_vm(1, 10, PKT_TCP_ACK, "a")), 1);
	CHECK_EQ(note(t, from_vm(2, 20, PKT_TCP_ACK, "b")), 1);
	CHECK_EQ(note(t, from_vm(1, 11, PKT_TCP_ACK, "a2")), 1); /* flow 1 is the newer now */
	CHECK_EQ(note(t, from_vm(3, 30, PKT_TCP_ACK, "c")), 1);  /* evicts flow 2 */
	CHECK_EQ(each(t), 2);
	CHECK_EQ(got[0].dport, 1); /* least recently updated first */
	CHECK_EQ(got[0].seq, 11);
	CHECK_EQ(got[1].dport, 3);
	struct lastseg_stats st;
	lastseg_get_stats(t, &st);
	CHECK_EQ(st.flows, 2);
	CHECK_EQ(st.evicted, 1);
	/* A bigger frame into a reused slot. */
	char big[1200];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	CHECK_EQ(note(t, from_vm(4, 40, PKT_TCP_ACK, big)), 1);
	CHECK_EQ(each(t), 2);
	CHECK_EQ(got[1].data_len, sizeof(big) - 1);
	/* A checkpoint load forgets everything. */
	lastseg_clear(t);
	CHECK_EQ(each(t), 0);
	lastseg_get_stats(t, &st);
	CHECK_EQ(st.flows, 0);
	CHECK_EQ(note(t, from_vm(5, 50, PKT_TCP_ACK, "e")), 1);
	CHECK_EQ(each(t), 1);
	lastseg_free(t);
	CHECK_EQ(lastseg_new(0, &t), -EINVAL);
	lastseg_free(NULL);
}

/* What nps_replay() does with a kept frame: the rewriter, after go-live, gives a
 * connection opened since the checkpoint the client's sequence numbers. */
static uint8_t rf[2048];
static size_t rn;
static void keep(void *arg, const uint8_t *frame, size_t len)
{
	(void)arg;
	memcpy(rf, frame, len);
	rn = len;
}

static void test_replayed_frame_rewritten(void)
{
	struct rw_config cfg;
	struct rw *r;
	rw_config_default(&cfg);
	REQUIRE(rw_new(&cfg, &r) == 0);
	struct lastseg *t = new_ls(4);
	/* Passive open: the VM's ISN 5000, the primary's 1000 (offset 4000). */
	struct tf synack = from_vm(40000, 5000, PKT_TCP_SYN | PKT_TCP_ACK, NULL);
	n = tf_build(&synack, f, sizeof(f));
	rw_output(r, f, n, 0);
	CHECK_EQ(lastseg_note(t, f, n), 0);
	struct tf ack = tf_tcp(1, 1001, PKT_TCP_ACK, NULL, 0);
	ack.sport = 40000;
	ack.dport = 7;
	tf_addr(&ack, 1, 10);
	n = tf_build(&ack, f, sizeof(f));
	rw_input(r, f, n, 0);
	/* Protected: the captured reply is left alone and kept as it is. */
	struct tf reply = from_vm(40000, 5001, PKT_TCP_ACK | PKT_TCP_PSH, "reply");
	n = tf_build(&reply, f, sizeof(f));
	CHECK_EQ(rw_output(r, f, n, 0), 0);
	CHECK_EQ(lastseg_note(t, f, n), 1);
	rw_go_live(r);
	CHECK_EQ(lastseg_each(t, keep, NULL), 1);
	CHECK_EQ(rw_output(r, rf, rn, 0), 1);
	struct pkt p;
	REQUIRE(pkt_parse(rf, rn, PKT_PARSE_CSUM, &p) == PKT_TCP);
	CHECK(!(p.flags & PKT_F_BAD_CSUM));
	CHECK_EQ(p.seq, 1001);
	CHECK(!memcmp(rf + p.data_off, "reply", 5));
	lastseg_free(t);
	rw_free(r);
}

static const struct test tests[] = {
	TEST(test_update_and_replace),
	TEST(test_tcp_only),
	TEST(test_fin_syn_rst),
	TEST(test_eviction_lru),
	TEST(test_replayed_frame_rewritten),
	{ 0 },
};
TEST_MAIN(tests)
