/* parse.c - QEMU's untrusted bytes -> lines -> checked QMP messages. */
#include "qmp/parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/qmp.h"

void qmp_lines_init(struct qmp_lines *l)
{
	*l = (struct qmp_lines){ 0 };
}

void qmp_lines_free(struct qmp_lines *l)
{
	free(l->buf);
	qmp_lines_init(l);
}

/* Append n bytes, keeping room for a NUL; the caller has checked the limit. */
static int lines_append(struct qmp_lines *l, const char *p, size_t n)
{
	if (l->len + n + 1 > l->cap) {
		size_t cap = l->cap ? l->cap : 4096;
		while (cap < l->len + n + 1)
			cap *= 2;
		if (cap > QMP_MAX_LINE_BYTES + 2) /* one full line, '\r', NUL */
			cap = QMP_MAX_LINE_BYTES + 2;
		char *b = realloc(l->buf, cap);
		if (!b)
			return -ENOMEM;
		l->buf = b;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, p, n);
	l->len += n;
	l->buf[l->len] = '\0';
	return 0;
}

int qmp_lines_feed(struct qmp_lines *l, const char *data, size_t n, qmp_line_fn on_line,
		   void *arg, char *why, size_t why_len)
{
	while (n > 0) {
		const char *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t)(nl - data) : n;
		/* Checked before copying, so an endless line costs at most the limit
		 * (+1: the '\r' of "\r\n" does not count). */
		if (l->len + take > QMP_MAX_LINE_BYTES + 1) {
			snprintf(why, why_len, "QEMU sent a line longer than %u bytes",
				 QMP_MAX_LINE_BYTES);
			return -EMSGSIZE;
		}
		if (lines_append(l, data, take) < 0)
			return -ENOMEM;
		data += take;
		n -= take;
		if (!nl)
			break;
		data++; /* the '\n' */
		n--;
		size_t len = l->len;
		if (len > 0 && l->buf[len - 1] == '\r')
			l->buf[--len] = '\0';
		l->len = 0; /* before the callback: it may stop us */
		if (len > QMP_MAX_LINE_BYTES) {
			snprintf(why, why_len, "QEMU sent a line longer than %u bytes",
				 QMP_MAX_LINE_BYTES);
			return -EMSGSIZE;
		}
		int r = on_line(arg, l->buf, len);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Length of the strict UTF-8 sequence at s (no overlongs, surrogates or code
 * points above U+10FFFF), or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		if (c == 0xED)
			hi = 0x9F; /* UTF-16 surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		if (c == 0xF4)
			hi = 0x8F; /* above U+10FFFF */
	} else
		return 0;
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return n;
}

int qmp_prescan(const char *str, size_t len, int max_depth, char *why, size_t why_len)
{
	const unsigned char *s = (const unsigned char *)str;
	int depth = 0;
	bool in_string = false;
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		if (c == '\0') {
			snprintf(why, why_len, "QEMU sent a NUL byte at offset %zu", i);
			return -EPROTO;
		}
		size_t n = utf8_seq_len(s + i, len - i);
		if (n == 0) {
			snprintf(why, why_len, "QEMU sent invalid UTF-8 at offset %zu", i);
			return -EILSEQ;
		}
		if (in_string) {
			if (c == '\\' && i + 1 < len && s[i + 1] < 0x80)
				n = 2; /* an escaped ASCII char, e.g. \" */
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			if (++depth > max_depth) {
				snprintf(why, why_len, "QEMU sent JSON nested deeper than %d",
					 max_depth);
				return -ELOOP;
			}
		} else if (c == '}' || c == ']') {
			depth--;
		} else if (c == '/') {
			/* yajl_tree accepts comments; QEMU never sends them */
			snprintf(why, why_len, "QEMU sent a '/' outside a string at offset %zu", i);
			return -EPROTO;
		}
		i += n;
	}
	return 0;
}

static yajl_val obj_get(yajl_val obj, const char *key, yajl_val **slot)
{
	for (size_t i = 0; i < obj->u.object.len; i++) {
		if (strcmp(obj->u.object.keys[i], key) == 0) {
			if (slot)
				*slot = &obj->u.object.values[i];
			return obj->u.object.values[i];
		}
	}
	return NULL;
}

static int get_int(yajl_val obj, const char *key, int64_t *out)
{
	yajl_val v = obj_get(obj, key, NULL);
	if (!YAJL_IS_INTEGER(v))
		return -EPROTO;
	*out = YAJL_GET_INTEGER(v);
	return 0;
}

static int parse_greeting(yajl_val qmp, struct qmp_msg *m, char *why, size_t why_len)
{
	yajl_val version = YAJL_IS_OBJECT(qmp) ? obj_get(qmp, "version", NULL) : NULL;
	yajl_val qemu = YAJL_IS_OBJECT(version) ? obj_get(version, "qemu", NULL) : NULL;
	yajl_val caps = YAJL_IS_OBJECT(qmp) ? obj_get(qmp, "capabilities", NULL) : NULL;
	if (!YAJL_IS_OBJECT(qemu) || !YAJL_IS_ARRAY(caps) || get_int(qemu, "major", &m->major) ||
	    get_int(qemu, "minor", &m->minor) || get_int(qemu, "micro", &m->micro)) {
		snprintf(why, why_len, "QEMU's greeting lacks version.qemu.{major,minor,micro} "
				       "or capabilities");
		return -EPROTO;
	}
	m->package = YAJL_GET_STRING(obj_get(version, "package", NULL));
	for (size_t i = 0; i < caps->u.array.len; i++) {
		const char *cap = YAJL_GET_STRING(caps->u.array.values[i]);
		if (cap && strcmp(cap, "oob") == 0)
			m->oob = true;
	}
	m->type = QMP_MSG_GREETING;
	return 0;
}

