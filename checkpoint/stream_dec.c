/* stream_dec.c - the incremental decoder. Bytes arrive in any split; each unit
 * (stream header, record header, body, padding) is collected, then checked. A
 * record's type, direction, state and length are checked at its header, before
 * its body is allocated; its contents once the body and its padding are in. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "checkpoint/stream_int.h"

enum phase {
	PH_HDR,  /* stream header */
	PH_RHDR, /* record header */
	PH_BODY, /* body of a known record, into d->body */
	PH_SKIP, /* body of an unknown optional record, checksummed and dropped */
	PH_PAD,  /* padding */
};

struct stream_dec {
	struct stream_ident id;
	enum stream_role self;
	uint64_t ram_pages, budget;
	struct stream_seq seq; /* the peer's ordering */

	enum phase ph;
	uint8_t unit[STREAM_HDR_LEN]; /* header, record header or padding being collected */
	size_t have, want;            /* bytes of the current unit collected / needed */
	uint32_t type, len;           /* current record */
	uint64_t rec_off;             /* stream offset of the current record */
	uint64_t off;                 /* bytes consumed */
	uint8_t *body;
	size_t cap;
	stream_body_take_fn *pool_take; /* recycled buffers, if an assembler has some */
	void *pool_arg;

	XXH3_state_t *xxh;
	uint64_t ckpt_bytes; /* wire bytes of the open checkpoint, against budget */
	uint64_t *seen;      /* pfns sent in the open checkpoint (secondary, QEMU) */

	int rc; /* sticky: 0, -EBADMSG, -ENOMEM, -EPIPE */
	enum stream_err code;
	char reason[256];
	char peer_reason[STREAM_MAX_REASON + 1];
};

struct stream_dec *stream_dec_new(const struct stream_ident *local, enum stream_role self)
{
	if (stream_ident_check(local) || (self != STREAM_PRIMARY && self != STREAM_SECONDARY))
		return NULL;
	struct stream_dec *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->id = *local;
	d->self = self;
	d->ram_pages = local->ram_size / local->page_size;
	d->budget = stream_ckpt_budget(local);
	stream_seq_init(&d->seq, self == STREAM_PRIMARY ? STREAM_SECONDARY : STREAM_PRIMARY,
			local->backend);
	d->ph = PH_HDR;
	d->want = STREAM_HDR_LEN;
	d->xxh = XXH3_createState();
	/* Only the secondary receives pages; sized from our own VM, never the peer. */
	bool pages = self == STREAM_SECONDARY && local->backend == STREAM_BACKEND_QEMU;
	if (pages)
		d->seen = calloc((d->ram_pages + 63) / 64, sizeof(uint64_t));
	if (!d->xxh || (pages && !d->seen)) {
		stream_dec_free(d);
		return NULL;
	}
	return d;
}

void stream_dec_free(struct stream_dec *d)
{
	if (!d)
		return;
	XXH3_freeState(d->xxh);
	free(d->seen);
	free(d->body);
	free(d);
}

enum stream_err stream_dec_code(const struct stream_dec *d)
{
	return d->code;
}

const char *stream_dec_reason(const struct stream_dec *d)
{
	return d->rc ? d->reason : "no error";
}

uint64_t stream_dec_offset(const struct stream_dec *d)
{
	return d->off;
}

