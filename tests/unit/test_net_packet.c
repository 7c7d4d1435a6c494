/* Unit tests of the frame parser (net/packet.c): every class, every parse error of
 * docs/net.md §3.2, padding, options, fragments, extension headers, checksums, and
 * every truncation of valid frames. Writes the fuzz seeds with COLO_WRITE_SEEDS=dir
 * (fuzz/corpus/fuzz_net_packet). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/packet.h"
#include "tests/harness/test.h"
#include "tests/unit/test_net_frames.h"

static uint8_t buf[4096];

static size_t build(const struct tf *t)
{
	size_t n = tf_build(t, buf, sizeof(buf));
	REQUIRE(n > 0);
	return n;
}

static void test_tcp4_fields(void)
{
	struct tf t = tf_tcp(1000, 2000, PKT_TCP_ACK | PKT_TCP_PSH, "hello", 5);
	t.ts = true;
	t.tsval = 77;
	t.tsecr = 88;
	size_t n = build(&t);
	struct pkt p;
	CHECK_EQ(pkt_parse(buf, n, PKT_PARSE_CSUM, &p), PKT_TCP);
	CHECK_EQ(p.err, PKT_OK);
	CHECK_EQ(p.family, 4);
	CHECK_EQ(p.proto, 6);
	CHECK_EQ(p.sport, 7);
	CHECK_EQ(p.dport, 40000);
	CHECK_EQ(p.seq, 1000);
	CHECK_EQ(p.ack, 2000);
	CHECK_EQ(p.tcp_flags, PKT_TCP_ACK | PKT_TCP_PSH);
	CHECK(p.flags & PKT_F_TCP_TS);
	CHECK_EQ(p.tsval, 77);
	CHECK_EQ(p.tsecr, 88);
	CHECK(!(p.flags & PKT_F_BAD_CSUM));
	CHECK_EQ(p.data_len, 5);
	CHECK(!memcmp(buf + p.data_off, "hello", 5));
	CHECK_EQ(p.src[3], 10);
	CHECK_EQ(p.dst[3], 1);
}

static void test_tcp6_and_udp6(void)
{
	struct tf t = tf_tcp(5, 6, PKT_TCP_SYN, NULL, 0);
	t.family = 6;
	tf_addr(&t, 10, 1);
	size_t n = build(&t);
	struct pkt p;
	CHECK_EQ(pkt_parse(buf, n, PKT_PARSE_CSUM, &p), PKT_TCP);
	CHECK_EQ(p.family, 6);
	CHECK_EQ(p.src[15], 10);
	CHECK(!(p.flags & PKT_F_BAD_CSUM));
	struct tf u = tf_udp(53, 1234, "abc", 3);
	u.family = 6;
	tf_addr(&u, 10, 1);
	n = build(&u);
	CHECK_EQ(pkt_parse(buf, n, PKT_PARSE_CSUM, &p), PKT_UDP);
	CHECK_EQ(p.data_len, 3);
	CHECK(!(p.flags & PKT_F_BAD_CSUM));
}

static void test_vlan_tags(void)
{
	struct tf t = tf_udp(1, 2, "x", 1);
	t.nvlan = 1;
	t.vlan[0] = 0x2064; /* priority bits set: only the VID counts */
	size_t n = build(&t);
	struct pkt p;
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_UDP);
	CHECK_EQ(p.nvlan, 1);
	CHECK_EQ(p.vlan[0], 0x064);
	t.nvlan = 2;
	t.vlan[1] = 7;
	n = build(&t);
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_UDP);
	CHECK_EQ(p.nvlan, 2);
	CHECK_EQ(p.vlan[1], 7);
	/* A third tag is one too many. */
	memmove(buf + 16, buf + 12, n - 12);
	tf_patch16(buf + 12, 0x8100);
	tf_patch16(buf + 14, 9);
	CHECK_EQ(pkt_parse(buf, n + 4, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_VLAN_DEPTH);
	CHECK_EQ(pkt_parse(buf, 15, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_VLAN_TRUNC);
}

static void test_pass_classes(void)
{
	struct tf t = { .family = 0 };
	size_t n = build(&t);
	struct pkt p;
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_PASS); /* ARP */
	tf_patch16(buf + 12, 0x0100);                  /* 802.3 length field */
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_PASS);
	struct tf ig = tf_udp(0, 0, "12345678", 8);
	ig.proto = 2; /* IGMP */
	n = build(&ig);
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_PASS);
	struct tf ns = { .family = 6, .proto = 58, .icmp_type = 135, .ttl = 255 };
	tf_addr(&ns, 10, 1);
	n = build(&ns);
	CHECK_EQ(pkt_parse(buf, n, PKT_PARSE_CSUM, &p), PKT_PASS);
	ns.icmp_type = 128; /* echo request is compared */
	ns.icmp_id = 99;
	n = build(&ns);
	CHECK_EQ(pkt_parse(buf, n, PKT_PARSE_CSUM, &p), PKT_ICMP);
	CHECK_EQ(p.sport, 99);
	CHECK(!(p.flags & PKT_F_BAD_CSUM));
}

