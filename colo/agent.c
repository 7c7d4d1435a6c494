/* agent.c - the agent's lifecycle, the checks before it touches a VM, its status,
 * and the entry points for coloctl and the comparator. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "colo/agent_int.h"
#include "colo/heartbeat.h"
#include "lib/log.h"
#include "lib/loop.h"

/* How long shutdown waits for a VM operation (e.g. resuming a stopped primary). */
#define AGENT_EXIT_GRACE_MS 3000

/* qemu: --ram-size, QEMU's RAM size and the RAM file agree (on Xen guest RAM is the
 * hypervisor's: there is neither a file nor a size from QEMU to compare). */
static int check_ram(const struct agent_config *cfg, const struct backend_info *vm, char *err,
		     size_t len)
{
	struct stat st;
	if (cfg->ram_size && cfg->ram_size != vm->ram_size) {
		snprintf(err, len, "--ram-size is %" PRIu64 " bytes but the VM behind %s has %" PRIu64
			 ": another VM?", cfg->ram_size, cfg->qmp_socket, vm->ram_size);
		return -EINVAL;
	}
	if (stat(cfg->ram_file, &st) < 0) {
		snprintf(err, len, "RAM file %s: %s (--ram-file must be the VM's memory-backend-file "
			 "mem-path)", cfg->ram_file, strerror(errno));
		return -EINVAL;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != vm->ram_size) {
		snprintf(err, len, "RAM file %s is %s of %lld bytes, but the VM behind %s has %" PRIu64
			 " bytes of RAM: the RAM file of another VM?", cfg->ram_file,
			 S_ISREG(st.st_mode) ? "a file" : "not a regular file", (long long)st.st_size,
			 cfg->qmp_socket, vm->ram_size);
		return -EINVAL;
	}
	return 0;
}

int agent_check_vm(const struct agent_config *cfg, const struct backend_info *vm, char *err,
		   size_t len)
{
	bool xen = cfg->backend == BACKEND_XEN;
	if (!xen && check_ram(cfg, vm, err, len) < 0)
		return -EINVAL;
	if (cfg->role == ROLE_PRIMARY && !vm->running) {
		snprintf(err, len, "the primary VM is not running (QEMU status: %s); start it first "
			 "(or `cont` it)", vm->status);
		return -EINVAL;
	}
	if (cfg->role == ROLE_SECONDARY && (vm->running || (strcmp(vm->status, "prelaunch") &&
							    strcmp(vm->status, "paused")))) {
		snprintf(err, len, "the secondary VM must wait paused (%s) until the initial "
			 "synchronisation, but its status is %s", xen ? "`xl create -p`, not unpaused"
			 : "QEMU -S", vm->status);
		return -EINVAL;
	}
	/* Unfixed QEMU aborts in xen-load-devices-state (docs/qmp.md, the yank crash). */
	if (cfg->role == ROLE_SECONDARY && !strstr(vm->version, "colo")) {
		snprintf(err, len, "QEMU %s lacks the xen-load-devices-state fix (its package name "
			 "has no 'colo'): the first checkpoint would crash it; use %s", vm->version,
			 xen ? "a fixed device model (docs/xen.md)"
			     : "the rig's QEMU (tests/rig/build-qemu.sh)");
		return -EINVAL;
	}
	return 0;
}

static void on_vm_gone(struct backend *b, int err, const char *why, void *arg)
{
	struct agent *a = arg;
	char text[700];
	snprintf(text, sizeof(text), "%s; %s", why, a->cfg.role == ROLE_PRIMARY
		 ? "the secondary takes over once our heartbeat stops"
		 : "this secondary cannot protect anything any more");
	agent_event(a, EV_VM_GONE, text);
}

