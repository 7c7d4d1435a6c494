/* fsm.c - the agent's state machine (docs/colo-states.md): agent_fsm() is one
 * (state, event) switch per role; change_state() is the only place the state
 * changes, checks the transition, tells the peer and logs
 *     primary: checkpointing -> protected (reason: secondary acknowledged checkpoint 12)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colo/agent_int.h"
#include "lib/log.h"
#include "lib/loop.h"

/* A planned takeover waits this long for the primary's final checkpoint:
 * 20 heartbeat timeouts, at least 2 s (6 s with the defaults). */
#define HANDOVER_MIN_MS 2000
#define HANDOVER_TIMEOUTS 20

static const char *const state_names[AS__COUNT] = {
	[AS_INIT] = "init",		[AS_WAITING] = "waiting",
	[AS_SYNCING] = "syncing",	[AS_PROTECTED] = "protected",
	[AS_CHECKPOINTING] = "checkpointing", [AS_HANDOVER] = "handover",
	[AS_HANDED_OVER] = "handed-over", [AS_DETACHED] = "detached",
	[AS_FAILOVER] = "failover",	[AS_FENCING] = "fencing",
	[AS_FENCE_FAILED] = "fence-failed", [AS_TAKEOVER] = "takeover",
	[AS_ACTIVE] = "active",		[AS_DEGRADED] = "degraded",
	[AS_FENCED] = "fenced",		[AS_FAILED] = "failed",
};

static const char *const event_names[EV__COUNT] = {
	[EV_START] = "start", [EV_PEER_UP] = "peer-up", [EV_PEER_LOST] = "peer-lost",
	[EV_PEER_HANDOVER] = "peer-handover", [EV_PEER_HANDED_OVER] = "peer-handed-over",
	[EV_PEER_TOOK_OVER] = "peer-took-over", [EV_PEER_DEGRADED] = "peer-degraded",
	[EV_REPL_SUSPEND] = "repl-suspend", [EV_REPL_RESUME] = "repl-resume",
	[EV_REPL_LOAD] = "repl-load", [EV_REPL_COMMITTED] = "repl-committed",
	[EV_REPL_FAILOVER_READY] = "repl-failover-ready", [EV_REPL_FAILED] = "repl-failed",
	[EV_REPL_LOGDIRTY] = "repl-logdirty", [EV_DISK_ERROR] = "disk-error",
	[EV_CHECKPOINT] = "checkpoint", [EV_CTL_FAILOVER] = "ctl-failover",
	[EV_FENCE_OK] = "fence-ok", [EV_FENCE_FAILED] = "fence-failed",
	[EV_VM_DONE] = "vm-done", [EV_VM_ERROR] = "vm-error", [EV_VM_GONE] = "vm-gone",
	[EV_TIMEOUT] = "timeout", [EV_SHUTDOWN] = "shutdown",
};

const char *agent_state_name(enum agent_state s)
{
	return (unsigned)s < AS__COUNT ? state_names[s] : "?";
}

const char *agent_event_name(enum agent_event e)
{
	return (unsigned)e < EV__COUNT ? event_names[e] : "?";
}

