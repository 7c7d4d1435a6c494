/* compare.h - the packet comparator core (docs/net.md §4): the primary VM's output
 * frames are held until the secondary VM produced the same, or a checkpoint made
 * the two equal. No kernel, no I/O, no clock: frames come in, verdicts and
 * checkpoint requests go out through struct cmp_ops, time is passed in (ns, any
 * monotonic origin).
 *
 * Lifecycle: cmp_new() -> passthrough (every primary frame accepted at once) ->
 * cmp_checkpoint_begin(g) starts holding (generation g) -> frames, ticks,
 * begin/commit for every checkpoint -> cmp_release_all() (degraded: back to
 * passthrough) -> cmp_free() (gives no verdicts: the caller drops its queue).
 *
 * Every id given to cmp_primary() gets exactly one verdict, now or later. The ops
 * run synchronously inside the calls below and must not call back into the
 * comparator (that is a bug: abort).
 */
#ifndef COLO_NET_COMPARE_H
#define COLO_NET_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "net/packet.h"

struct cmp;

enum cmp_verdict { CMP_ACCEPT, CMP_DROP };

enum cmp_reason { CMP_REASON_MISMATCH, CMP_REASON_TIMEOUT, CMP_REASON_QUEUE_FULL,
		  CMP_REASON__COUNT };
const char *cmp_reason_name(enum cmp_reason r); /* "mismatch", "timeout", "queue-full" */

struct cmp_ops {
	/* The fate of primary frame id. */
	void (*verdict)(void *arg, uint64_t id, enum cmp_verdict v);
	/* Take a checkpoint (colo/: agent_request_checkpoint(CKPT_COMPARATOR)). At most
	 * once per generation, repeated after retry_ms without a begin. */
	void (*checkpoint)(void *arg, enum cmp_reason why);
};

struct cmp_config {
	uint32_t timeout_ms;	 /* unmatched primary frame -> checkpoint; default 50 */
	uint32_t retry_ms;	 /* repeat an unanswered request; default 1000 */
	uint32_t max_held;	 /* primary frames held with data; default 8192 */
	uint64_t max_held_bytes; /* default 32 MiB */
	uint32_t max_pending;	 /* ids awaiting a commit; default 65536; then DROP */
	uint32_t max_sec;	 /* secondary frames buffered; default 8192 */
	uint64_t max_sec_bytes;	 /* default 32 MiB */
	uint32_t max_flows;	 /* default 16384 */
	uint32_t flow_idle_ms;	 /* forget empty idle flows; default 60000 */
};
void cmp_config_default(struct cmp_config *cfg);

/* 0 or -ENOMEM / -EINVAL (a zero limit). */
int cmp_new(const struct cmp_config *cfg, const struct cmp_ops *ops, void *arg, struct cmp **out);
void cmp_free(struct cmp *c);

/* A frame the primary VM sent, with the caller's id (the NFQUEUE packet id). The
 * comparator copies what it needs; frame is not kept. */
void cmp_primary(struct cmp *c, uint64_t id, const uint8_t *frame, size_t len, uint64_t now_ns);

/* A frame the secondary VM sent while running generation gen. 0, or -EPROTO when
 * gen is newer than the primary's (the peer is broken: the caller logs and treats
 * the link as corrupt). Frames of older generations are counted and dropped. */
int cmp_secondary(struct cmp *c, uint64_t gen, const uint8_t *frame, size_t len, uint64_t now_ns);
/* The secondary runs generation gen now (an empty OUTPUT_BATCH). 0 or -EPROTO. */
int cmp_secondary_gen(struct cmp *c, uint64_t gen, uint64_t now_ns);

/* The primary VM is stopped for checkpoint seq and every frame it sent before has
 * been given to cmp_primary(): what is held now is released when seq commits.
 * seq must grow (a smaller one is a bug in the caller: abort). */
void cmp_checkpoint_begin(struct cmp *c, uint64_t seq, uint64_t now_ns);
/* Checkpoint seq is committed: release what was held when it began. */
void cmp_checkpoint_commit(struct cmp *c, uint64_t seq, uint64_t now_ns);
/* No secondary any more: accept everything held, then pass everything through
 * until the next cmp_checkpoint_begin(). */
void cmp_release_all(struct cmp *c, uint64_t now_ns);

/* Timeouts, request retries, idle flows. Call at cmp_next_deadline() at the latest. */
void cmp_tick(struct cmp *c, uint64_t now_ns);
/* When cmp_tick() has work next (ns); UINT64_MAX: nothing pending. */
uint64_t cmp_next_deadline(const struct cmp *c);

struct cmp_stats {
	uint64_t held;		/* now: primary frames without a verdict */
	uint64_t held_bytes;	/* now: of those, octets kept for comparison */
	uint64_t primary_frames, secondary_frames;
	uint64_t passed;	/* primary frames not compared (PASS class, passthrough) */
	uint64_t matched;	/* released because the secondary matched */
	uint64_t released_ckpt; /* released by a commit */
	uint64_t released_all;	/* released by cmp_release_all() */
	uint64_t dropped;	/* DROP verdicts (max_pending reached) */
	uint64_t mismatches;
	uint64_t timeouts;	/* generations in which a frame timed out */
	uint64_t requests[CMP_REASON__COUNT];
	uint64_t retries;	/* requests repeated after retry_ms */
	uint64_t offsets;	/* TCP handshakes matched with an ISN offset != 0 */
	uint64_t sec_stale;	/* secondary frames of an older generation */
	uint64_t sec_dup;	/* secondary TCP octets before the verified mark */
	uint64_t sec_dropped;	/* secondary frames discarded (frozen flow/generation, budget) */
	uint64_t sec_passed;	/* secondary PASS-class frames */
	uint64_t flows;		/* now */
	uint64_t generation;	/* the primary's current generation */
	uint64_t hold_p50_us, hold_p99_us, hold_samples;
	struct pkt_counters parse_primary, parse_secondary;
};
void cmp_get_stats(const struct cmp *c, struct cmp_stats *out);

#endif
