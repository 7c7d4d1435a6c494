/* ctl_client.h - coloctl's connection to an agent's control socket: blocking, with
 * timeouts (a tool, not the agent's loop). */
#ifndef COLO_COLO_CTL_CLIENT_H
#define COLO_COLO_CTL_CLIENT_H

#include <stddef.h>

#include "colo/control_proto.h"

struct ctl_conn {
	int fd;
	char buf[65536];
	size_t len;
};

/* 0, or -errno with why ("cannot connect to PATH: ... (is colo-agent running?)"). */
int ctl_connect(struct ctl_conn *c, const char *path, char *why, size_t why_len);
int ctl_send(struct ctl_conn *c, enum ctl_cmd cmd, bool confirm_fenced);
/* One reply line (NUL-terminated, without "\n") into line. 0, -ETIMEDOUT,
 * -ECONNRESET (the agent closed), -EMSGSIZE. */
int ctl_recv_line(struct ctl_conn *c, char *line, size_t len, int timeout_ms);
void ctl_close(struct ctl_conn *c);

#endif
