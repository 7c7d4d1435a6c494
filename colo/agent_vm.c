/* agent_vm.c - VM operations as short chains of backend calls, each ending in one
 * answer: to the replicator (suspend/resume/load done), or to the state machine
 * (the takeover's vm-done / vm-error). An answer goes only to the replicator that
 * asked: if it was freed meanwhile, the chain finishes quietly. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colo/agent_int.h"
#include "lib/log.h"
#include "lib/loop.h"

static const char *const step_names[STEP__COUNT] = {
	[STEP_NONE] = "-", [STEP_STOP] = "stop", [STEP_SAVE] = "save device state",
	[STEP_LOAD] = "load device state", [STEP_RESUME] = "resume",
	[STEP_GO_LIVE] = "switch the network live", [STEP_ANNOUNCE] = "announce-self",
	[STEP_LOGDIRTY_ON] = "start the device model's dirty log",
	[STEP_LOGDIRTY_OFF] = "stop the device model's dirty log",
	[STEP_DISK_START] = "start disk replication", [STEP_DISK_STOP] = "stop disk replication",
	[STEP_DISK_FAILOVER] = "fail the disk replication over",
	[STEP_DISK_CKPT] = "disk replication checkpoint",
	[STEP_DISK_STATUS] = "check disk replication",
};

static void chain_next(struct vm_chain *c);

static bool same_repl(const struct vm_chain *c)
{
	return c->a->repl && c->repl_gen == c->a->repl_gen;
}

/* Asked once per stop. The checkpoint's number: the primary's own count (0 is the
 * initial sync), the secondary's next load. */
static uint64_t net_input_mark(struct agent *a)
{
	if (!a->have_net || !a->net.input_mark)
		return 0;
	uint64_t seq = a->cfg.role == ROLE_PRIMARY ? a->ckpt_started : a->loads;
	return a->net.input_mark(seq, a->net.arg);
}

static void answer(struct vm_chain *c, int err, const char *why)
{
	struct agent *a = c->a;
	char reason[300];
	switch (c->answer) {
	case ANS_SUSPEND:
		if (same_repl(c))
			a->rops->suspend_done(a->repl, err, net_input_mark(a));
		break;
	case ANS_RESUME:
		if (same_repl(c))
			a->rops->resume_done(a->repl, err);
		break;
	case ANS_LOAD:
		if (!err) {
			a->vm_loaded = true;
			/* The VM runs the loaded state now: the net path re-injects the
			 * input above its mark and switches generation. */
			if (a->have_net && a->net.loaded)
				a->net.loaded(a->loads, a->load_mark, a->net.arg);
			a->loads++;
		}
		if (same_repl(c))
			a->rops->load_done(a->repl, err);
		break;
	case ANS_EVENT:
		snprintf(reason, sizeof(reason), "%s: %s", c->what, why ? why : "ok");
		agent_event(a, err ? EV_VM_ERROR : EV_VM_DONE, reason);
		break;
	case ANS_LOGDIRTY:
		if (same_repl(c))
			repl_answer_logdirty(a, err);
		break;
	case ANS_DISK:
		if (err) {
			snprintf(reason, sizeof(reason), "%s", why ? why : strerror(-err));
			agent_event(a, EV_DISK_ERROR, reason);
		}
		break;
	case ANS_NONE:
		break;
	}
}

static void chain_finish(struct vm_chain *c, int err, const char *why)
{
	struct agent *a = c->a;
	TAILQ_REMOVE(&a->chains, c, link);
	if (err)
		log_err("%s: %s failed at '%s': %s", role_name(a->cfg.role), c->what,
			step_names[c->steps[c->next - 1]], why ? why : strerror(-err));
	else
		log_debug("%s: %s done", role_name(a->cfg.role), c->what);
	answer(c, err, why);
	free(c);
	if (a->exiting && !a->done && !vm_busy(a))
		agent_finish(a);
}

static void step_done(struct backend *b, int err, const char *why, void *arg)
{
	struct vm_chain *c = arg;
	if (err)
		chain_finish(c, err, why);
	else
		chain_next(c);
}

static void chain_next(struct vm_chain *c)
{
	struct agent *a = c->a;
	enum vm_step s = c->next < VM_CHAIN_STEPS ? c->steps[c->next] : STEP_NONE;
	bool primary = a->cfg.role == ROLE_PRIMARY;
	int r = 0;
	c->next++;
	switch (s) {
	case STEP_NONE:
		chain_finish(c, 0, NULL);
		return;
	case STEP_STOP:
		a->vm_stopped_by_us = true;
		r = backend_stop(a->be, step_done, c);
		break;
	case STEP_SAVE:
		r = backend_save_devices(a->be, c->fd, step_done, c);
		break;
	case STEP_LOAD:
		r = backend_load_devices(a->be, c->fd, step_done, c);
		break;
	case STEP_RESUME:
		a->vm_stopped_by_us = false;
		r = backend_resume(a->be, step_done, c);
		break;
	case STEP_GO_LIVE:
		r = a->have_net && a->net.go_live ? a->net.go_live(a->net.arg) : 0;
		if (r == 0) {
			chain_next(c);
			return;
		}
		break;
	case STEP_ANNOUNCE:
		r = backend_announce(a->be, step_done, c);
		break;
	case STEP_LOGDIRTY_ON:
	case STEP_LOGDIRTY_OFF:
		r = backend_set_global_dirty_log(a->be, s == STEP_LOGDIRTY_ON, step_done, c);
		break;
	case STEP_DISK_START:
		r = backend_set_disk_replication(a->be, true, primary, false, step_done, c);
		break;
	case STEP_DISK_STOP:
		r = backend_set_disk_replication(a->be, false, primary, false, step_done, c);
		break;
	case STEP_DISK_FAILOVER: /* keep the writes since the checkpoint; run on alone */
		r = backend_set_disk_replication(a->be, false, false, true, step_done, c);
		break;
	case STEP_DISK_CKPT:
		r = backend_disk_checkpoint(a->be, step_done, c);
		break;
	case STEP_DISK_STATUS:
		r = backend_disk_replication_status(a->be, step_done, c);
		break;
	case STEP__COUNT:
		r = -EINVAL;
		break;
	}
	if (r < 0)
		chain_finish(c, r, strerror(-r));
}

