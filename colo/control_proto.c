/* control_proto.c - control requests in, replies out (docs/control.md). */
#include "colo/control_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

static const char *const cmd_names[] = {
	[CTL_STATUS] = "status",
	[CTL_CHECKPOINT] = "checkpoint",
	[CTL_FAILOVER] = "failover",
	[CTL_WATCH] = "watch",
};

static int bad(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Before yajl: no NUL (yajl_tree takes a C string), bounded nesting (its free is
 * recursive), no comments (yajl accepts them; JSON has none). */
static int prescan(const char *s, size_t len, char *why, size_t why_len)
{
	int depth = 0;
	bool in_str = false, esc = false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (ch == '\0')
			return bad(why, why_len, "NUL byte at offset %zu", i);
		if (in_str) {
			if (esc)
				esc = false;
			else if (ch == '\\')
				esc = true;
			else if (ch == '"')
				in_str = false;
			continue;
		}
		if (ch == '"')
			in_str = true;
		else if (ch == '/')
			return bad(why, why_len, "not JSON: '/' outside a string");
		else if ((ch == '{' || ch == '[') && ++depth > CTL_MAX_DEPTH)
			return bad(why, why_len, "nested deeper than %d", CTL_MAX_DEPTH);
		else if (ch == '}' || ch == ']')
			depth--;
	}
	return 0;
}

static int parse_fields(yajl_val obj, struct ctl_req *req, char *why, size_t len)
{
	bool have_cmd = false, have_confirm = false;
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		yajl_val v = obj->u.object.values[i];
		if (!strcmp(k, "cmd")) {
			const char *c = YAJL_GET_STRING(v);
			size_t n;
			if (!c || have_cmd)
				return bad(why, len, "\"cmd\" must be one string");
			for (n = 0; n < sizeof(cmd_names) / sizeof(cmd_names[0]); n++)
				if (!strcmp(c, cmd_names[n]))
					break;
			if (n == sizeof(cmd_names) / sizeof(cmd_names[0]))
				return bad(why, len, "unknown command (status, checkpoint, failover, "
					   "watch)");
			req->cmd = (enum ctl_cmd)n;
			have_cmd = true;
		} else if (!strcmp(k, "confirm_fenced")) {
			if ((!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) || have_confirm)
				return bad(why, len, "\"confirm_fenced\" must be one boolean");
			req->confirm_fenced = YAJL_IS_TRUE(v);
			have_confirm = true;
		} else {
			return bad(why, len, "unknown field (cmd, confirm_fenced)");
		}
	}
	if (!have_cmd)
		return bad(why, len, "no \"cmd\"");
	if (have_confirm && req->cmd != CTL_FAILOVER)
		return bad(why, len, "\"confirm_fenced\" belongs to failover");
	return 0;
}

int ctl_req_parse(const char *line, size_t len, struct ctl_req *req, char *why, size_t why_len)
{
	char err[128] = "";
	int r = prescan(line, len, why, why_len);
	if (r < 0)
		return r;
	char *copy = strndup(line, len);
	if (!copy)
		return bad(why, why_len, "out of memory");
	yajl_val tree = yajl_tree_parse(copy, err, sizeof(err));
	free(copy);
	if (!tree) {
		char *nl = strchr(err, '\n'); /* yajl's message is multi-line */
		if (nl)
			*nl = '\0';
		return bad(why, why_len, "not JSON: %s", err[0] ? err : "parse error");
	}
	*req = (struct ctl_req){ 0 };
	if (!YAJL_IS_OBJECT(tree))
		r = bad(why, why_len, "a request is a JSON object");
	else
		r = parse_fields(tree, req, why, why_len);
	yajl_tree_free(tree);
	return r;
}

/* --- building replies -------------------------------------------------------- */

