/* link_dec.c - the network link's incremental decoder (docs/net-link.md §4-5):
 * lengths are checked on the record header, before anything is allocated; every
 * field goes through a lib/wire cursor. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/link.h"

enum dstate { D_HEADER, D_RECHDR, D_BODY, D_SKIP, D_DEAD };

struct link_dec {
	enum link_role self;
	uint64_t hash;
	enum dstate st;
	uint8_t hdr[LINK_HEADER_LEN];
	size_t have, need; /* collected / wanted in this state */
	uint32_t type, body_len;
	uint8_t *body;
	size_t body_cap;
	uint64_t last_seq, last_gen;
	uint32_t code;
	char reason[160];
	char peer_reason[LINK_REASON_MAX + 1];
};

static const uint8_t magic[8] = { 'C', 'O', 'L', 'O', 'N', 'E', 'T', 'L' };

const char *link_code_name(uint32_t code)
{
	static const char *const names[LINK_CODE__COUNT] = {
		"ok",	       "bad-magic", "bad-version", "identity",   "unknown-mandatory", "unexpected",
		"bad-length", "reserved",  "sequence",	  "peer-error", "truncated",
	};
	return code < LINK_CODE__COUNT ? names[code] : "?";
}

__attribute__((format(printf, 3, 4))) static int fail(struct link_dec *d, uint32_t code,
						      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
	d->code = code;
	d->st = D_DEAD;
	return -EBADMSG;
}

static size_t pad_of(size_t n)
{
	return (8 - n % 8) % 8;
}

static int check_header(struct link_dec *d)
{
	struct rd r = rd_init(d->hdr, sizeof(d->hdr));
	uint8_t m[8];
	uint32_t version, role;
	uint64_t hash;
	rd_copy(&r, m, sizeof(m));
	rd_be32(&r, &version);
	rd_be32(&r, &role);
	rd_be64(&r, &hash);
	if (memcmp(m, magic, sizeof(m)))
		return fail(d, LINK_BAD_MAGIC, "not a colo network link (bad magic)");
	if (version != 1)
		return fail(d, LINK_BAD_VERSION, "network link version %u, expected 1", version);
	uint32_t peer = d->self == LINK_PRIMARY ? LINK_SECONDARY : LINK_PRIMARY;
	if (role != peer)
		return fail(d, LINK_IDENTITY, "peer says it is role %u, expected %u", role, peer);
	if (hash != d->hash)
		return fail(d, LINK_IDENTITY, "peer protects another VM (config hash %016llx)",
			    (unsigned long long)hash);
	d->st = D_RECHDR;
	return 0;
}

/* The type's legal direction and length (docs/net-link.md §4). */
static int check_type(struct link_dec *d)
{
	size_t min, max;
	enum link_role to;
	switch (d->type) {
	case LINK_REC_INPUT:
		min = 8 + LINK_FRAME_MIN, max = 8 + LINK_FRAME_MAX, to = LINK_SECONDARY;
		break;
	case LINK_REC_OUTPUT_BATCH:
		min = 16, max = LINK_BATCH_MAX_BODY, to = LINK_PRIMARY;
		break;
	case LINK_REC_ERROR:
		min = 8, max = 8 + LINK_REASON_MAX, to = d->self;
		break;
	default:
		return fail(d, LINK_UNKNOWN_MANDATORY, "unknown record type %#x", d->type);
	}
	if (to != d->self)
		return fail(d, LINK_UNEXPECTED, "record type %u in the wrong direction", d->type);
	if (d->body_len < min || d->body_len > max)
		return fail(d, LINK_BAD_LENGTH, "record type %u with %u octets (%zu..%zu)", d->type,
			    d->body_len, min, max);
	return 0;
}

