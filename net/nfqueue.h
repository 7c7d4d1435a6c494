/* nfqueue.h - one NFQUEUE over libnl-nf-3 (docs/net.md §2): the kernel hands the
 * agent bridged IP packets with an id, the agent gives each a verdict later.
 *
 * Frames: NFQUEUE carries the IP packet, not the Ethernet frame. The callback gets
 * a synthesized frame: destination MAC zero, source MAC from the packet's hardware
 * address (if the kernel gave one), the VLAN tag if the kernel reported one, the
 * ethertype, then the packet. The comparator never compares MAC addresses, so a
 * frame from here compares equal to the secondary's real frame.
 *
 * Lifecycle: nfq_open() binds the queue (copy-packet mode, whole packets) and
 * registers a non-blocking fd on the loop -> callbacks, nfq_verdict() at any time
 * -> nfq_close() (the kernel drops what is still queued: release first).
 * -EBUSY from nfq_open(): another process has the queue.
 */
#ifndef COLO_NET_NFQUEUE_H
#define COLO_NET_NFQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct nfq;

struct nfq_pkt {
	uint64_t id;	     /* for nfq_verdict() */
	const uint8_t *frame; /* synthesized Ethernet frame, valid during the callback */
	size_t len;
	uint32_t indev, physindev, physoutdev; /* ifindex, 0 if unknown */
};

/* Called from the loop (or nfq_drain()) for each queued packet. */
typedef void (*nfq_cb)(void *arg, const struct nfq_pkt *p);

/* maxlen: the kernel's queue length (packets beyond it are dropped: no bypass). */
int nfq_open(struct loop *loop, uint16_t queue, uint32_t maxlen, nfq_cb cb, void *arg,
	     struct nfq **out);
void nfq_close(struct nfq *q);
/* 0 or -EIO (logged once; the packet stays queued in the kernel until the queue
 * closes). */
int nfq_verdict(struct nfq *q, uint64_t id, bool accept);
/* Accept packet id with a changed content: frame is the callback's frame (its
 * synthesized Ethernet header is skipped), e.g. after a TCP rewrite. 0, -EINVAL or
 * -EIO. */
int nfq_accept_frame(struct nfq *q, uint64_t id, const uint8_t *frame, size_t len);
/* Read every packet queued now (before a checkpoint's begin). 0 or -EIO. */
int nfq_drain(struct nfq *q);

struct nfq_stats {
	uint64_t packets, accepted, dropped, verdict_errors, overruns, bad_messages, truncated;
};
void nfq_get_stats(const struct nfq *q, struct nfq_stats *out);

#endif