#define B(s) (1u << (s))
#define ANY_LIVE_P (B(AS_DEGRADED) | B(AS_FENCED) | B(AS_FAILED))
/* legal[role][from]: the states `from` may change to. Anything else is a bug here. */
static const uint32_t legal[2][AS__COUNT] = {
	[ROLE_PRIMARY] = {
		[AS_INIT] = B(AS_SYNCING) | B(AS_FAILED),
		[AS_SYNCING] = B(AS_PROTECTED) | B(AS_FAILED),
		[AS_PROTECTED] = B(AS_CHECKPOINTING) | B(AS_HANDOVER) | ANY_LIVE_P,
		[AS_CHECKPOINTING] = B(AS_PROTECTED) | B(AS_HANDOVER) | ANY_LIVE_P,
		[AS_HANDOVER] = B(AS_HANDED_OVER) | ANY_LIVE_P,
		[AS_HANDED_OVER] = B(AS_FAILED),
		[AS_DEGRADED] = B(AS_FENCED) | B(AS_FAILED),
		[AS_FENCED] = B(AS_FAILED),
	},
	[ROLE_SECONDARY] = {
		[AS_INIT] = B(AS_WAITING) | B(AS_FAILED),
		[AS_WAITING] = B(AS_SYNCING) | B(AS_FAILED),
		[AS_SYNCING] = B(AS_WAITING) | B(AS_PROTECTED) | B(AS_FAILOVER) | B(AS_DETACHED) |
			       B(AS_FAILED),
		[AS_PROTECTED] = B(AS_CHECKPOINTING) | B(AS_HANDOVER) | B(AS_FAILOVER) |
				 B(AS_DETACHED) | B(AS_FAILED),
		[AS_CHECKPOINTING] = B(AS_PROTECTED) | B(AS_HANDOVER) | B(AS_FAILOVER) |
				     B(AS_DETACHED) | B(AS_FAILED),
		[AS_HANDOVER] = B(AS_PROTECTED) | B(AS_CHECKPOINTING) | B(AS_FAILOVER) |
				B(AS_DETACHED) | B(AS_FAILED),
		[AS_DETACHED] = B(AS_FENCING) | B(AS_FENCE_FAILED) | B(AS_TAKEOVER) | B(AS_FAILED),
		[AS_FAILOVER] = B(AS_FENCING) | B(AS_FENCE_FAILED) | B(AS_TAKEOVER) | B(AS_FAILED),
		[AS_FENCING] = B(AS_TAKEOVER) | B(AS_FENCE_FAILED) | B(AS_FAILED),
		[AS_FENCE_FAILED] = B(AS_FENCING) | B(AS_TAKEOVER) | B(AS_FAILED),
		[AS_TAKEOVER] = B(AS_ACTIVE) | B(AS_FAILED),
		[AS_ACTIVE] = B(AS_FAILED),
	},
};

static uint64_t handover_timeout_ms(const struct agent *a)
{
	uint64_t ms = HANDOVER_TIMEOUTS * agent_hb_timeout_ms(a);
	return ms < HANDOVER_MIN_MS ? HANDOVER_MIN_MS : ms;
}

static int64_t on_state_timer(struct loop *loop, uint64_t id, void *arg)
{
	struct agent *a = arg;
	a->state_timer = 0;
	agent_event(a, EV_TIMEOUT, a->state == AS_HANDOVER ? "the primary did not hand over in time"
							   : "heartbeat verdict due");
	return LOOP_TIMER_DONE;
}

static void arm_state_timer(struct agent *a)
{
	uint64_t ms = 0;
	if (a->state == AS_HANDOVER && a->cfg.role == ROLE_SECONDARY)
		ms = handover_timeout_ms(a);
	else if (a->state == AS_DETACHED)
		ms = 2 * agent_hb_timeout_ms(a);
	if (ms && loop_timer_add(a->loop, (int64_t)ms, on_state_timer, a, &a->state_timer) < 0)
		log_err("%s: cannot arm the %s timer (out of memory)", role_name(a->cfg.role),
			state_names[a->state]);
}

static enum log_level level_of(enum agent_state from, enum agent_state to)
{
	/* The checkpoint loop itself is routine: up to 50 a second. */
	if ((from == AS_PROTECTED && to == AS_CHECKPOINTING) ||
	    (from == AS_CHECKPOINTING && to == AS_PROTECTED))
		return LOG_DEBUG;
	switch (to) {
	case AS_FAILED:
	case AS_FENCE_FAILED:
	case AS_FENCED:
		return LOG_ERR;
	case AS_DEGRADED:
	case AS_DETACHED:
	case AS_FAILOVER:
	case AS_HANDED_OVER:
		return LOG_WARN;
	default:
		return LOG_INFO;
	}
}