static void test_runt(void)
{
	struct pkt p;
	CHECK_EQ(pkt_parse(buf, 0, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_ETH_RUNT);
	CHECK_EQ(pkt_parse(NULL, 0, 0, &p), PKT_RAW);
	CHECK_EQ(pkt_parse(buf, 13, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_ETH_RUNT);
	CHECK_EQ(p.data_len, 13); /* RAW compares the whole frame */
}

static void test_ethernet_padding_is_trimmed(void)
{
	struct tf t = tf_tcp(1, 2, PKT_TCP_ACK, "ab", 2);
	size_t n = build(&t);
	memset(buf + n, 0xee, 64);
	struct pkt p;
	CHECK_EQ(pkt_parse(buf, 60 + 8, PKT_PARSE_CSUM, &p), PKT_TCP);
	CHECK(p.flags & PKT_F_TRIMMED);
	CHECK_EQ(p.data_len, 2);
	CHECK(!(p.flags & PKT_F_BAD_CSUM));
	struct tf u = tf_udp(1, 2, "abcd", 4);
	n = build(&u);
	tf_patch16(buf + 14 + 20 + 4, 8 + 2); /* UDP length shorter than the IP payload */
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_UDP);
	CHECK_EQ(p.data_len, 2);
	CHECK(p.flags & PKT_F_TRIMMED);
}

static void test_ip4_options(void)
{
	struct tf t = tf_tcp(1, 2, PKT_TCP_ACK, "xyz", 3);
	size_t n = build(&t);
	/* Insert 4 octets of options (NOP x4) after the fixed header. */
	memmove(buf + 38, buf + 34, n - 34);
	memset(buf + 34, 1, 4);
	buf[14] = 0x46;
	tf_patch16(buf + 16, (uint16_t)(n + 4 - 14));
	struct pkt p;
	CHECK_EQ(pkt_parse(buf, n + 4, 0, &p), PKT_TCP);
	CHECK(p.flags & PKT_F_IP_OPTIONS);
	CHECK_EQ(p.sport, 7);
	CHECK_EQ(p.data_len, 3);
}

static void test_ip4_lying_lengths(void)
{
	struct tf t = tf_tcp(1, 2, PKT_TCP_ACK, "xyz", 3);
	size_t n = build(&t);
	struct pkt p;
	tf_patch16(buf + 16, (uint16_t)(n - 14 + 1)); /* one more than the frame */
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_IP4_LEN);
	tf_patch16(buf + 16, 19);
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_IP4_LEN);
	tf_patch16(buf + 16, (uint16_t)(n - 14));
	buf[14] = 0x44;
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_IP4_IHL);
	buf[14] = 0x4f; /* 60 octets of header: more than the datagram */
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK(p.err == PKT_E_IP4_LEN || p.err == PKT_E_IP4_IHL);
	buf[14] = 0x55;
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_IP4_VERSION);
}

static void test_tcp_udp_lying_lengths(void)
{
	struct tf t = tf_tcp(1, 2, PKT_TCP_ACK, "xyz", 3);
	size_t n = build(&t);
	struct pkt p;
	buf[34 + 12] = 0x40; /* data offset 4 words */
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_TCP_DOFF);
	buf[34 + 12] = 0xf0; /* 60 octets: past the segment */
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_TCP_DOFF);
	struct tf u = tf_udp(1, 2, "abcd", 4);
	n = build(&u);
	tf_patch16(buf + 38, 13); /* more than the IP payload */
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_UDP_LEN);
	tf_patch16(buf + 38, 7);
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_UDP_LEN);
}

