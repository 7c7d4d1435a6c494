/* stats.h - checkpoint figures for `coloctl status`: counts by reason, the pause
 * distribution over the last STATS_PAUSE_WINDOW checkpoints, dirty pages and bytes. */
#ifndef COLO_COLO_STATS_H
#define COLO_COLO_STATS_H

#include <stdint.h>

#include "colo/agent.h"

struct repl_stats;

/* p50/p99 over a sliding window: recent behaviour, bounded memory. */
#define STATS_PAUSE_WINDOW 1024

struct ckpt_stats {
	uint64_t by_reason[CKPT__COUNT]; /* started */
	uint64_t coalesced;		 /* triggers merged into another checkpoint */
	uint64_t committed;
	uint64_t last_seq;
	uint64_t last_commit_ms; /* mono_ms(); 0 = none */
	uint64_t last_pause_us, last_capture_us, last_transfer_us;
	uint64_t last_pages, last_bytes, total_pages, total_bytes;
	uint32_t pause_us[STATS_PAUSE_WINDOW];
	uint64_t npause; /* samples ever recorded */
};

void stats_commit(struct ckpt_stats *s, const struct repl_stats *r, uint64_t now_ms);
/* Nearest-rank percentile (0 < pct <= 100) of the window; 0 when empty. */
uint64_t stats_pause_percentile(const struct ckpt_stats *s, unsigned pct);

#endif
