/* args.c - JSON we send, built with yajl_gen only (never by splicing strings), and
 * typed accessors for JSON QEMU sent. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "qmp/internal.h"
#include "qmp/parse.h"
#include "qmp/qmp.h"

/* A command under construction: {"arguments": {...  (execute and id come last). */
struct qmp_args {
	yajl_gen gen;
	int err;	    /* first error, sticky */
	int depth;	    /* containers opened by the caller, inside "arguments" */
	uint64_t in_array;  /* bit d set: container at depth d+1 is an array */
};

static yajl_gen new_gen(void)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	if (g)
		yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	return g;
}

struct qmp_args *qmp_args_new(void)
{
	struct qmp_args *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->gen = new_gen();
	if (!a->gen) {
		free(a);
		return NULL;
	}
	yajl_gen_config(a->gen, yajl_gen_validate_utf8, 1);
	if (yajl_gen_map_open(a->gen) != yajl_gen_status_ok ||
	    yajl_gen_string(a->gen, (const unsigned char *)"arguments", 9) != yajl_gen_status_ok ||
	    yajl_gen_map_open(a->gen) != yajl_gen_status_ok) {
		qmp_args_free(a);
		return NULL;
	}
	return a;
}

void qmp_args_free(struct qmp_args *a)
{
	if (!a)
		return;
	yajl_gen_free(a->gen);
	free(a);
}

static void note(struct qmp_args *a, yajl_gen_status st)
{
	if (st != yajl_gen_status_ok && !a->err)
		a->err = -EINVAL; /* invalid UTF-8, too deep, out of order */
}

/* Emit key when inside an object; inside an array there must be none. */
static bool put_key(struct qmp_args *a, const char *key)
{
	if (!a || a->err)
		return false;
	bool array = a->depth > 0 && (a->in_array >> (a->depth - 1)) & 1;
	if (array != (key == NULL)) {
		a->err = -EINVAL;
		return false;
	}
	if (key)
		note(a, yajl_gen_string(a->gen, (const unsigned char *)key, strlen(key)));
	return !a->err;
}

void qmp_args_str(struct qmp_args *a, const char *key, const char *val)
{
	if (!val && a && !a->err)
		a->err = -EINVAL;
	if (put_key(a, key))
		note(a, yajl_gen_string(a->gen, (const unsigned char *)val, strlen(val)));
}

void qmp_args_int(struct qmp_args *a, const char *key, int64_t val)
{
	if (put_key(a, key))
		note(a, yajl_gen_integer(a->gen, (long long)val));
}

void qmp_args_bool(struct qmp_args *a, const char *key, bool val)
{
	if (put_key(a, key))
		note(a, yajl_gen_bool(a->gen, val));
}

static void begin(struct qmp_args *a, const char *key, bool array)
{
	if (!put_key(a, key))
		return;
	if (a->depth + 1 >= QMP_MAX_DEPTH) {
		a->err = -EINVAL;
		return;
	}
	note(a, array ? yajl_gen_array_open(a->gen) : yajl_gen_map_open(a->gen));
	a->in_array = (a->in_array & ~(1ull << a->depth)) | ((uint64_t)array << a->depth);
	a->depth++;
}

void qmp_args_begin_object(struct qmp_args *a, const char *key)
{
	begin(a, key, false);
}

void qmp_args_begin_array(struct qmp_args *a, const char *key)
{
	begin(a, key, true);
}

void qmp_args_end(struct qmp_args *a)
{
	if (!a || a->err)
		return;
	if (a->depth == 0) {
		a->err = -EINVAL;
		return;
	}
	a->depth--;
	bool array = (a->in_array >> a->depth) & 1;
	note(a, array ? yajl_gen_array_close(a->gen) : yajl_gen_map_close(a->gen));
}

/* Write a parsed value (depth-limited by its parser) with the builder. */
static void put_value(struct qmp_args *a, const char *key, yajl_val v)
{
	switch (v ? v->type : yajl_t_null) {
	case yajl_t_string:
		qmp_args_str(a, key, v->u.string);
		break;
	case yajl_t_number:
		/* r is text yajl's lexer accepted as a number: keep it exact */
		if (put_key(a, key))
			note(a, yajl_gen_number(a->gen, v->u.number.r, strlen(v->u.number.r)));
		break;
	case yajl_t_object:
		qmp_args_begin_object(a, key);
		for (size_t i = 0; i < v->u.object.len; i++)
			put_value(a, v->u.object.keys[i], v->u.object.values[i]);
		qmp_args_end(a);
		break;
	case yajl_t_array:
		qmp_args_begin_array(a, key);
		for (size_t i = 0; i < v->u.array.len; i++)
			put_value(a, NULL, v->u.array.values[i]);
		qmp_args_end(a);
		break;
	case yajl_t_true:
	case yajl_t_false:
		qmp_args_bool(a, key, v->type == yajl_t_true);
		break;
	default:
		if (put_key(a, key))
			note(a, yajl_gen_null(a->gen));
	}
}

int qmp_args_parse(const char *json, struct qmp_args **out, char *why, size_t why_len)
{
	char err[256] = "";
	yajl_val root = NULL;
	struct qmp_args *a = NULL;
	int r = qmp_prescan(json, strlen(json), QMP_MAX_DEPTH - 1, why, why_len);
	if (r < 0) {
		r = -EINVAL;
		goto out;
	}
	root = yajl_tree_parse(json, err, sizeof(err));
	if (!YAJL_IS_OBJECT(root)) {
		err[strcspn(err, "\n")] = '\0';
		snprintf(why, why_len, "arguments must be a JSON object%s%s", err[0] ? ": " : "",
			 err);
		r = -EINVAL;
		goto out;
	}
	a = qmp_args_new();
	if (!a) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < root->u.object.len; i++)
		put_value(a, root->u.object.keys[i], root->u.object.values[i]);
	if (a->err) {
		snprintf(why, why_len, "arguments could not be encoded");
		r = a->err;
		goto out;
	}
	*out = a;
	a = NULL;
	r = 0;