/* Every prefix of valid frames parses without reading past it. */
static void test_every_truncation(void)
{
	struct tf frames[4];
	frames[0] = tf_tcp(1, 2, PKT_TCP_ACK, "payload", 7);
	frames[0].ts = true;
	frames[1] = tf_udp(5, 6, "dgram", 5);
	frames[1].family = 6;
	tf_addr(&frames[1], 1, 2);
	frames[2] = frames[0];
	frames[2].nvlan = 2;
	frames[3] = (struct tf){ .family = 4, .proto = 1, .icmp_type = 8, .ttl = 1 };
	for (int f = 0; f < 4; f++) {
		size_t n = build(&frames[f]);
		struct pkt p;
		enum pkt_class full = pkt_parse(buf, n, PKT_PARSE_CSUM, &p);
		CHECK(full != PKT_RAW);
		for (size_t k = 0; k < n; k++) {
			uint8_t *cut = malloc(k ? k : 1);
			REQUIRE(cut);
			memcpy(cut, buf, k);
			CHECK_EQ(pkt_parse(cut, k, PKT_PARSE_CSUM, &p), PKT_RAW);
			CHECK(p.err != PKT_OK);
			CHECK_EQ(p.data_len, k);
			free(cut);
		}
	}
}

static void test_bad_checksums_are_counted_not_fatal(void)
{
	struct tf t = tf_tcp(1, 2, PKT_TCP_ACK, "data", 4);
	size_t n = build(&t);
	buf[n - 1] ^= 0x55;
	struct pkt p;
	struct pkt_counters c = { 0 };
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_TCP); /* not verified unless asked */
	CHECK(!(p.flags & PKT_F_BAD_CSUM));
	CHECK_EQ(pkt_parse(buf, n, PKT_PARSE_CSUM, &p), PKT_TCP);
	CHECK(p.flags & PKT_F_BAD_CSUM);
	pkt_count(&c, &p);
	CHECK_EQ(c.bad_checksum, 1);
	CHECK_EQ(c.by_class[PKT_TCP], 1);
	n = build(&t);
	buf[14 + 8] ^= 1; /* TTL: only the IPv4 header checksum breaks */
	CHECK_EQ(pkt_parse(buf, n, PKT_PARSE_CSUM, &p), PKT_TCP);
	CHECK(p.flags & PKT_F_BAD_CSUM);
}

static void test_tcp_bad_options_still_tcp(void)
{
	struct tf t = tf_tcp(1, 2, PKT_TCP_ACK, "d", 1);
	t.ts = true;
	size_t n = build(&t);
	buf[34 + 20 + 3] = 1; /* timestamp option length 1 */
	struct pkt p;
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_TCP);
	CHECK(p.flags & PKT_F_TCP_BADOPT);
	CHECK_EQ(p.data_len, 1);
	buf[34 + 20 + 3] = 40; /* past the header */
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_TCP);
	CHECK(p.flags & PKT_F_TCP_BADOPT);
	/* A SACK option with two blocks. */
	buf[34 + 20] = 1;
	buf[34 + 21] = 1;
	buf[34 + 22] = 5;
	buf[34 + 23] = 10;
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_TCP);
	CHECK_EQ(p.nsack, 1);
	CHECK_EQ(p.sack_off, 34 + 24);
}

static void test_ip4_fragments(void)
{
	struct tf t = tf_udp(1, 2, "fragment", 8);
	size_t n = build(&t);
	struct pkt p;
	tf_patch16(buf + 20, 0x2000); /* MF, offset 0 */
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_FRAG);
	CHECK(p.frag_more);
	CHECK_EQ(p.frag_off, 0);
	CHECK_EQ(p.data_len, 16); /* the UDP header is payload of the fragment */
	tf_patch16(buf + 20, 0x0003);
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_FRAG);
	CHECK(!p.frag_more);
	CHECK_EQ(p.frag_off, 24);
	tf_patch16(buf + 20, 0x4000); /* DF only: not a fragment */
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_UDP);
}

