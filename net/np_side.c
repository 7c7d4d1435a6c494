/* np_side.c - the two ends of the data path (docs/net.md §2): the primary's
 * queues feeding the comparator and the link, the secondary's tap feeding the
 * link and the VM. */
#include <errno.h>
#include <string.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "net/inlog.h"
#include "net/lastseg.h"
#include "net/nfqueue.h"
#include "net/np_int.h"
#include "net/rewrite.h"
#include "net/tap_io.h"

#define NFQ_MAXLEN 8192
#define TICK_MS 5

/* ---- primary ---- */

static void on_verdict(void *arg, uint64_t id, enum cmp_verdict v)
{
	struct netpath *np = arg;
	nfq_verdict(np->q_out, id, v == CMP_ACCEPT);
}

static void on_cmp_checkpoint(void *arg, enum cmp_reason why)
{
	struct netpath *np = arg;
	if (np->ckpt_fn)
		np->ckpt_fn(np->ckpt_arg, cmp_reason_name(why));
}

static void on_output(void *arg, const struct nfq_pkt *p)
{
	struct netpath *np = arg;
	cmp_primary(np->cmp, p->id, p->frame, p->len, mono_ns());
}

/* Input is never held (only output can contradict): mirror it if the link is up,
 * accept it at once either way. Unmirrored input makes the secondary diverge; the
 * comparator's timeout then forces a checkpoint, which repairs it. */
static void on_input(void *arg, const struct nfq_pkt *p)
{
	struct netpath *np = arg;
	if (np->up && link_enc_input(&np->out, np->in_seq + 1, p->frame, p->len) == 0) {
		np->in_seq++;
		np->in_ns[np->in_seq % NP_IN_RING] = mono_ns();
		np->st.input_sent++;
		npl_flush(np);
	} else {
		np->st.input_unmirrored++;
	}
	nfq_verdict(np->q_in, p->id, true);
}

static int64_t on_tick(struct loop *loop, uint64_t id, void *arg)
{
	struct netpath *np = arg;
	uint64_t now = mono_ns();
	if (cmp_next_deadline(np->cmp) <= now)
		cmp_tick(np->cmp, now);
	return TICK_MS;
}

int nps_open_primary(struct netpath *np)
{
	struct cmp_config cc;
	static const struct cmp_ops ops = { .verdict = on_verdict, .checkpoint = on_cmp_checkpoint };
	cmp_config_default(&cc);
	if (np->timeout_ms)
		cc.timeout_ms = np->timeout_ms;
	int r = cmp_new(&cc, &ops, np, &np->cmp);
	if (r < 0)
		return r;
	r = nfq_open(np->loop, np->queue_out, NFQ_MAXLEN, on_output, np, &np->q_out);
	if (r == 0)
		r = nfq_open(np->loop, np->queue_in, NFQ_MAXLEN, on_input, np, &np->q_in);
	if (r == 0)
		r = loop_timer_add(np->loop, TICK_MS, on_tick, np, &np->tick_timer);
	if (r < 0)
		log_err("net: cannot open NFQUEUE %u/%u: %s%s", np->queue_out, np->queue_in,
			strerror(-r), r == -EBUSY ? " (another agent has the queue; see "
			"--net-queue-out/--net-queue-in)" : "");
	return r;
}

/* ---- secondary ---- */

static void batch_end(struct netpath *np)
{
	if (!np->batch_open)
		return;
	np->batch_open = false;
	link_batch_end(&np->batch);
	if (np->up)
		wr_bytes(&np->out, np->batch_buf.buf, np->batch_buf.len);
	wr_reset(&np->batch_buf);
	np->st.batches++;
}

void nps_flush_batch(struct netpath *np)
{
	batch_end(np);
	npl_flush(np);
}

static int64_t on_flush(struct loop *loop, uint64_t id, void *arg)
{
	struct netpath *np = arg;
	np->flush_timer = 0;
	nps_flush_batch(np);
	return LOOP_TIMER_DONE;
}