static void str(yajl_gen g, const char *s)
{
	yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void kv_str(yajl_gen g, const char *k, const char *v)
{
	str(g, k);
	if (v)
		str(g, v);
	else
		yajl_gen_null(g);
}

static void kv_int(yajl_gen g, const char *k, uint64_t v)
{
	str(g, k);
	yajl_gen_integer(g, (long long)v);
}

static void kv_bool(yajl_gen g, const char *k, bool v)
{
	str(g, k);
	yajl_gen_bool(g, v);
}

/* Milliseconds from microseconds, as a JSON number with 3 decimals. */
static void kv_ms(yajl_gen g, const char *k, uint64_t us)
{
	str(g, k);
	yajl_gen_double(g, (double)(us / 1000) + (double)(us % 1000) / 1000.0);
}

static void kv_opt(yajl_gen g, const char *k, uint64_t v)
{
	str(g, k);
	if (v == UINT64_MAX)
		yajl_gen_null(g);
	else
		yajl_gen_integer(g, (long long)v);
}

static yajl_gen gen_new(void)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	if (g)
		yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	return g;
}

/* The generated text plus "\n"; frees g. */
static char *gen_line(yajl_gen g)
{
	const unsigned char *buf;
	size_t len;
	char *line = NULL;
	if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok && (line = malloc(len + 2))) {
		memcpy(line, buf, len);
		line[len] = '\n';
		line[len + 1] = '\0';
	}
	yajl_gen_free(g);
	return line;
}

static void gen_peer(yajl_gen g, const struct agent_status *st)
{
	str(g, "peer");
	yajl_gen_map_open(g);
	kv_str(g, "address", st->peer);
	kv_bool(g, "alive", st->peer_alive);
	kv_str(g, "state", st->peer_state < 0 ? NULL : agent_state_name(st->peer_state));
	kv_opt(g, "last_heard_ms", st->peer_last_heard_ms);
	kv_ms(g, "rtt_ms", st->rtt_last_us);
	kv_ms(g, "rtt_avg_ms", st->rtt_avg_us);
	kv_int(g, "heartbeats_sent", st->hb_tx);
	kv_int(g, "heartbeats_received", st->hb_rx);
	kv_int(g, "heartbeats_dropped", st->hb_dropped);
	kv_int(g, "losses", st->hb_losses);
	yajl_gen_map_close(g);
}

static void gen_checkpoints(yajl_gen g, const struct agent_status *st)
{
	str(g, "checkpoints");
	yajl_gen_map_open(g);
	kv_int(g, "committed", st->committed);
	kv_int(g, "last_seq", st->last_seq);
	kv_opt(g, "since_last_ms", st->since_last_ms);
	str(g, "by_reason");
	yajl_gen_map_open(g);
	for (int r = 0; r < CKPT__COUNT; r++)
		kv_int(g, ckpt_reason_name(r), st->by_reason[r]);
	yajl_gen_map_close(g);
	kv_int(g, "coalesced", st->coalesced);
	yajl_gen_map_close(g);
	str(g, "pause_ms");
	yajl_gen_map_open(g);
	kv_ms(g, "last", st->pause_last_us);
	kv_ms(g, "p50", st->pause_p50_us);
	kv_ms(g, "p99", st->pause_p99_us);
	kv_int(g, "samples", st->pause_samples);
	yajl_gen_map_close(g);
	str(g, "dirty");
	yajl_gen_map_open(g);
	kv_int(g, "last_pages", st->dirty_last_pages);
	kv_int(g, "last_bytes", st->dirty_last_bytes);
	kv_int(g, "avg_pages", st->dirty_avg_pages);
	kv_int(g, "avg_bytes", st->dirty_avg_bytes);
	yajl_gen_map_close(g);
}

