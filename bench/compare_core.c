/* compare_core.c - the comparator core alone on synthetic traces, one core, no
 * kernel (docs/net.md §7). Target: >= 1 million primary frames/s.
 *
 * Trace: 256 TCP connections (VM -> client) where the primary sends 256-octet
 * segments and the secondary 512-octet ones (different segmentation, so every
 * other primary segment waits for the secondary), pure ACKs from both sides at
 * different rates, 32 UDP flows of 128-octet datagrams, an ARP every 1024 frames,
 * and a checkpoint (begin + commit) every 100,000 primary frames. Frames are
 * built once; only sequence numbers are patched per emission.
 *
 * Usage: build/bench/compare_core [primary-frames (default 5000000)]
 * Prints one line per measurement: "compare_core: <what> <value> <unit>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/compare.h"
#include "tests/unit/test_net_frames.h"

#define NTCP 256
#define NUDP 32
#define SEG 256
#define TCP_OFF 34 /* Ethernet + IPv4: where the TCP header starts */

struct bench {
	struct cmp *c;
	uint64_t accepted, dropped, requests, now, gen, id;
	uint8_t p_seg[NTCP][14 + 20 + 20 + SEG], s_seg[NTCP][14 + 20 + 20 + 2 * SEG];
	uint8_t p_ack[NTCP][54], s_ack[NTCP][54], udp[NUDP][14 + 20 + 8 + 128], arp[42];
	size_t p_seg_n, s_seg_n, ack_n, udp_n, arp_n;
	uint32_t seq[NTCP];
};

static void on_verdict(void *arg, uint64_t id, enum cmp_verdict v)
{
	struct bench *b = arg;
	if (v == CMP_ACCEPT)
		b->accepted++;
	else
		b->dropped++;
}

static void on_ckpt(void *arg, enum cmp_reason why)
{
	((struct bench *)arg)->requests++;
}

static uint64_t clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void build_templates(struct bench *b)
{
	static uint8_t pay[2 * SEG];
	for (size_t i = 0; i < sizeof(pay); i++)
		pay[i] = (uint8_t)i; /* period 256: every segment starting at k*256 is the same */
	for (int f = 0; f < NTCP; f++) {
		struct tf t = tf_tcp(0, 1, PKT_TCP_ACK | PKT_TCP_PSH, pay, SEG);
		t.sport = (uint16_t)(1000 + f);
		t.ts = false;
		b->p_seg_n = tf_build(&t, b->p_seg[f], sizeof(b->p_seg[f]));
		t.plen = 2 * SEG;
		b->s_seg_n = tf_build(&t, b->s_seg[f], sizeof(b->s_seg[f]));
		t.plen = 0;
		t.flags = PKT_TCP_ACK;
		b->ack_n = tf_build(&t, b->p_ack[f], sizeof(b->p_ack[f]));
		tf_build(&t, b->s_ack[f], sizeof(b->s_ack[f]));
		b->seq[f] = 1;
	}
	for (int u = 0; u < NUDP; u++) {
		struct tf t = tf_udp((uint16_t)(2000 + u), 53, pay, 128);
		b->udp_n = tf_build(&t, b->udp[u], sizeof(b->udp[u]));
	}
	struct tf a = { .family = 0 };
	b->arp_n = tf_build(&a, b->arp, sizeof(b->arp));
}

/* One round of connection f: two primary segments and one secondary segment
 * covering both, acks; returns the primary frames sent. */
static unsigned tcp_round(struct bench *b, int f)
{
	uint32_t s = b->seq[f];
	put32(b->p_seg[f] + TCP_OFF + 4, s);
	cmp_primary(b->c, ++b->id, b->p_seg[f], b->p_seg_n, b->now);
	put32(b->p_seg[f] + TCP_OFF + 4, s + SEG);
	cmp_primary(b->c, ++b->id, b->p_seg[f], b->p_seg_n, b->now);
	put32(b->s_seg[f] + TCP_OFF + 4, s);
	cmp_secondary(b->c, b->gen, b->s_seg[f], b->s_seg_n, b->now);
	cmp_secondary(b->c, b->gen, b->s_ack[f], b->ack_n, b->now);
	put32(b->p_ack[f] + TCP_OFF + 4, s + 2 * SEG);
	cmp_primary(b->c, ++b->id, b->p_ack[f], b->ack_n, b->now);
	b->seq[f] = s + 2 * SEG;
	return 3;
}

static unsigned udp_round(struct bench *b, int u)
{
	cmp_secondary(b->c, b->gen, b->udp[u], b->udp_n, b->now);
	cmp_primary(b->c, ++b->id, b->udp[u], b->udp_n, b->now);
	return 1;
}

static void checkpoint(struct bench *b)
{
	b->gen++;
	cmp_checkpoint_begin(b->c, b->gen, b->now);
	cmp_checkpoint_commit(b->c, b->gen, b->now);
	cmp_secondary_gen(b->c, b->gen, b->now);
}

static uint64_t run(struct bench *b, uint64_t frames)
{
	uint64_t sent = 0, next_ckpt = 100000, round = 0;
	while (sent < frames) {
		sent += tcp_round(b, (int)(round % NTCP));
		sent += udp_round(b, (int)(round % NUDP));
		if (++round % 256 == 0) {
			cmp_primary(b->c, ++b->id, b->arp, b->arp_n, b->now);
			sent++;
		}
		b->now += 1000; /* 1 us of simulated time per round */
		if (sent >= next_ckpt) {
			checkpoint(b);
			next_ckpt += 100000;
		}
	}
	return sent;
}

int main(int argc, char **argv)
{
	uint64_t frames = argc > 1 ? strtoull(argv[1], NULL, 10) : 5000000;
	static struct bench b;
	struct cmp_config cfg;
	struct cmp_ops ops = { on_verdict, on_ckpt };
	cmp_config_default(&cfg);
	if (cmp_new(&cfg, &ops, &b, &b.c) < 0) {
		fprintf(stderr, "compare_core: cmp_new failed\n");
		return 1;
	}
	build_templates(&b);
	b.now = 1000000000ull;
	checkpoint(&b);
	uint64_t t0 = clock_ns();
	uint64_t sent = run(&b, frames);
	uint64_t dt = clock_ns() - t0;
	struct cmp_stats st;
	cmp_get_stats(b.c, &st);
	double secs = (double)dt / 1e9;
	printf("compare_core: primary_frames %llu\n", (unsigned long long)sent);
	printf("compare_core: primary_rate %.0f frames/s\n", (double)sent / secs);
	printf("compare_core: all_frames_rate %.0f frames/s (primary + secondary)\n",
	       (double)(sent + st.secondary_frames) / secs);
	printf("compare_core: ns_per_primary_frame %.1f\n", (double)dt / (double)sent);
	printf("compare_core: matched %llu released_ckpt %llu passed %llu held %llu "
	       "mismatches %llu requests %llu\n",
	       (unsigned long long)st.matched, (unsigned long long)st.released_ckpt,
	       (unsigned long long)st.passed, (unsigned long long)st.held,
	       (unsigned long long)st.mismatches, (unsigned long long)b.requests);
	cmp_free(b.c);
	return st.mismatches || b.requests || b.dropped ? 1 : 0;
}