void change_state(struct agent *a, enum agent_state to, const char *reason)
{
	enum agent_state from = a->state;
	if (from == to)
		return;
	if (!(legal[a->cfg.role][from] & B(to))) {
		log_err("%s: illegal state change %s -> %s (reason: %s); this is a bug in colo/fsm.c; "
			"aborting", role_name(a->cfg.role), state_names[from], state_names[to], reason);
		abort();
	}
	log_msg(level_of(from, to), "%s: %s -> %s (reason: %s)", role_name(a->cfg.role),
		state_names[from], state_names[to], reason);
	a->state = to;
	a->state_since_ms = mono_ms();
	if (a->state_timer)
		loop_timer_cancel(a->loop, a->state_timer);
	a->state_timer = 0;
	arm_state_timer(a);
	peer_publish_state(a); /* the peer learns it now, not one interval later */
	if (to == AS_PROTECTED && from != AS_CHECKPOINTING && !peer_heard(a))
		log_err("%s: protected, but no heartbeat from the peer has arrived yet: its loss "
			"would go unnoticed; check --heartbeat-peer/--heartbeat-bind on both sides "
			"and the firewall", role_name(a->cfg.role));
	if (to == AS_FAILED)
		agent_exit(a, 1);
	agent_notify(a);
}

/* --- actions shared by several transitions ------------------------------------ */

static void refuse(struct fsm_ev *ev, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void refuse(struct fsm_ev *ev, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ev->answer, sizeof(ev->answer), fmt, ap);
	va_end(ap);
	ev->refused = err;
}

static void accept_(struct fsm_ev *ev, const char *text)
{
	snprintf(ev->answer, sizeof(ev->answer), "%s", text);
}

/* disk-error: QEMU's block replication failed (docs/xen.md, "Disk replication"). */
static void disk_error_advice(struct agent *a, const char *reason)
{
	if (a->cfg.role == ROLE_PRIMARY)
		log_err("primary: disk replication failed (%s): the secondary's disk no longer "
			"follows this VM's, so the secondary cannot take over. Running unprotected; "
			"check the NBD link to the secondary's QEMU (query-block on both), then start "
			"a fresh secondary and restart this agent to protect again", reason);
	else
		log_err("secondary: disk replication failed (%s): this VM's disk is no replica "
			"of the primary's, so it must not take over. Giving up; the primary runs "
			"unprotected. Check this QEMU's replication drive (query-block), then start "
			"a fresh secondary", reason);
}

/* Primary: the secondary is gone; run on unprotected. */
static void go_degraded(struct agent *a, const char *reason)
{
	repl_end(a);
	ckpt_cancel(a);
	vm_disk_stop(a); /* the secondary's disk is no replica any more */
	vm_resume_if_stopped(a, "running on unprotected");
	if (a->have_net && a->net.release_all)
		a->net.release_all(a->net.arg);
	change_state(a, AS_DEGRADED, reason);
}

/* Primary: the secondary took over; stop our VM so only one runs. */
static void go_fenced(struct agent *a, const char *reason)
{
	repl_end(a);
	ckpt_cancel(a);
	vm_stop_quietly(a, "the secondary is the active VM now");
	change_state(a, AS_FENCED, reason);
}

static void start_handover(struct agent *a, struct fsm_ev *ev)
{
	if (a->state == AS_PROTECTED && ckpt_start_handover(a) < 0) {
		refuse(ev, -EIO, "cannot start the final checkpoint; see the agent's log");
		return;
	}
	/* checkpointing: the final checkpoint follows the one in flight */
	accept_(ev, "handover started: a final checkpoint with this VM left stopped, then the "
		    "secondary takes over");
	change_state(a, AS_HANDOVER, ev->reason);
}

/* Secondary: take over now, or fence first. */
static void fence_or_takeover(struct agent *a, const char *reason)
{
	if (a->cfg.fence_cmd[0] && !a->planned) {
		if (fence_begin(a) == 0) {
			change_state(a, AS_FENCING, reason);
			return;
		}
		change_state(a, AS_FENCE_FAILED, "the fence command could not be started");
		return;
	}
	change_state(a, AS_TAKEOVER, a->planned ? "planned handover: the primary stopped its VM"
						 : reason);
	vm_takeover(a);
}

/* Secondary, replicating: the primary is gone (or handed over): finish per the
 * commit rule. */
static void start_failover(struct agent *a, const char *reason)
{
	if (!a->repl) { /* detached goes to fence_or_takeover() itself */
		change_state(a, AS_FAILED, "no replicator to finish the last checkpoint (a bug)");
		return;
	}
	int r = repl_do_failover(a);
	if (r < 0) {
		char why[200];
		snprintf(why, sizeof(why), "%s, but the replicator cannot fail over (%s): no "
			 "consistent VM to take over", reason, strerror(-r));
		repl_end(a);
		change_state(a, AS_FAILED, why);
		return;
	}
	change_state(a, AS_FAILOVER, reason);
}

