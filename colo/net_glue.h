/* net_glue.h - the agent's net path (net/netpath.h) behind struct colo_net_hooks
 * (docs/net.md §6). colo/ owns the mapping; net/ knows nothing of the agent. */
#ifndef COLO_COLO_NET_GLUE_H
#define COLO_COLO_NET_GLUE_H

#include "colo/agent.h"

struct loop;
struct netpath;

/* Open the net path for cfg (config_net_enabled() must be true) and fill hooks.
 * 0 or -errno (logged; nothing left installed). */
int net_glue_open(struct loop *loop, const struct agent_config *cfg, uint64_t config_hash,
		  struct netpath **np, struct colo_net_hooks *hooks);
/* After agent_new(): comparator checkpoint requests go to a. */
void net_glue_attach(struct netpath *np, struct agent *a);
void net_glue_close(struct netpath *np); /* removes the rules (primary) */

#endif
