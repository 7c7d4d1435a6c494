/* link.h - the network link between the agents (docs/net-link.md): mirrored
 * input P->S (INPUT), the secondary VM's output S->P (OUTPUT_BATCH), ERROR.
 *
 * The encoder appends to a lib/wire writer. The decoder is fed whatever arrived,
 * in any split, and yields validated records; a corrupt stream stops it for good
 * with -EBADMSG and a code (link_dec_code()). Socket errors are the caller's.
 */
#ifndef COLO_NET_LINK_H
#define COLO_NET_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wire.h"

#define LINK_HEADER_LEN 24
#define LINK_FRAME_MIN 14
#define LINK_FRAME_MAX 65535
#define LINK_BATCH_MAX_BODY (1u << 20)
#define LINK_BATCH_MAX_FRAMES 1024
#define LINK_REASON_MAX 1024
#define LINK_OPTIONAL_MAX (1u << 20)

enum link_role { LINK_PRIMARY = 1, LINK_SECONDARY = 2 };

enum link_rec_type { LINK_REC_INPUT = 1, LINK_REC_OUTPUT_BATCH = 2, LINK_REC_ERROR = 3 };
#define LINK_REC_OPTIONAL 0x80000000u

/* Rejection codes (docs/net-link.md §5); also ERROR's code. Append only. */
enum link_code {
	LINK_OK = 0,
	LINK_BAD_MAGIC = 1,
	LINK_BAD_VERSION = 2,
	LINK_IDENTITY = 3,
	LINK_UNKNOWN_MANDATORY = 4,
	LINK_UNEXPECTED = 5,
	LINK_BAD_LENGTH = 6,
	LINK_RESERVED = 7,
	LINK_SEQUENCE = 8,
	LINK_PEER_ERROR = 9,
	LINK_TRUNCATED = 10, /* end of stream inside a record: a broken channel */
	LINK_CODE__COUNT
};
const char *link_code_name(uint32_t code); /* "bad-magic", ...; "?" */

/* ---- encoder: 0, or the writer's sticky error / -EINVAL for an illegal argument ---- */

int link_enc_header(struct wr *w, enum link_role sender, uint64_t config_hash);
/* One mirrored input frame (LINK_FRAME_MIN..LINK_FRAME_MAX octets). */
int link_enc_input(struct wr *w, uint64_t seq, const void *frame, size_t len);
int link_enc_error(struct wr *w, uint32_t code, const char *reason);

/* An OUTPUT_BATCH under construction in w: begin, add frames, end. */
struct link_batch {
	struct wr *w;
	size_t at; /* the record's offset in w */
	uint32_t count;
};
int link_batch_begin(struct link_batch *b, struct wr *w, uint64_t gen);
/* -E2BIG: the frame would exceed the batch's limits; end it and begin another. */
int link_batch_add(struct link_batch *b, const void *frame, size_t len);
int link_batch_end(struct link_batch *b);

/* ---- decoder ---- */

struct link_rec {
	enum link_rec_type type;
	union {
		struct {
			uint64_t seq;
			const uint8_t *frame;
			size_t len;
		} input;
		struct {
			uint64_t gen;
			uint32_t count;
			const uint8_t *entries; /* validated; walk with link_batch_next() */
			size_t len;
		} batch;
		struct {
			uint32_t code;
			const char *reason; /* NUL-terminated; a NUL on the wire shows as '?' */
		} error;
	};
};

struct link_dec;
/* self: the receiver's role; config_hash: the receiver's own. 0 or -ENOMEM. */
int link_dec_new(enum link_role self, uint64_t config_hash, struct link_dec **out);
void link_dec_free(struct link_dec *d);
/* Consume up to len octets (*used says how many). Returns 1: a record in *rec, valid
 * until the next call; 0: everything consumed, more needed; -EBADMSG: corrupt (also
 * after an ERROR record, whose record is returned first). */
int link_dec_feed(struct link_dec *d, const uint8_t *buf, size_t len, size_t *used,
		  struct link_rec *rec);
/* At end of stream: 0, or -EPIPE inside the header or a record (LINK_TRUNCATED). */
int link_dec_eof(struct link_dec *d);
uint32_t link_dec_code(const struct link_dec *d);
const char *link_dec_reason(const struct link_dec *d); /* one line, for the log */

struct link_batch_iter {
	struct rd r;
	uint32_t left;
};
void link_batch_iter_init(struct link_batch_iter *it, const struct link_rec *rec);
/* The next frame of a decoded batch; false at the end. */
bool link_batch_next(struct link_batch_iter *it, const uint8_t **frame, size_t *len);

#endif
