/* packet.c - the frame parser (docs/net.md §3). Every field is read through a
 * lib/wire cursor; a short read is a parse error, never a read past the frame. */
#include "net/packet.h"

#include <string.h>

#include "lib/wire.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88a8
#define ETH_P_QINQ 0x9100

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ICMP_ 1
#define IPPROTO_IGMP_ 2
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_DSTOPTS_ 60

struct parse {
	const uint8_t *frame;
	size_t len;
	unsigned flags;
	struct pkt *pkt;
};

static enum pkt_class set_raw(struct parse *ps, enum pkt_err err)
{
	struct pkt *pkt = ps->pkt;
	pkt->cls = PKT_RAW;
	pkt->err = err;
	pkt->data_off = 0;
	pkt->data_len = ps->len;
	return PKT_RAW;
}

static enum pkt_class set_class(struct pkt *pkt, enum pkt_class cls, size_t off, size_t end)
{
	pkt->cls = cls;
	pkt->data_off = off;
	pkt->data_len = end > off ? end - off : 0;
	return cls;
}

/* A cursor over frame[off..end). */
static struct rd rd_at(const struct parse *ps, size_t off, size_t end)
{
	if (off > end || end > ps->len)
		return (struct rd){ .p = ps->frame, .len = 0, .err = true };
	return rd_init(ps->frame + off, end - off);
}

uint32_t pkt_csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	uint64_t s = sum;
	size_t i;
	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (i < n)
		s += (uint32_t)p[i] << 8;
	while (s >> 32)
		s = (s & 0xffffffff) + (s >> 32);
	return (uint32_t)s;
}

uint16_t pkt_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* Sum of the pseudo-header for an upper-layer checksum over n octets. */
static uint32_t pseudo_sum(const struct pkt *pkt, size_t n)
{
	size_t alen = pkt->family == 4 ? 4 : 16;
	uint32_t sum = pkt_csum_add(0, pkt->src, alen);
	sum = pkt_csum_add(sum, pkt->dst, alen);
	return sum + pkt->proto + (uint32_t)(n & 0xffff) + (uint32_t)(n >> 16);
}

/* The checksum of frame[off..off+n), with the pseudo-header if asked, is right. */
static bool csum_ok(const struct parse *ps, size_t off, size_t n, bool pseudo)
{
	uint32_t sum = pkt_csum_add(pseudo ? pseudo_sum(ps->pkt, n) : 0, ps->frame + off, n);
	return pkt_csum_fold(sum) == 0xffff;
}

static void check_l4_csum(struct parse *ps, size_t n, bool pseudo)
{
	struct pkt *pkt = ps->pkt;
	if (!(ps->flags & PKT_PARSE_CSUM))
		return;
	if (!csum_ok(ps, pkt->l4_off, n, pseudo))
		pkt->flags |= PKT_F_BAD_CSUM;
}

/* TCP options: only timestamps and SACK are kept; everything is ignored by the
 * comparison, so a malformed list is noted, not fatal. */
static void parse_tcp_options(struct parse *ps, size_t off, size_t end)
{
	struct pkt *pkt = ps->pkt;
	struct rd r = rd_at(ps, off, end);
	uint8_t kind, olen;
	while (rd_left(&r) > 0 && rd_u8(&r, &kind) == 0 && kind != 0) {
		if (kind == 1)
			continue;
		if (rd_u8(&r, &olen) || olen < 2 || olen - 2u > rd_left(&r)) {
			pkt->flags |= PKT_F_TCP_BADOPT;
			return;
		}
		size_t body = off + r.off;
		if (kind == 8 && olen == 10) {
			rd_be32(&r, &pkt->tsval);
			rd_be32(&r, &pkt->tsecr);
			pkt->flags |= PKT_F_TCP_TS;
			continue;
		}
		if (kind == 5 && olen > 2 && (olen - 2) % 8 == 0) {
			pkt->sack_off = body;
			pkt->nsack = (olen - 2) / 8 > PKT_MAX_SACK ? PKT_MAX_SACK : (olen - 2) / 8;
		} else if (kind == 5) {
			pkt->flags |= PKT_F_TCP_BADOPT;
		}
		rd_skip(&r, olen - 2u);
	}
}

