/* compare_stats.c - the comparator's counters and its hold-time histogram:
 * log-linear buckets in microseconds, 8 per power of two (12.5% resolution), so
 * p50/p99 cost no memory per sample. */
#include "net/compare_int.h"

#define SUB_BITS 3
#define SUB (1u << SUB_BITS)

static unsigned bucket_of(uint64_t us)
{
	if (us < SUB)
		return (unsigned)us;
	unsigned msb = 63 - (unsigned)__builtin_clzll(us);
	unsigned idx = SUB + (msb - SUB_BITS) * SUB + (unsigned)((us >> (msb - SUB_BITS)) & (SUB - 1));
	return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The largest value of bucket idx. */
static uint64_t bucket_top(unsigned idx)
{
	if (idx < SUB)
		return idx;
	unsigned o = (idx - SUB) / SUB, s = (idx - SUB) % SUB;
	uint64_t lo = (uint64_t)(SUB + s) << o;
	return lo + ((uint64_t)1 << o) - 1;
}

void cmp_hist_add(struct cmp *c, uint64_t ns)
{
	c->hist[bucket_of(ns / 1000)]++;
	c->hist_total++;
}

uint64_t cmp_hist_pct(const struct cmp *c, unsigned pct, uint64_t *samples)
{
	uint64_t total = c->hist_total, seen = 0;
	*samples = total;
	if (!total)
		return 0;
	uint64_t want = (total * pct + 99) / 100; /* the rank of the percentile, 1-based */
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += c->hist[i];
		if (seen >= want)
			return bucket_top(i);
	}
	return bucket_top(HIST_BUCKETS - 1);
}

void cmp_get_stats(const struct cmp *c, struct cmp_stats *out)
{
	*out = c->st;
	out->held = c->held_n + c->ring_n;
	out->held_bytes = c->held_bytes;
	out->flows = c->nflows;
	out->generation = c->gen;
	out->hold_p50_us = cmp_hist_pct(c, 50, &out->hold_samples);
	out->hold_p99_us = cmp_hist_pct(c, 99, &out->hold_samples);
}
