/* parse.h - internal to qmp/ (and fuzz/fuzz_qmp_reply.c): QEMU's byte stream ->
 * lines -> checked messages. No I/O and no connection state here, so the fuzz target
 * links exactly the code that sees untrusted bytes.
 *
 * QEMU writes one JSON object per line, "\r\n"-terminated (pretty=off, the default).
 * Every line is checked against our limits (length while it accumulates; then NUL
 * bytes, strict UTF-8 and nesting depth) before yajl parses it.
 */
#ifndef COLO_QMP_PARSE_H
#define COLO_QMP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

/* Splits a byte stream into lines of at most QMP_MAX_LINE_BYTES. */
struct qmp_lines {
	char *buf; /* the unfinished line; NUL-terminated for yajl */
	size_t len, cap;
};

/* Return 0 to go on, anything else to stop feeding (the value is passed back). */
typedef int (*qmp_line_fn)(void *arg, char *line, size_t len);

void qmp_lines_init(struct qmp_lines *l);
void qmp_lines_free(struct qmp_lines *l);
/* Feed n bytes; on_line gets each complete line without "\r\n". Returns 0, the
 * first non-zero value of on_line, -EMSGSIZE for an overlong line (with why) or
 * -ENOMEM. */
int qmp_lines_feed(struct qmp_lines *l, const char *data, size_t n, qmp_line_fn on_line,
		   void *arg, char *why, size_t why_len);
/* Bytes of an unfinished line (a close with some is a close mid-reply). */
static inline size_t qmp_lines_pending(const struct qmp_lines *l)
{
	return l->len;
}

enum qmp_msg_type { QMP_MSG_GREETING, QMP_MSG_RETURN, QMP_MSG_ERROR, QMP_MSG_EVENT };

/* One checked message. Pointers point into tree, which the message owns. */
struct qmp_msg {
	enum qmp_msg_type type;
	yajl_val tree;
	/* RETURN / ERROR: our command id (we only send positive integers). */
	uint64_t id;
	/* RETURN: the value and the slot holding it in tree (to let a caller keep it). */
	yajl_val ret;
	yajl_val *ret_slot;
	/* ERROR */
	const char *error_class, *error_desc;
	/* EVENT */
	const char *event;
	yajl_val data;
	int64_t seconds, microseconds;
	/* GREETING */
	bool oob;
	int64_t major, minor, micro;
	const char *package;
};

/* Parse one line into msg. Returns 0, or -EPROTO / -ELOOP / -EILSEQ / -ENOMEM with
 * a reason in why; msg needs qmp_msg_free() only on success. */
int qmp_msg_parse(const char *line, size_t len, struct qmp_msg *msg, char *why, size_t why_len);
void qmp_msg_free(struct qmp_msg *msg);

/* The checks done before yajl, exposed for tests: 0, -EPROTO (NUL byte),
 * -EILSEQ (not UTF-8), -ELOOP (deeper than max_depth). */
int qmp_prescan(const char *s, size_t len, int max_depth, char *why, size_t why_len);

#endif
