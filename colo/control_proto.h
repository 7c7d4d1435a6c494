/* control_proto.h - the control socket's JSON lines (docs/control.md): the request
 * parser (untrusted input: fuzz/fuzz_control_req.c), the replies the agent builds, and
 * the human views coloctl prints. JSON is built with yajl_gen and read with yajl_tree;
 * no string is ever spliced into JSON by hand. */
#ifndef COLO_COLO_CONTROL_PROTO_H
#define COLO_COLO_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <yajl/yajl_tree.h>

#include "colo/agent.h"

/* A request line, newline included, is at most this long; longer ends the client. */
#define CTL_MAX_LINE 4096
/* Requests are flat objects: deeper nesting is refused before yajl sees it. */
#define CTL_MAX_DEPTH 4

enum ctl_cmd { CTL_STATUS, CTL_CHECKPOINT, CTL_FAILOVER, CTL_WATCH };

struct ctl_req {
	enum ctl_cmd cmd;
	bool confirm_fenced; /* failover */
};

/* One request line (without its newline). 0, or -EINVAL with why: not JSON, not an
 * object, NUL byte, too deep, no "cmd", unknown command, unknown or mistyped field. */
int ctl_req_parse(const char *line, size_t len, struct ctl_req *req, char *why, size_t why_len);

/* Replies, each one line ending in "\n", malloc'd (NULL when out of memory). */
char *ctl_reply_status(const struct agent_status *st);
char *ctl_reply_error(const char *error);
char *ctl_reply_checkpoint(uint64_t number, const struct agent_status *st);
char *ctl_reply_failover(const char *what);
/* A request, as coloctl sends it. */
char *ctl_request(enum ctl_cmd cmd, bool confirm_fenced);

/* coloctl's side: one reply line -> tree. Returns the "status" (or other payload)
 * object for ok replies; NULL with why (the agent's "error" text, or a parse error). */
yajl_val ctl_reply_parse(const char *line, yajl_val *tree, char *why, size_t why_len);
/* Human views of a "status" object. */
void ctl_print_status(FILE *out, yajl_val status);
void ctl_print_watch_line(FILE *out, yajl_val status);

#endif
