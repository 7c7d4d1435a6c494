/* netpath.c - lifecycle, colo-net-setup and the agent's hooks (docs/net.md §6). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "net/inlog.h"
#include "net/lastseg.h"
#include "net/nfqueue.h"
#include "net/np_int.h"
#include "net/rewrite.h"
#include "net/tap_io.h"

/* Run colo-net-setup with its documented environment (docs/net.md §8); it is
 * quick and idempotent, so it runs synchronously. 0 or -EIO (its stderr line is
 * already in our log's stream). */
static int run_setup(struct netpath *np, const char *mode, const char *action)
{
	char qo[8], qi[8];
	snprintf(qo, sizeof(qo), "%u", np->queue_out);
	snprintf(qi, sizeof(qi), "%u", np->queue_in);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		setenv("COLO_NET_MODE", mode, 1);
		setenv("COLO_NET_ACTION", action, 1);
		setenv("COLO_NET_TAP", np->tap, 1);
		setenv("COLO_NET_BRIDGE", np->bridge, 1);
		setenv("COLO_NET_QUEUE_OUT", qo, 1);
		setenv("COLO_NET_QUEUE_IN", qi, 1);
		execl(np->setup_cmd, np->setup_cmd, (char *)NULL);
		fprintf(stderr, "colo-agent: cannot run %s: %s\n", np->setup_cmd, strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		log_info("net: colo-net-setup %s %s (tap %s, bridge %s, queues %u/%u): ok", mode,
			 action, np->tap, np->bridge, np->queue_out, np->queue_in);
		return 0;
	}
	log_err("net: colo-net-setup %s %s failed (status %d); see its line above; script: %s",
		mode, action, WIFEXITED(status) ? WEXITSTATUS(status) : -1, np->setup_cmd);
	return -EIO;
}

static const char *mode(const struct netpath *np)
{
	return np->primary ? "primary" : "secondary";
}

int np_new(struct loop *loop, const struct netpath_config *cfg, struct netpath **out)
{
	struct netpath *np = calloc(1, sizeof(*np));
	int r = -ENOMEM;
	if (!np)
		return r;
	np->loop = loop;
	np->primary = cfg->primary;
	np->lfd = np->fd = -1;
	snprintf(np->tap, sizeof(np->tap), "%s", cfg->tap);
	snprintf(np->bridge, sizeof(np->bridge), "%s", cfg->bridge);
	snprintf(np->setup_cmd, sizeof(np->setup_cmd), "%s", cfg->setup_cmd);
	snprintf(np->peer_host, sizeof(np->peer_host), "%s", cfg->peer_host ? cfg->peer_host : "");
	np->queue_out = cfg->queue_out;
	np->queue_in = cfg->queue_in;
	np->port = cfg->port;
	np->timeout_ms = cfg->timeout_ms;
	np->config_hash = cfg->config_hash;
	wr_init(&np->out);
	wr_init(&np->batch_buf);
	r = run_setup(np, mode(np), "install");
	if (r < 0)
		goto out;
	np->installed = true;
	r = np->primary ? nps_open_primary(np) : nps_open_secondary(np);
	if (r == 0)
		r = npl_start(np);
	if (r == 0) {
		*out = np;
		return 0;
	}
out:
	np_free(np);
	return r;
}

void np_set_checkpoint(struct netpath *np, np_checkpoint_fn fn, void *arg)
{
	np->ckpt_fn = fn;
	np->ckpt_arg = arg;
}

void np_free(struct netpath *np)
{
	if (!np)
		return;
	npl_stop(np);
	nps_close(np);
	/* The secondary's `remove` puts its VM on the LAN: only np_go_live() may. */
	if (np->primary && np->installed)
		run_setup(np, mode(np), "remove");
	if (np->live_rules)
		run_setup(np, "primary", "remove"); /* the rewriting rules of a live secondary */
	free(np);
}

/* Comparator generations must grow; a restarted replicator numbers from 0 again. */
static uint64_t gen_of(struct netpath *np, uint64_t seq, bool begin)
{
	if (begin && np->began && seq + np->gen_off <= np->last_gen)
		np->gen_off = np->last_gen + 1 - seq;
	return seq + np->gen_off;
}

