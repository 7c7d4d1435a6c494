/* packet.h - the frame parser of the comparator and the rewriter (docs/net.md §3).
 *
 * pkt_parse() reads an Ethernet frame through lib/wire cursors and classifies it.
 * It never fails and never reads outside frame[0..len): a frame it cannot make
 * sense of is class PKT_RAW with the reason in pkt.err. Offsets in struct pkt are
 * into the frame; the parser keeps no pointer into it and no state.
 */
#ifndef COLO_NET_PACKET_H
#define COLO_NET_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pkt_class {
	PKT_PASS,     /* not compared: non-IP, ARP, IGMP, ND/MLD */
	PKT_TCP,
	PKT_UDP,
	PKT_ICMP,     /* ICMP or ICMPv6 */
	PKT_IP_OTHER, /* any other upper-layer protocol */
	PKT_FRAG,     /* an IP fragment */
	PKT_RAW,      /* parse error: compared byte for byte */
	PKT_CLASS__COUNT
};

/* Why a frame is PKT_RAW (docs/net.md §3.2). Append only. */
enum pkt_err {
	PKT_OK,
	PKT_E_ETH_RUNT,
	PKT_E_VLAN_TRUNC,
	PKT_E_VLAN_DEPTH,
	PKT_E_IP4_TRUNC,
	PKT_E_IP4_VERSION,
	PKT_E_IP4_IHL,
	PKT_E_IP4_LEN,
	PKT_E_IP6_TRUNC,
	PKT_E_IP6_VERSION,
	PKT_E_IP6_LEN,
	PKT_E_IP6_EXT_TRUNC,
	PKT_E_IP6_EXT_LIMIT,
	PKT_E_TCP_TRUNC,
	PKT_E_TCP_DOFF,
	PKT_E_UDP_TRUNC,
	PKT_E_UDP_LEN,
	PKT_E_ICMP_TRUNC,
	PKT_E__COUNT
};

#define PKT_MAX_VLAN 2
#define PKT_MAX_IP6_EXT 8
#define PKT_MAX_SACK 4

/* pkt_parse flags */
#define PKT_PARSE_CSUM 1u /* verify checksums (sets PKT_F_BAD_CSUM) */

/* pkt.flags */
#define PKT_F_BAD_CSUM 1u    /* a checksum is wrong (only with PKT_PARSE_CSUM) */
#define PKT_F_TCP_BADOPT 2u  /* malformed TCP option list (options are ignored) */
#define PKT_F_TCP_TS 4u      /* tsval/tsecr are valid */
#define PKT_F_TRIMMED 8u     /* trailing octets past the datagram were ignored */
#define PKT_F_IP_OPTIONS 16u /* IPv4 options present (skipped) */

/* TCP flags */
#define PKT_TCP_FIN 0x01
#define PKT_TCP_SYN 0x02
#define PKT_TCP_RST 0x04
#define PKT_TCP_PSH 0x08
#define PKT_TCP_ACK 0x10
#define PKT_TCP_URG 0x20

struct pkt {
	enum pkt_class cls;
	enum pkt_err err;
	uint32_t flags;
	uint16_t ethertype; /* after the VLAN tags */
	uint8_t nvlan;
	uint16_t vlan[PKT_MAX_VLAN]; /* VIDs, outer first */
	uint8_t family;              /* 4, 6, or 0 (not IP) */
	uint8_t proto;               /* upper-layer protocol (IP) */
	uint8_t src[16], dst[16];    /* IPv4 in the first 4 octets, rest zero */
	uint16_t sport, dport;       /* TCP/UDP ports; ICMP echo: sport = identifier */
	size_t l3_off;               /* IP header */
	size_t l4_off;               /* upper-layer header (or fragment payload) */
	size_t end;                  /* end of the IP datagram (<= frame length) */
	/* Fragments. */
	uint32_t frag_id;
	uint16_t frag_off; /* in octets */
	bool frag_more;
	/* TCP */
	uint32_t seq, ack;
	uint8_t tcp_flags;
	uint16_t window;
	uint32_t tsval, tsecr;
	uint8_t nsack;
	size_t sack_off; /* first SACK block (8 octets each) */
	/* ICMP */
	uint8_t icmp_type, icmp_code;
	/* What the comparator compares for this class besides the fields above
	 * (docs/net.md §4.4): frame[data_off .. data_off + data_len). */
	size_t data_off, data_len;
};

/* Parse frame[0..len). Returns pkt->cls. */
enum pkt_class pkt_parse(const uint8_t *frame, size_t len, unsigned flags, struct pkt *pkt);

/* Per-side counters, kept by whoever parses. */
struct pkt_counters {
	uint64_t frames;
	uint64_t by_class[PKT_CLASS__COUNT];
	uint64_t by_err[PKT_E__COUNT];
	uint64_t bad_checksum;
	uint64_t tcp_bad_options;
	uint64_t ip_options;
};
void pkt_count(struct pkt_counters *c, const struct pkt *pkt);

const char *pkt_class_name(enum pkt_class c);
const char *pkt_err_name(enum pkt_err e); /* "eth-runt", ...; "?" if unknown */

/* The Internet checksum of p[0..n) added to sum (not folded, not complemented). */
uint32_t pkt_csum_add(uint32_t sum, const uint8_t *p, size_t n);
uint16_t pkt_csum_fold(uint32_t sum);

#endif
