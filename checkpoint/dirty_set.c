/* dirty_set.c - a set of pfns of one RAM as a bitmap: one bit per 4 KiB page, so
 * 32 KiB per GiB of RAM. Adding a range touches whole words; the count is kept
 * on the fly so a checkpoint knows its size without a pass over the bitmap. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/dirty.h"

struct dirty_set {
	uint64_t npages;
	uint64_t count;
	size_t nwords;
	uint64_t *words;
};

int dirty_set_new(uint64_t npages, struct dirty_set **out)
{
	struct dirty_set *s;

	/* 2^52 pages = 16 EiB of RAM: beyond it words * 8 could overflow. */
	if (npages == 0 || npages > (1ull << 52))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->npages = npages;
	s->nwords = (size_t)((npages + 63) / 64);
	s->words = calloc(s->nwords, sizeof(uint64_t));
	if (!s->words) {
		free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void dirty_set_free(struct dirty_set *s)
{
	if (!s)
		return;
	free(s->words);
	free(s);
}

void dirty_set_clear(struct dirty_set *s)
{
	memset(s->words, 0, s->nwords * sizeof(uint64_t));
	s->count = 0;
}

/* Bits [lo, hi] of one word, 0 <= lo <= hi <= 63. */
static uint64_t word_mask(unsigned lo, unsigned hi)
{
	uint64_t upto_hi = hi == 63 ? ~0ull : (1ull << (hi + 1)) - 1;
	return upto_hi & ~((1ull << lo) - 1);
}

static void set_bits(struct dirty_set *s, size_t w, uint64_t mask)
{
	uint64_t fresh = mask & ~s->words[w];
	s->words[w] |= mask;
	s->count += (uint64_t)__builtin_popcountll(fresh);
}

static bool in_ram(const struct dirty_set *s, uint64_t first, uint64_t count)
{
	return first < s->npages && count <= s->npages - first;
}

int dirty_set_add(struct dirty_set *s, uint64_t first, uint64_t count)
{
	if (!in_ram(s, first, count))
		return -ERANGE;
	if (count == 0)
		return 0;
	uint64_t last = first + count - 1;
	size_t w0 = (size_t)(first / 64), w1 = (size_t)(last / 64);
	if (w0 == w1) {
		set_bits(s, w0, word_mask(first % 64, last % 64));
		return 0;
	}
	set_bits(s, w0, word_mask(first % 64, 63));
	for (size_t w = w0 + 1; w < w1; w++)
		set_bits(s, w, ~0ull);
	set_bits(s, w1, word_mask(0, last % 64));
	return 0;
}

int dirty_set_add_ranges(struct dirty_set *s, const struct stream_range *r, size_t n)
{
	/* Check all first: a bad list from the peer must not half-apply. */
	for (size_t i = 0; i < n; i++)
		if (!in_ram(s, r[i].first, r[i].count))
			return -ERANGE;
	for (size_t i = 0; i < n; i++)
		dirty_set_add(s, r[i].first, r[i].count);
	return 0;
}

bool dirty_set_test(const struct dirty_set *s, uint64_t pfn)
{
	return pfn < s->npages && (s->words[pfn / 64] >> (pfn % 64)) & 1;
}

uint64_t dirty_set_count(const struct dirty_set *s)
{
	return s->count;
}

uint64_t dirty_set_npages(const struct dirty_set *s)
{
	return s->npages;
}

/* First pfn >= from whose bit equals `bit`, or npages. */
static uint64_t find_next(const struct dirty_set *s, uint64_t from, bool bit)
{
	while (from < s->npages) {
		size_t w = (size_t)(from / 64);
		uint64_t word = bit ? s->words[w] : ~s->words[w];
		word &= ~0ull << (from % 64);
		if (word) {
			uint64_t pfn = (uint64_t)w * 64 + (uint64_t)__builtin_ctzll(word);
			return pfn < s->npages ? pfn : s->npages;
		}
		from = ((uint64_t)w + 1) * 64;
	}
	return s->npages;
}

size_t dirty_set_pfns(const struct dirty_set *s, uint64_t *cursor, uint64_t *pfns, size_t max)
{
	size_t n = 0;
	uint64_t pfn = *cursor;

	while (n < max && (pfn = find_next(s, pfn, true)) < s->npages)
		pfns[n++] = pfn++;
	*cursor = n < max ? s->npages : pfn;
	return n;
}

size_t dirty_set_ranges(const struct dirty_set *s, uint64_t *cursor, struct stream_range *r,
			size_t max)
{
	size_t n = 0;
	uint64_t pfn = *cursor;

	while (n < max && (pfn = find_next(s, pfn, true)) < s->npages) {
		uint64_t end = find_next(s, pfn, false);
		r[n++] = (struct stream_range){ .first = pfn, .count = end - pfn };
		pfn = end;
	}
	*cursor = n < max ? s->npages : pfn;
	return n;
}
