/* np_int.h - netpath's insides, shared by its files (not a public header):
 *   netpath.c   lifecycle, colo-net-setup, the hooks, stats
 *   np_link.c   the net link's TCP socket: connect/listen, buffered send, decode
 *   np_side.c   the primary's queues and the secondary's tap
 */
#ifndef COLO_NET_NP_INT_H
#define COLO_NET_NP_INT_H

#include "lib/wire.h"
#include "net/link.h"
#include "net/netpath.h"

struct nfq;
struct tapio;
struct inlog;
struct rw;
struct lastseg;

/* Input accepted this recently before a stop may still sit in the tap's queue
 * (QEMU reads it after the resume): see np_input_mark(). */
#define NP_IN_RING 1024
#define NP_IN_MARGIN_NS (20 * 1000000ull)

/* Flows whose last segment the secondary replays at takeover (net/lastseg.h): a
 * VM serves few clients at the moment it fails over; 64 frames of at most 64 KiB. */
#define NP_LAST_FLOWS 64

struct netpath {
	struct loop *loop;
	bool primary;
	char tap[32], bridge[32], setup_cmd[4096], peer_host[64];
	uint16_t queue_out, queue_in, port;
	uint32_t timeout_ms;
	uint64_t config_hash;
	bool installed;	/* our rules are in (primary) / the tap is detached (secondary) */
	bool live;	/* secondary: went live */
	bool live_rules; /* secondary, live: the rewriting NFQUEUE rules are in */

	/* link */
	int lfd, fd;
	bool connecting, up;
	struct wr out;
	size_t out_sent;
	struct link_dec *dec;
	uint64_t retry_timer;

	/* primary */
	struct nfq *q_out, *q_in;
	struct cmp *cmp;
	uint64_t in_seq;	/* last INPUT seq on this connection */
	uint64_t in_ns[NP_IN_RING]; /* when INPUT seq s was accepted: in_ns[s % NP_IN_RING] */
	uint64_t gen_off;	/* comparator generation = replicator seq + gen_off */
	uint64_t last_gen;
	bool began;
	uint64_t tick_timer;
	np_checkpoint_fn ckpt_fn;
	void *ckpt_arg;

	/* secondary */
	struct tapio *tio;
	struct inlog *log;
	struct rw *rw;
	struct lastseg *last; /* the VM's last segment per TCP flow, for np_go_live() */
	bool loaded;		/* gen is valid */
	bool injecting;		/* the VM runs (not stopped for a checkpoint) */
	uint64_t gen;
	uint8_t vm_mac[6];
	bool have_mac;
	struct wr batch_buf;
	struct link_batch batch;
	bool batch_open;
	uint64_t flush_timer;

	struct np_stats st;
};

/* np_link.c */
int npl_start(struct netpath *np);	/* listen (secondary) or connect (primary) */
void npl_stop(struct netpath *np);
void npl_flush(struct netpath *np);	/* write what is buffered in np->out */
void npl_drop(struct netpath *np, const char *why); /* close the connection; retry */

/* np_side.c */
int nps_open_primary(struct netpath *np);
int nps_open_secondary(struct netpath *np);
void nps_close(struct netpath *np);
void nps_link_up(struct netpath *np);	/* a new link connection */
void nps_record(struct netpath *np, const struct link_rec *rec);
void nps_flush_batch(struct netpath *np);
void nps_inject(void *arg, const uint8_t *frame, size_t len);
int nps_open_live(struct netpath *np);	/* secondary, live: rewrite through NFQUEUE */
void nps_replay(struct netpath *np);	/* secondary, live: resend each flow's last segment */

#endif