/* The input mark: the last INPUT the stopped VM certainly has. A frame accepted
 * just before the stop may still wait in the tap's queue and enter the primary VM
 * after the resume; if the mark counted it, the secondary would drop it as already
 * in the state, lose a TCP segment and time out in every generation of a busy
 * stream. So frames accepted within NP_IN_MARGIN_NS of the stop are left above the
 * mark: the secondary injects them again, and a duplicate costs the VM one dup ACK,
 * a loss costs a retransmission timeout and a checkpoint. */
static uint64_t input_mark(const struct netpath *np, uint64_t now)
{
	uint64_t s = np->in_seq;
	while (s > 0 && np->in_seq - s < NP_IN_RING - 1 && now - np->in_ns[s % NP_IN_RING] <
	       NP_IN_MARGIN_NS)
		s--;
	return s;
}

uint64_t np_stopped(struct netpath *np, uint64_t seq)
{
	if (!np->primary) {
		nps_flush_batch(np);
		np->injecting = false; /* the VM is stopped; np_loaded() catches up */
		return 0;
	}
	if (!np->installed && run_setup(np, mode(np), "install") == 0)
		np->installed = true; /* protected again after a degraded spell */
	nfq_drain(np->q_out); /* everything sent before the stop belongs to this gen */
	uint64_t g = gen_of(np, seq, true);
	cmp_checkpoint_begin(np->cmp, g, mono_ns());
	np->began = true;
	np->last_gen = g;
	return input_mark(np, mono_ns());
}

void np_committed(struct netpath *np, uint64_t seq)
{
	if (np->primary && np->began)
		cmp_checkpoint_commit(np->cmp, gen_of(np, seq, false), mono_ns());
}

void np_release_all(struct netpath *np)
{
	if (!np->primary)
		return;
	cmp_release_all(np->cmp, mono_ns());
	/* Unprotected: frames go straight through, not through the agent. */
	if (np->installed && run_setup(np, mode(np), "remove") == 0)
		np->installed = false;
}

void np_loaded(struct netpath *np, uint64_t seq, uint64_t input_mark)
{
	if (np->primary || np->live)
		return;
	tapio_drain(np->tio); /* what the old state sent is of the old generation */
	nps_flush_batch(np);
	rw_checkpoint_loaded(np->rw);
	lastseg_clear(np->last); /* those segments came from the state just replaced */
	np->gen = seq;
	np->loaded = true;
	np->injecting = true;
	inlog_loaded(np->log, input_mark, nps_inject, np);
	if (np->up) {
		/* An empty batch: "I run generation seq now" (docs/net.md §6). */
		link_batch_begin(&np->batch, &np->batch_buf, np->gen);
		np->batch_open = true;
		nps_flush_batch(np);
	}
}

int np_go_live(struct netpath *np)
{
	if (np->primary || np->live)
		return 0;
	/* The VM's latest frames: their segments are the ones to replay. */
	tapio_drain(np->tio);
	nps_flush_batch(np);
	tapio_close(np->tio); /* the VM's frames go to the LAN now, not to the primary */
	np->tio = NULL;
	/* The rewriting path first, then the LAN: no segment may pass unrewritten. */
	int r = run_setup(np, "primary", "install");
	if (r == 0) {
		np->live_rules = true;
		r = nps_open_live(np);
	}
	if (r == 0)
		r = run_setup(np, mode(np), "remove"); /* the tap joins the bridge */
	if (r < 0)
		return r;
	np->installed = false;
	np->live = true;
	np->injecting = false;
	rw_go_live(np->rw);
	npl_stop(np);
	log_info("net: %s is on %s: the VM is on the LAN", np->tap, np->bridge);
	/* After rw_go_live(): the replayed segments are rewritten like live ones. */
	nps_replay(np);
	return 0;
}

void np_get_stats(const struct netpath *np, struct np_stats *out)
{
	*out = np->st;
	out->link_up = np->up;
	if (np->cmp)
		cmp_get_stats(np->cmp, &out->cmp);
	if (np->rw) {
		struct rw_stats rs;
		rw_get_stats(np->rw, &rs);
		out->rewritten_in = rs.rewritten_in;
		out->rewritten_out = rs.rewritten_out;
		out->rw_offsets = rs.learnt;
	}
	if (np->log) {
		struct inlog_stats is;
		inlog_get_stats(np->log, &is);
		out->reinjected = is.reinjected;
	}
	if (np->last) {
		struct lastseg_stats ls;
		lastseg_get_stats(np->last, &ls);
		out->replay_evicted = ls.evicted;
	}
}