/* Record the sticky error with the position it happened at, for one log line. */
__attribute__((format(printf, 3, 4))) static int fail(struct stream_dec *d, enum stream_err code,
						      const char *fmt, ...)
{
	char what[192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	d->code = code;
	d->rc = code == STREAM_ERR_NOMEM ? -ENOMEM : code == STREAM_ERR_TRUNCATED ? -EPIPE : -EBADMSG;
	if (d->ph == PH_HDR)
		snprintf(d->reason, sizeof(d->reason), "stream header: %s", what);
	else if (d->seq.st == SS_IN_CKPT)
		snprintf(d->reason, sizeof(d->reason), "checkpoint %llu, record at offset %llu: %s",
			 (unsigned long long)d->seq.cur, (unsigned long long)d->rec_off, what);
	else
		snprintf(d->reason, sizeof(d->reason), "record at offset %llu: %s",
			 (unsigned long long)d->rec_off, what);
	return d->rc;
}

static const char *role_name(uint32_t r)
{
	return r == STREAM_PRIMARY ? "primary" : r == STREAM_SECONDARY ? "secondary" : "unknown";
}

/* Compare one identity field: the peer must protect the same VM as we do. */
static int same(struct stream_dec *d, const char *what, uint64_t peer, uint64_t local)
{
	if (peer == local)
		return 0;
	return fail(d, STREAM_ERR_IDENTITY, "peer's %s is %llu (0x%llx), ours is %llu (0x%llx): not the same VM",
		    what, (unsigned long long)peer, (unsigned long long)peer,
		    (unsigned long long)local, (unsigned long long)local);
}

static int stream_header(struct stream_dec *d)
{
	struct rd r = rd_init(d->unit, STREAM_HDR_LEN);
	uint64_t magic, ram, cfg;
	uint32_t version, role, backend, ps;
	rd_be64(&r, &magic);
	rd_be32(&r, &version);
	rd_be32(&r, &role);
	rd_be32(&r, &backend);
	rd_be32(&r, &ps);
	rd_be64(&r, &ram);
	rd_be64(&r, &cfg);
	if (magic != STREAM_MAGIC)
		return fail(d, STREAM_ERR_BAD_MAGIC, "magic 0x%016llx is not \"COLOSTRM\": not a colo checkpoint stream",
			    (unsigned long long)magic);
	if (version != STREAM_VERSION)
		return fail(d, STREAM_ERR_BAD_VERSION, "stream version %u, this agent speaks %u",
			    version, STREAM_VERSION);
	if (role != d->seq.sender)
		return fail(d, STREAM_ERR_IDENTITY, "peer says it is the %s, but we are the %s",
			    role_name(role), role_name(d->self));
	int rc = same(d, "backend", backend, d->id.backend);
	if (!rc)
		rc = same(d, "page size", ps, d->id.page_size);
	if (!rc)
		rc = same(d, "RAM size", ram, d->id.ram_size);
	if (!rc)
		rc = same(d, "configuration hash", cfg, d->id.config_hash);
	return rc;
}

static void next_record(struct stream_dec *d)
{
	d->ph = PH_RHDR;
	d->have = 0;
	d->want = REC_HDR_LEN;
	d->rec_off = d->off;
}

static bool in_checkpoint(const struct stream_dec *d)
{
	return d->seq.st == SS_IN_CKPT;
}

/* A buffer for the body: reused between records unless the assembler kept it. */
static int body_alloc(struct stream_dec *d, uint32_t len)
{
	/* Rounded to 8: decoded pfns and ranges are stored over their wire form. */
	size_t need = ((size_t)len + 7) & ~(size_t)7;
	if (need <= d->cap)
		return 0;
	free(d->body);
	d->body = d->pool_take ? d->pool_take(d->pool_arg, need, &d->cap) : NULL;
	if (d->body)
		return 0;
	d->cap = need;
	d->body = malloc(need);
	if (d->body)
		return 0;
	d->cap = 0;
	return fail(d, STREAM_ERR_NOMEM, "%s of %u bytes: out of memory", stream_rec_name(d->type), len);
}

/* The checkpoint budget (spec §6.3): counted in wire bytes, checked before the
 * body is allocated. */
static int charge(struct stream_dec *d)
{
	uint64_t wire = REC_HDR_LEN + (uint64_t)d->len + stream_pad(d->len);
	if (d->type == STREAM_REC_BEGIN)
		d->ckpt_bytes = 0;
	else if (!in_checkpoint(d))
		return 0;
	d->ckpt_bytes += wire;
	if (d->ckpt_bytes <= d->budget)
		return 0;
	return fail(d, STREAM_ERR_TOO_LONG, "checkpoint grows to %llu bytes, over its budget of %llu",
		    (unsigned long long)d->ckpt_bytes, (unsigned long long)d->budget);
}

/* Everything in a checkpoint but its END is checksummed: header as sent, then body. */
static bool checksummed(const struct stream_dec *d)
{
	return d->type == STREAM_REC_BEGIN || (in_checkpoint(d) && d->type != STREAM_REC_END);
}

static int record_header(struct stream_dec *d)
{
	char why[160];
	uint32_t min, max;
	struct rd r = rd_init(d->unit, REC_HDR_LEN);
	rd_be32(&r, &d->type);
	rd_be32(&r, &d->len);
	enum stream_err e = stream_seq_allow(&d->seq, d->type, why, sizeof(why));
	if (e)
		return fail(d, e, "%s", why);
	stream_rec_limits(&d->id, d->type, &min, &max);
	if (d->len > max)
		return fail(d, STREAM_ERR_TOO_LONG, "%s (0x%x) of %u bytes, at most %u allowed",
			    stream_rec_name(d->type), d->type, d->len, max);
	if (d->len < min)
		return fail(d, STREAM_ERR_BAD_LENGTH, "%s of %u bytes, at least %u needed",
			    stream_rec_name(d->type), d->len, min);
	int rc = charge(d);
	if (rc)
		return rc;
	if (d->type == STREAM_REC_BEGIN)
		XXH3_64bits_reset(d->xxh);
	if (checksummed(d))
		XXH3_64bits_update(d->xxh, d->unit, REC_HDR_LEN);
	d->have = 0;
	d->want = d->len;
	if (stream_rec_known(d->type)) {
		d->ph = PH_BODY;
		return body_alloc(d, d->len);
	}
	d->ph = PH_SKIP;
	if (!d->len)
		next_record(d);
	return 0;
}

static uint32_t page_size_of(const struct stream_dec *d, uint32_t type)
{
	return type == STREAM_REC_PAGE_DATA ? d->id.page_size : 0;
}

/* Test-and-set in the per-checkpoint pfn set. */
static bool seen_before(struct stream_dec *d, uint64_t pfn)
{
	/* The rules admit pages only from a primary with the QEMU backend, the one
	 * case stream_dec_new allocates the set for. */
	assert(d->seen);
	uint64_t bit = 1ull << (pfn % 64);
	bool was = d->seen[pfn / 64] & bit;
	d->seen[pfn / 64] |= bit;
	return was;
}

/* PAGE_DATA / ZERO_PAGES. The count is bounded before it is multiplied, and the
 * product is 64-bit: a count from the wire never becomes a wrapped size. */
static int parse_pages(struct stream_dec *d, struct rd *r, struct stream_rec *rec)
{
	uint32_t count, rsv, max = d->type == STREAM_REC_PAGE_DATA ? STREAM_MAX_PAGE_BATCH : STREAM_MAX_ZERO_BATCH;
	rd_be32(r, &count);
	rd_be32(r, &rsv);
	if (rsv)
		return fail(d, STREAM_ERR_BAD_FIELD, "%s reserved field is 0x%x", stream_rec_name(d->type), rsv);
	if (!count || count > max)
		return fail(d, STREAM_ERR_BAD_FIELD, "%s count %u outside 1..%u", stream_rec_name(d->type),
			    count, max);
	uint64_t need = BATCH_HDR_LEN + (uint64_t)count * (PFN_LEN + page_size_of(d, d->type));
	if (need != d->len)
		return fail(d, STREAM_ERR_BAD_LENGTH, "%s count %u needs %llu bytes, record has %u",
			    stream_rec_name(d->type), count, (unsigned long long)need, d->len);
	/* The wire pfns are replaced in place by their host-order values, each after
	 * it was read through the cursor: no second array, no allocation. */
	uint64_t *pfns = (uint64_t *)(d->body + BATCH_HDR_LEN);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t pfn;
		rd_be64(r, &pfn);
		if (pfn >= d->ram_pages)
			return fail(d, STREAM_ERR_PFN_RANGE, "pfn %llu beyond RAM (%llu pages)",
				    (unsigned long long)pfn, (unsigned long long)d->ram_pages);
		if (seen_before(d, pfn))
			return fail(d, STREAM_ERR_DUP_PFN, "pfn %llu sent twice in checkpoint %llu",
				    (unsigned long long)pfn, (unsigned long long)d->seq.cur);
		pfns[i] = pfn;
	}
	rec->pages.count = count;
	rec->pages.pfns = pfns;
	rec->pages.data = d->type == STREAM_REC_PAGE_DATA ? d->body + r->off : NULL;
	rd_skip(r, (size_t)count * page_size_of(d, d->type));
	return 0;
}