int agent_new(struct loop *loop, const struct agent_config *cfg, const struct agent_deps *deps,
	      struct agent **out)
{
	if (!deps->backend || !deps->vm || !deps->repl)
		return -EINVAL;
	struct agent *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->loop = loop;
	a->cfg = *cfg;
	a->state = AS_INIT;
	a->state_since_ms = mono_ms();
	a->be = deps->backend;
	a->vm = *deps->vm;
	a->rops = deps->repl;
	if (deps->net) {
		a->net = *deps->net;
		a->have_net = true;
	}
	TAILQ_INIT(&a->chains);
	struct backend_handlers h = { .gone = on_vm_gone, .arg = a };
	backend_set_handlers(a->be, &h);
	*out = a;
	return 0;
}

int agent_start(struct agent *a)
{
	char peer[80], repl[80];
	int r = peer_begin(a);
	if (r < 0)
		return r;
	log_info("%s: VM pid %d, %" PRIu64 " MiB, configuration %016" PRIx64 "; heartbeat to %s "
		 "every %u ms (lost after %u); replication %s %s", role_name(a->cfg.role), a->vm.pid,
		 a->vm.ram_size >> 20, a->vm.config_hash,
		 colo_addr_str(&a->cfg.hb_peer, peer, sizeof(peer)), a->cfg.hb_interval_ms,
		 a->cfg.hb_misses, a->cfg.role == ROLE_PRIMARY ? "to" : "on",
		 colo_addr_str(&a->cfg.repl, repl, sizeof(repl)));
	agent_event(a, EV_START, "agent started");
	return a->state == AS_FAILED ? -EIO : 0;
}

void agent_shutdown(struct agent *a)
{
	if (!a->exiting)
		agent_event(a, EV_SHUTDOWN, "SIGTERM");
}

static int64_t on_exit_timer(struct loop *loop, uint64_t id, void *arg)
{
	struct agent *a = arg;
	a->exit_timer = 0;
	log_warn("%s: VM operations still unfinished after %d ms; exiting anyway",
		 role_name(a->cfg.role), AGENT_EXIT_GRACE_MS);
	agent_finish(a);
	return LOOP_TIMER_DONE;
}

void agent_finish(struct agent *a)
{
	a->done = true;
	loop_stop(a->loop);
}

bool agent_done(const struct agent *a)
{
	return a->done;
}

void agent_exit(struct agent *a, int status)
{
	if (a->exiting)
		return;
	a->exiting = true;
	a->exit_status = status;
	if (a->hb)
		heartbeat_send_now(a->hb); /* a last word: our final state */
	if (!vm_busy(a))
		agent_finish(a);
	else
		loop_timer_add(a->loop, AGENT_EXIT_GRACE_MS, on_exit_timer, a, &a->exit_timer);
}

int agent_exit_status(const struct agent *a)
{
	return a->exit_status;
}

void agent_free(struct agent *a)
{
	if (!a)
		return;
	repl_end(a);
	fence_end(a);
	peer_end(a);
	backend_cancel(a->be); /* the backend outlives us: its replies must not reach our chains */
	vm_chains_free(a);
	if (a->state_timer)
		loop_timer_cancel(a->loop, a->state_timer);
	if (a->ckpt_timer)
		loop_timer_cancel(a->loop, a->ckpt_timer);
	if (a->exit_timer)
		loop_timer_cancel(a->loop, a->exit_timer);
	struct backend_handlers none = { 0 };
	backend_set_handlers(a->be, &none);
	free(a);
}

enum agent_role agent_role(const struct agent *a)
{
	return a->cfg.role;
}

enum agent_state agent_state(const struct agent *a)
{
	return a->state;
}

uint64_t agent_hb_timeout_ms(const struct agent *a)
{
	return (uint64_t)a->cfg.hb_interval_ms * a->cfg.hb_misses;
}

void agent_set_observer(struct agent *a, void (*fn)(struct agent *a, void *arg), void *arg)
{
	a->observer = fn;
	a->observer_arg = arg;
}

void agent_notify(struct agent *a)
{
	if (a->observer)
		a->observer(a, a->observer_arg);
}

