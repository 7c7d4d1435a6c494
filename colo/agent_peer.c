/* agent_peer.c - what the heartbeat says about the peer, as events; the fence command. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "colo/agent_int.h"
#include "colo/fence.h"
#include "colo/heartbeat.h"
#include "lib/log.h"

/* The peer's advertised state, as an event for us (EV__COUNT: nothing to do). */
static enum agent_event peer_state_event(const struct agent *a, uint8_t s)
{
	if (a->cfg.role == ROLE_SECONDARY) {
		switch (s) {
		case AS_HANDOVER:
			return EV_PEER_HANDOVER;
		case AS_HANDED_OVER:
			return EV_PEER_HANDED_OVER;
		case AS_DEGRADED:
		case AS_FENCED:
			return EV_PEER_DEGRADED;
		case AS_FAILED:
			/* A failed primary exits: its VM is gone (QEMU died) or was never
			 * protected. Like silence, only sooner. */
			return EV_PEER_LOST;
		default:
			return EV__COUNT;
		}
	}
	switch (s) {
	case AS_HANDOVER:
		return EV_PEER_HANDOVER;
	case AS_TAKEOVER:
	case AS_ACTIVE:
		return EV_PEER_TOOK_OVER;
	default:
		return EV__COUNT;
	}
}

static void raise_peer_state(struct agent *a, uint8_t s)
{
	enum agent_event e = peer_state_event(a, s);
	if (e == EV__COUNT)
		return;
	char why[96];
	snprintf(why, sizeof(why), "the %s reports %s",
		 a->cfg.role == ROLE_PRIMARY ? "secondary" : "primary", agent_state_name(s));
	agent_event(a, e, why);
}

static void on_peer_up(struct heartbeat *hb, uint8_t role, uint8_t state, void *arg)
{
	struct agent *a = arg;
	char peer[80];
	log_info("%s: heartbeat from %s (%s, %s)", role_name(a->cfg.role),
		 colo_addr_str(&a->cfg.hb_peer, peer, sizeof(peer)),
		 role == HB_ROLE_PRIMARY ? "primary" : "secondary", agent_state_name(state));
	agent_event(a, EV_PEER_UP, "the peer's heartbeat arrived");
	raise_peer_state(a, state);
}

static void on_peer_state(struct heartbeat *hb, uint8_t state, void *arg)
{
	raise_peer_state(arg, state);
}

static void on_peer_lost(struct heartbeat *hb, uint64_t silent_ms, void *arg)
{
	struct agent *a = arg;
	char why[160], peer[80];
	snprintf(why, sizeof(why), "no heartbeat from %s for %llu ms",
		 colo_addr_str(&a->cfg.hb_peer, peer, sizeof(peer)), (unsigned long long)silent_ms);
	agent_event(a, EV_PEER_LOST, why);
}

int peer_begin(struct agent *a)
{
	struct hb_config c = {
		.bind = a->cfg.hb_bind.sa,
		.bind_len = a->cfg.hb_bind.salen,
		.peer = a->cfg.hb_peer.sa,
		.peer_len = a->cfg.hb_peer.salen,
		.interval_ms = a->cfg.hb_interval_ms,
		.misses = a->cfg.hb_misses,
		.role = a->cfg.role == ROLE_PRIMARY ? HB_ROLE_PRIMARY : HB_ROLE_SECONDARY,
		.state = (uint8_t)a->state,
	};
	struct hb_handlers h = { on_peer_up, on_peer_state, on_peer_lost, a };
	return heartbeat_start(a->loop, &c, &h, &a->hb);
}

void peer_end(struct agent *a)
{
	heartbeat_free(a->hb);
	a->hb = NULL;
}

void peer_publish_state(struct agent *a)
{
	if (a->hb)
		heartbeat_set_state(a->hb, (uint8_t)a->state);
}

bool peer_alive(const struct agent *a)
{
	struct hb_stats s;
	if (!a->hb)
		return false;
	heartbeat_get_stats(a->hb, &s);
	return s.peer_alive;
}

bool peer_heard(const struct agent *a)
{
	struct hb_stats s;
	if (!a->hb)
		return false;
	heartbeat_get_stats(a->hb, &s);
	return s.last_rx_age_ms != UINT64_MAX;
}

static void on_fence_done(struct fence *f, int ok, const char *why, void *arg)
{
	struct agent *a = arg;
	char text[200];
	snprintf(text, sizeof(text), "fence command %s", why);
	agent_event(a, ok ? EV_FENCE_OK : EV_FENCE_FAILED, text);
}

int fence_begin(struct agent *a)
{
	char peer[80], e1[128], e2[128], e3[64];
	fence_end(a);
	snprintf(e1, sizeof(e1), "COLO_PEER=%s", a->cfg.hb_peer.host);
	snprintf(e2, sizeof(e2), "COLO_PEER_HEARTBEAT=%s",
		 colo_addr_str(&a->cfg.hb_peer, peer, sizeof(peer)));
	snprintf(e3, sizeof(e3), "COLO_ROLE=%s", role_name(a->cfg.role));
	char *env[] = { e1, e2, e3, NULL };
	return fence_run(a->loop, a->cfg.fence_cmd, a->cfg.fence_timeout_ms, env, on_fence_done, a,
			 &a->fence);
}

void fence_end(struct agent *a)
{
	fence_free(a->fence);
	a->fence = NULL;
}
