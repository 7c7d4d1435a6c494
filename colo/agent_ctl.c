/* agent_ctl.c - the agent behind the control socket's ops table. */
#include "colo/control.h"

static void ops_status(struct agent_status *st, void *arg)
{
	agent_get_status(arg, st);
}

static int64_t ops_checkpoint(char *why, size_t len, void *arg)
{
	return agent_request_checkpoint(arg, CKPT_OPERATOR, why, len);
}

static uint64_t ops_committed(void *arg)
{
	return agent_checkpoints_committed(arg);
}

static bool ops_replicating(void *arg)
{
	enum agent_state s = agent_state(arg);
	return s == AS_PROTECTED || s == AS_CHECKPOINTING;
}

static int ops_failover(bool confirm, char *why, size_t len, void *arg)
{
	return agent_request_failover(arg, confirm, why, len);
}

void control_ops_for_agent(struct agent *a, struct control_ops *ops)
{
	*ops = (struct control_ops){ ops_status, ops_checkpoint, ops_committed, ops_replicating,
				     ops_failover, a };
}