/* One OUTPUT_BATCH per loop round: frames captured in the same round share it. */
static void on_capture(void *arg, const uint8_t *frame, size_t len)
{
	struct netpath *np = arg;
	uint8_t copy[LINK_FRAME_MAX];
	np->st.captured++;
	if (len < LINK_FRAME_MIN || len > sizeof(copy))
		return;
	if (!np->have_mac && !(frame[6] & 1)) {
		/* Mirrored input comes from NFQUEUE without its destination MAC. */
		memcpy(np->vm_mac, frame + 6, 6);
		np->have_mac = true;
	}
	memcpy(copy, frame, len);
	rw_output(np->rw, copy, len, mono_ns());
	/* Unchanged by rw_output() while protected: the VM's own sequence numbers,
	 * rewritten only when replayed (nps_replay()). Kept even with the link down:
	 * it is a failover that needs them. */
	if (!np->live && lastseg_note(np->last, copy, len) < 0)
		log_warn("net: no memory for the last segment of a flow; it is not replayed");
	if (!np->loaded || !np->up || np->live)
		return;
	for (int tries = 0; tries < 2; tries++) {
		if (!np->batch_open) {
			link_batch_begin(&np->batch, &np->batch_buf, np->gen);
			np->batch_open = true;
		}
		if (link_batch_add(&np->batch, copy, len) != -E2BIG)
			break;
		batch_end(np);
	}
	if (!np->flush_timer)
		loop_timer_add(np->loop, 0, on_flush, np, &np->flush_timer);
}

void nps_inject(void *arg, const uint8_t *frame, size_t len)
{
	struct netpath *np = arg;
	uint8_t copy[LINK_FRAME_MAX];
	if (len > sizeof(copy) || !np->tio)
		return;
	memcpy(copy, frame, len);
	if (np->have_mac)
		memcpy(copy, np->vm_mac, 6);
	else if (!np->st.injected_nomac++)
		log_warn("net: injecting input before the VM's MAC address is known (no frame "
			 "captured from %s yet): the VM drops it until a checkpoint repairs it",
			 np->tap);
	rw_input(np->rw, copy, len, mono_ns());
	if (tapio_inject(np->tio, copy, len) == 0)
		np->st.injected++;
}

/* Closed and idle connections leave the rewriter's table (it is bounded). */
static int64_t on_rw_tick(struct loop *loop, uint64_t id, void *arg)
{
	struct netpath *np = arg;
	rw_tick(np->rw, mono_ns());
	return 1000;
}

int nps_open_secondary(struct netpath *np)
{
	struct rw_config rc;
	rw_config_default(&rc);
	int r = rw_new(&rc, &np->rw);
	if (r == 0)
		r = inlog_new(8192, 32u << 20, &np->log);
	if (r == 0)
		r = lastseg_new(NP_LAST_FLOWS, &np->last);
	if (r == 0)
		r = tapio_open(np->loop, np->tap, on_capture, np, &np->tio);
	if (r == 0)
		r = loop_timer_add(np->loop, 1000, on_rw_tick, np, &np->tick_timer);
	if (r < 0)
		log_err("net: cannot open the tap %s: %s", np->tap, strerror(-r));
	return r;
}

/* ---- secondary, live ---- */

/* After a takeover, connections opened since the last checkpoint the secondary
 * applied still carry the secondary VM's own sequence numbers; the client knows
 * the primary's. Both directions pass through NFQUEUE so the rewriter can fix
 * every segment (docs/net.md §5); the rest is accepted unchanged. */
static void live_frame(struct netpath *np, struct nfq *q, const struct nfq_pkt *p, bool out)
{
	uint8_t copy[LINK_FRAME_MAX];
	if (p->len > sizeof(copy)) {
		nfq_verdict(q, p->id, true);
		return;
	}
	memcpy(copy, p->frame, p->len);
	int r = out ? rw_output(np->rw, copy, p->len, mono_ns())
		    : rw_input(np->rw, copy, p->len, mono_ns());
	if (r == 1)
		nfq_accept_frame(q, p->id, copy, p->len);
	else
		nfq_verdict(q, p->id, true);
}

static void on_live_out(void *arg, const struct nfq_pkt *p)
{
	struct netpath *np = arg;
	live_frame(np, np->q_out, p, true);
}

static void on_live_in(void *arg, const struct nfq_pkt *p)
{
	struct netpath *np = arg;
	live_frame(np, np->q_in, p, false);
}

int nps_open_live(struct netpath *np)
{
	int r = nfq_open(np->loop, np->queue_out, NFQ_MAXLEN, on_live_out, np, &np->q_out);
	if (r == 0)
		r = nfq_open(np->loop, np->queue_in, NFQ_MAXLEN, on_live_in, np, &np->q_in);
	if (r < 0)
		log_err("net: cannot open NFQUEUE %u/%u for rewriting after the takeover: %s",
			np->queue_out, np->queue_in, strerror(-r));
	return r;
}

struct replay {
	struct netpath *np;
	struct tapio *lan;
	size_t sent, failed;
};

static void replay_one(void *arg, const uint8_t *frame, size_t len)
{
	struct replay *rp = arg;
	uint8_t copy[LINK_FRAME_MAX];
	if (len > sizeof(copy))
		return;
	memcpy(copy, frame, len);
	/* The same rewriting the live path applies (live_frame()): a connection opened
	 * since the last checkpoint gets the sequence numbers the client knows. */
	rw_output(rp->np->rw, copy, len, mono_ns());
	if (tapio_inject(rp->lan, copy, len) == 0)
		rp->sent++;
	else
		rp->failed++;
}

