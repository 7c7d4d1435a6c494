/* lastseg.h - the secondary's "last segment" table (docs/net.md §2.2): for each TCP
 * flow, the most recent data-bearing (or FIN) segment the secondary VM sent since
 * the last checkpoint load. At takeover they are replayed to the LAN once, so the
 * client sees the VM's latest bytes at once (new data, or a duplicate that makes it
 * ACK/SACK and retransmit what it lost) instead of after the guest's next RTO.
 *
 * Only TCP: a duplicate TCP segment is harmless, a duplicate datagram is not. A SYN
 * or an RST from the VM forgets the flow (a new connection, or a dead one). Bounded:
 * at most max_flows flows, one frame each; a new flow beyond evicts the least
 * recently updated one (counted).
 *
 * Pure: no kernel, no clock. Lifecycle: lastseg_new() -> lastseg_note() on every
 * frame the VM sends, lastseg_clear() at every checkpoint load -> lastseg_each() at
 * takeover -> lastseg_free().
 */
#ifndef COLO_NET_LASTSEG_H
#define COLO_NET_LASTSEG_H

#include <stddef.h>
#include <stdint.h>

struct lastseg;

int lastseg_new(uint32_t max_flows, struct lastseg **out); /* 0, -EINVAL or -ENOMEM */
void lastseg_free(struct lastseg *t);

/* A frame the VM sent. 1: kept as its flow's last segment; 0: not kept (not TCP,
 * no data and no FIN; a SYN/RST forgets the flow); -ENOMEM. */
int lastseg_note(struct lastseg *t, const uint8_t *frame, size_t len);
/* Forget every flow: the VM's state was replaced. */
void lastseg_clear(struct lastseg *t);

/* Call fn for every kept frame, least recently updated first; the frame is valid
 * during the call. Returns how many. */
typedef void (*lastseg_fn)(void *arg, const uint8_t *frame, size_t len);
size_t lastseg_each(const struct lastseg *t, lastseg_fn fn, void *arg);

struct lastseg_stats {
	uint64_t flows;   /* now */
	uint64_t noted;   /* frames kept */
	uint64_t evicted; /* flows pushed out by a new one: the table was full */
};
void lastseg_get_stats(const struct lastseg *t, struct lastseg_stats *out);

#endif