int64_t agent_request_checkpoint(struct agent *a, enum ckpt_reason reason, char *why, size_t len)
{
	if (a->cfg.role != ROLE_PRIMARY) {
		snprintf(why, len, "checkpoints are taken by the primary; ask the primary's agent");
		return -EPERM;
	}
	if (a->state != AS_PROTECTED && a->state != AS_CHECKPOINTING) {
		snprintf(why, len, "not protected (state %s)", agent_state_name(a->state));
		return -EAGAIN;
	}
	/* Served by the next checkpoint to start: one in flight began before this. */
	int64_t ticket = (int64_t)a->ckpt_started + 1;
	struct fsm_ev ev = { .type = EV_CHECKPOINT, .fd = -1, .ckpt = reason,
			     .reason = reason == CKPT_OPERATOR ? "coloctl checkpoint"
							       : "the comparator saw outputs differ" };
	agent_fsm(a, &ev);
	if (ev.refused) {
		snprintf(why, len, "%s", ev.answer);
		return ev.refused;
	}
	snprintf(why, len, "checkpoint requested");
	return ticket;
}

uint64_t agent_checkpoints_committed(const struct agent *a)
{
	return a->ckpt_done;
}

int agent_request_failover(struct agent *a, bool confirm_fenced, char *why, size_t len)
{
	struct fsm_ev ev = { .type = EV_CTL_FAILOVER, .fd = -1, .confirm_fenced = confirm_fenced,
			     .reason = "coloctl failover" };
	agent_fsm(a, &ev);
	snprintf(why, len, "%s", ev.answer[0] ? ev.answer : "done");
	return ev.refused;
}

void agent_get_status(const struct agent *a, struct agent_status *st)
{
	uint64_t now = mono_ms();
	struct hb_stats hs = { 0 };
	const struct ckpt_stats *c = &a->stats;
	memset(st, 0, sizeof(*st));
	st->role = a->cfg.role;
	st->state = a->state;
	st->state_age_ms = now - a->state_since_ms;
	colo_addr_str(&a->cfg.hb_peer, st->peer, sizeof(st->peer));
	st->peer_state = -1;
	st->peer_last_heard_ms = UINT64_MAX;
	if (a->hb) {
		heartbeat_get_stats(a->hb, &hs);
		st->peer_alive = hs.peer_alive;
		st->peer_state = hs.last_rx_age_ms == UINT64_MAX ? -1 : hs.peer_state;
		st->peer_last_heard_ms = hs.last_rx_age_ms;
		st->rtt_last_us = hs.rtt_last_us;
		st->rtt_avg_us = hs.rtt_avg_us;
		st->hb_tx = hs.tx;
		st->hb_rx = hs.rx;
		st->hb_dropped = hs.bad_size + hs.bad_magic + hs.bad_version + hs.bad_field +
				 hs.foreign + hs.stale + hs.wrong_role;
		st->hb_losses = hs.losses;
	}
	memcpy(st->by_reason, c->by_reason, sizeof(st->by_reason));
	st->coalesced = c->coalesced;
	st->committed = c->committed;
	st->last_seq = c->last_seq;
	st->since_last_ms = c->last_commit_ms ? now - c->last_commit_ms : UINT64_MAX;
	st->pause_last_us = c->last_pause_us;
	st->pause_p50_us = stats_pause_percentile(c, 50);
	st->pause_p99_us = stats_pause_percentile(c, 99);
	st->pause_samples = c->npause < STATS_PAUSE_WINDOW ? c->npause : STATS_PAUSE_WINDOW;
	st->dirty_last_pages = c->last_pages;
	st->dirty_last_bytes = c->last_bytes;
	st->dirty_avg_pages = c->committed ? c->total_pages / c->committed : 0;
	st->dirty_avg_bytes = c->committed ? c->total_bytes / c->committed : 0;
	st->comparator = a->have_net && a->net.counters;
	if (st->comparator)
		a->net.counters(&st->net, a->net.arg);
	st->vm_pid = a->vm.pid;
	st->ram_size = a->vm.ram_size;
}
