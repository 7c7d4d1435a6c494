/* fuzz_net_rewrite.c - libFuzzer target for the secondary's sequence rewriter
 * (net/rewrite.c).
 *
 * Input: records of [op, length (u16), frame]. op bit 0: 0 the frame goes into the
 * VM (rw_input), 1 the VM sent it (rw_output); bit 1: rw_checkpoint_loaded() first;
 * bit 2: rw_go_live() first; bit 3: rw_tick() first.
 * Checked: a frame is only rewritten when it is TCP; a TCP frame whose checksum was
 * right is still right after rewriting (the RFC 1624 update), and nothing but the
 * sequence, acknowledgement, SACK and checksum fields changed. Seeds:
 * fuzz/corpus/fuzz_net_rewrite/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/packet.h"
#include "net/rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *before, const uint8_t *after, size_t len, int changed)
{
	struct pkt a, b;
	enum pkt_class ca = pkt_parse(before, len, PKT_PARSE_CSUM, &a);
	enum pkt_class cb = pkt_parse(after, len, PKT_PARSE_CSUM, &b);
	if (!changed) {
		if (memcmp(before, after, len))
			abort();
		return;
	}
	if (ca != PKT_TCP || cb != PKT_TCP)
		abort();
	if (!(a.flags & PKT_F_BAD_CSUM) && (b.flags & PKT_F_BAD_CSUM))
		abort();
	for (size_t i = 0; i < len; i++) {
		if (before[i] == after[i])
			continue;
		size_t t = a.l4_off;
		bool field = (i >= t + 4 && i < t + 12) || (i >= t + 16 && i < t + 18) ||
			     (a.nsack && i >= a.sack_off && i < a.sack_off + 8u * a.nsack);
		if (!field)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rw_config cfg;
	struct rw *r;
	uint64_t now = 0;
	rw_config_default(&cfg);
	cfg.max_conns = 16;
	if (rw_new(&cfg, &r) < 0)
		abort();
	while (size >= 3) {
		uint8_t op = data[0];
		size_t len = (size_t)data[1] << 8 | data[2];
		data += 3;
		size -= 3;
		len = len < size ? len : size;
		uint8_t *before = malloc(len ? len : 1), *frame = malloc(len ? len : 1);
		if (!before || !frame)
			abort();
		memcpy(before, data, len);
		memcpy(frame, data, len);
		data += len;
		size -= len;
		if (op & 2)
			rw_checkpoint_loaded(r);
		if (op & 4)
			rw_go_live(r);
		if (op & 8)
			rw_tick(r, now += 1000000000ull);
		int changed = op & 1 ? rw_output(r, frame, len, now) : rw_input(r, frame, len, now);
		check(before, frame, len, changed);
		free(before);
		free(frame);
	}
	rw_free(r);
	return 0;
}
