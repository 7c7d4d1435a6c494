/* fuzz_net_packet.c - libFuzzer target for the frame parser (net/packet.c).
 *
 * Input: one Ethernet frame. It is parsed with and without checksum verification;
 * both parses must agree on everything but PKT_F_BAD_CSUM, and every offset the
 * parser reports must lie inside the frame (the comparator and the rewriter index
 * the frame with them). Seeds: fuzz/corpus/fuzz_net_packet/, written by
 * tests/unit/test_net_packet.c (COLO_WRITE_SEEDS=dir). */
#include <stdint.h>
#include <stdlib.h>

#include "net/packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_offsets(const struct pkt *p, size_t size)
{
	if (p->data_off > size || p->data_len > size - p->data_off)
		abort();
	if ((p->cls == PKT_RAW) != (p->err != PKT_OK))
		abort();
	if (p->cls == PKT_PASS && p->data_len != 0)
		abort();
	if (p->family && p->cls != PKT_RAW && p->cls != PKT_PASS &&
	    (p->l3_off > p->l4_off || p->l4_off > p->end || p->end > size))
		abort();
	if (p->nsack && (p->sack_off > size || (size_t)p->nsack * 8 > size - p->sack_off))
		abort();
	if (p->nvlan > PKT_MAX_VLAN)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pkt a, b;
	struct pkt_counters c = { 0 };
	pkt_parse(data, size, 0, &a);
	pkt_parse(data, size, PKT_PARSE_CSUM, &b);
	check_offsets(&a, size);
	check_offsets(&b, size);
	b.flags &= ~PKT_F_BAD_CSUM;
	if (a.cls != b.cls || a.err != b.err || a.flags != b.flags || a.data_off != b.data_off ||
	    a.data_len != b.data_len || a.seq != b.seq || a.sport != b.sport)
		abort();
	pkt_count(&c, &a);
	if (c.frames != 1)
		abort();
	return 0;
}
