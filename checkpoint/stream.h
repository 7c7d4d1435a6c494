/* stream.h - the checkpoint stream codec (docs/checkpoint-stream.md).
 *
 * Three objects:
 *   stream_enc   encodes one direction of the replication link: small records into
 *                a buffer, page data as references into guest RAM, sent with
 *                writev/sendmsg without copying.
 *   stream_dec   decodes the peer's direction, fed bytes as they arrive (any split),
 *                and yields records only after validating them against the spec.
 *   stream_asm   the secondary's assembler: owns a decoder, buffers one checkpoint
 *                and hands it out (stream_ckpt) only once its END verified.
 *
 * Errors: functions return negative errno. A decoder's -EBADMSG means "corrupt
 * stream": stream_dec_code()/stream_dec_reason() say what, ready to log and to send
 * back in an ERROR record. -EPIPE from stream_dec_eof() means the stream stopped mid
 * record or checkpoint (a broken channel, not corruption). Both are sticky.
 */
#ifndef COLO_CHECKPOINT_STREAM_H
#define COLO_CHECKPOINT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lib/wire.h"

#define STREAM_VERSION 1

/* Record types (spec §5). Bit 31 set = optional. */
#define STREAM_REC_OPTIONAL 0x80000000u
enum stream_rec_type {
	STREAM_REC_BEGIN = 1,
	STREAM_REC_PAGE_DATA = 2,
	STREAM_REC_ZERO_PAGES = 3,
	STREAM_REC_DEVICE_STATE = 4,
	STREAM_REC_INPUT_MARK = 5,
	STREAM_REC_XEN_LIBXC = 6,
	STREAM_REC_END = 7,
	STREAM_REC_REQUEST = 8,
	STREAM_REC_DIRTY_PFN_LIST = 9,
	STREAM_REC_ACK = 10,
	STREAM_REC_ERROR = 11,
};

/* Limits (spec §5, §6.3). */
#define STREAM_MAX_PAGE_BATCH 512u
#define STREAM_MAX_ZERO_BATCH 65536u
#define STREAM_MAX_DEVICE_STATE (64u << 20)
#define STREAM_MAX_XEN_LIBXC (16u << 20)
#define STREAM_MAX_OPTIONAL (64u << 20)
#define STREAM_MAX_REASON 1024u
#define STREAM_CKPT_SLACK (128ull << 20)

/* CHECKPOINT_BEGIN flags. */
#define STREAM_CKPT_PRECOPY 0x1u

enum stream_role { STREAM_PRIMARY = 1, STREAM_SECONDARY = 2 };
enum stream_backend { STREAM_BACKEND_QEMU = 1, STREAM_BACKEND_XEN = 2 };

/* Error codes: the wire values of the ERROR record (spec §5). */
enum stream_err {
	STREAM_OK = 0,
	STREAM_ERR_TRUNCATED = 1,
	STREAM_ERR_BAD_MAGIC = 2,
	STREAM_ERR_BAD_VERSION = 3,
	STREAM_ERR_IDENTITY = 4,
	STREAM_ERR_TOO_LONG = 5,
	STREAM_ERR_UNKNOWN_MANDATORY = 6,
	STREAM_ERR_BAD_LENGTH = 7,
	STREAM_ERR_PFN_RANGE = 8,
	STREAM_ERR_DUP_PFN = 9,
	STREAM_ERR_SEQUENCE = 10,
	STREAM_ERR_CHECKSUM = 11,
	STREAM_ERR_PADDING = 12,
	STREAM_ERR_UNEXPECTED = 13,
	STREAM_ERR_BAD_FIELD = 14,
	STREAM_ERR_NOMEM = 15,
	STREAM_ERR_APPLY_FAILED = 16,
	STREAM_ERR_ABORTED = 17,
};

/* Name of a code, e.g. "CHECKSUM"; "?" for codes this build does not know. */
const char *stream_err_name(uint32_t code);
/* Name of a record type, e.g. "PAGE_DATA"; "?" if unknown. */
const char *stream_rec_name(uint32_t type);

/* The VM both ends must agree on (the stream header, spec §3). */
struct stream_ident {
	enum stream_backend backend;
	uint32_t page_size;   /* power of two, 4096..65536 */
	uint64_t ram_size;    /* bytes, nonzero multiple of page_size */
	uint64_t config_hash; /* stream_config_hash() of the canonical config text */
};

/* XXH3-64 (seed 0) of a canonical machine-configuration description. */
uint64_t stream_config_hash(const void *text, size_t len);
/* 0, or -EINVAL if the identity breaks the limits above. */
int stream_ident_check(const struct stream_ident *id);

