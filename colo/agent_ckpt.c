/* agent_ckpt.c - when the primary takes a checkpoint: triggers are coalesced (one
 * pending at a time, keeping the most important reason), rate-limited (no start
 * sooner than --min-interval after the last commit) and bounded (no longer than
 * --max-interval after it). docs/colo-states.md, "Checkpoint triggers". */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "checkpoint/replicate.h"
#include "colo/agent_int.h"
#include "lib/log.h"
#include "lib/loop.h"

/* After the replicator refused to start one, try again this much later. */
#define CKPT_RETRY_MS 100

static const char *const reason_names[CKPT__COUNT] = {
	[CKPT_PERIODIC] = "periodic",
	[CKPT_COMPARATOR] = "comparator",
	[CKPT_OPERATOR] = "operator",
	[CKPT_HANDOVER] = "handover",
};

const char *ckpt_reason_name(enum ckpt_reason r)
{
	return (unsigned)r < CKPT__COUNT ? reason_names[r] : "?";
}

static int64_t on_ckpt_timer(struct loop *loop, uint64_t id, void *arg)
{
	struct agent *a = arg;
	a->ckpt_timer = 0;
	struct fsm_ev ev = { .type = EV_CHECKPOINT, .fd = -1, .timer = true,
			     .ckpt = a->ckpt_pending ? a->pending_reason : CKPT_PERIODIC,
			     .reason = a->ckpt_pending ? "minimum interval passed"
						       : "maximum interval reached" };
	agent_fsm(a, &ev);
	return LOOP_TIMER_DONE;
}

static void arm(struct agent *a, uint64_t delay_ms)
{
	if (a->ckpt_timer)
		loop_timer_cancel(a->loop, a->ckpt_timer);
	a->ckpt_timer = 0;
	if (loop_timer_add(a->loop, (int64_t)delay_ms, on_ckpt_timer, a, &a->ckpt_timer) < 0)
		log_err("primary: cannot arm the checkpoint timer (out of memory): periodic "
			"checkpoints stop");
}

void ckpt_trigger(struct agent *a, enum ckpt_reason r, bool timer)
{
	if (timer && a->ckpt_pending)
		return; /* the pending trigger's own wake-up */
	if (a->ckpt_pending || a->ckpt_in_flight)
		a->stats.coalesced++;
	if (!a->ckpt_pending || r > a->pending_reason)
		a->pending_reason = r;
	a->ckpt_pending = true;
}

static int start(struct agent *a, enum ckpt_reason r)
{
	int rc = a->rops->checkpoint(a->repl);
	if (rc == -EBUSY) {
		arm(a, CKPT_RETRY_MS); /* the replicator is still busy: stay pending */
		return 0;
	}
	if (rc < 0) {
		log_err("primary: the replicator refused a %s checkpoint: %s; retrying in %d ms",
			reason_names[r], strerror(-rc), CKPT_RETRY_MS);
		arm(a, CKPT_RETRY_MS);
		return rc;
	}
	if (a->ckpt_timer)
		loop_timer_cancel(a->loop, a->ckpt_timer);
	a->ckpt_timer = 0;
	a->ckpt_pending = false;
	a->ckpt_in_flight = true;
	a->cur_reason = r;
	a->ckpt_started++;
	a->stats.by_reason[r]++;
	return 1;
}

void ckpt_consider(struct agent *a)
{
	if (!a->ckpt_pending || a->ckpt_in_flight)
		return;
	uint64_t now = mono_ms(), earliest = a->stats.last_commit_ms + a->cfg.min_interval_ms;
	if (now < earliest) {
		arm(a, earliest - now);
		return;
	}
	start(a, a->pending_reason);
}

void ckpt_schedule(struct agent *a)
{
	uint64_t now = mono_ms(), base = a->stats.last_commit_ms ? a->stats.last_commit_ms : now;
	uint64_t due = base + (a->ckpt_pending ? a->cfg.min_interval_ms : a->cfg.max_interval_ms);
	arm(a, due > now ? due - now : 0);
}

void ckpt_cancel(struct agent *a)
{
	if (a->ckpt_timer)
		loop_timer_cancel(a->loop, a->ckpt_timer);
	a->ckpt_timer = 0;
	a->ckpt_pending = false;
	a->ckpt_in_flight = false;
}

int ckpt_start_handover(struct agent *a)
{
	a->ckpt_pending = false;
	int r = start(a, CKPT_HANDOVER);
	return r == 1 ? 0 : (r < 0 ? r : -EBUSY);
}

void ckpt_committed(struct agent *a, const struct repl_stats *st)
{
	uint64_t now = mono_ms();
	if (a->state == AS_SYNCING) {
		/* The initial sync is not a checkpoint of the loop: logged, not counted. */
		log_info("%s: initial synchronisation committed: %" PRIu64 " pages (%" PRIu64
			 " zero), %" PRIu64 " bytes, pause %.1f ms", role_name(a->cfg.role),
			 st->pages_sent + st->zero_pages, st->zero_pages, st->bytes_sent,
			 (double)st->pause_us / 1000.0);
		a->stats.last_commit_ms = now;
		a->stats.last_seq = st->seq;
	} else {
		stats_commit(&a->stats, st, now);
		if (a->cfg.role == ROLE_PRIMARY)
			log_info("checkpoint %" PRIu64 " committed: reason %s pause %.3f ms (suspend %.3f, "
				 "capture %.3f) transfer %.3f ms pages %" PRIu64 " bytes %" PRIu64,
				 st->seq, ckpt_reason_name(a->cur_reason), (double)st->pause_us / 1000.0,
				 (double)st->suspend_us / 1000.0, (double)st->capture_us / 1000.0,
				 (double)st->transfer_us / 1000.0, st->pages_sent + st->zero_pages,
				 st->bytes_sent);
	}
	vm_disk_check(a); /* Xen disk replication: its errors are silent until asked */
	if (a->cfg.role == ROLE_PRIMARY) {
		a->ckpt_in_flight = false;
		a->ckpt_done = a->ckpt_started;
		if (a->have_net && a->net.release)
			a->net.release(st->seq, a->net.arg);
	}
	agent_notify(a);
}