static enum pkt_class parse_tcp(struct parse *ps)
{
	struct pkt *pkt = ps->pkt;
	struct rd r = rd_at(ps, pkt->l4_off, pkt->end);
	uint16_t doff_flags, csum, urg;
	rd_be16(&r, &pkt->sport);
	rd_be16(&r, &pkt->dport);
	rd_be32(&r, &pkt->seq);
	rd_be32(&r, &pkt->ack);
	rd_be16(&r, &doff_flags);
	rd_be16(&r, &pkt->window);
	rd_be16(&r, &csum);
	rd_be16(&r, &urg);
	if (r.err)
		return set_raw(ps, PKT_E_TCP_TRUNC);
	size_t doff = (size_t)(doff_flags >> 12) * 4;
	size_t avail = pkt->end - pkt->l4_off;
	if (doff < 20 || doff > avail)
		return set_raw(ps, PKT_E_TCP_DOFF);
	pkt->tcp_flags = (uint8_t)doff_flags;
	parse_tcp_options(ps, pkt->l4_off + 20, pkt->l4_off + doff);
	check_l4_csum(ps, avail, true);
	return set_class(pkt, PKT_TCP, pkt->l4_off + doff, pkt->end);
}

static enum pkt_class parse_udp(struct parse *ps)
{
	struct pkt *pkt = ps->pkt;
	struct rd r = rd_at(ps, pkt->l4_off, pkt->end);
	uint16_t ulen, csum;
	rd_be16(&r, &pkt->sport);
	rd_be16(&r, &pkt->dport);
	rd_be16(&r, &ulen);
	rd_be16(&r, &csum);
	if (r.err)
		return set_raw(ps, PKT_E_UDP_TRUNC);
	size_t avail = pkt->end - pkt->l4_off;
	if (ulen < 8 || ulen > avail)
		return set_raw(ps, PKT_E_UDP_LEN);
	if (ulen < avail)
		pkt->flags |= PKT_F_TRIMMED;
	/* IPv4 UDP may carry no checksum (0); IPv6 must. */
	if (csum != 0 || pkt->family == 6)
		check_l4_csum(ps, ulen, true);
	return set_class(pkt, PKT_UDP, pkt->l4_off + 8, pkt->l4_off + ulen);
}

static bool icmp_is_echo(const struct pkt *pkt)
{
	if (pkt->family == 4)
		return pkt->icmp_type == 0 || pkt->icmp_type == 8;
	return pkt->icmp_type == 128 || pkt->icmp_type == 129;
}

static bool icmp_is_error(const struct pkt *pkt)
{
	uint8_t t = pkt->icmp_type;
	if (pkt->family == 4)
		return t == 3 || t == 4 || t == 5 || t == 11 || t == 12;
	return t >= 1 && t <= 4;
}

/* ICMPv6 link control: router/neighbour discovery, redirect, MLD. Like ARP. */
static bool icmp6_is_link_control(uint8_t t)
{
	return (t >= 130 && t <= 137) || t == 143;
}

static enum pkt_class parse_icmp(struct parse *ps)
{
	struct pkt *pkt = ps->pkt;
	struct rd r = rd_at(ps, pkt->l4_off, pkt->end);
	uint16_t csum;
	rd_u8(&r, &pkt->icmp_type);
	rd_u8(&r, &pkt->icmp_code);
	rd_be16(&r, &csum);
	if (r.err)
		return set_raw(ps, PKT_E_ICMP_TRUNC);
	if (pkt->family == 6 && icmp6_is_link_control(pkt->icmp_type))
		return set_class(pkt, PKT_PASS, 0, 0);
	size_t body = pkt->l4_off + 4;
	size_t end = pkt->end;
	if (icmp_is_echo(pkt)) {
		if (rd_be16(&r, &pkt->sport))
			return set_raw(ps, PKT_E_ICMP_TRUNC);
		if (rd_skip(&r, 2))
			return set_raw(ps, PKT_E_ICMP_TRUNC);
	} else if (icmp_is_error(pkt)) {
		/* The quoted datagram's IP id and checksum differ between the VMs. */
		end = body + 4 < end ? body + 4 : end;
	}
	check_l4_csum(ps, pkt->end - pkt->l4_off, pkt->family == 6);
	return set_class(pkt, PKT_ICMP, body, end);
}