/* Insert an IPv6 extension header of `len` octets with type `type` after the fixed
 * header of the IPv6 frame in buf (length n). */
static size_t ip6_insert_ext(size_t n, uint8_t type, const uint8_t *ext, size_t len)
{
	size_t l3 = 14, at = l3 + 40;
	memmove(buf + at + len, buf + at, n - at);
	memcpy(buf + at, ext, len);
	buf[at] = buf[l3 + 6]; /* the new header's next header is the old one */
	buf[l3 + 6] = type;
	uint16_t plen = (uint16_t)(buf[l3 + 4] << 8 | buf[l3 + 5]);
	tf_patch16(buf + l3 + 4, (uint16_t)(plen + len));
	return n + len;
}

static void test_ip6_extension_headers(void)
{
	struct tf t = tf_tcp(1, 2, PKT_TCP_ACK, "v6", 2);
	t.family = 6;
	tf_addr(&t, 1, 2);
	size_t n = build(&t);
	uint8_t opts[8] = { 0, 0, 1, 4, 0, 0, 0, 0 };
	n = ip6_insert_ext(n, 60, opts, 8);
	n = ip6_insert_ext(n, 0, opts, 8);
	struct pkt p;
	CHECK_EQ(pkt_parse(buf, n, PKT_PARSE_CSUM, &p), PKT_TCP);
	CHECK_EQ(p.l4_off, 14 + 40 + 16);
	CHECK(!(p.flags & PKT_F_BAD_CSUM));
	CHECK_EQ(p.data_len, 2);
	for (int i = 0; i < 7; i++)
		n = ip6_insert_ext(n, 60, opts, 8);
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_IP6_EXT_LIMIT);
	/* A header claiming more than the payload. */
	n = build(&t);
	uint8_t big[8] = { 0, 200, 0, 0, 0, 0, 0, 0 };
	n = ip6_insert_ext(n, 60, big, 8);
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_IP6_EXT_TRUNC);
}

static void test_ip6_fragments(void)
{
	struct tf t = tf_udp(1, 2, "frag6", 5);
	t.family = 6;
	tf_addr(&t, 1, 2);
	size_t n0 = build(&t);
	uint8_t frag[8] = { 0, 0, 0x00, 0x11, 0xde, 0xad, 0xbe, 0xef }; /* offset 16, M */
	size_t n = ip6_insert_ext(n0, 44, frag, 8);
	struct pkt p;
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_FRAG);
	CHECK_EQ(p.frag_off, 16);
	CHECK(p.frag_more);
	CHECK_EQ(p.frag_id, 0xdeadbeef);
	CHECK_EQ(p.proto, 17);
	n0 = build(&t);
	uint8_t atomic[8] = { 0, 0, 0, 0, 1, 2, 3, 4 };
	n = ip6_insert_ext(n0, 44, atomic, 8);
	CHECK_EQ(pkt_parse(buf, n, PKT_PARSE_CSUM, &p), PKT_UDP);
	CHECK(!(p.flags & PKT_F_BAD_CSUM));
}

static void test_ip6_lying_lengths(void)
{
	struct tf t = tf_udp(1, 2, "x", 1);
	t.family = 6;
	tf_addr(&t, 1, 2);
	size_t n = build(&t);
	struct pkt p;
	tf_patch16(buf + 18, 200);
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_IP6_LEN);
	tf_patch16(buf + 18, 0);
	buf[20] = 0; /* jumbogram */
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_IP6_LEN);
	buf[14] = 0x40;
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_IP6_VERSION);
}

