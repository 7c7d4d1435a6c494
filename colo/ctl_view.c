/* ctl_view.c - coloctl's side of the control protocol: reply lines in, human views
 * out. The agent is trusted more than QEMU but its replies are still checked:
 * a missing or mistyped field prints as "?", never crashes. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "colo/control_proto.h"

yajl_val ctl_reply_parse(const char *line, yajl_val *tree, char *why, size_t len)
{
	char err[128] = "";
	*tree = yajl_tree_parse(line, err, sizeof(err));
	if (!*tree || !YAJL_IS_OBJECT(*tree)) {
		snprintf(why, len, "the agent sent something that is not a JSON object");
		return NULL;
	}
	yajl_val ok = yajl_tree_get(*tree, (const char *[]){ "ok", NULL }, yajl_t_any);
	if (!ok || !YAJL_IS_TRUE(ok)) {
		const char *e = YAJL_GET_STRING(
			yajl_tree_get(*tree, (const char *[]){ "error", NULL }, yajl_t_string));
		snprintf(why, len, "%s", e ? e : "the agent's reply has no \"ok\": true");
		return NULL;
	}
	for (size_t i = 0; i < (*tree)->u.object.len; i++)
		if (strcmp((*tree)->u.object.keys[i], "ok"))
			return (*tree)->u.object.values[i];
	snprintf(why, len, "the agent's reply is empty");
	return NULL;
}

static yajl_val get(yajl_val o, const char *a, const char *b)
{
	const char *path[] = { a, b, NULL };
	return yajl_tree_get(o, path, yajl_t_any);
}

static const char *s(yajl_val o, const char *a, const char *b)
{
	yajl_val v = get(o, a, b);
	return YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : YAJL_IS_NULL(v) ? "-" : "?";
}

static double num(yajl_val o, const char *a, const char *b)
{
	yajl_val v = get(o, a, b);
	return YAJL_IS_NUMBER(v) ? YAJL_GET_DOUBLE(v) : -1;
}

static long long integer(yajl_val o, const char *a, const char *b)
{
	yajl_val v = get(o, a, b);
	return YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : -1;
}

/* "1.2 s", "350 ms", "never" */
static const char *age(long long ms, char *buf, size_t len)
{
	if (ms < 0)
		snprintf(buf, len, "never");
	else if (ms < 10000)
		snprintf(buf, len, "%lld ms", ms);
	else
		snprintf(buf, len, "%.1f s", (double)ms / 1000.0);
	return buf;
}

void ctl_print_status(FILE *out, yajl_val st)
{
	char b1[32], b2[32];
	fprintf(out, "%s: %s (for %s)\n", s(st, "role", NULL), s(st, "state", NULL),
		age(integer(st, "state_age_ms", NULL), b1, sizeof(b1)));
	fprintf(out, "  vm          pid %lld, %lld MiB RAM\n", integer(st, "vm", "pid"),
		integer(st, "vm", "ram_bytes") >> 20);
	yajl_val p = get(st, "peer", NULL);
	fprintf(out, "  peer        %s %s, state %s, last heard %s ago, rtt %.3f ms (avg %.3f)\n",
		s(p, "address", NULL), YAJL_IS_TRUE(get(p, "alive", NULL)) ? "up" : "DOWN",
		s(p, "state", NULL), age(integer(p, "last_heard_ms", NULL), b1, sizeof(b1)),
		num(p, "rtt_ms", NULL), num(p, "rtt_avg_ms", NULL));
	fprintf(out, "  heartbeats  %lld sent, %lld received, %lld dropped, %lld losses\n",
		integer(p, "heartbeats_sent", NULL), integer(p, "heartbeats_received", NULL),
		integer(p, "heartbeats_dropped", NULL), integer(p, "losses", NULL));
	yajl_val c = get(st, "checkpoints", NULL);
	fprintf(out, "  checkpoints %lld committed (last seq %lld, %s ago); periodic %lld, "
		"comparator %lld, operator %lld, handover %lld; %lld coalesced\n",
		integer(c, "committed", NULL), integer(c, "last_seq", NULL),
		age(integer(c, "since_last_ms", NULL), b2, sizeof(b2)),
		integer(c, "by_reason", "periodic"), integer(c, "by_reason", "comparator"),
		integer(c, "by_reason", "operator"), integer(c, "by_reason", "handover"),
		integer(c, "coalesced", NULL));
	fprintf(out, "  pause       last %.2f ms, p50 %.2f ms, p99 %.2f ms (%lld samples)\n",
		num(st, "pause_ms", "last"), num(st, "pause_ms", "p50"), num(st, "pause_ms", "p99"),
		integer(st, "pause_ms", "samples"));
	fprintf(out, "  dirty       last %lld pages / %lld bytes, average %lld pages / %lld bytes\n",
		integer(st, "dirty", "last_pages"), integer(st, "dirty", "last_bytes"),
		integer(st, "dirty", "avg_pages"), integer(st, "dirty", "avg_bytes"));
	yajl_val k = get(st, "comparator", NULL);
	if (YAJL_IS_TRUE(get(k, "available", NULL))) {
		fprintf(out, "  comparator  %lld packets compared, %lld mismatches, %lld held "
			"(%lld bytes)\n", integer(k, "packets_compared", NULL),
			integer(k, "mismatches", NULL), integer(k, "held_packets", NULL),
			integer(k, "held_bytes", NULL));
		fprintf(out, "  net         link %s; %lld matched, %lld released by checkpoints, "
			"%lld timeouts, %lld checkpoint requests; hold p50 %lld us, p99 %lld us; "
			"input %lld mirrored / %lld not; secondary %lld captured, %lld injected "
			"(%lld again); rewritten %lld in / %lld out\n", YAJL_IS_TRUE(get(k, "link_up", NULL)) ? "up" : "down",
			integer(k, "matched", NULL), integer(k, "released_after_checkpoint", NULL),
			integer(k, "timeouts", NULL), integer(k, "checkpoint_requests", NULL),
			integer(k, "hold_p50_us", NULL), integer(k, "hold_p99_us", NULL),
			integer(k, "input_mirrored", NULL), integer(k, "input_unmirrored", NULL),
			integer(k, "captured", NULL), integer(k, "injected", NULL),
			integer(k, "reinjected", NULL), integer(k, "rewritten_in", NULL),
			integer(k, "rewritten_out", NULL));
	} else
		fprintf(out, "  comparator  off (no --net-tap/--net-bridge, or --no-net): network output "
			"is not compared\n");
}

void ctl_print_watch_line(FILE *out, yajl_val st)
{
	char now[16], b1[32];
	time_t t = time(NULL);
	struct tm tm;
	strftime(now, sizeof(now), "%H:%M:%S", localtime_r(&t, &tm));
	yajl_val p = get(st, "peer", NULL);
	fprintf(out, "%s %s %-13s peer %-4s %-13s rtt %6.3f ms | ckpt %6lld last %6s ago | "
		"pause %6.2f p50 %6.2f p99 %6.2f ms | dirty %6lld pages\n",
		now, s(st, "role", NULL), s(st, "state", NULL),
		YAJL_IS_TRUE(get(p, "alive", NULL)) ? "up" : "DOWN", s(p, "state", NULL),
		num(p, "rtt_ms", NULL), integer(st, "checkpoints", "committed"),
		age(integer(st, "checkpoints", "since_last_ms"), b1, sizeof(b1)),
		num(st, "pause_ms", "last"), num(st, "pause_ms", "p50"), num(st, "pause_ms", "p99"),
		integer(st, "dirty", "last_pages"));
	fflush(out);
}
