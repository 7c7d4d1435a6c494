/* hb_wire.c - the heartbeat datagram (docs/failover.md), through lib/wire cursors.
 *
 *     0      4   5    6     7     8          16     24         32         36    40
 *     | magic | v | role | state | flags | instance | seq | echo_seq | hold_us | rsvd |
 */
#include <string.h>

#include "colo/heartbeat.h"
#include "lib/wire.h"

/* A peer holding a datagram for a minute before echoing it is not a measurement. */
#define HB_MAX_HOLD_US 60000000u

_Static_assert(HB_WIRE_SIZE == 4 + 1 + 1 + 1 + 1 + 8 + 8 + 8 + 4 + 4, "heartbeat layout");

void hb_encode(const struct hb_msg *m, uint8_t out[HB_WIRE_SIZE])
{
	struct wr w;
	wr_init_fixed(&w, out, HB_WIRE_SIZE);
	wr_be32(&w, HB_MAGIC);
	wr_u8(&w, HB_VERSION);
	wr_u8(&w, m->role);
	wr_u8(&w, m->state);
	wr_u8(&w, 0); /* flags */
	wr_be64(&w, m->instance);
	wr_be64(&w, m->seq);
	wr_be64(&w, m->echo_seq);
	wr_be32(&w, m->echo_hold_us);
	wr_be32(&w, 0); /* reserved */
}

enum hb_reject hb_decode(const void *buf, size_t len, struct hb_msg *out)
{
	if (len != HB_WIRE_SIZE)
		return HB_BAD_SIZE;
	struct rd r = rd_init(buf, len);
	uint32_t magic, reserved;
	uint8_t version, flags;
	struct hb_msg m;
	rd_be32(&r, &magic);
	rd_u8(&r, &version);
	rd_u8(&r, &m.role);
	rd_u8(&r, &m.state);
	rd_u8(&r, &flags);
	rd_be64(&r, &m.instance);
	rd_be64(&r, &m.seq);
	rd_be64(&r, &m.echo_seq);
	rd_be32(&r, &m.echo_hold_us);
	rd_be32(&r, &reserved);
	if (r.err || rd_left(&r))
		return HB_BAD_SIZE;
	if (magic != HB_MAGIC)
		return HB_BAD_MAGIC;
	if (version != HB_VERSION)
		return HB_BAD_VERSION;
	if (flags || reserved || m.role > HB_ROLE_SECONDARY || m.seq == 0 ||
	    m.echo_hold_us > HB_MAX_HOLD_US)
		return HB_BAD_FIELD;
	*out = m;
	return HB_OK;
}