static void test_icmp_and_other_protocols(void)
{
	struct tf e = { .family = 4, .proto = 1, .icmp_type = 3, .icmp_code = 4, .ttl = 64,
			.payload = "quoted-ip-header-with-id", .plen = 24 };
	tf_addr(&e, 1, 2);
	size_t n = build(&e);
	struct pkt p;
	CHECK_EQ(pkt_parse(buf, n, PKT_PARSE_CSUM, &p), PKT_ICMP);
	CHECK_EQ(p.data_len, 4); /* only the MTU/pointer word of an error */
	CHECK(!(p.flags & PKT_F_BAD_CSUM));
	e.icmp_type = 8;
	e.icmp_id = 0x1234;
	n = build(&e);
	CHECK_EQ(pkt_parse(buf, n, PKT_PARSE_CSUM, &p), PKT_ICMP);
	CHECK_EQ(p.sport, 0x1234);
	CHECK_EQ(p.data_len, 4 + 24);
	CHECK_EQ(pkt_parse(buf, 14 + 20 + 3, 0, &p), PKT_RAW); /* lengths lie too */
	buf[17] = 20 + 6;                                       /* total length: 6 octets of ICMP */
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_RAW);
	CHECK_EQ(p.err, PKT_E_ICMP_TRUNC);
	struct tf o = tf_udp(1, 2, "gre-ish", 7);
	o.proto = 47;
	n = build(&o);
	CHECK_EQ(pkt_parse(buf, n, 0, &p), PKT_IP_OTHER);
	CHECK_EQ(p.data_len, 7);
	CHECK_EQ(p.proto, 47);
}

static void test_names(void)
{
	for (int i = 0; i < PKT_CLASS__COUNT; i++)
		CHECK(strcmp(pkt_class_name(i), "?") != 0);
	for (int i = 0; i < PKT_E__COUNT; i++)
		CHECK(strcmp(pkt_err_name(i), "?") != 0);
	CHECK(!strcmp(pkt_err_name(PKT_E__COUNT), "?"));
}

/* Every seed parses to a compared or passed class; with a dir, it is written. */
static void write_seed(const char *dir, const char *name, size_t n)
{
	struct pkt p;
	CHECK(pkt_parse(buf, n, PKT_PARSE_CSUM, &p) != PKT_RAW);
	CHECK(!(p.flags & PKT_F_BAD_CSUM));
	if (!dir)
		return;
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	REQUIRE(f);
	fwrite(buf, 1, n, f);
	fclose(f);
}

/* The fuzz seeds, one frame per class; COLO_WRITE_SEEDS=fuzz/corpus/fuzz_net_packet
 * writes them. */
static void test_fuzz_seeds(void)
{
	const char *dir = getenv("COLO_WRITE_SEEDS");
	struct tf t = tf_tcp(1, 2, PKT_TCP_ACK, "hello", 5);
	t.ts = true;
	write_seed(dir, "tcp4-ts", build(&t));
	t.family = 6;
	t.nvlan = 2;
	t.vlan[0] = 5;
	tf_addr(&t, 1, 2);
	write_seed(dir, "tcp6-qinq", build(&t));
	struct tf u = tf_udp(1, 2, "udp", 3);
	write_seed(dir, "udp4", build(&u));
	u.family = 6;
	tf_addr(&u, 1, 2);
	size_t n = build(&u);
	uint8_t frag[8] = { 0, 0, 0, 0x11, 1, 2, 3, 4 };
	write_seed(dir, "udp6-frag", ip6_insert_ext(n, 44, frag, 8));
	struct tf i = { .family = 4, .proto = 1, .icmp_type = 8, .ttl = 1, .payload = "p", .plen = 1 };
	write_seed(dir, "icmp4-echo", build(&i));
	struct tf a = { .family = 0 };
	write_seed(dir, "arp", build(&a));
}

static const struct test tests[] = {
	TEST(test_tcp4_fields),
	TEST(test_tcp6_and_udp6),
	TEST(test_vlan_tags),
	TEST(test_pass_classes),
	TEST(test_runt),
	TEST(test_ethernet_padding_is_trimmed),
	TEST(test_ip4_options),
	TEST(test_ip4_lying_lengths),
	TEST(test_tcp_udp_lying_lengths),
	TEST(test_every_truncation),
	TEST(test_bad_checksums_are_counted_not_fatal),
	TEST(test_tcp_bad_options_still_tcp),
	TEST(test_ip4_fragments),
	TEST(test_ip6_extension_headers),
	TEST(test_ip6_fragments),
	TEST(test_ip6_lying_lengths),
	TEST(test_icmp_and_other_protocols),
	TEST(test_names),
	TEST(test_fuzz_seeds),
	{ 0 },
};
TEST_MAIN(tests)