/* A page-frame range [first, first + count), host byte order. */
struct stream_range {
	uint64_t first;
	uint64_t count;
};

/* --- encoder ----------------------------------------------------------------- */

struct stream_enc;

/* An encoder for the direction that `self` sends. NULL on bad identity or ENOMEM. */
struct stream_enc *stream_enc_new(const struct stream_ident *id, enum stream_role self);
void stream_enc_free(struct stream_enc *e);

/* Appending functions: 0, -EINVAL when the call breaks the spec (wrong direction,
 * state, sequence, pfn beyond RAM, length over the maximum), -ENOMEM. They are
 * checked so a bug on our side fails here, not at the peer. */
int stream_enc_header(struct stream_enc *e);
/* Primary only. */
int stream_enc_request(struct stream_enc *e, uint64_t seq);
int stream_enc_begin(struct stream_enc *e, uint64_t seq, uint32_t flags);
/* Pages pfns[0..n) of the guest RAM mapped at `ram`; split into records of at most
 * STREAM_MAX_PAGE_BATCH. The pages are referenced, not copied: they must not change
 * until flushed (keep the VM stopped). The checksum is taken now. A pfn may appear
 * once per checkpoint across pages and zero pages; that is not checked here (it
 * would cost a RAM-sized bitmap on the hot path): the secondary refuses DUP_PFN. */
int stream_enc_pages(struct stream_enc *e, const uint64_t *pfns, size_t n, const void *ram);
int stream_enc_zero_pages(struct stream_enc *e, const uint64_t *pfns, size_t n);
/* Referenced, not copied, like pages. */
int stream_enc_device_state(struct stream_enc *e, const void *data, size_t len);
int stream_enc_input_mark(struct stream_enc *e, uint64_t input_seq);
/* Xen backend, either role. Referenced, not copied. */
int stream_enc_xen_libxc(struct stream_enc *e, const void *data, size_t len);
/* Closes the open checkpoint with its checksum. */
int stream_enc_end(struct stream_enc *e);
/* Secondary only. Ranges sorted, non-overlapping, inside RAM. */
int stream_enc_dirty(struct stream_enc *e, uint64_t seq, const struct stream_range *r, size_t n);
int stream_enc_ack(struct stream_enc *e, uint64_t seq);
/* Either role; the reason is truncated to STREAM_MAX_REASON. After it, nothing else. */
int stream_enc_error(struct stream_enc *e, uint32_t code, const char *reason);

/* Bytes appended and not yet flushed or drained. */
size_t stream_enc_pending(const struct stream_enc *e);
/* Send pending bytes to fd (socket or pipe) without blocking semantics of its own:
 * 0 when everything is out, -EAGAIN when the fd is full (wait for POLLOUT, call
 * again), other negative errno when the channel is broken. SIGPIPE is not raised
 * on sockets. */
int stream_enc_flush(struct stream_enc *e, int fd);
/* Copy the pending bytes to the end of `out` and consume them (tests, small control
 * messages). 0 or out's error. */
int stream_enc_drain(struct stream_enc *e, struct wr *out);
/* Low-level: up to `max` iovecs describing the next pending bytes (returns the
 * count), and stream_enc_consume() after n of them were written. */
int stream_enc_iov(const struct stream_enc *e, struct iovec *iov, int max);
void stream_enc_consume(struct stream_enc *e, size_t n);

/* --- decoder ----------------------------------------------------------------- */

/* A validated record, borrowed from the decoder until its next call. Pointers are
 * into the decoder's buffer; pfns and ranges are already in host order. */
struct stream_rec {
	uint32_t type;
	union {
		struct {
			uint64_t seq;
			uint32_t flags;
		} begin;
		struct {
			uint32_t count;
			const uint64_t *pfns;
			const uint8_t *data; /* count * page_size bytes; NULL for ZERO_PAGES */
		} pages;
		struct {
			const uint8_t *data; /* DEVICE_STATE, XEN_LIBXC */
			size_t len;
		} blob;
		uint64_t input_mark;
		struct {
			uint64_t seq;
			uint64_t checksum;
		} end;
		uint64_t seq; /* REQUEST, ACK */
		struct {
			uint64_t seq;
			uint32_t count;
			const struct stream_range *ranges;
		} dirty;
		struct {
			uint32_t code;
			const char *reason; /* NUL-terminated, printable ASCII */
		} error;
	};
};

struct stream_dec;

/* A decoder for the stream the peer of `self` sends, checked against `local`.
 * NULL on bad identity or ENOMEM. */
