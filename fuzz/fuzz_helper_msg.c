/* fuzz_helper_msg.c - libFuzzer target for the agent <-> helper message parser
 * (checkpoint/repl_msg.c, docs/helper-protocol.md §2-§3).
 *
 * Input: byte 0 = direction (bit 0: 0 to the helper, 1 to the agent) | the number of
 * passed descriptors << 1 (bits 1-2); the rest is one datagram.
 *
 * Whatever parses must re-encode to a message that parses again to the same
 * encoding (parse -> encode -> parse -> encode is stable), so the parser and the
 * encoders can never disagree about a field. Seeds: fuzz/corpus/fuzz_helper_msg/,
 * written by tests/unit/test_repl_msg.c (COLO_WRITE_SEEDS=dir). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/repl_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void encode(const struct repl_msg *m, struct wr *w)
{
	switch (m->type) {
	case REPL_MSG_START:
		repl_msg_put_start(w, &m->start);
		break;
	case REPL_MSG_SUSPEND_DONE:
	case REPL_MSG_RESUME_DONE:
	case REPL_MSG_LOAD_DONE:
	case REPL_MSG_LOGDIRTY_DONE:
		repl_msg_put_done(w, m->type, m->done.err, m->done.input_mark);
		break;
	case REPL_MSG_LOGDIRTY:
		repl_msg_put_logdirty(w, m->enable);
		break;
	case REPL_MSG_SUSPEND:
	case REPL_MSG_RESUME:
		repl_msg_put_seq(w, m->type, m->seq);
		break;
	case REPL_MSG_LOAD:
		repl_msg_put_load(w, m->load.seq, m->load.has_mark, m->load.input_mark);
		break;
	case REPL_MSG_COMMITTED:
		repl_msg_put_stats(w, &m->stats);
		break;
	case REPL_MSG_FAILED:
		repl_msg_put_failed(w, m->failed.why, m->failed.reason);
		break;
	default:
		repl_msg_put_empty(w, m->type);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct repl_msg m, m2, m3;
	struct wr a, b;
	char why[256];
	if (size < 1)
		return 0;
	enum repl_dir dir = data[0] & 1 ? REPL_TO_AGENT : REPL_TO_HELPER;
	int nfds = (data[0] >> 1) & 3;
	if (repl_msg_parse(data + 1, size - 1, nfds, dir, &m, why, sizeof(why)))
		return 0;
	wr_init(&a);
	wr_init(&b);
	encode(&m, &a);
	if (a.err || repl_msg_parse(a.buf, a.len, nfds, dir, &m2, why, sizeof(why)))
		abort();
	encode(&m2, &b);
	if (b.err || a.len != b.len || memcmp(a.buf, b.buf, a.len))
		abort();
	if (repl_msg_parse(b.buf, b.len, nfds, dir, &m3, why, sizeof(why)) || m3.type != m.type)
		abort();
	wr_free(&a);
	wr_free(&b);
	return 0;
}