/* steps: up to VM_CHAIN_STEPS - 1 of them, ending in STEP_NONE. */
static int chain_start(struct agent *a, const char *what, enum vm_answer ans, int fd,
		       const enum vm_step *steps)
{
	struct vm_chain *c = calloc(1, sizeof(*c));
	if (!c) {
		log_err("%s: %s: out of memory", role_name(a->cfg.role), what);
		struct vm_chain tmp = { .a = a, .answer = ans, .repl_gen = a->repl_gen, .what = what };
		answer(&tmp, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	*c = (struct vm_chain){ .a = a, .fd = fd, .answer = ans, .repl_gen = a->repl_gen,
				.what = what };
	for (int i = 0; i < VM_CHAIN_STEPS - 1 && steps[i] != STEP_NONE; i++)
		c->steps[i] = steps[i];
	TAILQ_INSERT_TAIL(&a->chains, c, link);
	chain_next(c);
	return 0;
}

#define STEPS(...) ((const enum vm_step[]){ __VA_ARGS__, STEP_NONE })

int vm_suspend(struct agent *a, int save_fd)
{
	if (a->cfg.role == ROLE_PRIMARY)
		return chain_start(a, "stop and save device state", ANS_SUSPEND, save_fd,
				   STEPS(STEP_STOP, STEP_SAVE));
	return chain_start(a, "stop", ANS_SUSPEND, -1, STEPS(STEP_STOP));
}

int vm_resume_answer(struct agent *a)
{
	return chain_start(a, "resume", ANS_RESUME, -1, STEPS(STEP_RESUME));
}

/* With disk replication the secondary's disk follows the checkpoint while the VM is
 * stopped: replication starts before the VM first runs (its own writes must land in
 * the active disk), later loads drop the writes since the last checkpoint. */
int vm_load(struct agent *a, int load_fd)
{
	if (a->cfg.disk_repl)
		return chain_start(a, "load device state and resume", ANS_LOAD, load_fd,
				   STEPS(STEP_LOAD, a->vm_loaded ? STEP_DISK_CKPT : STEP_DISK_START,
					 STEP_RESUME));
	return chain_start(a, "load device state and resume", ANS_LOAD, load_fd,
			   STEPS(STEP_LOAD, STEP_RESUME));
}

/* failover:true before the VM runs as the active one: without it (libxl's call) QEMU
 * treats the stop as one more checkpoint and drops the VM's disk writes since the last
 * one, while the VM runs on with the memory that made them. */
int vm_takeover(struct agent *a)
{
	if (a->cfg.disk_repl)
		return chain_start(a, "takeover", ANS_EVENT, -1,
				   STEPS(STEP_DISK_FAILOVER, STEP_RESUME, STEP_GO_LIVE,
					 STEP_ANNOUNCE));
	return chain_start(a, "takeover", ANS_EVENT, -1,
			   STEPS(STEP_RESUME, STEP_GO_LIVE, STEP_ANNOUNCE));
}

int vm_logdirty(struct agent *a, bool enable)
{
	return chain_start(a, enable ? "start the device model's dirty log"
				     : "stop the device model's dirty log",
			   ANS_LOGDIRTY, -1, STEPS(enable ? STEP_LOGDIRTY_ON : STEP_LOGDIRTY_OFF));
}

int vm_disk_start(struct agent *a)
{
	return chain_start(a, "start disk replication", ANS_EVENT, -1, STEPS(STEP_DISK_START));
}

void vm_disk_stop(struct agent *a)
{
	if (a->cfg.disk_repl)
		chain_start(a, "stop disk replication", ANS_NONE, -1, STEPS(STEP_DISK_STOP));
}

void vm_disk_check(struct agent *a)
{
	if (a->cfg.disk_repl)
		chain_start(a, "check disk replication", ANS_DISK, -1, STEPS(STEP_DISK_STATUS));
}

void vm_stop_quietly(struct agent *a, const char *why)
{
	log_warn("%s: stopping the VM: %s", role_name(a->cfg.role), why);
	chain_start(a, "stop", ANS_NONE, -1, STEPS(STEP_STOP));
}

void vm_resume_if_stopped(struct agent *a, const char *why)
{
	if (!a->vm_stopped_by_us)
		return;
	log_info("%s: resuming the VM we stopped: %s", role_name(a->cfg.role), why);
	chain_start(a, "resume", ANS_NONE, -1, STEPS(STEP_RESUME));
}

bool vm_busy(const struct agent *a)
{
	return !TAILQ_EMPTY(&a->chains);
}

void vm_chains_free(struct agent *a)
{
	struct vm_chain *c;
	while ((c = TAILQ_FIRST(&a->chains))) {
		TAILQ_REMOVE(&a->chains, c, link);
		free(c);
	}
}
