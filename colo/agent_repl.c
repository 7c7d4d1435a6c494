/* agent_repl.c - the replicator's lifecycle and its callbacks, which become events. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "colo/agent_int.h"
#include "lib/log.h"

static const char *const failure_names[] = {
	[REPL_BROKEN_CHANNEL] = "broken channel",
	[REPL_CORRUPT_STREAM] = "corrupt stream",
	[REPL_REFUSED] = "refused",
	[REPL_LOCAL_ERROR] = "local error",
};

static struct agent *ours(struct replicator *r, void *arg)
{
	struct agent *a = arg;
	return a->repl == r ? a : NULL; /* a stale replicator never drives the machine */
}

static void on_suspend(struct replicator *r, int save_fd, void *arg)
{
	struct agent *a = ours(r, arg);
	if (!a)
		return;
	struct fsm_ev ev = { .type = EV_REPL_SUSPEND, .fd = save_fd,
			     .reason = "the replicator asks to stop the VM" };
	agent_fsm(a, &ev);
}

static void on_resume(struct replicator *r, void *arg)
{
	struct agent *a = ours(r, arg);
	if (!a)
		return;
	struct fsm_ev ev = { .type = EV_REPL_RESUME, .fd = -1,
			     .reason = "pages captured: resume the VM" };
	agent_fsm(a, &ev);
}

static void on_load(struct replicator *r, int load_fd, uint64_t input_mark, void *arg)
{
	struct agent *a = ours(r, arg);
	if (!a)
		return;
	a->load_mark = input_mark; /* for the net path once the VM runs it */
	struct fsm_ev ev = { .type = EV_REPL_LOAD, .fd = load_fd, .input_mark = input_mark,
			     .reason = "checkpoint received: load its device state" };
	agent_fsm(a, &ev);
}

static void on_committed(struct replicator *r, const struct repl_stats *st, void *arg)
{
	struct agent *a = ours(r, arg);
	if (!a)
		return;
	char why[120];
	if (a->cfg.role == ROLE_PRIMARY)
		snprintf(why, sizeof(why), "secondary acknowledged checkpoint %" PRIu64, st->seq);
	else
		snprintf(why, sizeof(why), "checkpoint %" PRIu64 " applied", st->seq);
	struct fsm_ev ev = { .type = EV_REPL_COMMITTED, .fd = -1, .stats = st, .reason = why };
	agent_fsm(a, &ev);
}

static void on_failover_ready(struct replicator *r, void *arg)
{
	struct agent *a = ours(r, arg);
	if (!a)
		return;
	struct fsm_ev ev = { .type = EV_REPL_FAILOVER_READY, .fd = -1,
			     .reason = "the last acknowledged checkpoint is applied" };
	agent_fsm(a, &ev);
}

static void on_failed(struct replicator *r, enum repl_failure why, const char *reason, void *arg)
{
	struct agent *a = ours(r, arg);
	if (!a)
		return;
	char text[600];
	snprintf(text, sizeof(text), "replication %s: %s",
		 (unsigned)why <= REPL_LOCAL_ERROR ? failure_names[why] : "failed",
		 reason ? reason : "");
	log_warn("%s: %s", role_name(a->cfg.role), text);
	struct fsm_ev ev = { .type = EV_REPL_FAILED, .fd = -1, .failure = why, .reason = text };
	agent_fsm(a, &ev);
	if (a->repl == r) /* whatever the state, this replicator is over */
		repl_end(a);
}

/* Xen (libxenguest's switch_qemu_logdirty): answered by the VM chain. */
static void on_logdirty(struct replicator *r, bool enable, void *arg)
{
	struct agent *a = ours(r, arg);
	if (!a)
		return;
	struct fsm_ev ev = { .type = EV_REPL_LOGDIRTY, .fd = -1, .enable = enable,
			     .reason = enable ? "the replicator asks for the device model's dirty log"
					      : "the replicator is done with the device model's "
						"dirty log" };
	agent_fsm(a, &ev);
}

static const struct repl_ops ops = {
	.on_suspend = on_suspend,
	.on_resume = on_resume,
	.on_load = on_load,
	.on_committed = on_committed,
	.on_failover_ready = on_failover_ready,
	.on_failed = on_failed,
	.on_logdirty = on_logdirty,
};

int repl_begin(struct agent *a)
{
	struct repl_config rc = {
		.role = a->cfg.role == ROLE_PRIMARY ? REPL_PRIMARY : REPL_SECONDARY,
		.vm = a->cfg.backend == BACKEND_XEN ? REPL_VM_XEN : REPL_VM_QEMU,
		.xen_domid = a->cfg.domid,
		.xen_helper = a->cfg.xen_helper[0] ? a->cfg.xen_helper : NULL,
		.xen_store_evtchn = a->cfg.xen_store_evtchn,
		.xen_console_evtchn = a->cfg.xen_console_evtchn,
		.xen_store_domid = a->cfg.xen_store_domid,
		.xen_console_domid = a->cfg.xen_console_domid,
		/* Xen: libxc maps the domain's memory itself; there is no RAM file. */
		.ram_path = a->cfg.backend == BACKEND_XEN ? NULL : a->cfg.ram_file,
		.ram_size = a->vm.ram_size,
		.qemu_pid = a->vm.pid,
		.config_hash = a->vm.config_hash,
		.peer_host = a->cfg.repl.host,
		.peer_port = a->cfg.repl.port,
		.connect_timeout_ms = a->cfg.connect_timeout_ms,
	};
	a->repl_gen++;
	int r = a->rops->start(a->loop, &rc, &ops, a, &a->repl);
	if (r < 0) {
		a->repl = NULL;
		log_err("%s: cannot start replication (%s:%u): %s", role_name(a->cfg.role),
			rc.peer_host, rc.peer_port, strerror(-r));
	}
	return r;
}

void repl_end(struct agent *a)
{
	if (!a->repl)
		return;
	struct replicator *r = a->repl;
	a->repl = NULL;
	a->repl_gen++;
	a->ckpt_in_flight = false;
	a->rops->free(r);
}

void repl_refuse(struct agent *a, enum agent_event type, const char *state)
{
	log_err("%s: the replicator asked for %s in state %s; refusing (replication stops)",
		role_name(a->cfg.role), agent_event_name(type), state);
	if (!a->repl)
		return;
	if (type == EV_REPL_SUSPEND)
		a->rops->suspend_done(a->repl, -EPROTO, 0);
	else if (type == EV_REPL_RESUME)
		a->rops->resume_done(a->repl, -EPROTO);
	else if (type == EV_REPL_LOAD)
		a->rops->load_done(a->repl, -EPROTO);
	else if (type == EV_REPL_LOGDIRTY)
		repl_answer_logdirty(a, -EPROTO);
}

void repl_answer_logdirty(struct agent *a, int err)
{
	if (!a->repl)
		return;
	if (!a->rops->logdirty_done) {
		log_err("%s: the replicator asked for the device model's dirty log but cannot take "
			"the answer (a bug in the replicator table)", role_name(a->cfg.role));
		return;
	}
	a->rops->logdirty_done(a->repl, err);
}

int repl_do_failover(struct agent *a)
{
	return a->rops->failover(a->repl);
}
