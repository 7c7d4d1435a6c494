/* stream.c - what both ends of the checkpoint stream agree on: names, identity,
 * per-type limits and the ordering rules of docs/checkpoint-stream.md §5-§6. */
#include <errno.h>
#include <stdio.h>
#include <xxhash.h>

#include "checkpoint/stream_int.h"

#define FROM_P (1u << STREAM_PRIMARY)
#define FROM_S (1u << STREAM_SECONDARY)
#define BK_Q (1u << STREAM_BACKEND_QEMU)
#define BK_X (1u << STREAM_BACKEND_XEN)
#define IN_IDLE (1u << SS_IDLE)
#define IN_REQ (1u << SS_REQUESTED)
#define IN_CKPT (1u << SS_IN_CKPT)
#define ANYWHERE (IN_IDLE | IN_REQ | IN_CKPT)

/* Who may send each type, with which backend, and in which of the primary's
 * states. The secondary's stream has no checkpoints: its records go anywhere. */
static const struct rec_rule {
	const char *name;
	uint8_t from, backends, where;
} rules[] = {
	[STREAM_REC_BEGIN] = { "CHECKPOINT_BEGIN", FROM_P, BK_Q | BK_X, IN_IDLE | IN_REQ },
	[STREAM_REC_PAGE_DATA] = { "PAGE_DATA", FROM_P, BK_Q, IN_CKPT },
	[STREAM_REC_ZERO_PAGES] = { "ZERO_PAGES", FROM_P, BK_Q, IN_CKPT },
	[STREAM_REC_DEVICE_STATE] = { "DEVICE_STATE", FROM_P, BK_Q | BK_X, IN_CKPT },
	[STREAM_REC_INPUT_MARK] = { "INPUT_MARK", FROM_P, BK_Q | BK_X, IN_CKPT },
	[STREAM_REC_XEN_LIBXC] = { "XEN_LIBXC", FROM_P | FROM_S, BK_X, IN_CKPT },
	[STREAM_REC_END] = { "CHECKPOINT_END", FROM_P, BK_Q | BK_X, IN_CKPT },
	[STREAM_REC_REQUEST] = { "CHECKPOINT_REQUEST", FROM_P, BK_Q | BK_X, IN_IDLE },
	[STREAM_REC_DIRTY_PFN_LIST] = { "DIRTY_PFN_LIST", FROM_S, BK_Q | BK_X, ANYWHERE },
	[STREAM_REC_ACK] = { "ACK", FROM_S, BK_Q | BK_X, ANYWHERE },
	[STREAM_REC_ERROR] = { "ERROR", FROM_P | FROM_S, BK_Q | BK_X, ANYWHERE },
};
#define NRULES (sizeof(rules) / sizeof(rules[0]))

static const char *const err_names[] = {
	[STREAM_OK] = "OK",
	[STREAM_ERR_TRUNCATED] = "TRUNCATED",
	[STREAM_ERR_BAD_MAGIC] = "BAD_MAGIC",
	[STREAM_ERR_BAD_VERSION] = "BAD_VERSION",
	[STREAM_ERR_IDENTITY] = "IDENTITY",
	[STREAM_ERR_TOO_LONG] = "TOO_LONG",
	[STREAM_ERR_UNKNOWN_MANDATORY] = "UNKNOWN_MANDATORY",
	[STREAM_ERR_BAD_LENGTH] = "BAD_LENGTH",
	[STREAM_ERR_PFN_RANGE] = "PFN_RANGE",
	[STREAM_ERR_DUP_PFN] = "DUP_PFN",
	[STREAM_ERR_SEQUENCE] = "SEQUENCE",
	[STREAM_ERR_CHECKSUM] = "CHECKSUM",
	[STREAM_ERR_PADDING] = "PADDING",
	[STREAM_ERR_UNEXPECTED] = "UNEXPECTED",
	[STREAM_ERR_BAD_FIELD] = "BAD_FIELD",
	[STREAM_ERR_NOMEM] = "NOMEM",
	[STREAM_ERR_APPLY_FAILED] = "APPLY_FAILED",
	[STREAM_ERR_ABORTED] = "ABORTED",
};

const char *stream_err_name(uint32_t code)
{
	if (code < sizeof(err_names) / sizeof(err_names[0]) && err_names[code])
		return err_names[code];
	return "?";
}

bool stream_rec_known(uint32_t type)
{
	return type < NRULES && rules[type].name;
}

