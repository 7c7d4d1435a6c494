/* fuzz_qmp_reply - QEMU's side of a QMP connection, as bytes: the line splitter,
 * the pre-yajl checks and the message checks of qmp/parse.c (no sockets, no
 * client state). The first byte picks the chunk size the stream is fed in, so
 * line boundaries fall everywhere. Invariant checked besides "no crash, no
 * leak": whatever parsed formats back to JSON that parses again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/parse.h"
#include "qmp/qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_line(void *arg, char *line, size_t len)
{
	struct qmp_msg m;
	char why[256];
	if (qmp_msg_parse(line, len, &m, why, sizeof(why)) < 0)
		return 1; /* the client ends the connection here */
	char *text = NULL;
	yajl_val whole = m.tree;
	if (qmp_json_format(whole, false, &text) == 0) {
		yajl_val again = yajl_tree_parse(text, NULL, 0);
		if (!again)
			abort(); /* we produced invalid JSON */
		yajl_tree_free(again);
		free(text);
	}
	int64_t v;
	bool b;
	(void)qmp_get_int(m.ret, "fd", &v);
	(void)qmp_get_bool(m.data, "guest", &b);
	(void)qmp_get_str(m.ret, "status");
	qmp_msg_free(&m);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t chunk = (size_t)data[0] + 1;
	data++;
	size--;
	struct qmp_lines lines;
	char why[256];
	qmp_lines_init(&lines);
	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (qmp_lines_feed(&lines, (const char *)data + off, n, on_line, NULL, why,
				   sizeof(why)) != 0)
			break;
	}
	qmp_lines_free(&lines);
	return 0;
}