static int check_rec_header(struct link_dec *d)
{
	struct rd r = rd_init(d->hdr, 8);
	rd_be32(&r, &d->type);
	rd_be32(&r, &d->body_len);
	d->have = 0;
	d->need = (size_t)d->body_len + pad_of(d->body_len);
	if (d->type & LINK_REC_OPTIONAL) {
		if (d->body_len > LINK_OPTIONAL_MAX)
			return fail(d, LINK_BAD_LENGTH, "optional record of %u octets", d->body_len);
		d->st = D_SKIP;
		return 0;
	}
	int rc = check_type(d);
	if (rc < 0)
		return rc;
	if (d->need > d->body_cap) {
		uint8_t *p = realloc(d->body, d->need);
		if (!p)
			return fail(d, LINK_BAD_LENGTH, "no memory for a record of %zu octets", d->need);
		d->body = p;
		d->body_cap = d->need;
	}
	d->st = D_BODY;
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static int parse_input(struct link_dec *d, struct rd *r, struct link_rec *rec)
{
	rec->type = LINK_REC_INPUT;
	rd_be64(r, &rec->input.seq);
	if (rec->input.seq != d->last_seq + 1)
		return fail(d, LINK_SEQUENCE, "input %llu after %llu",
			    (unsigned long long)rec->input.seq, (unsigned long long)d->last_seq);
	d->last_seq = rec->input.seq;
	rec->input.len = rd_left(r);
	rd_ptr(r, &rec->input.frame, rec->input.len);
	return 1;
}

/* Walk the entries once so the caller's iterator needs no checks. */
static int check_entries(struct link_dec *d, struct rd r, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		uint32_t len, rsvd;
		const uint8_t *pad;
		if (rd_be32(&r, &len) || rd_be32(&r, &rsvd))
			return fail(d, LINK_BAD_LENGTH, "batch entry %u past the record", i);
		if (rsvd)
			return fail(d, LINK_RESERVED, "batch entry %u: reserved field set", i);
		if (len < LINK_FRAME_MIN || len > LINK_FRAME_MAX)
			return fail(d, LINK_BAD_LENGTH, "batch entry %u: frame of %u octets", i, len);
		if (rd_skip(&r, len) || rd_ptr(&r, &pad, pad_of(len)))
			return fail(d, LINK_BAD_LENGTH, "batch entry %u past the record", i);
		if (!all_zero(pad, pad_of(len)))
			return fail(d, LINK_RESERVED, "batch entry %u: padding not zero", i);
	}
	if (rd_left(&r))
		return fail(d, LINK_BAD_LENGTH, "%zu octets after the last batch entry", rd_left(&r));
	return 0;
}

static int parse_batch(struct link_dec *d, struct rd *r, struct link_rec *rec)
{
	uint32_t rsvd;
	rec->type = LINK_REC_OUTPUT_BATCH;
	rd_be64(r, &rec->batch.gen);
	rd_be32(r, &rec->batch.count);
	rd_be32(r, &rsvd);
	if (rsvd)
		return fail(d, LINK_RESERVED, "batch: reserved field set");
	if (rec->batch.count > LINK_BATCH_MAX_FRAMES)
		return fail(d, LINK_BAD_LENGTH, "batch of %u frames", rec->batch.count);
	if (rec->batch.gen < d->last_gen)
		return fail(d, LINK_SEQUENCE, "batch of generation %llu after %llu",
			    (unsigned long long)rec->batch.gen, (unsigned long long)d->last_gen);
	if (check_entries(d, *r, rec->batch.count) < 0)
		return -EBADMSG;
	d->last_gen = rec->batch.gen;
	rec->batch.len = rd_left(r);
	rd_ptr(r, &rec->batch.entries, rec->batch.len);
	return 1;
}

static int parse_error(struct link_dec *d, struct rd *r, struct link_rec *rec)
{
	uint32_t rsvd;
	rec->type = LINK_REC_ERROR;
	rd_be32(r, &rec->error.code);
	rd_be32(r, &rsvd);
	if (rsvd)
		return fail(d, LINK_RESERVED, "error record: reserved field set");
	size_t n = rd_left(r);
	rd_copy(r, d->peer_reason, n);
	for (size_t i = 0; i < n; i++)
		if (!d->peer_reason[i])
			d->peer_reason[i] = '?';
	d->peer_reason[n] = 0;
	rec->error.reason = d->peer_reason;
	fail(d, LINK_PEER_ERROR, "peer gave up (%s): %.100s", link_code_name(rec->error.code),
	     d->peer_reason);
	return 1; /* the record first; the decoder is dead from now on */
}