static enum pkt_class parse_l4(struct parse *ps)
{
	struct pkt *pkt = ps->pkt;
	switch (pkt->proto) {
	case IPPROTO_TCP_:
		return parse_tcp(ps);
	case IPPROTO_UDP_:
		return parse_udp(ps);
	case IPPROTO_ICMP_:
		if (pkt->family == 4)
			return parse_icmp(ps);
		break;
	case IPPROTO_ICMPV6_:
		if (pkt->family == 6)
			return parse_icmp(ps);
		break;
	case IPPROTO_IGMP_:
		if (pkt->family == 4)
			return set_class(pkt, PKT_PASS, 0, 0);
		break;
	}
	return set_class(pkt, PKT_IP_OTHER, pkt->l4_off, pkt->end);
}

static enum pkt_class set_frag(struct pkt *pkt, uint32_t id, uint16_t off, bool more)
{
	pkt->frag_id = id;
	pkt->frag_off = off;
	pkt->frag_more = more;
	return set_class(pkt, PKT_FRAG, pkt->l4_off, pkt->end);
}

static enum pkt_class parse_ip4(struct parse *ps, size_t off)
{
	struct pkt *pkt = ps->pkt;
	struct rd r = rd_at(ps, off, ps->len);
	uint8_t vihl, tos, ttl;
	uint16_t total, id, frag, csum;
	rd_u8(&r, &vihl);
	rd_u8(&r, &tos);
	rd_be16(&r, &total);
	rd_be16(&r, &id);
	rd_be16(&r, &frag);
	rd_u8(&r, &ttl);
	rd_u8(&r, &pkt->proto);
	rd_be16(&r, &csum);
	rd_copy(&r, pkt->src, 4);
	rd_copy(&r, pkt->dst, 4);
	if (r.err)
		return set_raw(ps, PKT_E_IP4_TRUNC);
	if (vihl >> 4 != 4)
		return set_raw(ps, PKT_E_IP4_VERSION);
	size_t ihl = (size_t)(vihl & 15) * 4, avail = ps->len - off;
	if (ihl < 20 || ihl > avail)
		return set_raw(ps, PKT_E_IP4_IHL);
	if (total < ihl || total > avail)
		return set_raw(ps, PKT_E_IP4_LEN);
	pkt->family = 4;
	pkt->l3_off = off;
	pkt->l4_off = off + ihl;
	pkt->end = off + total;
	if (pkt->end < ps->len)
		pkt->flags |= PKT_F_TRIMMED;
	if (ihl > 20)
		pkt->flags |= PKT_F_IP_OPTIONS;
	if ((ps->flags & PKT_PARSE_CSUM) && !csum_ok(ps, off, ihl, false))
		pkt->flags |= PKT_F_BAD_CSUM;
	if (frag & 0x3fff)
		return set_frag(pkt, id, (uint16_t)((frag & 0x1fff) * 8), frag & 0x2000);
	return parse_l4(ps);
}

static bool ip6_is_ext(uint8_t nh)
{
	return nh == IPPROTO_HOPOPTS_ || nh == IPPROTO_ROUTING_ || nh == IPPROTO_FRAGMENT_ ||
	       nh == IPPROTO_AH_ || nh == IPPROTO_DSTOPTS_;
}

/* One extension header at *pos: advances *pos and *nh; may end in a fragment.
 * Returns PKT_CLASS__COUNT to continue, or the frame's final class. */
static enum pkt_class ip6_ext(struct parse *ps, size_t *pos, uint8_t *nh)
{
	struct pkt *pkt = ps->pkt;
	struct rd r = rd_at(ps, *pos, pkt->end);
	uint8_t next, hlen;
	rd_u8(&r, &next);
	rd_u8(&r, &hlen);
	if (*nh == IPPROTO_FRAGMENT_) {
		uint16_t fo;
		uint32_t id;
		rd_be16(&r, &fo);
		rd_be32(&r, &id);
		if (r.err)
			return set_raw(ps, PKT_E_IP6_EXT_TRUNC);
		*pos += 8;
		*nh = next;
		if ((fo & 0xfff9) == 0) /* atomic fragment: parsed as a whole datagram */
			return PKT_CLASS__COUNT;
		pkt->proto = next;
		pkt->l4_off = *pos;
		return set_frag(pkt, id, fo & 0xfff8, fo & 1);
	}
	size_t len = *nh == IPPROTO_AH_ ? ((size_t)hlen + 2) * 4 : ((size_t)hlen + 1) * 8;
	if (r.err || rd_skip(&r, len - 2))
		return set_raw(ps, PKT_E_IP6_EXT_TRUNC);
	*pos += len;
	*nh = next;
	return PKT_CLASS__COUNT;
}