/* --- primary ------------------------------------------------------------------- */

static bool primary_replicating(struct agent *a, struct fsm_ev *ev)
{
	switch (ev->type) {
	case EV_DISK_ERROR:
		disk_error_advice(a, ev->reason);
		go_degraded(a, ev->reason);
		return true;
	case EV_REPL_FAILED:
	case EV_PEER_LOST:
		go_degraded(a, ev->reason);
		return true;
	case EV_PEER_TOOK_OVER:
		go_fenced(a, ev->reason);
		return true;
	case EV_REPL_SUSPEND:
		vm_suspend(a, ev->fd);
		if (a->state == AS_PROTECTED)
			change_state(a, AS_CHECKPOINTING, "the replicator started a checkpoint");
		return true;
	case EV_REPL_RESUME:
		if (a->state == AS_HANDOVER && a->ckpt_in_flight && a->cur_reason == CKPT_HANDOVER) {
			/* The final checkpoint: the VM stays stopped for good. */
			log_info("primary: final checkpoint captured; not resuming the VM");
			a->rops->resume_done(a->repl, 0);
			return true;
		}
		vm_resume_answer(a);
		return true;
	case EV_CHECKPOINT:
		if (a->state != AS_PROTECTED) {
			ckpt_trigger(a, ev->ckpt, ev->timer); /* coalesced into the next */
			return true;
		}
		ckpt_trigger(a, ev->ckpt, ev->timer);
		ckpt_consider(a);
		if (a->ckpt_in_flight) {
			char why[64];
			snprintf(why, sizeof(why), "%s checkpoint %llu", ckpt_reason_name(a->cur_reason),
				 (unsigned long long)a->ckpt_started);
			change_state(a, AS_CHECKPOINTING, why);
		}
		return true;
	case EV_CTL_FAILOVER:
	case EV_PEER_HANDOVER:
		if (a->state == AS_HANDOVER) {
			refuse(ev, -EALREADY, "a handover is already in progress");
			return true;
		}
		start_handover(a, ev);
		return true;
	case EV_REPL_COMMITTED:
		ckpt_committed(a, ev->stats);
		if (a->state == AS_HANDOVER && a->cur_reason == CKPT_HANDOVER)
			change_state(a, AS_HANDED_OVER, "the secondary acknowledged the final "
				     "checkpoint; this VM stays stopped");
		else if (a->state == AS_HANDOVER && ckpt_start_handover(a) < 0)
			go_degraded(a, "cannot start the final checkpoint of the handover");
		else if (a->state == AS_CHECKPOINTING)
			change_state(a, AS_PROTECTED, ev->reason);
		if (a->state == AS_PROTECTED)
			ckpt_schedule(a);
		return true;
	default:
		return false;
	}
}