static int parse_body(struct link_dec *d, struct link_rec *rec)
{
	if (!all_zero(d->body + d->body_len, d->need - d->body_len))
		return fail(d, LINK_RESERVED, "record padding not zero");
	struct rd r = rd_init(d->body, d->body_len);
	d->st = D_RECHDR;
	d->have = 0;
	memset(rec, 0, sizeof(*rec));
	if (d->type == LINK_REC_INPUT)
		return parse_input(d, &r, rec);
	if (d->type == LINK_REC_OUTPUT_BATCH)
		return parse_batch(d, &r, rec);
	return parse_error(d, &r, rec);
}

/* Collect into dst until want octets are there; true when complete. */
static bool collect(uint8_t *dst, size_t want, size_t *have, const uint8_t *buf, size_t len,
		    size_t *used)
{
	size_t n = want - *have < len - *used ? want - *have : len - *used;
	if (n)
		memcpy(dst + *have, buf + *used, n);
	*have += n;
	*used += n;
	return *have == want;
}

static int step(struct link_dec *d, const uint8_t *buf, size_t len, size_t *used,
		struct link_rec *rec)
{
	size_t n;
	switch (d->st) {
	case D_HEADER:
		if (!collect(d->hdr, LINK_HEADER_LEN, &d->have, buf, len, used))
			return 0;
		d->have = 0;
		return check_header(d);
	case D_RECHDR:
		if (!collect(d->hdr, 8, &d->have, buf, len, used))
			return 0;
		return check_rec_header(d);
	case D_BODY:
		if (!collect(d->body, d->need, &d->have, buf, len, used))
			return 0;
		return parse_body(d, rec);
	case D_SKIP:
		n = d->need - d->have < len - *used ? d->need - d->have : len - *used;
		d->have += n;
		*used += n;
		if (d->have == d->need) {
			d->st = D_RECHDR;
			d->have = 0;
		}
		return 0;
	case D_DEAD:
		break;
	}
	return -EBADMSG;
}

int link_dec_feed(struct link_dec *d, const uint8_t *buf, size_t len, size_t *used,
		  struct link_rec *rec)
{
	*used = 0;
	if (d->st == D_DEAD)
		return -EBADMSG;
	for (;;) {
		size_t before = *used;
		enum dstate st = d->st;
		int rc = step(d, buf, len, used, rec);
		if (rc != 0)
			return rc;
		if (*used == before && d->st == st)
			return 0; /* no progress: everything consumed */
	}
}

int link_dec_eof(struct link_dec *d)
{
	if (d->st == D_DEAD)
		return 0; /* already reported */
	if ((d->st == D_HEADER || d->st == D_RECHDR) && d->have == 0)
		return 0;
	d->code = LINK_TRUNCATED;
	snprintf(d->reason, sizeof(d->reason), "the stream ended inside a %s",
		 d->st == D_HEADER ? "header" : "record");
	d->st = D_DEAD;
	return -EPIPE;
}

uint32_t link_dec_code(const struct link_dec *d)
{
	return d->code;
}

const char *link_dec_reason(const struct link_dec *d)
{
	return d->code ? d->reason : "ok";
}

int link_dec_new(enum link_role self, uint64_t config_hash, struct link_dec **out)
{
	struct link_dec *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->self = self;
	d->hash = config_hash;
	*out = d;
	return 0;
}

void link_dec_free(struct link_dec *d)
{
	if (!d)
		return;
	free(d->body);
	free(d);
}

void link_batch_iter_init(struct link_batch_iter *it, const struct link_rec *rec)
{
	it->r = rd_init(rec->batch.entries, rec->batch.len);
	it->left = rec->batch.count;
}

bool link_batch_next(struct link_batch_iter *it, const uint8_t **frame, size_t *len)
{
	uint32_t n, rsvd;
	if (!it->left || rd_be32(&it->r, &n) || rd_be32(&it->r, &rsvd) ||
	    rd_ptr(&it->r, frame, n) || rd_skip(&it->r, pad_of(n)))
		return false;
	it->left--;
	*len = n;
	return true;
}