out:
	qmp_args_free(a);
	yajl_tree_free(root);
	return r;
}

/* Finish the command: close "arguments" (or open a bare object), add execute, id. */
static yajl_gen_status put_command(yajl_gen g, bool has_args, const char *name, uint64_t id)
{
	yajl_gen_status st = has_args ? yajl_gen_map_close(g) : yajl_gen_map_open(g);
	if (st == yajl_gen_status_ok)
		st = yajl_gen_string(g, (const unsigned char *)"execute", 7);
	if (st == yajl_gen_status_ok)
		st = yajl_gen_string(g, (const unsigned char *)name, strlen(name));
	if (st == yajl_gen_status_ok)
		st = yajl_gen_string(g, (const unsigned char *)"id", 2);
	if (st == yajl_gen_status_ok)
		st = yajl_gen_integer(g, (long long)id);
	if (st == yajl_gen_status_ok)
		st = yajl_gen_map_close(g);
	return st;
}

int qmp_cmd_encode(const char *name, struct qmp_args *args, uint64_t id, char **buf,
		   size_t *len, char *why, size_t why_len)
{
	yajl_gen g = args ? args->gen : new_gen();
	const unsigned char *text;
	size_t n;
	int r;
	if (!g) {
		r = -ENOMEM;
		goto out;
	}
	if (args && (args->err || args->depth != 0)) {
		snprintf(why, why_len, "arguments of %s are malformed (%s)", name,
			 args->err ? "a builder call failed" : "a container is not ended");
		r = -EINVAL;
		goto out;
	}
	yajl_gen_status st = put_command(g, args != NULL, name, id);
	if (st == yajl_gen_status_ok)
		st = yajl_gen_get_buf(g, &text, &n);
	if (st != yajl_gen_status_ok) {
		snprintf(why, why_len, "command name '%s' cannot be encoded (yajl_gen status %d)",
			 name, (int)st);
		r = -EINVAL;
		goto out;
	}
	*buf = malloc(n + 1);
	if (!*buf) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(*buf, text, n);
	(*buf)[n] = '\n'; /* QEMU ignores it; it keeps logs and test servers line-based */
	*len = n + 1;
	r = 0;
out:
	if (args)
		qmp_args_free(args);
	else if (g)
		yajl_gen_free(g);
	return r;
}

/* Depth is bounded by whoever parsed v (QMP_MAX_DEPTH); yajl_gen checks too. */
static yajl_gen_status format_value(yajl_gen g, yajl_val v)
{
	yajl_gen_status st = yajl_gen_status_ok;
	switch (v ? v->type : yajl_t_null) {
	case yajl_t_string:
		return yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
	case yajl_t_number:
		return yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
	case yajl_t_object:
		st = yajl_gen_map_open(g);
		for (size_t i = 0; i < v->u.object.len && st == yajl_gen_status_ok; i++) {
			const char *k = v->u.object.keys[i];
			st = yajl_gen_string(g, (const unsigned char *)k, strlen(k));
			if (st == yajl_gen_status_ok)
				st = format_value(g, v->u.object.values[i]);
		}
		return st == yajl_gen_status_ok ? yajl_gen_map_close(g) : st;
	case yajl_t_array:
		st = yajl_gen_array_open(g);
		for (size_t i = 0; i < v->u.array.len && st == yajl_gen_status_ok; i++)
			st = format_value(g, v->u.array.values[i]);
		return st == yajl_gen_status_ok ? yajl_gen_array_close(g) : st;
	case yajl_t_true:
		return yajl_gen_bool(g, 1);
	case yajl_t_false:
		return yajl_gen_bool(g, 0);
	default:
		return yajl_gen_null(g);
	}
}

int qmp_json_format(yajl_val v, bool pretty, char **out)
{
	yajl_gen g = new_gen();
	const unsigned char *text;
	size_t n;
	int r;
	if (!g)
		return -ENOMEM;
	yajl_gen_config(g, yajl_gen_beautify, pretty ? 1 : 0);
	if (format_value(g, v) != yajl_gen_status_ok ||
	    yajl_gen_get_buf(g, &text, &n) != yajl_gen_status_ok) {
		r = -EINVAL;
		goto out;
	}
	*out = strndup((const char *)text, n);
	r = *out ? 0 : -ENOMEM;
out:
	yajl_gen_free(g);
	return r;
}

static yajl_val get_key(yajl_val obj, const char *key)
{
	if (!YAJL_IS_OBJECT(obj))
		return NULL;
	for (size_t i = 0; i < obj->u.object.len; i++)
		if (strcmp(obj->u.object.keys[i], key) == 0)
			return obj->u.object.values[i];
	return NULL;
}

int qmp_get_int(yajl_val obj, const char *key, int64_t *out)
{
	yajl_val v = get_key(obj, key);
	if (!v)
		return -ENOENT;
	if (!YAJL_IS_INTEGER(v))
		return -EPROTO;
	*out = YAJL_GET_INTEGER(v);
	return 0;
}

const char *qmp_get_str(yajl_val obj, const char *key)
{
	return YAJL_GET_STRING(get_key(obj, key));
}

int qmp_get_bool(yajl_val obj, const char *key, bool *out)
{
	yajl_val v = get_key(obj, key);
	if (!v)
		return -ENOENT;
	if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
		return -EPROTO;
	*out = YAJL_IS_TRUE(v);
	return 0;
}