static void gen_comparator(yajl_gen g, const struct agent_status *st)
{
	str(g, "comparator");
	yajl_gen_map_open(g);
	kv_bool(g, "available", st->comparator);
	if (!st->comparator)
		kv_str(g, "note", "off: the agent runs without its net path (no --net-tap/"
				  "--net-bridge, or --no-net); memory and devices are protected, "
				  "network output is not compared");
	kv_int(g, "packets_compared", st->net.packets_compared);
	kv_int(g, "mismatches", st->net.mismatches);
	kv_int(g, "held_packets", st->net.held_packets);
	kv_int(g, "held_bytes", st->net.held_bytes);
	if (st->comparator) {
		kv_bool(g, "link_up", st->net.link_up);
		kv_int(g, "matched", st->net.matched);
		kv_int(g, "released_after_checkpoint", st->net.released_ckpt);
		kv_int(g, "passed", st->net.passed);
		kv_int(g, "timeouts", st->net.timeouts);
		kv_int(g, "checkpoint_requests", st->net.requests);
		kv_int(g, "hold_p50_us", st->net.hold_p50_us);
		kv_int(g, "hold_p99_us", st->net.hold_p99_us);
		kv_int(g, "secondary_frames", st->net.secondary_frames);
		kv_int(g, "secondary_stale", st->net.sec_stale);
		kv_int(g, "secondary_dropped", st->net.sec_dropped);
		kv_int(g, "input_mirrored", st->net.input_mirrored);
		kv_int(g, "input_unmirrored", st->net.input_unmirrored);
		kv_int(g, "captured", st->net.captured);
		kv_int(g, "injected", st->net.injected);
		kv_int(g, "reinjected", st->net.reinjected);
		kv_int(g, "rewritten_in", st->net.rewritten_in);
		kv_int(g, "rewritten_out", st->net.rewritten_out);
	}
	yajl_gen_map_close(g);
}

static void gen_status(yajl_gen g, const struct agent_status *st)
{
	yajl_gen_map_open(g);
	kv_str(g, "role", role_name(st->role));
	kv_str(g, "state", agent_state_name(st->state));
	kv_int(g, "state_age_ms", st->state_age_ms);
	str(g, "vm");
	yajl_gen_map_open(g);
	kv_int(g, "pid", (uint64_t)st->vm_pid);
	kv_int(g, "ram_bytes", st->ram_size);
	yajl_gen_map_close(g);
	gen_peer(g, st);
	gen_checkpoints(g, st);
	gen_comparator(g, st);
	yajl_gen_map_close(g);
}

char *ctl_reply_status(const struct agent_status *st)
{
	yajl_gen g = gen_new();
	if (!g)
		return NULL;
	yajl_gen_map_open(g);
	kv_bool(g, "ok", true);
	str(g, "status");
	gen_status(g, st);
	yajl_gen_map_close(g);
	return gen_line(g);
}

char *ctl_reply_error(const char *error)
{
	yajl_gen g = gen_new();
	if (!g)
		return NULL;
	yajl_gen_map_open(g);
	kv_bool(g, "ok", false);
	kv_str(g, "error", error);
	yajl_gen_map_close(g);
	return gen_line(g);
}

char *ctl_reply_checkpoint(uint64_t number, const struct agent_status *st)
{
	yajl_gen g = gen_new();
	if (!g)
		return NULL;
	yajl_gen_map_open(g);
	kv_bool(g, "ok", true);
	str(g, "checkpoint");
	yajl_gen_map_open(g);
	kv_int(g, "number", number);
	kv_int(g, "seq", st->last_seq);
	kv_ms(g, "pause_ms", st->pause_last_us);
	kv_int(g, "dirty_pages", st->dirty_last_pages);
	kv_int(g, "bytes", st->dirty_last_bytes);
	yajl_gen_map_close(g);
	yajl_gen_map_close(g);
	return gen_line(g);
}

char *ctl_reply_failover(const char *what)
{
	yajl_gen g = gen_new();
	if (!g)
		return NULL;
	yajl_gen_map_open(g);
	kv_bool(g, "ok", true);
	kv_str(g, "failover", what);
	yajl_gen_map_close(g);
	return gen_line(g);
}

char *ctl_request(enum ctl_cmd cmd, bool confirm_fenced)
{
	yajl_gen g = gen_new();
	if (!g)
		return NULL;
	yajl_gen_map_open(g);
	kv_str(g, "cmd", cmd_names[cmd]);
	if (cmd == CTL_FAILOVER && confirm_fenced)
		kv_bool(g, "confirm_fenced", true);
	yajl_gen_map_close(g);
	return gen_line(g);
}
