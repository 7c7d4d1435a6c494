/* test_net_frames.h - builds Ethernet frames (VLAN, IPv4/IPv6, TCP/UDP/ICMP) with
 * correct checksums, for the net/ unit tests, the comparator bench and fuzz seeds.
 * Header-only: each user includes it once. */
#ifndef COLO_TEST_NET_FRAMES_H
#define COLO_TEST_NET_FRAMES_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "lib/wire.h"
#include "net/packet.h"

struct tf {
	int family; /* 4 or 6; 0: ARP */
	int nvlan;
	uint16_t vlan[2];
	uint8_t src[16], dst[16];
	uint8_t proto; /* 6, 17, 1 / 58, or anything */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t win;
	bool ts;
	uint32_t tsval, tsecr;
	uint16_t ip_id;
	uint8_t ttl;
	uint8_t icmp_type, icmp_code;
	uint16_t icmp_id, icmp_seq;
	const void *payload;
	size_t plen;
};

/* 10.0.0.<a> / fd00::<a> */
static inline void tf_addr(struct tf *t, uint8_t src, uint8_t dst)
{
	memset(t->src, 0, 16);
	memset(t->dst, 0, 16);
	if (t->family == 6) {
		t->src[0] = t->dst[0] = 0xfd;
		t->src[15] = src;
		t->dst[15] = dst;
	} else {
		t->src[0] = t->dst[0] = 10;
		t->src[3] = src;
		t->dst[3] = dst;
	}
}

static inline struct tf tf_tcp(uint32_t seq, uint32_t ack, uint8_t flags, const void *p, size_t n)
{
	struct tf t = { .family = 4, .proto = 6, .sport = 7, .dport = 40000, .seq = seq,
			.ack = ack, .flags = flags, .win = 502, .ttl = 64, .payload = p, .plen = n };
	tf_addr(&t, 10, 1);
	return t;
}

static inline struct tf tf_udp(uint16_t sport, uint16_t dport, const void *p, size_t n)
{
	struct tf t = { .family = 4, .proto = 17, .sport = sport, .dport = dport, .ttl = 64,
			.payload = p, .plen = n };
	tf_addr(&t, 10, 1);
	return t;
}

static inline void tf_patch16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void tf_l4(const struct tf *t, struct wr *w)
{
	if (t->proto == 6) {
		size_t opt = t->ts ? 12 : 0;
		wr_be16(w, t->sport);
		wr_be16(w, t->dport);
		wr_be32(w, t->seq);
		wr_be32(w, t->ack);
		wr_be16(w, (uint16_t)(((20 + opt) / 4) << 12 | t->flags));
		wr_be16(w, t->win);
		wr_be32(w, 0); /* checksum, urgent */
		if (t->ts) {
			wr_be16(w, 0x0101);
			wr_be16(w, 0x080a);
			wr_be32(w, t->tsval);
			wr_be32(w, t->tsecr);
		}
	} else if (t->proto == 17) {
		wr_be16(w, t->sport);
		wr_be16(w, t->dport);
		wr_be16(w, (uint16_t)(8 + t->plen));
		wr_be16(w, 0);
	} else if (t->proto == 1 || t->proto == 58) {
		wr_u8(w, t->icmp_type);
		wr_u8(w, t->icmp_code);
		wr_be16(w, 0);
		wr_be16(w, t->icmp_id);
		wr_be16(w, t->icmp_seq);
	}
	wr_bytes(w, t->payload, t->plen);
}

static inline void tf_csum(const struct tf *t, uint8_t *f, size_t l3, size_t l4, size_t end)
{
	size_t alen = t->family == 4 ? 4 : 16, n = end - l4;
	if (t->family == 4) {
		uint32_t s = pkt_csum_add(0, f + l3, l4 - l3);
		tf_patch16(f + l3 + 10, (uint16_t)~pkt_csum_fold(s));
	}
	size_t at = t->proto == 6 ? 16 : t->proto == 17 ? 6 : 2;
	if (t->proto != 6 && t->proto != 17 && t->proto != 1 && t->proto != 58)
		return;
	uint32_t s = 0;
	if (t->proto != 1) {
		s = pkt_csum_add(s, t->src, alen);
		s = pkt_csum_add(s, t->dst, alen);
		s += t->proto + (uint32_t)n;
	}
	s = pkt_csum_add(s, f + l4, n);
	uint16_t c = (uint16_t)~pkt_csum_fold(s);
	tf_patch16(f + l4 + at, t->proto == 17 && c == 0 ? 0xffff : c);
}

/* Writes the frame into out (cap octets); returns its length, 0 if it does not fit. */
static inline size_t tf_build(const struct tf *t, uint8_t *out, size_t cap)
{
	static const uint8_t mac_dst[6] = { 0x52, 0x54, 0, 0, 0, 1 };
	static const uint8_t mac_src[6] = { 0x52, 0x54, 0, 0xc0, 0x10, 0x10 };
	struct wr w;
	wr_init_fixed(&w, out, cap);
	wr_bytes(&w, mac_dst, 6);
	wr_bytes(&w, mac_src, 6);
	for (int i = 0; i < t->nvlan; i++) {
		wr_be16(&w, i == 0 && t->nvlan == 2 ? 0x88a8 : 0x8100);
		wr_be16(&w, t->vlan[i]);
	}
	if (t->family == 0) { /* ARP request */
		wr_be16(&w, 0x0806);
		wr_be32(&w, 0x00010800);
		wr_be32(&w, 0x06040001);
		wr_zeros(&w, 20);
		return w.err ? 0 : w.len;
	}
	wr_be16(&w, t->family == 4 ? 0x0800 : 0x86dd);
	size_t l3 = w.len;
	if (t->family == 4) {
		wr_be16(&w, 0x4500);
		wr_be16(&w, 0); /* total length, patched */
		wr_be16(&w, t->ip_id);
		wr_be16(&w, 0x4000);
		wr_u8(&w, t->ttl);
		wr_u8(&w, t->proto);
		wr_be16(&w, 0);
		wr_bytes(&w, t->src, 4);
		wr_bytes(&w, t->dst, 4);
	} else {
		wr_be32(&w, 0x60000000u | t->ip_id); /* flow label from ip_id */
		wr_be16(&w, 0);
		wr_u8(&w, t->proto);
		wr_u8(&w, t->ttl);
		wr_bytes(&w, t->src, 16);
		wr_bytes(&w, t->dst, 16);
	}
	size_t l4 = w.len;
	tf_l4(t, &w);
	if (w.err)
		return 0;
	if (t->family == 4)
		tf_patch16(out + l3 + 2, (uint16_t)(w.len - l3));
	else
		tf_patch16(out + l3 + 4, (uint16_t)(w.len - l4));
	tf_csum(t, out, l3, l4, w.len);
	return w.len;
}

#endif