/* The VM's last data segment (or FIN) per TCP flow, resent once the tap is on the
 * bridge: a client whose request was lost with the primary otherwise waits for the
 * guest's next retransmission timeout before it hears from the VM again (the
 * guest's earlier retransmissions went to the dead primary). These bytes come from
 * the VM that goes on, so they are what its own retransmission would send; a
 * duplicate costs the client one dup-ACK. It helps when the request in flight
 * reached the secondary (the replay is the reply); a request lost with the primary
 * still waits for the client's own RTO (docs/net.md §2.2). Sent from the bridge itself: the frame leaves by the
 * uplink towards the client's MAC; a frame sent from the bridge device does not
 * pass br_netfilter's hooks, so the NFQUEUE rules do not rewrite it twice. */
void nps_replay(struct netpath *np)
{
	struct replay rp = { .np = np };
	int r = tapio_open(np->loop, np->bridge, NULL, NULL, &rp.lan);
	if (r < 0) {
		log_warn("net: cannot replay the VM's last segments on %s: %s", np->bridge,
			 strerror(-r));
		return;
	}
	lastseg_each(np->last, replay_one, &rp);
	tapio_close(rp.lan);
	lastseg_clear(np->last);
	np->st.replayed += rp.sent;
	log_info("net: replayed %zu TCP segment(s) to %s at takeover (the VM's last per flow)%s",
		 rp.sent, np->bridge, rp.failed ? "; some could not be sent" : "");
}

/* ---- both ---- */

void nps_link_up(struct netpath *np)
{
	if (np->primary) {
		np->in_seq = 0; /* INPUT seq restarts at 1 on every connection */
		return;
	}
	/* The primary numbers input per connection: forget the old numbering. */
	struct inlog *l = NULL;
	if (inlog_new(8192, 32u << 20, &l) == 0) {
		inlog_free(np->log);
		np->log = l;
	}
	if (np->loaded) {
		link_batch_begin(&np->batch, &np->batch_buf, np->gen);
		np->batch_open = true;
		batch_end(np);
	}
}

static void primary_record(struct netpath *np, const struct link_rec *rec)
{
	uint64_t now = mono_ns();
	int r = 0;
	if (rec->type == LINK_REC_OUTPUT_BATCH) {
		struct link_batch_iter it;
		const uint8_t *f;
		size_t len;
		if (rec->batch.count == 0)
			r = cmp_secondary_gen(np->cmp, rec->batch.gen, now);
		link_batch_iter_init(&it, rec);
		while (r == 0 && link_batch_next(&it, &f, &len))
			r = cmp_secondary(np->cmp, rec->batch.gen, f, len, now);
		if (r < 0)
			npl_drop(np, "the secondary sent a generation newer than ours");
	} else if (rec->type == LINK_REC_ERROR) {
		log_err("net link: the secondary reports %s: %s", link_code_name(rec->error.code),
			rec->error.reason);
	}
}

static void secondary_record(struct netpath *np, const struct link_rec *rec)
{
	if (rec->type == LINK_REC_ERROR) {
		log_err("net link: the primary reports %s: %s", link_code_name(rec->error.code),
			rec->error.reason);
		return;
	}
	if (rec->type != LINK_REC_INPUT || np->live)
		return;
	int r = inlog_add(np->log, rec->input.seq, rec->input.frame, rec->input.len);
	/* Stopped for a checkpoint: logged only; inlog_loaded() injects what is above
	 * the new state's mark. */
	if (r == 1 && np->injecting)
		nps_inject(np, rec->input.frame, rec->input.len);
}

void nps_record(struct netpath *np, const struct link_rec *rec)
{
	if (np->primary)
		primary_record(np, rec);
	else
		secondary_record(np, rec);
}

void nps_close(struct netpath *np)
{
	if (np->tick_timer)
		loop_timer_cancel(np->loop, np->tick_timer);
	if (np->flush_timer)
		loop_timer_cancel(np->loop, np->flush_timer);
	np->tick_timer = np->flush_timer = 0;
	if (np->cmp)
		cmp_release_all(np->cmp, mono_ns()); /* verdicts before the queues close */
	nfq_close(np->q_out);
	nfq_close(np->q_in);
	np->q_out = np->q_in = NULL;
	cmp_free(np->cmp);
	np->cmp = NULL;
	tapio_close(np->tio);
	np->tio = NULL;
	inlog_free(np->log);
	np->log = NULL;
	rw_free(np->rw);
	np->rw = NULL;
	lastseg_free(np->last);
	np->last = NULL;
	wr_free(&np->batch_buf);
}
