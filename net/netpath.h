/* netpath.h - the agent's network data path (docs/net.md §2, §6): one object that
 * owns the kernel plumbing, the net link and the comparator for one agent, so
 * colo/ only maps its hooks onto the calls below. net/ never includes colo/.
 *
 *   primary:   NFQUEUE q_out (VM output -> comparator, verdict later), NFQUEUE q_in
 *              (VM input -> INPUT record on the link, accepted at once), the link
 *              (we connect to the secondary, retrying), the comparator.
 *   secondary: AF_PACKET on the tap (capture -> OUTPUT_BATCH, inject INPUT), the
 *              input log, the rewriter, the link (we listen, one peer at a time).
 *
 * colo-net-setup runs `install` in np_new(); the primary runs `remove` in np_free()
 * (every exit path); the secondary runs `remove` only in np_go_live(): removing it
 * puts the tap on the LAN, which a protected secondary's VM must never reach.
 */
#ifndef COLO_NET_NETPATH_H
#define COLO_NET_NETPATH_H

#include <stdbool.h>
#include <stdint.h>

#include "net/compare.h"

struct loop;
struct netpath;

struct netpath_config {
	bool primary;
	const char *tap, *bridge;
	const char *setup_cmd;	/* path of colo-net-setup */
	uint16_t queue_out, queue_in;
	uint32_t timeout_ms;	/* the comparator's compare timeout */
	const char *peer_host;	/* primary: the secondary's link address (numeric) */
	uint16_t port;		/* primary: connect to; secondary: listen on (any address) */
	uint64_t config_hash;	/* the VM's; both ends must agree (net-link.md IDENTITY) */
};

/* The comparator asks for a checkpoint (why: "mismatch", "timeout", "queue-full"). */
typedef void (*np_checkpoint_fn)(void *arg, const char *why);

/* Install the rules, open the queues / tap and the link. 0 or -errno (logged;
 * nothing left installed). */
int np_new(struct loop *loop, const struct netpath_config *cfg, struct netpath **out);
void np_set_checkpoint(struct netpath *np, np_checkpoint_fn fn, void *arg);
void np_free(struct netpath *np);

/* The hooks of docs/net.md §6. gen: the checkpoint's number in the comparator's
 * numbering (grows; np maps a restarted replicator's numbers onto it). */
uint64_t np_stopped(struct netpath *np, uint64_t seq);	/* returns the input mark */
void np_committed(struct netpath *np, uint64_t seq);
void np_release_all(struct netpath *np);
void np_loaded(struct netpath *np, uint64_t seq, uint64_t input_mark);
int np_go_live(struct netpath *np);

struct np_stats {
	struct cmp_stats cmp; /* primary */
	uint64_t input_sent, input_unmirrored; /* primary: frames mirrored / not (no link) */
	uint64_t captured, injected, reinjected, batches; /* secondary */
	uint64_t injected_nomac; /* secondary: before the VM's MAC was known */
	uint64_t replayed, replay_evicted; /* secondary: last segments resent at takeover;
					     flows pushed out of that table */
	uint64_t rewritten_in, rewritten_out, rw_offsets; /* secondary: the rewriter */
	uint64_t link_connects, link_errors;
	bool link_up;
};
void np_get_stats(const struct netpath *np, struct np_stats *out);

#endif
