/* fuzz_control_req - what a control-socket client can send: the input is split into
 * lines as the server splits them (at most CTL_MAX_LINE bytes each) and every line
 * goes through ctl_req_parse(). Each line is also read as an agent's reply, as
 * coloctl reads them (ctl_reply_parse() and the human views). Invariants besides "no
 * crash, no leak": an accepted request names a known command, and what we build from
 * it (the request line coloctl would send) parses back to the same request. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colo/control_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *sink(void)
{
	static FILE *f;
	if (!f)
		f = fopen("/dev/null", "w");
	return f;
}

static void one_line(const char *line, size_t len)
{
	struct ctl_req req, again;
	char why[256];
	if (ctl_req_parse(line, len, &req, why, sizeof(why)) == 0) {
		if (req.cmd > CTL_WATCH)
			abort();
		char *built = ctl_request(req.cmd, req.confirm_fenced);
		if (!built || ctl_req_parse(built, strlen(built) - 1, &again, why, sizeof(why)) ||
		    again.cmd != req.cmd || again.confirm_fenced != req.confirm_fenced)
			abort();
		free(built);
	}
	/* coloctl's side: the same bytes as a reply (yajl_tree needs a C string). */
	char *copy = strndup(line, len);
	if (!copy)
		return;
	yajl_val tree = NULL;
	yajl_val v = ctl_reply_parse(copy, &tree, why, sizeof(why));
	if (v && sink()) {
		ctl_print_status(sink(), v);
		ctl_print_watch_line(sink(), v);
	}
	yajl_tree_free(tree);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (len >= CTL_MAX_LINE)
			return 0; /* the server ends such a client */
		one_line(p, len);
		p += len + 1;
	}
	return 0;
}
