/* net_glue.c - struct colo_net_hooks on top of net/netpath.h (docs/net.md §6). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "colo/net_glue.h"
#include "lib/log.h"
#include "net/netpath.h"

static uint64_t h_input_mark(uint64_t seq, void *arg)
{
	return np_stopped(arg, seq);
}

static void h_release(uint64_t seq, void *arg)
{
	np_committed(arg, seq);
}

static void h_release_all(void *arg)
{
	np_release_all(arg);
}

static int h_go_live(void *arg)
{
	return np_go_live(arg);
}

static void h_loaded(uint64_t seq, uint64_t mark, void *arg)
{
	np_loaded(arg, seq, mark);
}

static void h_counters(struct colo_net_counters *out, void *arg)
{
	struct np_stats s;
	np_get_stats(arg, &s);
	*out = (struct colo_net_counters){
		.packets_compared = s.cmp.matched + s.cmp.mismatches,
		.mismatches = s.cmp.mismatches,
		.held_packets = s.cmp.held,
		.held_bytes = s.cmp.held_bytes,
		.matched = s.cmp.matched,
		.released_ckpt = s.cmp.released_ckpt,
		.passed = s.cmp.passed,
		.timeouts = s.cmp.timeouts,
		.hold_p50_us = s.cmp.hold_p50_us,
		.hold_p99_us = s.cmp.hold_p99_us,
		.secondary_frames = s.cmp.secondary_frames,
		.sec_stale = s.cmp.sec_stale,
		.sec_dropped = s.cmp.sec_dropped,
		.input_mirrored = s.input_sent,
		.input_unmirrored = s.input_unmirrored,
		.captured = s.captured,
		.injected = s.injected,
		.reinjected = s.reinjected,
		.rewritten_in = s.rewritten_in,
		.rewritten_out = s.rewritten_out,
		.link_up = s.link_up,
	};
	for (int i = 0; i < CMP_REASON__COUNT; i++)
		out->requests += s.cmp.requests[i];
}

static void on_checkpoint(void *arg, const char *why)
{
	char answer[200];
	int64_t r = agent_request_checkpoint(arg, CKPT_COMPARATOR, answer, sizeof(answer));
	if (r < 0)
		log_debug("net: comparator (%s) asked for a checkpoint: %s", why, answer);
	else
		log_debug("net: comparator (%s): checkpoint ticket %lld", why, (long long)r);
}

/* The script next to the build (build/colo-agent -> ../net/colo-net-setup), so a
 * checkout runs without installing anything. */
static void default_setup(char *buf, size_t len)
{
	char exe[PATH_MAX - 64]; /* room for the suffix below */
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	snprintf(buf, len, "%s/../net/colo-net-setup", exe);
	if (access(buf, X_OK) != 0)
		snprintf(buf, len, "%s/../../net/colo-net-setup", exe); /* build/san/ */
}

int net_glue_open(struct loop *loop, const struct agent_config *cfg, uint64_t config_hash,
		  struct netpath **np, struct colo_net_hooks *hooks)
{
	char setup[CONFIG_PATH_MAX];
	if (cfg->net_setup[0])
		snprintf(setup, sizeof(setup), "%s", cfg->net_setup);
	else
		default_setup(setup, sizeof(setup));
	struct netpath_config nc = {
		.primary = cfg->role == ROLE_PRIMARY,
		.tap = cfg->net_tap[0] ? cfg->net_tap : "vm0",
		.bridge = cfg->net_bridge[0] ? cfg->net_bridge : "br0",
		.setup_cmd = setup,
		.queue_out = (uint16_t)cfg->net_queue_out,
		.queue_in = (uint16_t)cfg->net_queue_in,
		.timeout_ms = cfg->net_timeout_ms,
		.peer_host = cfg->repl.host,
		.port = (uint16_t)cfg->net_port,
		.config_hash = config_hash,
	};
	int r = np_new(loop, &nc, np);
	if (r < 0)
		return r;
	*hooks = (struct colo_net_hooks){
		.input_mark = h_input_mark, .release = h_release, .release_all = h_release_all,
		.go_live = h_go_live, .counters = h_counters, .loaded = h_loaded, .arg = *np,
	};
	return 0;
}

void net_glue_attach(struct netpath *np, struct agent *a)
{
	np_set_checkpoint(np, on_checkpoint, a);
}

void net_glue_close(struct netpath *np)
{
	np_free(np);
}