const char *stream_rec_name(uint32_t type)
{
	return stream_rec_known(type) ? rules[type].name : "?";
}

uint64_t stream_config_hash(const void *text, size_t len)
{
	return XXH3_64bits(text, len);
}

int stream_ident_check(const struct stream_ident *id)
{
	uint32_t ps = id->page_size;
	if (id->backend != STREAM_BACKEND_QEMU && id->backend != STREAM_BACKEND_XEN)
		return -EINVAL;
	if (ps < 4096 || ps > 65536 || (ps & (ps - 1)))
		return -EINVAL;
	/* 2^52 bytes: far beyond any guest, and keeps pfn * page_size and the budget
	 * arithmetic below comfortably inside 64 bits. */
	if (!id->ram_size || id->ram_size % ps || id->ram_size > (1ull << 52))
		return -EINVAL;
	return 0;
}

void stream_rec_limits(const struct stream_ident *id, uint32_t type, uint32_t *min, uint32_t *max)
{
	uint64_t ps = id->page_size, pages = id->ram_size / ps, dirty_max;
	switch (type) {
	case STREAM_REC_BEGIN:
		*min = *max = BEGIN_LEN;
		return;
	case STREAM_REC_PAGE_DATA:
		*min = BATCH_HDR_LEN + PFN_LEN + ps;
		*max = BATCH_HDR_LEN + STREAM_MAX_PAGE_BATCH * (PFN_LEN + ps);
		return;
	case STREAM_REC_ZERO_PAGES:
		*min = BATCH_HDR_LEN + PFN_LEN;
		*max = BATCH_HDR_LEN + STREAM_MAX_ZERO_BATCH * PFN_LEN;
		return;
	case STREAM_REC_DEVICE_STATE:
		*min = 1;
		*max = STREAM_MAX_DEVICE_STATE;
		return;
	case STREAM_REC_XEN_LIBXC:
		*min = 1;
		*max = STREAM_MAX_XEN_LIBXC;
		return;
	case STREAM_REC_END:
		*min = *max = END_LEN;
		return;
	case STREAM_REC_INPUT_MARK:
	case STREAM_REC_REQUEST:
	case STREAM_REC_ACK:
		*min = *max = SEQ_LEN;
		return;
	case STREAM_REC_DIRTY_PFN_LIST:
		dirty_max = DIRTY_HDR_LEN + pages * RANGE_LEN;
		*min = DIRTY_HDR_LEN;
		*max = dirty_max > STREAM_MAX_BODY ? STREAM_MAX_BODY : (uint32_t)dirty_max;
		return;
	case STREAM_REC_ERROR:
		*min = ERROR_HDR_LEN;
		*max = ERROR_HDR_LEN + STREAM_MAX_REASON;
		return;
	default: /* unknown optional: skipped, never buffered */
		*min = 0;
		*max = STREAM_MAX_OPTIONAL;
		return;
	}
}

uint64_t stream_ckpt_budget(const struct stream_ident *id)
{
	uint64_t pages = id->ram_size / id->page_size;
	/* Every page at most once: its data, its pfn, and at worst a record header
	 * plus batch header of its own (8 + 8 + 8 = 24). */
	return pages * (id->page_size + 24) + STREAM_CKPT_SLACK;
}

void stream_seq_init(struct stream_seq *s, enum stream_role sender, enum stream_backend be)
{
	*s = (struct stream_seq){ .sender = sender, .backend = be, .st = SS_IDLE };
}

static const char *role_name(enum stream_role r)
{
	return r == STREAM_PRIMARY ? "primary" : "secondary";
}

static const char *state_name(enum stream_state st)
{
	static const char *const names[] = { "between checkpoints", "after CHECKPOINT_REQUEST",
					     "inside a checkpoint", "after ERROR" };
	return names[st];
}

enum stream_err stream_seq_allow(const struct stream_seq *s, uint32_t type, char *why, size_t n)
{
	if (s->st == SS_CLOSED) {
		snprintf(why, n, "record type 0x%x after the peer's ERROR record", type);
		return STREAM_ERR_UNEXPECTED;
	}
	if (!stream_rec_known(type)) {
		if (type & STREAM_REC_OPTIONAL)
			return STREAM_OK;
		snprintf(why, n, "unknown mandatory record type 0x%x", type);
		return STREAM_ERR_UNKNOWN_MANDATORY;
	}
	const struct rec_rule *ru = &rules[type];
	if (!(ru->from & (1u << s->sender))) {
		snprintf(why, n, "%s is never sent by the %s", ru->name, role_name(s->sender));
		return STREAM_ERR_UNEXPECTED;
	}
	if (!(ru->backends & (1u << s->backend))) {
		snprintf(why, n, "%s is not used with the %s backend", ru->name,
			 s->backend == STREAM_BACKEND_QEMU ? "QEMU" : "Xen");
		return STREAM_ERR_UNEXPECTED;
	}
	if (s->sender == STREAM_PRIMARY && !(ru->where & (1u << s->st))) {
		snprintf(why, n, "%s not allowed %s", ru->name, state_name(s->st));
		return STREAM_ERR_UNEXPECTED;
	}
	return STREAM_OK;
}

