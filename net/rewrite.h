/* rewrite.h - the secondary's TCP sequence rewriter (docs/net.md §5), QEMU's
 * filter-rewriter: a connection opened since the last checkpoint has a different
 * ISN in the secondary VM than the client knows (the primary's). The secondary
 * learns the offset from its VM's SYN/SYN-ACK and the first ACK that comes back,
 * and rewrites frames in place, fixing the TCP checksum incrementally (RFC 1624):
 *   input to the VM (rw_input):   ack += off, SACK block edges += off;
 *   output of the VM (rw_output): seq -= off, only after rw_go_live().
 *
 * Lifecycle: rw_new() -> protected: rw_output() on every captured frame (learns),
 * rw_input() on every injected frame, rw_checkpoint_loaded() after every load ->
 * rw_go_live() at takeover (no more learning; offsets kept until connections close
 * or idle out) -> rw_free().
 */
#ifndef COLO_NET_REWRITE_H
#define COLO_NET_REWRITE_H

#include <stddef.h>
#include <stdint.h>

struct rw;

struct rw_config {
	uint32_t max_conns; /* default 65536; new connections beyond are not rewritten */
	uint32_t idle_ms;   /* forget a connection idle this long; default 600000 */
	uint32_t closed_ms; /* ... or closed (FIN both ways, or RST) this long; default 10000 */
};
void rw_config_default(struct rw_config *cfg);

int rw_new(const struct rw_config *cfg, struct rw **out); /* 0 or -ENOMEM / -EINVAL */
void rw_free(struct rw *r);

/* A frame the VM sent. Returns 1 if rewritten (only after rw_go_live()), else 0. */
int rw_output(struct rw *r, uint8_t *frame, size_t len, uint64_t now_ns);
/* A frame going into the VM. Returns 1 if rewritten, else 0. */
int rw_input(struct rw *r, uint8_t *frame, size_t len, uint64_t now_ns);

/* The VM's state is now a checkpoint of the primary's: every offset is 0. */
void rw_checkpoint_loaded(struct rw *r);
/* Takeover: output is rewritten from now on; nothing new is learnt. */
void rw_go_live(struct rw *r);
/* Forget closed and idle connections. */
void rw_tick(struct rw *r, uint64_t now_ns);

struct rw_stats {
	uint64_t conns;	       /* now */
	uint64_t learnt;       /* offsets learnt (nonzero ones) */
	uint64_t rewritten_in, rewritten_out;
	uint64_t table_full;   /* connections not tracked: the table was full */
	uint64_t expired;
};
void rw_get_stats(const struct rw *r, struct rw_stats *out);

#endif