static bool fsm_primary(struct agent *a, struct fsm_ev *ev)
{
	switch (a->state) {
	case AS_INIT:
		/* Disk writes are mirrored from before the initial sync on: it copies a
		 * running VM, so a write missed then would never reach the secondary. */
		if (ev->type == EV_START && a->cfg.disk_repl) {
			if (vm_disk_start(a) < 0)
				change_state(a, AS_FAILED, "cannot start disk replication");
			return true;
		}
		if (ev->type == EV_VM_ERROR) {
			log_err("primary: %s. Is the secondary's QEMU serving its disk over NBD, and "
				"this QEMU's quorum child attached (docs/xen.md, \"Disk "
				"replication\")?", ev->reason);
			change_state(a, AS_FAILED, ev->reason);
			return true;
		}
		if (ev->type != EV_START && ev->type != EV_VM_DONE)
			return false;
		if (repl_begin(a) < 0)
			change_state(a, AS_FAILED, "cannot start the replicator");
		else
			change_state(a, AS_SYNCING, "initial synchronisation with the secondary");
		return true;
	case AS_SYNCING:
		switch (ev->type) {
		case EV_REPL_SUSPEND:
			a->sync_stop_seen = true;
			vm_suspend(a, ev->fd);
			return true;
		case EV_REPL_RESUME:
			vm_resume_answer(a);
			return true;
		case EV_REPL_COMMITTED:
			ckpt_committed(a, ev->stats);
			if (!a->sync_stop_seen)
				return true; /* a pre-copy pass */
			change_state(a, AS_PROTECTED, "initial synchronisation acknowledged by the "
				     "secondary");
			ckpt_schedule(a);
			return true;
		case EV_DISK_ERROR:
		case EV_REPL_FAILED:
		case EV_PEER_LOST:
			repl_end(a);
			vm_disk_stop(a);
			vm_resume_if_stopped(a, "replication never started");
			log_err("primary: never protected: %s. Is the secondary's agent running and "
				"listening on %s (--repl-addr)?", ev->reason, a->cfg.repl.host);
			change_state(a, AS_FAILED, ev->reason);
			return true;
		default:
			return false;
		}
	case AS_PROTECTED:
	case AS_CHECKPOINTING:
	case AS_HANDOVER:
		return primary_replicating(a, ev);
	case AS_HANDED_OVER:
		switch (ev->type) {
		case EV_PEER_TOOK_OVER:
			log_info("primary: the secondary reports it is %s; this VM stays stopped",
				 ev->reason);
			repl_end(a);
			return true;
		case EV_PEER_LOST:
		case EV_REPL_FAILED:
			repl_end(a);
			log_err("primary: %s after the handover. This VM stays stopped; if the "
				"secondary did not take over, resume it by hand (QMP `cont`)",
				ev->reason);
			return true;
		default:
			return false;
		}
	case AS_DEGRADED:
		if (ev->type != EV_PEER_TOOK_OVER)
			return false;
		go_fenced(a, ev->reason);
		return true;
	default:
		return false;
	}
}

/* --- secondary ------------------------------------------------------------------- */

static void restart_listening(struct agent *a, const char *reason)
{
	repl_end(a);
	if (repl_begin(a) < 0) {
		change_state(a, AS_FAILED, "cannot restart the replicator");
		return;
	}
	change_state(a, AS_WAITING, reason);
}

static bool secondary_replicating(struct agent *a, struct fsm_ev *ev)
{
	switch (ev->type) {
	case EV_REPL_SUSPEND:
		a->ckpt_in_flight = true;
		vm_suspend(a, -1);
		if (a->state == AS_PROTECTED)
			change_state(a, AS_CHECKPOINTING, ev->reason);
		return true;
	case EV_REPL_LOAD:
		vm_load(a, ev->fd);
		return true;
	case EV_REPL_COMMITTED:
		a->ckpt_in_flight = false;
		ckpt_committed(a, ev->stats);
		if (a->state == AS_CHECKPOINTING)
			change_state(a, AS_PROTECTED, ev->reason);
		return true;
	case EV_PEER_LOST:
		start_failover(a, ev->reason);
		return true;
	case EV_PEER_HANDED_OVER:
		a->planned = true;
		start_failover(a, ev->reason);
		return true;
	case EV_PEER_DEGRADED:
		repl_end(a);
		change_state(a, AS_FAILED, ev->reason);
		return true;
	case EV_DISK_ERROR:
		disk_error_advice(a, ev->reason);
		repl_end(a);
		change_state(a, AS_FAILED, ev->reason);
		return true;
	case EV_REPL_FAILED:
		repl_end(a);
		if (ev->failure == REPL_BROKEN_CHANNEL)
			change_state(a, AS_DETACHED, ev->reason);
		else
			change_state(a, AS_FAILED, ev->reason);
		return true;
	case EV_CTL_FAILOVER:
		if (a->state == AS_HANDOVER) {
			refuse(ev, -EALREADY, "already waiting for the primary to hand over");
			return true;
		}
		accept_(ev, "asked the primary to hand over: it takes a final checkpoint, stops its "
			    "VM, then this VM takes over");
		change_state(a, AS_HANDOVER, "operator asked for a planned takeover");
		return true;
	case EV_TIMEOUT:
		log_err("secondary: the primary did not hand over within %llu ms; nothing changed",
			(unsigned long long)handover_timeout_ms(a));
		change_state(a, a->ckpt_in_flight ? AS_CHECKPOINTING : AS_PROTECTED,
			     "handover timed out");
		return true;
	default:
		return false;
	}
}