static enum stream_err seq_begin(struct stream_seq *s, uint64_t seq, uint32_t flags, char *why,
				 size_t n)
{
	uint64_t want = s->st == SS_REQUESTED ? s->cur : s->last + 1;
	if (seq != want) {
		snprintf(why, n, "CHECKPOINT_BEGIN seq %llu, expected %llu",
			 (unsigned long long)seq, (unsigned long long)want);
		return STREAM_ERR_SEQUENCE;
	}
	if (flags & ~STREAM_CKPT_PRECOPY) {
		snprintf(why, n, "CHECKPOINT_BEGIN has unknown flags 0x%x", flags);
		return STREAM_ERR_BAD_FIELD;
	}
	s->st = SS_IN_CKPT;
	s->cur = seq;
	s->flags = flags;
	s->have_dev = s->have_mark = false;
	return STREAM_OK;
}

/* DEVICE_STATE / INPUT_MARK: once per checkpoint, never in a pre-copy pass. */
static enum stream_err seq_once(struct stream_seq *s, uint32_t type, bool *have, char *why,
				size_t n)
{
	if (s->flags & STREAM_CKPT_PRECOPY) {
		snprintf(why, n, "%s in PRECOPY checkpoint %llu", stream_rec_name(type),
			 (unsigned long long)s->cur);
		return STREAM_ERR_UNEXPECTED;
	}
	if (*have) {
		snprintf(why, n, "second %s in checkpoint %llu", stream_rec_name(type),
			 (unsigned long long)s->cur);
		return STREAM_ERR_UNEXPECTED;
	}
	*have = true;
	return STREAM_OK;
}

/* A sequence number must be exactly the expected one: a repeat means replayed
 * data, a gap means lost data. */
static enum stream_err seq_expect(uint32_t type, uint64_t seq, uint64_t want, char *why, size_t n)
{
	if (seq == want)
		return STREAM_OK;
	snprintf(why, n, "%s seq %llu, expected %llu", stream_rec_name(type),
		 (unsigned long long)seq, (unsigned long long)want);
	return STREAM_ERR_SEQUENCE;
}

enum stream_err stream_seq_step(struct stream_seq *s, uint32_t type, uint64_t seq,
				uint32_t flags, char *why, size_t n)
{
	enum stream_err e = STREAM_OK;
	switch (type) {
	case STREAM_REC_BEGIN:
		return seq_begin(s, seq, flags, why, n);
	case STREAM_REC_REQUEST:
		if (!(e = seq_expect(type, seq, s->last + 1, why, n))) {
			s->st = SS_REQUESTED;
			s->cur = seq;
		}
		return e;
	case STREAM_REC_END:
		if (!(e = seq_expect(type, seq, s->cur, why, n))) {
			s->st = SS_IDLE;
			s->last = seq;
		}
		return e;
	case STREAM_REC_DEVICE_STATE:
		return seq_once(s, type, &s->have_dev, why, n);
	case STREAM_REC_INPUT_MARK:
		return seq_once(s, type, &s->have_mark, why, n);
	case STREAM_REC_ACK:
		if (!(e = seq_expect(type, seq, s->last + 1, why, n))) {
			s->last = seq;
			s->dirty_sent = false;
		}
		return e;
	case STREAM_REC_DIRTY_PFN_LIST:
		if (s->dirty_sent) {
			snprintf(why, n, "second DIRTY_PFN_LIST for checkpoint %llu",
				 (unsigned long long)seq);
			return STREAM_ERR_SEQUENCE;
		}
		if (!(e = seq_expect(type, seq, s->last + 1, why, n)))
			s->dirty_sent = true;
		return e;
	case STREAM_REC_ERROR:
		s->st = SS_CLOSED;
		return STREAM_OK;
	default:
		return STREAM_OK;
	}
}