static int parse_ranges(struct stream_dec *d, struct rd *r, uint32_t count, struct stream_rec *rec)
{
	/* Host-order ranges overwrite their wire form in place, as for pfns. */
	struct stream_range *rg = (struct stream_range *)(d->body + DIRTY_HDR_LEN);
	uint64_t next = 0;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t first, n;
		rd_be64(r, &first);
		rd_be64(r, &n);
		if (!n || first < next)
			return fail(d, STREAM_ERR_BAD_FIELD, "dirty range %u [%llu +%llu) empty, unsorted or overlapping",
				    i, (unsigned long long)first, (unsigned long long)n);
		if (first >= d->ram_pages || n > d->ram_pages - first)
			return fail(d, STREAM_ERR_PFN_RANGE, "dirty range [%llu +%llu) beyond RAM (%llu pages)",
				    (unsigned long long)first, (unsigned long long)n,
				    (unsigned long long)d->ram_pages);
		next = first + n;
		rg[i] = (struct stream_range){ .first = first, .count = n };
	}
	rec->dirty.count = count;
	rec->dirty.ranges = rg;
	return 0;
}

static int parse_dirty(struct stream_dec *d, struct rd *r, struct stream_rec *rec)
{
	uint32_t count, rsv;
	rd_be64(r, &rec->dirty.seq);
	rd_be32(r, &count);
	rd_be32(r, &rsv);
	if (rsv)
		return fail(d, STREAM_ERR_BAD_FIELD, "DIRTY_PFN_LIST reserved field is 0x%x", rsv);
	if (count > d->ram_pages || DIRTY_HDR_LEN + (uint64_t)count * RANGE_LEN != d->len)
		return fail(d, STREAM_ERR_BAD_LENGTH, "DIRTY_PFN_LIST of %u ranges in a record of %u bytes",
			    count, d->len);
	return parse_ranges(d, r, count, rec);
}