static bool secondary_detached(struct agent *a, struct fsm_ev *ev)
{
	switch (ev->type) {
	case EV_PEER_LOST:
		fence_or_takeover(a, ev->reason);
		return true;
	case EV_PEER_HANDED_OVER:
		a->planned = true;
		fence_or_takeover(a, ev->reason);
		return true;
	case EV_PEER_DEGRADED:
		change_state(a, AS_FAILED, ev->reason);
		return true;
	case EV_TIMEOUT:
		if (!peer_alive(a))
			return true; /* peer-lost decides */
		change_state(a, AS_FAILED, "replication broke but the primary's heartbeat goes on: "
			     "taking over would be split brain; the primary runs unprotected");
		return true;
	case EV_CTL_FAILOVER:
		refuse(ev, -EPERM, "replication broke and the primary's heartbeat still arrives: a "
		       "takeover now would be split brain");
		return true;
	default:
		return false;
	}
}

static bool fsm_secondary(struct agent *a, struct fsm_ev *ev)
{
	switch (a->state) {
	case AS_INIT:
		if (ev->type != EV_START)
			return false;
		if (repl_begin(a) < 0)
			change_state(a, AS_FAILED, "cannot start the replicator");
		else
			change_state(a, AS_WAITING, "listening for the primary");
		return true;
	case AS_WAITING:
		if (ev->type != EV_PEER_UP && ev->type != EV_REPL_SUSPEND && ev->type != EV_REPL_LOAD)
			return false;
		change_state(a, AS_SYNCING, ev->type == EV_PEER_UP ? "the primary's heartbeat "
			     "arrived" : "the primary started the initial synchronisation");
		if (ev->type != EV_PEER_UP)
			fsm_secondary(a, ev);
		return true;
	case AS_SYNCING:
		switch (ev->type) {
		case EV_REPL_SUSPEND:
			vm_suspend(a, -1);
			return true;
		case EV_REPL_LOAD:
			vm_load(a, ev->fd);
			return true;
		case EV_REPL_COMMITTED:
			ckpt_committed(a, ev->stats);
			if (a->vm_loaded)
				change_state(a, AS_PROTECTED, "initial synchronisation applied");
			return true;
		case EV_DISK_ERROR:
			if (!a->vm_loaded)
				return false;
			return secondary_replicating(a, ev);
		case EV_PEER_LOST:
		case EV_REPL_FAILED:
			if (a->vm_loaded)
				return secondary_replicating(a, ev);
			restart_listening(a, "the primary went away during the initial "
					  "synchronisation; nothing to take over");
			return true;
		default:
			return false;
		}
	case AS_PROTECTED:
	case AS_CHECKPOINTING:
	case AS_HANDOVER:
		return secondary_replicating(a, ev);
	case AS_DETACHED:
		return secondary_detached(a, ev);
	case AS_FAILOVER:
		switch (ev->type) {
		case EV_REPL_SUSPEND:
			vm_suspend(a, -1);
			return true;
		case EV_REPL_LOAD:
			vm_load(a, ev->fd);
			return true;
		case EV_REPL_COMMITTED:
			ckpt_committed(a, ev->stats);
			return true;
		case EV_REPL_FAILOVER_READY:
			repl_end(a);
			fence_or_takeover(a, ev->reason);
			return true;
		case EV_REPL_FAILED:
			repl_end(a);
			if (ev->failure == REPL_BROKEN_CHANNEL)
				fence_or_takeover(a, ev->reason);
			else
				change_state(a, AS_FAILED, ev->reason);
			return true;
		default:
			return false;
		}
	case AS_FENCING:
		if (ev->type == EV_FENCE_OK) {
			fence_end(a);
			change_state(a, AS_TAKEOVER, "fence command succeeded");
			vm_takeover(a);
			return true;
		}
		if (ev->type != EV_FENCE_FAILED)
			return false;
		fence_end(a);
		log_err("secondary: %s: NOT taking over, the primary may still run. "
			"Make sure it is down, then `coloctl failover` (runs the fence command again) "
			"or `coloctl failover --confirm-fenced` (takes over without it)", ev->reason);
		change_state(a, AS_FENCE_FAILED, ev->reason);
		return true;
	case AS_FENCE_FAILED:
		if (ev->type != EV_CTL_FAILOVER)
			return false;
		if (ev->confirm_fenced) {
			accept_(ev, "taking over: the operator confirmed the primary is fenced");
			change_state(a, AS_TAKEOVER, "operator confirmed the primary is fenced");
			vm_takeover(a);
			return true;
		}
		if (fence_begin(a) < 0) {
			refuse(ev, -EIO, "the fence command could not be started");
			return true;
		}
		accept_(ev, "running the fence command again");
		change_state(a, AS_FENCING, "operator retries the fence command");
		return true;
	case AS_TAKEOVER:
		if (ev->type == EV_VM_DONE) {
			change_state(a, AS_ACTIVE, "VM running, network live, announced");
			return true;
		}
		if (ev->type != EV_VM_ERROR)
			return false;
		change_state(a, AS_FAILED, ev->reason);
		return true;
	default:
		return false;
	}
}