static enum pkt_class parse_ip6(struct parse *ps, size_t off)
{
	struct pkt *pkt = ps->pkt;
	struct rd r = rd_at(ps, off, ps->len);
	uint32_t vtcfl;
	uint16_t plen;
	uint8_t nh, hlim;
	rd_be32(&r, &vtcfl);
	rd_be16(&r, &plen);
	rd_u8(&r, &nh);
	rd_u8(&r, &hlim);
	rd_copy(&r, pkt->src, 16);
	rd_copy(&r, pkt->dst, 16);
	if (r.err)
		return set_raw(ps, PKT_E_IP6_TRUNC);
	if (vtcfl >> 28 != 6)
		return set_raw(ps, PKT_E_IP6_VERSION);
	if (plen > rd_left(&r) || (plen == 0 && nh == IPPROTO_HOPOPTS_))
		return set_raw(ps, PKT_E_IP6_LEN);
	pkt->family = 6;
	pkt->l3_off = off;
	pkt->end = off + 40 + plen;
	if (pkt->end < ps->len)
		pkt->flags |= PKT_F_TRIMMED;
	size_t pos = off + 40;
	for (int n = 0; ip6_is_ext(nh); n++) {
		if (n == PKT_MAX_IP6_EXT)
			return set_raw(ps, PKT_E_IP6_EXT_LIMIT);
		enum pkt_class c = ip6_ext(ps, &pos, &nh);
		if (c != PKT_CLASS__COUNT)
			return c;
	}
	pkt->proto = nh;
	pkt->l4_off = pos;
	return parse_l4(ps);
}

static bool is_vlan_tpid(uint16_t t)
{
	return t == ETH_P_8021Q || t == ETH_P_8021AD || t == ETH_P_QINQ;
}

enum pkt_class pkt_parse(const uint8_t *frame, size_t len, unsigned flags, struct pkt *pkt)
{
	struct parse ps = { .frame = frame, .len = len, .flags = flags, .pkt = pkt };
	memset(pkt, 0, sizeof(*pkt));
	struct rd r = rd_init(frame, len);
	uint16_t type;
	if (rd_skip(&r, 12) || rd_be16(&r, &type))
		return set_raw(&ps, PKT_E_ETH_RUNT);
	while (is_vlan_tpid(type)) {
		uint16_t tci;
		if (pkt->nvlan == PKT_MAX_VLAN)
			return set_raw(&ps, PKT_E_VLAN_DEPTH);
		if (rd_be16(&r, &tci) || rd_be16(&r, &type))
			return set_raw(&ps, PKT_E_VLAN_TRUNC);
		pkt->vlan[pkt->nvlan++] = tci & 0x0fff;
	}
	pkt->ethertype = type;
	if (type == ETH_P_IP)
		return parse_ip4(&ps, r.off);
	if (type == ETH_P_IPV6)
		return parse_ip6(&ps, r.off);
	return set_class(pkt, PKT_PASS, 0, 0);
}

void pkt_count(struct pkt_counters *c, const struct pkt *pkt)
{
	c->frames++;
	c->by_class[pkt->cls < PKT_CLASS__COUNT ? pkt->cls : PKT_RAW]++;
	c->by_err[pkt->err < PKT_E__COUNT ? pkt->err : PKT_OK]++;
	if (pkt->flags & PKT_F_BAD_CSUM)
		c->bad_checksum++;
	if (pkt->flags & PKT_F_TCP_BADOPT)
		c->tcp_bad_options++;
	if (pkt->flags & PKT_F_IP_OPTIONS)
		c->ip_options++;
}

const char *pkt_class_name(enum pkt_class c)
{
	static const char *const names[PKT_CLASS__COUNT] = {
		"pass", "tcp", "udp", "icmp", "ip-other", "frag", "raw",
	};
	return (unsigned)c < PKT_CLASS__COUNT ? names[c] : "?";
}

const char *pkt_err_name(enum pkt_err e)
{
	static const char *const names[PKT_E__COUNT] = {
		"ok",		"eth-runt",	 "vlan-trunc",	  "vlan-depth",	  "ip4-trunc",
		"ip4-version",	"ip4-ihl",	 "ip4-len",	  "ip6-trunc",	  "ip6-version",
		"ip6-len",	"ip6-ext-trunc", "ip6-ext-limit", "tcp-trunc",	  "tcp-doff",
		"udp-trunc",	"udp-len",	 "icmp-trunc",
	};
	return (unsigned)e < PKT_E__COUNT ? names[e] : "?";
}