static int parse_event(yajl_val root, yajl_val name, struct qmp_msg *m, char *why,
		       size_t why_len)
{
	yajl_val ts = obj_get(root, "timestamp", NULL);
	yajl_val data = obj_get(root, "data", NULL);
	if (!YAJL_IS_STRING(name) || !YAJL_IS_OBJECT(ts) || get_int(ts, "seconds", &m->seconds) ||
	    get_int(ts, "microseconds", &m->microseconds) || (data && !YAJL_IS_OBJECT(data))) {
		snprintf(why, why_len, "QEMU sent an event without a string name, a "
				       "timestamp {seconds, microseconds} or an object as data");
		return -EPROTO;
	}
	m->event = name->u.string;
	m->data = data;
	m->type = QMP_MSG_EVENT;
	return 0;
}

/* id: absent -> 0 (the client reports it); else it must be one of ours. */
static int parse_id(yajl_val root, struct qmp_msg *m, char *why, size_t why_len)
{
	yajl_val id = obj_get(root, "id", NULL);
	if (!id) {
		m->id = 0;
		return 0;
	}
	if (!YAJL_IS_INTEGER(id) || YAJL_GET_INTEGER(id) <= 0) {
		snprintf(why, why_len, "QEMU sent a reply whose id is not a positive integer");
		return -EPROTO;
	}
	m->id = (uint64_t)YAJL_GET_INTEGER(id);
	return 0;
}

static int parse_error(yajl_val err, struct qmp_msg *m, char *why, size_t why_len)
{
	m->error_class = YAJL_IS_OBJECT(err) ? YAJL_GET_STRING(obj_get(err, "class", NULL)) : NULL;
	m->error_desc = YAJL_IS_OBJECT(err) ? YAJL_GET_STRING(obj_get(err, "desc", NULL)) : NULL;
	if (!m->error_class || !m->error_desc) {
		snprintf(why, why_len, "QEMU sent an error without a string class and desc");
		return -EPROTO;
	}
	m->type = QMP_MSG_ERROR;
	return 0;
}

/* Which of the four kinds root is: exactly one of their keys must be present. */
static int classify(yajl_val root, struct qmp_msg *m, char *why, size_t why_len)
{
	static const char *const kinds[] = { "QMP", "return", "error", "event" };
	int found = -1, count = 0;
	yajl_val val = NULL, *slot = NULL;
	for (size_t i = 0; i < root->u.object.len; i++)
		for (int k = 0; k < 4; k++)
			if (strcmp(root->u.object.keys[i], kinds[k]) == 0) {
				found = k;
				count++;
				val = root->u.object.values[i];
				slot = &root->u.object.values[i];
			}
	if (count != 1) {
		snprintf(why, why_len, "QEMU sent an object with %s of QMP/return/error/event",
			 count ? "more than one" : "none");
		return -EPROTO;
	}
	switch (found) {
	case 0:
		return parse_greeting(val, m, why, why_len);
	case 1:
		m->type = QMP_MSG_RETURN;
		m->ret = val;
		m->ret_slot = slot;
		return parse_id(root, m, why, why_len);
	case 2:
		if (parse_error(val, m, why, why_len) < 0)
			return -EPROTO;
		return parse_id(root, m, why, why_len);
	default:
		return parse_event(root, val, m, why, why_len);
	}
}

int qmp_msg_parse(const char *line, size_t len, struct qmp_msg *msg, char *why, size_t why_len)
{
	*msg = (struct qmp_msg){ 0 };
	int r = qmp_prescan(line, len, QMP_MAX_DEPTH, why, why_len);
	if (r < 0)
		return r;
	char err[256] = "";
	/* The prescan rejected NUL bytes, so yajl sees exactly len bytes. */
	yajl_val root = yajl_tree_parse(line, err, sizeof(err));
	if (!root) {
		err[strcspn(err, "\n")] = '\0'; /* yajl's message spans lines */
		snprintf(why, why_len, "QEMU sent a line that is not JSON: %s",
			 err[0] ? err : "out of memory");
		return err[0] ? -EPROTO : -ENOMEM;
	}
	if (!YAJL_IS_OBJECT(root)) {
		snprintf(why, why_len, "QEMU sent JSON that is not an object");
		r = -EPROTO;
		goto out;
	}
	msg->tree = root;
	r = classify(root, msg, why, why_len);
out:
	if (r < 0) {
		yajl_tree_free(root);
		*msg = (struct qmp_msg){ 0 };
	}
	return r;
}

void qmp_msg_free(struct qmp_msg *msg)
{
	yajl_tree_free(msg->tree);
	*msg = (struct qmp_msg){ 0 };
}
