/* stats.c - per-checkpoint figures and the pause percentiles. */
#include "colo/stats.h"

#include <stdlib.h>
#include <string.h>

#include "checkpoint/replicate.h"

void stats_commit(struct ckpt_stats *s, const struct repl_stats *r, uint64_t now_ms)
{
	uint64_t pages = r->pages_sent + r->zero_pages;
	s->committed++;
	s->last_seq = r->seq;
	s->last_commit_ms = now_ms;
	s->last_pause_us = r->pause_us;
	s->last_capture_us = r->capture_us;
	s->last_transfer_us = r->transfer_us;
	s->last_pages = pages;
	s->last_bytes = r->bytes_sent;
	s->total_pages += pages;
	s->total_bytes += r->bytes_sent;
	uint64_t p = r->pause_us > UINT32_MAX ? UINT32_MAX : r->pause_us;
	s->pause_us[s->npause++ % STATS_PAUSE_WINDOW] = (uint32_t)p;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t stats_pause_percentile(const struct ckpt_stats *s, unsigned pct)
{
	size_t n = s->npause < STATS_PAUSE_WINDOW ? (size_t)s->npause : STATS_PAUSE_WINDOW;
	if (n == 0 || pct == 0 || pct > 100)
		return 0;
	uint32_t sorted[STATS_PAUSE_WINDOW];
	memcpy(sorted, s->pause_us, n * sizeof(sorted[0]));
	qsort(sorted, n, sizeof(sorted[0]), cmp_u32);
	size_t rank = (n * pct + 99) / 100; /* nearest rank, 1-based */
	return sorted[rank ? rank - 1 : 0];
}