/* The peer's reason is untrusted text headed for our logs: printable ASCII only. */
static int parse_error(struct stream_dec *d, struct rd *r, struct stream_rec *rec)
{
	uint32_t rsv;
	size_t n = d->len - ERROR_HDR_LEN;
	rd_be32(r, &rec->error.code);
	rd_be32(r, &rsv);
	if (rsv)
		return fail(d, STREAM_ERR_BAD_FIELD, "ERROR reserved field is 0x%x", rsv);
	rd_copy(r, d->peer_reason, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)d->peer_reason[i];
		if (c < 0x20 || c > 0x7e)
			d->peer_reason[i] = '?';
	}
	d->peer_reason[n] = '\0';
	rec->error.reason = d->peer_reason;
	return 0;
}

static int parse_begin(struct stream_dec *d, struct rd *r, struct stream_rec *rec)
{
	uint32_t rsv;
	rd_be64(r, &rec->begin.seq);
	rd_be32(r, &rec->begin.flags);
	rd_be32(r, &rsv);
	if (rsv)
		return fail(d, STREAM_ERR_BAD_FIELD, "CHECKPOINT_BEGIN reserved field is 0x%x", rsv);
	/* A new checkpoint: every pfn may be sent once again. Linear in RAM size
	 * (32 KiB per GiB), once per checkpoint. */
	if (d->seen)
		memset(d->seen, 0, (d->ram_pages + 63) / 64 * sizeof(uint64_t));
	return 0;
}

static int parse_end(struct stream_dec *d, struct rd *r, struct stream_rec *rec)
{
	rd_be64(r, &rec->end.seq);
	rd_be64(r, &rec->end.checksum);
	uint64_t sum = XXH3_64bits_digest(d->xxh);
	if (rec->end.seq == d->seq.cur && sum != rec->end.checksum)
		return fail(d, STREAM_ERR_CHECKSUM, "checksum 0x%016llx, computed 0x%016llx: data corrupted",
			    (unsigned long long)rec->end.checksum, (unsigned long long)sum);
	return 0;
}

/* The body is in: parse it into rec. Lengths of fixed records were checked at the
 * header, so the cursor cannot run short here; it is checked anyway. */
static int parse_body(struct stream_dec *d, struct stream_rec *rec)
{
	struct rd r = rd_init(d->body, d->len);
	int rc = 0;
	*rec = (struct stream_rec){ .type = d->type };
	switch (d->type) {
	case STREAM_REC_BEGIN:
		rc = parse_begin(d, &r, rec);
		break;
	case STREAM_REC_PAGE_DATA:
	case STREAM_REC_ZERO_PAGES:
		rc = parse_pages(d, &r, rec);
		break;
	case STREAM_REC_DEVICE_STATE:
	case STREAM_REC_XEN_LIBXC:
		rec->blob.data = d->body;
		rec->blob.len = d->len;
		r.off = d->len;
		break;
	case STREAM_REC_INPUT_MARK:
		rd_be64(&r, &rec->input_mark);
		break;
	case STREAM_REC_END:
		rc = parse_end(d, &r, rec);
		break;
	case STREAM_REC_REQUEST:
	case STREAM_REC_ACK:
		rd_be64(&r, &rec->seq);
		break;
	case STREAM_REC_DIRTY_PFN_LIST:
		rc = parse_dirty(d, &r, rec);
		break;
	case STREAM_REC_ERROR:
		rc = parse_error(d, &r, rec);
		break;
	}
	if (!rc && (r.err || rd_left(&r)))
		rc = fail(d, STREAM_ERR_BAD_LENGTH, "%s body of %u bytes does not parse exactly",
			  stream_rec_name(d->type), d->len);
	return rc;
}