/* --- the machine --------------------------------------------------------------- */

static void on_shutdown(struct agent *a)
{
	bool replicating = a->state == AS_PROTECTED || a->state == AS_CHECKPOINTING ||
			   a->state == AS_HANDOVER;
	if (a->cfg.role == ROLE_PRIMARY && replicating) {
		/* Tell the secondary we run on, so it does not take over a VM that still runs. */
		go_degraded(a, "agent shutting down; this VM runs on unprotected");
		peer_publish_state(a);
	} else {
		repl_end(a);
		fence_end(a);
		if (a->cfg.role == ROLE_PRIMARY)
			vm_resume_if_stopped(a, "agent shutting down");
	}
	agent_exit(a, 0);
}

/* What nobody handled: requests get an answer, the rest a debug line. */
static void unhandled(struct agent *a, struct fsm_ev *ev)
{
	switch (ev->type) {
	case EV_REPL_SUSPEND:
	case EV_REPL_RESUME:
	case EV_REPL_LOAD:
	case EV_REPL_LOGDIRTY:
		repl_refuse(a, ev->type, state_names[a->state]);
		return;
	case EV_CTL_FAILOVER:
		refuse(ev, -EPERM, "no failover in state %s%s", state_names[a->state],
		       a->state == AS_WAITING || a->state == AS_SYNCING ? " (not protected yet)" : "");
		return;
	case EV_CHECKPOINT:
		refuse(ev, -EAGAIN, "no checkpoint in state %s", state_names[a->state]);
		return;
	default:
		log_debug("%s: %s ignored in state %s (%s)", role_name(a->cfg.role),
			  event_names[ev->type], state_names[a->state], ev->reason ? ev->reason : "");
	}
}

void agent_fsm(struct agent *a, struct fsm_ev *ev)
{
	log_debug("%s: event %s in %s (%s)", role_name(a->cfg.role), event_names[ev->type],
		  state_names[a->state], ev->reason ? ev->reason : "");
	if (!ev->reason)
		ev->reason = event_names[ev->type];
	if (ev->type == EV_VM_GONE && a->state != AS_FAILED) {
		repl_end(a);
		fence_end(a);
		change_state(a, AS_FAILED, ev->reason);
		return;
	}
	if (ev->type == EV_SHUTDOWN) {
		on_shutdown(a);
		return;
	}
	if (ev->type == EV_REPL_LOGDIRTY && a->repl) {
		/* Legal whenever a replicator runs: libxenguest switches it at the start
		 * of the stream and at its end, whatever our state. */
		vm_logdirty(a, ev->enable);
		return;
	}
	bool done = a->cfg.role == ROLE_PRIMARY ? fsm_primary(a, ev) : fsm_secondary(a, ev);
	if (!done)
		unhandled(a, ev);
}

void agent_event(struct agent *a, enum agent_event type, const char *reason)
{
	struct fsm_ev ev = { .type = type, .reason = reason, .fd = -1 };
	agent_fsm(a, &ev);
}
