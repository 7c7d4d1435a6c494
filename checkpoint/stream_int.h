/* stream_int.h - private to checkpoint/stream*.c: wire layout constants and the
 * ordering rules (spec §6) that the encoder and the decoder both enforce, so the
 * two can never disagree about what is legal. */
#ifndef COLO_CHECKPOINT_STREAM_INT_H
#define COLO_CHECKPOINT_STREAM_INT_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint/stream.h"

/* "COLOSTRM" */
#define STREAM_MAGIC 0x434f4c4f5354524dull

/* Stream header (spec §3): offsets of each field. */
enum {
	SH_MAGIC = 0,
	SH_VERSION = 8,
	SH_ROLE = 12,
	SH_BACKEND = 16,
	SH_PAGE_SIZE = 20,
	SH_RAM_SIZE = 24,
	SH_CONFIG_HASH = 32,
	STREAM_HDR_LEN = 40,
};
_Static_assert(SH_VERSION == SH_MAGIC + 8 && SH_ROLE == SH_VERSION + 4 &&
		       SH_BACKEND == SH_ROLE + 4 && SH_PAGE_SIZE == SH_BACKEND + 4 &&
		       SH_RAM_SIZE == SH_PAGE_SIZE + 4 && SH_CONFIG_HASH == SH_RAM_SIZE + 8 &&
		       STREAM_HDR_LEN == SH_CONFIG_HASH + 8,
	       "stream header fields are contiguous, each aligned to its size");
_Static_assert(STREAM_HDR_LEN % 8 == 0, "records after the header start 8-aligned");

/* Fixed parts of records (spec §4, §5). */
enum {
	REC_HDR_LEN = 4 + 4,       /* type, body_length */
	BEGIN_LEN = 8 + 4 + 4,     /* seq, flags, reserved */
	END_LEN = 8 + 8,           /* seq, checksum */
	SEQ_LEN = 8,               /* REQUEST, ACK */
	MARK_LEN = 8,              /* INPUT_MARK */
	BATCH_HDR_LEN = 4 + 4,     /* PAGE_DATA / ZERO_PAGES: count, reserved */
	PFN_LEN = 8,
	DIRTY_HDR_LEN = 8 + 4 + 4, /* seq, count, reserved */
	RANGE_LEN = 8 + 8,         /* first, npages */
	ERROR_HDR_LEN = 4 + 4,     /* code, reserved */
};
_Static_assert(REC_HDR_LEN == 8, "record header is 8 octets");
_Static_assert(BEGIN_LEN % 8 == 0 && END_LEN % 8 == 0 && SEQ_LEN % 8 == 0 &&
		       MARK_LEN % 8 == 0 && DIRTY_HDR_LEN % 8 == 0 && RANGE_LEN % 8 == 0,
	       "fixed records need no padding");
_Static_assert(BATCH_HDR_LEN % 8 == 0, "the pfn array after the batch header is 8-aligned");
_Static_assert(sizeof(struct stream_range) == RANGE_LEN,
	       "decoded ranges overwrite their wire form in place");

/* Upper bound of any record body (keeps padded lengths within u32). */
#define STREAM_MAX_BODY 0xfffffff0u

static inline uint32_t stream_pad(uint32_t len)
{
	return (8 - (len & 7)) & 7;
}

/* Where the sender of a stream is in its ordering (spec §6). */
enum stream_state { SS_IDLE, SS_REQUESTED, SS_IN_CKPT, SS_CLOSED };

struct stream_seq {
	enum stream_role sender;
	enum stream_backend backend;
	enum stream_state st;
	uint64_t last;  /* primary: last completed checkpoint; secondary: last ACK */
	uint64_t cur;   /* primary: requested or open checkpoint */
	uint32_t flags; /* open checkpoint's flags */
	bool have_dev, have_mark;
	bool dirty_sent; /* secondary: DIRTY_PFN_LIST sent for last + 1 */
};

void stream_seq_init(struct stream_seq *s, enum stream_role sender, enum stream_backend be);
/* May a record of this type come next? Checked at its header, before its body:
 * direction, backend, state. Unknown optional types are allowed anywhere but after
 * an ERROR. STREAM_OK, or a code with a reason in why. */
enum stream_err stream_seq_allow(const struct stream_seq *s, uint32_t type, char *why, size_t n);
/* Account for a complete record: seq and flags are the body's (0 where the type has
 * none). Checks sequence numbers and once-per-checkpoint records, then advances. */
enum stream_err stream_seq_step(struct stream_seq *s, uint32_t type, uint64_t seq,
				uint32_t flags, char *why, size_t n);
/* Body length bounds of a known type under this identity (spec §5). */
void stream_rec_limits(const struct stream_ident *id, uint32_t type, uint32_t *min, uint32_t *max);
/* Bytes of records one checkpoint may hold (spec §6.3). */
uint64_t stream_ckpt_budget(const struct stream_ident *id);
/* true if the type is one this build knows. */
bool stream_rec_known(uint32_t type);

/* Decoder -> assembler: take ownership of the body buffer of the record just
 * yielded (the record's pointers stay valid) and its capacity. free() it. */
uint8_t *stream_dec_steal_body(struct stream_dec *d, size_t *cap);
/* Assembler -> decoder: where body buffers come from. fn() returns a buffer of
 * at least len bytes (setting *cap) or NULL; the decoder then uses malloc. */
typedef uint8_t *stream_body_take_fn(void *arg, size_t len, size_t *cap);
void stream_dec_set_pool(struct stream_dec *d, stream_body_take_fn *fn, void *arg);

#endif