/* The sequence number a record carries, for the ordering rules. */
static uint64_t rec_seq(const struct stream_rec *rec)
{
	switch (rec->type) {
	case STREAM_REC_BEGIN:
		return rec->begin.seq;
	case STREAM_REC_END:
		return rec->end.seq;
	case STREAM_REC_DIRTY_PFN_LIST:
		return rec->dirty.seq;
	case STREAM_REC_REQUEST:
	case STREAM_REC_ACK:
		return rec->seq;
	default:
		return 0;
	}
}

/* Body and padding are in: checksum, parse, apply the ordering rules. Returns 1
 * with a record, 0 after skipping an optional one. */
static int finish_record(struct stream_dec *d, struct stream_rec *rec)
{
	char why[160];
	if (!stream_rec_known(d->type)) {
		next_record(d);
		return 0;
	}
	if (checksummed(d))
		XXH3_64bits_update(d->xxh, d->body, d->len);
	int rc = parse_body(d, rec);
	if (rc)
		return rc;
	uint32_t flags = rec->type == STREAM_REC_BEGIN ? rec->begin.flags : 0;
	enum stream_err e = stream_seq_step(&d->seq, rec->type, rec_seq(rec), flags, why, sizeof(why));
	if (e)
		return fail(d, e, "%s", why);
	next_record(d);
	return 1;
}

static int padding_done(struct stream_dec *d, struct stream_rec *rec)
{
	for (size_t i = 0; i < d->want; i++)
		if (d->unit[i])
			return fail(d, STREAM_ERR_PADDING, "%s padding byte %zu is 0x%02x, must be 0",
				    stream_rec_name(d->type), i, d->unit[i]);
	return finish_record(d, rec);
}

static int body_done(struct stream_dec *d, struct stream_rec *rec)
{
	uint32_t pad = stream_pad(d->len);
	if (!pad)
		return finish_record(d, rec);
	d->ph = PH_PAD;
	d->have = 0;
	d->want = pad;
	return 0;
}

/* The current unit is complete: act on it. */
static int unit_done(struct stream_dec *d, struct stream_rec *rec)
{
	switch (d->ph) {
	case PH_HDR: {
		int rc = stream_header(d);
		if (!rc)
			next_record(d);
		return rc;
	}
	case PH_RHDR:
		return record_header(d);
	case PH_BODY:
	case PH_SKIP:
		return body_done(d, rec);
	case PH_PAD:
		return padding_done(d, rec);
	}
	return 0;
}

/* Take up to n bytes into the current unit. */
static size_t take(struct stream_dec *d, const uint8_t *p, size_t n)
{
	size_t k = d->want - d->have < n ? d->want - d->have : n;
	if (d->ph == PH_BODY)
		memcpy(d->body + d->have, p, k);
	else if (d->ph == PH_SKIP && checksummed(d))
		XXH3_64bits_update(d->xxh, p, k);
	else if (d->ph != PH_SKIP)
		memcpy(d->unit + d->have, p, k);
	d->have += k;
	d->off += k;
	return k;
}

int stream_dec_feed(struct stream_dec *d, const void *buf, size_t len, size_t *used,
		    struct stream_rec *rec)
{
	const uint8_t *p = buf;
	size_t pos = 0;
	int rc = d->rc;
	/* ERROR is the peer's last word: not even a record header may follow. */
	if (!rc && len && d->seq.st == SS_CLOSED)
		rc = fail(d, STREAM_ERR_UNEXPECTED, "data after the peer's ERROR record");
	while (!rc && pos < len) {
		pos += take(d, p + pos, len - pos);
		if (d->have == d->want)
			rc = unit_done(d, rec);
	}
	*used = pos;
	return rc;
}

int stream_dec_eof(struct stream_dec *d)
{
	if (d->rc)
		return d->rc;
	if (d->ph == PH_HDR)
		return fail(d, STREAM_ERR_TRUNCATED, "stream ended after %zu of %d header bytes",
			    d->have, STREAM_HDR_LEN);
	if (d->ph != PH_RHDR || d->have)
		return fail(d, STREAM_ERR_TRUNCATED, "stream ended inside a record");
	if (d->seq.st == SS_IN_CKPT || d->seq.st == SS_REQUESTED)
		return fail(d, STREAM_ERR_TRUNCATED, "stream ended inside checkpoint %llu",
			    (unsigned long long)d->seq.cur);
	return 0;
}

uint8_t *stream_dec_steal_body(struct stream_dec *d, size_t *cap)
{
	uint8_t *b = d->body;
	*cap = d->cap;
	d->body = NULL;
	d->cap = 0;
	return b;
}

void stream_dec_set_pool(struct stream_dec *d, stream_body_take_fn *fn, void *arg)
{
	d->pool_take = fn;
	d->pool_arg = arg;
}