struct stream_dec *stream_dec_new(const struct stream_ident *local, enum stream_role self);
void stream_dec_free(struct stream_dec *d);
/* Consume bytes from buf[0..len) up to the end of the next record:
 * 1 = *rec holds a validated record, 0 = all len bytes consumed, no record yet,
 * -EBADMSG = corrupt stream, -ENOMEM. *used is set in every case; call again with
 * the rest. Unknown optional records are skipped silently. After an ERROR record
 * is yielded any further byte is corrupt. */
int stream_dec_feed(struct stream_dec *d, const void *buf, size_t len, size_t *used,
		    struct stream_rec *rec);
/* The peer closed its direction: 0 if at a record boundary outside a checkpoint,
 * else -EPIPE (TRUNCATED), or the earlier sticky error. */
int stream_dec_eof(struct stream_dec *d);
/* The sticky error: code (STREAM_OK if none) and a one-line reason with the stream
 * offset, e.g. "checkpoint 7, PAGE_DATA at offset 123456: pfn 70000 beyond RAM (65536 pages)". */
enum stream_err stream_dec_code(const struct stream_dec *d);
const char *stream_dec_reason(const struct stream_dec *d);
/* Bytes consumed so far. */
uint64_t stream_dec_offset(const struct stream_dec *d);

/* --- secondary: assembler and received checkpoints ---------------------------- */

struct stream_asm;
struct stream_ckpt;

enum { STREAM_ASM_NEED_MORE = 0, STREAM_ASM_RECORD = 1, STREAM_ASM_CHECKPOINT = 2 };

/* An assembler for the primary's stream to this secondary. */
struct stream_asm *stream_asm_new(const struct stream_ident *local);
void stream_asm_free(struct stream_asm *a);
/* Like stream_dec_feed, but checkpoint records are kept: returns STREAM_ASM_RECORD
 * with *rec for records outside a checkpoint (REQUEST, ERROR), STREAM_ASM_CHECKPOINT
 * when a checkpoint's END verified (take it with stream_asm_take before feeding
 * more, else -EBUSY), NEED_MORE, or a negative errno; on any error or an ERROR
 * record the partial checkpoint is freed. */
int stream_asm_feed(struct stream_asm *a, const void *buf, size_t len, size_t *used,
		    struct stream_rec *rec);
/* The completed checkpoint, now owned by the caller; NULL if none. */
struct stream_ckpt *stream_asm_take(struct stream_asm *a);
/* End of stream: frees a partial checkpoint; returns stream_dec_eof(). */
int stream_asm_eof(struct stream_asm *a);
/* The assembler's decoder, for stream_dec_code/reason/offset. */
const struct stream_dec *stream_asm_dec(const struct stream_asm *a);

/* Done with a checkpoint (applied, or refused by the caller): frees it, keeping its
 * buffers for the next checkpoint's records. Prefer it to stream_ckpt_free on the
 * per-checkpoint path: fresh buffers cost a page fault per 4 KiB. */
void stream_asm_release(struct stream_asm *a, struct stream_ckpt *ck);

void stream_ckpt_free(struct stream_ckpt *ck);
uint64_t stream_ckpt_seq(const struct stream_ckpt *ck);
uint32_t stream_ckpt_flags(const struct stream_ckpt *ck);
uint64_t stream_ckpt_page_count(const struct stream_ckpt *ck); /* with data */
uint64_t stream_ckpt_zero_count(const struct stream_ckpt *ck);
/* true and *mark if the checkpoint carries an INPUT_MARK. */
bool stream_ckpt_input_mark(const struct stream_ckpt *ck, uint64_t *mark);
/* The device state, NULL (and *len 0) if none. */
const void *stream_ckpt_device_state(const struct stream_ckpt *ck, size_t *len);
/* Call fn for each page batch in stream order: data is n * page_size bytes, NULL
 * for zero pages. A nonzero return from fn stops and is returned. */
int stream_ckpt_foreach_batch(const struct stream_ckpt *ck,
			      int (*fn)(void *arg, const uint64_t *pfns, size_t n, const uint8_t *data),
			      void *arg);
/* Call fn for each XEN_LIBXC slice in stream order. */
int stream_ckpt_foreach_xen(const struct stream_ckpt *ck,
			    int (*fn)(void *arg, const uint8_t *data, size_t len), void *arg);
/* Write every page (and zero every zero page) into guest RAM mapped at ram.
 * -EINVAL if ram_size is not the stream's RAM size. */
int stream_ckpt_apply_ram(const struct stream_ckpt *ck, void *ram, uint64_t ram_size);

#endif
